"""The ``floodwall.toml`` that ``floodwall init`` writes, generated from the schema.

:func:`commented_template` explains every key of :data:`schema.SECTIONS`
(its meaning, default and environment variable) with the key itself
commented out, so the file loads and means exactly the defaults until a
line is uncommented. :func:`render` writes given values as TOML (the
subset floodwall's values need), for the flux conversion.
Invariant: the text is generated from the schema, so it cannot document a
key that does not exist or miss one that does.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from floodwall.config.schema import LIMIT_FIELDS, SECTIONS

__all__ = ["commented_template", "render", "toml_value"]

_EXAMPLES: dict[tuple[str, str], str] = {
    ("store", "url"): '"shm://myapp"',
    ("store", "options"): "{ max_keys = 100000 }",
    ("store", "namespace"): '"myapp"',
    ("store", "secret_env"): '"FLOODWALL_KEY_SECRET"',
    ("store", "secret"): '"..."',
    ("store", "allow_inline_secret"): "false",
    ("defaults", "algorithm"): '"gcra"',
    ("defaults", "rate"): '"100/minute"',
    ("defaults", "burst"): "20",
    ("defaults", "key"): '"ip"',
    ("defaults", "cost"): "1",
    ("failure", "fail"): '"open"',
    ("failure", "timeout"): "0.25",
    ("failure", "connect_timeout"): "0.25",
    ("failure", "breaker_threshold"): "5",
    ("failure", "breaker_cooldown"): "1.0",
    ("http", "headers"): '"both"',
    ("http", "headers_on_allowed"): "true",
    ("http", "jitter_ms"): "500",
    ("http", "trusted_proxies"): '["10.0.0.0/8"]',
    ("http", "proxy_header"): '"x-forwarded-for"',
    ("http", "ipv6_prefix"): "64",
    ("http", "on_missing_key"): '"shared"',
    ("http", "exempt"): '["/health", "/static/*"]',
    ("http", "enabled"): "true",
    ("http", "max_delay"): "1.0",
    ("http", "max_waiting"): "10.0",
    ("logging", "level"): '"info"',
    ("logging", "console"): "false",
    ("logging", "file"): '"floodwall.log"',
    ("logging", "raw_keys"): "false",
    ("logging", "warning_interval"): "60",
    ("metrics", "enabled"): "false",
    ("metrics", "prefix"): '"floodwall"',
    ("metrics", "path"): '"/metrics"',
    ("metrics", "port"): "9464",
    ("metrics", "dir"): '"/run/myapp/metrics"',
    ("metrics", "units"): "false",
    ("metrics", "latency"): "false",
    ("events", "sink"): '"redis://127.0.0.1:6379/0"',
    ("events", "sample_rate"): "0.1",
    ("events", "stream"): '"floodwall:events"',
    ("events", "maxlen"): "100000",
}

_TITLES = {
    "store": "Where the limits live, and how keys are kept apart and hashed",
    "defaults": "What a limit is when it does not say (and the app-wide default limit)",
    "failure": "What a check answers when the store cannot, and how long it waits",
    "http": "What the web integrations send and whom they believe",
    "logging": "The 'floodwall' logger (the library installs no handler unless asked here)",
    "metrics": "Prometheus metrics of the integrations (docs/observability.md)",
    "events": "A sampled stream of decisions, for `floodwall history` (docs/observability.md)",
}


def commented_template() -> str:
    """A floodwall.toml explaining every key, each commented out."""
    out = [
        "# floodwall.toml: the configuration of floodwall (docs/configuration.md).",
        "# Every key is commented out: as written, this file means the defaults.",
        "# Uncomment a line to change a value. Environment variables named below",
        "# override single values.",
        "",
    ]
    for section, fields in SECTIONS.items():
        out += ["# " + "-" * 74, f"# {_TITLES[section]}", f"[{section}]"]
        for key, field in fields.items():
            env = f"; env {field.env}" if field.env else ""
            text = f"{field.doc} (default: {field.default}{env})"
            out += ["# " + line for line in textwrap.wrap(text, 76)]
            out.append(f"# {key} = {_EXAMPLES[(section, key)]}")
        out.append("")
    out += [
        "# " + "-" * 74,
        "# Named limits: @rate_limit(name=\"login\"), limits=[\"login\"] on a route,",
        "# floodwall.named_limiter(\"login\"), and `floodwall status login CLIENT`.",
    ]
    for key, field in LIMIT_FIELDS.items():
        out.append(f"#   {key}: {field.doc} (default: {field.default})")
    out += [
        "# [limits.login]",
        '# rate = "5/5minutes"',
        '# algorithm = "gcra"',
        "# burst = 5",
        '# key = "ip"',
        "",
    ]
    return "\n".join(out)


def toml_value(value: Any) -> str:
    """One value as TOML: str, bool, int, float, lists and inline tables of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def render(
    sections: Mapping[str, Mapping[str, Any]],
    limits: Mapping[str, Mapping[str, Any]],
    header: Sequence[str] = (),
    notes: Mapping[str, str] | None = None,
) -> str:
    """TOML text of ``sections`` and ``[limits.NAME]`` tables, ``header``
    lines first (as comments); ``notes[dotted key]`` is a comment written
    above that key."""
    notes = notes or {}
    out = [f"# {line}" if line else "#" for line in header]
    if out:
        out.append("")
    for section, body in sections.items():
        if not body:
            continue
        out.append(f"[{section}]")
        for key, value in body.items():
            note = notes.get(f"{section}.{key}")
            if note:
                out.append(f"# {note}")
            out.append(f"{key} = {toml_value(value)}")
        out.append("")
    for name, body in limits.items():
        out.append(f"[limits.{name}]")
        for key, value in body.items():
            out.append(f"{key} = {toml_value(value)}")
        out.append("")
    return "\n".join(out)
