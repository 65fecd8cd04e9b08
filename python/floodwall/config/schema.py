"""The one schema of a floodwall configuration: every section, key, type, default and env var.

Every source (``floodwall.toml``, ``[tool.floodwall]``, Django's
``settings.FLOODWALL``, Flask's ``app.config["FLOODWALL"]``, environment
variables) is checked against :data:`SECTIONS` and :data:`LIMIT_FIELDS` by
the same functions, so a setting means the same thing everywhere. A key a
source does not set keeps the library's own default (shown here from the
constant that defines it) and is not passed on: the default has one home.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from floodwall.algorithms import ALGORITHMS, DEFAULT_ALGORITHM

__all__ = [
    "LIMIT_FIELDS",
    "LOG_LEVELS",
    "NAME_CHARS",
    "SECTIONS",
    "Bad",
    "Field",
    "env_fields",
]


class Bad(Exception):
    """A value is wrong: ``problem`` says how, ``allowed`` what would do."""

    def __init__(self, problem: str, allowed: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.allowed = allowed


Check = Callable[[Any], Any]


@dataclass(frozen=True)
class Field:
    """One key: its checker (returns the value, normalised, or raises Bad),
    its default as shown to people, its environment variable, its meaning."""

    check: Check
    default: str
    doc: str
    env: str | None = None


# ------------------------------------------------------------------ checkers


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Bad(f"{value!r} is not a non-empty string", "write a quoted string")
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, str):  # from an environment variable
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    if not isinstance(value, bool):
        raise Bad(f"{value!r} is not a boolean", "write true or false")
    return value


def _int(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                pass
        top = "" if high is None else f" and <= {high}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(f"{value!r} is not an integer", f"an integer >= {low}{top}")
        if value < low or (high is not None and value > high):
            raise Bad(f"{value} is out of range", f"an integer >= {low}{top}")
        return value

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise Bad(f"{value!r} is not a number of seconds > 0", "seconds, e.g. 0.25")
    return float(value)


def _fraction(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise Bad(f"{value!r} is not a share in (0, 1]", "a number, e.g. 0.1 for 10 %")
    return float(value)


def _choice(*choices: str) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise Bad(f"{value!r} is not allowed", "one of " + ", ".join(choices))
        return value.lower()

    return check


def _algorithm(value: Any) -> str:
    return str(_choice(*ALGORITHMS)(value))


def _rate(value: Any) -> str:
    from floodwall.errors import RateParseError
    from floodwall.rates import parse_rates

    if not isinstance(value, str):
        raise Bad(f"{value!r} is not a rate string", "a rate such as '5/minute'")
    try:
        parse_rates(value)
    except RateParseError as exc:
        raise Bad(f"{value!r} is not a rate ({exc})", "a rate such as '5/minute', "
                  "'10/second; 1000/day' or '100/5minutes'") from None
    return value


def _store_url(value: Any) -> str:
    from floodwall.errors import ConfigError
    from floodwall.stores.url import parse_store_url

    known = "'memory://', 'shm://NAME', 'file:///path', 'redis://host:6379/0' (and rediss://, " \
        "redis+unix://, redis+sentinel://, redis+cluster://)"
    if not isinstance(value, str):
        raise Bad(f"{value!r} is not a store URL", known)
    try:
        url = parse_store_url(value)
    except ConfigError as exc:
        raise Bad(str(exc), known) from None
    from floodwall.stores import _FACTORIES, _LAZY_MODULES

    if url.scheme not in _FACTORIES and url.scheme not in _LAZY_MODULES:
        raise Bad(f"unknown store scheme {url.scheme!r} in {url.text!r}", known)
    return value


def _key(value: Any) -> str:
    allowed = "'ip', 'user', 'path' or 'header:<Name>'"
    if not isinstance(value, str):
        raise Bad(f"{value!r} is not a key name", allowed)
    if value in ("ip", "user", "path") or (value.startswith("header:") and value[7:].strip()):
        return value
    raise Bad(f"unknown key {value!r}", allowed)


def _headers(value: Any) -> str | list[str] | bool:
    from floodwall.headers import parse_header_styles

    allowed = "'both', 'ietf', 'x-ratelimit', 'none', a list of them, or true/false"
    if not isinstance(value, (str, list, bool)):
        raise Bad(f"{value!r} is not a header style", allowed)
    try:
        parse_header_styles(value)
    except ValueError as exc:
        raise Bad(str(exc), allowed) from None
    return value


def _proxies(value: Any) -> int | str | list[str]:
    allowed = "a number of proxy hops, a CIDR ('10.0.0.0/8') or a list of CIDRs"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    elif isinstance(value, str) and "," in value:  # from an environment variable
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, bool) or not isinstance(value, (int, str, list)):
        raise Bad(f"{value!r} is not a proxy setting", allowed)
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise Bad(f"{value!r} is not a list of CIDRs", allowed)
    from floodwall.keys import ClientIP

    try:
        ClientIP(value)
    except (ValueError, TypeError) as exc:
        raise Bad(str(exc), allowed) from None
    return value


def _header_name(value: Any) -> str:
    text = _str(value).strip().lower()
    if not all(c.isalnum() or c == "-" for c in text):
        raise Bad(f"{value!r} is not a header name", "e.g. 'x-forwarded-for' or 'forwarded'")
    return text


def _globs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Bad(f"{value!r} is not a list of path globs", "e.g. ['/health', '/static/*']")
    return value


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Bad(f"{value!r} is not a table",
                  "a table of store options, e.g. { max_keys = 100000 }")
    return dict(value)


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not value or not all(
        c.isalnum() or c == "_" for c in value
    ):
        raise Bad(f"{value!r} is not an environment variable name",
                  "a name such as 'FLOODWALL_KEY_SECRET'")
    return value


def _secret(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Bad("the inline secret is empty", "a non-empty string of at most 64 bytes")
    return value


def _scope(value: Any) -> str:
    text = _str(value)
    if not all(c in NAME_CHARS for c in text):
        raise Bad(f"{text!r} has characters other than letters, digits, '_', '-', '.'",
                  "a name such as 'login'")
    return text


def _metric_prefix(value: Any) -> str:
    text = _str(value)
    if not text or not all(c.isalnum() or c == "_" for c in text) or text[0].isdigit():
        raise Bad(f"{text!r} is not a metric name prefix",
                  "letters, digits and '_', not starting with a digit, e.g. 'floodwall'")
    return text


def _cost(value: Any) -> int:
    return int(_int(0)(value))


#: Characters of a limit name (and scope): they appear in keys and commands.
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _defaults_text() -> dict[str, str]:
    from floodwall.integrations._shaping import DEFAULT_MAX_DELAY, DEFAULT_MAX_WAITING
    from floodwall.stores.failure import (
        DEFAULT_BREAKER_COOLDOWN,
        DEFAULT_BREAKER_THRESHOLD,
        DEFAULT_TIMEOUT,
    )

    return {
        "timeout": str(DEFAULT_TIMEOUT),
        "breaker_threshold": str(DEFAULT_BREAKER_THRESHOLD),
        "breaker_cooldown": str(DEFAULT_BREAKER_COOLDOWN),
        "max_delay": str(DEFAULT_MAX_DELAY),
        "max_waiting": str(DEFAULT_MAX_WAITING),
    }


_D = _defaults_text()

#: Every section and its keys (``[limits.NAME]`` tables use LIMIT_FIELDS).
SECTIONS: dict[str, dict[str, Field]] = {
    "store": {
        "url": Field(_store_url, "memory://", "where the limits live: memory://, shm://NAME, "
                     "file:///path or a redis:// URL", "FLOODWALL_STORE"),
        "options": Field(_table, "{}", "store options, e.g. { max_keys = 100000, sync = "
                         "\"interval\" }; see docs/stores.md"),
        "namespace": Field(_scope, "floodwall", "keeps this deployment's keys apart from "
                           "others on a shared store", "FLOODWALL_NAMESPACE"),
        "secret_env": Field(_env_name, "(none: FLOODWALL_KEY_SECRET if set)",
                            "the environment variable holding the key-hashing secret of "
                            "network stores; it must be set when named"),
        "secret": Field(_secret, "(none)", "an inline key secret: refused unless "
                        "allow_inline_secret = true (a secret in a file leaks with it)"),
        "allow_inline_secret": Field(_bool, "false", "accept an inline secret"),
    },
    "defaults": {
        "algorithm": Field(_algorithm, DEFAULT_ALGORITHM, "the algorithm of every limit "
                           "that names none", "FLOODWALL_ALGORITHM"),
        "rate": Field(_rate, "(none: no app-wide limit)", "the app-wide default limit of "
                      "the framework integrations", "FLOODWALL_DEFAULT_RATE"),
        "burst": Field(_int(1), "(the rate's amount)", "the capacity of the default limit"),
        "key": Field(_key, "ip", "who is charged: ip, user, path or header:<Name>"),
        "cost": Field(_cost, "1", "units one request costs"),
    },
    "failure": {
        "fail": Field(_choice("raise", "open", "closed"), "(the integration's default)",
                      "when the store cannot answer: open (admit), closed (deny) or raise",
                      "FLOODWALL_FAIL"),
        "timeout": Field(_seconds, _D["timeout"], "seconds a network store's check may "
                         "take in all", "FLOODWALL_TIMEOUT"),
        "connect_timeout": Field(_seconds, "(timeout)", "seconds to connect"),
        "breaker_threshold": Field(_int(0), _D["breaker_threshold"], "consecutive failures "
                                   "that open the circuit breaker (0: never)"),
        "breaker_cooldown": Field(_seconds, _D["breaker_cooldown"], "seconds the breaker "
                                  "stays open"),
    },
    "http": {
        "headers": Field(_headers, "both", "rate headers: both, ietf, x-ratelimit or none",
                         "FLOODWALL_HEADERS"),
        "headers_on_allowed": Field(_bool, "true", "also send them on allowed responses"),
        "jitter_ms": Field(_int(0, 60_000), "0", "random milliseconds added to Retry-After",
                           "FLOODWALL_JITTER_MS"),
        "trusted_proxies": Field(_proxies, "(none: the socket peer is the client)",
                                 "proxy hops or CIDRs whose forwarding headers are believed",
                                 "FLOODWALL_TRUSTED_PROXIES"),
        "proxy_header": Field(_header_name, "x-forwarded-for",
                              "the header trusted proxies write"),
        "ipv6_prefix": Field(_int(1, 128), "64", "IPv6 clients are keyed by this network"),
        "on_missing_key": Field(_choice("shared", "allow", "deny"), "shared",
                                "a request with no key: one shared bucket, not limited, "
                                "or 400"),
        "exempt": Field(_globs, "[]", "path globs never limited"),
        "enabled": Field(_bool, "true", "false turns every check off", "FLOODWALL_ENABLED"),
        "max_delay": Field(_seconds, _D["max_delay"], "shaping: longest hold of one request"),
        "max_waiting": Field(_seconds, _D["max_waiting"], "shaping: most waiting held per "
                             "worker"),
    },
    "logging": {
        "level": Field(_choice(*LOG_LEVELS), "warning", "level of the 'floodwall' logger",
                       "FLOODWALL_LOG_LEVEL"),
        "console": Field(_bool, "false", "add a handler writing to stderr"),
        "file": Field(_str, "(none)", "add a handler appending to this file"),
        "raw_keys": Field(_bool, "false", "write raw client keys in records, not hashed ids"),
        "warning_interval": Field(_seconds, "60", "seconds between two warnings about the "
                                  "same store failure"),
    },
    "metrics": {
        "enabled": Field(_bool, "false", "export the integrations' metrics (docs/"
                         "observability.md)", "FLOODWALL_METRICS"),
        "prefix": Field(_metric_prefix, "floodwall", "metric name prefix"),
        "path": Field(_str, "/metrics", "HTTP path of the exporter"),
        "port": Field(_int(1, 65535), "(none)", "port of a standalone exporter"),
        "dir": Field(_str, "(beside each shm:// or file:// table)", "directory where every "
                     "worker process writes its counters (or FLOODWALL_METRICS_DIR)"),
        "units": Field(_bool, "false", "also count units (cost); a Python call per check"),
        "latency": Field(_bool, "false", "a check latency histogram; a Python call per check"),
    },
    "events": {
        "sink": Field(_str, "(none: no events)", "where sampled decision events go: a "
                      "redis:// URL (a stream) or a file path (rotating JSON lines); "
                      "docs/observability.md", "FLOODWALL_EVENTS"),
        "sample_rate": Field(_fraction, "1.0", "the share of decisions recorded, in (0, 1]"),
        "stream": Field(_str, "floodwall:events", "the Redis stream's key"),
        "maxlen": Field(_int(1), "100000", "entries the Redis stream keeps (about: "
                        "XADD MAXLEN ~)"),
    },
}

#: The keys of a ``[limits.NAME]`` table.
LIMIT_FIELDS: dict[str, Field] = {
    "rate": Field(_rate, "(required)", "'5/5minutes', '10/second; 1000/day'"),
    "algorithm": Field(_algorithm, "([defaults] algorithm)", "this limit's algorithm"),
    "burst": Field(_int(1), "(the rate's amount)", "the capacity"),
    "cost": Field(_cost, "([defaults] cost)", "units one request costs"),
    "key": Field(_key, "([defaults] key)", "who is charged: ip, user, path, header:<Name>"),
    "scope": Field(_scope, "(the limit's name)", "the bucket: limits and routes with the "
                   "same scope share counters"),
}


def env_fields() -> dict[str, tuple[str, str]]:
    """Environment variable -> (section, key), for every key that has one."""
    return {
        field.env: (section, name)
        for section, fields in SECTIONS.items()
        for name, field in fields.items()
        if field.env is not None
    }
