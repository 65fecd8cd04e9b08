"""What an operator's command acts on: the configuration, the store, a named limit, a client.

Shared by ``limits``, ``status``, ``check``, ``reset``, ``top``, ``stats``
and ``config``: the common options (``--config``, ``--store``, ``--json``),
loading the configuration with ``--store`` over it, refusing a store that a
separate process cannot see (``memory://``), turning CLIENT into the key the
integrations charge, and printing text or JSON. Invariant: a command never
acts on a store other than the configured one or the one ``--store`` names.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError

if TYPE_CHECKING:
    from floodwall._native import Decision
    from floodwall.config import Config, NamedLimit
    from floodwall.rates import Rate

__all__ = [
    "Target",
    "add_client_arguments",
    "add_common_arguments",
    "decision_json",
    "emit",
    "load_config",
    "rate_in_words",
    "seconds_in_words",
    "target",
]


def add_common_arguments(parser: argparse.ArgumentParser, *, store: bool = True) -> None:
    """``--config PATH``, ``--store URL`` (if the command uses a store), ``--json``."""
    parser.add_argument("--config", metavar="PATH",
                        help="floodwall.toml to read (default: FLOODWALL_CONFIG, "
                        "./floodwall.toml, [tool.floodwall] in ./pyproject.toml)")
    if store:
        parser.add_argument("--store", metavar="URL",
                            help="act on this store instead of the configured one")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``LIMIT CLIENT`` and ``--raw``."""
    parser.add_argument("limit", help="a named limit ([limits.NAME]); see `floodwall limits`")
    parser.add_argument("client", help="an IP address, a user id, a header value, or a "
                        "typed key (ip:..., user:..., hdr:NAME:...)")
    parser.add_argument("--raw", action="store_true",
                        help="CLIENT is the exact key (as passed to "
                        "floodwall.named_limiter(NAME) in code)")


def load_config(args: argparse.Namespace) -> Config:
    """The configuration (``--config`` or discovered), with ``--store`` over
    it, made the active one (so named limits build on that store)."""
    from floodwall.config import configure, load
    from floodwall.config.model import Config
    from floodwall.config.schema import SECTIONS, Bad

    config = load(getattr(args, "config", None))
    url = getattr(args, "store", None)
    if url:
        try:
            checked = SECTIONS["store"]["url"].check(url)
        except Bad as bad:
            raise ConfigError(f"--store: {bad.problem}; {bad.allowed}") from None
        values = dict(config.values)
        sources = dict(config.sources)
        values[("store", "url")] = checked
        sources[("store", "url")] = "--store"
        config = Config(values, sources, dict(config.limits), config.origin)
    return configure(config)


@dataclass
class Target:
    """A named limit, its Limiter on the store, and the client's key."""

    config: Config
    entry: NamedLimit
    client: str
    key: str


def target(args: argparse.Namespace, *, shared: bool = True) -> Target:
    """The named limit ``args.limit`` and ``args.client``'s key. With
    ``shared``, a store other processes cannot see is refused."""
    from floodwall.config import named_limit
    from floodwall.config.clients import client_key

    config = load_config(args)
    entry = named_limit(args.limit)
    if shared:
        require_shared(entry, config)
        warn_if_empty(entry.limiter, config)
    key_spec = entry.key if isinstance(entry.key, str) else "ip"
    if entry.key is not None and not isinstance(entry.key, str) and not args.raw:
        raise ConfigError(
            f"limit {args.limit!r} is keyed by a function in code: give the exact key "
            "with --raw"
        )
    key = client_key(entry.scope, key_spec, args.client, raw=args.raw,
                     ipv6_prefix=int(config.get("http", "ipv6_prefix", 64)))
    return Target(config, entry, args.client, key)


def require_shared(entry: NamedLimit, config: Config) -> None:
    """ConfigError when the limit's store lives inside one process only."""
    caps = entry.limiter.store.capabilities
    if not caps.shared:
        raise ConfigError(
            f"the store {config.store_text!r} ({caps.kind}) lives inside one process: this "
            "command would see its own empty table, not your service's. Point --store "
            "(or [store] url) at the store your service uses: shm://NAME, file:///path "
            "or redis://..."
        )


def warn_if_empty(limiter: Any, config: Config) -> None:
    """A note on stderr when a table holds no key at all: a mistyped store
    name opens (and creates) a fresh table, whose answers would mislead."""
    if not limiter.store.capabilities.inline:
        return  # a network store: counting its keys means a scan
    if limiter.stats().get("used_slots") == 0:
        print(f"floodwall: note: the table {config.store_text} holds no key at all; is it "
              "the store your service uses?", file=sys.stderr)


def rate_in_words(rate: Rate) -> str:
    """``5 per 5 minutes``."""
    return f"{rate.amount} per {seconds_in_words(rate.period_ns / 1e9, one='')}"


_UNITS = (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0))


def seconds_in_words(seconds: float, *, one: str = "1 ") -> str:
    """``5 minutes``, ``1 hour`` (``one`` replaces the ``1 `` of a single unit),
    ``0.25 seconds``."""
    for unit, size in _UNITS:
        count = seconds / size
        if count >= 1 and float(count).is_integer():
            n = int(count)
            return f"{one}{unit}" if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} seconds"


def decision_json(d: Decision) -> dict[str, Any]:
    return {
        "allowed": bool(d.allowed),
        "limit": d.limit,
        "remaining": d.remaining,
        "retry_after": d.retry_after,
        "reset_after": d.reset_after,
        "rate": None if d.rate is None else str(d.rate),
        "fallback": bool(getattr(d, "fallback", False)),
    }


def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


def store_limiter(args: argparse.Namespace) -> tuple[Config, Any]:
    """A Limiter on the configured (or ``--store``) store, for commands about
    the store as a whole: ``--limit NAME``'s, else the first named limit's,
    else a probe limiter (it reads, and never consumes)."""
    from floodwall.config import named_limit
    from floodwall.limiter import Limiter

    config = load_config(args)
    name = getattr(args, "limit", None) or (sorted(config.limits)[0] if config.limits else None)
    if name is not None:
        entry = named_limit(name)
        require_shared(entry, config)
        return config, entry.limiter
    probe = Limiter("1/second", store=config.store_url, namespace=config.namespace,
                    **config.store_options())
    if not probe.store.capabilities.shared:
        raise ConfigError(
            f"the store {config.store_text!r} lives inside one process: a CLI process sees "
            "its own empty table; give --store shm://NAME, file:///path or redis://..."
        )
    return config, probe
