"""The registry of named limits: ``@rate_limit(name=...)``, ``limits=[...]``, named_limiter().

A name is resolved from limits registered in code
(:func:`register_named_limit`) first, then from the active configuration
(``[limits.NAME]`` of the file :func:`floodwall.config.load` finds, or the
one given to :func:`configure`). Every reader asks here, when it is set
up: an unknown name is a ConfigError listing the known names at decoration
or startup time, never at the first request.
Invariant: one name gives one Limiter per process (built once, on first
use), so every route, decorator and CLI command naming it shares its state.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from floodwall.config import logsetup
from floodwall.config.errors import suggest
from floodwall.config.loading import load, load_mapping
from floodwall.config.model import Config, LimitConfig
from floodwall.errors import ConfigError

if TYPE_CHECKING:
    from floodwall.integrations._common import Limit
    from floodwall.keys import KeySpec
    from floodwall.limiter import Limiter
    from floodwall.rates import Rate

__all__ = [
    "NamedLimit",
    "active_config",
    "configure",
    "integration_limit",
    "integration_limits",
    "known_names",
    "limiter",
    "lookup_named_limit",
    "named_limit",
    "named_limits",
    "register_named_limit",
    "unregister_named_limit",
]

log = logging.getLogger("floodwall.config")


@dataclass(frozen=True)
class NamedLimit:
    """A name's Limiter and how the integrations charge it: ``key`` (None:
    the app's key), ``cost`` (None: the route's), ``scope`` (the bucket)."""

    name: str
    limiter: Limiter
    key: KeySpec | None = None
    cost: int | None = None
    scope: str = ""
    config: LimitConfig | None = None


_LOCK = threading.RLock()
_CODE: dict[str, NamedLimit] = {}
_FROM_CONFIG: dict[str, NamedLimit] = {}
_ACTIVE: dict[str, Config] = {}


def configure(
    source: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> Config:
    """Make a configuration the active one: a Config, a mapping (checked like
    a file), a path, or None (discover it again). Named limits built from the
    previous one are forgotten. Returns the active Config."""
    if isinstance(source, Config):
        config = source
    elif isinstance(source, Mapping):
        config = load_mapping(source, "configure(...)")
    else:
        config = load(source)
    with _LOCK:
        _ACTIVE["config"] = config
        _FROM_CONFIG.clear()
    logsetup.apply(config)
    log.info(
        "configuration loaded from %s: store %s, %d named limit(s)",
        config.origin, config.store_text, len(config.limits),
    )
    return config


def active_config() -> Config:
    """The active configuration (discovered and loaded on first use)."""
    with _LOCK:
        config = _ACTIVE.get("config")
    return config if config is not None else configure()


def register_named_limit(
    name: str,
    limiter: Limiter | str | Rate,
    *,
    key: KeySpec | None = None,
    cost: int | None = None,
    scope: str | None = None,
) -> Limiter:
    """Register a limit under ``name`` in code (it wins over the
    configuration's limit of the same name). ``limiter`` is a Limiter, or
    anything Limiter() accepts as its rate (then on the memory store);
    ``key``, ``cost``, ``scope`` as in ``[limits.NAME]``. Registering a
    name again replaces it."""
    from floodwall.limiter import Limiter

    if not isinstance(name, str) or not name:
        raise ConfigError(f"a named limit needs a non-empty str name, got {name!r}")
    lim = limiter if isinstance(limiter, Limiter) else Limiter(limiter)
    entry = NamedLimit(name, lim, key, cost, scope or name)
    with _LOCK:
        _CODE[name] = entry
    return lim


def unregister_named_limit(name: str) -> None:
    """Forget a limit registered in code (no error if it is unknown)."""
    with _LOCK:
        _CODE.pop(name, None)


def known_names() -> list[str]:
    """Every name that resolves: registered in code or configured."""
    with _LOCK:
        code = set(_CODE)
    return sorted(code | set(active_config().limits))


def named_limit(name: str) -> NamedLimit:
    """The named limit ``name``; ConfigError naming the known ones if none."""
    with _LOCK:
        entry = _CODE.get(name) or _FROM_CONFIG.get(name)
        if entry is not None:
            return entry
    config = active_config()
    spec = config.limits.get(name)
    if spec is None:
        known = known_names()
        raise ConfigError(
            f"no named limit {name!r}: {suggest(name, known)}known: "
            f"{', '.join(known) or 'none'} (configuration: {config.origin}); define "
            f"[limits.{name}] in floodwall.toml or call "
            "floodwall.config.register_named_limit(name, limiter)"
        )
    with _LOCK:
        entry = _FROM_CONFIG.get(name)
        if entry is None:
            entry = NamedLimit(
                name,
                config.build_limiter(name),
                spec.key or config.get("defaults", "key"),
                spec.cost if spec.cost is not None else config.get("defaults", "cost"),
                spec.bucket,
                spec,
            )
            _FROM_CONFIG[name] = entry
    return entry


def lookup_named_limit(name: str) -> Limiter:
    """The Limiter named ``name``; ConfigError naming the known ones if none."""
    return named_limit(name).limiter


def limiter(name: str) -> Limiter:
    """``floodwall.named_limiter("login")``: the Limiter of a named limit, for
    code outside a web framework. Keys you pass it are used as given (the
    CLI reaches them with ``--raw``)."""
    return lookup_named_limit(name)


def named_limits() -> dict[str, Limiter]:
    """Every named limit's Limiter (configured ones are built)."""
    return {name: lookup_named_limit(name) for name in known_names()}


def integration_limit(name: str) -> Limit:
    """The integrations' Limit for a named limit (``limits=["login"]``):
    its Limiter, key, cost, and its scope as the bucket and policy name."""
    from floodwall.integrations._common import Limit

    entry = named_limit(name)
    return Limit(entry.limiter, key=entry.key, cost=entry.cost, name=entry.scope)


def integration_limits(names: Any) -> list[Limit]:
    """:func:`integration_limit` of each name of a ``limits=`` option."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"limits= takes a list of limit names, e.g. limits=['login'], not {names!r}"
        )
    return [integration_limit(n) for n in names]
