"""``floodwall doctor TABLE``: check a file:// or shm:// table, read-only.

It prints every finding of the table doctor, one per line, and never changes
the table. Exit code 0 if the table is healthy, 1 if it is damaged, 2 if it
cannot be read (missing, not a table, no permission).
"""

from __future__ import annotations

import argparse
import sys

HELP = "check a file:// or shm:// table read-only (exit 1 if damaged)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall doctor``."""
    parser.add_argument("table", help="a table file path, file:///path or shm://NAME")


def run(args: argparse.Namespace) -> int:
    """Run the doctor on ``args.table`` and print its report."""
    # The doctor itself lives with the shared tables for now (see floodwall.ops).
    from floodwall.stores import shared

    try:
        report = shared.doctor(args.table)
    except OSError as exc:
        print(f"floodwall: cannot read {args.table}: {exc}", file=sys.stderr)
        return 2
    for name in sorted(report):
        print(f"{name:16} {report[name]}")
    fill = fill_line(report)
    if fill:
        print(f"{'fill':16} {fill}")
    return 0 if report.get("ok") else 1


def fill_line(report: dict[str, object]) -> str:
    """How full the table is: the keys it counts against ``max_keys`` (live
    ones, and expired ones not yet reclaimed) and the live ones alone."""
    keys, cap, live = report.get("keys"), report.get("max_keys"), report.get("active_keys")
    if not isinstance(keys, int) or not isinstance(cap, int) or cap <= 0:
        return ""
    live_part = f", {live} live" if isinstance(live, int) else ""
    return f"{keys} of {cap} keys ({100.0 * keys / cap:.1f}%{live_part})"
