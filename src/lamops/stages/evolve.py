"""Evolve harder task-plan variants from collected ones (combinations, added requirements).

Counts (stats.json): of collect's pairs.jsonl (`by_file`, and in all), the lines `read`, `kept` (valid pairs,
every one an input of evolving) and `quarantined` (malformed lines, in quarantine.jsonl); kept + quarantined
== read is checked, or the stage fails (RecordsLost). The evolved pairs are new records, counted apart
(`evolved`, and the declined candidates under `dropped`)."""

from __future__ import annotations

import time
from collections import Counter
from functools import partial

from lamops.config import Config
from lamops.io import read_jsonl, replace_dir, write_jsonl
from lamops.stages.base import (
    PAIRS_FILE,
    StageResult,
    checked_counts,
    file_counts,
    gate,
    write_drops_and_counts,
)
from lamops.tracking import stage_run


def run(cfg: Config) -> StageResult:
    from lamops.compute import map_batches
    from lamops.data.datasets import in_test
    from lamops.data.evolve import evolve_pairs
    from lamops.records import TaskPlanPair
    from lamops.roles import make_roles

    start = time.perf_counter()
    c = cfg.evolve
    out_dir = cfg.path(c.out_dir)
    source = cfg.path(cfg.collect.out_dir) / PAIRS_FILE
    with stage_run(cfg, "evolve") as tracked:
        pairs, bad = read_jsonl(source, TaskPlanPair, "evolve")
        roles = make_roles(cfg.llm, max_added_words=c.max_added_words)
        evolved, rejected, counts = evolve_pairs(
            pairs,
            roles.evolve,
            ratio=c.ratio,
            seed=c.seed,
            map_batches=partial(map_batches, workers=c.workers, ray_cfg=cfg.ray, batch_size=512),
            # Partners from the same split (decided by id alone, see lamops.data.datasets), so that no
            # evolved pair mixes a test pair into training data or inflates the test split.
            group=partial(in_test, salt=cfg.datasets.split_salt, test_fraction=cfg.datasets.test_fraction),
        )
        name = (cfg.collect.out_dir / PAIRS_FILE).as_posix()
        counts_in = checked_counts("evolve", {name: file_counts(len(pairs) + len(bad), len(pairs), len(bad))})
        rejected = bad + rejected
        stats = {
            **counts_in,
            "input": len(pairs),
            "evolved": len(evolved),
            "target": counts.pop("target"),
            "total_for_lam1": len(pairs) + len(evolved),
            "dropped": dict(sorted(Counter(r.reason for r in rejected).items())),
        }
        tracked.log_metrics({k: v for k, v in stats.items() if k != "by_file"})
        gate(tracked, "task_plans", evolved)
        with replace_dir(out_dir) as staging:
            write_jsonl(staging / PAIRS_FILE, evolved)
            write_drops_and_counts(staging, rejected, stats)
        tracked.log_dataset(source, pairs, "task_plans_collected", "input")
        tracked.log_dataset(out_dir / PAIRS_FILE, evolved, "task_plans_evolved", "output")
    return StageResult(
        stage="evolve",
        outputs=[str(out_dir)],
        metrics={"evolved": len(evolved), "input": len(pairs), "declined": len(rejected)},
        seconds=time.perf_counter() - start,
        message=f"{len(evolved)} evolved pairs from {len(pairs)} collected "
        f"({stats['total_for_lam1']} for LAM1)",
    )
