"""WordEnv: the built-in Word-like environment (one implementation of `lamops.env.protocol.Environment`).

The ribbon (`ribbon.py`) says which controls exist and what a click opens or runs; this module carries the
commands out on the live document (`document.py`). `step` never raises: any invalid action, and any failure
inside a command, comes back to the agent as an error result with the state unchanged."""

from __future__ import annotations

import copy
import io
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import docx
from docx.document import Document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_COLOR_INDEX
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Pt, RGBColor, Twips
from docx.table import Table
from docx.text.paragraph import Paragraph

from lamops.env import ribbon
from lamops.env.actions import ActionError, parse_action, parse_keys
from lamops.env.canvas import (
    PAGE_SIZES,
    canvas_items,
    comment_anchor_text,
    render_canvas,
    render_selection,
)
from lamops.env.document import DocumentError, LiveDocument, Selection, paragraph_text, span_runs
from lamops.env.observation import ControlFormat, ControlInfo, Observation
from lamops.env.protocol import StepResult
from lamops.records import InstantiatedTask, Verdict

log = logging.getLogger(__name__)

_ALIGN = {
    "left": WD_ALIGN_PARAGRAPH.LEFT,
    "center": WD_ALIGN_PARAGRAPH.CENTER,
    "right": WD_ALIGN_PARAGRAPH.RIGHT,
    "justify": WD_ALIGN_PARAGRAPH.JUSTIFY,
}
_DIALOG_DEFAULTS = {
    "insert_table": {"Number of columns": "5", "Number of rows": "2"},
    "zoom": {"Percent": "100"},
}


class Refused(Exception):
    """A command that cannot run in the current state (nothing selected, bad dialog value...)."""


def parse_number(text: str, unit: str, lo: float, hi: float, field: str) -> float:
    """Parse '12', '12 pt', '0.5"', '0.5 in' into a number in [lo, hi]."""
    m = re.fullmatch(r'\s*(-?\d+(?:\.\d+)?)\s*(pt|in|"|%)?\s*', text)
    if not m:
        raise Refused(f"{field}: {text!r} is not a number ({unit})")
    value = float(m.group(1))
    if not lo <= value <= hi:
        raise Refused(f"{field}: {value:g} is outside {lo:g}..{hi:g} {unit}")
    return value


class WordEnv:
    """A Word-like application over real .docx templates.

    `templates` maps template names to .docx bytes (default: the built-in library, built in memory)."""

    def __init__(
        self,
        templates: dict[str, bytes] | None = None,
        max_steps: int = 30,
        control_format: ControlFormat = "compact",
    ):
        if templates is None:
            from lamops.env.templates import TEMPLATES, template_bytes

            templates = {name: template_bytes(name) for name in TEMPLATES}
        self._templates = templates
        self._docs: dict[str, LiveDocument] = {}
        self._pristine: dict[str, Document] = {}
        # A template's canvas at reset never changes: render it once per template.
        self._initial_items: dict[str, list[tuple[str, str]]] = {}
        self.max_steps = max_steps
        self.control_format = control_format
        self.task: InstantiatedTask | None = None
        self.live: LiveDocument | None = None
        self._commands: dict[str, Callable] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("cmd_")
        }

    # ---- protocol -----------------------------------------------------------------------------
    def reset(self, task: InstantiatedTask) -> Observation:
        if task.template not in self._templates:
            raise ValueError(f"unknown template {task.template!r}; known: {', '.join(self._templates)}")
        live = self._docs.get(task.template)
        if live is None:
            live = self._docs[task.template] = LiveDocument(self._templates[task.template])
        else:
            live.reset()
        self.live = live
        self.task = task
        self.ui = ribbon.UIState()
        self.history: list[str] = []
        self.plan: list[str] = []
        self.steps = 0
        self.done = False
        self.focus: str | None = None
        self.comment_cursor = -1
        if task.template not in self._initial_items:
            self._initial_items[task.template] = canvas_items(live)
        self.initial_items = self._initial_items[task.template]
        self._canvas_cache: tuple[int, str] = (
            live.version,
            "\n".join(line for _, line in self.initial_items),
        )
        return self.observe()

    def step(self, raw) -> StepResult:
        t0 = time.perf_counter()
        if self.live is None or self.task is None:
            return StepResult(observation=None, ok=False, result="call reset() before step()", done=True)
        if self.done:
            return StepResult(observation=self.observe(), ok=False, result="the episode is over", done=True)
        self.steps += 1
        try:
            action, args = parse_action(raw)
            result = self._execute(action, args)
            ok = True
        except (ActionError, Refused, DocumentError) as e:
            action, ok, result = None, False, str(e)
        except Exception as e:  # a bug must not end the agent's episode: report it as the step's result
            log.exception("internal error while executing %r", raw)
            action, ok, result = None, False, f"internal error: {type(e).__name__}: {e}"
        name = (action.control_name or action.function) if action else "invalid action"
        self.history.append(f"{self.steps}. {name} -> {'ok' if ok else 'error'}: {result}")
        if action is not None:
            self.plan = list(action.plan)
            if action.status == "FINISH":
                self.done = True
        if self.steps >= self.max_steps:
            self.done = True
        return StepResult(
            observation=self.observe(),
            ok=ok,
            result=result,
            done=self.done,
            latency=time.perf_counter() - t0,
        )

    def verify(self) -> Verdict:
        from lamops.env.verifier import verify

        return verify(self)

    def save(self, path: Path) -> Path:
        """Save the episode's document (atomically) and return the path. The template is never written:
        an episode edits an in-memory copy of it."""
        self.live.save(Path(path))
        return Path(path)

    def pristine_document(self) -> Document:
        """The episode's template as it was, parsed once per template; read-only."""
        name = self.task.template
        if name not in self._pristine:
            self._pristine[name] = docx.Document(io.BytesIO(self._templates[name]))
        return self._pristine[name]

    def close(self) -> None:
        self._docs.clear()
        self._pristine.clear()
        self._initial_items.clear()
        self.live = None

    # ---- observation --------------------------------------------------------------------------
    def canvas(self) -> str:
        version, text = self._canvas_cache
        if version != self.live.version:
            text = render_canvas(self.live)
            self._canvas_cache = (self.live.version, text)
        return text

    def visible(self) -> list[ribbon.Control]:
        table_selected = self.live.selection.kind == "table"
        if not table_selected and self.ui.active_tab in ribbon.TABLE_TABS:
            self.ui.active_tab = "Home"
        extra = self._word_count_controls() if self.ui.dialog == "dialog:word_count" else ()
        return ribbon.visible_controls(self.ui, table_selected, extra)

    def observe(self) -> Observation:
        controls = [
            ControlInfo(label=str(i), control_text=c.text, control_type=c.type)
            for i, c in enumerate(self.visible(), 1)
        ]
        return Observation(
            controls=controls,
            canvas=self.canvas(),
            ui=self.ui.describe(),
            selection=render_selection(self.live),
            request=self.task.request,
            previous_actions=list(self.history),
            previous_plan=list(self.plan),
        )

    # ---- dispatch -----------------------------------------------------------------------------
    def _resolve(self, label: str | None, name: str | None) -> ribbon.Control:
        visible = self.visible()
        if label:
            if not label.isdigit() or not 1 <= int(label) <= len(visible):
                raise ActionError(
                    f"control label {label!r} is not visible (visible labels: 1..{len(visible)})"
                )
            return visible[int(label) - 1]
        matches = [c for c in visible if c.text == name]
        if not matches:
            raise ActionError(f"no visible control is named {name!r}")
        return matches[0]

    def _execute(self, action, args) -> str:
        fn = action.function
        if fn == "click_input":
            control = self._resolve(action.control_label, action.control_name)
            if args.button != "left":
                raise Refused(f"{args.button}-click on {control.text!r} opens no menu here; use a left click")
            return self._click(control)
        if fn == "set_edit_text":
            control = self._resolve(action.control_label, action.control_name)
            return self._set_text(control, args.text)
        if fn == "wheel_mouse_input":
            control = (
                self._resolve(action.control_label, action.control_name)
                if (action.control_label or action.control_name)
                else None
            )
            return self._wheel(control, args.wheel_dist)
        if fn == "keyboard_input":
            return self._keys(args.keys)
        if fn == "summary":
            return f"noted: {args.text}"
        if self.ui.dialog:
            raise Refused(f"the {self._dialog_title()} dialog is open; close it first")
        self.ui.menu = None
        live = self.live
        if fn == "select_text":
            return live.select_text(args.text)
        if fn == "select_paragraph":
            return live.select_paragraphs(args.start_index, args.end_index)
        if fn == "select_table":
            return live.select_table(args.number)
        if fn == "insert_table":
            return self._edit(lambda: live.insert_table(args.rows, args.columns))
        raise ActionError(f"unknown function {fn!r}")  # unreachable: parse_action checked the name

    def _edit(self, fn: Callable[[], str]) -> str:
        """Run a document change as one undoable step; on failure, leave the document as it was."""
        live = self.live
        live.checkpoint()
        try:
            result = fn()
        except Exception:
            live.rollback()
            raise
        live.changed()
        return result

    def _click(self, c: ribbon.Control) -> str:
        if self.ui.menu and c.container != self.ui.menu:
            self.ui.menu = None  # clicking outside a drop-down closes it, then the click lands
        if c.type == "Edit":
            self.focus = c.text
            return f"focused {c.text!r}"
        if c.opens:
            return self._open(c.opens)
        if c.command is None:
            raise Refused(f"{c.text!r} is a {c.type}; clicking it does nothing")
        if c.container.startswith("menu:"):
            self.ui.menu = None
        return self._commands[c.command](c.arg)

    def _open(self, target: str) -> str:
        if target.startswith("menu:"):
            self.ui.menu = target
            return f"opened the {target[5:].replace('_', ' ')} menu"
        dialog = target[7:]
        self.ui.menu = None
        self.ui.dialog = target
        self.ui.fields = dict(_DIALOG_DEFAULTS.get(dialog, {}))
        self.ui.fields.update(self._dialog_initial(dialog))
        self._dialog_start = dict(self.ui.fields)
        self.focus = next((c.text for c in ribbon.BY_CONTAINER[target] if c.type == "Edit"), None)
        return f"opened the {self._dialog_title()} dialog"

    def _dialog_title(self) -> str:
        return ribbon.DIALOG_TITLES[self.ui.dialog[7:]]

    def _close_dialog(self) -> None:
        self.ui.dialog = None
        self.ui.fields = {}
        self.focus = None

    def _set_text(self, c: ribbon.Control, text: str) -> str:
        if c.type not in ("Edit", "ComboBox"):
            raise Refused(f"{c.text!r} is a {c.type}, not an Edit or ComboBox")
        if c.container.startswith("dialog:"):
            self.ui.fields[c.text] = text
            self.focus = c.text
            return f"set {c.text!r} to {text!r}"
        if c.command == "layout_field":
            return self._layout_field(c.arg, text)
        return self._commands[c.command](text)

    def _wheel(self, c: ribbon.Control | None, dist: int) -> str:
        if c is not None and c.container.startswith("gallery:"):
            items = ribbon.BY_CONTAINER[c.container]
            off = self.ui.gallery_offset.get(c.container, 0)
            step = ribbon.GALLERY_WINDOW * (1 if dist < 0 else -1) if dist else 0
            off = max(0, min(off + step, len(items) - ribbon.GALLERY_WINDOW))
            self.ui.gallery_offset[c.container] = off
            return f"gallery shows {', '.join(i.text for i in items[off : off + ribbon.GALLERY_WINDOW])}"
        self.ui.view["scroll"] = str(max(0, int(self.ui.view.get("scroll", "0")) - dist))
        return "scrolled the page"

    # ---- keyboard -----------------------------------------------------------------------------
    def _keys(self, keys: str) -> str:
        """A key sequence is one action: if any key is refused, the document goes back to before the first."""
        chords = parse_keys(keys)
        mark = self.live.undo_depth()
        try:
            return "; ".join(self._chord(chord) for chord in chords)
        except (Refused, DocumentError):
            self.live.rollback(mark)
            raise

    def _chord(self, chord: tuple[str, ...]) -> str:
        live = self.live
        if chord[0] == "text":
            if self.ui.dialog:
                if not self.focus:
                    raise Refused("no field of the dialog has the focus; click an Edit first")
                self.ui.fields[self.focus] = self.ui.fields.get(self.focus, "") + chord[1]
                return f"typed into {self.focus!r}"
            self.ui.menu = None
            return self._edit(lambda: live.type_text(chord[1]))
        *mods, key = chord[1:]
        combo = "+".join([*mods, key])
        if combo == "ESC":
            if self.ui.dialog:
                self._close_dialog()
                return "closed the dialog"
            self.ui.menu = None
            return "closed the menu"
        if self.ui.dialog:
            if combo == "ENTER":
                return self.cmd_ok(None)
            raise Refused(f"key {combo} does nothing in the {self._dialog_title()} dialog")
        self.ui.menu = None
        doc_keys: dict[str, Callable[[], str]] = {
            "ctrl+a": live.select_all,
            "ctrl+c": live.copy_selection,
            "ctrl+HOME": lambda: live.caret_to("doc_start"),
            "ctrl+END": lambda: live.caret_to("doc_end"),
            "HOME": lambda: live.caret_to("line_start"),
            "END": lambda: live.caret_to("line_end"),
            "ctrl+z": lambda: self.cmd_undo(None),
            "ctrl+y": lambda: self.cmd_redo(None),
            "ctrl+s": lambda: self.cmd_save(None),
            "ctrl+b": lambda: self.cmd_toggle("bold"),
            "ctrl+i": lambda: self.cmd_toggle("italic"),
            "ctrl+u": lambda: self.cmd_toggle("underline"),
            "ctrl+x": lambda: self.cmd_cut(None),
            "ctrl+v": lambda: self.cmd_paste(None),
            "ENTER": lambda: self._edit(live.new_paragraph),
            "TAB": lambda: self._edit(lambda: live.type_text("\t")),
            "DELETE": lambda: self._edit(
                live.delete_selection if live.has_selection() else lambda: live.delete_char(forward=True)
            ),
            "BACKSPACE": lambda: self._edit(
                live.delete_selection if live.has_selection() else lambda: live.delete_char(forward=False)
            ),
            "LEFT": lambda: self._move_caret(-1),
            "RIGHT": lambda: self._move_caret(1),
        }
        if combo not in doc_keys:
            raise Refused(f"key {combo} is not supported")
        return doc_keys[combo]()

    def _move_caret(self, delta: int) -> str:
        live = self.live
        sel = live.selection
        if not sel.paragraphs:
            return "caret unchanged"
        text = live.selected_text() if sel.kind == "text" else None
        p = sel.paragraphs[0] if delta < 0 else sel.paragraphs[-1]
        n = len(paragraph_text(p))
        if sel.kind == "text":
            pos = sel.start if delta < 0 else sel.end
        elif sel.kind == "caret":
            pos = max(0, min(n, sel.start + delta))
        else:
            pos = 0 if delta < 0 else n
        live.selection = Selection("caret", [p], pos)
        return f"caret moved{' past ' + repr(text) if text else ''}"

    # ---- commands: a click on a control runs cmd_<command>(arg) ------------------------------------
    def cmd_tab(self, tab: str) -> str:
        self.ui.active_tab = tab
        return f"opened the {tab} tab"

    def cmd_save(self, _) -> str:
        return "document saved"

    def cmd_undo(self, _) -> str:
        return "undone" if self.live.undo() else "nothing to undo"

    def cmd_redo(self, _) -> str:
        return "redone" if self.live.redo() else "nothing to redo"

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

    def cmd_view_toggle(self, what: str) -> str:
        self.ui.toggles ^= {what}
        return f"{what} {'shown' if what in self.ui.toggles else 'hidden'}"

    def cmd_view_mode(self, mode: str) -> str:
        self.ui.view["mode"] = mode
        return f"view: {mode}"

    def cmd_zoom(self, percent: str) -> str:
        self.ui.view["zoom"] = percent
        return f"zoom {percent}%"

    def cmd_blank_page(self, _) -> str:
        def apply():
            self.live.insert_page_break()
            self.live.insert_page_break()
            return "inserted a blank page"

        return self._edit(apply)

    def cmd_page_break(self, _) -> str:
        return self._edit(self.live.insert_page_break)

    def cmd_break(self, kind: str) -> str:
        if kind == "Page":
            return self.cmd_page_break(None)

        def apply():
            target = self.live.selected_paragraphs()[0]
            target.insert_paragraph_before().add_run().add_break(WD_BREAK.COLUMN)
            return "inserted a column break"

        return self._edit(apply)

    def cmd_remove_hf(self, which: str) -> str:
        def apply():
            for s in self.live.doc.sections:
                part = getattr(s, which)
                for p in part.paragraphs:
                    for child in [c for c in p._p if c.tag != qn("w:pPr")]:
                        p._p.remove(child)
            return f"removed the {which}"

        return self._edit(apply)

    def cmd_page_number(self, where: str) -> str:
        def apply():
            for s in self.live.doc.sections:
                for part in (s.header, s.footer):
                    for fld in [
                        f
                        for p in part.paragraphs
                        for f in p._p.iter(qn("w:fldSimple"))
                        if "PAGE" in (f.get(qn("w:instr")) or "")
                    ]:
                        fld.getparent().remove(fld)
                if where == "remove":
                    continue
                part = s.header if where == "header" else s.footer
                p = part.add_paragraph()
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER
                fld = OxmlElement("w:fldSimple")
                fld.set(qn("w:instr"), "PAGE")
                r = OxmlElement("w:r")
                t = OxmlElement("w:t")
                t.text = "1"
                r.append(t)
                fld.append(r)
                p._p.append(fld)
            return "removed page numbers" if where == "remove" else f"page numbers in the {where}"

        return self._edit(apply)

    def cmd_type_symbol(self, symbol: str) -> str:
        return self._edit(lambda: self.live.type_text(symbol))

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

    def cmd_toc(self, what: str) -> str:
        live = self.live

        def apply():
            for p in live.body_paragraphs():
                is_toc = any("TOC" in (f.get(qn("w:instr")) or "") for f in p._p.iter(qn("w:fldSimple")))
                if is_toc or (p.style is not None and p.style.name == "TOC Heading"):
                    p._p.getparent().remove(p._p)
            if what == "remove":
                return "removed the table of contents"
            first = live.body_paragraphs()[0]
            heading = first.insert_paragraph_before("Contents", style=live.style("TOC Heading"))
            p = first.insert_paragraph_before()
            fld = OxmlElement("w:fldSimple")
            fld.set(qn("w:instr"), 'TOC \\o "1-3" \\h \\z \\u')
            p._p.append(fld)
            del heading
            return "inserted a table of contents"

        return self._edit(apply)

    def cmd_update_fields(self, _) -> str:
        def apply():
            settings = self.live.doc.settings.element
            if settings.find(qn("w:updateFields")) is None:
                el = OxmlElement("w:updateFields")
                el.set(qn("w:val"), "true")
                settings.append(el)
            return "fields will update when the document opens"

        return self._edit(apply)

    def cmd_goto_comment(self, delta: str) -> str:
        comments = list(self.live.doc.comments)
        if not comments:
            return "the document has no comments"
        self.comment_cursor = (self.comment_cursor + int(delta)) % len(comments)
        c = comments[self.comment_cursor]
        anchor = comment_anchor_text(self.live.doc, c.comment_id)
        if anchor and self.live.find_text(anchor):
            self.live.select_text(anchor)
        return f"comment {self.comment_cursor + 1} of {len(comments)}: {c.text}"

    def cmd_delete_comment(self, which: str) -> str:
        live = self.live
        comments = list(live.doc.comments)
        if not comments:
            return "the document has no comments"
        if which == "current":
            if self.comment_cursor < 0:
                raise Refused("no comment is selected: use Next Comment first")
            ids = {str(comments[self.comment_cursor].comment_id)}
        else:
            ids = {str(c.comment_id) for c in comments}

        def apply():
            body = live.doc.element.body
            for tag in ("w:commentRangeStart", "w:commentRangeEnd", "w:commentReference"):
                for el in list(body.iter(qn(tag))):
                    if el.get(qn("w:id")) in ids:
                        parent = el.getparent()
                        parent.remove(el)
                        if (
                            tag == "w:commentReference"
                            and parent.tag == qn("w:r")
                            and not len([c for c in parent if c.tag != qn("w:rPr")])
                        ):
                            parent.getparent().remove(parent)
            comments_el = live.doc.part._comments_part.element
            for el in list(comments_el):
                if el.get(qn("w:id")) in ids:
                    comments_el.remove(el)
            self.comment_cursor = -1
            return f"deleted {len(ids)} comment(s)"

        return self._edit(apply)

    def cmd_track_changes(self, _) -> str:
        def apply():
            settings = self.live.doc.settings.element
            el = settings.find(qn("w:trackRevisions"))
            if el is not None:
                settings.remove(el)
                return "track changes off"
            settings.insert(0, OxmlElement("w:trackRevisions"))
            return "track changes on"

        return self._edit(apply)

    # table commands act on the selected table
    def _table(self) -> Table:
        sel = self.live.selection
        if sel.kind != "table":
            raise Refused("no table is selected")
        return Table(sel.table, self.live.doc._body)

    def cmd_table_style(self, name: str) -> str:
        table = self._table()

        def apply():
            table.style = self.live.style(name)
            return f"table style {name}"

        return self._edit(apply)

    def cmd_table_look(self, attr: str) -> str:
        table = self._table()

        def apply():
            tblPr = table._tbl.tblPr
            look = tblPr.find(qn("w:tblLook"))
            if look is None:
                look = OxmlElement("w:tblLook")
                tblPr.append(look)
            on = look.get(qn(f"w:{attr}")) in ("1", "true")
            look.set(qn(f"w:{attr}"), "0" if on else "1")
            return f"{attr} {'off' if on else 'on'}"

        return self._edit(apply)

    def cmd_table_insert(self, where: str) -> str:
        table = self._table()

        def apply():
            if where in ("above", "below"):
                template = table.rows[0 if where == "above" else -1]._tr
                new = _blank_copy(template)
                (template.addprevious if where == "above" else template.addnext)(new)
                return f"inserted a row {where}"
            grid = table._tbl.tblGrid
            cols = grid.findall(qn("w:gridCol"))
            ref_col = cols[0 if where == "left" else -1]
            new_col = _blank_copy(ref_col)
            (ref_col.addprevious if where == "left" else ref_col.addnext)(new_col)
            for tr in table._tbl.tr_lst:
                tcs = tr.tc_lst
                ref = tcs[0 if where == "left" else -1]
                (ref.addprevious if where == "left" else ref.addnext)(_blank_copy(ref))
            return f"inserted a column to the {where}"

        return self._edit(apply)

    def cmd_table_delete(self, what: str) -> str:
        table = self._table()
        live = self.live

        def apply():
            if what == "table":
                return live.delete_selection()
            if what == "last_row":
                if len(table.rows) == 1:
                    return live.delete_selection()
                tr = table.rows[-1]._tr
                tr.getparent().remove(tr)
                return "deleted the last row"
            if len(table.columns) == 1:
                return live.delete_selection()
            grid = table._tbl.tblGrid
            grid.remove(grid.findall(qn("w:gridCol"))[-1])
            for tr in table._tbl.tr_lst:
                tr.remove(tr.tc_lst[-1])
            return "deleted the last column"

        return self._edit(apply)

    def cmd_autofit(self, mode: str) -> str:
        table = self._table()

        def apply():
            table.autofit = mode != "fixed"
            return f"autofit {mode}"

        return self._edit(apply)

    # ---- dialogs ------------------------------------------------------------------------------
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

    def _layout_field(self, field: str, text: str) -> str:
        unit, hi = ("in", 20) if "indent" in field else ("pt", 1584)
        v = parse_number(text, unit, 0, hi, field.replace("_", " "))
        value = Inches(v) if unit == "in" else Pt(v)
        attr = {"indent_left": "left_indent", "indent_right": "right_indent"}.get(field, field)
        return self._format_paragraphs(
            lambda p: setattr(p.paragraph_format, attr, value), f"{field} {v:g}{unit}"
        )

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


def _blank_copy(el):
    """A copy of a table row, cell or grid column with its text removed."""
    new = copy.deepcopy(el)
    for t in new.iter(qn("w:t")):
        t.text = ""
    return new


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
