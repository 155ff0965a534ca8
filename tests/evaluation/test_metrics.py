"""Unit tests of the evaluation metrics against hand-computed cases."""

import pytest

from lamops.evaluation.metrics import (
    EpisodeScore,
    PlanScore,
    StepKey,
    StepScore,
    by_family,
    extract_step,
    flatten_metrics,
    llm_plan_judge,
    match_steps,
    offline_metrics,
    online_by_family,
    online_metrics,
    parse_plan,
    planning_metrics,
    score_plan,
    score_step,
)

REFERENCE_PLAN = """\
1. Select the text 'by 12%'.
2. Go to the Home tab.
3. Click Text Highlight Color.
4. Choose Yellow.
"""


# ---- planning: parsing and step keys ---------------------------------------------------------------------
def test_parse_plan_strips_numbering_bullets_and_blank_lines():
    text = "1. Select the text.\n2) Go to   Home\n\n  - Step 3: Click Bold \n* Press Ctrl+B\n"
    text += "(5) Type x\n6 - y\n7."
    assert parse_plan(text) == ["Select the text.", "Go to Home", "Click Bold", "Press Ctrl+B", "Type x", "y"]


def test_parse_plan_keeps_unnumbered_lines_and_decimals_and_handles_empty():
    assert parse_plan("Click Bold\n1.5 cm margin\n**Bold** it") == [
        "Click Bold",
        "1.5 cm margin",
        "**Bold** it",
    ]
    assert parse_plan("") == []
    assert parse_plan(" \n\n\t\n") == []


@pytest.mark.parametrize(
    ("step", "key"),
    [
        ("Select the text 'by 12%'.", StepKey("select", "by 12%")),
        ('Type "Q3" in the Find what box', StepKey("type", "q3")),
        ("Click on **Bold** in the Font group", StepKey("click", "bold")),
        ("Then, click “OK”", StepKey("click", "ok")),
        ("Choose ‘Dark Blue’ from the list", StepKey("choose", "dark blue")),
        ("Click the document's 'Home' tab", StepKey("click", "home")),
        ("Replace 'a' with 'b'", StepKey("other", "a b")),
    ],
)
def test_extract_step_quoted_elements(step, key):
    assert extract_step(step) == key


@pytest.mark.parametrize(
    ("step", "key"),
    [
        ("Go to the Home tab.", StepKey("open", "home")),
        ("Navigate to Layout > Orientation", StepKey("open", "layout orientation")),
        ("Open the Insert tab and click Table", StepKey("open", "insert")),
        ("Click Text Highlight Color.", StepKey("click", "text highlight color")),
        ("Hit the Bold button", StepKey("click", "bold")),
        ("Press the Home tab", StepKey("click", "home")),
        ("Click Bold in the Font group.", StepKey("click", "bold")),
        ("In the Font group, click Bold", StepKey("click", "bold")),
        ("Highlight the heading", StepKey("select", "heading")),
        ("Pick Landscape from the list", StepKey("choose", "landscape")),
        ("Apply the formatting", StepKey("choose", "formatting")),
        ("Type Q3 in the Find what box", StepKey("type", "q3")),
        ("Enter the title", StepKey("type", "title")),
        ("Press Ctrl+B", StepKey("key", "ctrl+b")),
        ("Press Control + Z to undo", StepKey("key", "ctrl+z")),
        ("Use Ctrl+Shift+L", StepKey("key", "ctrl+shift+l")),
        ("Press Enter", StepKey("key", "enter")),
        ("Press the Tab key", StepKey("key", "tab")),
        ("Remove the blank line", StepKey("delete", "blank line")),
        ("Add a table", StepKey("insert", "table")),
        ("Use the Format Painter", StepKey("other", "format painter")),
        ("asdf qwer", StepKey("other", "asdf qwer")),
        ("", StepKey("other", "")),
    ],
)
def test_extract_step_action_classes_and_elements(step, key):
    assert extract_step(step) == key


# ---- planning: matching ----------------------------------------------------------------------------------
def test_one_wrong_element_of_four_gives_hand_computed_precision_and_recall():
    reference = parse_plan(REFERENCE_PLAN)
    predicted = ["Select the text 'by 12%'", "Go to the Home tab", "Choose Green"]
    assert match_steps(predicted, reference) == [(0, 0), (1, 1)]
    score = score_plan("t1", predicted, reference)
    assert score == PlanScore("t1", predicted=3, reference=4, matched=2, success=False)
    assert planning_metrics([score]) == {"tsr": 0.0, "step_precision": 66.67, "step_recall": 50.0, "tasks": 1}


def test_reordered_steps_match_one_to_one_and_all_matched_is_success():
    reference = parse_plan(REFERENCE_PLAN)
    predicted = [
        "Pick **Yellow**",
        "Press the Text Highlight Color button",
        "Open Home",
        "Highlight 'by 12%'",
    ]
    assert match_steps(predicted, reference) == [(0, 3), (1, 2), (2, 1), (3, 0)]
    assert score_plan("t", predicted, reference).success is True


def test_repeated_predicted_step_matches_once():
    assert match_steps(["Click Bold", "Click Bold", "Click Bold"], ["Click Bold"]) == [(0, 0)]
    assert score_plan("t", ["Click Bold"] * 3, ["Click Bold"]) == PlanScore("t", 3, 1, 1, True)


def test_click_and_choose_are_compatible_but_other_actions_are_not():
    assert match_steps(["Choose Yellow"], ["Click Yellow"]) == [(0, 0)]
    assert match_steps(["Click Yellow"], ["Choose Yellow"]) == [(0, 0)]
    assert match_steps(["Select Yellow"], ["Click Yellow"]) == []
    assert match_steps(["Type Yellow"], ["Choose Yellow"]) == []


def test_empty_elements_never_match_and_threshold_applies():
    assert match_steps(["Click", "Click the button"], ["Click", "Click the button"]) == []
    # token_set_ratio("yellow", "yellowish") is 80.0: in at 80, out at 81.
    assert match_steps(["Click Yellow"], ["Click Yellowish"], threshold=80) == [(0, 0)]
    assert match_steps(["Click Yellow"], ["Click Yellowish"], threshold=81) == []
    with pytest.raises(ValueError, match="threshold"):
        match_steps([], [], threshold=101)


def test_matching_is_maximum_not_greedy():
    # Step 0 ties on both references and takes reference 0 first; step 1 fits only reference 0, so the
    # augmenting path moves step 0 to reference 1: two matches where a greedy pass finds one.
    reference = ["Choose Yellow", "Click Yellow Highlight"]
    predicted = ["Click Yellow", "Choose Yellow Color"]
    assert match_steps(predicted, reference) == [(0, 1), (1, 0)]


def test_empty_prediction_and_empty_reference():
    reference = parse_plan(REFERENCE_PLAN)
    empty = score_plan("e", [], reference)
    assert empty == PlanScore("e", 0, 4, 0, False)
    assert planning_metrics([empty]) == {"tsr": 0.0, "step_precision": 0.0, "step_recall": 0.0, "tasks": 1}
    assert score_plan("r", ["Click Bold"], []).success is False


def test_judged_success_overrides_the_matcher():
    reference = parse_plan(REFERENCE_PLAN)
    assert score_plan("t", ["Do it all"], reference, judged_success=True).success is True
    assert score_plan("t", reference, reference, judged_success=False).success is False


def test_planning_metrics_micro_averages_over_tasks():
    scores = [PlanScore("a", 4, 4, 4, True), PlanScore("b", 6, 2, 1, False), PlanScore("c", 0, 3, 0, False)]
    # precision 5/10, recall 5/9, tsr 1/3
    assert planning_metrics(scores) == {
        "tsr": 33.33,
        "step_precision": 50.0,
        "step_recall": 55.56,
        "tasks": 3,
    }


def test_plan_score_rejects_impossible_counts():
    with pytest.raises(ValueError, match="matched=3"):
        PlanScore("x", predicted=2, reference=5, matched=3, success=False)


# ---- planning: the LLM judge -----------------------------------------------------------------------------
class FakeClient:
    def __init__(self, reply):
        self.reply = reply
        self.calls = []

    def complete_json(self, system, user, *, role="llm"):
        self.calls.append((system, user, role))
        return self.reply


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"reason": "all steps", "complete": "yes"}, True),
        ({"reason": "misses the color", "complete": "no"}, False),
        ({"complete": " YES "}, True),
    ],
)
def test_llm_plan_judge_counts_only_yes(reply, expected):
    client = FakeClient(reply)
    plan = ["Select 'by 12%'", "Choose Yellow"]
    assert llm_plan_judge(client, "Highlight 'by 12%' in yellow", plan) is expected
    [(system, user, role)] = client.calls
    assert "Microsoft Word" in system and '"complete"' in system
    assert "Highlight 'by 12%' in yellow" in user
    assert "1. Select 'by 12%'\n2. Choose Yellow" in user
    assert role == "plan_judge"


@pytest.mark.parametrize(
    ("reply", "shown"),
    [({"reason": "unsure"}, '"unsure"'), ({"complete": "maybe"}, '"maybe"'), ({"complete": True}, "true"),
     (["yes"], '["yes"]')],
)  # fmt: skip
def test_llm_plan_judge_rejects_a_reply_without_a_valid_complete(reply, shown):
    with pytest.raises(ValueError, match='no "complete"') as err:
        llm_plan_judge(FakeClient(reply), "task", ["Click Bold"])
    assert shown in str(err.value)  # the error names what came back


def test_llm_plan_judge_empty_plan_is_no_without_a_call():
    client = FakeClient({"complete": "yes"})
    assert llm_plan_judge(client, "task", []) is False
    assert client.calls == []


# ---- offline decision making -----------------------------------------------------------------------------
def action(name="Bold", function="click_input", status="CONTINUE", label=None, args=None):
    return {
        "thought": "",
        "control_name": name,
        "control_label": label,
        "function": function,
        "args": {} if args is None else args,
        "status": status,
        "plan": [],
    }


def test_offline_two_tasks_one_wrong_status():
    steps = [
        ("a", "fonts", action("Home")),
        ("a", "fonts", action("Bold", status="FINISH")),
        ("b", "tables", action("Insert")),
        ("b", "tables", action("Table")),
        ("b", "tables", action(None, "insert_table", "FINISH", args={"rows": 2, "columns": 3})),
    ]
    scores = []
    for i, (task, family, ref) in enumerate(steps):
        pred = dict(ref, status="FINISH") if i == 3 else dict(ref)  # one wrong status, in task b
        scores.append(score_step(task, family, i, pred, ref))
    assert [s.success for s in scores] == [True, True, True, False, True]
    assert offline_metrics(scores) == {
        "object_acc": 100.0,
        "operation_acc": 100.0,
        "status_acc": 80.0,
        "args_acc": 100.0,
        "ssr": 80.0,
        "tsr": 50.0,
        "steps": 5,
        "tasks": 2,
    }


def test_unparsed_prediction_scores_all_false():
    score = score_step("t", None, 0, None, action())
    parts = (score.object_ok, score.operation_ok, score.status_ok, score.args_ok, score.success)
    assert parts == (False,) * 5


def test_object_rule_names_then_labels():
    ref = action("Bold", label="12")
    assert score_step("t", None, 0, action("  bold ", label="99"), ref).object_ok  # names decide
    assert not score_step("t", None, 0, action("Italic", label="12"), ref).object_ok
    assert not score_step("t", None, 0, action(None, label="12"), ref).object_ok  # one name missing
    no_name = action("", function="select_text", label="12")
    assert score_step("t", None, 0, action(None, "select_text", label=" 12"), no_name).object_ok  # labels
    assert not score_step("t", None, 0, action(None, "select_text", label="13"), no_name).object_ok
    assert score_step("t", None, 0, action(None, "summary"), action("", "summary")).object_ok  # no control


def test_args_normalisation():
    def args_ok(pred, ref):
        return score_step("t", None, 0, action(args=pred), action(args=ref)).args_ok

    assert args_ok({" Text ": "  Hello "}, {"text": "Hello"})
    assert args_ok({"rows": "2", "cols": 3.0, "scale": "1.5"}, {"rows": 2, "cols": 3, "scale": 1.5})
    assert args_ok({"keys": [" a ", 1.0]}, {"keys": ["a", "1"]})
    assert not args_ok({"text": "hello"}, {"text": "Hello"})  # values keep their case
    assert not args_ok({"double": True}, {"double": 1})  # a bool is no number
    assert not args_ok({"text": "007"}, {"text": 7})  # leading zeros: text
    assert not args_ok({"text": "a", "extra": 1}, {"text": "a"})
    ref = action(args={"x": 1})
    assert score_step("t", None, 0, dict(ref, args=None), action()).args_ok  # None args == {}
    assert not score_step("t", None, 0, dict(ref, args=None), ref).args_ok
    assert score_step("t", None, 0, dict(ref, function=" click_input", status=" continue"), ref).success


def test_by_family_groups_sorts_and_names_missing_family_unknown():
    ok = action()
    scores = [
        score_step("t1", "tables", 0, ok, ok),
        score_step("t2", None, 0, action(function="wheel_mouse_input"), ok),
        score_step("t3", "fonts", 0, ok, ok),
        score_step("t3", "fonts", 1, None, ok),
    ]
    result = by_family(scores)
    assert list(result) == ["fonts", "tables", "unknown"]
    assert result["fonts"]["ssr"] == 50.0 and result["fonts"]["tsr"] == 0.0 and result["fonts"]["steps"] == 2
    assert result["tables"]["tsr"] == 100.0
    assert result["unknown"]["operation_acc"] == 0.0 and result["unknown"]["object_acc"] == 100.0


# ---- online ----------------------------------------------------------------------------------------------
def test_online_means_and_nearest_rank_percentiles():
    episodes = [
        EpisodeScore("a", "fonts", True, 10.0, 2, (1.0, 3.0)),
        EpisodeScore("b", "fonts", False, 20.0, 3, (2.0, 4.0, 5.0)),
        EpisodeScore("c", None, True, 30.0, 1, (10.0,)),
    ]
    # latencies sorted 1 2 3 4 5 10: mean 25/6, p50 rank ceil(3) = 3 -> 3.0, p95 rank ceil(5.7) = 6 -> 10.0
    assert online_metrics(episodes) == {
        "tsr": 66.67,
        "completion_time_s": 20.0,
        "steps": 2.0,
        "step_latency_s": 4.1667,
        "step_latency_p50_s": 3.0,
        "step_latency_p95_s": 10.0,
        "episodes": 3,
    }
    assert online_by_family(episodes) == {
        "fonts": {"tsr": 50.0, "episodes": 2},
        "unknown": {"tsr": 100.0, "episodes": 1},
    }


def test_online_without_timed_steps():
    metrics = online_metrics(
        [EpisodeScore("a", None, False, 1.23456, 0), EpisodeScore("b", None, True, 2.0, 3)]
    )
    assert metrics["step_latency_s"] == metrics["step_latency_p50_s"] == metrics["step_latency_p95_s"] == 0.0
    assert metrics["completion_time_s"] == 1.6173 and metrics["steps"] == 1.5 and metrics["tsr"] == 50.0


# ---- shared ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn", [planning_metrics, offline_metrics, online_metrics, by_family, online_by_family]
)
def test_empty_input(fn):
    if fn in (by_family, online_by_family):
        assert fn([]) == {}
    else:
        with pytest.raises(ValueError, match="nothing to score"):
            fn([])


def test_step_score_success_ignores_args():
    assert StepScore("t", None, 0, True, True, True, False).success
    assert not StepScore("t", None, 0, True, False, True, True).success


def test_flatten_metrics():
    nested = {
        "offline": {"tsr": 1, "by": {"fonts": {"ssr": 2.5}}},
        "flag": True,
        "name": "lam2",
        "none": None,
        "n": 3,
    }
    assert flatten_metrics(nested) == {"offline.tsr": 1, "offline.by.fonts.ssr": 2.5, "n": 3}
    assert flatten_metrics({"tsr": 1.0}, prefix="online") == {"online.tsr": 1.0}
