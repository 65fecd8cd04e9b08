"""``floodwall top``: the hottest keys of a shared table, and whether a given client is among them.

A table stores keyed fingerprints, never keys, so the list shows
fingerprints and how long each slot takes to be fresh again (the furthest
from fresh first); ``--limit NAME --client CLIENT`` tells whether that
client's key is among them, and where. Per-key denial counts are not kept
by the table: "most denied" cannot be answered, and the output says so.
Exit code 0 (1 when ``--client`` is not among the hottest), 2 when the
store cannot answer (Redis keeps no table to scan).
"""

from __future__ import annotations

import argparse
from typing import Any

from floodwall.cli._target import add_common_arguments, emit, store_limiter
from floodwall.errors import ConfigError

HELP = "hottest keys of a shared table; --client finds one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall top``."""
    parser.add_argument("-n", type=int, default=10, help="how many (default 10, at most 1000)")
    parser.add_argument("--limit", help="the named limit of --client")
    parser.add_argument("--client", help="is this client among the hottest? (needs --limit)")
    parser.add_argument("--raw", action="store_true", help="--client is the exact key")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the hottest slots, and where --client's key stands."""
    from floodwall import ops

    if not 1 <= args.n <= 1000:
        raise ConfigError(f"-n must be between 1 and 1000, got {args.n}")
    if args.client and not args.limit:
        raise ConfigError("--client needs --limit NAME: a client's key depends on the limit")
    config, limiter = store_limiter(args)
    try:
        rows = ops.hottest(limiter, args.n)
        mine = None
        if args.client:
            from floodwall.cli._target import target

            t = target(args)
            mine = ops.inspect(t.entry.limiter, t.key)[0]["fingerprint"]
    except ConfigError:
        kind = limiter.store.capabilities.kind
        raise ConfigError(
            f"the {kind} store keeps no table floodwall can scan: `top` answers for shm:// "
            "and file:// tables; on Redis use `floodwall status LIMIT CLIENT`"
        ) from None
    out: list[dict[str, Any]] = []
    lines = [f"hottest keys of {config.store_text} (fingerprints; keys are not stored; "
             "per-key denial counts are not kept):"]
    position = None
    for i, row in enumerate(rows, 1):
        fresh = row["fresh_in_ns"] / 1e9
        hit = mine is not None and row["fingerprint"] == mine
        if hit:
            position = i
        mark = "  <- " + str(args.client) if hit else ""
        lines.append(f"{i:>4}  {row['fingerprint']}  fresh in {fresh:9.1f} s{mark}")
        out.append({"rank": i, "fingerprint": row["fingerprint"], "fresh_in": fresh,
                    "slot": row["slot"], "client": hit})
    if not rows:
        lines.append("  (no key in use)")
    data: dict[str, Any] = {"store": config.store_text, "hottest": out}
    if args.client:
        data.update(client=args.client, client_fingerprint=mine, client_rank=position)
        lines.append(f"{args.client}: " + (f"#{position} of the hottest" if position
                                           else f"not among the {args.n} hottest"))
    emit(args, "\n".join(lines), data)
    return 1 if args.client and position is None else 0
