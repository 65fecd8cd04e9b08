"""Option names checked in floodwall's terms.

FOREIGN_OPTIONS maps option names of other rate-limit libraries
(Flask-Limiter, slowapi, django-ratelimit...) to floodwall's spelling, and
check_options refuses an unknown option with that spelling or the list of
accepted names, rather than a TypeError naming an internal class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from floodwall.errors import ConfigError

__all__ = ["FOREIGN_OPTIONS", "check_options"]

#: Option names other rate-limit libraries use (Flask-Limiter, slowapi,
#: django-ratelimit...) and how floodwall spells them.
FOREIGN_OPTIONS: dict[str, str] = {
    "default_limits": "default='100/minute' (one limit; several rates as '100/minute; 1000/day')",
    "application_limits": "default='100/minute'",
    "limits": "default='100/minute'",
    "rate": "default='100/minute'",
    "limit": "default='100/minute'",
    "key_func": "key=callable(request) (or 'ip', 'user', 'header:X-Api-Key')",
    "storage_uri": "store='redis://host:6379/0' (or 'memory://', 'shm://NAME', 'file:///path')",
    "storage": "store=",
    "storage_options": "store_options={...}",
    "strategy": "algorithm='sliding_window' (or 'gcra', 'fixed_window', ...)",
    "key_prefix": "namespace='myapp'",
    "headers_enabled": "headers='both' (or 'ietf', 'x-ratelimit', 'none')",
    "swallow_errors": "fail='open'",
    "in_memory_fallback_enabled": "fail='open'",
    "on_breach": "on_limited=handler(request, decision)",
    "exempt_when": "exempt=['/path/glob', ...] or @fw.exempt",
}


def check_options(options: Mapping[str, Any], allowed: Iterable[str], owner: str) -> None:
    """Refuse an unknown option with a message in floodwall's terms: the
    floodwall spelling of a name from another library, else the list of
    accepted names (never a TypeError naming an internal class)."""
    allowed = set(allowed)
    for name in options:
        if name in allowed:
            continue
        if name in FOREIGN_OPTIONS:
            raise ConfigError(
                f"{owner}({name}=...) is another library's spelling; in floodwall "
                f"write {FOREIGN_OPTIONS[name]}"
            )
        raise ConfigError(f"{owner} has no option {name!r}; the options are {sorted(allowed)}")
