"""What a Limiter's ``on_allow``/``on_block``/``events``/``metrics`` do to it.

:func:`observe` is called by :class:`floodwall.Limiter` only when one of them
is set. It watches the limiter with its :class:`~.metrics.Metrics`, and binds
a :class:`floodwall.hooks.Observer`'s methods in place of the store's only
when something must see each check (a hook, events, units or latency).
Invariant: with nothing per check, the limiter keeps the store's own methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError

if TYPE_CHECKING:
    from floodwall.hooks import Hook
    from floodwall.limiter import Limiter
    from floodwall.observe.events import Events
    from floodwall.observe.metrics import Metrics

__all__ = ["observe"]


def _metrics(value: Any) -> Metrics | None:
    from floodwall.observe.metrics import Metrics, default_metrics

    if value is True:
        return default_metrics()
    if value is False or value is None:
        return None
    if isinstance(value, Metrics):
        return value
    raise ConfigError(f"metrics must be True, False or a floodwall Metrics, not {value!r}")


def observe(
    limiter: Limiter,
    *,
    on_allow: Hook | None = None,
    on_block: Hook | None = None,
    events: Events | None = None,
    metrics: bool | Metrics = False,
) -> None:
    """Set up the observers of ``limiter`` (see the module docstring)."""
    from floodwall.hooks import Observer
    from floodwall.observe.events import Events

    name = limiter.name
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name must be a non-empty str, got {name!r}")
    if events is not None and not isinstance(events, Events):
        raise ConfigError(
            f"events must be a floodwall.observe.events.Events, not {type(events).__name__}"
        )
    m = _metrics(metrics)
    latency = m.latency_recorder() if m is not None else None
    units = m is not None and m.units
    key_label = m.key_label if m is not None else None
    observer = None
    if (on_allow is not None or on_block is not None or events is not None or units or latency
            or key_label is not None):
        observer = Observer(
            limiter.backend,
            name,
            on_allow=on_allow,
            on_block=on_block,
            events=events,
            units=units,
            latency=latency,
            key_label=key_label,
        )
        limiter.__dict__.update(
            check=observer.check,
            allow=observer.allow,
            acheck=observer.acheck,
            aallow=observer.aallow,
        )
    limiter.observer = observer
    if m is not None:
        m.watch(limiter, name, observer, latency)
