"""The Layout tab: breaks, page setup (applied to every section), line numbers, and the tab's indent and
spacing boxes."""

from __future__ import annotations

from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_BREAK
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Pt, Twips

from lamops.env import ribbon
from lamops.env.canvas import (
    PAGE_SIZES,
)
from lamops.env.commands.base import parse_number


class LayoutCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def cmd_break(self, kind: str) -> str:
        if kind == "Page":
            return self.cmd_page_break(None)

        def apply():
            target = self.live.selected_paragraphs()[0]
            target.insert_paragraph_before().add_run().add_break(WD_BREAK.COLUMN)
            return "inserted a column break"

        return self._edit(apply)

    def _sections(self, fn, what: str) -> str:
        def apply():
            for s in self.live.doc.sections:
                fn(s)
            return what

        return self._edit(apply)

    def cmd_margins(self, preset: str) -> str:
        top, bottom, left, right = ribbon.MARGINS[preset]

        def apply(s):
            s.top_margin, s.bottom_margin = Inches(top), Inches(bottom)
            s.left_margin, s.right_margin = Inches(left), Inches(right)

        return self._sections(apply, f"margins {preset}")

    def cmd_orientation(self, value: str) -> str:
        landscape = value == "Landscape"

        def apply(s):
            w, h = s.page_width, s.page_height
            if (w > h) != landscape:
                s.page_width, s.page_height = h, w
            s.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT

        return self._sections(apply, f"orientation {value}")

    def cmd_page_size(self, name: str) -> str:
        pw, ph = PAGE_SIZES[name]

        def apply(s):
            landscape = s.orientation == WD_ORIENT.LANDSCAPE
            s.page_width, s.page_height = (Twips(ph), Twips(pw)) if landscape else (Twips(pw), Twips(ph))

        return self._sections(apply, f"page size {name}")

    def cmd_columns(self, n: str) -> str:
        def apply(s):
            cols = s._sectPr.find(qn("w:cols"))
            if cols is None:
                cols = OxmlElement("w:cols")
                s._sectPr.append(cols)
            cols.set(qn("w:num"), n)
            cols.set(qn("w:space"), "720")

        return self._sections(apply, f"{n} column(s)")

    def cmd_line_numbers(self, mode: str) -> str:
        def apply(s):
            old = s._sectPr.find(qn("w:lnNumType"))
            if old is not None:
                s._sectPr.remove(old)
            if mode != "None":
                ln = OxmlElement("w:lnNumType")
                ln.set(qn("w:countBy"), "1")
                ln.set(qn("w:restart"), "continuous" if mode == "Continuous" else "newPage")
                s._sectPr.append(ln)

        return self._sections(apply, f"line numbers {mode}")

    def _layout_field(self, field: str, text: str) -> str:
        unit, hi = ("in", 20) if "indent" in field else ("pt", 1584)
        v = parse_number(text, unit, 0, hi, field.replace("_", " "))
        value = Inches(v) if unit == "in" else Pt(v)
        attr = {"indent_left": "left_indent", "indent_right": "right_indent"}.get(field, field)
        return self._format_paragraphs(
            lambda p: setattr(p.paragraph_format, attr, value), f"{field} {v:g}{unit}"
        )
