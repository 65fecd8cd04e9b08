"""``floodwall serve``'s processes: checked options, then uvicorn with N workers on one table.

:class:`ServeOptions` holds every setting; :meth:`ServeOptions.check`
refuses what is unsafe or cannot work (a non-loopback address without a
token, ``memory://`` with several workers, half a TLS pair); :func:`serve`
opens the store once (so a bad store fails before any worker starts) and
runs uvicorn, whose workers each build the app from the same options
(passed in :data:`~floodwall.server.app.SETTINGS_ENV`; the token is never
passed, each worker reads it from its file or variable). Invariant: the
server never listens on a non-loopback address without a token.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError
from floodwall.server import bounds

if TYPE_CHECKING:
    from floodwall.server.app import ServerApp

__all__ = ["DEFAULT_PORT", "ServeOptions", "is_loopback", "serve"]

DEFAULT_PORT = 7878


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for anything else
    (0.0.0.0 and :: listen on every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeOptions:
    """Everything ``floodwall serve`` needs (see docs/server.md)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    store: str | None = None
    config_path: str | None = None
    token_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    resp_port: int | None = None
    test_clock: bool = False
    allow_clear: bool = False
    head_timeout: float = bounds.HEAD_TIMEOUT
    body_timeout: float = bounds.BODY_TIMEOUT
    max_body: int = bounds.MAX_BODY
    max_headers: int = bounds.MAX_HEADERS
    limit_concurrency: int = bounds.MAX_CONCURRENCY
    log_level: str = "warning"
    store_options: dict[str, Any] = field(default_factory=dict)

    # -- transport to the workers

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # -- checks

    def token(self) -> str | None:
        from floodwall.server.auth import read_token

        return read_token(self.token_file)

    def store_url(self, config: Any) -> str:
        """--store, else the configuration's [store] url if it set one, else
        a shm:// table named after the port."""
        if self.store:
            return self.store
        if config.is_set("store", "url"):
            return str(config.store_url)
        return f"shm://floodwall-serve-{self.port}"

    def check(self) -> str | None:
        """Refuse unsafe or impossible settings (ConfigError naming the
        problem); the token, if any."""
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"--workers must be between 1 and 256, got {self.workers}")
        for name in ("port", "resp_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigError(f"--{name.replace('_', '-')} must be a TCP port, got {value}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        token = self.token()
        if token is None and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: anyone who can reach "
                "it could reset or exhaust every limit; give --token-file FILE (mode 600) or "
                "set FLOODWALL_SERVER_TOKEN, or listen on 127.0.0.1"
            )
        if self.test_clock and not is_loopback(self.host):
            raise ConfigError("--test-clock lets clients choose time: loopback only")
        return token

    # -- building a worker

    def service_settings(self) -> Any:
        from floodwall.config.loading import load
        from floodwall.server.service import ServiceSettings

        config = load(self.config_path)
        url = self.store_url(config)
        options = dict(self.store_options)
        if not self.store and config.is_set("store", "url"):
            options = {**config.store_options(), **options}
        if url.startswith("memory:") and self.workers > 1:
            raise ConfigError(
                "memory:// is private to one process: with several workers use "
                "shm://NAME or file:///path (every worker maps the same table)"
            )
        if url.split("?", 1)[0] in ("memory://", "memory:"):
            url = "memory://floodwall-serve"  # one table for every limit of the worker
        settings = ServiceSettings(url, self.config_path, options, self.test_clock,
                                   self.allow_clear)
        return settings, config

    def app(self) -> ServerApp:
        """The ASGI app of one worker."""
        from floodwall.server.app import ServerApp
        from floodwall.server.auth import Authenticator
        from floodwall.server.service import Service

        settings, config = self.service_settings()
        resp = None
        if self.resp_port is not None:
            resp = {"host": self.host, "port": self.resp_port, "ssl": self._ssl_context()}
        return ServerApp(
            lambda: Service(settings, config),
            Authenticator(self.token()),
            resp=resp,
            max_body=self.max_body,
            body_timeout=self.body_timeout,
            max_headers=self.max_headers,
        )

    def _ssl_context(self) -> Any:
        if not self.tls_cert:
            return None
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx


def _http_protocol() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "floodwall.server.protocols:GuardedH11Protocol"
    return "floodwall.server.protocols:GuardedHttpToolsProtocol"


def serve(options: ServeOptions) -> None:
    """Check the options, open the store once, and run uvicorn (returns
    when the server stops)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigError(f"floodwall serve needs uvicorn: pip install 'floodwall[server]' "
                          f"({exc})") from None
    from floodwall.server.app import SETTINGS_ENV
    from floodwall.server.service import Service

    options.check()
    settings, config = options.service_settings()
    Service(settings, config).close()  # a store that cannot open fails here, once
    os.environ[SETTINGS_ENV] = options.to_json()
    uvicorn.run(
        "floodwall.server.app:create_app",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        http=_http_protocol(),
        lifespan="on",
        limit_concurrency=options.limit_concurrency,
        timeout_keep_alive=bounds.KEEP_ALIVE,
        timeout_graceful_shutdown=bounds.SHUTDOWN_TIMEOUT,
        h11_max_incomplete_event_size=bounds.MAX_HEADER_BYTES,
        ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key,
        log_level=options.log_level,
        access_log=False,
        server_header=False,
        date_header=False,
    )
