"""OpenTelemetry metrics through the same observer: ``instrument(metrics)``.

Registers observable instruments on an OpenTelemetry meter that read the
same counters and gauges as the Prometheus exposition (a
:class:`~floodwall.observe.metrics.Metrics`, host-wide under many
workers), when the SDK collects: ``floodwall.decisions`` (attributes
limit, store, outcome), ``floodwall.store_errors``, ``floodwall.units``,
``floodwall.hook_errors``, ``floodwall.events`` (counters) and the table
and breaker gauges. Nothing is added to a check. ``opentelemetry-api`` is
imported only here (the ``otel`` extra): a user who does not call
:func:`instrument` pays no dependency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from floodwall.errors import ConfigError
from floodwall.observe.metrics import Metrics, default_metrics

__all__ = ["CACHE_SECONDS", "instrument"]

#: One reading of the counters serves every instrument of one collection.
CACHE_SECONDS = 0.5

_COUNTERS = ("decisions", "store_errors", "units", "hook_errors", "events")
_GAUGES = ("table_keys", "table_capacity", "table_fill_ratio", "table_full_errors",
           "store_breaker_open")


class _Reading:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._at = -1e9
        self._value: tuple[Any, Any] = ({}, [])
        self._lock = threading.Lock()

    def get(self) -> tuple[Any, Any]:
        with self._lock:
            if time.monotonic() - self._at > CACHE_SECONDS:
                self._value = self.metrics.collect()
                self._at = time.monotonic()
            return self._value


def instrument(metrics: Metrics | None = None, meter_provider: Any = None) -> Any:
    """Create floodwall's observable instruments on ``meter_provider``'s
    meter (default: the global provider); returns the meter."""
    try:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry.metrics import Observation
    except ImportError as exc:
        raise ConfigError(
            f"OpenTelemetry metrics need opentelemetry-api: pip install 'floodwall[otel]' ({exc})"
        ) from exc
    m = metrics or default_metrics()
    provider = meter_provider or otel_metrics.get_meter_provider()
    meter = provider.get_meter("floodwall")
    reading = _Reading(m)
    prefix = m.prefix

    def counter(name: str) -> Callable[[Any], Iterable[Any]]:
        def callback(_options: Any) -> Iterable[Any]:
            total, _gauges = reading.get()
            for (metric, labels), value in total.items():
                if metric == name + "_total":
                    yield Observation(value, dict(labels))

        return callback

    def gauge(name: str) -> Callable[[Any], Iterable[Any]]:
        def callback(_options: Any) -> Iterable[Any]:
            _total, gauges = reading.get()
            for gname, _help, labels, value in gauges:
                if gname == name:
                    yield Observation(value, dict(labels))

        return callback

    for name in _COUNTERS:
        meter.create_observable_counter(f"{prefix}.{name}", callbacks=[counter(name)])
    for name in _GAUGES:
        meter.create_observable_gauge(f"{prefix}.{name}", callbacks=[gauge(name)])
    return meter
