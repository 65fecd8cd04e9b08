"""The ``floodwall`` logger: its records, the ``[logging]`` section, warnings that cannot flood.

Records (all under the ``floodwall`` logger; the library installs no
handler unless ``[logging] console`` or ``file`` asks for one):

- WARNING ``floodwall.store``: a store failed and the failure policy
  answered (``fail=open|closed``) or raised; at most one per store and kind
  of failure per ``warning_interval`` (default 60 s), with the number of
  failures skipped since the last one;
- INFO ``floodwall.config``: a configuration was loaded (its origin, store
  URL with the password hidden, the number of named limits);
- DEBUG ``floodwall.decision``: reserved for decisions (the integrations do
  not emit it yet).

No raw client key is written at INFO or above unless ``raw_keys = true``.
Invariant: :func:`store_failure` costs one dict lookup and a clock read when
it stays quiet, so an outage at thousands of requests a second does not
become thousands of log lines.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from floodwall.config.model import Config

__all__ = ["DEFAULT_WARNING_INTERVAL", "apply", "set_warning_interval", "store_failure"]

DEFAULT_WARNING_INTERVAL = 60.0

_store_log = logging.getLogger("floodwall.store")
_lock = threading.Lock()
_last: dict[tuple[str, str], list[float]] = {}  # (store, kind) -> [last time, skipped]
_interval = [DEFAULT_WARNING_INTERVAL]
_HANDLER_ATTR = "_floodwall_configured"


def set_warning_interval(seconds: float) -> None:
    """Seconds between two warnings about the same store failure."""
    _interval[0] = float(seconds)
    with _lock:
        _last.clear()


def store_failure(store: str, exc: BaseException, answer: str) -> None:
    """Log that ``store`` failed with ``exc`` and the policy answered
    ``answer`` ("admitted", "denied", "raised"), at most once per interval
    per (store, kind of failure)."""
    kind = type(exc).__name__
    now = time.monotonic()
    with _lock:
        slot = _last.get((store, kind))
        if slot is not None and now - slot[0] < _interval[0]:
            slot[1] += 1
            return
        skipped = 0 if slot is None else int(slot[1])
        _last[(store, kind)] = [now, 0]
    more = f" ({skipped} more since the last warning)" if skipped else ""
    _store_log.warning("store %s failed (%s: %s); the request was %s%s",
                       store, kind, exc, answer, more)


def apply(config: Config) -> None:
    """Apply ``[logging]``: the ``floodwall`` logger's level, and a console
    or file handler when asked (replacing one this function added before)."""
    root = logging.getLogger("floodwall")
    level = config.get("logging", "level")
    if level is not None:
        root.setLevel(str(level).upper())
    set_warning_interval(config.get("logging", "warning_interval", DEFAULT_WARNING_INTERVAL))
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_ATTR, False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if config.get("logging", "console"):
        handlers.append(logging.StreamHandler(sys.stderr))
    path = config.get("logging", "file")
    if path:
        handlers.append(logging.FileHandler(path))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        setattr(handler, _HANDLER_ATTR, True)
        root.addHandler(handler)
