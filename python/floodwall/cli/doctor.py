"""``floodwall doctor [TABLE]``: check a table, or the configured store, read-only.

With TABLE (a path, file:///path or shm://NAME) it prints every finding of
the table doctor, one per line, and never changes the table. Without it, it
checks the configured store (or ``--store URL``): a file:// or shm:// table
as above; Redis (reachable within the store's timeout, server version, the
check function or script loaded); PostgreSQL (reachable, the schema present
at a version this floodwall uses, the check function present); a floodwall
server (``http(s)://``: its ``/v1/health``). Exit code 0 if healthy, 1 if a
problem was found, 2 if the store cannot be read (missing, unreachable, not
a table, no permission). ``--json`` prints the findings as one object.
"""

from __future__ import annotations

import argparse
import sys

from floodwall.cli._target import add_common_arguments, emit, load_config

HELP = "check a table or the configured store read-only (exit 1 if a problem is found)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall doctor``."""
    parser.add_argument("table", nargs="?",
                        help="a table file path, file:///path or shm://NAME (default: "
                        "the configured store, or --store)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the doctor on ``args.table`` or the store, and print its report."""
    from floodwall import ops

    try:
        if args.table:
            what = args.table
            report = ops.doctor(args.table)
        else:
            config = load_config(args)
            what = config.store_text
            report = ops.doctor_store(config.store_url, config.store_options())
    except OSError as exc:  # ops.Unreachable included
        print(f"floodwall: cannot read {what}: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            emit(args, "", {"ok": False, "store": what, "error": str(exc)})
        return 2
    lines = [f"{name:16} {report[name]}" for name in sorted(report)]
    fill = fill_line(report)
    if fill:
        lines.append(f"{'fill':16} {fill}")
    emit(args, "\n".join(lines), report)
    return 0 if report.get("ok") else 1


def fill_line(report: dict[str, object]) -> str:
    """How full the table is: the keys it counts against ``max_keys`` (live
    ones, and expired ones not yet reclaimed) and the live ones alone."""
    keys, cap, live = report.get("keys"), report.get("max_keys"), report.get("active_keys")
    if not isinstance(keys, int) or not isinstance(cap, int) or cap <= 0:
        return ""
    live_part = f", {live} live" if isinstance(live, int) else ""
    return f"{keys} of {cap} keys ({100.0 * keys / cap:.1f}%{live_part})"
