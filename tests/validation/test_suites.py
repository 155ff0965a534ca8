"""The boundary suites: good rows pass, each rule fails on a crafted bad row and the report shows the value.

Great Expectations is imported and its context built once, by the module fixture `gx`; every later
validation takes ~0.1-0.3 s."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lamops.records import InstantiatedTask, PlanStep, TaskPlanPair, Trajectory, TrajectoryStep, Verdict
from lamops.validation import (
    ALLOWED_FUNCTIONS,
    BOUNDARIES,
    DataValidationError,
    ValidationReport,
    check,
    frame,
    validate,
)


@pytest.fixture(scope="module", autouse=True)
def gx():
    """Warm GX once: the first validation imports it and builds the context (~3-6 s)."""
    validate("plan_sft", pd.DataFrame({"prompt": ["p"], "completion": ["c"], "task_id": ["t"]}))


# ---- good records -----------------------------------------------------------------------------------
def _pair(
    task_id="pair-1", task="Make the first paragraph bold", plan=("Select it", "Click Bold"), source="doc"
):
    return TaskPlanPair(task_id=task_id, task=task, plan=list(plan), source=source, origin="docs/bold.md#1")


def _task(task_id="task-1", functions=("select_paragraph", "click_input"), template="plain_text"):
    steps = [PlanStep(step=k + 1, subtask=f"step {k + 1}", function=f) for k, f in enumerate(functions)]
    return InstantiatedTask(
        task_id=task_id,
        family="bold",
        template=template,
        request="Make the first paragraph bold",
        action_plan=steps,
    )


def _trajectory(task_id="task-1", agent="expert", statuses=("CONTINUE", "FINISH"), complete="yes"):
    functions = ["select_paragraph", "click_input", "click_input"][: len(statuses)]
    steps = [
        TrajectoryStep(step=k + 1, prompt=f"observation {k}", function=f, status=s)
        for k, (f, s) in enumerate(zip(functions, statuses, strict=True))
    ]
    verdict = Verdict(complete=complete, reason="bold") if complete else None
    return Trajectory(task=_task(task_id), agent=agent, steps=steps, verdict=verdict)


def _sft(task_id="task-1", split="train", **overrides):
    step = TrajectoryStep(step=1, prompt="observation", function="click_input", status="FINISH")
    return {**step.to_sft(), "task_id": task_id, "split": split, **overrides}


def _reward(task_id="task-1", label=1):
    return {
        "prompt": "observation",
        "completion": '{"function": "click_input"}',
        "label": label,
        "task_id": task_id,
    }


def _good(boundary: str) -> list:
    return {
        "task_plans": [_pair("pair-1"), _pair("pair-2", source="evolved")],
        "instantiated": [_task("task-1"), _task("task-2", functions=list(ALLOWED_FUNCTIONS))],
        "trajectories": [
            _trajectory("task-1"),
            _trajectory("task-1", agent="lam2", statuses=("CONTINUE",) * 3, complete="no"),
            _trajectory("task-2", statuses=(), complete=None),
        ],
        "sft": [_sft("task-1"), _sft("task-2", split="test")],
        "reward": [_reward("task-1", 1), _reward("task-2", -1)],
        "plan_sft": [
            {"prompt": "Make it bold", "completion": "1. Select\n2. Click Bold", "task_id": "pair-1"}
        ],
    }[boundary]


def _only_failure(report: ValidationReport):
    assert not report.success
    assert len(report.failures) == 1, report.to_text()
    return report.failures[0]


# ---- the API --------------------------------------------------------------------------------------------
def test_importing_the_package_does_not_import_great_expectations():
    code = "import sys, lamops.validation; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_allowed_functions_are_the_action_space():
    assert set(ALLOWED_FUNCTIONS) == {
        "click_input",
        "set_edit_text",
        "keyboard_input",
        "wheel_mouse_input",
        "select_text",
        "select_paragraph",
        "select_table",
        "insert_table",
        "summary",
    }


@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_good_rows_pass(boundary):
    df = frame(boundary, _good(boundary))
    assert list(df.columns[: len(BOUNDARIES[boundary].columns)]) == list(BOUNDARIES[boundary].columns)
    report = check(boundary, df, forbidden_ids={"frozen-test-1"})
    assert report.success and report.failures == []
    assert report.rows == len(df) and report.evaluated > 5


def test_a_real_expert_episode_passes():
    from lamops.agents.expert import ExpertAgent
    from lamops.env.families import sample_task
    from lamops.env.word import WordEnv

    env = WordEnv()
    try:
        traj = ExpertAgent().run(env, sample_task("highlight_phrase", "plain_text", 1))
    finally:
        env.close()
    check("instantiated", frame("instantiated", [traj.task]))
    check("trajectories", frame("trajectories", [traj]))
    samples = [{**s.to_sft(), "task_id": traj.task.task_id, "split": "train"} for s in traj.steps]
    check("sft", frame("sft", samples))


def test_unknown_boundary_names_the_known_ones():
    with pytest.raises(ValueError, match="task_plans"):
        validate("collected", pd.DataFrame())


def test_frame_takes_dicts_and_parquet_arrays():
    as_dict = _task().model_dump()
    df = frame("instantiated", [as_dict])
    assert df.loc[0, "functions"] == ["select_paragraph", "click_input"] and df.loc[0, "n_steps"] == 2
    # A frame read back from Parquet holds numpy arrays in its list columns.
    df["functions"] = [np.array(["select_paragraph", "frobnicate"], dtype=object)]
    failure = _only_failure(validate("instantiated", df))
    assert failure.examples[0]["function"] == "frobnicate"


# ---- each rule fails on a crafted bad row ---------------------------------------------------------------
def test_duplicate_task_id_shows_both_rows():
    report = validate("task_plans", frame("task_plans", [_pair("pair-1"), _pair("pair-2"), _pair("pair-1")]))
    failure = _only_failure(report)
    assert failure.expectation.type == "expect_column_values_to_be_unique"
    assert failure.expectation.column == "task_id" and failure.unexpected_count == 2
    assert [row["task_id"] for row in failure.examples] == ["pair-1", "pair-1"]


@pytest.mark.parametrize("bad_id", ["a/b", "has space", ".hidden", "trailing\n"])
def test_unsafe_task_id(bad_id):
    rows = [_pair().model_dump(), {**_pair("pair-2").model_dump(), "task_id": bad_id}]
    failure = _only_failure(validate("task_plans", frame("task_plans", rows)))
    assert failure.expectation.type == "expect_column_values_to_match_regex"
    assert failure.examples[0]["task_id"] == bad_id


@pytest.mark.parametrize(
    ("change", "expectation", "column", "bad"),
    [
        ({"task": "Bold"}, "expect_column_value_lengths_to_be_between", "task", "Bold"),
        (
            {"task": "x" * 301},
            "expect_column_value_lengths_to_be_between",
            "task",
            "x" * 80 + "... (301 chars)",
        ),
        ({"source": "web"}, "expect_column_values_to_be_in_set", "source", "web"),
        ({"plan": [f"step {k}" for k in range(31)]}, "expect_column_values_to_be_between", "n_steps", 31),
        ({"plan": []}, "expect_column_values_to_be_between", "n_steps", 0),
        ({"plan": ["Select it", "  "]}, "expect_column_values_to_match_regex", "text", "  "),
    ],
)
def test_task_plans_rules(change, expectation, column, bad):
    rows = [_pair().model_dump(), {**_pair("pair-2").model_dump(), **change}]
    failure = _only_failure(validate("task_plans", frame("task_plans", rows)))
    assert (failure.expectation.type, failure.expectation.column) == (expectation, column)
    assert failure.examples[0][column] == bad


def test_step_count_must_match_the_plan():
    df = frame("task_plans", [_pair()]).assign(n_steps=5)
    failure = _only_failure(validate("task_plans", df))
    assert failure.expectation.type == "expect_column_pair_values_to_be_equal"
    assert failure.examples[0]["n_steps"] == 5 and failure.examples[0]["n_plan"] == 2


def test_bad_function_name_is_shown_with_its_step():
    tasks = [_task(), _task("task-2", functions=["click_input", "double_click"])]
    report = validate("instantiated", frame("instantiated", tasks))
    failure = _only_failure(report)
    assert failure.view == "instantiated.steps" and failure.expectation.column == "function"
    assert failure.examples == [{"function": "double_click", "task_id": "task-2", "step": 2, "is_last": True}]


@pytest.mark.parametrize(
    ("change", "expectation", "column"),
    [
        ({"template": None}, "expect_column_values_to_not_be_null", "template"),
        ({"request": ""}, "expect_column_values_to_match_regex", "request"),
        ({"action_plan": []}, "expect_column_values_to_be_between", "n_steps"),
    ],
)
def test_instantiated_rules(change, expectation, column):
    rows = [_task().model_dump(), {**_task("task-2").model_dump(), **change}]
    failure = _only_failure(validate("instantiated", frame("instantiated", rows)))
    assert (failure.expectation.type, failure.expectation.column) == (expectation, column)
    assert failure.examples[0]["task_id"] == "task-2"


def test_step_status_done_is_rejected():
    row = _trajectory().model_dump()
    row["steps"][1]["status"] = "DONE"
    report = validate("trajectories", frame("trajectories", [row]))
    types = {(f.expectation.type, f.expectation.column, f.view) for f in report.failures}
    assert ("expect_column_values_to_be_in_set", "status", "trajectories.steps") in types
    assert ("expect_column_values_to_be_in_set", "last_status", "trajectories") in types
    step_failure = next(f for f in report.failures if f.expectation.column == "status")
    assert step_failure.examples[0]["status"] == "DONE" and step_failure.examples[0]["step"] == 2


@pytest.mark.parametrize(
    ("trajectories", "expectation", "column"),
    [
        ([_trajectory(), _trajectory()], "expect_compound_columns_to_be_unique", "task_id, agent"),
        ([_trajectory(statuses=("FINISH", "CONTINUE"))], "expect_column_values_to_be_in_set", "status"),
        ([_trajectory(agent=" ")], "expect_column_values_to_match_regex", "agent"),
    ],
)
def test_trajectory_rules(trajectories, expectation, column):
    failure = _only_failure(validate("trajectories", frame("trajectories", trajectories)))
    assert (failure.expectation.type, failure.expectation.column) == (expectation, column)
    assert failure.examples


def test_finish_before_the_last_step_names_the_condition():
    failure = _only_failure(
        validate("trajectories", frame("trajectories", [_trajectory(statuses=("FINISH", "CONTINUE"))]))
    )
    assert failure.expectation.kwargs["row_condition"] == "is_last == False"
    assert failure.examples[0] == {
        "status": "FINISH",
        "task_id": "task-1",
        "agent": "expert",
        "step": 1,
        "is_last": False,
        "function": "select_paragraph",
    }


def test_unknown_verdict_and_unequal_step_lists():
    df = frame("trajectories", [_trajectory()]).assign(complete="maybe", statuses=[["CONTINUE"]])
    failures = {f.expectation.column: f for f in validate("trajectories", df).failures}
    assert set(failures) == {"complete", "n_steps, n_statuses", "status"}
    assert failures["complete"].examples[0]["complete"] == "maybe"
    counts = failures["n_steps, n_statuses"].examples[0]
    assert (counts["n_steps"], counts["n_statuses"]) == (2, 1)
    # Step 2 has a function but no status: the padded step row shows the gap.
    gap = failures["status"]
    assert gap.expectation.type == "expect_column_values_to_not_be_null"
    assert (gap.examples[0]["step"], gap.examples[0]["function"], gap.examples[0]["status"]) == (
        2,
        "click_input",
        None,
    )


@pytest.mark.parametrize(
    ("row", "expectation", "column", "bad"),
    [
        (_sft(prompt=""), "expect_column_values_to_match_regex", "prompt", ""),
        (_sft(completion="click Bold"), "expect_column_values_to_be_null", "completion_error", None),
        (
            _sft(completion="[1, 2]"),
            "expect_column_values_to_be_null",
            "completion_error",
            "JSON list, not an object",
        ),
        (
            _sft(completion='{"function": "fly", "status": "FINISH"}'),
            "expect_column_values_to_be_in_set",
            "completion_function",
            "fly",
        ),
        (_sft(split="dev"), "expect_column_values_to_be_in_set", "split", "dev"),
    ],
)
def test_sft_rules(row, expectation, column, bad):
    failure = _only_failure(validate("sft", frame("sft", [_sft(), row])))
    assert (failure.expectation.type, failure.expectation.column) == (expectation, column)
    if bad is None:  # the parse error message
        assert failure.examples[0][column].startswith("not JSON:")
        assert failure.examples[0]["completion"] == "click Bold"
    else:
        assert failure.examples[0][column] == bad


def test_test_id_in_train_fails_and_in_test_passes():
    df = frame("sft", [_sft("task-1"), _sft("frozen-7", split="train"), _sft("frozen-8", split="test")])
    failure = _only_failure(validate("sft", df, forbidden_ids={"frozen-7", "frozen-8"}))
    assert failure.expectation.type == "expect_column_values_to_not_be_in_set"
    assert failure.expectation.kwargs["row_condition"] == "split == 'train'"
    assert [row["task_id"] for row in failure.examples] == ["frozen-7"]
    assert validate("sft", df).success  # no gate without forbidden_ids
    assert validate("sft", df, forbidden_ids=set()).success


@pytest.mark.parametrize("boundary", ["reward", "plan_sft", "instantiated"])
def test_test_id_gate_on_other_boundaries(boundary):
    df = frame(boundary, _good(boundary))
    failure = _only_failure(validate(boundary, df, forbidden_ids={df.loc[0, "task_id"]}))
    assert failure.expectation.type == "expect_column_values_to_not_be_in_set"
    assert failure.examples[0]["task_id"] == df.loc[0, "task_id"]


def test_reward_label_zero_and_a_single_class():
    failure = _only_failure(
        validate("reward", frame("reward", [_reward(label=1), _reward("t2", -1), _reward("t3", 0)]))
    )
    assert (failure.expectation.type, failure.expectation.column) == (
        "expect_column_values_to_be_in_set",
        "label",
    )
    assert failure.examples[0]["label"] == 0
    failure = _only_failure(validate("reward", frame("reward", [_reward(label=1)])))
    assert failure.expectation.type == "expect_column_distinct_values_to_contain_set"
    assert failure.observed == {"missing values": [-1]}


def test_plan_sft_empty_completion():
    rows = [*_good("plan_sft"), {"prompt": "Insert a table", "completion": "", "task_id": "pair-2"}]
    failure = _only_failure(validate("plan_sft", frame("plan_sft", rows)))
    assert (failure.expectation.column, failure.examples[0]["task_id"]) == ("completion", "pair-2")


def test_missing_column_and_empty_frame():
    failure = _only_failure(validate("reward", frame("reward", [_reward()]).drop(columns=["label"])))
    assert failure.expectation.type == "expect_table_columns_to_match_set"
    assert failure.observed == {"missing columns": ["label"]}
    failure = _only_failure(validate("plan_sft", frame("plan_sft", [])))
    assert (failure.expectation.type, failure.observed) == ("expect_table_row_count_to_be_between", 0)


# ---- what a user sees ----------------------------------------------------------------------------------
def test_error_message_names_boundary_rule_and_values():
    tasks = [_task(), _task("task-2", functions=["click_input", "double_click"])]
    with pytest.raises(DataValidationError) as caught:
        check("instantiated", frame("instantiated", tasks), forbidden_ids={"task-1"})
    message = str(caught.value)
    assert message.startswith("Data validation failed at boundary 'instantiated': 2 of ")
    assert "expect_column_values_to_be_in_set(column='function'" in message
    assert '"function": "double_click"' in message and '"task_id": "task-2"' in message
    assert "every function is in the action space" in message
    assert "expect_column_values_to_not_be_in_set(column='task_id', value_set=['task-1'])" in message
    assert "lamops/validation/suites.py" in message
    assert caught.value.report.boundary == "instantiated" and len(caught.value.report.failures) == 2


def test_markdown_and_json():
    report = validate("reward", frame("reward", [_reward(label=1), _reward("t2", -1), _reward("t3", 0)]))
    markdown = report.to_markdown()
    assert "# Validation of `reward`: FAILED" in markdown
    assert "| `expect_column_values_to_be_in_set` | `label` | `reward` | 1 |" in markdown
    assert '"label": 0' in markdown
    assert ValidationReport.model_validate_json(report.to_json()) == report
    assert "passed" in validate("reward", frame("reward", _good("reward"))).to_markdown()


def test_long_values_and_many_ids_are_cut():
    df = frame("sft", [_sft(prompt="p" * 5000, split="dev")])
    failure = _only_failure(validate("sft", df, forbidden_ids={f"frozen-{k}" for k in range(300)}))
    assert failure.examples[0]["prompt"] == "p" * 80 + "... (5000 chars)"
    report = validate(
        "sft", frame("sft", [_sft("frozen-1")]), forbidden_ids={f"frozen-{k}" for k in range(300)}
    )
    value_set = _only_failure(report).expectation.kwargs["value_set"]
    assert len(value_set) == 13 and value_set[-1] == "... (300 in all)"
