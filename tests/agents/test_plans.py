"""The plan library (lamops.agents.plans): adapting a neighbour's first step to a request, the file a model
folder carries, and finding the nearest request by intent rather than by quoted text."""

from __future__ import annotations

import pytest

from lamops.agents.plans import FILE, PlanLibrary, adapt, adapt_items, mask_quotes


def test_adapt_rewrites_quotes_values_and_phrases_but_not_item_numbers():
    source = "Set a left indent of 1\" on the paragraph that begins 'Our team moves'."
    target = "Set a left indent of 1.5\" on the paragraph that begins 'Questions about the'."
    items = [
        "1. Select the paragraph starting 'Our team moves'.",
        "2. Open the Layout tab.",
        "3. Enter '1' in the Indent Left box.",
    ]
    assert adapt_items(items, source, target) == (
        "1. Select the paragraph starting 'Questions about the'.",
        "2. Open the Layout tab.",
        "3. Enter '1.5' in the Indent Left box.",
    )
    assert adapt("Choose 1 inch.", source, target) == "Choose 1.5 inch."
    assert (
        adapt(
            "Choose Dark Red.",
            "Format 'a' as Heading 1 with dark red text.",
            "Format 'b' as Heading 1 with purple text.",
        )
        == "Choose Purple."
    )
    assert (
        adapt("Choose Wide.", "Set the margins to Wide.", "Set the margins to Moderate.")
        == "Choose Moderate."
    )
    assert adapt("Click Center.", "Center it.", "Center it.") == "Click Center."  # same request: unchanged


def test_mask_quotes_keeps_the_intent():
    assert mask_quotes("Make 'the shelf' bold.") == "Make 'x' bold."


def _row(task_id, step, request, thought, plan):
    import json

    from lamops.records import StepSFTRow

    prompt = (
        "<Available Control Item:>\nHome\n\n<Canvas State:>\n[ui] body\n\n<User Request:> "
        f"{request}\n<Previous Actions:>\n(none)\n<Previous Plans:>\n(none)"
    )
    action = {
        "thought": thought,
        "control_name": None,
        "control_label": None,
        "function": "select_text",
        "args": {"text": "x"},
        "status": "CONTINUE",
        "plan": plan,
    }
    return StepSFTRow(task_id=task_id, step=step, prompt=prompt, completion=json.dumps(action))


def test_library_round_trips_and_proposes_the_nearest_intent(tmp_path):
    rows = [
        _row("a", 1, "Make 'the shelf' bold.", "Select the text 'the shelf'.", ["2. Click Bold."]),
        _row("a", 2, "Make 'the shelf' bold.", "Click Bold.", []),
        _row(
            "b",
            1,
            "Change the page orientation to landscape.",
            "Open the Layout tab.",
            ["2. Open the Orientation menu.", "3. Choose Landscape."],
        ),
        _row("c", 1, "Make 'the shelf' bold.", "Select the text 'the shelf'.", ["2. Click Bold."]),  # same
    ]
    library = PlanLibrary.from_rows(rows)
    assert library.requests == ["Make 'the shelf' bold.", "Change the page orientation to landscape."]
    assert PlanLibrary.load(tmp_path) is None  # a folder without a library: the model alone
    assert library.save(tmp_path) == tmp_path / FILE
    loaded = PlanLibrary.load(tmp_path)
    assert (loaded.requests, loaded.items) == (library.requests, library.items)
    proposals = loaded.propose(["Make 'glazed roof' bold.", "Turn the pages to landscape orientation."])
    assert proposals == [
        ("1. Select the text 'glazed roof'.", "2. Click Bold."),
        ("1. Open the Layout tab.", "2. Open the Orientation menu.", "3. Choose Landscape."),
    ]
    assert PlanLibrary([], []).propose(["anything"]) == [()]
    (tmp_path / FILE).write_text('{"request": "x", "items": ["1. a"]}\nnot json\n')
    with pytest.raises(ValueError, match=rf"{FILE}:2: not a plan library line"):
        PlanLibrary.load(tmp_path)
