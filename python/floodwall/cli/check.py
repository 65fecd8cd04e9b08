"""``floodwall check LIMIT CLIENT [--cost N]``: consume as one request would, and show the decision.

Exit code 0 when the request was allowed (and consumed), 1 when it was
denied (nothing consumed), 2 on an error.
"""

from __future__ import annotations

import argparse

from floodwall.cli._target import (
    add_client_arguments,
    add_common_arguments,
    decision_json,
    emit,
    target,
)
from floodwall.cli.status import describe

HELP = "consume like one request (exit 0 allowed, 1 denied)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall check``."""
    add_client_arguments(parser)
    parser.add_argument("--cost", type=int, default=None,
                        help="units to consume (default: the limit's cost, else 1)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Check (and consume) the client's key under the named limit."""
    t = target(args)
    cost = args.cost if args.cost is not None else (t.entry.cost or 1)
    d = t.entry.limiter.check(t.key, cost)
    text = describe(args.limit, args.client, d.allowed, d.remaining, d.limit,
                    d.retry_after, d.reset_after)
    emit(args, f"{text} (cost {cost})\n  key: {t.key}  store: {t.config.store_text}",
         {"limit_name": args.limit, "client": args.client, "key": t.key, "cost": cost,
          **decision_json(d)})
    return 0 if d.allowed else 1
