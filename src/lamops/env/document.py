"""The live document behind the environment: a python-docx Document plus selection, clipboard and undo.

Everything here edits the in-memory XML; nothing touches the disk until `save`. Undo and episode reset both
restore deep copies of the parts an episode may write (document, headers, footers, comments, settings), which
is two orders of magnitude faster than re-parsing the package (~30 ms)."""

from __future__ import annotations

import copy
import functools
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import docx
from docx.document import Document
from docx.enum.text import WD_BREAK
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import RGBColor
from docx.styles.style import BaseStyle, StyleFactory
from docx.table import Table, _Cell, _Row
from docx.text.hyperlink import Hyperlink
from docx.text.paragraph import Paragraph
from docx.text.run import Run

# Parts whose XML an episode may change; everything else (styles, numbering, theme) is read-only here.
_MUTABLE_CONTENT_TYPES = ("document.main", "header", "footer", "comments", "settings")


HYPERLINK_BLUE = RGBColor(0x05, 0x63, 0xC1)


class DocumentError(ValueError):
    """An editing request the document cannot carry out; the message is shown to the agent."""


@dataclass
class Selection:
    kind: Literal["caret", "text", "paragraphs", "table", "all"] = "caret"
    paragraphs: list = field(default_factory=list)  # CT_P elements, in document order
    start: int = 0  # char offsets in the single paragraph of a "text" selection, or the caret offset
    end: int = 0
    table: object | None = None  # CT_Tbl of a "table" selection


class PartsSnapshot:
    """Deep copies of the mutable parts' XML and of their relationship ids, restorable in place."""

    def __init__(self, doc: Document):
        package = doc.part.package
        self._parts = [p for p in package.iter_parts() if _is_mutable(p)]
        self._children = [[copy.deepcopy(c) for c in p._element] for p in self._parts]
        self._attrib = [dict(p._element.attrib) for p in self._parts]
        self._rel_ids = [set(p.rels.keys()) for p in self._parts]

    def restore(self) -> None:
        for part, children, attrib, rel_ids in zip(
            self._parts, self._children, self._attrib, self._rel_ids, strict=True
        ):
            el = part._element
            el[:] = [copy.deepcopy(c) for c in children]
            el.attrib.clear()
            el.attrib.update(attrib)
            for rid in [r for r in part.rels if r not in rel_ids]:
                del part.rels[rid]


def _is_mutable(part) -> bool:
    return hasattr(part, "_element") and any(t in part.content_type for t in _MUTABLE_CONTENT_TYPES)


def style_name(live: LiveDocument, el) -> str:
    """Name of a paragraph's (CT_P) or table's (CT_Tbl) style, from the cached style table."""
    if el.tag == qn("w:tbl"):
        tblPr = el.find(qn("w:tblPr"))  # optional in practice; `el.tblPr` raises when it is missing
        style_id = tblPr.style if tblPr is not None else None
        return live.style_names.get(style_id, style_id) if style_id else "Normal Table"
    style_id = el.style
    return live.style_names.get(style_id, style_id) if style_id else "Normal"


@functools.cache
def _default_styles():
    """The styles of python-docx's default template (read-only), where missing built-in styles come from."""
    return docx.Document().styles


def paragraph_text(p_el) -> str:
    return Paragraph(p_el, None).text


class LiveDocument:
    """A python-docx Document the environment edits: selection-aware formatting, text edits, undo."""

    def __init__(self, data: bytes):
        self.doc: Document = docx.Document(io.BytesIO(data))
        # What a user's document may lack is added before the pristine snapshot, so that undo and reset
        # keep it: a body with a paragraph (Word's minimum), and a settings part (track changes lives there).
        self.doc.element.get_or_add_body()
        _ = self.doc.settings  # python-docx adds a default settings part when the package has none
        self._ensure_body_paragraph()
        # A table without <w:tblPr> (Word and python-docx open it; the schema requires one) gets an empty one:
        # python-docx's table accessors, and so the table commands, raise without it.
        for part in filter(_is_mutable, self.doc.part.package.iter_parts()):
            for tbl in part._element.iter(qn("w:tbl")):
                if tbl.find(qn("w:tblPr")) is None:
                    tbl.insert(0, OxmlElement("w:tblPr"))
        # Style lookup through python-docx scans every style each time (~1 ms); the styles part changes only
        # when `style` adds a missing built-in style. A document without a styles part gets python-docx's.
        self.style_names = {st.style_id: st.name or st.style_id for st in self.doc.styles}
        self._pristine = PartsSnapshot(self.doc)
        self.selection = Selection()
        self.clipboard: str | list | None = None
        self._undo: list[PartsSnapshot] = []
        self._redo: list[PartsSnapshot] = []
        self.version = 0  # bumped on every change, so renderers can cache
        self._reset_caret()

    # ---- episode life cycle -------------------------------------------------------------------
    def reset(self) -> None:
        self._pristine.restore()
        self._refresh()
        self.clipboard = None
        self._undo.clear()
        self._redo.clear()

    def _refresh(self) -> None:
        # python-docx caches the body proxy; restoring replaced the body element, so rebuild the proxy.
        self.doc = self.doc.part.document
        self.version += 1
        self._reset_caret()

    def _reset_caret(self) -> None:
        paras = self.body_paragraphs()
        last = paras[-1] if paras else None
        self.selection = Selection("caret", [last._p] if last else [], len(last.text) if last else 0)

    def save(self, path: Path) -> None:
        """Write the document atomically: a temp file in the same folder, then rename."""
        from lamops.env.templates import normalize_docx_bytes

        buf = io.BytesIO()
        self.doc.save(buf)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_bytes(normalize_docx_bytes(buf.getvalue()))
            os.replace(tmp, path)
        finally:  # nothing half-written stays behind
            tmp.unlink(missing_ok=True)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.doc.save(buf)
        return buf.getvalue()

    # ---- undo ---------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Call before a change: remembers the state for undo and invalidates redo."""
        self._undo.append(PartsSnapshot(self.doc))
        del self._undo[:-50]
        self._redo.clear()

    def changed(self) -> None:
        self.version += 1

    def rollback(self, mark: int | None = None) -> None:
        """Undo changes that failed half-way: back to the last checkpoint, or to the state when the undo
        stack was `mark` deep (see `undo_depth`); the checkpoints taken since are dropped."""
        mark = len(self._undo) - 1 if mark is None else mark
        if 0 <= mark < len(self._undo):
            self._undo[mark].restore()
            del self._undo[mark:]
            self._refresh()

    def style(self, name: str) -> BaseStyle:
        """The document's style `name`. A built-in style the document does not define yet (a Word document
        holds only the styles it has used) is copied in from python-docx's default template, as Word adds
        it on first use; the styles part is not undone by undo or reset, which is harmless for a style."""
        try:
            return self.doc.styles[name]
        except KeyError:
            pass
        styles = self.doc.styles
        try:
            source = _default_styles()[name]
        except KeyError:
            raise DocumentError(f"the document has no style {name!r}") from None
        added = None
        # The style and the styles it is based on, each unless the document has its id already.
        while source is not None:
            if styles.element.get_by_id(source.style_id) is None:
                el = copy.deepcopy(source.element)
                styles.element.append(el)
                self.style_names[source.style_id] = source.name
                added = added if added is not None else el
            source = source.base_style
        return styles[name] if added is None else StyleFactory(added)

    def undo_depth(self) -> int:
        return len(self._undo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(PartsSnapshot(self.doc))
        self._undo.pop().restore()
        self._refresh()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(PartsSnapshot(self.doc))
        self._redo.pop().restore()
        self._refresh()
        return True

    # ---- navigation ---------------------------------------------------------------------------
    def body_paragraphs(self) -> list[Paragraph]:
        return self.doc.paragraphs

    def tables(self) -> list[Table]:
        return self.doc.tables

    def all_paragraphs(self) -> Iterator[Paragraph]:
        """Body paragraphs and table-cell paragraphs in document order."""
        for block in self.doc.iter_inner_content():
            if isinstance(block, Paragraph):
                yield block
            else:
                yield from table_paragraphs(block)

    def find_text(self, text: str) -> tuple[Paragraph, int] | None:
        if not text:
            return None
        for p in self.all_paragraphs():
            i = p.text.find(text)
            if i >= 0:
                return p, i
        return None

    # ---- selection ----------------------------------------------------------------------------
    def select_text(self, text: str) -> str:
        found = self.find_text(text)
        if found is None:
            raise DocumentError(f"text {text!r} was not found in the document")
        p, i = found
        self.selection = Selection("text", [p._p], i, i + len(text))
        return f"selected {text!r}"

    def select_paragraphs(self, start: int, end: int) -> str:
        paras = self.body_paragraphs()
        n = len(paras)
        end = n - 1 if end == -1 else end
        if not (0 <= start < n) or not (start <= end < n):
            raise DocumentError(f"paragraph range {start}..{end} is outside 0..{n - 1}")
        self.selection = Selection("paragraphs", [p._p for p in paras[start : end + 1]])
        return f"selected paragraphs {start}..{end}"

    def select_table(self, number: int) -> str:
        tables = self.tables()
        if not 1 <= number <= len(tables):
            raise DocumentError(f"table {number} does not exist; the document has {len(tables)} table(s)")
        self.selection = Selection("table", table=tables[number - 1]._tbl)
        return f"selected table {number}"

    def select_all(self) -> str:
        self.selection = Selection("all")
        return "selected the whole document"

    def caret_to(self, where: Literal["doc_start", "doc_end", "line_start", "line_end"]) -> str:
        if where in ("doc_start", "doc_end"):
            paras = self.body_paragraphs()
            p = paras[0] if where == "doc_start" else paras[-1]
        else:
            p = self._anchor_paragraph()
        offset = 0 if where in ("doc_start", "line_start") else len(p.text)
        self.selection = Selection("caret", [p._p], offset)
        return f"caret at {where.replace('_', ' ')}"

    def _anchor_block(self):
        """The top-level block (CT_P or CT_Tbl in the body) the selection ends in: new blocks go after it,
        never inside a table cell."""
        sel = self.selection
        el = sel.table if sel.kind == "table" else self._anchor_paragraph()._p
        body = self.doc.element.body
        while el.getparent() is not body:
            el = el.getparent()
        return el

    def _anchor_paragraph(self) -> Paragraph:
        sel = self.selection
        if sel.paragraphs:
            return Paragraph(sel.paragraphs[-1], self.doc._body)
        if sel.kind == "table" and sel.table is not None:
            return list(table_paragraphs(Table(sel.table, self.doc._body)))[-1]
        return self.body_paragraphs()[-1]

    def has_selection(self) -> bool:
        return self.selection.kind != "caret"

    def selected_paragraphs(self) -> list[Paragraph]:
        """Paragraphs a paragraph-format command applies to (the caret's paragraph for a caret)."""
        sel = self.selection
        parent = self.doc._body
        if sel.kind == "all":
            return list(self.all_paragraphs())
        if sel.kind == "table":
            return list(table_paragraphs(Table(sel.table, parent)))
        return [Paragraph(p, parent) for p in sel.paragraphs]

    def selected_runs(self) -> list[Run]:
        """Runs covering the selection exactly, splitting runs at the selection's edges."""
        sel = self.selection
        if sel.kind == "caret":
            return []
        if sel.kind == "text":
            return span_runs(Paragraph(sel.paragraphs[0], self.doc._body), sel.start, sel.end)
        return [r for p in self.selected_paragraphs() for r in paragraph_runs(p)]

    def selected_text(self) -> str:
        sel = self.selection
        if sel.kind == "text":
            return paragraph_text(sel.paragraphs[0])[sel.start : sel.end]
        if sel.kind == "caret":
            return ""
        return "\n".join(p.text for p in self.selected_paragraphs())

    # ---- edits --------------------------------------------------------------------------------
    def format_runs(self, fn: Callable[[Run], None]) -> int:
        runs = self.selected_runs()
        for r in runs:
            fn(r)
        return len(runs)

    def format_paragraphs(self, fn: Callable[[Paragraph], None]) -> int:
        paras = self.selected_paragraphs()
        for p in paras:
            fn(p)
        return len(paras)

    def type_text(self, text: str) -> str:
        """Typing replaces the selection (keeping the first run's formatting) or inserts at the caret."""
        sel = self.selection
        if sel.kind == "text":
            runs = span_runs(Paragraph(sel.paragraphs[0], self.doc._body), sel.start, sel.end)
            runs[0].text = text
            for r in runs[1:]:
                r._r.getparent().remove(r._r)
            self.selection = Selection("caret", sel.paragraphs, sel.start + len(text))
            return f"typed {text!r} over the selection"
        if sel.kind != "caret":
            self.delete_selection()
            sel = self.selection
        p = Paragraph(sel.paragraphs[0], self.doc._body)
        insert_text(p, sel.start, text)
        self.selection = Selection("caret", sel.paragraphs, sel.start + len(text))
        return f"typed {text!r}"

    def new_paragraph(self) -> str:
        """Enter: split the caret's paragraph; a heading or title is followed by Normal text, as in Word."""
        if self.selection.kind != "caret":
            self.delete_selection()
        sel = self.selection
        p = Paragraph(sel.paragraphs[0], self.doc._body)
        tail_runs = span_runs(p, sel.start, len(p.text)) if sel.start < len(p.text) else []
        new_p = OxmlElement("w:p")
        if p._p.pPr is not None:
            new_p.append(copy.deepcopy(p._p.pPr))
        p._p.addnext(new_p)
        for r in tail_runs:
            new_p.append(r._r)
        new = Paragraph(new_p, p._parent)
        style = (p.style.name if p.style is not None else None) or "Normal"
        if not tail_runs and (style.startswith("Heading") or style in ("Title", "Subtitle")):
            new.style = self.style("Normal")
        self.selection = Selection("caret", [new_p], 0)
        return "new paragraph"

    def delete_selection(self) -> str:
        sel = self.selection
        if sel.kind == "text":
            runs = span_runs(Paragraph(sel.paragraphs[0], self.doc._body), sel.start, sel.end)
            for r in runs:
                r._r.getparent().remove(r._r)
            self.selection = Selection("caret", sel.paragraphs, sel.start)
            return "deleted the selected text"
        if sel.kind == "paragraphs":
            anchor = sel.paragraphs[0].getprevious()
            for p in sel.paragraphs:
                p.getparent().remove(p)
            self._ensure_body_paragraph()
            self._caret_after(anchor)
            return f"deleted {len(sel.paragraphs)} paragraph(s)"
        if sel.kind == "table":
            anchor = sel.table.getprevious()
            sel.table.getparent().remove(sel.table)
            self._ensure_body_paragraph()
            self._caret_after(anchor)
            return "deleted the table"
        if sel.kind == "all":
            body = self.doc.element.body
            for child in list(body):
                if child.tag != qn("w:sectPr"):
                    body.remove(child)
            self._ensure_body_paragraph()
            self._reset_caret()
            return "deleted everything"
        raise DocumentError("nothing is selected")

    def delete_char(self, forward: bool) -> str:
        sel = self.selection
        p = Paragraph(sel.paragraphs[0], self.doc._body)
        n = len(p.text)
        if forward and sel.start < n:
            for r in span_runs(p, sel.start, sel.start + 1):
                r._r.getparent().remove(r._r)
            return "deleted one character"
        if not forward and sel.start > 0:
            for r in span_runs(p, sel.start - 1, sel.start):
                r._r.getparent().remove(r._r)
            self.selection = Selection("caret", sel.paragraphs, sel.start - 1)
            return "deleted one character"
        return "nothing to delete"

    def _ensure_body_paragraph(self) -> None:
        if not self.body_paragraphs():
            body = self.doc.element.body
            sect = body.find(qn("w:sectPr"))
            p = OxmlElement("w:p")
            if sect is not None:
                sect.addprevious(p)
            else:
                body.append(p)

    def _caret_after(self, anchor) -> None:
        paras = self.body_paragraphs()
        if anchor is not None and anchor.tag == qn("w:p"):
            self.selection = Selection("caret", [anchor], len(paragraph_text(anchor)))
        else:
            self.selection = Selection("caret", [paras[0]._p], 0)

    def copy_selection(self) -> str:
        sel = self.selection
        if sel.kind == "caret":
            raise DocumentError("nothing is selected to copy")
        if sel.kind == "text":
            self.clipboard = self.selected_text()
        elif sel.kind == "table":
            self.clipboard = [copy.deepcopy(sel.table)]
        elif sel.kind == "paragraphs":
            self.clipboard = [copy.deepcopy(p) for p in sel.paragraphs]
        else:
            body = self.doc.element.body
            self.clipboard = [copy.deepcopy(c) for c in body if c.tag != qn("w:sectPr")]
        return "copied the selection"

    def paste(self) -> str:
        if self.clipboard is None:
            raise DocumentError("the clipboard is empty")
        if isinstance(self.clipboard, str):
            return self.type_text(self.clipboard)
        if self.selection.kind != "caret":
            self.delete_selection()
        sel = self.selection
        anchor = sel.paragraphs[0]
        blocks = [copy.deepcopy(b) for b in self.clipboard]
        if sel.start == 0 and paragraph_text(anchor):
            for b in blocks:
                anchor.addprevious(b)
        else:
            for b in reversed(blocks):
                anchor.addnext(b)
        last_p = next((b for b in reversed(blocks) if b.tag == qn("w:p")), anchor)
        self.selection = Selection("caret", [last_p], len(paragraph_text(last_p)))
        return f"pasted {len(blocks)} block(s)"

    def insert_table(self, rows: int, cols: int) -> str:
        """Insert an empty rows x cols table after the caret's (or selection's last) paragraph."""
        anchor = self._anchor_block()
        table = self.doc.add_table(rows=rows, cols=cols)
        table.style = self.style("Table Grid")
        anchor.addnext(table._tbl)
        self.selection = Selection("table", table=table._tbl)
        return f"inserted a {rows}x{cols} table"

    def insert_page_break(self) -> str:
        """A page break in a paragraph of its own before the selection's first paragraph."""
        target = self.selected_paragraphs()[0] if self.has_selection() else self._anchor_paragraph()
        brk = target.insert_paragraph_before()
        brk.add_run().add_break(WD_BREAK.PAGE)
        return "inserted a page break"

    def add_hyperlink(self, address: str, display: str | None) -> str:
        sel = self.selection
        part = self.doc.part
        rid = part.relate_to(address, RT.HYPERLINK, is_external=True)
        link = OxmlElement("w:hyperlink")
        link.set(qn("r:id"), rid)
        if sel.kind == "text":
            runs = self.selected_runs()
            if display is not None and display != self.selected_text():
                runs[0].text = display
                for r in runs[1:]:
                    r._r.getparent().remove(r._r)
                runs = runs[:1]
            runs[0]._r.addprevious(link)
            for r in runs:
                link.append(r._r)
        else:
            p = self._anchor_paragraph()
            r = p.add_run(display or address)
            r._r.addprevious(link)
            link.append(r._r)
        for r in link.findall(qn("w:r")):
            # The default template has no Hyperlink character style: format links the way Word shows them.
            font = Run(r, None).font
            font.underline = True
            font.color.rgb = HYPERLINK_BLUE
        return f"linked to {address}"


def row_cells(row: _Row) -> list[_Cell]:
    """The row's cells, a merged cell repeated for each grid cell it spans (`row.cells`); a vertical merge
    python-docx cannot follow (no cell above to continue) gives the row's own cells."""
    try:
        return list(row.cells)
    except ValueError:
        return [_Cell(tc, row.table) for tc in row._tr.tc_lst]


def table_paragraphs(table: Table) -> Iterator[Paragraph]:
    # Merged cells repeat in row.cells. Keep the elements themselves: an id() of an lxml proxy can be reused
    # once the proxy is freed, which made this skip cells at random.
    seen = set()
    for row in table.rows:
        for cell in row_cells(row):
            if cell._tc in seen:
                continue
            seen.add(cell._tc)
            yield from cell.paragraphs


def paragraph_runs(p: Paragraph) -> list[Run]:
    """Every run of the paragraph, those inside hyperlinks included."""
    out: list[Run] = []
    for item in p.iter_inner_content():
        out.extend(item.runs if isinstance(item, Hyperlink) else [item])
    return out


def _is_plain_text_run(r: Run) -> bool:
    return all(c.tag in (qn("w:rPr"), qn("w:t")) for c in r._r)


def span_runs(p: Paragraph, start: int, end: int) -> list[Run]:
    """The runs that cover p.text[start:end], splitting plain text runs at the edges.

    Runs holding tabs, breaks or drawings are kept whole; hyperlinks are kept whole."""
    out: list[Run] = []
    pos = 0
    for item in list(p.iter_inner_content()):
        text = item.text
        a, b = pos, pos + len(text)
        pos = b
        if b <= start or a >= end or not text:
            continue
        if isinstance(item, Hyperlink) or not _is_plain_text_run(item):
            out.extend(item.runs if isinstance(item, Hyperlink) else [item])
            continue
        run = item
        if a < start:
            run = _split_run(run, start - a)
            a = start
        if b > end:
            _split_run(run, end - a)
        out.append(run)
    return out


def _split_run(run: Run, k: int) -> Run:
    """Split a plain text run at offset k; returns the run holding the second part."""
    text = run.text
    tail = copy.deepcopy(run._r)
    run._r.addnext(tail)
    run.text = text[:k]
    tail_run = Run(tail, run._parent)
    tail_run.text = text[k:]
    return tail_run


def insert_text(p: Paragraph, offset: int, text: str) -> None:
    """Insert text at a character offset, inheriting the formatting of the run before it."""
    if not p.text:
        p.add_run(text)
        return
    if offset == 0:
        first = span_runs(p, 0, 1)[0]
        new = copy.deepcopy(first._r)
        first._r.addprevious(new)
        Run(new, p).text = text
        return
    prev = span_runs(p, offset - 1, offset)[-1]
    new = copy.deepcopy(prev._r)
    prev._r.addnext(new)
    Run(new, p).text = text
