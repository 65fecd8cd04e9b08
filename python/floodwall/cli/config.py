"""``floodwall config [show|check]``: the effective configuration and where each value came from.

``show`` (the default) prints every key that is set, its value and its
source (``floodwall.toml:3``, ``env FLOODWALL_STORE``, ``--store``), then
the named limits. ``check`` also builds every named limit on the store, so
a store option the store does not take, or a store that cannot be opened,
is reported. Exit code 0 when valid, 2 otherwise (the error names file,
line and key).
"""

from __future__ import annotations

import argparse
from typing import Any

from floodwall.cli._target import add_common_arguments, emit, load_config

HELP = "show the effective configuration, or check it"

_SECRET_KEYS = {("store", "secret")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall config``."""
    parser.add_argument("action", nargs="?", choices=("show", "check"), default="show")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Show or check the configuration."""
    from floodwall.config import named_limit

    config = load_config(args)
    rows: list[dict[str, Any]] = []
    lines = [f"configuration: {config.origin}"]
    for (section, key), value in sorted(config.values.items()):
        shown = "***" if (section, key) in _SECRET_KEYS else value
        if (section, key) == ("store", "url"):
            shown = config.store_text
        source = config.sources.get((section, key), "?")
        rows.append({"key": f"{section}.{key}", "value": shown, "source": source})
        lines.append(f"  {section}.{key} = {shown!r}  ({source})")
    if not config.values:
        lines.append("  (no value set: every default applies)")
    for name in sorted(config.limits):
        info = config.effective(config.limits[name])
        lines.append(f"  limits.{name}: {info['rate']}, {info['algorithm']}, key "
                     f"{info['key']}  ({info['source']})")
    if args.action == "check":
        for name in sorted(config.limits):
            named_limit(name)  # opens the store with the limit's options
        lines.append(f"ok: {len(config.limits)} named limit(s) built on {config.store_text}")
    emit(args, "\n".join(lines), {"configuration": config.origin, "values": rows,
                                  "limits": [config.effective(s) for s in
                                             config.limits.values()],
                                  "valid": True})
    return 0
