"""compute.WorkerPool on Ray tasks: at most `workers` at once, processes reused by the next pool, and a batch
whose process keeps dying split until the item that kills it is reported lost, every other item once."""

from __future__ import annotations

import os
import sys
import time

import pytest

from lamops import compute

POISON = 5


@pytest.fixture(autouse=True)
def by_value():
    """Ray's workers cannot import this test module: its classes travel by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class Worker:
    """Returns (pid, item, when it started, when it ended); exits its process on the poison item."""

    def __init__(self, poison: int | None):
        self.poison = poison

    def run(self, batch: list[int]) -> list[tuple[int, int, float, float]]:
        out = []
        for item in batch:
            if item == self.poison:
                os._exit(1)  # as the OOM killer would
            t0 = time.time()
            while time.time() - t0 < 0.05:
                pass
            out.append((os.getpid(), item, t0, time.time()))
        return out


def run_pool(workers: int, items: list[int], poison: int | None = None):
    results, lost = {}, []

    def on_result(first, batch, result):
        assert [r[1] for r in result] == batch
        for r in result:
            assert r[1] not in results, f"item {r[1]} done twice"
            results[r[1]] = r

    with compute.WorkerPool(Worker, (poison,), workers) as pool:
        pool.map("run", items, batch_size=4, on_result=on_result, on_lost=lambda i, x, _: lost.append((i, x)))
    return results, lost


def overlapping(results) -> int:
    """The most items that ran at the same moment."""
    events = sorted((t, d) for _, _, t0, t1 in results.values() for t, d in ((t0, 1), (t1, -1)))
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def test_one_worker_runs_one_batch_at_a_time_and_pools_reuse_processes(ray_local):
    # Ray has 2 CPUs: a pool of 1 must still run one batch at a time (its slot's tasks wait on each other).
    one, _ = run_pool(1, list(range(16)))
    assert sorted(one) == list(range(16)) and overlapping(one) == 1
    two, _ = run_pool(2, list(range(16)))
    assert sorted(two) == list(range(16))
    # Ray keeps its worker processes: the next pool starts on those of the last ones, nothing spawned.
    again, _ = run_pool(2, list(range(16)))
    assert {r[0] for r in again.values()} <= {r[0] for r in two.values()} | {r[0] for r in one.values()}


def test_the_item_that_kills_its_worker_is_lost_and_nothing_else(ray_local, monkeypatch):
    monkeypatch.setattr(compute, "_RETRIES", 0)  # one death per attempt is enough to see the path
    items = list(range(12))
    results, lost = run_pool(2, items, poison=POISON)
    assert lost == [(POISON, POISON)]
    assert sorted(results) == [i for i in items if i != POISON]
