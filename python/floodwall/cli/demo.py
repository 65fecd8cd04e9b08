"""``floodwall demo``: watch a burst admitted, then limited.

It runs the main job on the embedded memory store (or any store URL): a
burst of requests against one key, admitted up to the capacity and then
limited, with every decision printed; then, unless ``--no-wait``, it waits
``retry_after`` as a polite client would and shows the next request pass.
Exit code 0, or 1 if the request after the wait was still limited.
"""

from __future__ import annotations

import argparse
import time

from floodwall._version import __version__
from floodwall.algorithms import ALGORITHMS, DEFAULT_ALGORITHM

HELP = "show a burst admitted, then limited (memory store)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall demo``."""
    parser.add_argument("--rate", default="5/second", help="rate string (default 5/second)")
    parser.add_argument("--algorithm", default=DEFAULT_ALGORITHM, choices=sorted(ALGORITHMS))
    parser.add_argument("--store", default="memory://", help="store URL (default memory://)")
    parser.add_argument("--key", default="user:42")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between requests")
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait retry_after at the end"
    )


def run(args: argparse.Namespace) -> int:
    """Send the burst, print each decision, and (unless --no-wait) retry once."""
    from floodwall.limiter import Limiter

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
