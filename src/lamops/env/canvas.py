"""The canvas state: a compact, deterministic text rendering of the document's content and formatting.

It is what a text-only agent reads instead of a screenshot, and what the verifier diffs. Example:

    [section 1] Letter portrait, margins 1.0/1.0/1.0/1.0 in (top/bottom/left/right), 1 column
    [header] Northwind Traders
    p0 <Title> Quarterly Report
    p1 <Normal|center|before 12pt> Revenue grew {b,hl=yellow:by 12%} this quarter.
    t1 3x2 <Table Grid> | Region | Sales | / | North | 120 | / ...
    [comment 1 by Ann on "by 12%"] Please check this figure.
"""

from __future__ import annotations

from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.hyperlink import Hyperlink
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from lamops.env.document import LiveDocument, style_name

_ALIGN = {
    WD_ALIGN_PARAGRAPH.CENTER: "center",
    WD_ALIGN_PARAGRAPH.RIGHT: "right",
    WD_ALIGN_PARAGRAPH.JUSTIFY: "justify",
}
# Page sizes in twentieths of a point (portrait width, height).
PAGE_SIZES = {"Letter": (12240, 15840), "Legal": (12240, 20160), "A4": (11906, 16838), "A5": (8391, 11906)}


def page_size_name(section) -> str:
    w, h = int(section.page_width.twips), int(section.page_height.twips)
    w, h = min(w, h), max(w, h)
    for name, (pw, ph) in PAGE_SIZES.items():
        if abs(pw - w) <= 20 and abs(ph - h) <= 20:
            return name
    return f"{w / 1440:.2f}x{h / 1440:.2f}in"


def columns(section) -> int:
    cols = section._sectPr.find(qn("w:cols"))
    num = cols.get(qn("w:num")) if cols is not None else None
    return int(num) if num else 1


def run_format(r: Run) -> tuple[str, ...]:
    """The run's direct formatting as short tags, in a fixed order."""
    f = r.font
    tags = []
    for flag, tag in (
        (f.bold, "b"),
        (f.italic, "i"),
        (f.underline, "u"),
        (f.strike, "s"),
        (f.superscript, "sup"),
        (f.subscript, "sub"),
        (f.all_caps, "caps"),
        (f.small_caps, "smallcaps"),
    ):
        if flag:
            tags.append(tag)
    if f.color is not None and f.color.type is not None and f.color.rgb is not None:
        tags.append(f"color={f.color.rgb}")
    if f.highlight_color is not None:
        tags.append(f"hl={f.highlight_color.name.lower()}")
    if f.name:
        tags.append(f"font={f.name}")
    if f.size is not None:
        tags.append(f"size={f.size.pt:g}")
    return tuple(tags)


def inline_text(p: Paragraph) -> str:
    """Paragraph text with formatted stretches wrapped as {tags:text}; adjacent equal runs merge."""
    pieces: list[tuple[tuple[str, ...], str]] = []
    for item in p.iter_inner_content():
        is_link = isinstance(item, Hyperlink)
        runs = item.runs if is_link else [item]
        for r in runs:
            text = r.text
            if not text:
                if r._r.find(f"{qn('w:br')}[@{qn('w:type')}='page']") is not None:
                    pieces.append((("page break",), ""))
                continue
            tags = run_format(r)
            if is_link:
                tags = (*tags, f"link={item.address}")
            if pieces and pieces[-1][0] == tags:
                pieces[-1] = (tags, pieces[-1][1] + text)
            else:
                pieces.append((tags, text))
    out = []
    for tags, text in pieces:
        if tags == ("page break",):
            out.append("[page break]")
        elif tags:
            out.append("{" + ",".join(tags) + ":" + text + "}")
        else:
            out.append(text)
    fields = _fields(p)
    return "".join(out) + ("".join(f" [field {f}]" for f in fields) if fields else "")


def _fields(p: Paragraph) -> list[str]:
    out = [el.get(qn("w:instr")).split()[0] for el in p._p.iter(qn("w:fldSimple")) if el.get(qn("w:instr"))]
    out += [el.text.split()[0] for el in p._p.iter(qn("w:instrText")) if el.text and el.text.strip()]
    return out


def paragraph_props(live: LiveDocument, p: Paragraph) -> str:
    props = [style_name(live, p._p)]
    pf = p.paragraph_format
    if pf.alignment in _ALIGN:
        props.append(_ALIGN[pf.alignment])
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


def render_table(live: LiveDocument, t: Table, number: int) -> str:
    rows = []
    for row in t.rows:
        # Cells show their formatting too: a change inside a table must show in the canvas diff.
        cells = [" ".join(inline_text(p) for p in c.paragraphs) for c in row.cells]
        rows.append("| " + " | ".join(cells) + " |")
    style = style_name(live, t._tbl)
    return f"t{number} {len(t.rows)}x{len(t.columns)} <{style}> " + " / ".join(rows)


def canvas_items(live: LiveDocument) -> list[tuple[str, str]]:
    """The canvas as (key, line) pairs; keys (section1, header1, p3, t1, comment2, track) let the verifier
    tell which parts of the document an episode changed."""
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
            text = " / ".join(t for t in (inline_text(p) for p in hf.paragraphs) if t)
            if text:
                items.append((f"{kind}{i}", f"[{kind}] {text}"))
    p_index = 0
    t_index = 0
    for block in doc.iter_inner_content():
        if isinstance(block, Paragraph):
            items.append((f"p{p_index}", f"p{p_index} <{paragraph_props(live, block)}> {inline_text(block)}"))
            p_index += 1
        else:
            t_index += 1
            items.append((f"t{t_index}", render_table(live, block, t_index)))
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
