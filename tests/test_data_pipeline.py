"""The data stages through `dvc repro` on the ci profile: twice from fresh clones (byte-identical outputs),
tracked in MLflow with counts and dataset inputs, summarised in the DVC metrics file."""

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

# Files that carry wall-clock timings by design (UFO's time_cost per sub-step, per-task execution times);
# everything else the data stages write must be byte-identical between runs.
TIMED = {"data/instantiated/records.jsonl", "data/trajectories/expert/timings.jsonl"}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("data_pipeline")]


def sh(cmd: list[str], cwd: Path, *, stdout_only: bool = False) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LAMOPS_PROFILE": "ci",
        "LAMOPS_PROGRESS": "0",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done.stdout if stdout_only else done.stdout + done.stderr


def fresh_clone(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file() and not rel.startswith(("data/", "metrics/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    sh(["git", "init", "-q"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"], dest)
    return dest


def outputs(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in (project / "data").rglob("*") if p.is_file()) + [
        "metrics/data.json"
    ]


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    made = []
    for name in ("a", "b"):
        project = fresh_clone(tmp_path_factory.mktemp(name))
        sh(["dvc", "repro", "datasets"], project)
        made.append(project)
    return made


def test_two_fresh_clones_give_byte_identical_data(clones):
    a, b = clones
    assert outputs(a) == outputs(b)
    differ = [
        rel for rel in outputs(a) if rel not in TIMED and not filecmp.cmp(a / rel, b / rel, shallow=False)
    ]
    assert differ == []
    assert len(outputs(a)) > 100  # one trajectory and one document per task, among the rest


def test_second_repro_does_nothing(clones):
    out = sh(["dvc", "repro", "datasets"], clones[0])
    assert "Running stage" not in out
    assert "didn't change" in out or "is up to date" in out


def test_metrics_answer_how_much_data_how_good(clones):
    # stdout only: DVC warns on stderr that the evaluate stage's metrics do not exist yet (data stages only).
    out = sh(["dvc", "metrics", "show", "--json"], clones[0], stdout_only=True)
    metrics = json.loads(out)
    flat = json.dumps(metrics)
    for key in ("collect", "evolve", "instantiate", "judge", "datasets", "sft_train", "dropped"):
        assert key in flat
    data = json.loads((clones[0] / "metrics/data.json").read_text())
    assert data["collect"]["kept"] > 0 and data["collect"]["dropped"]["duplicate"] > 0
    judged = data["judge"]
    assert judged["pass"] > 0 and judged["fail"] > 0  # the expert's plans are realistically imperfect
    assert data["datasets"]["sft_train"] > 0 and data["datasets"]["reward_train"] > 0


def test_every_data_stage_is_an_mlflow_run_with_counts_and_datasets(clones):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{clones[0] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lamops")
    runs = {r.info.run_name: r for r in client.search_runs(experiment.experiment_id)}
    for stage in ("sources", "collect", "evolve", "instantiate", "execute", "judge", "datasets"):
        assert stage in runs, stage
        assert runs[stage].info.status == "FINISHED"
        assert runs[stage].data.metrics, stage
        assert runs[stage].data.tags["lamops.profile"] == "ci"
    assert runs["collect"].data.metrics["kept"] > 0
    assert any(k.startswith("dropped.") for k in runs["collect"].data.metrics)
    assert runs["collect"].data.params["near_duplicate_threshold"] == "0.85"
    for stage in ("collect", "evolve", "instantiate", "judge", "datasets"):
        assert runs[stage].inputs.dataset_inputs, f"{stage} logged no dataset"
