"""The environment's feature knowledge: a feature per family, plans naming real controls, lexical matching."""

from __future__ import annotations

import re
import time

import pytest

from lamops.env.families import FAMILIES
from lamops.env.ribbon import CONTROLS
from lamops.roles import knowledge as kn
from lamops.roles import naming

CONTROL_NAMES = {c.text for c in CONTROLS}


@pytest.fixture(scope="module")
def features() -> dict[str, kn.Feature]:
    return kn.features()


def test_every_family_has_a_complete_feature(features):
    assert list(features) == list(FAMILIES)
    for name, f in features.items():
        assert f.family == name and f.category == FAMILIES[name].category
        assert len(f.phrasings) >= 4, name
        assert f.plan and f.keywords, name
        assert len(set(f.keywords)) == len(f.keywords), name


def test_plans_name_controls_exactly_as_the_ui(features):
    for f in features.values():
        plan = " ".join(f.plan)
        named = re.findall(r"\*\*(.+?)\*\*", plan)
        assert set(named) <= CONTROL_NAMES, (f.family, set(named) - CONTROL_NAMES)
        for control in f.controls:
            assert f"**{control}**" in plan, (f.family, control)
        reference = kn.reference_tasks(f.family)[0].action_plan
        assert f.controls == tuple(s.control_text for s in reference if s.control_text)


def test_a_choice_names_every_item_a_task_may_need(features):
    plan = " ".join(features["color_phrase"].plan)
    for colour in ("Red", "Blue", "Purple", "Dark Red"):
        assert f"**{colour}**" in plan


def test_phrasings_hold_no_document_content(features):
    for f in features.values():
        for task in kn.reference_tasks(f.family):
            for s in task.action_plan:
                text = s.args.get("text")
                if s.function == "select_text" and text:
                    assert not any(text in p for p in f.phrasings), (f.family, text)


def test_abstract_request_replaces_document_text():
    task = kn.reference_tasks("replace_all")[0]
    template = kn.abstract_request(task)
    assert "{find}" in template and "{repl}" in template
    assert kn.fill(template, find="'colour'", repl="'color'").count("'col") == 2
    para = kn.abstract_request(kn.reference_tasks("align_paragraph")[0])
    assert "{obj}" in para and "'" not in para


def test_best_feature_maps_each_familys_phrasings_back(features):
    total = hits = 0
    for f in features.values():
        got = [kn.best_feature(p) for p in f.phrasings]
        own = sum(g is not None and g[0].family == f.family for g in got)
        misses = [p for p, g in zip(f.phrasings, got, strict=True) if g is None or g[0].family != f.family]
        assert own / len(got) >= 0.9, (f.family, misses)
        total, hits = total + len(got), hits + own
    print(f"best_feature: {hits}/{total} phrasings map back to their own family")


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("word how to bold txt", "emphasize_phrase"),
        ("insert table 3x4 word", "insert_table"),
        ("hihglight text yelow", "highlight_phrase"),  # typos
        ("How to Change Page Orientation to Landscape in Word", "page_orientation"),
        ("turn on track changes", "track_changes"),
        ("Add page numbers at the bottom", "page_numbers"),
    ],
)
def test_best_feature_on_messy_texts(text, family):
    found = kn.best_feature(text)
    assert found is not None and found[0].family == family, (text, found and found[0].family)
    assert 0 < found[1] <= 100


@pytest.mark.parametrize(
    "text",
    [
        "",
        "word",
        "how to change a tire",
        "How to bake sourdough bread at home",
        "How to Merge Cells in Excel",
        "How to bold text in Google Docs on Android",
    ],
)
def test_best_feature_is_none_for_unrelated_texts(text):
    assert kn.best_feature(text) is None


def test_best_feature_is_deterministic_and_fast(features):
    texts = [p for f in features.values() for p in f.phrasings] + [
        " ".join(f.plan) for f in features.values()
    ]
    first = [kn.best_feature(t) for t in texts]
    start = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        again = [kn.best_feature(t) for t in texts]
    rate = rounds * len(texts) / (time.perf_counter() - start)
    assert again == first
    print(f"best_feature: {rate:,.0f} calls/s")


def test_is_about_app():
    assert kn.is_about_app("How to Add a Page Border in Word")
    assert kn.is_about_app("insert table 3x4")
    assert kn.is_about_app("How to Insert an Excel Chart into a Word Document")  # another app, but in Word
    assert kn.is_about_app("How to Print a Word Document")
    assert not kn.is_about_app("How to Merge Cells in Excel")
    assert not kn.is_about_app("How to Use Word on an iPhone")
    assert not kn.is_about_app("how to change a tire")
    assert kn.other_app("Make a checklist in Notes on iPhone") == "iPhone"


def test_naming_tables_are_about_real_controls():
    for table in (naming.CONTROL_SYNONYMS, naming.SHORTCUTS, naming.OLD_UI):
        assert set(table) <= CONTROL_NAMES, set(table) - CONTROL_NAMES
    assert all(">" in path for path in naming.OLD_UI.values())
    for control, names in naming.CONTROL_SYNONYMS.items():
        assert control not in names, control
