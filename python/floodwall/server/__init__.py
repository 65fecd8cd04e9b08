"""The floodwall server, ``floodwall serve`` (coming; nothing here runs yet).

The plan: one process that owns the limits and answers other processes and
languages over HTTP/JSON and a RESP port (``CL.THROTTLE``), deciding with the
same engine, algorithms and decisions as every other store. Its modules (one
per front end, and the request handling they share) will live in this
package, the command in ``floodwall.cli``, and the client side as a store
(``stores/remote.py``).
"""

from __future__ import annotations
