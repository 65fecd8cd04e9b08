"""Configuration and named limits: the home of ``floodwall.toml`` (coming).

Nothing is configured from a file yet; this module holds no code today. What
will live here, and only here:

- the one schema of a floodwall configuration (store URL, failure policy,
  default and named limits, key functions by name, trusted proxies), loaded
  from ``floodwall.toml`` or a dict, validated at load time with a
  ``ConfigError`` naming the bad entry;
- the registry of named limits (``register_named_limit``,
  ``lookup_named_limit``, ...). It lives in :mod:`floodwall.decorator` today,
  because ``@rate_limit("name")`` is its only reader; it moves here when the
  configuration loader, its first writer, arrives, and the decorator then
  imports it from here.

The framework integrations read their own settings (``settings.FLOODWALL``
in Django, the ``Floodwall(...)`` arguments elsewhere); once this module
exists they will hand them to the same schema instead of each checking them.
"""

from __future__ import annotations
