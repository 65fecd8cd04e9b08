"""uvicorn's HTTP protocols with the head and body deadlines of :mod:`floodwall.server.bounds`.

Named by import string in the uvicorn configuration (so every worker
process builds its own). The deadlines come from the serve settings
(``head_timeout``, ``body_timeout``), else the defaults of
:mod:`floodwall.server.bounds`.
Importing this module imports uvicorn.
"""

from __future__ import annotations

import json
import os

from uvicorn.protocols.http.h11_impl import H11Protocol

from floodwall.server.bounds import BODY_TIMEOUT, HEAD_TIMEOUT, guarded_protocol

__all__ = ["GuardedH11Protocol", "GuardedHttpToolsProtocol", "body_timeout", "head_timeout"]


def _setting(name: str, default: float) -> float:
    """A deadline from the settings of this worker."""
    raw = os.environ.get("FLOODWALL_SERVE_SETTINGS")
    if raw:
        value = json.loads(raw).get(name)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return default


def head_timeout() -> float:
    return _setting("head_timeout", HEAD_TIMEOUT)


def body_timeout() -> float:
    return _setting("body_timeout", BODY_TIMEOUT)


GuardedH11Protocol = guarded_protocol(H11Protocol, head_timeout(), body_timeout())

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: h11 only
    GuardedHttpToolsProtocol = None
else:
    GuardedHttpToolsProtocol = guarded_protocol(HttpToolsProtocol, head_timeout(),
                                                body_timeout())
