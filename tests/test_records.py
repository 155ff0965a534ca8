"""Records: SFT rendering and UFO's result record built from a real expert trajectory."""

import json

from lamops.agents.expert import ExpertAgent
from lamops.env.families import sample_task
from lamops.env.word import WordEnv
from lamops.records import ResultRecord, Trajectory


def _trajectory(family="highlight_phrase", template="plain_text", seed=1) -> Trajectory:
    env = WordEnv()
    try:
        return ExpertAgent().run(env, sample_task(family, template, seed))
    finally:
        env.close()


def test_result_record_follows_ufo_shape():
    traj = _trajectory()
    rec = ResultRecord.from_trajectory(traj, time_cost={"prefill": 0.5})
    data = json.loads(rec.model_dump_json())
    assert set(data) == {
        "unique_id",
        "app",
        "original",
        "execution_result",
        "instantiation_result",
        "time_cost",
    }
    assert data["execution_result"]["result"]["complete"] == "yes"
    assert data["execution_result"]["error"] is None
    plan = data["instantiation_result"]["prefill"]["result"]["instantiated_plan"]
    assert [p["Step"] for p in plan] == [s.step for s in traj.task.action_plan]
    assert all(p["Success"] for p in plan)
    assert plan[1]["MatchedControlText"] == "Text Highlight Color"
    assert data["instantiation_result"]["instantiation_evaluation"] == {"result": None, "error": None}
    assert abs(data["time_cost"]["total"] - (0.5 + traj.seconds)) < 1e-9


def test_failed_trajectory_records_the_error():
    traj = _trajectory()
    traj.error = "step 2: no visible control matches 'Sparkle'"
    rec = ResultRecord.from_trajectory(traj)
    assert rec.execution_result.error["message"].startswith("step 2")


def test_step_renders_to_sft_pair_with_name_before_label():
    traj = _trajectory()
    pair = traj.steps[1].to_sft()
    assert pair["prompt"].startswith("<Available Control Item:>")
    completion = json.loads(pair["completion"])
    assert completion["control_name"] == "Text Highlight Color"
    assert pair["completion"].index('"control_name"') < pair["completion"].index('"control_label"')
