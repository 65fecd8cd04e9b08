"""OpenTelemetry: the same counters, read by the SDK's in-memory reader;
and importing floodwall (or using Prometheus metrics) never imports it."""

from __future__ import annotations

import subprocess
import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import floodwall
from floodwall.observe.metrics import Metrics
from floodwall.observe.otel import instrument


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple, float]:
    out = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for p in metric.data.data_points:
                        out[tuple(sorted(p.attributes.items()))] = p.value
    return out


def test_otel_reads_the_same_counters() -> None:
    m = Metrics()
    lim = floodwall.Limiter("2/minute", name="otel", metrics=m, max_keys=64)
    for _ in range(5):
        lim.check("k")
    reader = InMemoryMetricReader()
    instrument(m, MeterProvider(metric_readers=[reader]))
    got = points(reader, "floodwall.decisions")
    base = (("limit", "otel"), ("store", "memory"))
    assert got[tuple(sorted(base + (("outcome", "allowed"),)))] == 2
    assert got[tuple(sorted(base + (("outcome", "denied"),)))] == 3


def test_opentelemetry_is_imported_only_when_asked() -> None:
    code = ("import sys, floodwall\n"
            "from floodwall.observe.metrics import Metrics\n"
            "m = Metrics(); l = floodwall.Limiter('1/second', metrics=m); l.check('k')\n"
            "m.render()\n"
            "assert not any(n.startswith('opentelemetry') for n in sys.modules), 'otel'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
