"""Dialogs: their initial fields, check boxes, OK (it runs `_ok_<dialog>(fields)`) and Cancel; Find and
Replace."""

from __future__ import annotations

import re

from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Pt
from docx.text.paragraph import Paragraph

from lamops.env import ribbon
from lamops.env.commands.base import Refused, parse_number
from lamops.env.document import Selection, span_runs

DIALOG_DEFAULTS = {
    "insert_table": {"Number of columns": "5", "Number of rows": "2"},
    "zoom": {"Percent": "100"},
}


class DialogCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def _dialog_initial(self, dialog: str) -> dict[str, str]:
        live = self.live
        if dialog == "font":
            runs = [r for r in live.selected_runs() if r.text.strip()]
            return {
                k: "on" if runs and all(getattr(r.font, v) for r in runs) else "off"
                for k, v in ribbon.FONT_EFFECTS.items()
            }
        if dialog in ("header", "footer"):
            part = getattr(live.doc.sections[0], dialog)
            return {f"{dialog.title()} Text": "\n".join(p.text for p in part.paragraphs).strip()}
        if dialog == "hyperlink":
            return {"Text to display": live.selected_text()}
        if dialog == "find_replace":
            return {"Match case": "off", "Find whole words only": "off"}
        return {}

    def _word_count_controls(self) -> tuple[ribbon.Control, ...]:
        paras = [p.text for p in self.live.all_paragraphs()]
        words = sum(len(t.split()) for t in paras)
        chars = sum(len(t) for t in paras)
        texts = (
            f"Words: {words}",
            f"Characters (with spaces): {chars}",
            f"Paragraphs: {sum(1 for t in paras if t.strip())}",
        )
        return tuple(
            ribbon.Control(id=f"dialog:word_count/{i}", text=t, type="Text", container="dialog:word_count")
            for i, t in enumerate(texts)
        )

    def cmd_check(self, name: str) -> str:
        self.ui.fields[name] = "off" if self.ui.fields.get(name) == "on" else "on"
        return f"{name} {self.ui.fields[name]}"

    def cmd_cancel(self, _) -> str:
        title = self._dialog_title()
        self._close_dialog()
        return f"closed the {title} dialog"

    def cmd_ok(self, _) -> str:
        dialog = self.ui.dialog[7:]
        f = self.ui.fields
        apply = getattr(self, f"_ok_{dialog}")
        result = apply(f)  # raises Refused on a bad field, leaving the dialog open
        self._close_dialog()
        return result

    def _ok_insert_table(self, f) -> str:
        cols = int(parse_number(f["Number of columns"], "columns", 1, 63, "Number of columns"))
        rows = int(parse_number(f["Number of rows"], "rows", 1, 500, "Number of rows"))
        return self._edit(lambda: self.live.insert_table(rows, cols))

    def _ok_font(self, f) -> str:
        live = self.live
        if not live.has_selection():
            raise Refused("nothing is selected: select text before applying font settings")
        changes: list[tuple[str, object]] = []
        if f.get("Font", "").strip():
            changes.append(("name", f["Font"].strip()))
        if f.get("Size", "").strip():
            changes.append(("size", Pt(parse_number(f["Size"], "pt", 1, 1638, "Size"))))
        for k, prop in ribbon.FONT_EFFECTS.items():
            if f.get(k) != self._dialog_start.get(k):
                changes.append((prop, True if f.get(k) == "on" else None))

        def apply(r):
            for prop, value in changes:
                setattr(r.font, prop, value)

        return self._format_runs(apply, "font settings")

    def _ok_paragraph(self, f) -> str:
        changes = []
        for name, attr, unit, hi in (
            ("Indentation Left", "left_indent", "in", 20),
            ("Indentation Right", "right_indent", "in", 20),
            ("Spacing Before", "space_before", "pt", 1584),
            ("Spacing After", "space_after", "pt", 1584),
            ("Line Spacing", "line_spacing", "lines", 132),
        ):
            if f.get(name, "").strip():
                v = parse_number(f[name], unit, 0, hi, name)
                changes.append((attr, Inches(v) if unit == "in" else Pt(v) if unit == "pt" else v))

        def apply(p):
            for attr, value in changes:
                setattr(p.paragraph_format, attr, value)

        return self._format_paragraphs(apply, "paragraph settings")

    def _ok_find_replace(self, f) -> str:
        return "closed the Find and Replace dialog"

    def _find_pattern(self) -> re.Pattern:
        f = self.ui.fields
        needle = f.get("Find what", "")
        if not needle:
            raise Refused("Find what is empty")
        pattern = re.escape(needle)
        if f.get("Find whole words only") == "on":
            pattern = rf"\b{pattern}\b"
        return re.compile(pattern, 0 if f.get("Match case") == "on" else re.IGNORECASE)

    def cmd_replace_all(self, _) -> str:
        return self._replace(limit=None)

    def cmd_replace_one(self, _) -> str:
        return self._replace(limit=1)

    def _replace(self, limit: int | None) -> str:
        pattern = self._find_pattern()
        repl = self.ui.fields.get("Replace with", "")
        live = self.live
        count = [0]

        def apply():
            for p in list(live.all_paragraphs()):
                spans = [m.span() for m in pattern.finditer(p.text)]
                for s, e in reversed(spans):
                    if limit is not None and count[0] >= limit:
                        break
                    runs = span_runs(p, s, e)
                    runs[0].text = repl
                    for r in runs[1:]:
                        r._r.getparent().remove(r._r)
                    count[0] += 1
                if limit is not None and count[0] >= limit:
                    break
            return f"All done. We made {count[0]} replacement(s)."

        result = self._edit(apply)
        return result if count[0] else "We couldn't find what you were looking for."

    def cmd_find_next(self, _) -> str:
        pattern = self._find_pattern()
        for p in self.live.all_paragraphs():
            m = pattern.search(p.text)
            if m:
                self.live.selection = Selection("text", [p._p], m.start(), m.end())
                return f"found {m.group(0)!r}"
        return "We couldn't find what you were looking for."

    def _ok_hyperlink(self, f) -> str:
        address = f.get("Address", "").strip()
        if not address:
            raise Refused("Address is empty")
        display = f.get("Text to display") or None
        return self._edit(lambda: self.live.add_hyperlink(address, display))

    def _ok_comment(self, f) -> str:
        live = self.live
        text = f.get("Comment", "").strip()
        if not text:
            raise Refused("the comment is empty")
        runs = [r for r in live.selected_runs() if r.text]
        if not runs:
            raise Refused("select the text to comment on before adding a comment")

        def apply():
            live.doc.add_comment(runs, text=text, author="lamops", initials="LA")
            return "comment posted"

        return self._edit(apply)

    def _ok_header(self, f) -> str:
        return self._set_hf("header", f.get("Header Text", ""))

    def _ok_footer(self, f) -> str:
        return self._set_hf("footer", f.get("Footer Text", ""))

    def _set_hf(self, which: str, text: str) -> str:
        def apply():
            for s in self.live.doc.sections:
                part = getattr(s, which)
                paras = part.paragraphs
                keep = [p for p in paras if any(True for _ in p._p.iter(qn("w:fldSimple")))]
                for p in paras:
                    if p not in keep:
                        for child in [c for c in p._p if c.tag != qn("w:pPr")]:
                            p._p.remove(child)
                target = (
                    next(p for p in part.paragraphs if not any(True for _ in p._p.iter(qn("w:fldSimple"))))
                    if len(keep) < len(paras)
                    else part.add_paragraph()
                )
                if text:
                    target.add_run(text)
            return f"{which} set to {text!r}"

        return self._edit(apply)

    def _ok_page_setup(self, f) -> str:
        values = {
            k: parse_number(f[k], "in", 0, 5, k) for k in ("Top", "Bottom", "Left", "Right") if f.get(k)
        }

        def apply(s):
            for k, v in values.items():
                setattr(s, f"{k.lower()}_margin", Inches(v))

        return self._sections(apply, "custom margins")

    def _ok_zoom(self, f) -> str:
        v = parse_number(f.get("Percent", "100"), "%", 10, 500, "Percent")
        return self.cmd_zoom(f"{v:g}")

    def _ok_caption(self, f) -> str:
        text = f.get("Caption", "").strip()
        if not text:
            raise Refused("Caption is empty")
        live = self.live

        def apply():
            # A caption goes right after the selected table, or after the selection's last paragraph.
            sel = live.selection
            anchor = sel.table if sel.kind == "table" else live.selected_paragraphs()[-1]._p
            new = OxmlElement("w:p")
            anchor.addnext(new)
            p = Paragraph(new, live.doc._body)
            p.style = live.style("Caption")
            p.add_run(text)
            return f"inserted caption {text!r}"

        return self._edit(apply)

    def _ok_word_count(self, f) -> str:
        return "closed the Word Count dialog"
