"""``floodwall stats``: the store's counters and table fill.

Counters of the store itself (keys in use, slots used, table-full errors,
states found damaged or clamped), not of this process. Exit code 0.
"""

from __future__ import annotations

import argparse

from floodwall.cli._target import add_common_arguments, emit, store_limiter

HELP = "the store's counters and table fill"

#: Counters of the limiter object in this process: meaningless from a CLI.
_PROCESS_COUNTERS = ("allowed", "denied", "fallbacks", "errors", "breaker_open",
                     "breaker_trips")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall stats``."""
    parser.add_argument("--limit", help="read the store through this named limit (on Redis, "
                        "keys are counted per limit; default: the first named limit)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the store's counters."""
    config, limiter = store_limiter(args)
    stats = {k: v for k, v in limiter.stats().items() if k not in _PROCESS_COUNTERS}
    caps = limiter.store.capabilities
    lines = [f"store {config.store_text} ({caps.kind})"]
    if "slots" in stats and stats["slots"]:
        fill = 100.0 * stats["used_slots"] / stats["slots"]
        lines.append(f"  table fill      {stats['used_slots']} of {stats['slots']} slots "
                     f"({fill:.2f}%)")
    for name in sorted(stats):
        lines.append(f"  {name:15} {stats[name]}")
    emit(args, "\n".join(lines), {"store": config.store_text, "kind": caps.kind, **stats})
    return 0
