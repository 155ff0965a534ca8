"""The pipeline's stages: each is a module `lamops.stages.<name>` with `run(cfg) -> StageResult`.

Their names and order live in `lamops.phases` (STAGES); stage modules are imported only when a stage runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from lamops.phases import REGISTRY_STAGES, STAGES, select_stages

__all__ = ["REGISTRY_STAGES", "STAGES", "get_stage", "select_stages"]

if TYPE_CHECKING:
    from lamops.config import Config
    from lamops.stages.base import StageResult


def get_stage(name: str) -> Callable[[Config], StageResult]:
    """The `run` function of stage `name`."""
    (stage,) = select_stages([name])
    return importlib.import_module(f"lamops.stages.{stage}").run
