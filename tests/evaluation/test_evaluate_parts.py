"""The evaluate stage's small parts: which test rows are scored, the expert's timed row, the phase table, and
the errors that stop it before minutes of work."""

from __future__ import annotations

import shutil

import pytest
from helpers import ROOT

from lamops.config import load_config
from lamops.evaluation.offline import whole_tasks
from lamops.evaluation.online import expert_scores
from lamops.evaluation.report import phase_table, plot_rows
from lamops.records import InstantiatedTask, StepSFTRow, Trajectory, TrajectoryStep, Verdict


def rows(*tasks: tuple[str, int]) -> list[StepSFTRow]:
    return [
        StepSFTRow(task_id=t, step=k, prompt="p", completion="c") for t, n in tasks for k in range(1, n + 1)
    ]


def test_whole_tasks_never_cuts_a_task_in_two():
    data = rows(("a", 3), ("b", 2), ("c", 4))
    assert whole_tasks(data, None) == data
    assert [r.task_id for r in whole_tasks(data, 4)] == ["a", "a", "a", "b", "b"]
    assert [r.task_id for r in whole_tasks(data, 3)] == ["a", "a", "a"]
    assert [r.task_id for r in whole_tasks(data, 1)] == ["a", "a", "a"]  # at least one whole task


def task(task_id: str) -> InstantiatedTask:
    return InstantiatedTask(task_id=task_id, family="bold_phrase", template="plain_text", request="r")


def test_the_expert_row_takes_the_execute_stages_timings_and_fails_unexecuted_tasks():
    step = TrajectoryStep(step=1, prompt="p", function="click_input")
    done = Trajectory(
        task=task("t1"), agent="expert", steps=[step, step], verdict=Verdict(complete="yes", reason="ok")
    )
    scores = expert_scores(
        [done], [task("t1"), task("t2")], {"t1": {"seconds": 0.5, "step_latency": [0.1, 0.2]}}
    )
    assert [s.success for s in scores] == [True, False]
    assert scores[0].seconds == 0.5 and scores[0].step_latencies == (0.1, 0.2)
    assert scores[1].steps == 0


METRICS = {
    "lam1": {
        "planning": {"tsr": 10.0, "step_precision": 20.0, "step_recall": 30.0, "tasks": 5},
        "offline": {"object_acc": 1.0, "operation_acc": 2.0, "status_acc": 3.0, "ssr": 0.5, "tsr": 0.0},
        "online": {"tsr": 0.0, "completion_time_s": 1.5, "steps": 8.0, "step_latency_s": 0.2, "episodes": 4},
    },
    "lam4": {
        "offline": {"object_acc": 40.0, "operation_acc": 90.0, "status_acc": 80.0, "ssr": 35.0, "tsr": 12.5},
        "online": {
            "tsr": 25.0,
            "completion_time_s": 1.0,
            "steps": 4.0,
            "step_latency_s": 0.25,
            "episodes": 4,
        },
        "online_by_family": {"bold_phrase": {"tsr": 25.0, "episodes": 4}},
    },
    "expert": {
        "online": {"tsr": 75.0, "completion_time_s": 0.1, "steps": 3.5, "step_latency_s": 0.01, "episodes": 4}
    },
}


def test_the_phase_table_has_the_papers_three_tables_with_our_numbers_beside_theirs():
    table = phase_table(METRICS, ["lam1", "lam4"])
    assert "| LAM1 (ours) | 10.0 | 20.0 | 30.0 | 5 |" in table
    assert "| Object Acc | 1.0 | 40.0 | 39.4 | 87.8 |" in table
    assert "| TSR | 0.0 | 12.5 | 35.6 | 81.2 |" in table
    assert "| LAM4 | 25.0 | 1.000 | 4.000 | 0.250 | 4 |" in table
    assert "| expert (baseline) | 75.0 |" in table
    rows_ = plot_rows(METRICS, ["lam1", "lam4"])
    assert [r["phase"] for r in rows_["tsr_by_phase"]] == ["lam1", "lam4", "expert"]
    assert rows_["family_success"] == [{"phase": "lam4", "family": "bold_phrase", "tsr": 25.0, "episodes": 4}]


def test_evaluate_names_every_missing_model_before_doing_any_work(tmp_path):
    from lamops.stages import get_stage

    shutil.copy(ROOT / "params.yaml", tmp_path)
    cfg = load_config(tmp_path / "params.yaml", "tiny", ["evaluate.phases=[lam2, lam4]"])
    with pytest.raises(FileNotFoundError, match=r"lam2 \(.*models/lam2\), lam4 \(.*models/lam4\)"):
        get_stage("evaluate")(cfg)


def test_the_llm_plan_judge_needs_an_llm_endpoint(tmp_path, monkeypatch):
    from lamops.stages.evaluate import _plan_judge

    shutil.copy(ROOT / "params.yaml", tmp_path)
    cfg = load_config(tmp_path / "params.yaml", "tiny", ["evaluate.planning_judge=llm"])
    with pytest.raises(ValueError, match="llm.provider: openai"):
        _plan_judge(cfg)
    openai = load_config(tmp_path / "params.yaml", "tiny", ["llm.provider=openai"])
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    assert callable(_plan_judge(openai))
