"""The built-in roles: mention extraction and alignment (how plan wording reaches the expert), the filter."""

from lamops.records import PlanStep
from lamops.roles.builtin import BuiltinFilter, BuiltinJudge, align, mentions, rewrite_query, task_from_title
from lamops.roles.protocols import JudgeInput


def step(control: str, k: int = 1) -> PlanStep:
    return PlanStep(step=k, subtask="s", control_text=control, function="click_input", args={})


def test_mentions_in_the_forms_people_write():
    assert mentions("On the **Home** tab, click **Bold**.") == ["Home", "Bold"]
    assert mentions("Go to Home > Paragraph > Line Spacing, then pick 1.5.") == [
        "Home",
        "Paragraph",
        "Line Spacing",
    ]
    assert mentions("Click the 'Text Highlight Color' arrow.") == ["Text Highlight Color"]
    assert mentions("Press the Page Borders button.") == ["Page Borders"]
    assert mentions("Make it look right.") == []


def test_align_uses_the_plans_name_when_it_matches():
    plan = ["Select the text.", "On the **Home** tab, click **Font Colour**."]
    assert align(step("Font Color"), 1, 2, plan).control_text == "Font Colour"  # grounds at execute


def test_align_keeps_a_vague_or_old_name_so_the_expert_fails_on_it():
    vague = align(step("Bold"), 1, 2, ["Select the text.", "Use the formatting options to change it."])
    assert vague.control_text not in ("Bold", "")
    old = align(step("Font Settings"), 1, 2, ["Select the text.", "Choose Format > Font... from the menu."])
    assert old.control_text != "Font Settings"


def test_align_leaves_steps_without_controls():
    s = PlanStep(step=1, subtask="Select", function="select_text", args={"text": "Q3"})
    assert align(s, 0, 1, ["whatever"]) == s


def test_titles_and_queries():
    assert task_from_title("How to Add a Page Border in Word?") == "Add a Page Border in Word"
    assert rewrite_query("word how to bold txt") == "Bold txt in Word"


def test_filter_types():
    f = BuiltinFilter()
    plan = [step("Bold")]
    assert f.filter("Bold the word 'revenue'.", plan).request_type == "None"
    assert f.filter("Insert an Excel chart of the sales.", plan).request_type == "App_involve"
    assert f.filter("Print the document on both sides.", plan).request_type == "Env"
    assert f.filter("Make my document look more professional.", plan).request_type == "Non_task"
    assert f.filter("Bold the word 'revenue'.", []).request_type == "Others"
    assert not f.filter("Email this document to Bob.", plan).judge


def test_builtin_judge_without_a_goal_never_says_yes():
    j = BuiltinJudge()
    same = JudgeInput("r", "a", "a", "", "", "", ["1. Bold -> ok"])
    assert j.judge(same).complete == "no"
    changed = JudgeInput("r", "a", "b", "-a\n+b", "", "", ["1. Bold -> ok"])
    assert j.judge(changed).complete == "unsure"
    failed = JudgeInput("r", "a", "b", "-a\n+b", "", "", ["1. Bold -> error: no such control"])
    assert j.judge(failed).complete == "no"


def test_align_keeps_a_value_the_request_names():
    plan = ["Select the text.", "Open **Font Color** and choose **Red**."]
    s = step("Purple")
    assert align(s, 1, 2, plan, request="Colour 'Q3 revenue' purple.").control_text == "Purple"
    assert align(s, 1, 2, plan, request="Colour it.").control_text != "Purple"
