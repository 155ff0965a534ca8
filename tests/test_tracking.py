"""The `lamops` MLflow experiment is a model-training experiment (MLflow 3's experiment kind), and the
evaluate run's description points at the phase table and the per-phase runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import ROOT

from lamops import tracking
from lamops.config import load_config


def test_the_experiment_is_created_as_a_model_training_experiment_and_an_old_one_is_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path)
    cfg = load_config(tmp_path / "params.yaml")
    client = MlflowClient(tracking.tracking_uri(cfg))

    created = client.get_experiment(tracking.setup(cfg))
    assert created.name == cfg.tracking.experiment
    assert (
        created.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND == "custom_model_development"
    )

    # An experiment made before lamops set the kind gets it; a kind someone chose in the UI stays.
    old = load_config(tmp_path / "params.yaml", overrides=["tracking.experiment=old"])
    client.create_experiment("old")
    assert (
        client.get_experiment(tracking.setup(old)).tags[tracking.EXPERIMENT_KIND_TAG]
        == "custom_model_development"
    )
    chosen = load_config(tmp_path / "params.yaml", overrides=["tracking.experiment=chosen"])
    client.create_experiment("chosen", tags={tracking.EXPERIMENT_KIND_TAG: "finetuning"})
    assert client.get_experiment(tracking.setup(chosen)).tags[tracking.EXPERIMENT_KIND_TAG] == "finetuning"


def test_the_evaluate_description_links_the_phase_table_and_says_how_to_compare_the_phases() -> None:
    from lamops.stages.evaluate import TABLE_FILE, description

    table = "# lamops phase table\n\n| metric | LAM4 |\n|---|---|\n| SSR | 80.6 |\n"
    text = description(table, ["lam4", "expert"], "7", "abc", ["tsr_by_phase.png"])
    assert f"[`{TABLE_FILE}`](#/experiments/7/runs/abc/artifacts/{TABLE_FILE})" in text
    assert "(#/experiments/7/runs/abc/artifacts/tsr_by_phase.png)" in text
    assert "lam4, expert" in text and "`lamops.phase`" in text and "tags.lamops.phase != ''" in text
    assert text.endswith("\n\n" + table)
    linked = description(table, ["lam4", "expert"], "7", "abc", [], ["r1", "r2"])
    assert (
        "[Compare lam4, expert](#/compare-runs?runs=%5B%22r1%22%2C%22r2%22%5D&experiments=%5B%227%22%5D)"
        in linked
    )
    # A table longer than a tag holds is linked, not cut.
    long = description("x" * 9000, ["lam4"], "7", "abc", [])
    assert len(long) <= 8000 and "x" * 10 not in long and TABLE_FILE in long
