"""Where work runs: in-process, or on Ray (a local Ray or the cluster in $RAY_ADDRESS).

Ray start-up (`ensure_ray`), the batch mapper over Ray Data (`map_batches`) and the actor pool
(`WorkerPool`). The per-record functions are the same either way; `workers` only picks the executor.
The bottom layer: it imports nothing of lamops."""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

_RETRIES = 2  # re-runs of a batch whose actor died (it is restarted each time)
# The error of an item whose worker kept dying (out of memory, say): callers run it again on resume.
LOST = "the worker process died while running the task"


class RaySettings(Protocol):
    """What ensure_ray reads of a settings object (lamops.config.RayConfig)."""

    address: str | None
    num_cpus: int | None


def ensure_ray(cfg: RaySettings | None = None) -> None:
    """Start (or connect to) Ray once per process: params' address, else $RAY_ADDRESS, else local."""
    import ray

    if ray.is_initialized():
        return
    address = (cfg.address if cfg else None) or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=cfg.num_cpus if cfg else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def map_batches(
    fn: Callable[[list[Any]], list[Any]],
    items: list[Any],
    *,
    workers: int,
    ray_cfg: RaySettings | None = None,
    batch_size: int = 256,
) -> list[Any]:
    """`fn` applied to consecutive batches of `items`, results concatenated in order.

    workers 0 runs in-process; otherwise the batches go through Ray Data (`workers` concurrent tasks), so a
    cluster spreads them over its nodes. `fn` must be a module-level function of picklable records."""
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if workers == 0 or len(batches) <= 1:
        return [out for batch in batches for out in fn(batch)]
    import ray.data

    ensure_ray(ray_cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # One row per batch, pickled, so that Ray Data moves bytes and never guesses an Arrow schema.
    rows = [{"index": i, "batch": pickle.dumps(batch)} for i, batch in enumerate(batches)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _apply,
        fn_kwargs={"fn": fn},
        batch_size=1,
        batch_format="pandas",
        compute=ray.data.TaskPoolStrategy(size=workers),
        num_cpus=1,
    )
    results: dict[int, list[Any]] = {}
    for row in dataset.iter_rows():
        results[int(row["index"])] = pickle.loads(row["batch"])
    return [out for i in range(len(batches)) for out in results[i]]


def _apply(frame, fn: Callable[[list[Any]], list[Any]]):
    """Ray Data map function: unpickle each batch, apply `fn`, pickle the result."""
    frame = frame.copy()
    frame["batch"] = [pickle.dumps(fn(pickle.loads(b))) for b in frame["batch"]]
    return frame


# ---- batches over actors -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Put:
    """A large worker argument, put in the object store once and fetched by each actor."""

    ref: Any


class _Host:
    """The Ray actor around a worker, which it builds on its first call (and again after a restart).

    The worker's arguments come with every call rather than to the constructor: Ray warns (at error level)
    that a restart may fail whenever a constructor receives an object ref, and the refs here live as long as
    the pool that holds them."""

    def __init__(self, worker_cls: type):
        self.worker_cls = worker_cls
        self.worker = None

    def ready(self, args: list[Any]) -> None:
        if self.worker is None:
            import ray

            self.worker = self.worker_cls(*(ray.get(a.ref) if isinstance(a, _Put) else a for a in args))

    def call(self, args: list[Any], method: str, payload: Any) -> Any:
        self.ready(args)
        return getattr(self.worker, method)(payload)


class WorkerPool:
    """Workers that take batches: one in-process object (workers 0) or Ray actors, one CPU each.

    Actors start when the pool is made (asynchronously: the caller can prepare its work meanwhile) and are
    killed when it closes. A killed actor is restarted and its batches re-run (`max_restarts`,
    `max_task_retries`); a batch whose worker keeps dying is split into single items, and an item that
    still kills its worker is reported to `on_lost`."""

    DEPTH = 2  # batches queued per actor, so an actor never waits for the driver between two

    def __init__(self, worker_cls: type, worker_args: tuple, workers: int):
        self.workers = workers
        self.actors: list[Any] = []
        self._args: list[Any] = []
        if workers == 0:
            self.local = worker_cls(*worker_args)
            return
        import ray

        ensure_ray()
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise RuntimeError("the Ray cluster has no CPU to place a worker on; start it with num_cpus >= 1")
        if workers > cpus:
            log.warning("%d workers asked for, but Ray has %d CPUs: using %d", workers, cpus, cpus)
            self.workers = cpus
        # Dicts (the template library) go to the object store once, not with every call.
        self._args = [_Put(ray.put(a)) if isinstance(a, dict) else a for a in worker_args]
        remote = ray.remote(_Host).options(num_cpus=1, max_restarts=-1, max_task_retries=_RETRIES)
        self.actors = [remote.remote(worker_cls) for _ in range(self.workers)]
        for actor in self.actors:
            actor.ready.remote(self._args)  # build the workers now, while the caller prepares the work

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.actors:
            import ray

            for actor in self.actors:
                ray.kill(actor)
        self.actors, self._args = [], []

    def map(
        self,
        method: str,
        items: Sequence[Any],
        *,
        batch_size: int,
        on_result: Callable[[int, list[Any], Any], None],
        on_lost: Callable[[int, Any, str], None],
        load: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        """Call `worker.<method>(load(batch))` on consecutive batches of `items`; each result goes to
        `on_result(index of the batch's first item, batch, result)` in this process as it arrives.

        In-process the batches run in order. On Ray, batches shrink towards the end (guided self-scheduling:
        at most 1/(2 x workers) of what is left) so that no actor is left with a long tail."""
        load = load or (lambda batch: batch)
        if not self.actors:
            for start in range(0, len(items), batch_size):
                batch = list(items[start : start + batch_size])
                on_result(start, batch, getattr(self.local, method)(load(batch)))
            return

        import ray
        from ray.exceptions import ObjectLostError, OutOfMemoryError, RayActorError, WorkerCrashedError

        n = len(self.actors)
        next_index = 0
        retry: deque[tuple[int, list[Any]]] = deque()
        in_flight: dict[Any, tuple[int, int, list[Any]]] = {}
        queued = [0] * n

        def take() -> tuple[int, list[Any]] | None:
            nonlocal next_index
            if retry:
                return retry.popleft()
            remaining = len(items) - next_index
            if remaining <= 0:
                return None
            size = min(batch_size, max(1, math.ceil(remaining / (2 * n))))
            start, next_index = next_index, next_index + size
            return start, list(items[start:next_index])

        def fill() -> None:
            for a in range(n):
                while queued[a] < self.DEPTH and (job := take()) is not None:
                    start, batch = job
                    ref = self.actors[a].call.remote(self._args, method, load(batch))
                    in_flight[ref] = (a, start, batch)
                    queued[a] += 1

        fill()
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            a, start, batch = in_flight.pop(ref)
            queued[a] -= 1
            try:
                result = ray.get(ref)
            except (RayActorError, WorkerCrashedError, ObjectLostError, OutOfMemoryError) as e:
                if len(batch) > 1:
                    log.warning("workers died %d times on a batch: re-running it item by item", _RETRIES + 1)
                    retry.extendleft(reversed([(start + i, [x]) for i, x in enumerate(batch)]))
                else:
                    on_lost(start, batch[0], f"{type(e).__name__}: {str(e).splitlines()[0]}")
            else:
                on_result(start, batch, result)
            fill()
