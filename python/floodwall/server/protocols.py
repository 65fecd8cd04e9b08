"""uvicorn's HTTP protocols with the request-head deadline of :mod:`floodwall.server.bounds`.

Named by import string in the uvicorn configuration (so every worker
process builds its own). The deadline comes from the serve settings
(``head_timeout``), else :data:`floodwall.server.bounds.HEAD_TIMEOUT`.
Importing this module imports uvicorn.
"""

from __future__ import annotations

import json
import os

from uvicorn.protocols.http.h11_impl import H11Protocol

from floodwall.server.bounds import HEAD_TIMEOUT, guarded_protocol

__all__ = ["GuardedH11Protocol", "GuardedHttpToolsProtocol", "head_timeout"]


def head_timeout() -> float:
    """The deadline for a request head, from the settings of this worker."""
    raw = os.environ.get("FLOODWALL_SERVE_SETTINGS")
    if raw:
        value = json.loads(raw).get("head_timeout")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return HEAD_TIMEOUT


GuardedH11Protocol = guarded_protocol(H11Protocol, head_timeout())

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: h11 only
    GuardedHttpToolsProtocol = None
else:
    GuardedHttpToolsProtocol = guarded_protocol(HttpToolsProtocol, head_timeout())
