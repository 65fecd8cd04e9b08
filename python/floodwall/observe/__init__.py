"""Observing decisions from outside a limiter: metrics, decision events, exporters.

- :mod:`.metrics`: :class:`~floodwall.observe.metrics.Metrics`, the
  registry of observed limiters, read at scrape time (no cost per check),
  its Prometheus collector, and :func:`~floodwall.observe.metrics.render`;
- :mod:`.snapshots`: the host-wide counters of many worker processes (one
  small file per process in a directory owned by the user);
- :mod:`.events`: the sampled decision stream and its sinks (a Redis stream,
  a rotating JSON-lines file, a callable), written by a background thread;
- :mod:`.exporters`: ``/metrics`` for ASGI, Flask and Django, and the
  standalone server of ``floodwall metrics``.

Hooks are in :mod:`floodwall.hooks`. ``prometheus_client``, ``redis`` and
every framework are imported only when used.
"""

from __future__ import annotations
