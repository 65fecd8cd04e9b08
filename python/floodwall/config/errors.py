"""Configuration errors that point at the line: file, line, key, problem, what is allowed.

:class:`ConfigFileError` is the one error a configuration source raises (a
``floodwall.toml``, ``[tool.floodwall]`` in a ``pyproject.toml``, Django's
``settings.FLOODWALL``, Flask's ``app.config["FLOODWALL"]``, an environment
variable). :func:`suggest` finds the closest valid name for a misspelt key,
and :func:`line_of` finds where a key is written in a TOML text (tomllib
gives positions only for syntax errors).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from floodwall.errors import ConfigError

__all__ = ["ConfigFileError", "line_of", "suggest"]


class ConfigFileError(ConfigError):
    """A configuration source is invalid.

    The message reads ``SOURCE:LINE: KEY: PROBLEM; ALLOWED``; the parts are
    also attributes (``source``, ``line``, ``key``, ``problem``, ``allowed``)
    for tools.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        key: str | None = None,
        line: int | None = None,
        allowed: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.problem = problem
        self.allowed = allowed
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {key}: {problem}" if key else f"{where}: {problem}"
        if allowed:
            text += f"; {allowed}"
        super().__init__(text)


def suggest(name: str, valid: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest valid name, else ``""``."""
    close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def line_of(text: str | None, dotted: str) -> int | None:
    """The 1-based line where ``dotted`` (``"limits.login.rate"``) is set in
    a TOML ``text``: the key's line inside its table, else the table's
    header line; None when it cannot be found (or there is no text)."""
    if not text:
        return None
    parts = dotted.split(".")
    lines = text.splitlines()
    # The longest table header that is a prefix of the dotted name.
    start, key_parts = 0, parts
    for cut in range(len(parts), 0, -1):
        header = re.compile(
            r"^\s*\[\s*" + r"\s*\.\s*".join(re.escape(p) for p in parts[:cut]) + r"\s*[\].]"
        )
        found = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
        if found is not None:
            if cut == len(parts):
                return found + 1
            start, key_parts = found + 1, parts[cut:]
            break
    key = re.compile(r"^\s*" + re.escape(key_parts[0]) + r"\s*[=.]")
    for i in range(start, len(lines)):
        if lines[i].lstrip().startswith("["):
            break  # the next table: the key is not written
        if key.match(lines[i]):
            return i + 1
    return None
