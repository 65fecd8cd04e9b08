# Exactness under threads: N threads hammer one key and the number admitted
# equals the policy, exactly, on every native store and every algorithm.
from __future__ import annotations

import threading

import pytest

from floodwall import Limiter
from floodwall.algorithms import ALGORITHMS


def hammer(limiter: Limiter, threads: int, calls: int, key: str = "hot") -> int:
    admitted = [0] * threads
    barrier = threading.Barrier(threads)

    def run(i: int) -> None:
        barrier.wait()
        count = 0
        for _ in range(calls):
            count += limiter.allow(key)
        admitted[i] = count

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(admitted)


def test_eight_threads_one_key_1000_per_hour(store_url: str, clock) -> None:
    # a fake clock: no unit refills while a slower (network) store is hammered
    limiter = Limiter("1000/hour", store=store_url, clock=clock)
    assert hammer(limiter, threads=8, calls=500) == 1000


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_exact_under_threads(algorithm: str) -> None:
    limiter = Limiter("1000/hour", algorithm=algorithm)
    assert hammer(limiter, threads=8, calls=250) == 1000
