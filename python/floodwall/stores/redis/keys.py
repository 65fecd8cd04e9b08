"""Key naming of the Redis store: user keys -> Redis key names.

``<namespace>:<algorithm>:{<id>}:<rate>``, where ``id`` stands for the user
key: a 128-bit BLAKE2b of it (keyed by the deployment's secret, if one is
set), or the key itself with ``plain_keys``. The tag in braces is the only
hash tag, so every key of one check lands in one Cluster slot.

The key secret is read in exactly one place, :func:`resolve_key_secret`:
the ``key_secret=`` option, else the ``FLOODWALL_KEY_SECRET`` environment
variable. Without a secret, ids are an unkeyed hash: they hide keys from a
casual reader of Redis, but anyone who can read Redis recovers keys from a
small space (IP addresses, user ids) by hashing every candidate.
"""

from __future__ import annotations

# The naming itself is shared with the PostgreSQL store: its one home is
# floodwall.stores.netkeys.
from floodwall.stores.netkeys import (
    KEY_SECRET_ENV,
    KeyNamer,
    escape,
    glob_escape,
    key_bytes,
    resolve_key_secret,
)

__all__ = [
    "KEY_SECRET_ENV",
    "KeyNamer",
    "escape",
    "glob_escape",
    "key_bytes",
    "resolve_key_secret",
]
