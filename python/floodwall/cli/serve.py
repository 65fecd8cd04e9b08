"""``floodwall serve``: run the HTTP/JSON (and optional RESP) limiter server.

It reads ``floodwall.toml`` (its named limits are served by name), listens
on 127.0.0.1:7878 by default, and runs ``--workers`` processes sharing one
``shm://`` or ``file://`` table. The token comes from ``--token-file`` or
``FLOODWALL_SERVER_TOKEN``, never from the command line. See docs/server.md.
"""

from __future__ import annotations

import argparse

from floodwall.server.main import DEFAULT_PORT, ServeOptions, serve

HELP = "run the limiter server (HTTP/JSON, optional RESP port)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall serve``."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (non-loopback needs a token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (7878)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--store", default=None,
                        help="the table: shm://NAME or file:///path (default: the "
                             "configuration's [store] url, else shm://floodwall-serve-PORT)")
    parser.add_argument("--config", dest="config_path", default=None,
                        help="floodwall.toml to read (default: discovered)")
    parser.add_argument("--token-file", default=None,
                        help="file holding the bearer token (mode 600); else "
                             "$FLOODWALL_SERVER_TOKEN")
    parser.add_argument("--tls-cert", default=None, help="TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", default=None, help="TLS private key (PEM)")
    parser.add_argument("--resp-port", type=int, default=None,
                        help="also speak RESP (CL.THROTTLE) on this port")
    parser.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--allow-clear", action="store_true",
                        help="let clients clear the whole table (POST /v1/clear)")
    # tests only: clients may send now_ns (loopback only, never the default)
    parser.add_argument("--test-clock", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--head-timeout", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--body-timeout", type=float, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the server until it is stopped."""
    options = ServeOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        store=args.store,
        config_path=args.config_path,
        token_file=args.token_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        resp_port=args.resp_port,
        test_clock=args.test_clock,
        allow_clear=args.allow_clear,
        log_level=args.log_level,
    )
    if args.head_timeout is not None:
        options.head_timeout = args.head_timeout
    if args.body_timeout is not None:
        options.body_timeout = args.body_timeout
    serve(options)
    return 0
