"""The observation: the paper's text-only state, as a typed object and as the exact prompt a model reads.

How the prompt shows it is a `PromptView`: the control list's format, whether each control carries its type,
and whether the canvas is the whole document or a window on it (`lamops.env.window`). The default view is
the short one a small model reads; `PromptView(control_types="all", canvas="full")` is the long form (the
prompt of earlier runs, byte for byte). Training data and inference build prompts with the same
`Observation.prompt`, so a model must be run with the view it was trained with.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict

from lamops.env.window import canvas_window

ControlFormat = Literal["names", "compact", "json"]
ControlTypes = Literal["ambiguous", "all"]
CanvasView = Literal["window", "full"]


class PromptView(BaseModel):
    """How an observation is rendered into a prompt (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    control_format: ControlFormat = "compact"
    # `ambiguous`: a control's type only where two visible controls share its name; `all`: every control's.
    control_types: ControlTypes = "ambiguous"
    # `window`: the selection's and the named lines, the rest counted; `full`: every canvas line.
    canvas: CanvasView = "window"


DEFAULT_VIEW = PromptView()


class ControlInfo(BaseModel):
    label: str
    control_text: str
    control_type: str


class Observation(BaseModel):
    controls: list[ControlInfo]
    canvas: str  # the whole document's canvas; the prompt shows it through `PromptView.canvas`
    ui: str
    selection: str
    request: str
    previous_actions: list[str]
    previous_plan: list[str]

    def typed(self, control_types: ControlTypes) -> list[bool]:
        """Per control, whether the prompt shows its type."""
        if control_types == "all":
            return [True] * len(self.controls)
        counts = Counter(c.control_text for c in self.controls)
        return [counts[c.control_text] > 1 for c in self.controls]

    def positional_labels(self) -> bool:
        """Whether the labels are the controls' 1-based positions (WordEnv's always are; an imported UFO
        observation's need not be)."""
        return [c.label for c in self.controls] == [str(i) for i in range(1, len(self.controls) + 1)]

    def render_controls(self, view: PromptView = DEFAULT_VIEW) -> str:
        """The control list: `label:name` lines (`label:name:type` where typed), the paper's json list, or
        `names`: one name a line (`name:type` where typed), the label being the line's position. Where the
        labels are not positions, `names` falls back to `label:name` lines (labels of digits, as UFO's) or to
        the json list (any other labels), which say their labels."""
        typed = self.typed(view.control_types)
        fmt = view.control_format
        if fmt == "names" and not self.positional_labels():
            fmt = "compact" if all(c.label.isdigit() for c in self.controls) else "json"
        if fmt == "names":
            return "\n".join(
                f"{c.control_text}:{c.control_type}" if t else c.control_text
                for c, t in zip(self.controls, typed, strict=True)
            )
        if fmt == "json":
            items = [
                c.model_dump(exclude=None if t else {"control_type"})
                for c, t in zip(self.controls, typed, strict=True)
            ]
            return json.dumps(items, ensure_ascii=False)
        return "\n".join(
            f"{c.label}:{c.control_text}:{c.control_type}" if t else f"{c.label}:{c.control_text}"
            for c, t in zip(self.controls, typed, strict=True)
        )

    def render_canvas(self, view: PromptView = DEFAULT_VIEW) -> str:
        """The canvas section's body: `[ui]` and `[selection]` lines, then the canvas (or its window)."""
        if view.canvas == "full":
            body = self.canvas
        else:
            body = canvas_window(self.canvas, self.selection, self.request, self.previous_plan)
        return f"[ui] {self.ui}\n[selection] {self.selection}\n{body}"

    def prompt(self, view: PromptView = DEFAULT_VIEW) -> str:
        """The paper's input layout (appendix C) plus the canvas state that the text-only agent reads."""
        history = "\n".join(self.previous_actions) or "(none)"
        plan = "\n".join(self.previous_plan) or "(none)"
        return (
            f"<Available Control Item:>\n{self.render_controls(view)}\n"
            f"<Canvas State:>\n{self.render_canvas(view)}\n"
            f"<User Request:> {self.request}\n"
            f"<Previous Actions:>\n{history}\n"
            f"<Previous Plans:>\n{plan}"
        )
