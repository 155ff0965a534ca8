"""Instantiate task-plan pairs on template documents: choose a template, prefill, filter (UFO types)."""

from __future__ import annotations

import time
from collections import Counter
from functools import partial

from lamops.config import Config
from lamops.io import read_jsonl, replace_dir, write_jsonl
from lamops.stages.base import (
    PAIRS_FILE,
    QUARANTINE_FILE,
    TASKS_FILE,
    StageResult,
    gate,
    write_drops_and_counts,
)
from lamops.tracking import stage_run

RECORDS_FILE = "records.jsonl"


def run(cfg: Config) -> StageResult:
    from lamops.compute import map_batches
    from lamops.data.instantiate import instantiate_pairs, sample_pairs
    from lamops.env.templates import load_library
    from lamops.records import TaskPlanPair

    start = time.perf_counter()
    c = cfg.instantiate
    out_dir = cfg.path(c.out_dir)
    with stage_run(cfg, "instantiate") as tracked:
        collected, bad1 = read_jsonl(cfg.path(cfg.collect.out_dir) / PAIRS_FILE, TaskPlanPair, "instantiate")
        evolved, bad2 = read_jsonl(cfg.path(cfg.evolve.out_dir) / PAIRS_FILE, TaskPlanPair, "instantiate")
        library = load_library(cfg.path(cfg.templates.out_dir))
        descriptions = {name: info.description for name, info in library.items()}
        sample = sample_pairs(collected, evolved, c.max_tasks, c.evolved_share, c.seed)
        all_pairs = {p.task_id: p for p in collected + evolved}
        results = instantiate_pairs(
            sample,
            all_pairs,
            descriptions,
            llm=cfg.llm,
            template_candidates=c.template_candidates,
            map_batches=partial(map_batches, workers=c.workers, ray_cfg=cfg.ray, batch_size=64),
        )
        tasks = [r["task"] for r in results if "task" in r]
        rejected = bad1 + bad2 + [r["rejected"] for r in results if "rejected" in r]
        filtered = Counter(r["filtered"] for r in results if "filtered" in r)
        stats = {
            "sampled": len(sample),
            "passed": len(tasks),
            "filtered": dict(sorted(filtered.items())),
            "dropped": dict(sorted(Counter(r.reason for r in rejected if r.reason != "filtered").items())),
            "by_template": dict(sorted(Counter(t.template for t in tasks).items())),
            "with_goal": sum(1 for t in tasks if t.family),
            "composite": sum(1 for t in tasks if t.family == "composite"),
        }
        tracked.log_metrics({k: v for k, v in stats.items() if k != "by_template"})
        gate(tracked, "instantiated", tasks)
        with replace_dir(out_dir) as staging:
            write_jsonl(staging / TASKS_FILE, tasks)
            write_jsonl(staging / RECORDS_FILE, [r["record"] for r in results])
            write_drops_and_counts(staging, rejected, stats)
        tracked.log_dataset(out_dir / TASKS_FILE, tasks, "instantiated_tasks", "output")
    return StageResult(
        stage="instantiate",
        outputs=[str(out_dir)],
        metrics={
            "sampled": len(sample),
            "passed": len(tasks),
            "filtered": sum(filtered.values()),
            "rejected": len(rejected) - sum(filtered.values()),
        },
        seconds=time.perf_counter() - start,
        message=f"{len(tasks)} of {len(sample)} sampled pairs instantiated and passed the filter "
        f"(filtered: {dict(filtered)}; not instantiable: {len(rejected) - sum(filtered.values())}; both "
        f"quarantined: {out_dir / QUARANTINE_FILE})",
    )
