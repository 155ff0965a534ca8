"""Gate this run's best LAM phase against thresholds and the champion; move the `lam` aliases (no DVC stage).

Reads the `evaluate` stage's metrics files, registers the phase with the best `promote.metric` as a version
of `promote.registered_model` and gives it `champion` or `rejected` (lamops.registry.promotion). It changes
only the MLflow registry, which DVC cannot track, so it has no dvc.yaml stage; re-running it when nothing
changed registers nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lamops.stages.base import StageResult

if TYPE_CHECKING:
    from lamops.config import Config


def run(cfg: Config) -> StageResult:
    from lamops.registry.promotion import promote

    start = time.perf_counter()
    result = promote(cfg)
    metrics: dict[str, float | int] = {
        "passed": int(result.passed),
        "version": result.version,
        "already_champion": int(result.already_champion),
        result.metric: result.value,
    }
    if result.champion_before is not None:
        metrics["champion_before"] = result.champion_before
    if result.champion_after is not None:
        metrics["champion_after"] = result.champion_after

    model = f"{result.registered_model} v{result.version}"
    if result.already_champion:
        message = f"{result.candidate} is already {model}, the champion: nothing registered"
    else:
        verb = "re-gated as" if result.reused else "registered as"
        if result.passed:
            was = f"was v{result.champion_before}" if result.champion_before is not None else "first"
            verdict = f"champion ({was})"
        else:
            verdict = "rejected: " + "; ".join(result.reasons)
        message = f"{result.candidate} {verb} {model}: {verdict}"
    return StageResult(
        stage="promote",
        outputs=[],
        metrics=metrics,
        seconds=time.perf_counter() - start,
        message=message,
    )
