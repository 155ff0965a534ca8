"""Families over the whole document: page setup, tables, inserts, review, headers and footers."""

from __future__ import annotations

from docx.enum.section import WD_ORIENT
from docx.oxml.ns import qn
from docx.text.paragraph import Paragraph

from lamops.env import ribbon
from lamops.env.canvas import columns, page_size_name
from lamops.env.families.base import (
    Family,
    Plan,
    full_text,
    phrasing,
    pick_paragraph,
    pick_phrase,
    starts,
    style_of,
)


def _sections_scope(doc_sections: int) -> set[str]:
    return {f"section{i}" for i in range(1, doc_sections + 1)}


class _PageFamily(Family):
    def scope(self, params):
        return _sections_scope(params.get("sections", 1))


class Orientation(_PageFamily):
    name = "page_orientation"
    category = "page setup"
    description = "Switch the page orientation to landscape (or back to portrait)."

    def sample(self, doc, rng):
        landscape = doc.sections[0].orientation == WD_ORIENT.LANDSCAPE
        value = "Portrait" if landscape else "Landscape"
        plan = Plan().tab("Layout").choose("Orientation", value)
        request = phrasing(
            rng,
            ["Change the page orientation to {v}.", "Make the pages {v}.", "Set the document to {v} layout."],
            v=value.lower(),
        )
        return plan.spec(request, {"landscape": not landscape, "sections": len(doc.sections)})

    def goal(self, before, after, params):
        s = after.sections[0]
        is_land = s.orientation == WD_ORIENT.LANDSCAPE and s.page_width > s.page_height
        is_port = s.orientation == WD_ORIENT.PORTRAIT and s.page_width < s.page_height
        return {"orientation": is_land if params["landscape"] else is_port}


def _margins(section):
    return tuple(
        round(m.inches, 2)
        for m in (section.top_margin, section.bottom_margin, section.left_margin, section.right_margin)
    )


class MarginsPreset(_PageFamily):
    name = "margins_preset"
    category = "page setup"
    description = "Apply a margin preset (Narrow, Moderate, Wide)."

    def sample(self, doc, rng):
        current = _margins(doc.sections[0])
        options = [m for m in ("Narrow", "Moderate", "Wide") if ribbon.MARGINS[m] != current]
        preset = rng.choice(options)
        plan = Plan().tab("Layout").choose("Margins", preset)
        request = phrasing(
            rng,
            [
                "Use {m} margins.",
                "Set the page margins to the {m} preset.",
                "Apply {m} margins to the document.",
            ],
            m=preset,
        )
        return plan.spec(request, {"margins": list(ribbon.MARGINS[preset]), "sections": len(doc.sections)})

    def goal(self, before, after, params):
        return {"margins": list(_margins(after.sections[0])) == params["margins"]}


class CustomMargins(_PageFamily):
    name = "custom_margins"
    category = "page setup"
    description = "Set exact top and bottom margins in the Page Setup dialog."

    def sample(self, doc, rng):
        top, bottom = rng.choice([("1.5", "1.5"), ("0.75", "1.25"), ("2", "1"), ("1.25", "0.75")])
        s = doc.sections[0]
        plan = (
            Plan()
            .tab("Layout")
            .choose("Margins", "Custom Margins...")
            .set_text("Top", top)
            .set_text("Bottom", bottom)
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng,
            [
                "Set the top margin to {t} inches and the bottom margin to {b} inches.",
                'Make the margins {t}" at the top and {b}" at the bottom.',
            ],
            t=top,
            b=bottom,
        )
        return plan.spec(
            request,
            {
                "top": float(top),
                "bottom": float(bottom),
                "left": round(s.left_margin.inches, 2),
                "sections": len(doc.sections),
            },
        )

    def goal(self, before, after, params):
        t, b, left, _ = _margins(after.sections[0])
        return {
            "top": t == params["top"],
            "bottom": b == params["bottom"],
            "left_kept": left == params["left"],
        }


class LandscapeNarrow(_PageFamily):
    name = "landscape_narrow"
    category = "page setup"
    description = "Landscape pages with a margin preset, for wide content."

    def sample(self, doc, rng):
        if doc.sections[0].orientation == WD_ORIENT.LANDSCAPE:
            return None
        preset = rng.choice(
            [m for m in ("Narrow", "Moderate", "Wide") if ribbon.MARGINS[m] != _margins(doc.sections[0])]
        )
        plan = Plan().tab("Layout").choose("Orientation", "Landscape").choose("Margins", preset)
        request = phrasing(
            rng,
            [
                "Switch to landscape pages with {m} margins.",
                "Set the layout to landscape and use the {m} margin preset.",
            ],
            m=preset,
        )
        return plan.spec(
            request,
            {"landscape": True, "margins": list(ribbon.MARGINS[preset]), "sections": len(doc.sections)},
        )

    def goal(self, before, after, params):
        return {
            **Orientation.goal(self, before, after, params),
            **MarginsPreset.goal(self, before, after, params),
        }


class PageSize(_PageFamily):
    name = "page_size"
    category = "page setup"
    description = "Change the paper size (A4, Legal, A5)."

    def sample(self, doc, rng):
        current = page_size_name(doc.sections[0])
        size = rng.choice([s for s in ("A4", "Legal", "A5") if s != current])
        plan = Plan().tab("Layout").choose("Size", size)
        request = phrasing(
            rng,
            [
                "Change the paper size to {s}.",
                "Print this on {s} paper: set the page size.",
                "Set the page size to {s}.",
            ],
            s=size,
        )
        return plan.spec(request, {"size": size, "sections": len(doc.sections)})

    def goal(self, before, after, params):
        return {"page_size": page_size_name(after.sections[0]) == params["size"]}


class Columns(_PageFamily):
    name = "page_columns"
    category = "page setup"
    description = "Lay the text out in two or three columns."

    def sample(self, doc, rng):
        n, word = rng.choice([(2, "Two"), (3, "Three")])
        if columns(doc.sections[0]) == n:
            return None
        plan = Plan().tab("Layout").choose("Columns", word)
        request = phrasing(
            rng,
            [
                "Split the text into {w} columns.",
                "Format the document in {n} columns.",
                "Use a {n}-column layout.",
            ],
            w=word.lower(),
            n=n,
        )
        return plan.spec(request, {"columns": n, "sections": len(doc.sections)})

    def goal(self, before, after, params):
        return {"columns": columns(after.sections[0]) == params["columns"]}


class InsertTable(Family):
    name = "insert_table"
    category = "tables"
    description = "Insert an empty table of a given size at the end of the document."

    def sample(self, doc, rng):
        rows, cols = rng.choice([(2, 3), (3, 2), (3, 3), (4, 2), (2, 4), (4, 3)])
        plan = (
            Plan()
            .keys("^{END}", "Move to the end of the document.")
            .tab("Insert")
            .choose("Table", "Insert Table...")
            .set_text("Number of columns", str(cols))
            .set_text("Number of rows", str(rows))
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng,
            [
                "Insert a table with {r} rows and {c} columns at the end.",
                "Add a {r}x{c} table after the last paragraph.",
                "At the end of the document, put an empty table of {c} columns and {r} rows.",
            ],
            r=rows,
            c=cols,
        )
        return plan.spec(request, {"rows": rows, "cols": cols, "tables": len(doc.tables)})

    def goal(self, before, after, params):
        body = list(after.element.body.iterchildren())
        blocks = [b for b in body if b.tag in (qn("w:p"), qn("w:tbl"))]
        last_tbl = next((b for b in reversed(blocks) if b.tag == qn("w:tbl")), None)
        tables = after.tables
        ok_size = (
            bool(tables)
            and len(tables[-1].rows) == params["rows"]
            and len(tables[-1].columns) == params["cols"]
        )
        tail = blocks[blocks.index(last_tbl) + 1 :] if last_tbl is not None else []
        at_end = last_tbl is not None and all(
            not "".join(t.text or "" for t in b.iter(qn("w:t"))).strip() for b in tail
        )
        return {"table_added": len(tables) == params["tables"] + 1, "table_size": ok_size, "at_end": at_end}


class _TableFamily(Family):
    def scope(self, params):
        return {f"t{params['table']}"}

    def _table(self, doc, rng):
        return rng.randint(1, len(doc.tables)) if doc.tables else None


class TableStyle(_TableFamily):
    name = "table_style"
    category = "tables"
    description = "Apply a table style from the Table Design gallery."

    def sample(self, doc, rng):
        n = self._table(doc, rng)
        if n is None:
            return None
        current = doc.tables[n - 1].style.name if doc.tables[n - 1].style is not None else ""
        style = rng.choice([s for s in ribbon.TABLE_STYLES[1:] if s != current])
        plan = Plan().select_table(n).tab("Table Design")
        if ribbon.TABLE_STYLES.index(style) >= ribbon.GALLERY_WINDOW:
            plan.wheel(ribbon.TABLE_STYLES[0], -1, "Scroll the table styles down.")
        plan.click(style, f"Choose the {style} style.")
        request = phrasing(
            rng,
            [
                "Apply the '{s}' style to table {n}.",
                "Restyle table {n} with {s}.",
                "Give the {o} table the {s} look.",
            ],
            s=style,
            n=n,
            o=["first", "second", "third"][n - 1] if n <= 3 else f"#{n}",
        )
        return plan.spec(request, {"table": n, "style": style})

    def goal(self, before, after, params):
        t = after.tables[params["table"] - 1] if len(after.tables) >= params["table"] else None
        return {"table_style": t is not None and t.style is not None and t.style.name == params["style"]}


class TableHeaderStyle(_TableFamily):
    name = "table_header_style"
    category = "tables"
    description = "Restyle a table and switch off its header-row emphasis."

    def sample(self, doc, rng):
        n = self._table(doc, rng)
        if n is None:
            return None
        style = rng.choice(ribbon.TABLE_STYLES[1 : ribbon.GALLERY_WINDOW])
        plan = (
            Plan()
            .select_table(n)
            .tab("Table Design")
            .click(style, f"Choose the {style} style.")
            .click("Header Row", "Untick Header Row.")
        )
        request = phrasing(
            rng,
            [
                "Give table {n} the '{s}' style without header row emphasis.",
                "Style table {n} as {s} and turn off the header row formatting.",
            ],
            n=n,
            s=style,
        )
        return plan.spec(request, {"table": n, "style": style})

    def goal(self, before, after, params):
        if len(after.tables) < params["table"]:
            return {"table_style": False}
        tbl = after.tables[params["table"] - 1]
        look = tbl._tbl.tblPr.find(qn("w:tblLook"))
        return {
            "table_style": tbl.style is not None and tbl.style.name == params["style"],
            "header_row_off": look is not None and look.get(qn("w:firstRow")) == "0",
        }


class TableAddRow(_TableFamily):
    name = "table_add_row"
    category = "tables"
    description = "Add an empty row at the top or bottom of a table."

    def sample(self, doc, rng):
        n = self._table(doc, rng)
        if n is None:
            return None
        where = rng.choice(["Below", "Above"])
        plan = Plan().select_table(n).tab("Table Layout").click(f"Insert {where}", f"Click Insert {where}.")
        end = "bottom" if where == "Below" else "top"
        request = phrasing(
            rng,
            ["Add an empty row at the {e} of table {n}.", "Insert a new row at the {e} of table {n}."],
            e=end,
            n=n,
        )
        t = doc.tables[n - 1]
        return plan.spec(
            request,
            {
                "table": n,
                "rows": len(t.rows),
                "end": end,
                "cells": [[c.text for c in r.cells] for r in t.rows],
            },
        )

    def goal(self, before, after, params):
        if len(after.tables) < params["table"]:
            return {"row_added": False}
        t = after.tables[params["table"] - 1]
        rows = [[c.text for c in r.cells] for r in t.rows]
        new, old = (rows[-1], rows[:-1]) if params["end"] == "bottom" else (rows[0], rows[1:])
        return {
            "row_added": len(rows) == params["rows"] + 1,
            "new_row_empty": not any(new),
            "old_rows_kept": old == params["cells"],
        }


class TableAddColumn(_TableFamily):
    name = "table_add_column"
    category = "tables"
    description = "Add an empty column on the left or right of a table."

    def sample(self, doc, rng):
        n = self._table(doc, rng)
        if n is None:
            return None
        where = rng.choice(["Left", "Right"])
        plan = Plan().select_table(n).tab("Table Layout").click(f"Insert {where}", f"Click Insert {where}.")
        request = phrasing(
            rng,
            [
                "Add an empty column on the {w} side of table {n}.",
                "Insert a new column to the {w} of table {n}.",
            ],
            w=where.lower(),
            n=n,
        )
        t = doc.tables[n - 1]
        return plan.spec(request, {"table": n, "cols": len(t.columns), "where": where.lower()})

    def goal(self, before, after, params):
        if len(after.tables) < params["table"]:
            return {"column_added": False}
        t = after.tables[params["table"] - 1]
        col = 0 if params["where"] == "left" else len(t.columns) - 1
        return {
            "column_added": len(t.columns) == params["cols"] + 1,
            "new_column_empty": all(not r.cells[col].text for r in t.rows),
        }


class DeleteTable(Family):
    name = "delete_table"
    category = "tables"
    description = "Delete a table and keep the text around it."
    text_preserving = False

    def sample(self, doc, rng):
        if not doc.tables:
            return None
        n = rng.randint(1, len(doc.tables))
        plan = Plan().select_table(n).tab("Table Layout").choose("Delete", "Delete Table")
        request = phrasing(
            rng,
            ["Delete table {n}.", "Remove table {n} from the document.", "Get rid of table number {n}."],
            n=n,
        )
        return plan.spec(
            request, {"table": n, "tables": len(doc.tables), "paragraphs": [p.text for p in doc.paragraphs]}
        )

    def goal(self, before, after, params):
        kept = [p.text for p in after.paragraphs]
        return {
            "table_deleted": len(after.tables) == params["tables"] - 1,
            "paragraphs_kept": kept == params["paragraphs"],
        }


class TableCaption(Family):
    name = "table_caption"
    category = "references"
    description = "Add a caption below a table with References > Insert Caption."
    text_preserving = False

    def sample(self, doc, rng):
        if not doc.tables:
            return None
        n = rng.randint(1, len(doc.tables))
        caption = rng.choice(["Table 1: Summary of results", "Figures by quarter", "Open action items"])
        plan = (
            Plan()
            .select_table(n)
            .tab("References")
            .click("Insert Caption", "Click Insert Caption.")
            .set_text("Caption", caption)
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng, ["Caption table {n} '{c}'.", "Add the caption '{c}' under table {n}."], n=n, c=caption
        )
        return plan.spec(request, {"table": n, "caption": caption})

    def goal(self, before, after, params):
        tables = after.tables
        if len(tables) < params["table"]:
            return {"caption_below_table": False}
        nxt = tables[params["table"] - 1]._tbl.getnext()
        ok = nxt is not None and nxt.tag == qn("w:p")
        if ok:
            p = Paragraph(nxt, after._body)
            ok = p.text == params["caption"] and style_of(p) == "Caption"
        return {"caption_below_table": ok}


class TableOfContents(Family):
    name = "table_of_contents"
    category = "references"
    description = "Insert an automatic table of contents at the start of a document with headings."
    text_preserving = False

    def sample(self, doc, rng):
        if not any(style_of(p).startswith("Heading") for p in doc.paragraphs):
            return None
        plan = Plan().tab("References").choose("Table of Contents", "Automatic Table")
        request = phrasing(
            rng,
            [
                "Add a table of contents at the top.",
                "Insert an automatic table of contents.",
                "Put a contents table at the beginning of the document.",
            ],
        )
        return plan.spec(request, {"paragraphs": [p.text for p in doc.paragraphs]})

    def goal(self, before, after, params):
        paras = after.paragraphs
        toc = [
            i
            for i, p in enumerate(paras)
            if any("TOC" in (f.get(qn("w:instr")) or "") for f in p._p.iter(qn("w:fldSimple")))
        ]
        rest = [p.text for p in paras if style_of(p) != "TOC Heading" and p.text]
        return {
            "toc_at_start": bool(toc) and toc[0] <= 1,
            "content_kept": rest == [t for t in params["paragraphs"] if t],
        }


class PageBreakBefore(Family):
    name = "page_break_before"
    category = "insert"
    description = "Start a paragraph on a new page with a page break."

    def sample(self, doc, rng):
        first = doc.paragraphs[0]._p if doc.paragraphs else None
        i = pick_paragraph(doc, rng, lambda p: p._p is not first, min_words=6)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan()
            .select_paragraph(i, what=f"the paragraph starting '{head}'")
            .tab("Insert")
            .click("Page Break", "Click Page Break.")
        )
        request = phrasing(
            rng,
            [
                "Insert a page break before the paragraph starting '{h}'.",
                "Make the paragraph '{h}...' start on a new page.",
            ],
            h=head,
        )
        return plan.spec(request, {"head": doc.paragraphs[i].text, "breaks": _page_breaks(doc)})

    def goal(self, before, after, params):
        paras = after.paragraphs
        idx = next((i for i, p in enumerate(paras) if p.text == params["head"]), None)
        prev = paras[idx - 1] if idx else None
        broke = prev is not None and any(br.get(qn("w:type")) == "page" for br in prev._p.iter(qn("w:br")))
        return {"break_before": broke, "one_new_break": _page_breaks(after) == params["breaks"] + 1}


def _page_breaks(doc) -> int:
    return sum(1 for br in doc.element.body.iter(qn("w:br")) if br.get(qn("w:type")) == "page")


class AppendParagraph(Family):
    name = "append_paragraph"
    category = "editing"
    description = "Add a new closing paragraph at the end of the document."
    text_preserving = False
    _LINES = [
        "Please reply by Friday.",
        "Thank you for your support.",
        "Questions? Contact the project office.",
        "This document is confidential.",
    ]

    def sample(self, doc, rng):
        line = rng.choice([x for x in self._LINES if x not in full_text(doc)])
        plan = (
            Plan()
            .keys("^{END}", "Move to the end of the document.")
            .keys("{ENTER}", "Press Enter.")
            .keys(line, f"Type {line!r}.")
        )
        request = phrasing(
            rng,
            [
                "Add a final paragraph saying '{t}'",
                "Append the line '{t}' at the end.",
                "End the document with a new paragraph: '{t}'",
            ],
            t=line,
        )
        return plan.spec(request, {"line": line, "paragraphs": [p.text for p in doc.paragraphs]})

    def goal(self, before, after, params):
        texts = [p.text for p in after.paragraphs]
        return {
            "appended": bool(texts) and texts[-1] == params["line"],
            "rest_kept": texts[:-1] == params["paragraphs"],
        }


class InsertSymbol(Family):
    name = "insert_symbol"
    category = "insert"
    description = "Insert a symbol (©, ®, €...) right after a word."
    text_preserving = False

    def sample(self, doc, rng):
        picked = pick_phrase(doc, rng, words=(1, 2))
        if picked is None:
            return None
        phrase, _ = picked
        symbol = rng.choice(["©", "®", "™", "€", "°"])
        plan = (
            Plan()
            .select_text(phrase)
            .keys("{RIGHT}", "Move the caret after the selection.")
            .tab("Insert")
            .choose("Symbol", symbol)
        )
        request = phrasing(
            rng,
            ["Insert the symbol {s} right after '{p}'.", "Put a {s} sign directly after '{p}'."],
            s=symbol,
            p=phrase,
        )
        return plan.spec(request, {"phrase": phrase, "symbol": symbol})

    def goal(self, before, after, params):
        expected = full_text(before).replace(params["phrase"], params["phrase"] + params["symbol"], 1)
        return {"symbol_inserted": full_text(after) == expected}


class DeleteAllComments(Family):
    name = "delete_all_comments"
    category = "review"
    description = "Remove every review comment."

    def sample(self, doc, rng):
        if not list(doc.comments):
            return None
        plan = Plan().tab("Review").choose("Delete Comment", "Delete All Comments in Document")
        request = phrasing(
            rng,
            [
                "Delete all comments.",
                "Remove every review comment from the document.",
                "Clear out the reviewers' comments.",
            ],
        )
        return plan.spec(request, {})

    def goal(self, before, after, params):
        markers = list(after.element.body.iter(qn("w:commentRangeStart"), qn("w:commentReference")))
        return {"no_comments": not list(after.comments), "no_markers": not markers}


class DeleteOneComment(Family):
    name = "delete_one_comment"
    category = "review"
    description = "Delete one particular comment, found with Next Comment."

    def sample(self, doc, rng):
        comments = list(doc.comments)
        if len(comments) < 2:
            return None
        k = rng.randint(1, len(comments))
        target = comments[k - 1]
        plan = Plan().tab("Review")
        for _ in range(k):
            plan.click("Next Comment", "Click Next Comment.")
        plan.choose("Delete Comment", "Delete")
        request = phrasing(
            rng, ["Delete the comment that says '{t}'.", "Remove the review comment '{t}'."], t=target.text
        )
        return plan.spec(
            request, {"text": target.text, "others": [c.text for c in comments if c is not target]}
        )

    def goal(self, before, after, params):
        texts = [c.text for c in after.comments]
        return {"comment_deleted": params["text"] not in texts, "others_kept": texts == params["others"]}


class TrackChanges(Family):
    name = "track_changes"
    category = "review"
    description = "Turn on Track Changes."

    def sample(self, doc, rng):
        if doc.settings.element.find(qn("w:trackRevisions")) is not None:
            return None
        plan = Plan().tab("Review").click("Track Changes", "Click Track Changes.")
        request = phrasing(
            rng,
            ["Turn on Track Changes.", "Start tracking changes in this document.", "Enable change tracking."],
        )
        return plan.spec(request, {})

    def goal(self, before, after, params):
        return {"tracking": after.settings.element.find(qn("w:trackRevisions")) is not None}

    def scope(self, params):
        return {"track"}


def _hf_text(doc, which: str) -> str:
    return "\n".join(p.text for p in getattr(doc.sections[0], which).paragraphs).strip()


class SetHeaderFooter(Family):
    name = "set_header"
    category = "header and footer"
    description = "Write a line of text in the page header."
    which = "header"
    _LINES = ["Internal use only", "Draft for review", "Meridian Supply Co.", "Version 2.1"]

    def sample(self, doc, rng):
        line = rng.choice([x for x in self._LINES if x != _hf_text(doc, self.which)])
        title = self.which.title()
        plan = (
            Plan()
            .tab("Insert")
            .click(title, f"Open the {title} menu.")
            .click(f"Edit {title}", f"Choose Edit {title}.")
            .set_text(f"{title} Text", line)
            .click("Close Header and Footer", "Close the header and footer.")
        )
        request = phrasing(
            rng,
            ["Put '{t}' in the {w}.", "Set the page {w} to '{t}'.", "Add a {w} reading '{t}'."],
            t=line,
            w=self.which,
        )
        return plan.spec(request, {"line": line})

    def goal(self, before, after, params):
        return {f"{self.which}_text": _hf_text(after, self.which) == params["line"]}

    def scope(self, params):
        return {f"{self.which}1"}


class SetFooter(SetHeaderFooter):
    name = "set_footer"
    description = "Write a line of text in the page footer."
    which = "footer"


class HeaderAndFooter(Family):
    name = "header_and_footer"
    category = "header and footer"
    description = "Write both a header line and a footer line."

    def sample(self, doc, rng):
        top = rng.choice([x for x in SetHeaderFooter._LINES if x != _hf_text(doc, "header")])
        bottom = rng.choice(
            ["Page footer: internal", "Prepared by the operations team", "Printed copies expire"]
        )
        plan = Plan().tab("Insert")
        for which, line in (("Header", top), ("Footer", bottom)):
            (
                plan.click(which, f"Open the {which} menu.")
                .click(f"Edit {which}", f"Choose Edit {which}.")
                .set_text(f"{which} Text", line)
                .click("Close Header and Footer", "Close the header and footer.")
            )
        request = phrasing(
            rng,
            [
                "Put '{t}' in the header and '{b}' in the footer.",
                "Set the header to '{t}' and the footer to '{b}'.",
            ],
            t=top,
            b=bottom,
        )
        return plan.spec(request, {"header": top, "footer": bottom})

    def goal(self, before, after, params):
        return {
            "header_text": _hf_text(after, "header") == params["header"],
            "footer_text": _hf_text(after, "footer") == params["footer"],
        }

    def scope(self, params):
        return {"header1", "footer1"}


class PageNumbers(Family):
    name = "page_numbers"
    category = "header and footer"
    description = "Number the pages at the top or bottom."

    def sample(self, doc, rng):
        where, item = rng.choice([("footer", "Bottom of Page"), ("header", "Top of Page")])
        plan = Plan().tab("Insert").choose("Page Number", item)
        request = phrasing(
            rng,
            ["Add page numbers at the {e} of each page.", "Number the pages in the {w}."],
            e="bottom" if where == "footer" else "top",
            w=where,
        )
        return plan.spec(request, {"where": where})

    def goal(self, before, after, params):
        part = getattr(after.sections[0], params["where"])
        has = any(
            "PAGE" in (f.get(qn("w:instr")) or "")
            for p in part.paragraphs
            for f in p._p.iter(qn("w:fldSimple"))
        )
        return {"page_numbers": has}

    def scope(self, params):
        return {f"{params['where']}1"}


class RemoveHeader(Family):
    name = "remove_header"
    category = "header and footer"
    description = "Remove the existing page header."

    def sample(self, doc, rng):
        if not _hf_text(doc, "header"):
            return None
        plan = Plan().tab("Insert").choose("Header", "Remove Header")
        request = phrasing(
            rng, ["Remove the header.", "Delete the page header text.", "Take the header off."]
        )
        return plan.spec(request, {"footer": _hf_text(doc, "footer")})

    def goal(self, before, after, params):
        return {
            "header_removed": not _hf_text(after, "header"),
            "footer_kept": _hf_text(after, "footer") == params["footer"],
        }

    def scope(self, params):
        return {"header1"}


FAMILIES = [
    Orientation,
    MarginsPreset,
    CustomMargins,
    LandscapeNarrow,
    PageSize,
    Columns,
    InsertTable,
    TableStyle,
    TableHeaderStyle,
    TableAddRow,
    TableAddColumn,
    DeleteTable,
    TableCaption,
    TableOfContents,
    PageBreakBefore,
    AppendParagraph,
    InsertSymbol,
    DeleteAllComments,
    DeleteOneComment,
    TrackChanges,
    SetHeaderFooter,
    SetFooter,
    HeaderAndFooter,
    PageNumbers,
    RemoveHeader,
]
