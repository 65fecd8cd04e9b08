"""The Redis store: redis://, rediss://, redis+unix:// (and unix://),
redis+sentinel:// and redis+cluster:// URLs, or an existing redis-py client.

One module per job: :mod:`.url` (URLs and options), :mod:`.connection`
(clients, pools, per-server circuit breakers), :mod:`.keys` (key naming and
the deployment's key secret), :mod:`.scripts` (the Lua script text under
``lua/`` and its arguments), :mod:`.calls` (the one FCALL / EVALSHA / EVAL
routine), :mod:`.backend` (the backend). Importing it imports redis-py.
"""

from __future__ import annotations

from floodwall.stores import register
from floodwall.stores.failure import DEFAULT_TIMEOUT
from floodwall.stores.redis.backend import RedisBackend, from_client, open_redis
from floodwall.stores.redis.keys import KEY_SECRET_ENV
from floodwall.stores.redis.url import parse_url

__all__ = [
    "DEFAULT_TIMEOUT",
    "KEY_SECRET_ENV",
    "RedisBackend",
    "from_client",
    "open_redis",
    "parse_url",
]

SCHEMES = (
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)

for _scheme in SCHEMES:
    register(_scheme, open_redis)
