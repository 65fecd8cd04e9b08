"""Configuration and named limits: ``floodwall.toml``, one schema, the named-limit registry.

- :mod:`~floodwall.config.schema`: every section and key, its check, its
  default and its environment variable (the one schema);
- :mod:`~floodwall.config.model`: a checked :class:`Config`, and what it
  builds (the integrations' options, the named limits' Limiters);
- :mod:`~floodwall.config.loading`: where a configuration is found and how
  it is read (explicit path, ``FLOODWALL_CONFIG``, ``./floodwall.toml``,
  ``[tool.floodwall]`` in ``./pyproject.toml``), environment overrides;
- :mod:`~floodwall.config.errors`: errors naming file, line, key, problem
  and what is allowed, with the closest valid name suggested;
- :mod:`~floodwall.config.registry`: named limits, resolved from code and
  from the active configuration;
- :mod:`~floodwall.config.clients`: an operator's CLIENT -> the key the
  integrations charge;
- :mod:`~floodwall.config.flux`: converting a flux-limiter ``flux.toml``;
- :mod:`~floodwall.config.template`: the commented ``floodwall.toml`` that
  ``floodwall init`` writes;
- :mod:`~floodwall.config.logsetup`: the ``floodwall`` logger and ``[logging]``.

The framework integrations hand their own settings (Django's
``settings.FLOODWALL``, Flask's ``app.config["FLOODWALL"]``) to the same
:func:`~floodwall.config.loading.load_mapping`, so a setting means the same
thing everywhere.
"""

from __future__ import annotations

from floodwall.config.errors import ConfigFileError
from floodwall.config.loading import CONFIG_ENV, discover, load, load_mapping
from floodwall.config.model import Config, LimitConfig, validate
from floodwall.config.registry import (
    NamedLimit,
    active_config,
    configure,
    integration_limit,
    integration_limits,
    known_names,
    limiter,
    lookup_named_limit,
    named_limit,
    named_limits,
    register_named_limit,
    unregister_named_limit,
)

__all__ = [
    "CONFIG_ENV",
    "Config",
    "ConfigFileError",
    "LimitConfig",
    "NamedLimit",
    "active_config",
    "configure",
    "discover",
    "integration_limit",
    "integration_limits",
    "known_names",
    "limiter",
    "load",
    "load_mapping",
    "lookup_named_limit",
    "named_limit",
    "named_limits",
    "register_named_limit",
    "unregister_named_limit",
    "validate",
]
