"""Where data stages run their work: in-process, or on Ray (a local Ray or the cluster in $RAY_ADDRESS).

The per-record functions are the same either way; `workers` only picks the executor."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamops.config import RayConfig


def ensure_ray(cfg: RayConfig | None = None) -> None:
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
    ray_cfg: RayConfig | None = None,
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
