"""The pipeline's stages in order, and the training phases' table: one place that names, for each training
stage, the model it registers, the phase it starts from, its settings section and its trainer.

Pure data, importable by every layer (config validates stage names with it; evaluation, promotion and the
stages read the table), so no stage module imports another for a constant. STAGES is the one list the CLI
commands, the Prefect flow, params.yaml and dvc.yaml are checked against (tests/test_wiring.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Phase:
    """One training stage of the pipeline."""

    stage: str  # the stage name: its params section, DVC stage, CLI command, MLflow run name
    registered: str  # the registered model (MLflow) it publishes a version of
    parent: str | None  # the stage whose model it starts from (None: the base model in `model`)
    settings: str  # the field of its params section that holds the trainer's settings
    trainer: str  # the module of lamops.train that trains it
    lam: bool  # a LAM phase (evaluated, and a candidate for the deployable model `lam`)


PHASES: tuple[Phase, ...] = (
    Phase("plan_pretrain", "lam1", None, "sft", "sft", lam=True),
    Phase("imitate", "lam2", "plan_pretrain", "sft", "sft", lam=True),
    Phase("self_boost", "lam3", "imitate", "sft", "sft", lam=True),
    Phase("reward_model", "reward_model", "self_boost", "rm", "reward", lam=False),
    Phase("offline_rl", "lam4", "self_boost", "ppo", "offline_rl", lam=True),
)
BY_STAGE: dict[str, Phase] = {p.stage: p for p in PHASES}
BY_REGISTERED: dict[str, Phase] = {p.registered: p for p in PHASES}
# The LAM phases by registered name, in pipeline order: lam1 .. lam4.
LAM_PHASES: tuple[str, ...] = tuple(p.registered for p in PHASES if p.lam)


def phase(stage: str) -> Phase:
    """The table row of training stage `stage`."""
    try:
        return BY_STAGE[stage]
    except KeyError:
        raise KeyError(f"{stage!r} is not a training stage; they are: {', '.join(BY_STAGE)}") from None


def parent(stage: str) -> Phase | None:
    """The row of the phase `stage` starts from, or None for the first phase."""
    row = phase(stage)
    return BY_STAGE[row.parent] if row.parent else None


def select_stages(names: Iterable[str]) -> tuple[str, ...]:
    """The named stages in pipeline order; unknown names are an error that lists the known ones."""
    requested = set(names)
    unknown = sorted(requested - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(STAGES)}")
    if not requested:
        raise ValueError(f"no stage selected; stages are: {', '.join(STAGES)}")
    return tuple(name for name in STAGES if name in requested)
