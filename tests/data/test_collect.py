"""collect's pure parts: parsing the three formats (and what is malformed), cleaning, filters, dedup."""

import json

import pytest

from lamops.config import ConfigError
from lamops.data.collect import (
    Limits,
    clean_step,
    clean_text,
    deduplicate,
    language_reason,
    length_reason,
    minhash,
    normalise,
    shingles,
)
from lamops.data.source_files import list_source_files, parse_file
from lamops.io import read_jsonl
from lamops.records import TaskPlanPair

LIMITS = Limits(min_task_chars=8, max_task_chars=200, min_steps=2, max_steps=15, max_plan_chars=1500)


def howto(**obj) -> bytes:
    return json.dumps(obj).encode()


def test_howto_lines_bad_ones_quarantined_good_ones_kept():
    good = howto(id="a", title="How to Bold Text in Word", steps=["Select the text.", "Click **Bold**."])
    data = b"\n".join(
        [
            good,
            b'{"id": "b", "title": "broken',  # broken JSON
            howto(id="c", title=3, steps=["x"]),  # wrong type
            howto(id="d", title="t", steps="not a list"),
            b"\xff\xfe not utf-8",
            b"[1, 2]",
            good,
        ]
    )
    entries, rejects = parse_file("howto", "howto/a.jsonl", data)
    assert [e.origin for e in entries] == ["howto/a.jsonl:1", "howto/a.jsonl:7"]
    reasons = {r.origin.rsplit(":", 1)[1]: r.detail for r in rejects}
    assert set(reasons) == {"2", "3", "4", "5", "6"}
    assert "not JSON" in reasons["2"] and "title" in reasons["3"] and "steps" in reasons["4"]
    assert "UTF-8" in reasons["5"] and "object" in reasons["6"]
    assert all(r.reason == "malformed" and r.stage == "collect" for r in rejects)


def test_huge_line_rejected_unparsed():
    data = (
        howto(id="x", title="How to Bold Text", steps=["a" * 2_000_000])
        + b"\n"
        + howto(id="y", title="How to Italicise Text", steps=["Select it.", "Click Italic."])
    )
    entries, rejects = parse_file("howto", "h.jsonl", data)
    assert [e.title for e in entries] == ["How to Italicise Text"]
    assert len(rejects) == 1 and "longer than the limit" in rejects[0].detail
    assert len(rejects[0].record) < 3000


def test_docs_sections_with_steps_become_entries():
    page = (
        b"# Format text\n\nIntro.\n\n## Make text bold\nBold stands out.\n1. Select the text.\n"
        b"2. On the **Home** tab, click **Bold**.\n\n## About fonts\nJust prose here.\n\n"
        b"## Add a border\n- Open the **Layout** tab.\n- Click **Page Borders**.\n"
    )
    entries, rejects = parse_file("doc", "docs/p.md", page)
    assert [(e.title, len(e.steps)) for e in entries] == [("Make text bold", 2), ("Add a border", 2)]
    assert [r.reason for r in rejects] == ["no_plan"]


def test_docs_with_bad_bytes_keep_the_good_sections():
    page = b"## Good one\n1. Select it.\n2. Click Bold.\n## Bad one\n1. Caf\xe9 \xff.\n2. Click.\n"
    entries, rejects = parse_file("doc", "docs/p.md", page)
    assert [e.title for e in entries] == ["Good one"]
    assert {r.reason for r in rejects} == {"malformed"}
    assert [r.origin for r in rejects] == ["docs/p.md:4#2"]  # file, line of the heading, section


def test_queries_one_per_line():
    entries, rejects = parse_file("query", "q.txt", b"word how to bold\n\n  insert table 3x4 word \n\xff\n")
    assert [e.title for e in entries] == ["word how to bold", "insert table 3x4 word"]
    assert len(rejects) == 1


def test_list_source_files_only_the_three_formats(tmp_path):
    for rel in [
        "docs/a.md",
        "docs/sub/b.md",
        "howto/x.jsonl",
        "queries/q.txt",
        "docs/notes.txt",
        "other/z.md",
        "howto/.hidden.jsonl",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    files = list_source_files(str(tmp_path))
    assert [(k, p[len(str(tmp_path)) + 1 :]) for k, p in files] == [
        ("doc", "docs/a.md"),
        ("doc", "docs/sub/b.md"),
        ("howto", "howto/x.jsonl"),
        ("query", "queries/q.txt"),
    ]
    with pytest.raises(ConfigError, match="collect.sources: no such folder"):
        list_source_files(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="collect.sources: is a file"):
        list_source_files(str(tmp_path / "docs/a.md"))


def test_cleaning():
    assert clean_text("<p>Click&nbsp;<b>Bold</b></p><br/>") == "Click Bold"
    assert clean_step("Step 3: Click OK.") == "Click OK."
    assert clean_step("2) <span class='x'>Open</span> the tab") == "Open the tab"


def test_language():
    assert language_reason("Click the Bold button to make the text bold") is None
    assert language_reason("Klicken Sie auf die Schaltfläche und wählen Sie den Text aus") == "non_english"
    assert language_reason("Haga clic en el botón para poner el texto en negrita") == "non_english"
    assert language_reason("在Word中加粗文本") == "non_english"


def test_length():
    assert length_reason("Bold the title", ["Select it.", "Click Bold."], LIMITS) is None
    assert length_reason("Bold", ["a", "b"], LIMITS) == "too_short"
    assert length_reason("Bold the title", ["Click Bold."], LIMITS) == "too_short"
    assert length_reason("Bold the title", ["x" * 100] * 16, LIMITS) == "too_long"
    assert length_reason("Bold the title", ["x" * 800] * 2, LIMITS) == "too_long"


def item(task, plan):
    norm = normalise(task, plan)
    return {"norm": norm, "signature": minhash(shingles(norm))}


def test_deduplicate_exact_and_near_keeps_the_first():
    plan = ["Select the text you want to change.", "On the Home tab, click Bold.", "Check the result."]
    items = [
        item("Make text bold in Word", plan),
        item("make text BOLD in word!", plan),  # exact after normalisation
        item("Make text bold in Word", [*plan[:2], "Check the results."]),  # near
        item("Insert a table in Word", ["Open the Insert tab.", "Click Table.", "Pick 3 x 4."]),
    ]
    keep, dropped = deduplicate(items, 0.7)
    assert keep == [0, 3]
    assert dropped == {1: ("duplicate", 0), 2: ("near_duplicate", 0)}


def test_read_jsonl_quarantines_bad_records(tmp_path):
    good = TaskPlanPair(task_id="a", task="Bold text", plan=["x", "y"], source="howto", origin="o")
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        good.model_dump_json().encode()
        + b"\n"
        + b'{"task_id": "../etc/passwd", "task": "t", "plan": [], "source": "howto", "origin": "o"}\n'
        + b'{"task_id": 5}\n'
        + b"\xff\n"
    )
    records, bad = read_jsonl(path, TaskPlanPair, "evolve")
    assert records == [good]
    assert len(bad) == 3 and all(b.reason == "malformed" for b in bad)
    assert "task_id" in bad[0].detail
