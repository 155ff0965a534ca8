"""The data stages in-process on a small corpus: outputs, quarantines, gates and their MLflow runs."""

import json
from pathlib import Path

import pytest
from helpers import copy_project
from small_project import TASKS, config

from lamops.stages import get_stage


@pytest.fixture
def project(data_project: Path) -> Path:
    """The session's small data project (tests/small_project.py): read only here."""
    return data_project


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def runs(root: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lamops")
    return {r.info.run_name: r for r in client.search_runs(experiment.experiment_id)}


def test_every_stage_wrote_its_outputs(project: Path):
    data = project / "data"
    pairs = lines(data / "task_plans/collected/pairs.jsonl")
    rejects = lines(data / "task_plans/collected/quarantine.jsonl")
    stats = json.loads((data / "task_plans/collected/stats.json").read_text())
    assert stats["kept"] == len(pairs) > 0
    assert stats["dropped_total"] == len(rejects) == sum(stats["dropped"].values())
    assert all(r["reason"] and r["origin"] for r in rejects)
    evolved = lines(data / "task_plans/evolved/pairs.jsonl")
    assert evolved and all(len(p["parents"]) == 2 for p in evolved)
    tasks = lines(data / "instantiated/tasks.jsonl")
    records = lines(data / "instantiated/records.jsonl")
    assert len(records) == TASKS and {t["task_id"] for t in tasks} <= {r["unique_id"] for r in records}
    assert all(
        set(r["time_cost"]) >= {"choose_template", "prefill", "instantiation_evaluation", "total"}
        for r in records
    )
    judged = lines(data / "trajectories/judged/judged.jsonl")
    assert sorted(t["task"]["task_id"] for t in judged) == sorted(t["task_id"] for t in tasks)
    sets = data / "datasets"
    for name in ("plan_sft", "sft", "reward", "tasks"):
        assert (sets / name / "train.jsonl").is_file() and (sets / name / "test.jsonl").is_file()
    test_ids = set((sets / "test_ids.txt").read_text().split())
    for name in ("plan_sft", "sft", "reward"):
        assert not {r["task_id"] for r in lines(sets / name / "train.jsonl")} & test_ids
    metrics = json.loads((project / "metrics/data.json").read_text())
    assert set(metrics) >= {"sources", "collect", "evolve", "instantiate", "execute", "judge", "datasets"}


def test_every_data_stage_counts_kept_plus_quarantined_as_read(project: Path):
    cfg = config(project)
    folders = {
        "collect": cfg.collect.out_dir,
        "evolve": cfg.evolve.out_dir,
        "instantiate": cfg.instantiate.out_dir,
        "execute": cfg.execute.out_dir,
        "judge": cfg.judge.out_dir,
        "datasets": cfg.datasets.out_dir,
    }
    for stage, folder in folders.items():
        stats = json.loads((project / folder / "stats.json").read_text())
        assert stats["by_file"], stage
        for name, c in stats["by_file"].items():
            assert c["kept"] + c["quarantined"] == c["read"] > 0, (stage, name, c)
        for key in ("read", "kept", "quarantined"):
            assert stats[key] == sum(c[key] for c in stats["by_file"].values()), (stage, key)
    collect = json.loads((project / cfg.collect.out_dir / "stats.json").read_text())
    assert collect["quarantined"] > 0 and len(collect["by_file"]) == collect["files"]
    instantiate = json.loads((project / cfg.instantiate.out_dir / "stats.json").read_text())
    assert len(instantiate["by_file"]) == 2
    assert instantiate["passed"] + instantiate["rejected"] == instantiate["sampled"] == TASKS


def test_a_count_that_does_not_add_up_fails_the_stage():
    from lamops.stages.base import RecordsLost, checked_counts, file_counts

    ok = checked_counts("s", {"b": file_counts(3, 2, 1), "a": file_counts(1, 1, 0)})
    assert ok == {
        "read": 4,
        "kept": 3,
        "quarantined": 1,
        "by_file": {"a": ok["by_file"]["a"], "b": ok["by_file"]["b"]},
    }
    with pytest.raises(RecordsLost, match=r"s: b: 3 records read, but 1 kept \+ 1 quarantined"):
        checked_counts("s", {"a": file_counts(1, 1, 0), "b": file_counts(3, 1, 1)})


def test_stage_runs_are_in_mlflow(project: Path):
    found = runs(project)
    assert {"sources", "collect", "evolve", "instantiate", "execute", "judge", "datasets"} <= set(found)
    collect = found["collect"]
    assert collect.data.metrics["kept"] > 0
    assert [d.dataset.name for d in collect.inputs.dataset_inputs] == ["task_plans_collected"]


def test_a_damaged_input_line_is_quarantined_and_the_rest_kept(project: Path, tmp_path: Path):
    root = copy_project(project, tmp_path / "p")
    pairs = root / "data/task_plans/collected/pairs.jsonl"
    good = pairs.read_text().splitlines()
    pairs.write_bytes(
        "\n".join(good).encode()
        + b'\n{"task_id": "a/../../b", "task": "x", "plan": [], "source": "howto", "origin": "o"}\n'
        + b"\xff\xfe\n"
        + b'{"task_id": "z", "task": '
        + b'"'
        + b"y" * 3_000_000
        + b'"}\n'
    )
    get_stage("evolve")(config(root))
    quarantine = lines(root / "data/task_plans/evolved/quarantine.jsonl")
    malformed = [q for q in quarantine if q["reason"] == "malformed"]
    assert len(malformed) == 3
    assert all(len(q["record"]) < 3000 for q in malformed)
    stats = json.loads((root / "data/task_plans/evolved/stats.json").read_text())
    assert stats["input"] == len(good)
    counts = {"read": len(good) + 3, "kept": len(good), "quarantined": 3}
    assert {k: stats[k] for k in counts} == counts
    assert stats["by_file"] == {"data/task_plans/collected/pairs.jsonl": counts}


def test_a_failing_gate_fails_the_stage_and_logs_its_report(project: Path, tmp_path: Path):
    from lamops.validation import DataValidationError

    root = copy_project(project, tmp_path / "p")
    pairs = root / "data/task_plans/collected/pairs.jsonl"
    rows = lines(pairs)
    for row in rows:  # plans of 16 steps: any two combined exceed the gate's 30 steps
        row["plan"] = [f"Step {k}." for k in range(16)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = (root / "data/task_plans/evolved/pairs.jsonl").read_bytes()
    with pytest.raises(DataValidationError, match="n_steps"):
        get_stage("evolve")(config(root, "evolve.seed=1"))
    assert (root / "data/task_plans/evolved/pairs.jsonl").read_bytes() == before  # nothing half-written
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lamops").experiment_id
    failed = [
        r for r in client.search_runs(experiment) if r.info.run_name == "evolve" and r.info.status == "FAILED"
    ]
    assert len(failed) == 1, [(r.info.run_name, r.info.status) for r in client.search_runs(experiment)]
    artifacts = [a.path for a in client.list_artifacts(failed[0].info.run_id, "validation")]
    assert artifacts == ["validation/task_plans.md"]
