"""lamops.stages: stage selection, lookup, atomic outputs, and the stages themselves."""

import json
from pathlib import Path

import pytest
from helpers import ROOT

from lamops.config import load_config
from lamops.io import UnsafeOutput, replace_dir
from lamops.phases import select_stages
from lamops.stages import STAGES, get_stage


def test_select_stages_orders_by_pipeline_and_rejects_unknown() -> None:
    assert select_stages(reversed(STAGES)) == STAGES
    with pytest.raises(ValueError, match=r"unknown stage\(s\) nope; stages are: templates"):
        select_stages(["templates", "nope"])
    with pytest.raises(ValueError, match="no stage selected"):
        select_stages([])


def test_get_stage_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        get_stage("nope")


def test_replace_dir_swaps_the_whole_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with replace_dir(out) as staging:
        (staging / "new.txt").write_text("new")
        assert not (out / "new.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_keeps_the_old_folder_when_the_block_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replace_dir(out) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("marker", ["params.yaml", "dvc.yaml", ".git", ".dvc"])
def test_replace_dir_refuses_a_project_folder(tmp_path: Path, marker: str) -> None:
    (tmp_path / marker).mkdir()
    with pytest.raises(UnsafeOutput, match=f"holds {marker}"), replace_dir(tmp_path):
        pytest.fail("the block ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == [marker]


def test_replace_dir_refuses_a_file_and_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeOutput, match="is a file"), replace_dir(tmp_path / "notes.txt"):
        pytest.fail("the block ran")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(UnsafeOutput, match="holds the working folder"), replace_dir(tmp_path):
        pytest.fail("the block ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "work"]


def test_templates_stage_writes_the_library(tmp_path: Path) -> None:
    out = tmp_path / "templates"
    cfg = load_config(ROOT / "params.yaml", overrides=[f"templates.out_dir={out}"])
    run = get_stage("templates")
    for _ in range(2):  # the second run replaces the first run's output
        result = run(cfg)
        documents = sorted(out.glob("*.docx"))
        assert result.stage == "templates"
        assert result.outputs == [str(out)]
        assert result.metrics["templates"] == len(documents) >= 8
        assert json.loads((out / "index.json").read_text())
