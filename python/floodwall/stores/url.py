"""The one store URL grammar, parsed once: ``scheme://location?options``.

:func:`parse_store_url` splits a URL into a :class:`StoreURL` (scheme,
location, options); the store's factory reads its options through one
typed :class:`Options` reader, which merges URL options with keyword
arguments and raises a :class:`~floodwall.ConfigError` naming the option and
what is allowed. A URL is never split again after this: the opened store is
what travels on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from floodwall.errors import ConfigError

__all__ = ["Options", "StoreURL", "parse_store_url"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class StoreURL:
    """A store URL split once.

    ``scheme``: lower-case (``memory``, ``shm``, ``redis+cluster``...).
    ``netloc``: as written (user, password, hosts). ``path``: as written.
    ``location``: netloc + path, percent-decoded (a table name, a file path).
    ``options``: the query string, one value per name.
    ``text``: the URL as given, with any password hidden (for messages).
    """

    scheme: str
    netloc: str
    path: str
    options: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    raw: str = field(default="", repr=False)

    @property
    def location(self) -> str:
        return unquote(self.netloc + self.path)

    def __str__(self) -> str:
        return self.text


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def parse_store_url(url: str) -> StoreURL:
    """Split ``url``; ConfigError when it is not ``scheme://...`` or repeats
    an option."""
    if not isinstance(url, str) or "://" not in url or not urlsplit(url).scheme:
        raise ConfigError(
            f"store must be a URL such as 'memory://', 'shm://NAME', "
            f"'file:///path' or 'redis://host:6379/0', got {url!r}"
        )
    parts = urlsplit(url)
    text = _redact(url)
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise ConfigError(f"option {name!r} is given twice in {text!r}")
        options[name] = value
    return StoreURL(parts.scheme.lower(), parts.netloc, parts.path, options, text, url)


class Options:
    """A store's options: the URL's, overridden by keywords (a keyword of
    None means "not given"). Each ``*_option`` call takes one out, typed;
    :meth:`finish` rejects what no one took."""

    def __init__(
        self,
        url: StoreURL | None,
        keywords: Mapping[str, Any],
        *,
        known: Iterable[str] | None = None,
        where: str = "",
    ) -> None:
        self.where = where or (f"{url.scheme}:// ({url.text!r})" if url else "this store")
        self._from_url: dict[str, str] = dict(url.options) if url else {}
        self._keywords = {k: v for k, v in keywords.items() if v is not None}
        self._known = frozenset(known) if known is not None else None
        if self._known is not None:
            for source, names in (("URL", self._from_url), ("keyword", self._keywords)):
                unknown = set(names) - self._known
                if unknown:
                    raise ConfigError(
                        f"unknown {source} option(s) {sorted(unknown)} for {self.where}; "
                        f"known: {', '.join(sorted(self._known))}"
                    )

    def has(self, name: str) -> bool:
        return name in self._keywords or name in self._from_url

    def raw(self, name: str, default: Any = None) -> Any:
        """The value as given (keyword first), taken out."""
        if name in self._keywords:
            self._from_url.pop(name, None)
            return self._keywords.pop(name)
        return self._from_url.pop(name, default)

    def _bad(self, name: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{name} must be {allowed}, got {value!r} (option of {self.where})")

    def int_option(self, name: str, default: int | None, low: int, high: int) -> int | None:
        """The option as an int in [low, high]; ``default`` (unchecked) when
        it was not given."""
        if not self.has(name):
            return default
        value = self.raw(name)
        between = f"between {low} and {high}"
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self._bad(name, value, f"an integer {between}")
        try:
            number = int(value)
        except ValueError:
            raise self._bad(name, value, f"an integer {between}") from None
        if not low <= number <= high:
            raise self._bad(name, value, between)
        return number

    def seconds_option(
        self, name: str, default: float | None, *, allow_none: bool = False
    ) -> float | None:
        if not self.has(name):
            return default
        value = self.raw(name)
        allowed = "seconds > 0" + (" (or none)" if allow_none else "")
        if value is None or (allow_none and isinstance(value, str) and value.lower() == "none"):
            if allow_none:
                return None
            raise self._bad(name, value, allowed)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self._bad(name, value, allowed)
        try:
            number = float(value)
        except ValueError:
            raise self._bad(name, value, allowed) from None
        if not number > 0 or number == float("inf"):
            raise self._bad(name, value, allowed)
        return number

    def bool_option(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise self._bad(name, value, "true or false (1/0, yes/no, on/off)")

    def choice_option(self, name: str, default: str, choices: Iterable[str]) -> str:
        allowed = tuple(choices)
        value = self.raw(name, default)
        text = value.lower() if isinstance(value, str) else value
        if text not in allowed:
            raise self._bad(name, value, "one of " + ", ".join(allowed))
        return str(text)

    def rest(self) -> tuple[dict[str, str], dict[str, Any]]:
        """What no one took: (URL options, keyword options)."""
        return dict(self._from_url), dict(self._keywords)

    def finish(self) -> None:
        """ConfigError if an option was given that the store does not read."""
        url_left, kw_left = self.rest()
        left = sorted(set(url_left) | set(kw_left))
        if left:
            raise ConfigError(f"unknown option(s) {left} for {self.where}")
