"""WordEnv: the built-in Word-like environment (one implementation of `lamops.env.protocol.Environment`).

The ribbon (`ribbon.py`) says which controls exist and what a click opens or runs; this module carries the
commands out on the live document (`document.py`). `step` never raises: any invalid action, and any failure
inside a command, comes back to the agent as an error result with the state unchanged."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import docx
from docx.document import Document

from lamops.env import ribbon
from lamops.env.actions import ActionError, parse_action, parse_keys
from lamops.env.canvas import (
    canvas_items,
    render_canvas,
    render_selection,
)
from lamops.env.commands.base import Refused
from lamops.env.commands.dialogs import DIALOG_DEFAULTS, DialogCommands
from lamops.env.commands.home import HomeCommands
from lamops.env.commands.insert import InsertCommands
from lamops.env.commands.layout import LayoutCommands
from lamops.env.commands.references import ReferencesCommands
from lamops.env.commands.review import ReviewCommands
from lamops.env.commands.table import TableCommands
from lamops.env.commands.view import ViewCommands
from lamops.env.document import DocumentError, LiveDocument, Selection, paragraph_text
from lamops.env.observation import DEFAULT_VIEW, ControlInfo, Observation, PromptView
from lamops.env.protocol import StepResult
from lamops.records import InstantiatedTask, Verdict

log = logging.getLogger(__name__)


class WordEnv(
    HomeCommands,
    InsertCommands,
    LayoutCommands,
    ReferencesCommands,
    ReviewCommands,
    ViewCommands,
    TableCommands,
    DialogCommands,
):
    """A Word-like application over real .docx templates.

    `templates` maps template names to .docx bytes (default: the built-in library, built in memory); `view`
    is how the agents that run in it render its observations (`Observation.prompt(env.view)`)."""

    def __init__(
        self,
        templates: dict[str, bytes] | None = None,
        max_steps: int = 30,
        view: PromptView = DEFAULT_VIEW,
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
        self.view = view  # how its observations are rendered into prompts
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
        self.ui.fields = dict(DIALOG_DEFAULTS.get(dialog, {}))
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

    # ---- commands: a click on a control runs cmd_<command>(arg); those of the tabs are in env/commands/ ----
    def cmd_tab(self, tab: str) -> str:
        self.ui.active_tab = tab
        return f"opened the {tab} tab"

    def cmd_save(self, _) -> str:
        return "document saved"

    def cmd_undo(self, _) -> str:
        return "undone" if self.live.undo() else "nothing to undo"

    def cmd_redo(self, _) -> str:
        return "redone" if self.live.redo() else "nothing to redo"
