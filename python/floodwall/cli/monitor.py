"""``floodwall monitor``: a live view of decisions, from a ``/metrics`` URL or a shared store.

Every ``--interval`` seconds it reads the counters (``--url`` of any
floodwall ``/metrics``, or ``--store`` a shm:// / file:// table, read as
``floodwall metrics`` does) and shows, per limit: decisions per second
allowed and denied, the totals, fallbacks and store errors; the tables'
fill and the breakers; with ``--events``, the most denied keys (hashed)
among the recent decision events. On a terminal it redraws in place (with
``rich``, the ``monitor`` extra); otherwise it prints one plain line per
limit and interval. Ctrl-C exits with status 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from floodwall.errors import ConfigError, StoreError

HELP = "live view of decisions, fill and store health"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall monitor``."""
    parser.add_argument("--url", help="a floodwall /metrics URL to read")
    parser.add_argument("--store", metavar="URL", help="a shm:// or file:// table to read")
    parser.add_argument("--config", metavar="PATH", help="floodwall.toml (its store)")
    parser.add_argument("--events", metavar="SINK",
                        help="redis:// URL or JSON-lines file: show the most denied keys")
    parser.add_argument("--stream", default=None, help="the Redis stream of --events")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    parser.add_argument("--count", type=int, default=0,
                        help="stop after this many updates (default: until Ctrl-C)")
    parser.add_argument("--prefix", default="floodwall", help="metric name prefix")
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Samples of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def url_reader(url: str) -> Callable[[], str]:
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url must be an http:// or https:// URL, got {url!r}")

    def read() -> str:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (http only)
                return str(resp.read(16 << 20).decode("utf-8", "replace"))
        except OSError as exc:
            raise StoreError(f"cannot read {url}: {exc}") from exc

    return read


class View:
    """Rates between two readings, per limit."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.last: Samples | None = None
        self.last_t = 0.0

    def rows(self, now: Samples, t: float) -> tuple[list[dict[str, Any]], list[str]]:
        p = self.prefix
        limits: dict[tuple[str, str], dict[str, Any]] = {}
        for (name, labels), value in now.items():
            lab = dict(labels)
            if name == f"{p}_decisions_total":
                row = limits.setdefault((lab["limit"], lab["store"]), {
                    "limit": lab["limit"], "store": lab["store"], "allowed": 0.0,
                    "denied": 0.0, "fallback": 0.0, "errors": 0.0,
                    "allowed_s": 0.0, "denied_s": 0.0})
                row[lab["outcome"]] = value
                if self.last is not None and t > self.last_t:
                    before = self.last.get((name, labels), 0.0)
                    row[lab["outcome"] + "_s"] = max(0.0, value - before) / (t - self.last_t)
            elif name == f"{p}_store_errors_total":
                row = limits.setdefault((lab["limit"], lab["store"]), {
                    "limit": lab["limit"], "store": lab["store"], "allowed": 0.0,
                    "denied": 0.0, "fallback": 0.0, "errors": 0.0,
                    "allowed_s": 0.0, "denied_s": 0.0})
                row["errors"] = value
        health: list[str] = []
        for (name, labels), value in sorted(now.items()):
            lab = dict(labels)
            if name == f"{p}_table_fill_ratio":
                health.append(f"table {lab.get('table', '?')}: {value:.1%} full")
            elif name == f"{p}_store_breaker_open":
                health.append(f"{lab.get('store')}: " + ("BREAKER OPEN" if value else "healthy"))
            elif name == f"{p}_table_full_errors" and value:
                health.append(f"table {lab.get('table', '?')}: {int(value)} full errors")
        self.last, self.last_t = now, t
        return sorted(limits.values(), key=lambda r: (r["limit"], r["store"])), health


def top_denied(sink: Any, n: int = 5) -> list[tuple[str, int]]:
    """The most denied key ids among the newest events of the sink."""
    from floodwall.observe.events import JsonLinesSink, RedisStreamSink

    records: list[dict[str, Any]] = []
    if isinstance(sink, RedisStreamSink):
        for _id, fields in sink.client.xrevrange(sink.stream, count=2000) or []:
            records.append({(k.decode() if isinstance(k, bytes) else k):
                            (v.decode() if isinstance(v, bytes) else v)
                            for k, v in (fields or {}).items()})
    elif isinstance(sink, JsonLinesSink):
        import json

        try:
            with open(sink.path, encoding="utf-8", errors="replace") as f:
                for line in f.readlines()[-2000:]:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
    counts = Counter(str(r.get("key"))[:16] for r in records if r.get("outcome") == "denied")
    return counts.most_common(n)


def plain_lines(rows: list[dict[str, Any]], health: list[str],
                top: list[tuple[str, int]]) -> list[str]:
    stamp = time.strftime("%H:%M:%S")
    out = [f"{stamp} {r['limit']} [{r['store']}] allowed/s={r['allowed_s']:.1f} "
           f"denied/s={r['denied_s']:.1f} allowed={int(r['allowed'])} "
           f"denied={int(r['denied'])} fallback={int(r['fallback'])} "
           f"errors={int(r['errors'])}" for r in rows]
    out += [f"{stamp} {h}" for h in health]
    out += [f"{stamp} top denied {k}: {c}" for k, c in top]
    if not rows:
        out.append(f"{stamp} (no decisions yet)")
    return out


def rich_table(rows: list[dict[str, Any]], health: list[str],
               top: list[tuple[str, int]]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="floodwall monitor (Ctrl-C quits)")
    for col in ("limit", "store", "allowed/s", "denied/s", "allowed", "denied",
                "fallback", "errors"):
        table.add_column(col, justify="left" if col in ("limit", "store") else "right")
    for r in rows:
        table.add_row(r["limit"], r["store"], f"{r['allowed_s']:.1f}", f"{r['denied_s']:.1f}",
                      str(int(r["allowed"])), str(int(r["denied"])), str(int(r["fallback"])),
                      str(int(r["errors"])))
    parts: list[Any] = [table]
    parts += [Text(h) for h in health]
    if top:
        parts.append(Text("top denied keys (hashed): " +
                          ", ".join(f"{k} x{c}" for k, c in top)))
    return Group(*parts)


def run(args: argparse.Namespace) -> int:
    """Poll and draw until Ctrl-C (or ``--count`` updates)."""
    if (args.url is None) == (args.store is None and args.config is None):
        raise ConfigError("give --url http://.../metrics, or --store (or --config) for a table")
    if not 0.05 <= args.interval <= 3600:
        raise ConfigError(f"--interval must be 0.05..3600 seconds, got {args.interval}")
    if args.url:
        read = url_reader(args.url)
    else:
        from floodwall.cli.metrics import build

        ns = argparse.Namespace(store=args.store, config=args.config, limit=None,
                                prefix=args.prefix)
        metrics, _limiter = build(ns)

        def read() -> str:
            return str(metrics.render().decode())

    sink = None
    if args.events:
        from floodwall.observe.events import open_sink

        sink = open_sink(args.events, **({"stream": args.stream} if args.stream else {}))
    view = View(args.prefix)
    fancy = sys.stdout.isatty() and not args.plain
    done = 0
    try:
        if fancy:
            from rich.live import Live

            with Live(rich_table([], [], []), refresh_per_second=4, screen=False) as live:
                while True:
                    rows, health = view.rows(parse(read()), time.monotonic())
                    top = top_denied(sink) if sink is not None else []
                    live.update(rich_table(rows, health, top))
                    done += 1
                    if args.count and done >= args.count:
                        break
                    time.sleep(args.interval)
        else:
            while True:
                rows, health = view.rows(parse(read()), time.monotonic())
                top = top_denied(sink) if sink is not None else []
                print("\n".join(plain_lines(rows, health, top)), flush=True)
                done += 1
                if args.count and done >= args.count:
                    break
                time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    return 0
