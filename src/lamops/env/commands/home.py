"""The Home tab: clipboard, font, paragraph and styles; a click on a control runs cmd_<command>(arg)."""

from __future__ import annotations

import re

from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_COLOR_INDEX
from docx.oxml.ns import qn
from docx.shared import Inches, Pt, RGBColor

from lamops.env import ribbon
from lamops.env.commands.base import Refused, parse_number

_ALIGN = {
    "left": WD_ALIGN_PARAGRAPH.LEFT,
    "center": WD_ALIGN_PARAGRAPH.CENTER,
    "right": WD_ALIGN_PARAGRAPH.RIGHT,
    "justify": WD_ALIGN_PARAGRAPH.JUSTIFY,
}


class HomeCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def cmd_copy(self, _) -> str:
        return self.live.copy_selection()

    def cmd_cut(self, _) -> str:
        self.live.copy_selection()
        return self._edit(self.live.delete_selection)

    def cmd_paste(self, _) -> str:
        return self._edit(self.live.paste)

    def cmd_select_all(self, _) -> str:
        return self.live.select_all()

    def _format_runs(self, fn, what: str) -> str:
        if not self.live.has_selection():
            raise Refused(f"nothing is selected: select text before applying {what}")
        n = [0]

        def apply():
            n[0] = self.live.format_runs(fn)
            return f"applied {what}"

        result = self._edit(apply)
        return result if n[0] else f"{what}: the selection holds no text"

    def _format_paragraphs(self, fn, what: str) -> str:
        def apply():
            self.live.format_paragraphs(fn)
            return f"applied {what}"

        return self._edit(apply)

    def cmd_toggle(self, prop: str) -> str:
        runs = self.live.selected_runs() if self.live.has_selection() else []
        on = not runs or not all(getattr(r.font, prop) for r in runs if r.text.strip())

        def set_prop(r):
            setattr(r.font, prop, True if on else None)

        return self._format_runs(set_prop, f"{prop} {'on' if on else 'off'}")

    def cmd_font_name(self, name: str) -> str:
        name = name.strip()
        if not name:
            raise Refused("Font: the font name is empty")
        return self._format_runs(lambda r: setattr(r.font, "name", name), f"font {name}")

    def cmd_font_size(self, size: str) -> str:
        value = parse_number(size, "pt", 1, 1638, "Font Size")
        return self._format_runs(lambda r: setattr(r.font, "size", Pt(value)), f"font size {value:g}")

    def cmd_grow_font(self, delta: str) -> str:
        sizes = [float(s) for s in ribbon.FONT_SIZES]
        grow = float(delta) > 0

        def step(r):
            cur = r.font.size.pt if r.font.size else 11.0
            nxt = [s for s in sizes if s > cur] if grow else [s for s in sizes if s < cur]
            r.font.size = Pt((nxt[0] if grow else nxt[-1]) if nxt else cur)

        return self._format_runs(step, "a larger font" if grow else "a smaller font")

    def cmd_highlight(self, colour: str) -> str:
        index = ribbon.HIGHLIGHTS[colour]
        value = getattr(WD_COLOR_INDEX, index) if index else None
        return self._format_runs(lambda r: setattr(r.font, "highlight_color", value), f"highlight {colour}")

    def cmd_font_color(self, colour: str) -> str:
        hexval = ribbon.FONT_COLORS[colour]

        def paint(r):
            r.font.color.rgb = RGBColor.from_string(hexval) if hexval else None

        return self._format_runs(paint, f"font colour {colour}")

    def cmd_change_case(self, case: str) -> str:
        live = self.live
        if not live.has_selection():
            raise Refused("nothing is selected: select text before changing its case")

        def apply():
            runs = live.selected_runs()
            text = "".join(r.text for r in runs)
            new = _change_case(text, case)
            if len(new) != len(text):
                runs[0].text, rest = new, runs[1:]
                for r in rest:
                    r.text = ""
            else:
                pos = 0
                for r in runs:
                    r.text = new[pos : pos + len(r.text)]
                    pos += len(r.text)
            return f"changed case to {case}"

        return self._edit(apply)

    def cmd_clear_formatting(self, _) -> str:
        live = self.live
        if not live.has_selection():
            raise Refused("nothing is selected: select text before clearing its formatting")

        def apply():
            for r in live.selected_runs():
                rpr = r._r.find(qn("w:rPr"))
                if rpr is not None:
                    r._r.remove(rpr)
            if live.selection.kind != "text":
                normal = live.style("Normal")
                for p in live.selected_paragraphs():
                    p.style = normal
            return "cleared formatting"

        return self._edit(apply)

    def cmd_list_style(self, style: str) -> str:
        paras = self.live.selected_paragraphs()
        off = all(p.style is not None and p.style.name == style for p in paras)
        target = self.live.style("Normal" if off else style)
        return self._format_paragraphs(
            lambda p: setattr(p, "style", target), f"{'no ' if off else ''}{style}"
        )

    def cmd_style(self, name: str) -> str:
        style = self.live.style(name)
        return self._format_paragraphs(lambda p: setattr(p, "style", style), f"style {name}")

    def cmd_indent(self, delta: str) -> str:
        d = float(delta)

        def apply(p):
            cur = p.paragraph_format.left_indent.inches if p.paragraph_format.left_indent else 0.0
            p.paragraph_format.left_indent = Inches(max(0.0, cur + d)) if cur + d > 0 else None

        return self._format_paragraphs(apply, "more indent" if d > 0 else "less indent")

    def cmd_align(self, where: str) -> str:
        return self._format_paragraphs(lambda p: setattr(p, "alignment", _ALIGN[where]), f"align {where}")

    def cmd_line_spacing(self, value: str) -> str:
        v = float(value)
        return self._format_paragraphs(
            lambda p: setattr(p.paragraph_format, "line_spacing", v), f"line spacing {value}"
        )

    def cmd_space_preset(self, which: str) -> str:
        if which == "before":
            return self._format_paragraphs(
                lambda p: setattr(p.paragraph_format, "space_before", Pt(12)), "12 pt before"
            )
        return self._format_paragraphs(
            lambda p: setattr(p.paragraph_format, "space_after", Pt(0)), "0 pt after"
        )


def _change_case(text: str, case: str) -> str:
    if case == "lowercase":
        return text.lower()
    if case == "UPPERCASE":
        return text.upper()
    if case == "Capitalize Each Word":
        return re.sub(r"[A-Za-z]+", lambda m: m.group(0)[0].upper() + m.group(0)[1:].lower(), text)
    if case == "tOGGLE cASE":
        return text.swapcase()
    lowered = text.lower()
    return re.sub(r"(^\s*|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), lowered)
