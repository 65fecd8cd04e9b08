"""A validated configuration: the values, where each came from, and what they build.

:func:`validate` turns a mapping (a parsed TOML file, ``settings.FLOODWALL``,
``app.config["FLOODWALL"]``) into a :class:`Config`, checking every key
against :mod:`floodwall.config.schema`; :meth:`Config.override` applies
environment variables. A Config builds what the rest of floodwall needs:
the Guard options of the integrations and the Limiter of each named limit.
Invariant: a Config only holds checked values, and a key no source set is
absent (the library's default applies), never copied here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from floodwall.config.errors import ConfigFileError, line_of, suggest
from floodwall.config.schema import LIMIT_FIELDS, NAME_CHARS, SECTIONS, Bad, env_fields

if TYPE_CHECKING:
    from floodwall.limiter import Limiter

__all__ = ["Config", "LimitConfig", "validate"]

Slot = tuple[str, str]


@dataclass(frozen=True)
class LimitConfig:
    """One ``[limits.NAME]`` table, checked (None: not set, the defaults apply)."""

    name: str
    rate: str
    algorithm: str | None = None
    burst: int | None = None
    cost: int | None = None
    key: str | None = None
    scope: str | None = None
    source: str = "code"

    @property
    def bucket(self) -> str:
        """The bucket scope: limits and routes with the same one share counters."""
        return self.scope or self.name


class Config:
    """A checked configuration. ``values[(section, key)]`` and
    ``sources[(section, key)]`` ("floodwall.toml:3", "env FLOODWALL_STORE");
    ``limits`` the named limits; ``origin`` the source as a whole."""

    def __init__(
        self,
        values: dict[Slot, Any],
        sources: dict[Slot, str],
        limits: dict[str, LimitConfig],
        origin: str,
    ) -> None:
        self.values = values
        self.sources = sources
        self.limits = limits
        self.origin = origin
        self._first: Limiter | None = None
        self._events: Any = None

    # -- reading

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.values.get((section, key), default)

    def is_set(self, section: str, key: str) -> bool:
        return (section, key) in self.values

    @property
    def store_url(self) -> str:
        return str(self.get("store", "url", "memory://"))

    @property
    def store_text(self) -> str:
        """The store URL for people: its password, if any, hidden."""
        from floodwall.stores.url import parse_store_url

        return parse_store_url(self.store_url).text

    @property
    def namespace(self) -> str:
        return str(self.get("store", "namespace", "floodwall"))

    def override(self, environ: Mapping[str, str]) -> Config:
        """This configuration with the ``FLOODWALL_*`` variables of
        ``environ`` applied over single values (each checked)."""
        values, sources = dict(self.values), dict(self.sources)
        for var, (section, key) in env_fields().items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            field = SECTIONS[section][key]
            try:
                values[(section, key)] = field.check(raw)
            except Bad as bad:
                raise ConfigFileError(
                    bad.problem, source=f"environment variable {var}",
                    key=f"{section}.{key}", allowed=bad.allowed,
                ) from None
            sources[(section, key)] = f"env {var}"
        config = Config(values, sources, dict(self.limits), self.origin)
        config.key_secret()  # a named secret variable must be set
        return config

    def key_secret(self) -> str | None:
        """The key-hashing secret: the variable ``secret_env`` names (which
        must be set), or the inline ``secret`` (only if allowed); else None."""
        var = self.get("store", "secret_env")
        if var is not None:
            value = os.environ.get(var)
            if not value:
                raise ConfigFileError(
                    f"the environment variable {var} is not set (or empty)",
                    source=self.sources.get(("store", "secret_env"), self.origin),
                    key="store.secret_env",
                    allowed=f"export {var}=<32 random bytes, hex>, or remove secret_env",
                )
            return str(value)
        secret = self.get("store", "secret")
        return None if secret is None else str(secret)

    # -- building

    def store_options(self) -> dict[str, Any]:
        """Keyword options of the store: ``[store] options``, the failure
        settings that were set, and the key secret when there is one."""
        options: dict[str, Any] = dict(self.get("store", "options", {}))
        for key in ("timeout", "connect_timeout", "breaker_threshold", "breaker_cooldown"):
            if self.is_set("failure", key):
                options[key] = self.get("failure", key)
        secret = self.key_secret()
        if secret is not None:
            options["key_secret"] = secret
        return options

    def guard_options(self) -> dict[str, Any]:
        """The options of an integration's Guard (``Floodwall(...)``,
        ``settings.FLOODWALL``) that this configuration sets."""
        from floodwall.integrations._common import Limit

        out: dict[str, Any] = {}
        if self.is_set("store", "url"):
            out["store"] = self.store_url
        options = self.store_options()
        if options:
            out["store_options"] = options
        if self.is_set("store", "namespace"):
            out["namespace"] = self.namespace
        if self.is_set("defaults", "algorithm"):
            out["algorithm"] = self.get("defaults", "algorithm")
        if self.is_set("defaults", "rate"):
            rate, burst = self.get("defaults", "rate"), self.get("defaults", "burst")
            out["default"] = Limit(rate, burst=burst)
        if self.is_set("defaults", "key"):
            out["key"] = self.get("defaults", "key")
        if self.is_set("defaults", "cost"):
            out["cost"] = self.get("defaults", "cost")
        if self.is_set("failure", "fail"):
            out["fail"] = self.get("failure", "fail")
        for key in SECTIONS["http"]:
            if self.is_set("http", key):
                out[key] = self.get("http", key)
        if self.get("metrics", "enabled", False):
            out["metrics"] = True
        events = self.events()
        if events is not None:
            out["events"] = events
        return out

    def events(self) -> Any:
        """The ``[events]`` sink as one :class:`floodwall.observe.events.Events`
        (built once per configuration), or None when no sink is set."""
        if not self.is_set("events", "sink"):
            return None
        if self._events is None:
            from floodwall.observe.events import Events

            sink = str(self.get("events", "sink"))
            options: dict[str, Any] = {}
            if sink.startswith(("redis://", "rediss://", "unix://")):
                options["stream"] = self.get("events", "stream", "floodwall:events")
                options["maxlen"] = self.get("events", "maxlen", 100_000)
            self._events = Events(
                sink, sample_rate=self.get("events", "sample_rate", 1.0), **options
            )
        return self._events

    def limit(self, name: str) -> LimitConfig:
        """The named limit ``name``; ConfigError listing the known names."""
        found = self.limits.get(name)
        if found is None:
            raise ConfigFileError(
                f"no limit named {name!r}", source=self.origin, key=f"limits.{name}",
                allowed=f"{suggest(name, self.limits)}known: {sorted(self.limits) or 'none'}",
            )
        return found

    def build_limiter(self, name: str) -> Limiter:
        """A Limiter for the named limit on this configuration's store. Every
        Limiter one Config builds shares one opened store (so several named
        limits can be decided all-or-nothing)."""
        from floodwall.limiter import Limiter
        from floodwall.stores.failure import WEB_FAIL_DEFAULT

        spec = self.limit(name)
        # a configuration describes a deployment: its limits take the web
        # default unless [failure] fail says otherwise (docs/frameworks.md)
        options: dict[str, Any] = {"fail": WEB_FAIL_DEFAULT}
        if self.is_set("failure", "fail"):
            options["fail"] = self.get("failure", "fail")
        if self._first is None:
            options.update(self.store_options())
            store: Any = self.store_url
        else:
            store = self._first.store
        from floodwall.errors import ConfigError

        try:
            limiter = Limiter(
                spec.rate,
                algorithm=spec.algorithm or self.get("defaults", "algorithm")
                or _default_algorithm(),
                burst=spec.burst,
                store=store,
                namespace=f"{self.namespace}:{spec.bucket}",
                **options,
            )
        except ConfigError as exc:
            hint = "check [store] options and [failure]"
            if "key_secret" in str(exc):
                hint = ("this store takes no key secret (a table keys its fingerprints with "
                        "a random seed of its own): remove [store] secret_env / secret")
            raise ConfigFileError(
                f"cannot be built on the store {self.store_text}: {exc}",
                source=spec.source, key=f"limits.{name}", allowed=hint,
            ) from None
        if self._first is None:
            self._first = limiter
        return limiter

    def effective(self, spec: LimitConfig) -> dict[str, Any]:
        """A named limit with the defaults filled in, for people."""
        return {
            "name": spec.name,
            "rate": spec.rate,
            "algorithm": spec.algorithm or self.get("defaults", "algorithm")
            or _default_algorithm(),
            "burst": spec.burst,
            "cost": spec.cost if spec.cost is not None else self.get("defaults", "cost", 1),
            "key": spec.key or self.get("defaults", "key", "ip"),
            "scope": spec.bucket,
            "source": spec.source,
        }


def _default_algorithm() -> str:
    from floodwall.algorithms import DEFAULT_ALGORITHM

    return DEFAULT_ALGORITHM


# ------------------------------------------------------------------ validation


class _Where:
    """Turns a dotted key into "source:line" for messages."""

    def __init__(self, source: str, text: str | None, prefix: str) -> None:
        self.source, self.text, self.prefix = source, text, prefix

    def line(self, dotted: str) -> int | None:
        return line_of(self.text, self.prefix + dotted)

    def at(self, dotted: str) -> str:
        line = self.line(dotted)
        return self.source if line is None else f"{self.source}:{line}"

    def error(self, dotted: str, problem: str, allowed: str | None = None) -> ConfigFileError:
        return ConfigFileError(
            problem, source=self.source, key=dotted, line=self.line(dotted), allowed=allowed
        )


def validate(
    data: Mapping[str, Any], source: str, *, text: str | None = None, prefix: str = ""
) -> Config:
    """Check ``data`` against the schema. ``source`` names it in messages,
    ``text`` (the TOML text) gives line numbers, ``prefix`` is where the
    configuration sits in that text (``"tool.floodwall."`` in a
    pyproject.toml). Raises ConfigFileError on the first problem."""
    where = _Where(source, text, prefix)
    if not isinstance(data, Mapping):
        raise ConfigFileError(
            f"the configuration is a {type(data).__name__}, not a table", source=source,
            allowed="a table with sections " + ", ".join([*SECTIONS, "limits"]),
        )
    values: dict[Slot, Any] = {}
    sources: dict[Slot, str] = {}
    limits: dict[str, LimitConfig] = {}
    valid_sections = [*SECTIONS, "limits"]
    for section, body in data.items():
        if section not in valid_sections:
            raise where.error(
                str(section), "unknown section",
                f"{suggest(str(section), valid_sections)}the sections are "
                + ", ".join(valid_sections),
            )
        if not isinstance(body, Mapping):
            raise where.error(str(section), f"is a {type(body).__name__}, not a table",
                              f"write [{section}] and its keys under it")
        if section == "limits":
            for name, table in body.items():
                limits[name] = _limit(where, name, table)
            continue
        fields = SECTIONS[section]
        for key, value in body.items():
            dotted = f"{section}.{key}"
            field = fields.get(key)
            if field is None:
                raise where.error(
                    dotted, "unknown key",
                    f"{suggest(str(key), fields)}the keys of [{section}] are "
                    + ", ".join(fields),
                )
            try:
                values[(section, key)] = field.check(value)
            except Bad as bad:
                raise where.error(dotted, bad.problem, bad.allowed) from None
            sources[(section, key)] = where.at(dotted)
    if ("store", "secret") in values and not values.get(("store", "allow_inline_secret")):
        raise where.error(
            "store.secret", "an inline secret is refused (it leaks with the file)",
            "name an environment variable instead: secret_env = \"FLOODWALL_KEY_SECRET\" "
            "(or set allow_inline_secret = true)",
        )
    if ("store", "secret") in values and ("store", "secret_env") in values:
        raise where.error("store.secret", "both secret and secret_env are set",
                          "keep one of them")
    return Config(values, sources, limits, source)


def _limit(where: _Where, name: Any, table: Any) -> LimitConfig:
    dotted = f"limits.{name}"
    if not isinstance(name, str) or not name or not all(c in NAME_CHARS for c in name):
        raise where.error(dotted, f"{name!r} is not a limit name",
                          "letters, digits, '_', '-' and '.', e.g. [limits.login]")
    if not isinstance(table, Mapping):
        raise where.error(dotted, f"is a {type(table).__name__}, not a table",
                          f"write [limits.{name}] with rate = '5/minute' under it")
    checked: dict[str, Any] = {}
    for key, value in table.items():
        field = LIMIT_FIELDS.get(key)
        if field is None:
            raise where.error(
                f"{dotted}.{key}", "unknown key",
                f"{suggest(str(key), LIMIT_FIELDS)}the keys of a limit are "
                + ", ".join(LIMIT_FIELDS),
            )
        try:
            checked[key] = field.check(value)
        except Bad as bad:
            raise where.error(f"{dotted}.{key}", bad.problem, bad.allowed) from None
    if "rate" not in checked:
        raise where.error(dotted, "has no rate", "add rate = '5/minute' (or another rate)")
    return LimitConfig(name=name, source=where.at(dotted), **checked)
