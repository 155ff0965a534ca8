"""Build the environment's template documents and their descriptions."""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.env.templates import build_library
from lamops.io import replace_dir
from lamops.stages.base import StageResult


def run(cfg: Config) -> StageResult:
    start = time.perf_counter()
    out_dir = cfg.path(cfg.templates.out_dir)
    with replace_dir(out_dir) as staging:
        templates = build_library(staging)
    return StageResult(
        stage="templates",
        outputs=[str(out_dir)],
        metrics={"templates": len(templates)},
        seconds=time.perf_counter() - start,
        message=f"built {len(templates)} template documents in {out_dir}",
    )
