"""The pipeline's stages, in order: each is a module `lamops.stages.<name>` with `run(cfg) -> StageResult`.

STAGES is the one list the CLI commands, the Prefect flow, params.yaml and dvc.yaml are checked against
(tests/test_wiring.py). Stage modules are imported only when a stage runs, so listing them costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamops.config import Config
    from lamops.stages.base import StageResult

STAGES: tuple[str, ...] = (
    "templates",
    "sources",
    "collect",
    "evolve",
    "instantiate",
    "execute",
    "judge",
    "datasets",
    "plan_pretrain",
    "imitate",
    "self_boost",
    "reward_model",
    "offline_rl",
    "evaluate",
    "promote",
)
# Stages with no DVC stage: `promote` changes the MLflow registry (aliases), which DVC cannot track or cache.
REGISTRY_STAGES: tuple[str, ...] = ("promote",)


def select_stages(names: Iterable[str]) -> tuple[str, ...]:
    """The named stages in pipeline order; unknown names are an error that lists the known ones."""
    requested = set(names)
    unknown = sorted(requested - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(STAGES)}")
    if not requested:
        raise ValueError(f"no stage selected; stages are: {', '.join(STAGES)}")
    return tuple(name for name in STAGES if name in requested)


def get_stage(name: str) -> Callable[[Config], StageResult]:
    """The `run` function of stage `name`."""
    (stage,) = select_stages([name])
    return importlib.import_module(f"lamops.stages.{stage}").run
