"""``floodwall limits``: the named limits, each in words, and where each is defined.

``login: 5 per 5 minutes, gcra, burst 5, key: ip (floodwall.toml:12)``.
Reads the configuration only; never opens the store. Exit code 0.
"""

from __future__ import annotations

import argparse
from typing import Any

from floodwall.cli._target import add_common_arguments, emit, load_config, rate_in_words

HELP = "list the named limits in words"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall limits``."""
    add_common_arguments(parser, store=False)


def run(args: argparse.Namespace) -> int:
    """Print every configured named limit."""
    from floodwall.rates import Rate, parse_rates

    config = load_config(args)
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    for name in sorted(config.limits):
        info = config.effective(config.limits[name])
        rates = [r if info["burst"] is None else Rate.from_ns(r.amount, r.period_ns, info["burst"])
                 for r in parse_rates(info["rate"])]
        words = "; ".join(rate_in_words(r) for r in rates)
        bursts = ", ".join(f"burst {r.burst}" for r in rates)
        scope = "" if info["scope"] == name else f", scope: {info['scope']}"
        lines.append(f"{name}: {words}, {info['algorithm']}, {bursts}, key: {info['key']}"
                     f"{scope}, cost {info['cost']}  ({info['source']})")
        rows.append({**info, "words": words, "bursts": [r.burst for r in rates]})
    if not lines:
        lines.append(f"no named limits in {config.origin}; add [limits.NAME] tables "
                     "(see `floodwall init`)")
    emit(args, "\n".join(lines), {"configuration": config.origin, "limits": rows})
    return 0
