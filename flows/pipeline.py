"""The Prefect flows of the pipeline: `lamops-pipeline` runs the selected stages through three sub-flows,
`lamops-data` (templates..datasets), `lamops-train` (plan_pretrain..offline_rl) and `lamops-evaluate-promote`
(evaluate, promote), one task per stage. Each flow is also a deployment entrypoint of its own (prefect.yaml)
with the same parameters.

Every stage whose params, deps and outs are unchanged since its last successful run under the profile is
skipped (`force` runs it anyway; lamops.stages.fingerprint); its task run still reports it. On params.yaml
alone (no profile, no overrides) in a DVC project, each stage that succeeded or was skipped is then recorded
in dvc.lock and the DVC cache (`dvc commit -f <stage>`, lamops.stages.dvc_lock), so `dvc status` stays clean;
otherwise the flow says once why it does not. Ray work is submitted by the stages themselves, to
`ray.address` / $RAY_ADDRESS (local Ray when unset).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from lamops.config import Config, load_config
from lamops.phases import select_stages
from lamops.stages import STAGES, dvc_lock
from lamops.stages.base import StageResult
from lamops.tracking import PARENT_RUN_ENV, pipeline_run, tracking_uri
from tasks.stages import stage_task


def _span(first: str, last: str) -> tuple[str, ...]:
    return STAGES[STAGES.index(first) : STAGES.index(last) + 1]


DATA_STAGES = _span("templates", "datasets")
TRAIN_STAGES = _span("plan_pretrain", "offline_rl")
EVALUATE_PROMOTE_STAGES = _span("evaluate", "promote")


@flow(name="lamops-pipeline")
def pipeline(
    params: str = "params.yaml",
    profile: str | None = None,
    stages: list[str] | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Run `stages` (default: the config's pipeline.stages) in pipeline order under one MLflow pipeline run;
    return their StageResults. `force` runs stages that are unchanged since their last run, too."""
    cfg = load_config(params, profile, overrides or ())
    selected = cfg.pipeline.stages if stages is None else select_stages(stages)
    logger = get_run_logger()
    logger.info("profile %s, root %s, stages: %s", cfg.profile, cfg.root, ", ".join(selected))
    _dvc_recording(cfg, params, overrides, announce=True)
    results = []
    with pipeline_run(cfg, list(selected)) as run_id:
        logger.info("MLflow run %s (%s): the stages' runs nest under it", run_id, tracking_uri(cfg))
        for subflow, group in SUBFLOWS:
            chosen = [name for name in selected if name in group]
            if chosen:
                results += subflow(
                    params=params, profile=profile, stages=chosen, overrides=overrides, force=force
                )
    return results


def _run_group(
    group_name: str,
    group: tuple[str, ...],
    params: str,
    profile: str | None,
    stages: list[str] | None,
    overrides: list[str] | None,
    force: bool,
) -> list[dict[str, Any]]:
    """The body of a sub-flow: its stages (default: those of pipeline.stages in `group`), one task each, in
    the MLflow pipeline run open in this process, or in a new one when the sub-flow runs on its own."""
    cfg = load_config(params, profile, overrides or ())
    if stages is None:
        selected = tuple(name for name in cfg.pipeline.stages if name in group)
    else:
        selected = select_stages(stages)
        outside = [name for name in selected if name not in group]
        if outside:
            raise ValueError(
                f"{group_name} runs {', '.join(group)}; got {', '.join(outside)}: run lamops-pipeline instead"
            )
    if not selected:
        get_run_logger().info("%s: no stage of this flow selected", group_name)
        return []
    # Under lamops-pipeline (its MLflow run open in this process) the parent said why DVC records nothing.
    nested = bool(os.environ.get(PARENT_RUN_ENV))
    record = _dvc_recording(cfg, params, overrides, announce=not nested)
    if nested:
        return _run_stages(cfg, selected, force, record)
    with pipeline_run(cfg, list(selected)) as run_id:
        get_run_logger().info("MLflow run %s (%s): the stages' runs nest under it", run_id, tracking_uri(cfg))
        return _run_stages(cfg, selected, force, record)


def _dvc_recording(cfg: Config, params: str, overrides: list[str] | None, *, announce: bool) -> bool:
    """Whether the stages' outputs go into dvc.lock and the DVC cache; if not and `announce`, log why."""
    reason = dvc_lock.not_recorded_because(cfg, params, overrides or ())
    if reason is not None and announce:
        get_run_logger().info("%s", reason)
    return reason is None


def _run_stages(cfg: Config, selected: tuple[str, ...], force: bool, record: bool) -> list[dict[str, Any]]:
    logger = get_run_logger()
    logger.info("profile %s, root %s, stages: %s", cfg.profile, cfg.root, ", ".join(selected))
    results = []
    for number, name in enumerate(selected, start=1):
        logger.info("stage %d/%d %s: running", number, len(selected), name)
        result = stage_task(name, cfg.pipeline)(cfg, force)
        logger.info("stage %s: %s (%.1f s)", name, result.message, result.seconds)
        if record:
            record_in_dvc(cfg, name)
        publish_artifacts(cfg, name, result)
        results.append(result.model_dump(mode="json"))
    return results


def record_in_dvc(cfg: Config, name: str) -> bool:
    """`dvc commit -f <name>` after the stage succeeded: its outs into the DVC cache and dvc.lock, as `dvc
    repro` records them. A failure is a warning, never a failed pipeline: the stage's outputs stand, only
    `dvc status` will call the stage changed. Stages without a DVC stage (promote) are not recorded."""
    if not dvc_lock.has_dvc_stage(cfg, name):
        return False
    logger = get_run_logger()
    started = time.monotonic()
    try:
        dvc_lock.commit_stage(cfg, name)
    except Exception as err:  # noqa: BLE001 - any DVC failure: the stage itself succeeded
        logger.warning(
            "stage %s: succeeded, but recording its outputs in DVC failed (%s: %s); `dvc status` shows it "
            "changed until `dvc commit -f %s` or `dvc repro`",
            name, type(err).__name__, err, name,
        )  # fmt: skip
        return False
    logger.info("stage %s: recorded in dvc.lock and the DVC cache (%.1f s)", name, time.monotonic() - started)
    return True


@flow(name="lamops-data")
def data(
    params: str = "params.yaml",
    profile: str | None = None,
    stages: list[str] | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """The data stages, templates..datasets: raw sources to the frozen training and test sets."""
    return _run_group("lamops-data", DATA_STAGES, params, profile, stages, overrides, force)


@flow(name="lamops-train")
def train(
    params: str = "params.yaml",
    profile: str | None = None,
    stages: list[str] | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """The training phases, plan_pretrain..offline_rl (LAM1..LAM4 and the reward model) on Ray Train."""
    return _run_group("lamops-train", TRAIN_STAGES, params, profile, stages, overrides, force)


@flow(name="lamops-evaluate-promote")
def evaluate_promote(
    params: str = "params.yaml",
    profile: str | None = None,
    stages: list[str] | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate every phase on the frozen test split, then the gated promotion of the best one."""
    return _run_group(
        "lamops-evaluate-promote", EVALUATE_PROMOTE_STAGES, params, profile, stages, overrides, force
    )


SUBFLOWS: tuple[tuple[Callable[..., list[dict[str, Any]]], tuple[str, ...]], ...] = (
    (data, DATA_STAGES),
    (train, TRAIN_STAGES),
    (evaluate_promote, EVALUATE_PROMOTE_STAGES),
)


def publish_artifacts(cfg: Config, name: str, result: StageResult) -> None:
    """Prefect artifacts of the flow run: the phase table after `evaluate`, the decision after `promote`."""
    if name == "evaluate":
        from lamops.stages.evaluate import TABLE_FILE

        table = cfg.path(cfg.evaluate.out_dir) / TABLE_FILE
        create_markdown_artifact(
            key="phase-table",
            markdown=table.read_text(),
            description="LAM1-LAM4 and the expert on the test split",
        )
    elif name == "promote":
        create_markdown_artifact(
            key="promotion",
            markdown=f"# Promotion\n\n{result.message}\n",
            description=f"{cfg.promote.registered_model}: the gated promotion of this run's best phase",
        )
