"""Metrics of limiters, read at scrape time: no cost on a check.

:class:`Metrics` keeps (weak) references to the limiters it watches
(``Limiter(..., metrics=True)`` watches with :func:`default_metrics`) and
reads, when scraped, the counters every store already keeps: decisions
allowed and denied, fallbacks and store errors, the table's size, fill and
"table full" errors, the breakers of a network store. Units (cost) and a
latency histogram need to see each check: ``Metrics(units=True)`` or
``latency=True`` make the limiters bind a :class:`floodwall.hooks.Observer`
(a Python frame per check).

Many workers, one host: the counters of limiters on a ``shm://`` or
``file://`` table (or of every limiter, when ``dir=`` or
``FLOODWALL_METRICS_DIR`` names a directory) are written by each process to
a file of its own beside the table (``/dev/shm/NAME.metrics/``,
``/path.metrics/``; :mod:`.snapshots`), at most every ``interval`` seconds
and when scraped, and summed by whichever process serves ``/metrics``: the
totals are the host's. Table gauges are read from the shared table itself.

Labels are bounded: ``limit`` (the limiter's ``name``, else its namespace),
``store`` (its kind), ``outcome``, ``table`` (a shared table's URL). Never a
client key. The exposition is ``prometheus_client``'s (the ``prometheus``
extra), imported when rendering.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError
from floodwall.observe.snapshots import Series, SnapshotDir, dir_beside, series_key

if TYPE_CHECKING:
    from floodwall.hooks import Observer
    from floodwall.limiter import Limiter

__all__ = [
    "DEFAULT_INTERVAL",
    "LATENCY_BUCKETS",
    "METRICS_DIR_ENV",
    "Metrics",
    "default_metrics",
    "render",
]

#: Seconds between two writes of a process's counters (only when they changed).
DEFAULT_INTERVAL = 0.05
#: The environment variable naming a directory for every limiter's counters.
METRICS_DIR_ENV = "FLOODWALL_METRICS_DIR"
#: Upper bounds (seconds) of the check latency histogram.
LATENCY_BUCKETS = (0.000_001, 0.000_005, 0.000_025, 0.000_1, 0.000_5, 0.001, 0.005,
                   0.025, 0.1, 0.5, 2.5)

_LOCAL = ""  # the directory key of process-local series


class _Latency:
    """A histogram of check latencies (one process)."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def __call__(self, seconds: float) -> None:
        i = 0
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                break
            i += 1
        self.counts[i] += 1
        self.sum += seconds


class _Entry:
    __slots__ = ("baseline", "dir", "epoch", "kind", "latency", "name", "observer", "ref",
                 "table")

    def __init__(self, limiter: Limiter, name: str, directory: str, epoch: int,
                 observer: Observer | None, latency: _Latency | None) -> None:
        self.ref = weakref.ref(limiter)
        self.name = name
        backend = limiter.backend
        self.kind = str(getattr(backend.capabilities, "kind", "unknown"))
        self.table = getattr(backend, "table", None)
        self.dir = directory
        self.epoch = epoch
        self.observer = observer
        self.latency = latency
        self.baseline: Series = {}


def decision_counts(backend: Any) -> tuple[int, int, int, int]:
    """(allowed, denied, fallbacks, errors) of one backend, each decision in
    exactly one of the first three, read without asking the store."""
    failure = getattr(backend, "failure", None)
    fallbacks = int(getattr(failure, "fallbacks", 0))
    errors = int(getattr(failure, "errors", 0))
    policy = getattr(backend, "policy", None)
    if policy is not None:  # native: the C counters count a closed fallback as denied
        allowed, denied = policy.counts()
        if getattr(failure, "mode", "") == "closed":
            denied = max(0, denied - fallbacks)
        return int(allowed), int(denied), fallbacks, errors
    allowed = int(getattr(backend, "_allowed", 0))
    denied = int(getattr(backend, "_denied", 0))
    return allowed, denied, fallbacks, errors


class Metrics:
    """A registry of watched limiters and their exposition.

    ``dir``: a directory where every process writes its counters (default:
    ``FLOODWALL_METRICS_DIR``, else beside each shared table, else none:
    this process only). ``prefix``: metric name prefix. ``units``: count
    units (cost) allowed and denied; ``latency``: a check latency histogram
    (both bind an observer per check). ``interval``: seconds between two
    writes of this process's counters. ``key_label``: a redacting function
    ``key -> str`` (a tenant, a tier: never the key itself); decisions are
    then also counted per label (``key_decisions_total``, at most
    :data:`floodwall.hooks.KEY_LABELS_MAX` labels per limiter, then
    ``"other"``; a Python call per check).
    """

    def __init__(
        self,
        *,
        dir: str | os.PathLike[str] | None = None,
        prefix: str = "floodwall",
        units: bool = False,
        latency: bool = False,
        interval: float = DEFAULT_INTERVAL,
        key_label: Callable[[str | bytes], str] | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix.replace("_", "a").isalnum():
            raise ConfigError(f"prefix must be letters, digits and '_', got {prefix!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
            0 < interval <= 60
        ):
            raise ConfigError(f"interval must be seconds in (0, 60], got {interval!r}")
        env = os.environ.get(METRICS_DIR_ENV)
        chosen = dir if dir is not None else env
        self.dir: str | None = os.path.abspath(os.fspath(chosen)) if chosen else None
        self.prefix = prefix
        self.units = bool(units)
        self.latency = bool(latency)
        if key_label is not None and not callable(key_label):
            raise ConfigError(f"key_label must be a callable taking the key, not {key_label!r}")
        self.key_label = key_label
        self.interval = float(interval)
        self._entries: list[_Entry] = []
        self._dirs: dict[str, SnapshotDir] = {}
        self._read_only: list[tuple[str, int]] = []
        #: the last counts of limiters that were garbage-collected, per
        #: (directory, epoch): a counter never steps back
        self._retired: dict[tuple[str, int], Series] = {}
        self._written: dict[str, Series] = {}
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._wake = threading.Event()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))
        atexit.register(_at_exit, ref)  # the last decisions of a worker that stops

    # -- watching

    @property
    def per_check(self) -> bool:
        """Whether watched limiters must bind an observer per check."""
        return self.units or self.latency or self.key_label is not None

    def latency_recorder(self) -> _Latency | None:
        return _Latency() if self.latency else None

    def watch(self, limiter: Limiter, name: str, observer: Observer | None = None,
              latency: Any = None, *, counts: bool = True) -> None:
        """Export ``limiter``'s counters under ``limit=name`` (with
        ``counts=False``, only the gauges of its store, and the counters
        other processes wrote for that store: what ``floodwall metrics``
        serves)."""
        directory, epoch = self._directory_for(limiter)
        entry = _Entry(limiter, name, directory, epoch, observer, latency)
        with self._lock:
            if not counts:
                entry.dir = "-"
                if directory != _LOCAL:
                    self._read_only.append((directory, epoch))
                self._entries.append(entry)
                return
            self._entries.append(entry)
            if directory != _LOCAL:
                self._start()
        weakref.finalize(limiter, _retire, weakref.ref(self), entry, limiter.backend)

    def _retire(self, entry: _Entry, backend: Any) -> None:
        """Keep the counts of a limiter that is going away."""
        series = self._series(entry, backend)
        with self._lock:
            kept = self._retired.setdefault((entry.dir, entry.epoch), {})
            for key, value in series.items():
                kept[key] = kept.get(key, 0.0) + value
            self._entries = [e for e in self._entries if e is not entry]

    def _directory_for(self, limiter: Limiter) -> tuple[str, int]:
        if self.dir is not None:
            path = self.dir
            epoch = 0
        else:
            table = getattr(limiter.backend, "table", None)
            if table is None or not limiter.backend.capabilities.shared:
                return _LOCAL, 0
            from floodwall import _native

            info = _native.table_info(table)
            text = str(info["store"])
            epoch = int(info.get("created_ns", 0))
            if text.startswith("shm://"):
                path = dir_beside(_native.shm_path(text[len("shm://"):]))
            elif text.startswith("file://"):
                path = dir_beside(text[len("file://"):])
            else:
                return _LOCAL, 0
        if path not in self._dirs:
            self._dirs[path] = SnapshotDir(path)
        return path, epoch

    # -- reading

    def _live(self) -> list[_Entry]:
        with self._lock:
            self._entries = [e for e in self._entries if e.ref() is not None]
            return list(self._entries)

    def _series(self, entry: _Entry, backend: Any) -> Series:
        """One watched limiter's counters, less what it had counted before
        this process was forked."""
        out: Series = {}
        allowed, denied, fallbacks, errors = decision_counts(backend)
        base = {"limit": entry.name, "store": entry.kind}
        for outcome, n in (("allowed", allowed), ("denied", denied), ("fallback", fallbacks)):
            out[series_key("decisions_total", outcome=outcome, **base)] = n
        out[series_key("store_errors_total", **base)] = errors
        obs = entry.observer
        if obs is not None:
            if obs.units is not None:
                out[series_key("units_total", outcome="allowed", **base)] = obs.units.allowed
                out[series_key("units_total", outcome="denied", **base)] = obs.units.denied
            out[series_key("hook_errors_total", limit=entry.name)] = obs.hook_errors
            for (label, outcome), n in list(obs.key_counts.items()):
                out[series_key("key_decisions_total", key=label, outcome=outcome,
                               **base)] = n
        lat = entry.latency
        if lat is not None:
            cumulative = 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), lat.counts):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out[series_key("check_seconds_bucket", le=le, **base)] = cumulative
            out[series_key("check_seconds_sum", **base)] = lat.sum
            out[series_key("check_seconds_count", **base)] = cumulative
        for key, value in entry.baseline.items():
            if key in out:
                out[key] = max(0.0, out[key] - value)
        return out

    def _by_dir(self) -> dict[str, dict[int, Series]]:
        """This process's series, per directory and table epoch."""
        groups: dict[str, dict[int, Series]] = {}
        events_seen: set[int] = set()
        for entry in self._live():
            limiter = entry.ref()
            if entry.dir == "-" or limiter is None:
                continue
            series = groups.setdefault(entry.dir, {}).setdefault(entry.epoch, {})
            for key, value in self._series(entry, limiter.backend).items():
                series[key] = series.get(key, 0.0) + value
            ev = entry.observer.events if entry.observer is not None else None
            if ev is not None and id(ev) not in events_seen:  # one Events may serve many
                events_seen.add(id(ev))
                for outcome, n in (("sent", ev.sent), ("dropped", ev.dropped),
                                   ("failed", ev.failed)):
                    key = series_key("events_total", outcome=outcome)
                    series[key] = series.get(key, 0.0) + n
        with self._lock:
            retired = [(k, dict(v)) for k, v in self._retired.items()]
        for (directory, epoch), kept in retired:
            series = groups.setdefault(directory, {}).setdefault(epoch, {})
            for key, value in kept.items():
                series[key] = series.get(key, 0.0) + value
        return groups

    def flush(self) -> None:
        """Write this process's counters to their directories now (only
        those that changed since the last write)."""
        with self._lock:
            for directory, epochs in self._by_dir().items():
                if directory == _LOCAL:
                    continue
                for epoch, series in epochs.items():
                    slot = f"{directory}#{epoch}"
                    if self._written.get(slot) == series and self._dirs[directory].written():
                        continue
                    self._dirs[directory].write(series, epoch)
                    self._written[slot] = series

    def collect(self) -> tuple[Series, list[tuple[str, str, dict[str, str], float]]]:
        """(counters summed over every process of the host, live gauges).
        A gauge is (name, help, labels, value)."""
        self.flush()
        total: Series = {}
        groups = self._by_dir()
        for series in groups.get(_LOCAL, {}).values():
            for key, value in series.items():
                total[key] = total.get(key, 0.0) + value
        wanted = {(d, e) for d, epochs in groups.items() if d != _LOCAL for e in epochs}
        wanted.update(self._read_only)
        for directory, epoch in sorted(wanted):
            for key, value in self._dirs[directory].read(epoch or None).items():
                total[key] = total.get(key, 0.0) + value
        return total, self._gauges()

    def _gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        out: list[tuple[str, str, dict[str, str], float]] = []
        seen: set[int] = set()
        breakers: set[int] = set()
        for entry in self._live():
            limiter = entry.ref()
            if limiter is None:
                continue
            backend = limiter.backend
            table = entry.table
            if table is not None and id(table) not in seen:
                seen.add(id(table))
                from floodwall import _native

                info = _native.table_info(table)
                policy: Any = backend.policy  # type: ignore[attr-defined]
                stats = table.stats(policy.now_ns())
                labels = {"store": entry.kind, "table": _table_label(str(info["store"]))}
                keys, cap = stats["active_keys"], stats["max_keys"]
                out.append(("table_keys", "keys in use in the table", labels, keys))
                out.append(("table_capacity", "keys the table can hold", labels, cap))
                out.append(("table_fill_ratio", "keys in use / capacity", labels,
                            keys / cap if cap else 0.0))
                out.append(("table_full_errors", "checks refused because the table was "
                            "full, since it was created (host-wide)", labels,
                            stats["full_errors"]))
            conn = getattr(backend, "conn", None)
            if conn is not None and id(conn) not in breakers:
                breakers.add(id(conn))
                from floodwall.stores.breaker import OPEN

                opened = sum(1 for b in conn.breakers() if b.state == OPEN)
                out.append(("store_breaker_open", "open circuit breakers of this process "
                            "(1: the store is skipped)", {"store": entry.kind}, opened))
        return out

    # -- the writer thread

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="floodwall-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        while not wake.wait(self.interval):
            try:
                self.flush()
            except Exception:  # a vanished directory: retried next time
                pass

    def _forked(self) -> None:
        """In a child process: its counters start at zero (what the parent
        counted stays the parent's), and the writer thread is its own."""
        self._lock = threading.RLock()
        self._written = {}
        self._retired = {}  # the parent's
        for entry in self._entries:
            entry.baseline = {}
            limiter = entry.ref()
            if limiter is not None:
                entry.baseline = self._series(entry, limiter.backend)
        self._thread = None
        if any(e.dir != _LOCAL for e in self._entries):
            self._start()

    def close(self) -> None:
        """Write the counters one last time and stop the writer thread."""
        self._wake.set()
        try:
            self.flush()
        except Exception:
            pass

    # -- exposition

    def registry(self) -> Any:
        """A ``prometheus_client`` CollectorRegistry holding this registry's collector."""
        prometheus_client = _prometheus()
        registry = prometheus_client.CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return registry

    def render(self) -> bytes:
        """The Prometheus text exposition of every watched limiter."""
        prometheus_client = _prometheus()
        return bytes(prometheus_client.generate_latest(self.registry()))


_HELP = {
    "decisions_total": "checks decided, by outcome (fallback: the failure policy answered)",
    "units_total": "units (cost) of the checks, by outcome",
    "store_errors_total": "store failures seen by checks",
    "hook_errors_total": "hooks that raised (the decisions stood)",
    "key_decisions_total": "checks by the label your key_label function gives the key",
    "events_total": "decision events sent, dropped (queue full) or failed (sink error)",
    "check_seconds": "check latency",
}


class _Collector:
    """The prometheus_client collector of a :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        p = self.metrics.prefix + "_"
        total, gauges = self.metrics.collect()
        by_metric: dict[str, list[tuple[dict[str, str], float]]] = {}
        for (metric, labels), value in sorted(total.items()):
            by_metric.setdefault(metric, []).append((dict(labels), value))
        for metric, rows in by_metric.items():
            if not metric.endswith("_total"):
                continue
            base = metric[: -len("_total")]
            names = sorted({k for row_labels, _ in rows for k in row_labels})
            fam = CounterMetricFamily(p + base, _HELP.get(metric, metric), labels=names)
            for row_labels, row_value in rows:
                fam.add_metric([row_labels.get(n, "") for n in names], row_value)
            yield fam
        buckets = by_metric.get("check_seconds_bucket")
        if buckets:
            hist = HistogramMetricFamily(p + "check_seconds", _HELP["check_seconds"],
                                         labels=["limit", "store"])
            groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
            for blabels, bvalue in buckets:
                groups.setdefault((blabels["limit"], blabels["store"]), []).append(
                    (blabels["le"], bvalue))
            sums = {(lb["limit"], lb["store"]): v for lb, v in by_metric.get(
                "check_seconds_sum", [])}
            for (limit, store), brows in groups.items():
                brows.sort(key=lambda r: float(r[0]))
                hist.add_metric([limit, store], brows, sums.get((limit, store), 0.0))
            yield hist
        gfams: dict[str, Any] = {}
        for name, help_text, glabels, gvalue in gauges:
            gfam = gfams.get(name)
            if gfam is None:
                gfam = gfams[name] = GaugeMetricFamily(p + name, help_text,
                                                       labels=sorted(glabels))
            gfam.add_metric([glabels[k] for k in sorted(glabels)], gvalue)
        yield from gfams.values()


def _table_label(store_text: str) -> str:
    return store_text


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigError(
            f"metrics need prometheus_client: pip install 'floodwall[prometheus]' ({exc})"
        ) from exc
    return prometheus_client


def _retire(ref: weakref.ref[Metrics], entry: _Entry, backend: Any) -> None:
    metrics = ref()
    if metrics is not None:
        metrics._retire(entry, backend)


def _at_exit(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None and metrics._thread is not None:
        metrics.close()


def _after_fork(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics._forked()


_default: list[Metrics] = []
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process's registry: what ``metrics=True`` watches with and the
    framework routes serve."""
    with _default_lock:
        if not _default:
            _default.append(Metrics(**_configured()))
        return _default[0]


def _configured() -> dict[str, Any]:
    """The options of the active configuration's ``[metrics]`` section."""
    from floodwall.config.registry import active_config

    config = active_config()
    out: dict[str, Any] = {}
    for key in ("prefix", "dir", "units", "latency"):
        if config.is_set("metrics", key):
            out[key] = config.get("metrics", key)
    return out


def render(metrics: Metrics | None = None) -> bytes:
    """The exposition of ``metrics`` (default: :func:`default_metrics`)."""
    return (metrics or default_metrics()).render()
