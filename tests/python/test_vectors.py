# test_vectors.py - replays the shared vectors (tests/vectors/<algorithm>.json)
# through floodwall.Limiter on every store of the store_url fixture, with a
# fake clock, and compares every field of every Decision. A store that
# disagrees with a vector is wrong (docs/algorithms.md).
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import floodwall
from floodwall.errors import CostError

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ALGORITHMS = (
    "gcra",
    "token_bucket",
    "leaky_bucket",
    "leaky_bucket_shaping",
    "fixed_window",
    "sliding_window",
    "sliding_log",
)
FIELDS = ("allowed", "limit", "remaining", "retry_after_ns", "reset_after_ns", "delay_ns")


def load_cases() -> list[Any]:
    params = []
    for algorithm in ALGORITHMS:
        data = json.loads((VECTORS / f"{algorithm}.json").read_text())
        assert data["algorithm"] == algorithm
        for case in data["cases"]:
            params.append(pytest.param(algorithm, case, id=f"{algorithm}/{case['name']}"))
    return params


class Clock:
    """The fake clock handed to the Limiter: the current vector time, in ns."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.mark.parametrize(("algorithm", "case"), load_cases())
def test_vector_case(store_url: str, algorithm: str, case: dict[str, Any]) -> None:
    clock = Clock()
    limiter = floodwall.Limiter(
        floodwall.Rate.from_ns(case["rate"], case["period_ns"], case["burst"]),
        algorithm=algorithm,
        store=store_url,
        namespace=f"vectors-{algorithm}-{case['name']}",
        clock=clock,
    )
    for key in {step["key"] for step in case["steps"]}:
        limiter.reset(key)
    for index, step in enumerate(case["steps"]):
        where = f"{algorithm}/{case['name']} step {index} {step}"
        clock.now = step["t"]
        if step.get("error") == "cost":
            with pytest.raises(CostError):
                limiter.check(step["key"], step["cost"])
            continue
        d = limiter.check(step["key"], step["cost"])
        got = {field: getattr(d, field) for field in FIELDS}
        want = {field: step[field] for field in FIELDS}
        assert got == want, where
