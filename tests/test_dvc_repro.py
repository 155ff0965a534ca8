"""`dvc repro` runs the pipeline through the CLI, caches it, and reruns only when a stage's inputs change."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git + DVC project holding the pipeline definition and the stage code dvc.yaml depends on."""
    for rel in (
        "dvc.yaml",
        "params.yaml",
        ".dvcignore",
        "src/lamops/env/templates.py",
        "src/lamops/stages/templates.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    return tmp_path


def test_repro_builds_templates_then_skips_then_reruns_on_param_change(project: Path) -> None:
    run(["dvc", "repro", "templates"], project)
    index = json.loads((project / "data/templates/index.json").read_text())
    assert len(index) >= 8 and all((project / "data/templates" / e["file"]).is_file() for e in index)

    second = run(["dvc", "repro", "templates"], project)
    assert "didn't change, skipping" in second

    params = project / "params.yaml"
    params.write_text(params.read_text().replace("out_dir: data/templates", "out_dir: data/library"))
    third = run(["dvc", "repro", "templates"], project)
    assert "Running stage 'templates'" in third
    assert (project / "data/library/index.json").is_file()
