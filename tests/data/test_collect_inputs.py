"""Bad input to `collect` never crashes it and never vanishes: each record is kept or quarantined with its
file and line, and the stage counts kept + quarantined == read per file. Every input here is built by hand."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamops.data.collect import pair_id
from lamops.data.source_files import iter_entries, list_source_files, parse_file

ROOT = Path(__file__).resolve().parents[2]
GOOD_HOWTO = json.dumps(
    {"id": "a", "title": "How to Bold Text in Word", "steps": ["Select it.", "Click Bold."]}
)


def read_folder(root: Path) -> tuple[list, list]:
    entries, rejects = [], []
    for _name, good, bad in iter_entries(list_source_files(str(root)), None, str(root)):
        entries += good
        rejects += bad
    return entries, rejects


# ---- lines that crashed the decoder ------------------------------------------------------------------------
def test_a_howto_line_the_decoder_cannot_take_is_that_lines_quarantine_entry():
    lines = [
        GOOD_HOWTO,
        "[" * 100_000 + "]" * 100_000,  # RecursionError
        '{"id": ' + "1" * 5000 + ', "title": "t", "steps": []}',  # ValueError: over the int digit limit
        '{\x00"\x00t\x00"\x00:\x00 \x001\x00}\x00',  # NUL bytes: json.loads(bytes) took it for UTF-16
        GOOD_HOWTO,
    ]
    entries, rejects = parse_file("howto", "howto/a.jsonl", "\n".join(lines).encode())
    assert [e.origin for e in entries] == ["howto/a.jsonl:1", "howto/a.jsonl:5"]
    assert [r.origin for r in rejects] == ["howto/a.jsonl:2", "howto/a.jsonl:3", "howto/a.jsonl:4"]
    assert all(r.reason == "malformed" and r.detail.startswith("not JSON") for r in rejects)
    assert "RecursionError" in rejects[0].detail and "ValueError" in rejects[1].detail


@pytest.mark.parametrize("kind", ["howto", "query", "doc"])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_or_utf32_file_is_one_quarantine_record(kind, encoding):
    text = {"howto": GOOD_HOWTO + "\n" + GOOD_HOWTO, "query": "word how to bold\nmake a table 3x4\n"}
    data = text.get(kind, "## Make text bold\n1. Select it.\n2. Click Bold.\n").encode(encoding)
    entries, rejects = parse_file(kind, f"{kind}/x", data)
    assert entries == []
    assert [(r.origin, r.reason) for r in rejects] == [(f"{kind}/x", "malformed")]
    assert "UTF-8" in rejects[0].detail


def test_a_file_name_that_is_not_utf8_is_read_and_named_with_its_bytes_escaped(tmp_path):
    (tmp_path / "queries").mkdir()
    Path(os.fsdecode(bytes(tmp_path / "queries") + b"/caf\xe9.txt")).write_bytes(b"word how to bold\n")
    entries, rejects = read_folder(tmp_path)
    assert rejects == [] and [e.origin for e in entries] == ["queries/caf\\xe9.txt:1"]
    assert pair_id("query", entries[0].origin, 0).startswith("query-")  # UnicodeEncodeError before


# ---- records that vanished ----------------------------------------------------------------------------
def test_a_byte_order_mark_before_the_first_heading_keeps_its_section():
    page = b"\xef\xbb\xbf## Make text bold\n1. Select it.\n2. Click Bold.\n"
    entries, rejects = parse_file("doc", "docs/p.md", page)
    assert [(e.title, e.origin, e.where) for e in entries] == [
        ("Make text bold", "docs/p.md#1", "docs/p.md:1#1")
    ]
    assert rejects == []


def test_bare_cr_line_ends_split_queries():
    entries, _ = parse_file("query", "q.txt", b"word how to bold\rinsert table 3x4\r\rmake text red\r")
    assert [(e.origin, e.title) for e in entries] == [
        ("q.txt:1", "word how to bold"),
        ("q.txt:2", "insert table 3x4"),
        ("q.txt:4", "make text red"),
    ]


@pytest.mark.parametrize(
    "heading, where",
    [
        ("# Page title only", "level-1 heading"),
        ("### A subsection", "level-3 heading"),
        ("##Title without a space", "not a heading"),
        ("##\u200bZero-width space", "not a heading"),
        ("- a list before any heading", "before the first heading"),
    ],
)
def test_steps_under_a_heading_that_is_not_a_section_never_join_the_section_before(heading, where):
    first = "## Make text bold\n1. Select it.\n2. Click Bold.\n"
    page = first if heading.startswith("- ") else first + f"{heading}\n1. Open the **Insert** tab.\n"
    if heading.startswith("- "):
        page = f"{heading}\n{page}"
    entries, rejects = parse_file("doc", "docs/p.md", page.encode())
    assert [(e.title, e.steps) for e in entries] == [("Make text bold", ["Select it.", "Click Bold."])]
    assert len(rejects) == 1 and rejects[0].reason == "malformed" and where in rejects[0].detail
    assert rejects[0].origin == ("docs/p.md:1" if heading.startswith("- ") else "docs/p.md:4")


def test_a_setext_heading_is_a_section_of_its_own():
    page = (
        b"## Make text bold\n1. Select it.\n2. Click Bold.\n\nInsert a table\n---\n1. Open it.\n2. Click.\n"
    )
    entries, rejects = parse_file("doc", "docs/p.md", page)
    assert [(e.title, e.origin, e.where, len(e.steps)) for e in entries] == [
        ("Make text bold", "docs/p.md#1", "docs/p.md:1#1", 2),
        ("Insert a table", "docs/p.md#2", "docs/p.md:5#2", 2),
    ]
    assert rejects == []


def test_headings_in_fenced_code_are_body():
    page = b"## Make text bold\n1. Select it.\n```\n# not a heading\n```\n2. Click Bold.\n"
    entries, _ = parse_file("doc", "docs/p.md", page)
    assert [e.steps for e in entries] == [["Select it.", "Click Bold."]]


def test_links_and_fifos_under_the_sources_are_quarantined_not_skipped(tmp_path):
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries/good.txt").write_bytes(b"word how to bold\n")
    (tmp_path / "queries/dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "queries/loop.txt").symlink_to(tmp_path / "queries/loop.txt")
    os.mkfifo(tmp_path / "queries/fifo.txt")
    entries, rejects = read_folder(tmp_path)
    assert [e.origin for e in entries] == ["queries/good.txt:1"]
    assert sorted((r.origin, r.reason) for r in rejects) == [
        ("queries/dangling.txt", "unreadable"),
        ("queries/fifo.txt", "unreadable"),
        ("queries/loop.txt", "unreadable"),
    ]


def test_a_folder_of_sources_that_cannot_be_listed_is_quarantined_not_skipped(tmp_path, monkeypatch):
    for folder in ("queries/locked", "queries/open", "other/locked"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "queries/open/q.txt").write_bytes(b"word how to bold\n")
    (tmp_path / "queries/locked/q.txt").write_bytes(b"word how to italic\n")
    locked = {str(tmp_path / "queries/locked"), str(tmp_path / "other/locked")}
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 denies nothing to root, who may run the tests
        if os.fspath(path) in locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    entries, rejects = read_folder(tmp_path)
    assert [e.origin for e in entries] == ["queries/open/q.txt:1"]
    assert [(r.origin, r.reason) for r in rejects] == [
        ("queries/locked/", "unreadable")
    ]  # other/: no sources
    assert "PermissionError: Permission denied" in rejects[0].detail


def test_a_heading_of_thousands_of_spaces_parses_in_linear_time():
    page = ("## " + " " * 30_000 + "x" + " " * 30_000 + "#" + " " * 30_000 + "y\n1. a\n2. b\n").encode()
    start = time.perf_counter()
    entries, _ = parse_file("doc", "docs/p.md", page * 3)
    assert time.perf_counter() - start < 1.0  # 3,000 spaces took 123 s
    assert len(entries) == 3 and entries[0].title.startswith("x")


# ---- the stage ---------------------------------------------------------------------------------------------
def project(tmp_path: Path, files: dict[str, bytes]) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path)
    for name in ("params", "infra"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for rel, data in files.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(data)
    return tmp_path


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def collect(root: Path, *extra: str):
    from lamops.cli import app

    args = ["collect", "--params", str(root / "params.yaml"), "--profile", "ci"]
    return CliRunner().invoke(app, [*args, "--set", "collect.sources=src", *extra])


def test_every_record_of_a_mixed_folder_is_kept_or_quarantined_counted_per_file(tmp_path):
    page = b"\xef\xbb\xbf# Page\n- stray\n## Make text bold\n1. Select the text.\n2. Click **Bold**.\n"
    page += b"##Bad\n1. x\n"
    howto = "\n".join([GOOD_HOWTO, "[" * 50_000, '{"title": 3}']).encode()
    root = project(
        tmp_path,
        {
            "docs/p.md": page,
            "howto/a.jsonl": howto,
            "queries/q.txt": b"word how to make text italic\rinsert table 3x4 word\r\xff\r",
            "queries/wide.txt": "word how to bold\n".encode("utf-16"),
        },
    )
    result = collect(root)
    assert result.exit_code == 0, result.output
    out = root / "data/task_plans/collected"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["by_file"] == {
        "docs/p.md": {"read": 3, "kept": 1, "quarantined": 2},
        "howto/a.jsonl": {"read": 3, "kept": 1, "quarantined": 2},
        "queries/q.txt": {"read": 3, "kept": 2, "quarantined": 1},
        "queries/wide.txt": {"read": 1, "kept": 0, "quarantined": 1},
    }
    quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert {q["origin"] for q in quarantine} == {
        "docs/p.md:1",  # the list under the level-1 heading of line 1
        "docs/p.md:6",
        "howto/a.jsonl:2",
        "howto/a.jsonl:3",
        "queries/q.txt:3",
        "queries/wide.txt",
    }


def test_sources_with_no_usable_record_write_the_reasons_then_fail_in_one_line(tmp_path):
    root = project(tmp_path, {"howto/a.jsonl": b'{"title": 3}\nnot json\n', "queries/q.txt": b"\xff\n"})
    result = collect(root)
    assert result.exit_code == 1
    out = root / "data/task_plans/collected"
    (error,) = error_lines(result)
    assert "all 3 records" in error and str(out / "quarantine.jsonl") in error
    assert len((out / "quarantine.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "stats.json").read_text())["kept"] == 0
    assert not (out / "pairs.jsonl").exists()


def test_sources_with_no_record_fail_in_one_line(tmp_path):
    root = project(tmp_path, {"queries/q.txt": b"\n  \n"})
    result = collect(root)
    assert result.exit_code == 1
    (error,) = error_lines(result)
    assert "no record in" in error and "1 source files" in error


@pytest.mark.parametrize("sources", ["missing", "params.yaml"])
def test_sources_missing_or_a_file_exit_2_in_one_line(tmp_path, sources):
    root = project(tmp_path, {})
    result = collect(root, "--set", f"collect.sources={sources}")
    assert result.exit_code == 2
    (error,) = error_lines(result)
    assert error.startswith("error: collect.sources:")


def test_a_word_of_200000_letters_is_structured_and_filtered_in_linear_time():
    from lamops.data.collect import Limits, process_entries
    from lamops.records import RawEntry
    from lamops.roles.builtin import BuiltinStructurer

    word = "a" * 200_000  # the spelling corrector's deletes of it were quadratic: 25 s
    entries = [
        RawEntry(kind="query", origin="q:1", title=f"word how to bold {word}"),
        RawEntry(kind="howto", origin="h:1", title=f"How to bold {word}", steps=["Select it.", word]),
    ]
    start = time.perf_counter()
    out = process_entries(entries, BuiltinStructurer(), Limits(8, 200, 2, 15, 1500))
    assert time.perf_counter() - start < 5.0
    assert {r["origin"] for r in out} == {"q:1", "h:1"}
