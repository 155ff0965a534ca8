"""Tests for the built-in template library (lamops.env.templates)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_COLOR_INDEX
from docx.shared import Inches

from lamops.env import templates
from lamops.env.templates import (
    TEMPLATES,
    TemplateInfo,
    TemplateLibraryError,
    build_library,
    load_library,
    normalize_docx_bytes,
    template_bytes,
)

EXPECTED_NAMES = [
    "plain_text",
    "headings_sections",
    "table_report",
    "lists",
    "review_comments",
    "header_footer",
    "multi_page",
    "mixed_formatting",
    "meeting_notes",
]
# Templates whose text carries no direct formatting, so "make X bold" tasks are meaningful.
UNFORMATTED = ["plain_text", "headings_sections", "table_report", "lists", "header_footer", "multi_page"]
# The letter's salutation and sign-off are the only body paragraphs allowed under 12 words.
SHORT_LETTER_LINES = {"Dear Ms. Harrington,", "Yours sincerely,", "Owen Pryce, Project Director"}
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def open_template(name: str) -> docx.document.Document:
    return docx.Document(io.BytesIO(template_bytes(name)))


def all_texts(doc) -> list[str]:
    """Every non-empty paragraph text of the body, table cells included."""
    texts = [p.text for p in doc.paragraphs]
    texts += [p.text for t in doc.tables for row in t.rows for c in row.cells for p in c.paragraphs]
    return [t for t in texts if t.strip()]


def body_paragraphs(doc):
    return [p for p in doc.paragraphs if p.text.strip()]


# --- catalogue -------------------------------------------------------------------------


def test_catalogue_names_and_descriptions():
    assert len(TEMPLATES) >= 8
    assert list(TEMPLATES) == EXPECTED_NAMES
    descriptions = [spec.description for spec in TEMPLATES.values()]
    for name, spec in TEMPLATES.items():
        assert spec.name == name
        assert spec.description.strip() == spec.description
        assert spec.description and "\n" not in spec.description
    assert len(set(descriptions)) == len(descriptions)


def test_unknown_template_names_the_known_ones():
    with pytest.raises(ValueError, match="plain_text") as excinfo:
        template_bytes("no_such_template")
    assert isinstance(excinfo.value, KeyError)
    assert "no_such_template" in str(excinfo.value)


# --- determinism -----------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_template_bytes_repeatable(name):
    cached = template_bytes(name)
    assert template_bytes(name) == cached
    # A fresh, uncached build gives the same bytes too.
    assert template_bytes.__wrapped__(name) == cached


def test_build_in_other_process_timezone_and_clock_gives_same_sha256():
    """Another process, another timezone and a clock seven years later: same bytes."""
    script = r"""
import datetime as real_dt, hashlib, json, sys, time, types
import docx.comments, docx.opc.parts.coreprops

class Later(real_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return real_dt.datetime(2031, 7, 9, 13, 5, 7, tzinfo=tz)

fake = types.SimpleNamespace(datetime=Later, timezone=real_dt.timezone, UTC=real_dt.timezone.utc)
for module in (docx.comments, docx.opc.parts.coreprops):
    if hasattr(module, "dt"):
        module.dt = fake
time.time = lambda: 1941234567.0

from lamops.env.templates import TEMPLATES, template_bytes
json.dump({n: hashlib.sha256(template_bytes(n)).hexdigest() for n in TEMPLATES}, sys.stdout)
"""
    src_dir = Path(templates.__file__).resolve().parents[2]
    env = dict(os.environ, TZ="Pacific/Kiritimati")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src_dir), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    other = json.loads(result.stdout)
    here = {n: hashlib.sha256(template_bytes(n)).hexdigest() for n in TEMPLATES}
    assert other == here


def test_normalize_docx_bytes_fixes_zip_metadata_and_is_idempotent():
    data = template_bytes("plain_text")
    assert normalize_docx_bytes(data) == data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert infos[0].filename == "[Content_Types].xml"
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.external_attr == 0o100644 << 16
    # Re-saving with python-docx (current timestamps in the zip) normalises to the same zip
    # layout: same names, same order, same content.
    buffer = io.BytesIO()
    open_template("plain_text").save(buffer)
    resaved = normalize_docx_bytes(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(resaved)) as a, zipfile.ZipFile(io.BytesIO(data)) as b:
        assert a.namelist() == b.namelist()
        assert [i.date_time for i in a.infolist()] == [i.date_time for i in b.infolist()]


# --- library on disk -------------------------------------------------------------------


def test_build_library_writes_files_and_index(tmp_path):
    infos = build_library(tmp_path)
    assert [i.name for i in infos] == EXPECTED_NAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{n}.docx" for n in EXPECTED_NAMES] + ["index.json"]
    )  # no temp files left behind
    index_text = (tmp_path / "index.json").read_text(encoding="utf-8")
    index = json.loads(index_text)
    assert index_text == json.dumps(index, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert [e["name"] for e in index] == EXPECTED_NAMES
    for info, entry in zip(infos, index, strict=True):
        data = (tmp_path / entry["file"]).read_bytes()
        assert entry == {
            "name": info.name,
            "description": TEMPLATES[info.name].description,
            "sha256": hashlib.sha256(data).hexdigest(),
            "file": f"{info.name}.docx",
        }
        assert info.sha256 == entry["sha256"]
        assert info.path == tmp_path / entry["file"]
        assert data == template_bytes(info.name)

    loaded = load_library(tmp_path)
    assert list(loaded) == EXPECTED_NAMES
    assert all(isinstance(i, TemplateInfo) for i in loaded.values())
    assert list(loaded.values()) == infos

    # Rebuilding over an existing library gives identical files.
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    build_library(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_load_library_detects_tampered_file(tmp_path):
    build_library(tmp_path)
    target = tmp_path / "lists.docx"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(TemplateLibraryError, match=re.escape("lists.docx")):
        load_library(tmp_path)


def test_load_library_detects_missing_file_and_index(tmp_path):
    build_library(tmp_path)
    (tmp_path / "multi_page.docx").unlink()
    with pytest.raises(TemplateLibraryError, match=re.escape("multi_page.docx")):
        load_library(tmp_path)
    (tmp_path / "index.json").unlink()
    with pytest.raises(TemplateLibraryError, match=re.escape("index.json")):
        load_library(tmp_path)


# --- package parts and page setup ------------------------------------------------------


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_every_template_has_writable_parts_and_fixed_metadata(name):
    doc = open_template(name)
    partnames = [str(p.partname) for p in doc.part.package.iter_parts()]
    assert any("comments" in p for p in partnames)
    assert any("header" in p for p in partnames)
    assert any("footer" in p for p in partnames)
    for section in doc.sections:
        assert not section.header.is_linked_to_previous
        assert not section.footer.is_linked_to_previous
        assert (section.page_width, section.page_height) == (Inches(8.5), Inches(11))
        margins = (section.top_margin, section.bottom_margin, section.left_margin, section.right_margin)
        assert margins == (Inches(1),) * 4
    props = doc.core_properties
    assert (props.title, props.author, props.revision) == (name, "lamops", 1)
    assert props.created.year == props.modified.year == props.last_printed.year == 2024


# --- content ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_no_repeated_text(name):
    texts = all_texts(open_template(name))
    assert len(texts) == len(set(texts))
    # Agents select text by its first occurrence, so no paragraph may hide inside another.
    for a in texts:
        assert not [b for b in texts if b is not a and a in b], a
    # Nor may any three-word phrase occur twice anywhere in the document.
    words = [w.strip(".,;:()").lower() for t in texts for w in t.split()]
    phrases = Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))
    assert [p for p, n in phrases.items() if n > 1] == []


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_body_paragraphs_have_at_least_12_words(name):
    for p in body_paragraphs(open_template(name)):
        if p.style.name == "Normal" and p.text not in SHORT_LETTER_LINES:
            assert len(p.text.split()) >= 12, p.text


@pytest.mark.parametrize("name", UNFORMATTED)
def test_plain_templates_carry_no_direct_formatting(name):
    doc = open_template(name)
    paragraphs = list(doc.paragraphs)
    paragraphs += [p for t in doc.tables for row in t.rows for c in row.cells for p in c.paragraphs]
    for p in paragraphs:
        assert p.alignment is None, p.text
        for run in p.runs:
            assert run._r.rPr is None, run.text


def test_plain_text():
    doc = open_template("plain_text")
    paragraphs = body_paragraphs(doc)
    assert 5 <= len(paragraphs) <= 7
    assert {p.style.name for p in paragraphs} == {"Normal"}
    assert not doc.tables


def test_headings_sections():
    styles = [p.style.name for p in body_paragraphs(open_template("headings_sections"))]
    assert styles[0] == "Title"
    assert styles.count("Heading 1") >= 2
    assert styles.count("Heading 2") >= 2
    assert styles.count("Normal") >= 4


@pytest.mark.parametrize(("name", "shape"), [("table_report", (4, 4)), ("meeting_notes", (3, 3))])
def test_tables(name, shape):
    doc = open_template(name)
    assert len(doc.tables) == 1
    table = doc.tables[0]
    assert (len(table.rows), len(table.columns)) == shape
    assert table.style.name == "Table Grid"
    assert all(c.text.strip() for row in table.rows for c in row.cells)


def test_lists():
    styles = Counter(p.style.name for p in body_paragraphs(open_template("lists")))
    assert styles["List Bullet"] == 4
    assert styles["List Number"] == 4
    assert styles["Normal"] >= 2


def test_review_comments():
    doc = open_template("review_comments")
    assert len(body_paragraphs(doc)) == 5
    comments = list(doc.comments)
    assert len(comments) == 2
    assert all(c.author and c.text for c in comments)
    body = doc.element.body
    starts = body.findall(f".//{{{W_NS}}}commentRangeStart")
    ends = body.findall(f".//{{{W_NS}}}commentRangeEnd")
    assert len(starts) == len(ends) == 2


def test_header_footer():
    section = open_template("header_footer").sections[0]
    assert section.header.paragraphs[0].text == "Bluestone Architecture Ltd."
    assert "Bristol" in section.footer.paragraphs[0].text


@pytest.mark.parametrize("name", [n for n in EXPECTED_NAMES if n != "header_footer"])
def test_other_headers_and_footers_are_empty(name):
    section = open_template(name).sections[0]
    assert [p.text for p in section.header.paragraphs] == [""]
    assert [p.text for p in section.footer.paragraphs] == [""]


def test_multi_page():
    doc = open_template("multi_page")
    breaks = doc.element.body.findall(f".//{{{W_NS}}}br[@{{{W_NS}}}type='page']")
    assert len(breaks) == 2
    headings = [p.text for p in doc.paragraphs if p.style.name == "Heading 1"]
    assert len(headings) == 3


def test_mixed_formatting():
    doc = open_template("mixed_formatting")
    runs = [r for p in doc.paragraphs for r in p.runs]
    assert any(r.bold for r in runs)
    assert any(r.italic for r in runs)
    assert any(r.underline for r in runs)
    assert any(r.font.color.rgb is not None for r in runs)
    assert any(r.font.highlight_color == WD_COLOR_INDEX.YELLOW for r in runs)
    assert any(r.font.name and r.font.size for r in runs)
    assert any(p.alignment == WD_ALIGN_PARAGRAPH.CENTER for p in doc.paragraphs)


def test_meeting_notes():
    doc = open_template("meeting_notes")
    paragraphs = body_paragraphs(doc)
    assert paragraphs[0].style.name == "Title"
    assert paragraphs[1].text.startswith("Attendees:")
    assert sum(p.style.name == "List Bullet" for p in paragraphs) >= 3
    assert paragraphs[-1].style.name == "Normal"


def test_descriptions_mention_their_features():
    # The descriptions drive semantic template choice; keep them honest about content.
    keywords = {
        "plain_text": "plain paragraphs",
        "headings_sections": "heading",
        "table_report": "table",
        "lists": "bulleted list",
        "review_comments": "comments",
        "header_footer": "header",
        "multi_page": "page breaks",
        "mixed_formatting": "bold",
        "meeting_notes": "action items",
    }
    for name, word in keywords.items():
        assert re.search(word, TEMPLATES[name].description, re.IGNORECASE), name
