"""The Prefect flow runs the pipeline on a temporary local Prefect server, as ephemeral mode does."""

import shutil
from pathlib import Path

import pytest

from flows.pipeline import pipeline

pytestmark = pytest.mark.usefixtures("prefect_server")

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_flow_runs_the_templates_stage(tmp_path: Path) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path)
    out = tmp_path / "library"

    results = pipeline(
        params=str(tmp_path / "params.yaml"), stages=["templates"], overrides=[f"templates.out_dir={out}"]
    )

    assert [result["stage"] for result in results] == ["templates"]
    assert (out / "index.json").is_file()
    assert len(list(out.glob("*.docx"))) >= 8
    # The flow's MLflow run, with the stage's run nested under it.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(client.get_experiment_by_name("lamops").experiment_id)
    assert {r.info.run_name for r in runs} == {"pipeline"}
    assert runs[0].info.status == "FINISHED"
