"""The plan library (lamops.agents.plans): adapting a neighbour's first step to a request, the file a model
folder carries, and finding the nearest request by intent rather than by quoted text."""

from __future__ import annotations

import pytest

from lamops.agents.plans import FILE, PlanLibrary, adapt, adapt_items, clauses, join_parts, mask_quotes


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
    # Title case kept, a URL swapped whole, a swap of grammar words refused.
    assert adapt("Choose Red.", "Mark it with red.", "Mark it with bright green.") == "Choose Bright Green."
    assert (
        adapt(
            "Enter 'https://example.net/faq' in the Address box.",
            "Link 'a' to https://example.net/faq.",
            "Link 'b' to https://intranet.example.org/policy.",
        )
        == "Enter 'https://intranet.example.org/policy' in the Address box."
    )
    assert (
        adapt("Open the Table Design tab.", "Give the first table the Grid look.", "Style table 1 as Grid.")
        == "Open the Table Design tab."
    )


def test_compound_requests_split_into_parts_and_plans_join_with_a_return_home():
    assert clauses("Make 'a' bold, then set the page size to A5.") == [
        "Make 'a' bold.",
        "Set the page size to A5.",
    ]
    assert clauses("Make 'a' bold.") == ["Make 'a' bold."]
    assert clauses("Replace 'now, then later' with 'soon'.") == ["Replace 'now, then later' with 'soon'."]
    bold = ("1. Select the text 'a'.", "2. Click Bold on the Home tab.")
    size = ("1. Open the Layout tab.", "2. Open the Size menu.", "3. Choose A5.")
    link = ("1. Select the text 'b'.", "2. Open the Insert tab.", "3. Click Link.")
    font = ("1. Select the text 'c'.", "2. Open the Font dialog.")
    assert join_parts([bold, size]) == (
        *bold,
        "3. Open the Layout tab.",
        "4. Open the Size menu.",
        "5. Choose A5.",
    )
    assert join_parts([size, link, font]) == (
        *size,
        "4. Select the text 'b'.",  # its first control step opens a tab: no way back home needed
        "5. Open the Insert tab.",
        "6. Click Link.",
        "7. Open the Home tab.",
        "8. Select the text 'c'.",
        "9. Open the Font dialog.",
    )


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
    assert loaded.propose([]) == []
    # A compound request: each part from its nearest one-part entry, joined.
    assert loaded.propose(["Make 'x' bold, then change the page orientation to landscape."]) == [
        (
            "1. Select the text 'x'.",
            "2. Click Bold.",
            "3. Open the Layout tab.",
            "4. Open the Orientation menu.",
            "5. Choose Landscape.",
        )
    ]
    (tmp_path / FILE).write_text('{"request": "x", "items": ["1. a"]}\nnot json\n')
    with pytest.raises(ValueError, match=rf"{FILE}:2: not a plan library line"):
        PlanLibrary.load(tmp_path)
