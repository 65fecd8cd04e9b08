"""Path globs for route limits and exemptions.

PathMatcher matches a request's method and path against patterns such as
``"/static/*"`` or ``"POST /login"`` and answers which one (by position)
matches first; Guard uses it for ``routes=`` and ``exempt=``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

__all__ = ["PathMatcher"]


class PathMatcher:
    """Globs over request paths (``*`` matches anything, ``/`` included;
    ``?`` one character), with an optional method prefix ``"POST /login"``."""

    __slots__ = ("_exact", "_patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._exact: dict[tuple[str | None, str], int] = {}
        self._patterns: list[tuple[str | None, re.Pattern[str], int]] = []
        for index, raw in enumerate(patterns):
            method, path = self.split(raw)
            if any(c in path for c in "*?["):
                self._patterns.append((method, re.compile(fnmatch.translate(path)), index))
            else:
                self._exact.setdefault((method, path), index)

    @staticmethod
    def split(pattern: str) -> tuple[str | None, str]:
        pattern = pattern.strip()
        if " " in pattern:
            method, path = pattern.split(None, 1)
            return method.upper(), path.strip()
        if not pattern.startswith("/") and pattern != "*":
            raise ValueError(
                f"path pattern {pattern!r} must start with '/' (optionally after a method)"
            )
        return None, pattern

    def __bool__(self) -> bool:
        return bool(self._exact or self._patterns)

    def match(self, method: str, path: str) -> int | None:
        """Index of the first pattern (in the given order) matching, or None.

        A ``GET`` pattern also matches ``HEAD``: every framework runs the GET
        view for HEAD, so a limit (or an exemption) on GET covers it.
        """
        best: int | None = None
        head = method == "HEAD"
        exact = self._exact
        if exact:
            for k in (
                exact.get((None, path)),
                exact.get((method, path)),
                exact.get(("GET", path)) if head else None,
            ):
                if k is not None and (best is None or k < best):
                    best = k
        for m, rx, index in self._patterns:
            if best is not None and index > best:
                break
            if (m is None or m == method or (head and m == "GET")) and rx.match(path):
                return index
        return best
