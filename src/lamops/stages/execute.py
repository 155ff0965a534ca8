"""Execute every instantiated task with the expert, on Ray workers holding one environment each (resumable).

On a Ray cluster (`ray.address` or $RAY_ADDRESS) Ray Data reads tasks.jsonl in the workers, which must see
the project's data folder (a shared file system); the driver still writes every output
(data.execute.execute_task_file).

Counts (stats.json): of instantiate's tasks.jsonl, the lines `read`, `kept` (tasks with a trajectory in the
output folder after the run: every task is kept, a task the environment could not run as a trajectory with
its error, counted in `failed_to_run`) and `quarantined` (always 0: a malformed line means the file was
damaged after instantiate validated it, and fails the stage before anything runs). kept + quarantined ==
read is checked, or the stage fails (RecordsLost)."""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.io import read_jsonl, write_json
from lamops.progress import show_progress
from lamops.stages.base import STATS_FILE, TASKS_FILE, StageResult, checked_counts, file_counts
from lamops.tracking import stage_run


def run(cfg: Config) -> StageResult:
    from lamops.compute import ensure_ray, reads_where_data_lies
    from lamops.data.execute import TRAJECTORIES, execute_task_file, execute_tasks
    from lamops.records import InstantiatedTask

    start = time.perf_counter()
    c = cfg.execute
    out_dir = cfg.path(c.out_dir)
    source = cfg.path(cfg.instantiate.out_dir) / TASKS_FILE
    settings = {
        "templates_dir": cfg.path(cfg.templates.out_dir),
        "workers": c.workers,
        "max_steps": cfg.env.max_steps,
        "view": cfg.env.view(),
        "min_score": c.min_score,
        "batch_size": c.batch_size,
        "progress": show_progress(),
    }
    with stage_run(cfg, "execute") as tracked:
        if c.workers and reads_where_data_lies(cfg.ray, [str(source)]):
            # On a cluster, Ray Data reads tasks.jsonl in the workers: the driver never holds the tasks.
            if not source.is_file():
                raise FileNotFoundError(f"execute: {source} does not exist; run the instantiate stage first")
            summary, ids = execute_task_file(source, out_dir, ray_cfg=cfg.ray, **settings)
            rows, bad = [{"task_id": task_id} for task_id in ids], []
        else:
            tasks, bad = read_jsonl(source, InstantiatedTask, "execute")
            if bad:  # instantiate wrote and validated this file: a bad line means it was damaged since
                raise ValueError(
                    f"{source}: {len(bad)} malformed task line(s), first: {bad[0].origin}: {bad[0].detail}"
                )
            if c.workers:
                ensure_ray(cfg.ray)
            summary = execute_tasks(tasks, out_dir, **settings)
            ids, rows = [t.task_id for t in tasks], tasks
        stats = summary.model_dump()
        written = sum((out_dir / TRAJECTORIES / f"{task_id}.json").is_file() for task_id in ids)
        name = (cfg.instantiate.out_dir / TASKS_FILE).as_posix()
        counts_in = checked_counts("execute", {name: file_counts(len(ids) + len(bad), written, len(bad))})
        # Not a DVC output file of its own: the folder is persistent (resumable), so stats live inside it.
        kept = {k: v for k, v in stats.items() if k in ("tasks", "failed_to_run")}
        write_json(out_dir / STATS_FILE, {**counts_in, **kept})
        tracked.log_metrics(stats)
        tracked.log_dataset(source, rows, "instantiated_tasks", "input")
    return StageResult(
        stage="execute",
        outputs=[str(out_dir)],
        metrics={k: v for k, v in stats.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - start,
        message=f"{summary.tasks} trajectories in {out_dir}: {summary.run} run, {summary.resumed} resumed, "
        f"{summary.removed} removed, {summary.failed_to_run} could not run "
        f"({summary.trajectories_per_s:.1f} trajectories/s on {summary.workers} worker(s))",
    )
