"""Judge every trajectory: the verifier where the task has a goal predicate, else the LLM judge."""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.stages.base import StageResult, gate
from lamops.tracking import stage_run


def run(cfg: Config) -> StageResult:
    from lamops.agents.roles import make_roles
    from lamops.data.io import read_jsonl, write_json
    from lamops.data.judge import judge_trajectories
    from lamops.data.parallel import ensure_ray
    from lamops.records import Trajectory
    from lamops.stages.base import replace_dir

    start = time.perf_counter()
    c = cfg.judge
    out_dir = cfg.path(c.out_dir)
    with stage_run(cfg, "judge") as tracked:
        if c.workers:
            ensure_ray(cfg.ray)
        with replace_dir(out_dir) as staging:
            summary = judge_trajectories(
                cfg.path(cfg.execute.out_dir),
                staging,
                templates_dir=cfg.path(cfg.templates.out_dir),
                judge=make_roles(cfg.llm).judge,
                workers=c.workers,
            )
            judged, bad = read_jsonl(staging / "judged.jsonl", Trajectory, "judge")
            if bad:
                raise ValueError(f"judge wrote {len(bad)} unreadable line(s): {bad[0].detail}")
            gate(tracked, "trajectories", judged)
            stats = summary.model_dump()
            stats["success_rate"] = (
                round(100 * summary.pass_ / max(1, summary.judged), 2)
                if hasattr(summary, "pass_")
                else round(100 * stats.get("pass", 0) / max(1, stats.get("judged", 0)), 2)
            )
            write_json(staging / "stats.json", stats)
        tracked.log_metrics(stats)
        tracked.log_dataset(
            out_dir / "judged.jsonl",
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
        message=f"{stats.get('judged')} trajectories judged: {stats.get('pass')} pass, "
        f"{stats.get('fail')} fail, "
        f"{stats.get('unsure')} unsure (expert success {stats['success_rate']}%)",
    )
