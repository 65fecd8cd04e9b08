"""Where metrics are served: ``/metrics`` for ASGI, Flask and Django, and a standalone server.

- ASGI (FastAPI, Starlette): ``app.add_route("/metrics", metrics_app())``;
- Flask: ``add_flask_route(app)`` (``GET /metrics``);
- Django: ``path("metrics", django_view)`` in ``urlpatterns``;
- standalone: :func:`serve` (what ``floodwall metrics --port 4444`` runs),
  loopback by default.

Each serves the text exposition of a :class:`~.metrics.Metrics` (default:
the process's :func:`~.metrics.default_metrics`): under several workers,
the host's totals whichever worker answers (see :mod:`.metrics`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floodwall.observe.metrics import Metrics

__all__ = ["CONTENT_TYPE", "MetricsApp", "add_flask_route", "django_view", "metrics_app", "serve"]

#: The Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Render = Callable[[], bytes]


def _renderer(metrics: Metrics | Render | None) -> Render:
    from floodwall.observe.metrics import default_metrics

    if metrics is None:
        return lambda: default_metrics().render()
    if callable(metrics) and not hasattr(metrics, "render"):
        return metrics
    return metrics.render  # type: ignore[union-attr]


class MetricsApp:
    """An ASGI app answering GET (and HEAD) with the exposition. An object,
    not a function, so Starlette routes it as an app:
    ``app.add_route("/metrics", metrics_app())`` serves ``/metrics``
    exactly (``app.mount`` serves ``/metrics/``). Rendering runs in a
    thread: it reads files."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.render = _renderer(metrics)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        import asyncio

        if scope.get("method", "GET") not in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 405,
                        "headers": [(b"allow", b"GET, HEAD")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = await asyncio.get_running_loop().run_in_executor(None, self.render)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE.encode())]})
        await send({"type": "http.response.body",
                    "body": b"" if scope.get("method") == "HEAD" else body})


def metrics_app(metrics: Metrics | None = None) -> MetricsApp:
    """The ASGI app of ``metrics`` (default: the process's registry)."""
    return MetricsApp(metrics)


def add_flask_route(app: Any, path: str = "/metrics", metrics: Metrics | None = None) -> None:
    """Serve the exposition at ``GET path`` of a Flask app (exempt from
    floodwall's own limits)."""
    render = _renderer(metrics)

    def floodwall_metrics() -> Any:
        from flask import Response

        return Response(render(), content_type=CONTENT_TYPE)

    from floodwall.integrations._common import EXEMPT_ATTR

    setattr(floodwall_metrics, EXEMPT_ATTR, True)
    app.add_url_rule(path, "floodwall_metrics", floodwall_metrics, methods=["GET"])


def django_view(request: Any) -> Any:
    """A Django view of the process's metrics: ``path("metrics", django_view)``."""
    from django.http import HttpResponse, HttpResponseNotAllowed

    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(_renderer(None)(), content_type=CONTENT_TYPE)


def serve(
    render: Render,
    port: int,
    host: str = "127.0.0.1",
    path: str = "/metrics",
) -> ThreadingHTTPServer:
    """Start serving ``render()`` at ``http://host:port/path`` in a daemon
    thread; returns the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?", 1)[0] != path:
                self.send_error(404, f"metrics are at {path}")
                return
            try:
                body = render()
            except Exception as exc:
                self.send_error(500, f"{type(exc).__name__}: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="floodwall-metrics-http",
                     daemon=True).start()
    return server
