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
    return 0 if report.get("ok") else 1
