"""Judge every trajectory: the verifier where the task has a goal predicate, else the LLM judge.

Counts (stats.json): of execute's trajectories/ folder (one record per file, so counted as one input under
`by_file`), the trajectory files `read`, `kept` (judged: a line of judged.jsonl, routed to pass, fail or
unsure) and `quarantined` (always 0: a file that is not a trajectory fails the stage, execute wrote it).
kept + quarantined == read and pass + fail + unsure == judged are checked, or the stage fails
(RecordsLost). On a Ray cluster (`ray.address` or $RAY_ADDRESS) Ray Data reads the trajectory files in the
workers, which read their documents too (they must see the data folder: a shared file system)."""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.progress import show_progress
from lamops.stages.base import STATS_FILE, StageResult, check_total, checked_counts, file_counts, gate
from lamops.tracking import stage_run


def run(cfg: Config) -> StageResult:
    from lamops.compute import ensure_ray, reads_where_data_lies
    from lamops.data.execute import TRAJECTORIES
    from lamops.data.judge import JUDGED_FILE, judge_trajectories
    from lamops.io import read_jsonl, replace_dir, write_json
    from lamops.records import Trajectory
    from lamops.roles import make_roles

    start = time.perf_counter()
    c = cfg.judge
    out_dir = cfg.path(c.out_dir)
    with stage_run(cfg, "judge") as tracked:
        if c.workers:
            ensure_ray(cfg.ray)
        with replace_dir(out_dir) as staging:
            executed = cfg.path(cfg.execute.out_dir)
            summary = judge_trajectories(
                executed,
                staging,
                templates_dir=cfg.path(cfg.templates.out_dir),
                judge=make_roles(cfg.llm).judge,
                workers=c.workers,
                progress=show_progress(),
                # On a cluster, Ray Data reads the trajectories and the workers their documents.
                read_in_workers=reads_where_data_lies(cfg.ray, [str(executed)]),
                ray_cfg=cfg.ray,
            )
            judged, bad = read_jsonl(staging / JUDGED_FILE, Trajectory, "judge")
            if bad:
                raise ValueError(f"judge wrote {len(bad)} unreadable line(s): {bad[0].detail}")
            name = (cfg.execute.out_dir / TRAJECTORIES).as_posix()
            counts_in = checked_counts("judge", {name: file_counts(summary.judged, len(judged), 0)})
            routed = summary.pass_ + summary.fail + summary.unsure
            check_total(
                "judge", "trajectories judged vs routed to pass, fail, unsure", summary.judged, routed
            )
            gate(tracked, "trajectories", judged)
            # stats.json is a DVC output: counts only, timings go to MLflow, so re-runs write the same bytes.
            stats = {**counts_in, **summary.model_dump(exclude={"seconds"})}
            stats["success_rate"] = round(100 * summary.pass_ / max(1, summary.judged), 2)
            write_json(staging / STATS_FILE, stats)
        tracked.log_metrics(
            {**{k: v for k, v in stats.items() if k != "by_file"}, "seconds": summary.seconds}
        )
        tracked.log_dataset(
            out_dir / JUDGED_FILE,
            [
                {
                    "task_id": t.task.task_id,
                    "family": t.task.family,
                    "complete": t.verdict.complete,
                    "steps": len(t.steps),
                    "reason": t.verdict.reason,
                }
                for t in judged
            ],
            "judged_trajectories",
            "output",
        )
    return StageResult(
        stage="judge",
        outputs=[str(out_dir)],
        metrics={k: v for k, v in stats.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - start,
        message=f"{summary.judged} trajectories judged: {summary.pass_} pass, {summary.fail} fail, "
        f"{summary.unsure} unsure (expert success {stats['success_rate']}%)",
    )
