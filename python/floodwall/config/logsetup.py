"""The ``floodwall`` logger: its records, the ``[logging]`` section, warnings that cannot flood.

Records (all under the ``floodwall`` logger; the library installs no
handler unless ``[logging] console`` or ``file`` asks for one):

- WARNING ``floodwall.store``: a store failed and the failure policy
  answered (``fail=open|closed``); at most one per limit and store per
  ``warning_interval`` (default 60 s), with the number of fallbacks skipped
  since the last one (written by :mod:`floodwall.stores.failure`, which
  holds the interval);
- INFO ``floodwall.config``: a configuration was loaded (its origin, store
  URL with the password hidden, the number of named limits);
- DEBUG ``floodwall.decision``: one per request decided by a web
  integration (written by :mod:`floodwall.integrations._common`): the limit
  name(s), the outcome (allowed, delayed, denied, denied (no key)),
  remaining, retry-after, and the key as a hashed id (``key_id``, as hooks
  and events show it), the raw key only with ``raw_keys = true``; the
  record's ``decision`` attribute holds the same as a dict. Guarded by
  ``isEnabledFor(DEBUG)``: with DEBUG off it costs one check per request.

No raw client key is written unless ``raw_keys = true``.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from floodwall.stores.failure import LOG_INTERVAL, set_warning_interval

if TYPE_CHECKING:
    from floodwall.config.model import Config

__all__ = ["apply", "raw_keys"]

_HANDLER_ATTR = "_floodwall_configured"

#: ``[logging] raw_keys`` of the configuration applied last (one element).
_RAW_KEYS = [False]


def raw_keys() -> bool:
    """Whether records may show raw client keys (``[logging] raw_keys``)."""
    return _RAW_KEYS[0]


def apply(config: Config) -> None:
    """Apply ``[logging]``: the ``floodwall`` logger's level, and a console
    or file handler when asked (replacing one this function added before)."""
    root = logging.getLogger("floodwall")
    level = config.get("logging", "level")
    if level is not None:
        root.setLevel(str(level).upper())
    set_warning_interval(config.get("logging", "warning_interval", LOG_INTERVAL))
    _RAW_KEYS[0] = bool(config.get("logging", "raw_keys", False))
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
