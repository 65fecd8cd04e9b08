"""Example: rate limiting a Flask app with floodwall.

    pip install "floodwall[flask]"
    python examples/flask_app.py           (HOST and PORT from the environment,
                                            default 127.0.0.1:5000)
    flask --app examples/flask_app run     (or: gunicorn examples.flask_app:app)
    curl -i localhost:5000/items           (repeat: 429 after 5 a minute)

With several worker processes (``gunicorn -w 4``), use ``store="shm://myapp"``
so that they share one count.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask

import floodwall
from floodwall.integrations.flask import Floodwall

app = Flask(__name__)
fw = Floodwall(
    default="5/minute",  # per client IP, across routes without their own limit
    store="memory://",  # "shm://myapp" to share limits between gunicorn workers
    exempt=["/health", "/static/*"],
    headers="both",  # IETF RateLimit/RateLimit-Policy and X-RateLimit-*
    jitter_ms=500,  # spread retries; never shortens the real wait
)


@app.route("/items")
def items() -> Any:
    return {"items": [1, 2, 3]}


@app.route("/health")
def health() -> str:
    return "ok"


@app.route("/login", methods=["POST"])
@fw.limit("3/minute", name="login")
def login() -> Any:
    return {"token": "..."}


@app.route("/export")
@fw.limit("2/second", name="export-burst")
@fw.limit("100/day", name="export-daily", cost=1)
def export() -> Any:
    return {"rows": []}


@app.route("/free")
@fw.exempt
def free() -> str:
    return "never limited"


@app.route("/search")
@floodwall.rate_limit(requests=10, period=60)  # the framework-agnostic decorator
def search() -> Any:
    return {"results": []}


api = Blueprint("api", __name__, url_prefix="/api")


@api.route("/things")
def things() -> Any:
    return {"things": []}


fw.limit("1000/hour", key="header:X-Api-Key", name="api")(api)  # blueprint limit
app.register_blueprint(api)
fw.init_app(app)

if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
