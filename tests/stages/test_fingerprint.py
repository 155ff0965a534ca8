"""lamops.stages.fingerprint on a tiny fake project: a stage is skipped exactly when the params keys, deps and
outs dvc.yaml declares for it are unchanged under the effective (profile + overrides) config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import ROOT

from lamops.config import load_config
from lamops.stages.base import StageResult
from lamops.stages.fingerprint import run_unless_unchanged, stage_spec, stamp_file

DVC_YAML = """
stages:
  templates:
    cmd: lamops templates
    deps:
      - inputs/notes.txt
      - inputs/folder
    params:
      - templates.out_dir
      - sources.seed
      - model
    outs:
      - ${templates.out_dir}
      - ${templates.out_dir}-summary.json:
          persist: true
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "inputs" / "folder").mkdir(parents=True)
    (tmp_path / "inputs" / "notes.txt").write_text("one")
    (tmp_path / "inputs" / "folder" / "a.txt").write_text("a")
    return tmp_path


class FakeStage:
    """Stands in for `templates`: writes its outs and counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, cfg) -> StageResult:
        self.runs += 1
        out = cfg.path(cfg.templates.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.json").write_text(json.dumps({"seed": cfg.sources.seed}))
        Path(f"{out}-summary.json").write_text("{}")
        return StageResult(
            stage="templates", outputs=[str(out)], metrics={"docs": 3}, seconds=0.1, message="ok"
        )


def run(project: Path, stage: FakeStage, *overrides: str, force: bool = False, name: str = "templates"):
    cfg = load_config(project / "params.yaml", overrides=overrides)
    return run_unless_unchanged(cfg, name, stage, force=force)


def test_a_second_run_with_nothing_changed_is_skipped_and_says_so(project: Path) -> None:
    stage = FakeStage()
    first = run(project, stage)
    second = run(project, stage)
    assert stage.runs == 1
    assert first.message == "ok"
    assert second.message.startswith("unchanged since ") and "skipped (inputs digest " in second.message
    assert second.stage == "templates" and second.metrics == {"docs": 3}
    assert stamp_file(load_config(project / "params.yaml"), "templates").is_file()


def test_changing_a_declared_params_key_reruns(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    run(project, stage, "sources.seed=7")
    assert stage.runs == 2
    run(project, stage, "sources.seed=7")
    assert stage.runs == 2


def test_a_key_of_a_whole_section_param_counts(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    run(project, stage, "model.hidden_size=96")
    assert stage.runs == 2


def test_changing_an_undeclared_key_does_not_rerun(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    run(project, stage, "sources.docs_pages=3", "collect.workers=0")
    assert stage.runs == 1


def test_changing_a_dep_file_or_a_file_in_a_dep_folder_reruns(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    (project / "inputs" / "notes.txt").write_text("two")
    run(project, stage)
    (project / "inputs" / "folder" / "b.txt").write_text("b")
    run(project, stage)
    assert stage.runs == 3


def test_byte_code_in_a_dep_folder_is_ignored_as_dvcignore_says(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    (project / "inputs" / "folder" / "__pycache__").mkdir()
    (project / "inputs" / "folder" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    run(project, stage)
    assert stage.runs == 1


def test_a_deleted_or_edited_out_reruns(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    shutil.rmtree(project / "data" / "templates")
    run(project, stage)
    assert stage.runs == 2
    (project / "data" / "templates-summary.json").write_text('{"edited": true}')
    run(project, stage)
    assert stage.runs == 3


def test_force_runs_an_unchanged_stage(project: Path) -> None:
    stage = FakeStage()
    run(project, stage)
    run(project, stage, force=True)
    assert stage.runs == 2


def test_a_failed_run_leaves_no_stamp(project: Path) -> None:
    def failing(cfg) -> StageResult:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(project, failing)
    assert not stamp_file(load_config(project / "params.yaml"), "templates").exists()


def test_a_stage_without_a_dvc_stage_always_runs(project: Path) -> None:
    calls = []

    def promote(cfg) -> StageResult:
        calls.append(1)
        return StageResult(stage="promote", outputs=[], metrics={}, seconds=0.0, message="promoted")

    run(project, promote, name="promote")
    run(project, promote, name="promote")
    assert len(calls) == 2


def test_outs_and_params_are_resolved_against_the_effective_config(project: Path) -> None:
    cfg = load_config(project / "params.yaml", overrides=["templates.out_dir=elsewhere/t"])
    spec = stage_spec(cfg, "templates")
    assert spec is not None
    assert spec.outs == (project / "elsewhere/t", project / "elsewhere/t-summary.json")
    assert spec.params["templates.out_dir"] == "elsewhere/t"
    assert spec.params["model"]["hidden_size"] == cfg.model.hidden_size


def test_a_params_key_missing_from_the_config_is_an_error_naming_it(project: Path) -> None:
    (project / "dvc.yaml").write_text(DVC_YAML.replace("sources.seed", "sources.sed"))
    cfg = load_config(project / "params.yaml")
    with pytest.raises(ValueError, match=r"stage templates: 'sources.sed' is not a key of the config"):
        stage_spec(cfg, "templates")


def test_the_repository_dvc_yaml_resolves_for_every_dvc_stage() -> None:
    from lamops.stages import REGISTRY_STAGES, STAGES

    cfg = load_config(ROOT / "params.yaml", "ci")
    for name in STAGES:
        spec = stage_spec(cfg, name)
        assert (spec is None) == (name in REGISTRY_STAGES), name
        if spec is not None:
            assert spec.outs and spec.params, name
            code = [dep for dep in spec.deps if "lamops" in dep.parts]
            assert all(dep.exists() for dep in code), [d for d in code if not d.exists()]


def test_an_out_the_run_did_not_write_is_recorded_as_missing_and_does_not_force_reruns(project: Path) -> None:
    stage = FakeStage()

    def without_summary(cfg) -> StageResult:
        result = stage(cfg)
        Path(f"{cfg.path(cfg.templates.out_dir)}-summary.json").unlink()
        return result

    run(project, without_summary)
    skipped = run(project, without_summary)
    assert stage.runs == 1
    assert skipped.outputs == [str(project / "data" / "templates")]
