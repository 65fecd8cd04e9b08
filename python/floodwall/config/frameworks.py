"""The integrations' options from a configuration: one code path for every framework.

Flask's ``app.config["FLOODWALL"]``, Django's ``settings.FLOODWALL`` (in the
schema's form: lower-case sections) and the discovered ``floodwall.toml``
are checked by :func:`floodwall.config.loading.load_mapping` /
:func:`~floodwall.config.loading.load` and turned into Guard options by
:meth:`Config.guard_options`. Invariant: options given in code win over
the configuration, key by key; with no configuration at all the options
are exactly those given in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floodwall.config.registry import active_config, configure

__all__ = ["framework_options", "is_schema_mapping"]


def is_schema_mapping(conf: object) -> bool:
    """Whether a framework setting is written in the schema's form (lower-case
    section names such as ``store``, ``limits``) rather than the Django
    integration's older upper-case keys (``DEFAULT``, ``STORE``)."""
    return (
        isinstance(conf, Mapping)
        and bool(conf)
        and all(isinstance(k, str) and k == k.lower() for k in conf)
    )


def framework_options(
    options: Mapping[str, Any], conf: Mapping[str, Any] | None, source: str
) -> dict[str, Any]:
    """Guard options: ``conf`` (a framework's own setting in the schema's
    form, which then becomes the active configuration, so its
    ``[limits.NAME]`` resolve), else the active configuration; ``options``
    given in code override either."""
    if conf is not None:
        from floodwall.config.loading import load_mapping

        config = configure(load_mapping(conf, source))
    else:
        config = active_config()
    merged = config.guard_options()
    merged.update(options)
    return merged
