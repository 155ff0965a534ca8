"""Prompt views: control types only where names repeat, a bounded canvas window that still shows what the
request names (with paragraph ids), the `full`/`all` view as the earlier prompt byte for byte, and the
grammar's constraints read back from every view."""

from __future__ import annotations

import io
import json

import docx
import pytest
from helpers import CharTokenizer

from lamops.agents.constraints import constraints_from_observation, constraints_from_prompt
from lamops.agents.grammar import Spans
from lamops.agents.prompt import fit_prompt
from lamops.agents.user_doc import USER_TEMPLATE, user_task
from lamops.env.families import sample_task
from lamops.env.observation import ControlInfo, Observation, PromptView
from lamops.env.window import MAX_LINES, canvas_window
from lamops.env.word import WordEnv

FULL = PromptView(control_types="all", canvas="full")
NAMES = PromptView(control_format="names")
JSON = PromptView(control_format="json")
VIEWS = [
    PromptView(),
    NAMES,
    PromptView(control_format="names", control_types="all", canvas="full"),
    PromptView(control_format="json"),
    FULL,
    PromptView(control_format="json", control_types="all", canvas="full"),
]
PHRASE = "zebra crossing plan"


def earlier_prompt(obs: Observation, control_format: str) -> str:
    """The prompt as `Observation.prompt` wrote it before prompt views (every type, the whole canvas)."""
    if control_format == "json":
        controls = json.dumps([c.model_dump() for c in obs.controls], ensure_ascii=False)
    else:
        controls = "\n".join(f"{c.label}:{c.control_text}:{c.control_type}" for c in obs.controls)
    history = "\n".join(obs.previous_actions) or "(none)"
    plan = "\n".join(obs.previous_plan) or "(none)"
    return (
        f"<Available Control Item:>\n{controls}\n"
        f"<Canvas State:>\n[ui] {obs.ui}\n[selection] {obs.selection}\n{obs.canvas}\n"
        f"<User Request:> {obs.request}\n"
        f"<Previous Actions:>\n{history}\n"
        f"<Previous Plans:>\n{plan}"
    )


def tricky_observation() -> Observation:
    """Two controls named Bold (the type tells them apart), names holding ':' (one ending like a type)."""
    controls = [
        ("1", "Save", "Button"),
        ("2", "Bold", "Button"),
        ("3", "Words: 12", "Text"),
        ("4", "Bold", "CheckBox"),
        ("5", "Zoom:In", "Button"),
    ]
    return Observation(
        controls=[ControlInfo(label=a, control_text=b, control_type=c) for a, b, c in controls],
        canvas="p0 <Normal> Hello world\np1 <Normal> Second",
        ui="tab Home",
        selection="caret in p1 at 0",
        request="Make 'world' bold.",
        previous_actions=[],
        previous_plan=[],
    )


@pytest.fixture(scope="module")
def observations() -> list[Observation]:
    """The observations of an expert episode on a built-in template (reset and every step after it)."""
    from lamops.agents.expert import ExpertAgent

    env = WordEnv()
    task = sample_task("emphasize_phrase", "plain_text", 0)
    obs = [env.reset(task)]
    plan = task.action_plan
    for k, step in enumerate(plan):
        action = ExpertAgent().act(step, obs[-1], last=k == len(plan) - 1)
        action["plan"] = [f"{s.step}. {s.subtask}" for s in plan[k + 1 :]]
        obs.append(env.step(action).observation)
    return obs


def long_docx(n: int = 200, named: int = 137) -> bytes:
    """`n` paragraphs of ~400 characters; paragraph `named` holds PHRASE past the first 300 characters."""
    d = docx.Document()
    filler = "The quarterly figures were reviewed by the committee in some detail. " * 6
    for i in range(n):
        d.add_paragraph(filler + (f"Item {i} covers the {PHRASE} in full." if i == named else f"Item {i}."))
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_a_type_shows_only_where_two_visible_controls_share_a_name():
    obs = tricky_observation()
    assert obs.render_controls(PromptView()).split("\n") == [
        "1:Save",
        "2:Bold:Button",
        "3:Words: 12",
        "4:Bold:CheckBox",
        "5:Zoom:In",
    ]
    items = json.loads(obs.render_controls(PromptView(control_format="json")))
    assert ["control_type" in c for c in items] == [False, True, False, True, False]
    assert obs.render_controls(FULL).split("\n")[0] == "1:Save:Button"


def test_the_names_view_lists_names_by_position_unless_the_labels_are_not_positions():
    obs = tricky_observation()
    assert obs.render_controls(NAMES).split("\n") == [
        "Save",
        "Bold:Button",
        "Words: 12",
        "Bold:CheckBox",
        "Zoom:In",
    ]
    for label, same_as in ((lambda k: str(int(k) + 10), PromptView()), (lambda k: f"x{k}", JSON)):
        moved = obs.model_copy(
            update={"controls": [c.model_copy(update={"label": label(c.label)}) for c in obs.controls]}
        )
        assert not moved.positional_labels()
        assert moved.render_controls(NAMES) == moved.render_controls(same_as)  # the labels are kept
        assert constraints_from_prompt(moved.prompt(NAMES)).controls[0] == (label("1"), "Save")


def test_a_built_in_prompt_names_no_type_unless_needed(observations):
    for obs in observations:
        typed = obs.typed("ambiguous")
        for c, t in zip(obs.controls, typed, strict=True):
            assert (f"\n{c.label}:{c.control_text}:{c.control_type}\n" in obs.prompt()) == t


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: "-".join(v.model_dump().values()))
def test_constraints_read_back_from_every_view(view, observations):
    for obs in [*observations, tricky_observation()]:
        assert constraints_from_prompt(obs.prompt(view)) == constraints_from_observation(obs, view)
    assert constraints_from_prompt(tricky_observation().prompt(view)).controls == (
        ("1", "Save"),
        ("2", "Bold"),
        ("3", "Words: 12"),
        ("4", "Bold"),
        ("5", "Zoom:In"),
    )


def test_the_full_view_is_the_earlier_prompt(observations):
    for obs in observations:
        assert obs.prompt(FULL) == earlier_prompt(obs, "compact")
        assert obs.prompt(FULL.model_copy(update={"control_format": "json"})) == earlier_prompt(obs, "json")


def test_a_long_document_gives_a_bounded_prompt_that_shows_the_named_paragraph():
    env = WordEnv({USER_TEMPLATE: long_docx()})
    obs = env.reset(user_task(f"Make '{PHRASE}' bold, then indent paragraph 12."))
    full, window = obs.prompt(FULL), obs.prompt()
    assert len(full) > 80_000 and len(window) < 1_600
    canvas = obs.render_canvas()
    shown = canvas.split("\n")[2:]
    assert (
        len(shown) <= MAX_LINES + 1
        and shown[-1] == f"[{obs.canvas.count(chr(10)) + 2 - len(shown)} more lines]"
    )
    [named] = [line for line in shown if PHRASE in line]
    assert named.startswith("p137 <Normal> ")  # with its id, for select_paragraph
    assert any(line.startswith("p11 <") for line in shown) and any(line.startswith("p12 <") for line in shown)
    assert any(line.startswith(f"p{obs.selection.split()[2][1:]} <") for line in shown)  # the caret's
    # The grammar's select_text spans come from the prompt's canvas: the named phrase is one of them.
    spans = Spans([constraints_from_prompt(window).canvas])
    assert PHRASE.encode() in spans.source and PHRASE.encode() in Spans([canvas]).source


def test_a_selected_range_shows_its_paragraphs_and_is_capped():
    canvas = "\n".join(f"p{i} <Normal> paragraph {i}" for i in range(50))
    window = canvas_window(canvas, "paragraphs p20-p40", "Make these bold.", [])
    assert window.split("\n") == [f"p{i} <Normal> paragraph {i}" for i in range(20, 20 + MAX_LINES)] + [
        f"[{50 - MAX_LINES} more lines]"
    ]
    assert canvas_window(canvas, "caret in p3 at 0", "Bold 'paragraph 45'.", ["2. Select 'paragraph 7'"]) == (
        "p3 <Normal> paragraph 3\np7 <Normal> paragraph 7\np45 <Normal> paragraph 45\n[47 more lines]"
    )


def test_the_fitter_cuts_window_lines_and_keeps_ui_and_selection():
    env = WordEnv({USER_TEMPLATE: long_docx()})
    prompt = env.reset(user_task(f"Make '{PHRASE}' bold.")).prompt()
    canvas = prompt.split("<Canvas State:>\n")[1].split("\n<User Request:>")[0]
    ids, cut = fit_prompt(CharTokenizer(), prompt, len(prompt) - 60)
    text = "".join(chr(i) for i in ids)
    assert 60 <= cut < len(canvas)
    assert (
        "[ui] tab Home\n[selection] caret in p" in text and f"<User Request:> Make '{PHRASE}' bold." in text
    )
