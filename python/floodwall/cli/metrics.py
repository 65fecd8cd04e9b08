"""``floodwall metrics``: serve (or print) the Prometheus metrics of a shared store.

The analytics server of a host: it reads the counters every worker process
wrote beside the ``shm://`` or ``file://`` table (see
:mod:`floodwall.observe.metrics`) and the table's own gauges, and serves
them at ``http://127.0.0.1:PORT/metrics`` (loopback unless ``--host``
says otherwise). ``--once`` prints the exposition and exits.
"""

from __future__ import annotations

import argparse
import sys
import time

from floodwall.cli._target import add_common_arguments, store_limiter
from floodwall.errors import ConfigError

HELP = "serve the Prometheus metrics of a shared store"

DEFAULT_PORT = 4444


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall metrics``."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this host only)")
    parser.add_argument("--path", default="/metrics", help="HTTP path (default /metrics)")
    parser.add_argument("--prefix", default="floodwall", help="metric name prefix")
    parser.add_argument("--once", action="store_true", help="print the metrics and exit")
    add_common_arguments(parser)


def build(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The Metrics of the store ``args`` names (gauges and every process's counters)."""
    from floodwall.observe.metrics import Metrics

    _config, limiter = store_limiter(args)
    if getattr(limiter.backend, "table", None) is None:
        raise ConfigError(
            "floodwall metrics serves a shm:// or file:// table; a Redis deployment's "
            "metrics are served by each application process (docs/observability.md)"
        )
    metrics = Metrics(prefix=args.prefix)
    metrics.watch(limiter, "-", counts=False)
    return metrics, limiter


def run(args: argparse.Namespace) -> int:
    """Print once, or serve until interrupted."""
    from floodwall.observe.exporters import serve

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    metrics, _limiter = build(args)
    if args.once:
        sys.stdout.write(metrics.render().decode())
        return 0
    server = serve(metrics.render, args.port, args.host, args.path)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"floodwall: metrics at http://{host}:{port}{args.path} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
