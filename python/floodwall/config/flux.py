"""Converting a flux-limiter ``flux.toml`` into a ``floodwall.toml``.

flux's sections map as follows: ``[redis]`` -> the store URL and its
connection options; ``[flux]`` -> namespace, failure policy, jitter,
logging; ``[analytics]`` -> ``[metrics]`` and ``[events]`` (the event
stream); ``[rate_limit]`` -> ``[defaults]``; ``[rate_limits.NAME]`` ->
``[limits.NAME]``. :func:`convert` returns the new text and the list of
what could not be carried over, each with the reason; the caller shows it.
Invariant: the converted text is checked by the floodwall schema before it
is returned, so a conversion never writes a file that does not load.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from floodwall.config.errors import ConfigFileError
from floodwall.config.model import validate
from floodwall.config.schema import NAME_CHARS
from floodwall.config.template import render

__all__ = ["Conversion", "convert"]

_POLICIES = {"gcra": "gcra", "token_bucket": "token_bucket", "leaky_bucket": "leaky_bucket",
             "fixed_window": "fixed_window"}


@dataclass
class Conversion:
    """The converted ``text`` and what was ``dropped`` (``"[section] key:
    why"`` lines)."""

    text: str
    dropped: list[str] = field(default_factory=list)


def _rate(requests: Any, period: Any, where: str, dropped: list[str]) -> str | None:
    if (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1
            or isinstance(period, bool) or not isinstance(period, (int, float)) or period <= 0):
        dropped.append(f"{where}: requests={requests!r}, period={period!r}: not a positive "
                       "count and period, no rate written")
        return None
    seconds = int(period) if float(period).is_integer() else period
    return f"{requests}/{seconds}s"


def convert(text: str, source: str = "flux.toml") -> Conversion:
    """Convert flux.toml ``text``; ConfigFileError if it is not TOML."""
    try:
        flux = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"is not valid TOML: {exc}", source=source) from None
    dropped: list[str] = []
    notes: dict[str, str] = {}
    store: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    failure: dict[str, Any] = {}
    http: dict[str, Any] = {}
    logging_: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    events: dict[str, Any] = {}
    limits: dict[str, dict[str, Any]] = {}

    def take(section: str) -> dict[str, Any]:
        body = flux.pop(section, {})
        if not isinstance(body, dict):
            dropped.append(f"[{section}]: not a table")
            return {}
        return dict(body)

    redis = take("redis")
    if redis:
        host = redis.pop("host", "127.0.0.1")
        port = redis.pop("port", 6379)
        store["url"] = f"redis://{host}:{port}/0"
        if "pool_size" in redis:
            store["options"] = {"max_connections": redis.pop("pool_size")}
            notes["store.options"] = "flux [redis] pool_size"
        if "timeout_ms" in redis:
            failure["connect_timeout"] = redis.pop("timeout_ms") / 1000
            notes["failure.connect_timeout"] = "flux [redis] timeout_ms, in seconds"
    core = take("flux")
    if "key_prefix" in core:
        prefix = str(core.pop("key_prefix")).rstrip(":")
        if prefix and all(c in NAME_CHARS for c in prefix):
            store["namespace"] = prefix
            notes["store.namespace"] = (
                "flux [flux] key_prefix; floodwall names its Redis keys differently, so "
                "counters kept by flux start afresh"
            )
        else:
            dropped.append(f"[flux] key_prefix = {prefix!r}: not usable as a namespace")
    if "fail_silently" in core:
        silent = core.pop("fail_silently")
        failure["fail"] = "open" if silent else "raise"
        notes["failure.fail"] = f"flux [flux] fail_silently = {str(bool(silent)).lower()}"
    enabled = core.pop("jitter_enabled", None)
    jitter = core.pop("jitter_max_ms", None)
    if enabled is False:
        http["jitter_ms"] = 0
    elif jitter is not None:
        http["jitter_ms"] = jitter
    elif enabled:
        http["jitter_ms"] = 500  # flux's documented default
    if "console_logging" in core:
        logging_["console"] = bool(core.pop("console_logging"))
        if logging_["console"]:
            logging_["level"] = "debug"
    if "log_file" in core:
        logging_["file"] = core.pop("log_file")
    for key in core:
        dropped.append(f"[flux] {key}: floodwall has no such setting")
    analytics = take("analytics")
    if "enabled" in analytics:
        metrics["enabled"] = bool(analytics.pop("enabled"))
    if "port" in analytics:
        metrics["port"] = analytics.pop("port")
    if "stream" in analytics:
        stream = analytics.pop("stream")
        if store.get("url"):
            events["sink"] = store["url"]
            events["stream"] = str(stream)
            notes["events.sink"] = "flux [analytics] stream, on flux's Redis"
        else:
            dropped.append("[analytics] stream: no [redis] section to write it to")
    if "retention" in analytics:
        events["maxlen"] = analytics.pop("retention")
        notes["events.maxlen"] = "flux [analytics] retention"
    if "sample_rate" in analytics:
        events["sample_rate"] = analytics.pop("sample_rate")
    for key in analytics:
        dropped.append(f"[analytics] {key}: floodwall has no such setting")
    default = take("rate_limit")
    if default:
        policy = default.pop("policy", None)
        if policy is not None:
            if policy in _POLICIES:
                defaults["algorithm"] = _POLICIES[policy]
            else:
                dropped.append(f"[rate_limit] policy = {policy!r}: unknown algorithm")
        rate = _rate(default.pop("requests", 100), default.pop("period", 60), "[rate_limit]",
                     dropped)
        if rate is not None:
            defaults["rate"] = rate
            notes["defaults.rate"] = (
                "flux [rate_limit]: here the app-wide default limit of the integrations"
            )
        if "burst" in default:
            defaults["burst"] = default.pop("burst")
        for key in default:
            dropped.append(f"[rate_limit] {key}: floodwall has no such setting")
    named = flux.pop("rate_limits", {})
    for name, body in (named.items() if isinstance(named, dict) else ()):
        where = f"[rate_limits.{name}]"
        if not isinstance(body, dict) or not all(c in NAME_CHARS for c in str(name)):
            dropped.append(f"{where}: not a usable limit")
            continue
        body = dict(body)
        out: dict[str, Any] = {}
        rate = _rate(body.pop("requests", None), body.pop("period", None), where, dropped)
        if rate is None:
            continue
        out["rate"] = rate
        policy = body.pop("policy", None)
        if policy is not None:
            if policy in _POLICIES:
                out["algorithm"] = _POLICIES[policy]
            else:
                dropped.append(f"{where} policy = {policy!r}: unknown algorithm")
        if "burst" in body:
            out["burst"] = body.pop("burst")
        for key in body:
            dropped.append(f"{where} {key}: floodwall has no such setting")
        limits[str(name)] = out
    for section in flux:
        dropped.append(f"[{section}]: not a flux-limiter section floodwall knows")
    sections = {"store": store, "defaults": defaults, "failure": failure, "http": http,
                "logging": logging_, "metrics": metrics, "events": events}
    header = [f"floodwall.toml converted from {source} by `floodwall init --from`.",
              "See docs/configuration.md for every key."]
    if dropped:
        header.append("Not carried over:")
        header += [f"  {line}" for line in dropped]
    result = render(sections, limits, header, notes)
    validate(tomllib.loads(result), f"{source} (converted)", text=result)
    return Conversion(result, dropped)
