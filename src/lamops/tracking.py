"""MLflow tracking of stage runs: one run per stage, named after it, nested under the pipeline's run.

A stage calls `stage_run(cfg, name)` and logs its section's params, its counts, its datasets (as MLflow
dataset inputs) and its reports through the returned `StageRun`. The tracking URI comes from
$MLFLOW_TRACKING_URI when set (a tracking server), else from params (`sqlite:///mlflow.db` under the
project root); a parent run id in $LAMOPS_PARENT_RUN_ID (set by the pipeline flow) nests the stage's run
under it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamops.config import Config

PARENT_RUN_ENV = "LAMOPS_PARENT_RUN_ID"


def tracking_uri(cfg: Config) -> str:
    """$MLFLOW_TRACKING_URI, else params' uri with a relative sqlite path resolved against the root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str(cfg.path(uri[len(prefix) :]))
    return uri


def artifact_location(cfg: Config) -> str:
    root = cfg.tracking.artifact_root
    return root if "://" in root else cfg.path(root).resolve().as_uri()


def setup(cfg: Config) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id."""
    import mlflow

    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would then override every later
    # config's store in this process (and mean "a tracking server" to tracking_uri): keep the user's value.
    user_value = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri(cfg))
    if user_value is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_value
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return mlflow.create_experiment(cfg.tracking.experiment, artifact_location=artifact_location(cfg))
    return experiment.experiment_id


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class StageRun:
    """What a stage logs to its MLflow run."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Numbers only; nested mappings become dotted names (dropped.non_english)."""
        import mlflow

        flat = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, int | float)}
        if flat:
            mlflow.log_metrics(flat)

    def log_dataset(self, path: Path, rows: list[dict[str, Any]], name: str, context: str) -> None:
        """Log `rows` (read from `path`) as an MLflow dataset input of this run."""
        import pandas as pd

        import mlflow

        frame = pd.DataFrame([{k: _cell(v) for k, v in row.items()} for row in rows])
        dataset = mlflow.data.from_pandas(frame, source=str(path), name=name)
        mlflow.log_input(dataset, context=context)

    def log_json(self, data: Any, artifact_file: str) -> None:
        import mlflow

        mlflow.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        import mlflow

        mlflow.log_text(text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure as an image artifact (closed afterwards)."""
        import matplotlib.pyplot as plt

        import mlflow

        mlflow.log_figure(figure, artifact_file)
        plt.close(figure)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path)


def _cell(value: Any) -> Any:
    # Dataset schemas want flat columns: lists and dicts are logged as their JSON text.
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, list | dict) else value


@contextmanager
def stage_run(cfg: Config, stage: str, *, system_metrics: bool = False) -> Iterator[StageRun]:
    """An MLflow run named `stage`, tagged with the stage and profile, nested under $LAMOPS_PARENT_RUN_ID;
    with `system_metrics`, MLflow samples CPU, memory (and GPU, where there is one) while it is open."""
    import mlflow

    experiment_id = setup(cfg)
    parent = os.environ.get(PARENT_RUN_ENV)
    tags = {"lamops.stage": stage, "lamops.profile": cfg.profile}
    if parent:
        tags["mlflow.parentRunId"] = parent
    with mlflow.start_run(
        run_name=stage, experiment_id=experiment_id, tags=tags, log_system_metrics=system_metrics
    ) as run:
        tracked = StageRun(run.info.run_id)
        section = getattr(cfg, stage, None)
        if section is not None:
            tracked.log_params(section.model_dump(mode="json"))
        yield tracked


@contextmanager
def pipeline_run(cfg: Config, stages: list[str]) -> Iterator[str]:
    """A parent MLflow run `pipeline` for one flow run; stage runs started inside nest under it."""
    from mlflow.tracking import MlflowClient

    experiment_id = setup(cfg)
    client = MlflowClient(tracking_uri(cfg))
    run = client.create_run(
        experiment_id,
        run_name="pipeline",
        tags={"lamops.stage": "pipeline", "lamops.profile": cfg.profile, "lamops.stages": ",".join(stages)},
    )
    previous = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = run.info.run_id
    status = "FAILED"
    try:
        yield run.info.run_id
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status)
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous
