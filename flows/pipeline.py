"""The Prefect flow `lamops-pipeline`: the selected stages in pipeline order, one task each."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from lamops.config import load_config
from lamops.stages import select_stages
from lamops.stages.base import StageResult
from lamops.tracking import pipeline_run, tracking_uri
from tasks.stages import stage_task


@flow(name="lamops-pipeline")
def pipeline(
    params: str = "params.yaml",
    profile: str | None = None,
    stages: list[str] | None = None,
    overrides: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run `stages` (default: the config's pipeline.stages) in pipeline order; return their StageResults."""
    cfg = load_config(params, profile, overrides or ())
    selected = cfg.pipeline.stages if stages is None else select_stages(stages)
    logger = get_run_logger()
    logger.info("profile %s, root %s, stages: %s", cfg.profile, cfg.root, ", ".join(selected))
    results = []
    with pipeline_run(cfg, list(selected)) as run_id:
        logger.info("MLflow run %s (%s): the stages' runs nest under it", run_id, tracking_uri(cfg))
        for number, name in enumerate(selected, start=1):
            logger.info("stage %d/%d %s: running", number, len(selected), name)
            result = stage_task(name, cfg.pipeline)(cfg)
            logger.info("stage %s: %s (%.1f s)", name, result.message, result.seconds)
            publish_artifacts(cfg, name, result)
            results.append(result.model_dump(mode="json"))
    return results


def publish_artifacts(cfg, name: str, result: StageResult) -> None:
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
