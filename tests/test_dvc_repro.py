"""`dvc repro` runs the pipeline through the CLI, caches it, and reruns only the stages whose inputs changed;
`dvc exp run -S` runs an experiment with a changed param. On a fresh project holding the cheap stages only."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT

# A small corpus: `sources` in ~6 s instead of ~10 s, the same code paths.
SMALL_SOURCES = {"sources.docs_pages": 2, "sources.howto_articles": 60, "sources.queries": 20}


def run(cmd: Sequence[str], cwd: Path) -> str:
    """`cmd` in `cwd`, this venv's `dvc` and `lamops` first on PATH: its output, or a failure showing it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def make_project(path: Path, stages: Sequence[str], params: Mapping[str, Any] = SMALL_SOURCES) -> Path:
    """A fresh git + DVC project at `path`: dvc.yaml, params.yaml (with `params` set, dotted keys) and the
    code files the `stages` depend on in dvc.yaml (read from it, so a new dependency is copied too)."""
    definition = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    code = {dep for name in stages for dep in definition[name]["deps"] if dep.startswith("src/")}
    for rel in ("dvc.yaml", "params.yaml", ".dvcignore", *sorted(code)):
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / rel).is_dir() else shutil.copy
        copy(ROOT / rel, path / rel)
    set_params(path, params)
    # The stages' MLflow runs land in the project root (tracking.uri is relative): not part of the data.
    (path / ".gitignore").write_text("mlflow.db\nmlartifacts/\n__pycache__/\n")
    run(["git", "init", "-q"], path)
    run(["git", "config", "user.email", "test@lamops.invalid"], path)
    run(["git", "config", "user.name", "lamops tests"], path)
    run(["dvc", "init", "-q"], path)
    return path


def set_params(project: Path, values: Mapping[str, Any]) -> None:
    """Set dotted keys (`sources.seed`) in the project's params.yaml."""
    file = project / "params.yaml"
    params = yaml.safe_load(file.read_text())
    for key, value in values.items():
        *sections, leaf = key.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[leaf] = value
    file.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, ["templates", "sources"])


def test_repro_builds_templates_then_skips_then_reruns_on_param_change(project: Path) -> None:
    run(["dvc", "repro", "templates"], project)
    index = json.loads((project / "data/templates/index.json").read_text())
    assert len(index) >= 8 and all((project / "data/templates" / e["file"]).is_file() for e in index)

    second = run(["dvc", "repro", "templates"], project)
    assert "didn't change, skipping" in second

    set_params(project, {"templates.out_dir": "data/library"})
    third = run(["dvc", "repro", "templates"], project)
    assert "Running stage 'templates'" in third
    assert (project / "data/library/index.json").is_file()


def test_a_param_change_reruns_only_the_stages_that_read_it(project: Path) -> None:
    run(["dvc", "repro", "templates", "sources"], project)
    before = yaml.safe_load((project / "dvc.lock").read_text())["stages"]

    set_params(project, {"sources.seed": 7})
    assert "sources.seed" in run(["dvc", "status", "sources"], project)
    out = run(["dvc", "repro", "templates", "sources"], project)
    assert "Stage 'templates' didn't change, skipping" in out
    assert "Running stage 'sources'" in out
    after = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert after["sources"]["params"]["params.yaml"]["sources.seed"] == 7
    assert after["sources"]["outs"] != before["sources"]["outs"]  # another corpus
    assert after["templates"] == before["templates"]

    # A key no stage lists (a worker count: how fast, not what) reruns nothing.
    set_params(project, {"collect.workers": 1})
    assert "Data and pipelines are up to date" in run(["dvc", "repro", "templates", "sources"], project)


def test_exp_run_sets_a_param_and_exp_show_lists_it(project: Path) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "baseline"], project)

    run(["dvc", "exp", "run", "--name", "pages3", "-S", "sources.docs_pages=3", "sources"], project)
    assert len(list((project / "data/raw/docs").iterdir())) == 3  # the experiment's output, in the workspace

    rows = json.loads(run(["dvc", "exp", "show", "--json"], project))
    experiments = {
        exp["name"]: exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["sources"]
        for baseline in rows
        for exp in baseline.get("experiments") or []
    }
    assert experiments["pages3"]["docs_pages"] == 3
