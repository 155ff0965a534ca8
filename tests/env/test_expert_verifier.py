"""The expert (grounding, failure on bad plans, SFT pairs) and the verifier (careless agents fail)."""

from __future__ import annotations

import json
import re

import docx
import pytest

from lamops.agents.expert import ExpertAgent, ground, match_score
from lamops.env.families import sample_task
from lamops.env.observation import ControlInfo
from lamops.env.word import WordEnv
from lamops.records import InstantiatedTask, PlanStep


@pytest.fixture(scope="module")
def env():
    e = WordEnv()
    yield e
    e.close()


def controls(*texts: str) -> list[ControlInfo]:
    return [ControlInfo(label=str(i), control_text=t, control_type="Button") for i, t in enumerate(texts, 1)]


def emphasize_task():
    task = sample_task("emphasize_phrase", "plain_text", 0)
    assert task is not None
    return task


# ---- grounding -----------------------------------------------------------------------------------------
def test_match_score():
    assert match_score("Bold", "Bold") == 100
    assert match_score("  bold ", "BOLD") == 100
    assert match_score("Highlight", "Text Highlight Color") >= 80
    assert match_score("Highlight", "Page Number") < 60
    assert match_score("Sparkle Button", "Bold") < 60
    assert 0 <= match_score("ab", "Table") <= 100


def test_ground_prefers_exact_over_partial():
    c, score = ground("Delete", controls("Delete Comment", "Delete", "Delete All Comments in Document"))
    assert c.control_text == "Delete" and c.label == "2" and score == 100
    c, score = ground("Delete", controls("Delete Comment", "Bold"))
    assert c.control_text == "Delete Comment" and 80 <= score < 100
    c, score = ground("Anything", [])
    assert c is None


def test_ground_ties_go_to_first_in_layout_order():
    c, _ = ground("Blank", controls("Blank", "Blank"))
    assert c.label == "1"


# ---- the expert fails on bad plans ---------------------------------------------------------------------
def _with_plan(task: InstantiatedTask, steps: list[PlanStep]) -> InstantiatedTask:
    return task.model_copy(update={"action_plan": steps})


def test_expert_fails_on_unknown_control(env):
    task = emphasize_task()
    steps = list(task.action_plan)
    steps[1] = steps[1].model_copy(update={"control_text": "Sparkle Button"})
    traj = ExpertAgent().run(env, _with_plan(task, steps))
    assert not traj.success
    assert traj.error and "Sparkle Button" in traj.error
    assert len(traj.steps) == 1  # the select step ran, then grounding failed
    assert traj.verdict.complete == "no"


def test_expert_fails_on_vague_step(env):
    task = emphasize_task()
    steps = [
        task.action_plan[0],
        PlanStep(step=2, subtask="Make it stand out.", control_text="make it pop", function="click_input"),
    ]
    traj = ExpertAgent().run(env, _with_plan(task, steps))
    assert not traj.success
    assert "make it pop" in traj.error


def test_expert_fails_when_a_step_is_refused(env):
    task = emphasize_task()
    # clicking Bold with nothing selected is refused by the environment
    steps = [PlanStep(step=1, subtask="Bold.", control_text="Bold", function="click_input")]
    traj = ExpertAgent().run(env, _with_plan(task, steps))
    assert not traj.success
    assert traj.error and traj.error.startswith("step 1 failed")
    assert traj.steps and traj.steps[0].ok is False


def test_stricter_min_score_rejects_partial_match(env):
    task = sample_task("highlight_phrase", "plain_text", 0)
    steps = [
        s.model_copy(update={"control_text": "Highlight"}) if s.control_text == "Text Highlight Color" else s
        for s in task.action_plan
    ]
    ok = ExpertAgent().run(env, _with_plan(task, steps))
    assert ok.success, (ok.error, ok.verdict.reason)
    strict = ExpertAgent(min_score=95).run(env, _with_plan(task, steps))
    assert not strict.success and "Highlight" in strict.error


# ---- the verifier catches careless agents --------------------------------------------------------------
def test_bolding_whole_document_fails(env):
    task = emphasize_task()
    env.reset(task)
    assert env.step({"function": "keyboard_input", "args": {"keys": "^a"}}).ok
    for prop in task.params["props"]:
        res = env.step({"control_name": prop.capitalize(), "function": "click_input", "args": {}})
        assert res.ok, res.result
    v = env.verify()
    # the phrase itself is formatted, so only the collateral check can catch it
    assert all(v.sub_scores[f"phrase_{p}"] == "yes" for p in task.params["props"]), v
    assert v.complete == "no"
    assert v.sub_scores["no_collateral_changes"] == "no"
    assert "changed outside the task" in v.reason


def test_deleting_the_phrase_fails_text_intact(env):
    task = emphasize_task()
    env.reset(task)
    assert env.step({"function": "select_text", "args": {"text": task.params["phrase"]}}).ok
    assert env.step({"function": "keyboard_input", "args": {"keys": "{DELETE}"}}).ok
    v = env.verify()
    assert v.complete == "no"
    assert v.sub_scores["text_intact"] == "no"


def test_expert_passes_and_subscores(env):
    task = emphasize_task()
    traj = ExpertAgent().run(env, task)
    assert traj.success and traj.error is None
    v = traj.verdict
    assert v.sub_scores["document_reopens"] == "yes"
    assert v.sub_scores["no_collateral_changes"] == "yes"
    assert v.sub_scores["text_intact"] == "yes"
    assert v.sub_scores["document_changed"] == "yes"
    assert set(v.sub_scores.values()) == {"yes"}


def test_noop_episode_fails_with_document_changed_no(env):
    env.reset(emphasize_task())
    v = env.verify()
    assert v.complete == "no"
    assert v.sub_scores["document_changed"] == "no"
    assert v.sub_scores["document_reopens"] == "yes"


def test_foreign_task_is_unsure(env):
    task = InstantiatedTask(task_id="foreign-1", template="plain_text", request="Make it look nicer.")
    assert task.family is None
    env.reset(task)
    env.step({"function": "keyboard_input", "args": {"keys": "^aHello"}})
    v = env.verify()
    assert v.complete == "unsure"
    assert v.sub_scores.get("document_reopens") == "yes"


# ---- SFT pairs and saving -------------------------------------------------------------------------------
def test_trajectory_steps_render_to_sft_pairs(env):
    task = sample_task("highlight_phrase", "plain_text", 3)
    seen: list[str] = []
    real_step = env.step

    def spy(action):
        seen.append(env.observe().prompt(env.view))
        return real_step(action)

    env.step = spy
    try:
        traj = ExpertAgent().run(env, task)
    finally:
        del env.step
    assert traj.success, traj.verdict.reason
    assert len(traj.steps) == len(task.action_plan) == len(seen)
    for k, (step, prompt) in enumerate(zip(traj.steps, seen, strict=True)):
        pair = step.to_sft()
        assert set(pair) == {"prompt", "completion"}
        assert pair["prompt"] == prompt
        assert "<Available Control Item:>" in pair["prompt"] and task.request in pair["prompt"]
        body = json.loads(pair["completion"])
        assert list(body) == [
            "thought",
            "control_name",
            "control_label",
            "function",
            "args",
            "status",
            "plan",
        ]
        text = pair["completion"]
        assert text.index('"control_name"') < text.index('"control_label"')
        assert body["status"] == ("FINISH" if k == len(traj.steps) - 1 else "CONTINUE")
        assert body["function"] == task.action_plan[k].function
        if task.action_plan[k].control_text:
            label = body["control_label"]
            # the control's line: `label:name`, with `:Type` where another control shares the name
            assert re.search(rf"\n{label}:{re.escape(body['control_name'])}(:[A-Za-z]+)?\n", pair["prompt"])
        assert len(body["plan"]) == len(task.action_plan) - k - 1
    # the first prompt is the reset observation
    assert "(none)" in traj.steps[0].prompt


def test_expert_saves_final_document(env, tmp_path):
    task = emphasize_task()
    traj = ExpertAgent().run(env, task, out_dir=tmp_path / "finals")
    assert traj.success
    assert traj.final_document and traj.final_document.endswith(f"{task.task_id}.docx")
    doc = docx.Document(traj.final_document)
    props = task.params["props"]
    phrase_runs = [r for p in doc.paragraphs for r in p.runs if r.text and r.text in task.params["phrase"]]
    assert phrase_runs and all(getattr(r.font, props[0]) for r in phrase_runs)
    assert ExpertAgent().run(env, task).final_document is None
