# test_reference_model.py - property tests of the pure-Python reference model
# (tests/vectors/reference.py) and a check that the committed vector files are
# exactly what tests/vectors/generate.py produces.
#
# These need no build of floodwall: they check the model the vectors come
# from against the promises of docs/algorithms.md and DESIGN.md.
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))

import generate  # noqa: E402
import reference as ref  # noqa: E402

INT64_MAX = ref.INT64_MAX
SETTINGS = settings(max_examples=150, deadline=None)


# ---- strategies ------------------------------------------------------------


@st.composite
def quotas(draw: st.DrawFn, algorithms: tuple[str, ...] = ref.ALGORITHMS) -> ref.Quota:
    algorithm = draw(st.sampled_from(algorithms))
    rate = draw(st.integers(1, 12))
    period = draw(st.integers(rate, 5000))
    burst = draw(st.integers(0, 15))
    try:
        return ref.normalise(algorithm, rate, period, burst)
    except ref.QuotaError:
        assume(False)
        raise  # unreachable


@dataclass(frozen=True)
class Op:
    dt: int  # added to the clock (may be negative only where said)
    key: str
    cost: int


@st.composite
def walks(
    draw: st.DrawFn, q: ref.Quota, backwards: bool = False, max_ops: int = 40
) -> tuple[int, list[Op]]:
    span = 3 * max(q.window_ns, q.tau_ns)
    start = draw(st.sampled_from((0, 10**12, INT64_MAX - 4 * span * max_ops)))
    low = -span if backwards else 0
    dts = st.one_of(st.just(0), st.integers(0, q.interval_ns), st.integers(low, span))
    ops = draw(
        st.lists(
            st.builds(
                Op,
                dts,
                st.sampled_from("ab"),
                st.integers(0, q.burst),
            ),
            max_size=max_ops,
        )
    )
    return start, ops


@dataclass
class Event:
    t: int
    key: str
    cost: int
    before: ref.State
    after: ref.State
    decision: ref.Decision


def run(q: ref.Quota, start: int, ops: list[Op]) -> tuple[list[Event], dict[str, ref.State], int]:
    """Apply ops; return the events, the final states, and the final clock."""
    states: dict[str, ref.State] = {}
    events: list[Event] = []
    t = start
    for op in ops:
        t = min(max(0, t + op.dt), INT64_MAX)
        before = states.get(op.key, ref.fresh_state(q))
        after, d = ref.step(q, before, t, op.cost)
        states[op.key] = after
        events.append(Event(t, op.key, op.cost, before, after, d))
    return events, states, t


def quota_and_walk(
    algorithms: tuple[str, ...] = ref.ALGORITHMS, backwards: bool = False
) -> st.SearchStrategy[tuple[ref.Quota, int, list[Op]]]:
    return quotas(algorithms).flatmap(lambda q: walks(q, backwards).map(lambda w: (q, w[0], w[1])))


def admit(q: ref.Quota, state: ref.State, t: int, cost: int) -> bool | None:
    """Would `cost` be admitted at t? None when t is past the clock's range."""
    if not 0 <= t <= INT64_MAX:
        return None
    return ref.step(q, state, t, cost)[1].allowed


# ---- every algorithm -------------------------------------------------------


@SETTINGS
@given(quota_and_walk(backwards=True))
def test_decision_fields_are_sane(case: tuple[ref.Quota, int, list[Op]]) -> None:
    q, start, ops = case
    for e in run(q, start, ops)[0]:
        d = e.decision
        assert d.limit == q.burst
        assert 0 <= d.remaining <= q.burst
        assert d.reset_after_ns >= 0
        assert (d.retry_after_ns == 0) == d.allowed
        assert d.retry_after_ns >= 0
        if q.algorithm != "leaky_bucket_shaping" or not d.allowed:
            assert d.delay_ns == 0


@SETTINGS
@given(quota_and_walk(backwards=True))
def test_denials_and_peeks_leave_state_unchanged(
    case: tuple[ref.Quota, int, list[Op]],
) -> None:
    q, start, ops = case
    for e in run(q, start, ops)[0]:
        if e.cost == 0 or not e.decision.allowed:
            assert e.after == e.before


@SETTINGS
@given(quota_and_walk(backwards=True), st.integers(1, 100))
def test_cost_above_capacity_is_an_error(case: tuple[ref.Quota, int, list[Op]], extra: int) -> None:
    q, start, ops = case
    _, states, t = run(q, start, ops)
    for state in states.values():
        with pytest.raises(ref.CostError):
            ref.step(q, state, t, q.burst + extra)


@SETTINGS
@given(quota_and_walk(backwards=True))
def test_peek_answers_for_one_unit(case: tuple[ref.Quota, int, list[Op]]) -> None:
    q, start, ops = case
    for e in run(q, start, ops)[0]:
        one = ref.step(q, e.before, e.t, 1)[1]
        peek = ref.peek(q, e.before, e.t)
        assert peek.allowed == one.allowed
        assert peek.retry_after_ns == one.retry_after_ns
        assert peek.delay_ns == one.delay_ns
        assert peek.remaining == one.remaining + (1 if one.allowed else 0)


@SETTINGS
@given(quota_and_walk(backwards=True), st.integers(1, 15))
def test_waiting_exactly_retry_after_is_admitted(
    case: tuple[ref.Quota, int, list[Op]], cost: int
) -> None:
    q, start, ops = case
    assume(cost <= q.burst)
    _, states, t = run(q, start, ops)
    for state in states.values():
        d = ref.step(q, state, t, cost)[1]
        if d.allowed:
            continue
        r = d.retry_after_ns
        assert r > 0
        assert admit(q, state, t + r, cost) in (True, None)
        assert admit(q, state, t + r - 1, cost) is False


@SETTINGS
@given(quota_and_walk())
def test_remaining_is_exact(case: tuple[ref.Quota, int, list[Op]]) -> None:
    # With a clock that never steps back, `remaining` units pass right now
    # and one more does not.
    q, start, ops = case
    for e in run(q, start, ops)[0]:
        r = e.decision.remaining
        if r > 0:
            assert admit(q, e.after, e.t, r) is True
        if r + 1 <= q.burst:
            assert admit(q, e.after, e.t, r + 1) is False


@SETTINGS
@given(quota_and_walk())
def test_reset_after_brings_back_full_capacity(
    case: tuple[ref.Quota, int, list[Op]],
) -> None:
    q, start, ops = case
    for e in run(q, start, ops)[0]:
        t = e.t + e.decision.reset_after_ns
        assert e.decision.reset_after_ns == max(0, ref.fresh_at(q, e.after) - e.t)
        if t <= INT64_MAX:
            full = ref.peek(q, e.after, t)
            assert full.remaining == q.burst
            assert full.reset_after_ns == 0


@SETTINGS
@given(quota_and_walk(backwards=True), st.integers(0, 10**9))
def test_a_clock_stepping_back_never_refills(
    case: tuple[ref.Quota, int, list[Op]], back: int
) -> None:
    q, start, ops = case
    events, states, _ = run(q, start, ops)
    latest = max((e.t for e in events), default=start)
    earlier = max(0, latest - back)
    for state in states.values():
        now = ref.peek(q, state, latest)
        then = ref.peek(q, state, earlier)
        assert then.remaining <= now.remaining
        for cost in range(1, q.burst + 1):
            if admit(q, state, earlier, cost):
                assert admit(q, state, latest, cost)


def admitted_by_key(events: list[Event]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for e in events:
        if e.decision.allowed and e.cost > 0:
            out.setdefault(e.key, []).append((e.t, e.cost))
    return out


# ---- per algorithm ---------------------------------------------------------


@SETTINGS
@given(quota_and_walk(ref.GCRA_FAMILY))
def test_gcra_never_exceeds_burst_plus_elapsed(
    case: tuple[ref.Quota, int, list[Op]],
) -> None:
    q, start, ops = case
    for admitted in admitted_by_key(run(q, start, ops)[0]).values():
        for i, (ti, _) in enumerate(admitted):
            units = 0
            for tj, n in admitted[i:]:
                units += n
                assert units <= q.burst + (tj - ti) // q.interval_ns


@SETTINGS
@given(quota_and_walk(("leaky_bucket_shaping",)))
def test_shaping_spaces_departures_by_the_interval(
    case: tuple[ref.Quota, int, list[Op]],
) -> None:
    q, start, ops = case
    last: dict[str, tuple[int, int]] = {}  # key -> (departure, cost)
    for e in run(q, start, ops)[0]:
        if not e.decision.allowed or e.cost == 0:
            continue
        depart = e.t + e.decision.delay_ns
        assert e.decision.delay_ns <= q.tau_ns
        if e.key in last:
            prev, n = last[e.key]
            assert depart >= prev + n * q.interval_ns
        last[e.key] = (depart, e.cost)


@SETTINGS
@given(quota_and_walk(("fixed_window", "sliding_window")))
def test_windowed_never_exceed_burst_per_window(
    case: tuple[ref.Quota, int, list[Op]],
) -> None:
    q, start, ops = case
    for admitted in admitted_by_key(run(q, start, ops)[0]).values():
        per_window: dict[int, int] = {}
        for t, n in admitted:
            k = t // q.window_ns
            per_window[k] = per_window.get(k, 0) + n
            assert per_window[k] <= q.burst


@SETTINGS
@given(quota_and_walk(("sliding_log",)))
def test_sliding_log_never_exceeds_burst_in_any_window(
    case: tuple[ref.Quota, int, list[Op]],
) -> None:
    q, start, ops = case
    for admitted in admitted_by_key(run(q, start, ops)[0]).values():
        for tj, _ in admitted:
            inside = sum(n for t, n in admitted if tj - q.window_ns < t <= tj)
            assert inside <= q.burst


@SETTINGS
@given(quota_and_walk(("sliding_log",)))
def test_sliding_log_fills_up_to_burst(case: tuple[ref.Quota, int, list[Op]]) -> None:
    # Exactness: a request is admitted iff the window ending now has room.
    q, start, ops = case
    admitted: dict[str, list[tuple[int, int]]] = {}
    for e in run(q, start, ops)[0]:
        if e.cost == 0:
            continue
        log = admitted.setdefault(e.key, [])
        used = sum(n for t, n in log if e.t - q.window_ns < t <= e.t)
        assert e.decision.allowed == (used + e.cost <= q.burst)
        if e.decision.allowed:
            log.append((e.t, e.cost))


@SETTINGS
@given(quota_and_walk(("fixed_window", "sliding_window")))
def test_windowed_state_is_packed_and_fits(case: tuple[ref.Quota, int, list[Op]]) -> None:
    q, start, ops = case
    b1 = q.burst + 1
    for e in run(q, start, ops)[0]:
        assert isinstance(e.after, int)
        assert 0 <= e.after <= ref.U64_MAX
        if e.decision.allowed and e.cost > 0:
            k = e.t // q.window_ns
            if q.algorithm == "fixed_window":
                assert e.after // b1 == k
            else:
                assert e.after // (b1 * b1) == k


# ---- quota normalisation ---------------------------------------------------

int64s = st.integers(-(2**63), INT64_MAX)
positive = st.one_of(st.integers(1, 10**6), st.integers(1, INT64_MAX))


@SETTINGS
@given(
    st.sampled_from(ref.ALGORITHMS),
    positive | int64s,
    positive | int64s,
    st.integers(0, 10**6) | int64s,
)
def test_normalise_derives_the_spec_values(
    algorithm: str, rate: int, period: int, burst: int
) -> None:
    try:
        q = ref.normalise(algorithm, rate, period, burst)
    except ref.QuotaError as e:
        invalid = rate < 1 or period < 1 or burst < 0 or rate > period
        assert e.code == ("einval" if invalid else "erange")
        return
    b = burst or rate
    assert q.burst == b
    assert (q.interval_ns - 1) * rate < period <= q.interval_ns * rate
    assert q.tau_ns == q.interval_ns * b <= 2**62
    assert (q.window_ns - 1) * rate < period * b <= q.window_ns * rate
    assert q.window_ns <= q.tau_ns
    if b == rate:
        assert q.window_ns == period


def test_normalise_rejects_unknown_algorithm() -> None:
    with pytest.raises(ref.QuotaError) as info:
        ref.normalise("bogus", 1, 1, 0)
    assert info.value.code == "einval"


# ---- the committed vectors -------------------------------------------------


def test_vectors_regenerate_byte_for_byte() -> None:
    rendered = generate.render_all()
    on_disk = sorted(p.name for p in VECTORS.glob("*.json"))
    assert on_disk == sorted(rendered)
    for name, text in rendered.items():
        assert (VECTORS / name).read_bytes() == text.encode(), (
            f"{name} is stale: run python tests/vectors/generate.py"
        )
