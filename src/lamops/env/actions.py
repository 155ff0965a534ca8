"""The action space: the model's JSON action, validated into a typed Action or a readable error.

Functions are UFO's control functions plus the Word API functions the paper's agent had. Argument types are
strict: `"rows": "3"` is an error the agent sees, not something guessed."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClickArgs(_Args):
    button: Literal["left", "right", "middle"] = "left"
    double: StrictBool = False


class SetEditTextArgs(_Args):
    text: StrictStr


class KeyboardArgs(_Args):
    keys: StrictStr = Field(min_length=1)


class WheelArgs(_Args):
    wheel_dist: StrictInt


class SelectTextArgs(_Args):
    text: StrictStr = Field(min_length=1)


class SelectParagraphArgs(_Args):
    start_index: StrictInt
    end_index: StrictInt


class SelectTableArgs(_Args):
    number: StrictInt = Field(ge=1)


class InsertTableArgs(_Args):
    rows: StrictInt = Field(ge=1, le=50)
    columns: StrictInt = Field(ge=1, le=20)


class SummaryArgs(_Args):
    text: StrictStr


FUNCTIONS: dict[str, type[_Args]] = {
    "click_input": ClickArgs,
    "set_edit_text": SetEditTextArgs,
    "keyboard_input": KeyboardArgs,
    "wheel_mouse_input": WheelArgs,
    "select_text": SelectTextArgs,
    "select_paragraph": SelectParagraphArgs,
    "select_table": SelectTableArgs,
    "insert_table": InsertTableArgs,
    "summary": SummaryArgs,
}
# Functions that act on a control and so need a control label (or name).
CONTROL_FUNCTIONS = frozenset({"click_input", "set_edit_text"})


class Action(BaseModel):
    """One agent action, as the model emits it (the paper's output format)."""

    model_config = ConfigDict(extra="ignore")

    thought: str = ""
    control_name: str | None = None
    control_label: str | None = None
    function: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: Literal["CONTINUE", "FINISH"] = "CONTINUE"
    plan: list[str] = Field(default_factory=list)

    def typed_args(self) -> _Args:
        return FUNCTIONS[self.function].model_validate(self.args)


class ActionError(ValueError):
    """An action the environment refuses; the message goes back to the agent as the step's result."""


def parse_action(raw: str | dict | Action) -> tuple[Action, _Args]:
    """Parse and validate an action; raises ActionError with a message fit for the agent."""
    if isinstance(raw, Action):
        action = raw
    else:
        if isinstance(raw, (str, bytes)):
            try:
                raw = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ActionError(f"the action is not valid JSON: {e.msg} at position {e.pos}") from None
        if not isinstance(raw, dict):
            raise ActionError(f"the action must be a JSON object, got {type(raw).__name__}")
        try:
            action = Action.model_validate(_normalise_keys(raw))
        except ValidationError as e:
            raise ActionError(f"malformed action: {_first_error(e)}") from None
    if action.function not in FUNCTIONS:
        raise ActionError(f"unknown function {action.function!r}; known: {', '.join(FUNCTIONS)}")
    try:
        args = action.typed_args()
    except ValidationError as e:
        raise ActionError(f"bad arguments for {action.function}: {_first_error(e)}") from None
    if action.function in CONTROL_FUNCTIONS and not (action.control_label or action.control_name):
        raise ActionError(f"{action.function} needs a control_label (or control_name)")
    return action, args


def _normalise_keys(raw: dict) -> dict:
    """Accept UFO's capitalised keys (ControlLabel, Function, Args...) as well as the paper's snake case."""
    aliases = {
        "controllabel": "control_label",
        "controltext": "control_name",
        "controlname": "control_name",
        "function": "function",
        "args": "args",
        "status": "status",
        "thought": "thought",
        "plan": "plan",
    }
    out = {}
    for k, v in raw.items():
        key = aliases.get(str(k).replace("_", "").lower(), k) if isinstance(k, str) else k
        out[key] = v
    if isinstance(out.get("control_label"), int) and not isinstance(out.get("control_label"), bool):
        out["control_label"] = str(out["control_label"])
    if out.get("args") is None:
        out["args"] = {}
    return out


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "action"
    return f"{loc}: {err['msg']}"


# ---- keyboard_input: pywinauto's send_keys syntax -----------------------------------------------------
SPECIAL_KEYS = {
    "ENTER": "ENTER",
    "DELETE": "DELETE",
    "DEL": "DELETE",
    "BACKSPACE": "BACKSPACE",
    "BKSP": "BACKSPACE",
    "BS": "BACKSPACE",
    "ESC": "ESC",
    "ESCAPE": "ESC",
    "HOME": "HOME",
    "END": "END",
    "TAB": "TAB",
    "SPACE": " ",
    "LEFT": "LEFT",
    "RIGHT": "RIGHT",
    "UP": "UP",
    "DOWN": "DOWN",
    "PGUP": "PGUP",
    "PGDN": "PGDN",
}
_MODIFIERS = {"^": "ctrl", "+": "shift", "%": "alt"}


def parse_keys(keys: str) -> list[tuple[str, ...]]:
    """Split a send_keys string into chords: ('text', 'abc') or ('key', mods..., NAME).

    `^a` is Ctrl+A, `{ENTER}` Enter, `~` Enter, `{{}` a literal brace, `{ENTER 2}` Enter twice; other
    characters are typed. Raises ActionError on an unknown {KEY} or an unclosed brace."""
    out: list[tuple[str, ...]] = []
    text: list[str] = []
    mods: list[str] = []
    i = 0

    def flush() -> None:
        if text:
            out.append(("text", "".join(text)))
            text.clear()

    while i < len(keys):
        ch = keys[i]
        if ch in _MODIFIERS and i + 1 < len(keys):
            flush()
            mods.append(_MODIFIERS[ch])
            i += 1
            continue
        if ch == "{":
            close = keys.find("}", i + 2)
            if close < 0:
                raise ActionError(f"unclosed '{{' in keys {keys!r}")
            inner = keys[i + 1 : close]
            name, _, count = inner.partition(" ")
            n = int(count) if count.isdigit() else 1
            i = close + 1
            if len(name) == 1 and name not in SPECIAL_KEYS:  # {+} {%} {{} ...: a literal character
                token: tuple[str, ...] = ("key", *mods, name) if mods else ("text", name * n)
            elif name.upper() in SPECIAL_KEYS:
                token = ("key", *mods, SPECIAL_KEYS[name.upper()])
            else:
                raise ActionError(f"unknown key {{{name}}} in {keys!r}")
            flush()
            out.extend([token] * (1 if token[0] == "text" else n))
            mods = []
            continue
        if ch == "~":
            flush()
            out.append(("key", *mods, "ENTER"))
            mods = []
            i += 1
            continue
        if mods:
            flush()
            out.append(("key", *mods, ch.lower()))
            mods = []
        else:
            text.append(ch)
        i += 1
    flush()
    return out
