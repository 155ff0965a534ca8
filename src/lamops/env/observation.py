"""The observation: the paper's text-only state, as a typed object and as the exact prompt a model reads."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel

ControlFormat = Literal["compact", "json"]


class ControlInfo(BaseModel):
    label: str
    control_text: str
    control_type: str


class Observation(BaseModel):
    controls: list[ControlInfo]
    canvas: str
    ui: str
    selection: str
    request: str
    previous_actions: list[str]
    previous_plan: list[str]

    def render_controls(self, control_format: ControlFormat = "compact") -> str:
        if control_format == "json":
            return json.dumps([c.model_dump() for c in self.controls], ensure_ascii=False)
        return "\n".join(f"{c.label}:{c.control_text}:{c.control_type}" for c in self.controls)

    def prompt(self, control_format: ControlFormat = "compact") -> str:
        """The paper's input layout (appendix C) plus the canvas state that the text-only agent reads."""
        history = "\n".join(self.previous_actions) or "(none)"
        plan = "\n".join(self.previous_plan) or "(none)"
        return (
            f"<Available Control Item:>\n{self.render_controls(control_format)}\n"
            f"<Canvas State:>\n[ui] {self.ui}\n[selection] {self.selection}\n{self.canvas}\n"
            f"<User Request:> {self.request}\n"
            f"<Previous Actions:>\n{history}\n"
            f"<Previous Plans:>\n{plan}"
        )
