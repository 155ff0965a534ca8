"""Write the built-in application's raw corpus: documentation pages, how-to articles, search queries."""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.io import replace_dir, write_json
from lamops.stages.base import STATS_FILE, StageResult
from lamops.tracking import stage_run


def run(cfg: Config) -> StageResult:
    from lamops.data.sources import write_corpus

    start = time.perf_counter()
    c = cfg.sources
    out_dir = cfg.path(c.out_dir)
    with stage_run(cfg, "sources") as tracked, replace_dir(out_dir) as staging:
        counts = write_corpus(
            staging, seed=c.seed, docs_pages=c.docs_pages, howto_articles=c.howto_articles, queries=c.queries
        )
        write_json(staging / STATS_FILE, counts)
        tracked.log_metrics(counts)
    return StageResult(
        stage="sources",
        outputs=[str(out_dir)],
        metrics=counts,
        seconds=time.perf_counter() - start,
        message=f"wrote the raw corpus to {out_dir}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items() if not k.startswith("noise_")),
    )
