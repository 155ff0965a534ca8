"""The canvas state: a compact, deterministic text rendering of the document's content and formatting.

It is what a text-only agent reads instead of a screenshot, and what the verifier diffs. Example:

    [section 1] Letter portrait, margins 1.0/1.0/1.0/1.0 in (top/bottom/left/right), 1 column
    [header] Northwind Traders
    p0 <Title> Quarterly Report
    p1 <Normal|center|before 12pt> Revenue grew {b,hl=yellow:by 12%} this quarter.
    t1 3x2 <Table Grid> | Region | Sales | / | North | 120 | / ...
    [comment 1 by Ann on "by 12%"] Please check this figure.

What the environment cannot show or edit is never dropped silently: its place is marked by a placeholder,
with its text where it has some, read-only (select_text does not find text inside a placeholder): `[image]`,
`[chart]`, `[diagram]` (SmartArt), `[shape]`, `[embedded object: Excel.Sheet.12]`, `[text box: ...]`,
`[content control: ...]` (inline, or a line of its own for a block-level one), `[equation: ...]`,
`[inserted: ...]` and `[deleted: ...]` (tracked changes), `[footnote 2]`, `[endnote 1]`, `[nested table 2x2:
...]` in a table cell, and `[<element>: ...]` for any other element that holds text. First-page and
even-page headers and footers get lines of their own (`[first-page header] ...`), read-only too.
`canvas_items(live, notes)` counts each kind in `notes` (lamops.env.user_docx reports them to the user).
"""

from __future__ import annotations

from collections import Counter

from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.hyperlink import Hyperlink
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from lamops.env.document import LiveDocument, row_cells, style_name

_ALIGN = {
    WD_ALIGN_PARAGRAPH.CENTER: "center",
    WD_ALIGN_PARAGRAPH.RIGHT: "right",
    WD_ALIGN_PARAGRAPH.JUSTIFY: "justify",
}
# Page sizes in twentieths of a point (portrait width, height).
PAGE_SIZES = {"Letter": (12240, 15840), "Legal": (12240, 20160), "A4": (11906, 16838), "A5": (8391, 11906)}


# Namespaced tags, compared as strings (qn() per element would cost more than the rendering).
_P, _R, _TBL, _TR, _HYPERLINK = qn("w:p"), qn("w:r"), qn("w:tbl"), qn("w:tr"), qn("w:hyperlink")
_T, _DEL_TEXT, _SDT, _FLD_SIMPLE = qn("w:t"), qn("w:delText"), qn("w:sdt"), qn("w:fldSimple")
_INSERTED = {qn("w:ins"), qn("w:moveTo")}
_DELETED = {qn("w:del"), qn("w:moveFrom")}
_MATH_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_EQUATIONS = {_MATH_NS + "oMath", _MATH_NS + "oMathPara"}
_MATH_T = _MATH_NS + "t"
_MC_NS = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_VML_NS = "urn:schemas-microsoft-com:vml"
_TXBX, _W_OBJECT, _W_PICT = qn("w:txbxContent"), qn("w:object"), qn("w:pict")
_GRAPHIC_DATA = qn("a:graphicData")
_OLE_OBJECT = "{urn:schemas-microsoft-com:office:office}OLEObject"
# Elements of a run that draw something without text, and the note references.
_RUN_OBJECTS = {qn("w:drawing"), _W_PICT, _W_OBJECT, _MC_NS + "AlternateContent"}
_NOTE_REFS = {qn("w:footnoteReference"): "footnote", qn("w:endnoteReference"): "endnote"}
# Markers that show nothing in Word either (ranges, bookmarks, proofing, permissions).
_MARKERS = {
    qn(f"w:{name}")
    for name in (
        "pPr",
        "rPr",
        "sectPr",
        "tcPr",
        "tblPr",
        "tblGrid",
        "trPr",
        "tblPrEx",
        "bookmarkStart",
        "bookmarkEnd",
        "commentRangeStart",
        "commentRangeEnd",
        "proofErr",
        "permStart",
        "permEnd",
        "moveFromRangeStart",
        "moveFromRangeEnd",
        "moveToRangeStart",
        "moveToRangeEnd",
        "customXmlInsRangeStart",
        "customXmlInsRangeEnd",
        "customXmlDelRangeStart",
        "customXmlDelRangeEnd",
        "lastRenderedPageBreak",
    )
}
_RAW = ("\0raw",)  # a piece rendered as written: a placeholder
_PAGE_BREAK = ("page break",)
PLACEHOLDER_CHARS = 80  # text shown in one placeholder; longer is cut with an ellipsis

Notes = Counter  # kind -> how many the canvas marked


def page_size_name(section) -> str:
    if section.page_width is None or section.page_height is None:
        return "unknown size"
    w, h = int(section.page_width.twips), int(section.page_height.twips)
    w, h = min(w, h), max(w, h)
    for name, (pw, ph) in PAGE_SIZES.items():
        if abs(pw - w) <= 20 and abs(ph - h) <= 20:
            return name
    return f"{w / 1440:.2f}x{h / 1440:.2f}in"


def columns(section) -> int:
    cols = section._sectPr.find(qn("w:cols"))
    num = cols.get(qn("w:num")) if cols is not None else None
    return int(num) if num and num.isdigit() else 1


def run_format(r: Run) -> tuple[str, ...]:
    """The run's direct formatting as short tags, in a fixed order."""
    try:
        return _run_format(r.font, getattr)
    except ValueError:  # a value python-docx cannot map (e.g. w:highlight "none"): leave that one out
        return _run_format(r.font, _get_or_none)


def _get_or_none(obj, name: str):
    try:
        return getattr(obj, name)
    except ValueError:
        return None


def _run_format(f, get) -> tuple[str, ...]:
    tags = []
    for flag, tag in (
        (get(f, "bold"), "b"),
        (get(f, "italic"), "i"),
        (get(f, "underline"), "u"),
        (get(f, "strike"), "s"),
        (get(f, "superscript"), "sup"),
        (get(f, "subscript"), "sub"),
        (get(f, "all_caps"), "caps"),
        (get(f, "small_caps"), "smallcaps"),
    ):
        if flag:
            tags.append(tag)
    color = get(f, "color")
    if color is not None and get(color, "type") is not None and get(color, "rgb") is not None:
        tags.append(f"color={color.rgb}")
    highlight = get(f, "highlight_color")
    if highlight is not None:
        tags.append(f"hl={highlight.name.lower()}")
    if f.name:
        tags.append(f"font={f.name}")
    size = get(f, "size")
    if size is not None:
        tags.append(f"size={size.pt:g}")
    return tuple(tags)


def inline_text(p: Paragraph, notes: Notes | None = None) -> str:
    """Paragraph text with formatted stretches wrapped as {tags:text}; adjacent equal runs merge. What the
    environment cannot show is marked by a placeholder (see the module docstring), counted in `notes`."""
    pieces: list[tuple[tuple[str, ...], str]] = []
    for child in p._p:
        tag = child.tag
        if tag == _R:
            _run_pieces(pieces, Run(child, p), (), notes)
        elif tag == _HYPERLINK:
            link = Hyperlink(child, p)
            runs = link.runs
            extra: tuple[str, ...] = ()
            if any(r.text for r in runs):
                try:
                    extra = (f"link={link.address}",)
                except KeyError:  # its relationship is missing from the package
                    extra = ("link=?",)
            for r in runs:
                _run_pieces(pieces, r, extra, notes)
        elif tag not in _MARKERS and tag != _FLD_SIMPLE and isinstance(tag, str):
            _add_raw(pieces, _inline_placeholder(child, notes))
    out = []
    for tags, text in pieces:
        if tags == _PAGE_BREAK:
            out.append("[page break]")
        elif tags == _RAW:
            out.append(text)
        elif tags:
            out.append("{" + ",".join(tags) + ":" + text + "}")
        else:
            out.append(text)
    fields = _fields(p)
    return "".join(out) + ("".join(f" [field {f}]" for f in fields) if fields else "")


def _run_pieces(pieces: list, r: Run, extra: tuple[str, ...], notes: Notes | None) -> None:
    text = r.text
    if text:
        tags = run_format(r) + extra
        if pieces and pieces[-1][0] == tags:
            pieces[-1] = (tags, pieces[-1][1] + text)
        else:
            pieces.append((tags, text))
    elif r._r.find(f"{qn('w:br')}[@{qn('w:type')}='page']") is not None:
        pieces.append((_PAGE_BREAK, ""))
    for child in r._r:
        tag = child.tag
        if tag in _RUN_OBJECTS:
            _add_raw(pieces, "".join(_note(notes, k, ph) for k, ph in _objects(child)))
        elif tag in _NOTE_REFS:
            kind = _NOTE_REFS[tag]
            _add_raw(pieces, _note(notes, kind, f"[{kind} {child.get(qn('w:id'), '?')}]"))


def _add_raw(pieces: list, text: str) -> None:
    if not text:
        return
    if pieces and pieces[-1][0] == _RAW:
        pieces[-1] = (_RAW, pieces[-1][1] + text)
    else:
        pieces.append((_RAW, text))


def _note(notes: Notes | None, kind: str, placeholder: str) -> str:
    if notes is not None:
        notes[kind] += 1
    return placeholder


def _clip(text: str, limit: int = PLACEHOLDER_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _labelled(label: str, text: str) -> str:
    text = _clip(text)
    return f"[{label}: {text}]" if text else f"[{label}]"


def _plain_text(el) -> str:
    """The text of an element's runs (deleted text included), paragraphs joined by ' / '; alternative
    content is read once."""
    parts: list[str] = []
    for node in el.iter(_T, _DEL_TEXT, _MATH_T, _P, _MC_NS + "Fallback"):
        if node.tag == _P:
            if parts and parts[-1] != " / ":
                parts.append(" / ")
        elif node.tag == _MC_NS + "Fallback":
            continue
        elif not _in_fallback(node, el):
            parts.append(node.text or "")
    return "".join(parts).strip(" /")


def _in_fallback(node, top) -> bool:
    while node is not None and node is not top:
        if node.tag == _MC_NS + "Fallback":
            return True
        node = node.getparent()
    return False


def _objects(el) -> list[tuple[str, str]]:
    """(kind, placeholder) of each thing a drawing, VML picture, embedded object or alternate content
    shows; the fallback of alternate content repeats its choice and is skipped."""
    tag = el.tag
    if tag == _MC_NS + "Fallback":
        return []
    if tag == _TXBX:
        return [("text box", _labelled("text box", _plain_text(el)))]
    if tag == _W_OBJECT:
        ole = next(el.iter(_OLE_OBJECT), None)
        prog = ole.get("ProgID") if ole is not None else None
        return [("embedded object", f"[embedded object: {prog}]" if prog else "[embedded object]")]
    if tag == _GRAPHIC_DATA:
        kind = el.get("uri", "").rsplit("/", 1)[-1]
        if kind == "picture":
            return [("image", "[image]")]
        if kind.startswith("chart"):
            return [("chart", "[chart]")]
        if kind == "diagram":
            return [("diagram", "[diagram]")]
    if tag == "{" + _VML_NS + "}imagedata":
        return [("image", "[image]")]
    found = [item for child in el for item in _objects(child)]
    if not found and tag in (_GRAPHIC_DATA, _W_PICT):
        return [("shape", "[shape]")]
    return found


def _inline_placeholder(el, notes: Notes | None) -> str:
    """The placeholder of a paragraph's child that is neither a run nor a hyperlink."""
    tag = el.tag
    if tag in _INSERTED:
        return _note(notes, "tracked change", _labelled("inserted", _plain_text(el)))
    if tag in _DELETED:
        return _note(notes, "tracked change", _labelled("deleted", _plain_text(el)))
    if tag == _SDT:
        return _note(notes, "content control", _labelled("content control", _plain_text(el)))
    if tag in _EQUATIONS:
        return _note(notes, "equation", _labelled("equation", _plain_text(el)))
    if tag == _MC_NS + "AlternateContent":
        return "".join(_note(notes, k, ph) for k, ph in _objects(el))
    text = _plain_text(el)
    if not text:
        return ""
    name = el.tag.rsplit("}", 1)[-1]
    return _note(notes, f"other:{name}", _labelled(name, text))


def _fields(p: Paragraph) -> list[str]:
    out = [
        el.get(qn("w:instr")).split()[0]
        for el in p._p.iter(qn("w:fldSimple"))
        if (el.get(qn("w:instr")) or "").strip()
    ]
    out += [el.text.split()[0] for el in p._p.iter(qn("w:instrText")) if el.text and el.text.strip()]
    return out


def paragraph_props(live: LiveDocument, p: Paragraph) -> str:
    props = [style_name(live, p._p)]
    pf = p.paragraph_format
    try:
        alignment = pf.alignment
    except ValueError:  # a value python-docx cannot map ("start", "end"): shown as Word shows it
        alignment = WD_ALIGN_PARAGRAPH.RIGHT if p._p.pPr.jc.get(qn("w:val")) == "end" else None
    if alignment in _ALIGN:
        props.append(_ALIGN[alignment])
    if pf.space_before is not None:
        props.append(f"before {pf.space_before.pt:g}pt")
    if pf.space_after is not None:
        props.append(f"after {pf.space_after.pt:g}pt")
    if pf.line_spacing is not None:
        ls = pf.line_spacing
        props.append(f"line {ls:g}" if isinstance(ls, float) else f"line {ls.pt:g}pt")
    if pf.left_indent:
        props.append(f"indent {pf.left_indent.inches:g}in")
    if pf.right_indent:
        props.append(f"right indent {pf.right_indent.inches:g}in")
    if pf.first_line_indent:
        props.append(f"first line {pf.first_line_indent.inches:g}in")
    return "|".join(props)


def render_table(live: LiveDocument, t: Table, number: int, notes: Notes | None = None) -> str:
    style = style_name(live, t._tbl)
    rows, n_cols = _table_rows(t, notes)
    return f"t{number} {len(t.rows)}x{n_cols} <{style}> " + rows


def _table_rows(t: Table, notes: Notes | None) -> tuple[str, int]:
    """The rows as '| a | b | / | c | d |' and the number of grid columns. A merged cell repeats in each
    grid cell it spans (its text is rendered, and its contents counted, once)."""
    rows = []
    texts: dict = {}  # the w:tc elements themselves as keys: id() of a freed lxml proxy can be reused
    widest = 0
    for row in t.rows:
        cells = []
        for c in row_cells(row):
            if c._tc not in texts:
                # Cells show their formatting too: a change inside a table must show in the canvas diff.
                texts[c._tc] = _cell_text(c, notes)
            cells.append(texts[c._tc])
        widest = max(widest, len(cells))
        rows.append("| " + " | ".join(cells) + " |")
    text = " / ".join(rows)
    extra = [_block_placeholder(el, t, notes) for el in t._tbl if el.tag not in _MARKERS and el.tag != _TR]
    text += "".join(f" {e}" for e in extra if e)
    try:
        n_cols = len(t.columns)
    except Exception:  # no w:tblGrid: count the widest row instead
        n_cols = widest
    return text, n_cols


def _cell_text(c, notes: Notes | None) -> str:
    parts = []
    for el in c._tc:
        if el.tag == _P:
            parts.append(inline_text(Paragraph(el, c), notes))
        elif el.tag not in _MARKERS and isinstance(el.tag, str):
            text = _block_placeholder(el, c, notes)
            if text:
                parts.append(text)
    return " ".join(parts)


def _block_placeholder(el, parent, notes: Notes | None) -> str:
    """The placeholder of a block that is neither a paragraph nor a top-level table: a table nested in a
    cell, a block-level content control, or any other element holding text."""
    tag = el.tag
    if tag == _TBL:
        nested = Table(el, parent)
        rows, n_cols = _table_rows(nested, notes)
        return _note(notes, "nested table", f"[nested table {len(nested.rows)}x{n_cols}: {rows}]")
    if tag == _SDT:
        return _note(notes, "content control", _labelled("content control", _plain_text(el)))
    if not isinstance(tag, str):
        return ""
    text = _plain_text(el)
    if not text:
        return ""
    name = tag.rsplit("}", 1)[-1]
    return _note(notes, f"other:{name}", _labelled(name, text))


def _story_text(container, notes: Notes | None) -> str:
    """A header's or footer's blocks: paragraphs' inline text, placeholders for anything else."""
    parts = []
    for el in container._element:
        if el.tag == _P:
            parts.append(inline_text(Paragraph(el, container), notes))
        elif el.tag not in _MARKERS and isinstance(el.tag, str):
            parts.append(_block_placeholder(el, container, notes))
    return " / ".join(t for t in parts if t)


# A section's first-page and even-page headers and footers: shown on lines of their own, read-only (the
# Header and Footer dialogs edit the primary ones).
_HF_REFERENCES = {qn("w:headerReference"), qn("w:footerReference")}
_OTHER_HEADERS = (
    ("first", "header", "first-page header"),
    ("first", "footer", "first-page footer"),
    ("even", "header", "even-page header"),
    ("even", "footer", "even-page footer"),
)


def canvas_items(live: LiveDocument, notes: Notes | None = None) -> list[tuple[str, str]]:
    """The canvas as (key, line) pairs; keys (section1, header1, first_header1, p3, t1, block1, comment2,
    track) let the verifier tell which parts of the document an episode changed. With `notes`, counts by kind
    what the canvas shows read-only: placeholders, and first-page and even-page headers and footers."""
    doc = live.doc
    items = []
    for i, s in enumerate(doc.sections, 1):
        orient = "landscape" if s.orientation == WD_ORIENT.LANDSCAPE else "portrait"
        margins = "/".join(
            f"{m.inches:.2f}".rstrip("0").rstrip(".") if m is not None else "?"
            for m in (s.top_margin, s.bottom_margin, s.left_margin, s.right_margin)
        )
        n_cols = columns(s)
        items.append(
            (
                f"section{i}",
                f"[section {i}] {page_size_name(s)} {orient}, margins {margins} in "
                f"(top/bottom/left/right), {n_cols} column{'s' if n_cols > 1 else ''}",
            )
        )
        for kind, hf in (("header", s.header), ("footer", s.footer)):
            if hf.is_linked_to_previous:
                continue
            text = _story_text(hf, notes)
            if text:
                items.append((f"{kind}{i}", f"[{kind}] {text}"))
        other = {
            el.get(qn("w:type"))
            for el in s._sectPr
            if el.tag in _HF_REFERENCES and el.get(qn("w:type")) in ("first", "even")
        }
        if "first" in other and not s.different_first_page_header_footer:
            other.discard("first")  # defined, but Word shows it only with "different first page"
        if "even" in other and not doc.settings.odd_and_even_pages_header_footer:
            other.discard("even")
        for which, kind, label in _OTHER_HEADERS:
            if which in other:
                text = _story_text(getattr(s, f"{which}_page_{kind}"), notes)
                if text:
                    items.append((f"{which}_{kind}{i}", f"[{label}] {_note(notes, label, text)}"))
    p_index = 0
    t_index = 0
    b_index = 0
    body = doc._body
    for el in doc.element.body:
        tag = el.tag
        if tag == _P:
            block = Paragraph(el, body)
            props = paragraph_props(live, block)
            items.append((f"p{p_index}", f"p{p_index} <{props}> {inline_text(block, notes)}"))
            p_index += 1
        elif tag == _TBL:
            t_index += 1
            items.append((f"t{t_index}", render_table(live, Table(el, body), t_index, notes)))
        elif tag not in _MARKERS and isinstance(tag, str):
            text = _block_placeholder(el, body, notes)
            if text:
                b_index += 1
                items.append((f"block{b_index}", text))
    for n, c in enumerate(doc.comments, 1):
        anchor = comment_anchor_text(doc, c.comment_id)
        items.append((f"comment{n}", f'[comment {n} by {c.author} on "{anchor}"] {c.text}'))
    if track_changes_on(live):
        items.append(("track", "[track changes on]"))
    return items


def render_canvas(live: LiveDocument) -> str:
    return "\n".join(line for _, line in canvas_items(live))


def comment_anchor_text(doc, comment_id: int) -> str:
    """The text between a comment's range markers in a python-docx Document."""
    body = doc.element.body
    cid = str(comment_id)
    inside = False
    texts = []
    for el in body.iter(qn("w:commentRangeStart"), qn("w:commentRangeEnd"), qn("w:t")):
        if el.tag == qn("w:commentRangeStart") and el.get(qn("w:id")) == cid:
            inside = True
        elif el.tag == qn("w:commentRangeEnd") and el.get(qn("w:id")) == cid:
            break
        elif el.tag == qn("w:t") and inside:
            texts.append(el.text or "")
    return "".join(texts)


def track_changes_on(live: LiveDocument) -> bool:
    return live.doc.settings.element.find(qn("w:trackRevisions")) is not None


def render_selection(live: LiveDocument) -> str:
    sel = live.selection
    paras = live.body_paragraphs()
    index = {p._p: i for i, p in enumerate(paras)}
    if sel.kind == "caret":
        where = index.get(sel.paragraphs[0]) if sel.paragraphs else None
        return f"caret in p{where} at {sel.start}" if where is not None else "caret in a table cell"
    if sel.kind == "text":
        where = index.get(sel.paragraphs[0])
        loc = f"p{where}" if where is not None else "a table cell"
        return f'text "{live.selected_text()}" in {loc}'
    if sel.kind == "paragraphs":
        ids = [index.get(p) for p in sel.paragraphs]
        return f"paragraphs p{ids[0]}-p{ids[-1]}"
    if sel.kind == "table":
        n = next((i for i, t in enumerate(live.tables(), 1) if t._tbl is sel.table), None)
        return f"table t{n}" if n is not None else "a table nested in a table cell"
    return "the whole document"
