"""The floodwall server, ``floodwall serve``: HTTP/JSON and RESP front ends on the engine.

One process per worker, every worker mapping the same ``shm://`` or
``file://`` table, so the workers agree with no lock of their own. Modules:
:mod:`.service` (the limits served and the parsing of requests, shared by
the front ends), :mod:`.app` (the ASGI HTTP/JSON app), :mod:`.openapi`
(the endpoints, described once), :mod:`.resp` (the RESP2 port:
``CL.THROTTLE``, ``FW.CHECK``), :mod:`.auth` (the bearer token),
:mod:`.bounds` and :mod:`.protocols` (what one client can make a worker
hold), :mod:`.main` (options and uvicorn). The command is
``floodwall.cli.serve``; the client side is the ``http(s)://`` store
(:mod:`floodwall.stores.remote`). Importing this package imports nothing
beyond floodwall; uvicorn is needed only to run (``floodwall[server]``).
"""

from __future__ import annotations
