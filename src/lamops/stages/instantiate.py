"""Instantiate task-plan pairs on template documents: choose a template, prefill, filter (UFO types).

Counts (stats.json): of each input file (collect's and evolve's pairs.jsonl, `by_file`, and in all), the lines
`read`, `kept` (valid pairs, the population `max_tasks` are sampled from) and `quarantined` (malformed lines);
kept + quarantined == read is checked. Each sampled pair then becomes one task (`passed`) or one quarantine
record (`rejected`: turned away by the filter, or not instantiable); passed + rejected == sampled is checked
too. Either check failing fails the stage (RecordsLost)."""

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
    check_total,
    checked_counts,
    file_counts,
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
        turned_away = [r["rejected"] for r in results if "rejected" in r]
        rejected = bad1 + bad2 + turned_away
        filtered = Counter(r["filtered"] for r in results if "filtered" in r)
        counts_in = checked_counts(
            "instantiate",
            {
                (folder / PAIRS_FILE).as_posix(): file_counts(len(good) + len(bad), len(good), len(bad))
                for folder, good, bad in (
                    (cfg.collect.out_dir, collected, bad1),
                    (cfg.evolve.out_dir, evolved, bad2),
                )
            },
        )
        check_total("instantiate", "sampled pairs vs tasks passed + rejected", len(sample), len(results))
        check_total(
            "instantiate",
            "sampled pairs vs tasks passed + rejected",
            len(sample),
            len(tasks) + len(turned_away),
        )
        stats = {
            **counts_in,
            "sampled": len(sample),
            "passed": len(tasks),
            "rejected": len(turned_away),
            "filtered": dict(sorted(filtered.items())),
            "dropped": dict(sorted(Counter(r.reason for r in rejected if r.reason != "filtered").items())),
            "by_template": dict(sorted(Counter(t.template for t in tasks).items())),
            "with_goal": sum(1 for t in tasks if t.family),
            "composite": sum(1 for t in tasks if t.family == "composite"),
        }
        tracked.log_metrics({k: v for k, v in stats.items() if k not in ("by_template", "by_file")})
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
