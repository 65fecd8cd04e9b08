"""Example: rate limiting a FastAPI app with floodwall.

    pip install "floodwall[fastapi]" uvicorn
    python examples/fastapi_app.py        (HOST and PORT from the environment,
                                           default 127.0.0.1:8000)
    uvicorn examples.fastapi_app:app      (from the repository root)
    curl -i localhost:8000/items          (repeat: 429 after 5 a minute)

With several worker processes (``uvicorn --workers 4``), use
``store="shm://myapp"`` so that they share one count.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Depends, FastAPI, Request

import floodwall
from floodwall.integrations.asgi import Floodwall

# One configuration for the app: a default of 5 requests a minute per client
# IP, nothing on health checks or docs, IETF and X-RateLimit headers.
fw = Floodwall(
    "5/minute",
    store="memory://",  # "shm://myapp" to share the limits between workers
    exempt=["/health", "/docs*", "/openapi.json"],
    routes={"POST /login": "3/minute"},  # path limits replace the default
    trusted_proxies=None,  # e.g. ["10.0.0.0/8"] behind a load balancer
)
app = FastAPI(title="floodwall example")
fw.init_app(app)  # the pure ASGI middleware + problem+json for Depends denials


@app.get("/items")
async def items() -> dict[str, Any]:
    return {"items": [1, 2, 3]}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/login")
async def login() -> dict[str, str]:
    return {"token": "..."}


@app.get("/report")
@fw.limit("10/hour", cost=5, name="reports")  # this route's own limit, 5 units a call
async def report(request: Request) -> dict[str, str]:
    return {"report": str(request.url)}


api_key_limit = fw.depends("100/minute", key="header:X-Api-Key", name="per-key")


@app.get("/api/data", dependencies=[Depends(api_key_limit)])
def data() -> dict[str, int]:
    return {"value": 42}


@app.get("/search")
@floodwall.rate_limit("5/5minutes")  # the framework-agnostic decorator
async def search(q: str = "") -> dict[str, str]:
    return {"q": q}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000"))
    )
