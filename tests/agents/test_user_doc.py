"""A user's own .docx in the environment: what it cannot show is counted and marked, the observation never
fails on a hostile document, an episode edits a copy, and the result is written atomically.

The hostile documents are built here with python-docx plus hand-written OOXML (text box with its VML
fallback, content controls, equations, tracked changes, a footnote reference, an embedded object, a chart,
nested and merged tables, fields, bookmarks, sections with different headers, custom and unknown styles)."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
import zlib

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Inches
from helpers import ROOT
from lxml import etree

from lamops.agents.decoding import Decoded
from lamops.agents.lam import ACTION_FIELDS, AgentConfig
from lamops.agents.user_doc import USER_TEMPLATE, agent_max_len, run_on_document, user_task
from lamops.env.canvas import render_canvas
from lamops.env.document import LiveDocument
from lamops.env.user_docx import (
    DocumentReport,
    UserDocumentError,
    check_output,
    inspect_document,
    read_document,
    save_document,
)
from lamops.env.word import WordEnv

W = nsdecls("w")
NS = {
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
    "wps": "http://schemas.microsoft.com/office/word/2010/wordprocessingShape",
    "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "v": "urn:schemas-microsoft-com:vml",
    "o": "urn:schemas-microsoft-com:office:office",
    "m": "http://schemas.openxmlformats.org/officeDocument/2006/math",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
}
XMLNS = W + "".join(f' xmlns:{k}="{v}"' for k, v in NS.items())
# What the hostile document holds that the canvas can only mark: the report must count exactly these.
HOSTILE_COUNTS = {
    "image": 3,  # inline picture, floating picture, VML picture
    "chart": 1,
    "text box": 1,  # one text box, though its XML holds it twice (DrawingML choice + VML fallback)
    "content control": 2,  # block-level and inline
    "equation": 2,  # display (oMathPara) and inline
    "embedded object": 1,
    "tracked change": 2,  # one insertion, one deletion
    "footnote": 1,
    "nested table": 1,
    "first-page header": 1,
}


def tiny_png() -> bytes:
    """A 1x1 red PNG, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def xml(text: str):
    """An OOXML element from text whose root is declared with every namespace used here."""
    head, _, rest = text.partition(">")
    closing = "/" if head.endswith("/") else ""
    return parse_xml(f"{head.rstrip('/')} {XMLNS}{closing}>{rest}")


def before_sect(doc, el) -> None:
    """Add a body-level element where Word keeps content: before the body's section properties."""
    doc.element.body.find(qn("w:sectPr")).addprevious(el)


TEXT_BOX = """<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor distT="0"
 distB="0" distL="0" distR="0" simplePos="0" relativeHeight="1" behindDoc="0" locked="0" layoutInCell="1"
 allowOverlap="1">
<wp:simplePos x="0" y="0"/><wp:positionH relativeFrom="column"><wp:posOffset>0</wp:posOffset></wp:positionH>
<wp:positionV relativeFrom="paragraph"><wp:posOffset>0</wp:posOffset></wp:positionV>
<wp:extent cx="914400" cy="457200"/><wp:wrapSquare wrapText="bothSides"/><wp:docPr id="10" name="Text Box 1"/>
<a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp>
<wps:spPr/><wps:txbx><w:txbxContent><w:p><w:r><w:t>Boxed note</w:t></w:r></w:p></w:txbxContent></wps:txbx>
<wps:bodyPr/></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice><mc:Fallback><w:pict>
<v:shape style="width:72pt;height:36pt"><v:textbox><w:txbxContent><w:p><w:r><w:t>Boxed note</w:t></w:r></w:p>
</w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r>"""
CHART = """<w:r><w:drawing><wp:inline><wp:extent cx="914400" cy="457200"/><wp:docPr id="11" name="Chart 1"/>
<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart"><c:chart r:id="rId99"/>
</a:graphicData></a:graphic></wp:inline></w:drawing></w:r>"""


def hostile_docx() -> bytes:
    d = docx.Document()
    d.add_heading("Überblick – naïve café 日本語", 0)
    p = d.add_paragraph("Revenue grew strongly this year. ")
    p.add_run().add_picture(io.BytesIO(tiny_png()), width=Inches(0.5))
    p.add_run(" After the picture.")
    # A floating picture: the inline picture's parts moved into a wp:anchor.
    run = d.add_paragraph("Floating picture here.").add_run()
    run.add_picture(io.BytesIO(tiny_png()), width=Inches(0.5))
    inline = run._r.find(".//" + qn("wp:inline"))
    anchor = xml(
        '<wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" relativeHeight="2" behindDoc="0" '
        'locked="0" layoutInCell="1" allowOverlap="1"><wp:simplePos x="0" y="0"/><wp:positionH '
        'relativeFrom="column"><wp:posOffset>0</wp:posOffset></wp:positionH><wp:positionV '
        'relativeFrom="paragraph"><wp:posOffset>0</wp:posOffset></wp:positionV></wp:anchor>'
    )
    for child in list(inline):
        if child.tag == qn("wp:docPr"):
            anchor.append(xml("<wp:wrapNone/>"))
        anchor.append(child)
    inline.getparent().replace(inline, anchor)
    d.add_paragraph("See the box: ")._p.append(xml(TEXT_BOX))
    d.add_paragraph("Legacy picture: ")._p.append(
        xml(
            '<w:r><w:pict><v:shape style="width:9pt;height:9pt"><v:imagedata r:id="rId98"/></v:shape>'
            "</w:pict></w:r>"
        )
    )
    before_sect(
        d,
        xml(
            '<w:sdt><w:sdtPr><w:alias w:val="Summary"/></w:sdtPr><w:sdtContent><w:p><w:r><w:t>Inside a block '
            "control</w:t></w:r></w:p></w:sdtContent></w:sdt>"
        ),
    )
    d.add_paragraph("Name: ")._p.append(
        xml("<w:sdt><w:sdtPr/><w:sdtContent><w:r><w:t>Ann Lee</w:t></w:r></w:sdtContent></w:sdt>")
    )
    before_sect(
        d, xml("<w:p><m:oMathPara><m:oMath><m:r><m:t>E=mc2</m:t></m:r></m:oMath></m:oMathPara></w:p>")
    )
    d.add_paragraph("Inline math ")._p.append(xml("<m:oMath><m:r><m:t>x+1</m:t></m:r></m:oMath>"))
    tracked = d.add_paragraph("Tracked: ")._p
    tracked.append(xml('<w:ins w:id="1" w:author="Bo"><w:r><w:t>added words</w:t></w:r></w:ins>'))
    tracked.append(
        xml('<w:del w:id="2" w:author="Bo"><w:r><w:delText>removed words</w:delText></w:r></w:del>')
    )
    d.add_paragraph("A claim")._p.append(
        xml('<w:r><w:rPr><w:rStyle w:val="FootnoteReference"/></w:rPr><w:footnoteReference w:id="1"/></w:r>')
    )
    obj = d.add_paragraph("Object: ")._p
    obj.append(
        xml(
            '<w:r><w:object><v:shape style="width:9pt;height:9pt"><v:imagedata r:id="rId97"/></v:shape>'
            '<o:OLEObject Type="Embed" ProgID="Excel.Sheet.12" r:id="rId96"/></w:object></w:r>'
        )
    )
    obj.append(xml(CHART))
    table = d.add_table(rows=3, cols=3)
    table.style = d.styles["Table Grid"]
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row.cells):
            cell.text = f"r{i}c{j}"
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(1, 2).merge(table.cell(2, 2))
    inner = table.cell(2, 0).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "inner a", "inner b"
    dated = d.add_paragraph()._p
    dated.append(xml('<w:bookmarkStart w:id="0" w:name="here"/>'))
    dated.append(xml("<w:r><w:t xml:space='preserve'>Dated </w:t></w:r>"))
    dated.append(xml('<w:bookmarkEnd w:id="0"/>'))
    for part in (
        '<w:fldChar w:fldCharType="begin"/>',
        '<w:instrText xml:space="preserve"> DATE </w:instrText>',
        '<w:fldChar w:fldCharType="separate"/>',
        "<w:t>1/1/2025</w:t>",
        '<w:fldChar w:fldCharType="end"/>',
    ):
        dated.append(xml(f"<w:r>{part}</w:r>"))
    d.styles.add_style("My Custom Style", WD_STYLE_TYPE.PARAGRAPH)
    d.add_paragraph("Custom styled", style="My Custom Style")
    d.add_paragraph("Unknown style here")._p.get_or_add_pPr().append(xml('<w:pStyle w:val="NoSuchStyle"/>'))
    first = d.sections[0]
    first.header.paragraphs[0].text = "First section header"
    first.different_first_page_header_footer = True
    first.first_page_header.paragraphs[0].text = "Title page header"
    second = d.add_section()
    second.header.is_linked_to_previous = False
    second.header.paragraphs[0].text = "Second section header"
    d.add_paragraph("Second section text.")
    d.add_comment(d.paragraphs[1].runs[0], text="Check this", author="Ann")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def odd_docx() -> bytes:
    """Valid OOXML python-docx cannot map, and damage Word would repair: none of it may break the canvas."""
    d = docx.Document()
    p = d.add_paragraph()._p
    p.append(xml('<w:pPr><w:jc w:val="end"/></w:pPr>'))
    p.append(
        xml('<w:r><w:rPr><w:highlight w:val="none"/><w:u w:val="bogus"/></w:rPr><w:t>Odd run</w:t></w:r>')
    )
    p.append(xml('<w:hyperlink r:id="rIdGone"><w:r><w:t>dead link</w:t></w:r></w:hyperlink>'))
    p.append(xml('<w:smartTag w:element="place"><w:r><w:t>Paris</w:t></w:r></w:smartTag>'))
    p.append(xml('<w:fldSimple w:instr=" "><w:r><w:t>blank field</w:t></w:r></w:fldSimple>'))
    d.styles.element.append(xml('<w:style w:type="paragraph" w:styleId="Nameless"/>'))
    d.add_paragraph("No name style")._p.get_or_add_pPr().append(xml('<w:pStyle w:val="Nameless"/>'))
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "top"
    # A vertical merge that continues from nothing (the first row): python-docx cannot follow it.
    table.rows[0]._tr.tc_lst[1].get_or_add_tcPr().append(xml("<w:vMerge/>"))
    table._tbl.append(
        xml(
            "<w:sdt><w:sdtContent><w:tr><w:tc><w:p><w:r><w:t>row in a control</w:t></w:r></w:p></w:tc></w:tr>"
            "</w:sdtContent></w:sdt>"
        )
    )
    footer = d.sections[0].footer._element
    footer.append(
        xml(
            '<w:sdt><w:sdtPr><w:docPartObj><w:docPartGallery w:val="Page Numbers (Bottom of Page)"/>'
            '</w:docPartObj></w:sdtPr><w:sdtContent><w:p><w:fldSimple w:instr="PAGE"><w:r><w:t>1</w:t></w:r>'
            "</w:fldSimple></w:p></w:sdtContent></w:sdt>"
        )
    )
    del d.sections[0]._sectPr.find(qn("w:pgSz")).attrib[qn("w:w")]
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def rezip(data: bytes, drop: set[str] = frozenset(), edit: dict | None = None) -> bytes:
    """A copy of a .docx zip without the entries in `drop`, with `edit[name](text)` applied to others."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name in drop:
                continue
            content = src.read(name)
            if edit and name in edit:
                content = edit[name](content.decode()).encode()
            dst.writestr(name, content)
    return out.getvalue()


def without_styles(data: bytes) -> bytes:
    """The document without its styles part (python-docx then uses its default styles)."""
    return rezip(
        data,
        drop={"word/styles.xml"},
        edit={
            "word/_rels/document.xml.rels": lambda t: re.sub(r'<Relationship [^>]*styles\.xml"/>', "", t),
            "[Content_Types].xml": lambda t: re.sub(r'<Override PartName="/word/styles\.xml"[^>]*/>', "", t),
        },
    )


def only_normal_style(data: bytes) -> bytes:
    """The document with a styles part defining Normal only, as a Word document that used no other style."""

    def strip(text: str) -> str:
        root = etree.fromstring(text.encode())
        for style in root.findall(qn("w:style")):
            if style.get(qn("w:styleId")) != "Normal":
                root.remove(style)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True).decode()

    return rezip(data, edit={"word/styles.xml": strip})


def damaged(data: bytes) -> bytes:
    """The .docx with bytes in the middle of word/document.xml's compressed data overwritten."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 3
    return data[:start] + b"\x00" * 64 + data[start + 64 :]


def empty_docx(keep_sect: bool = True) -> bytes:
    d = docx.Document()
    body = d.element.body
    for child in list(body):
        if child.tag != qn("w:sectPr") or not keep_sect:
            body.remove(child)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hostile() -> bytes:
    return hostile_docx()


# ---------------------------------------------------------------------------------------------- report


def test_report_counts_each_kind_the_canvas_cannot_show(hostile):
    report = inspect_document(hostile)
    assert report.counts == HOSTILE_COUNTS
    summary = report.summary()
    assert summary.startswith(
        "The environment shows text, tables, formatting, comments, headers and footers;"
    )
    for phrase in ("3 images", "1 text box", "2 content controls", "2 equations", "2 tracked changes"):
        assert phrase in summary
    plain = docx.Document()
    plain.add_paragraph("Just text.")
    buf = io.BytesIO()
    plain.save(buf)
    assert inspect_document(buf.getvalue()).summary().endswith("everything in this document is shown.")
    assert DocumentReport(counts={"other:smartTag": 1, "image": 1}).not_shown() == [
        "1 image",
        "1 other element (smartTag)",
    ]


def test_canvas_marks_what_it_cannot_show_with_placeholders(hostile):
    canvas = render_canvas(LiveDocument(hostile))
    lines = canvas.splitlines()
    for expected in (
        "p0 <Title> Überblick – naïve café 日本語",
        "p1 <Normal> Revenue grew strongly this year. [image] After the picture.",
        "p2 <Normal> Floating picture here.[image]",
        "[content control: Inside a block control]",
        "p3 <Normal> See the box: [text box: Boxed note]",
        "p4 <Normal> Legacy picture: [image]",
        "p5 <Normal> Name: [content control: Ann Lee]",
        "p6 <Normal> [equation: E=mc2]",
        "p7 <Normal> Inline math [equation: x+1]",
        "p8 <Normal> Tracked: [inserted: added words][deleted: removed words]",
        "p9 <Normal> A claim[footnote 1]",
        "p10 <Normal> Object: [embedded object: Excel.Sheet.12][chart]",
        "p11 <Normal> Dated 1/1/2025 [field DATE]",
        "p12 <My Custom Style> Custom styled",
        "p13 <NoSuchStyle> Unknown style here",
        "[first-page header] Title page header",
        "[header] Second section header",
    ):
        assert expected in lines, expected
    table = next(line for line in lines if line.startswith("t1 "))
    assert "[nested table 1x2: | inner a | inner b |]" in table and table.startswith("t1 3x3 <Table Grid>")
    assert canvas.count("Boxed note") == 1  # the VML fallback repeats the text box: shown once


def test_odd_documents_render_and_say_what_they_hide():
    canvas = render_canvas(LiveDocument(odd_docx()))
    assert "<Normal|right> Odd run{link=?:dead link}[smartTag: Paris]" in canvas
    assert "row in a control" in canvas and "[footer] [content control: 1]" in canvas
    assert "unknown size" in canvas and "<Nameless> No name style" in canvas
    assert inspect_document(odd_docx()).counts == {"content control": 2, "other:smartTag": 1}
    for data in (empty_docx(), empty_docx(keep_sect=False), without_styles(hostile_docx())):
        env = WordEnv({USER_TEMPLATE: data})
        obs = env.reset(user_task("Type hello"))
        assert any(line.startswith("p0 <") for line in obs.canvas.splitlines())
        result = env.step(action("keyboard_input", {"keys": "hello"}))
        assert result.ok, result.result
        assert "hello" in env.canvas()


# ---------------------------------------------------------------------------------------------- episodes


def action(function: str, args: dict | None = None, *, name=None, label=None, status="CONTINUE") -> dict:
    return {
        "thought": "",
        "control_name": name,
        "control_label": label,
        "function": function,
        "args": args or {},
        "status": status,
        "plan": [],
    }


def click(obs, name: str, status: str = "CONTINUE") -> dict:
    label = next(c.label for c in obs.controls if c.control_text == name)
    return action("click_input", {"button": "left", "double": False}, name=name, label=label, status=status)


def test_select_and_format_on_a_hostile_document(hostile):
    env = WordEnv({USER_TEMPLATE: hostile})
    env.reset(user_task("Make Revenue bold"))
    result = env.step(action("select_text", {"text": "Revenue"}))
    assert result.ok, result.result
    result = env.step(click(result.observation, "Bold"))
    assert result.ok and result.result == "applied bold on"
    assert "p1 <Normal> {b:Revenue} grew strongly this year. [image] After the picture." in env.canvas()
    result = env.step(action("insert_table", {"rows": 2, "columns": 2}))
    assert result.ok, result.result
    # Text inside a placeholder is read-only: the agent is told so, nothing breaks.
    result = env.step(action("select_text", {"text": "Boxed note"}))
    assert not result.ok and "not found" in result.result
    assert env.verify().complete == "unsure"  # a user's request has no goal predicate


def test_built_in_styles_a_document_lacks_are_added_on_first_use():
    env = WordEnv({USER_TEMPLATE: only_normal_style(hostile_docx())})
    env.reset(user_task("Make the first paragraph a heading and add a table"))
    assert "Heading 1" not in env.live.style_names.values()
    result = env.step(action("select_paragraph", {"start_index": 1, "end_index": 1}))
    result = env.step(click(result.observation, "Heading 1"))
    assert result.ok and result.result == "applied style Heading 1", result.result
    result = env.step(action("insert_table", {"rows": 2, "columns": 2}))
    assert result.ok, result.result
    canvas = env.canvas()
    assert "p1 <Heading 1> Revenue grew" in canvas and "<Table Grid>" in canvas
    with pytest.raises(ValueError, match="no style 'Not A Style'"):
        env.live.style("Not A Style")


class ScriptedAgent:
    """Stands in for LAMAgent: plays a fixed list of actions (dicts, or functions of the observation)."""

    def __init__(self, script, config: AgentConfig):
        self.script = iter(script)
        self.config = config

    def act(self, observations, generator=None):
        out = []
        for obs in observations:
            step = next(self.script)
            step = step(obs) if callable(step) else step
            assert set(ACTION_FIELDS) <= set(step)
            out.append(
                Decoded(
                    text=json.dumps(step),
                    action=step,
                    error=None,
                    generated_tokens=0,
                    forced_tokens=0,
                    forward_passes=1,
                    forward_s=0.0,
                    total_s=0.0,
                    prompt_tokens=0,
                    prompt_cut=0,
                    closed_by_force=False,
                )
            )
        return out


def test_an_episode_edits_a_copy_and_saves_a_document_that_reopens(hostile, tmp_path):
    original = bytes(hostile)
    script = [action("select_text", {"text": "Revenue"}), lambda obs: click(obs, "Bold", status="FINISH")]
    seen = []
    run = run_on_document(
        ScriptedAgent(script, AgentConfig(max_steps=5, batch_size=1)),
        hostile,
        "  Make  Revenue bold ",
        on_step=lambda task, step, timing: seen.append((task.request, step.step, step.ok, timing.env_s >= 0)),
    )
    assert seen == [("Make Revenue bold", 1, True, True), ("Make Revenue bold", 2, True, True)]
    assert run.finished and run.trajectory.task.family is None
    assert hostile == original  # the input bytes are never touched
    out = save_document(run.document, tmp_path / "out.docx", overwrite=False)
    reopened = docx.Document(str(out))
    bold = [r.text for p in reopened.paragraphs for r in p.runs if r.bold]
    assert bold == ["Revenue"]
    assert reopened.paragraphs[0].text == "Überblick – naïve café 日本語"
    assert inspect_document(out.read_bytes()).counts == HOSTILE_COUNTS  # nothing it could not show was lost
    with pytest.raises(UserDocumentError, match="exists; pass --overwrite"):
        save_document(run.document, out, overwrite=False)
    save_document(original, out, overwrite=True)
    assert out.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.docx"]  # no temporary file left behind


def test_step_limit_ends_an_episode_without_finish(hostile):
    script = [action("summary", {"text": "thinking"})] * 3
    run = run_on_document(
        ScriptedAgent(script, AgentConfig(max_steps=3, batch_size=1)), hostile, "Do nothing"
    )
    assert not run.finished and len(run.trajectory.steps) == 3
    assert run.trajectory.error == "stopped after 3 steps without FINISH"


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"", "the file is empty"),
        (lambda: os.urandom(2048), "not a .docx document (not a zip archive)"),
        (lambda: b"Dear team,\nplain text renamed .docx\n", "not a zip archive"),
        (lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "an old binary .doc?"),
        (lambda: rezip(hostile_docx(), drop={"word/document.xml"}), "no word/document.xml in it"),
        (lambda: hostile_docx()[:-200], "a corrupt .docx (a truncated zip archive"),
        (lambda: damaged(hostile_docx()), "a corrupt .docx"),
        (
            lambda: rezip(hostile_docx(), edit={"word/document.xml": lambda t: t[:-40]}),
            "a corrupt .docx (a part is not well-formed XML",
        ),
        (
            lambda: rezip(
                hostile_docx(),
                edit={
                    "[Content_Types].xml": lambda t: t.replace(
                        "wordprocessingml.document.main", "wordprocessingml.template.main"
                    )
                },
            ),
            "not a Word document but",
        ),
    ],
    ids=["empty", "random", "text", "doc", "no-document-xml", "truncated", "damaged", "bad-xml", "template"],
)
def test_what_is_not_a_docx_is_refused_with_a_one_line_reason(tmp_path, make, message):
    path = tmp_path / "in.docx"
    path.write_bytes(make())
    with pytest.raises(UserDocumentError) as err:
        inspect_document(read_document(path), str(path))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_output_paths_that_would_touch_the_input_are_refused(tmp_path):
    doc = tmp_path / "in.docx"
    doc.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    for out, message in (
        (doc, "is the input document"),
        (tmp_path / "sub" / ".." / "in.docx", "is the input document"),
        (tmp_path / "out.txt", "must be a .docx"),
        (tmp_path / "nowhere" / "out.docx", "does not exist"),
    ):
        with pytest.raises(UserDocumentError, match=message):
            check_output(doc, out, overwrite=True)
    link = tmp_path / "link.docx"
    os.link(doc, link)
    with pytest.raises(UserDocumentError, match="is the input document"):
        check_output(doc, link, overwrite=True)
    other = tmp_path / "other.docx"
    other.write_bytes(b"y")
    with pytest.raises(UserDocumentError, match="pass --overwrite"):
        check_output(doc, other, overwrite=False)
    check_output(doc, other, overwrite=True)
    check_output(doc, tmp_path / "out.docx", overwrite=False)
    with pytest.raises(UserDocumentError, match="request is empty"):
        user_task("   ")


def test_agent_max_len_is_the_trained_length():
    from lamops.config import load_config

    cfg = load_config(ROOT / "params.yaml")
    assert agent_max_len(cfg) == cfg.imitate.sft.max_len + AgentConfig().max_new_tokens - 80
