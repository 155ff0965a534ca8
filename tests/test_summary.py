"""What `lamops pipeline` prints at the end, and `lamops ui`, against a real sqlite MLflow store."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT

from lamops.config import load_config
from lamops.stages.evaluate import TABLE_FILE
from lamops.summary import find_champion, render

RESULTS = [
    {"stage": "evaluate", "seconds": 12.5, "message": "5 phases scored"},
    {"stage": "promote", "seconds": 1.0, "message": "lam v1 champion"},
]


@pytest.fixture
def project(tmp_path: Path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    return load_config(tmp_path / "params.yaml", overrides=["tracking.uri=sqlite:///mlflow.db"])


def register_champion(cfg) -> str:
    """A registered model version of `lam` that holds `champion`, as promote leaves it."""
    from mlflow.tracking import MlflowClient

    import mlflow
    from lamops.tracking import setup, tracking_uri

    experiment_id = setup(cfg)
    client = MlflowClient(tracking_uri(cfg))
    run = client.create_run(experiment_id, run_name="promote")
    client.set_terminated(run.info.run_id)
    name = cfg.promote.registered_model
    client.create_registered_model(name)
    version = client.create_model_version(
        name,
        f"runs:/{run.info.run_id}/model",
        run_id=run.info.run_id,
        tags={"lamops.phase": "lam3", "lamops.source": "lam3/2"},
    )
    client.set_registered_model_alias(name, "champion", version.version)
    mlflow.set_tracking_uri(None)
    return str(version.version)


def test_the_summary_shows_the_stages_the_phase_table_the_ui_and_the_champion(project) -> None:
    table = project.path(project.evaluate.out_dir) / TABLE_FILE
    table.parent.mkdir(parents=True)
    table.write_text("| metric | LAM1 |\n|---|---|\n| SSR | 1.3 |\n")
    version = register_champion(project)

    text = render(project, RESULTS)
    assert "evaluate" in text and "12.5 s" in text and "5 phases scored" in text
    assert "| SSR | 1.3 |" in text
    assert "`lamops ui`" in text and "http://127.0.0.1:5000" in text
    assert f"models:/lam@champion = version {version} (phase lam3, from lam3/2)" in text


def test_without_evaluate_or_a_champion_the_summary_says_so(project) -> None:
    table = project.path(project.evaluate.out_dir) / TABLE_FILE
    table.parent.mkdir(parents=True)
    table.write_text("| stale table |\n")

    text = render(project, [{"stage": "templates", "seconds": 0.4, "message": "9 templates"}])
    assert "stale table" not in text, "a run that did not evaluate must not show an old table"
    assert find_champion(project) is None
    assert "Champion: none yet" in text


def test_with_a_tracking_server_the_summary_and_ui_name_its_url(project, monkeypatch) -> None:
    from typer.testing import CliRunner

    from lamops.cli import app
    from lamops.summary import ui_location

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert ui_location(project).startswith("MLflow UI: http://mlflow.example:5000")
    result = CliRunner().invoke(app, ["ui", "--params", str(project.root / "params.yaml")])
    assert result.exit_code == 0 and "http://mlflow.example:5000" in result.output


def test_lamops_ui_serves_the_local_store(project) -> None:
    register_champion(project)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lamops = Path(sys.executable).parent / "lamops"
    ui = subprocess.Popen(
        [str(lamops), "ui", "--port", str(port), "--params", str(project.root / "params.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                api = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/get?name=lam"
                with urllib.request.urlopen(api, timeout=5) as answer:
                    body = answer.read().decode()
                break
            except OSError:
                assert ui.poll() is None, ui.stdout.read().decode()
                assert time.monotonic() < deadline, "the MLflow UI did not answer within 90 s"
                time.sleep(1)
        assert '"champion"' in body, "the UI serves another store than the project's"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
