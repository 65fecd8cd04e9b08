"""Observers of decisions: hooks, decision events and metrics (coming).

Nothing observes decisions yet, apart from each store's ``on_error`` callback
and its ``stats()`` counters. What will live here:

- a hook interface called after each decision (allowed or denied, the key's
  limit name, the store, whether a failure policy answered), registered once
  and called by every store and integration the same way, so a hook never has
  to be written per framework;
- decision events (the stream a live monitor and ``floodwall top`` read);
- metrics built on those hooks (Prometheus counters of decisions, denials,
  fallbacks and store errors; the store's fill from ``stats()``), with the
  exporter's library imported lazily, as an extra.

A hook must not change a decision, and a slow or failing hook must not delay
or fail the request it observes.
"""

from __future__ import annotations
