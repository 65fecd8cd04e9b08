"""The floodwall command line: ``floodwall demo`` and friends.

``floodwall demo`` runs the main job on the embedded memory store: a burst of
requests against one key, admitted up to the capacity and then limited, with
every decision printed. ``floodwall doctor TABLE`` checks a file:// or shm://
table without changing it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from floodwall import Limiter, __version__
from floodwall.errors import FloodwallError
from floodwall.stores import ALGORITHMS


def _demo(args: argparse.Namespace) -> int:
    limiter = Limiter(args.rate, algorithm=args.algorithm, store=args.store)
    print(f"floodwall {__version__}: {limiter!r}")
    print(f"sending {args.requests} requests for key {args.key!r}, {args.interval}s apart\n")
    print(f"{'#':>3}  {'decision':8}  {'remaining':>9}  {'retry_after':>11}  "
          f"{'reset_after':>11}  {'delay':>7}")
    admitted = 0
    for i in range(1, args.requests + 1):
        d = limiter.check(args.key)
        admitted += d.allowed
        print(f"{i:>3}  {'allowed' if d.allowed else 'LIMITED':8}  {d.remaining:>9}  "
              f"{d.retry_after:>10.3f}s  {d.reset_after:>10.3f}s  {d.delay:>6.3f}s")
        if args.interval:
            time.sleep(args.interval)
    print(f"\n{admitted} of {args.requests} admitted; capacity {d.limit}")
    if admitted < args.requests and not args.no_wait:
        wait = limiter.peek(args.key).retry_after
        print(f"waiting retry_after = {wait:.3f}s, as a polite client would ...")
        time.sleep(wait)
        d = limiter.check(args.key)
        print(f"after the wait: {'allowed' if d.allowed else 'LIMITED'}, "
              f"remaining {d.remaining}")
        return 0 if d.allowed else 1
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from floodwall.stores import shared

    try:
        report = shared.doctor(args.table)
    except OSError as exc:
        print(f"floodwall: cannot read {args.table}: {exc}", file=sys.stderr)
        return 2
    for name in sorted(report):
        print(f"{name:16} {report[name]}")
    return 0 if report.get("ok") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floodwall", description="floodwall rate limiter")
    parser.add_argument("--version", action="version", version=f"floodwall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="show a burst admitted, then limited (memory store)")
    demo.add_argument("--rate", default="5/second", help="rate string (default 5/second)")
    demo.add_argument("--algorithm", default="gcra", choices=sorted(ALGORITHMS))
    demo.add_argument("--store", default="memory://", help="store URL (default memory://)")
    demo.add_argument("--key", default="user:42")
    demo.add_argument("--requests", type=int, default=8)
    demo.add_argument("--interval", type=float, default=0.0, help="seconds between requests")
    demo.add_argument("--no-wait", action="store_true", help="do not wait retry_after at the end")
    demo.set_defaults(run=_demo)
    doctor = sub.add_parser(
        "doctor", help="check a file:// or shm:// table read-only (exit 1 if damaged)"
    )
    doctor.add_argument("table", help="a table file path, file:///path or shm://NAME")
    doctor.set_defaults(run=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except FloodwallError as exc:
        print(f"floodwall: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
