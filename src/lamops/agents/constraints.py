"""What grounds one action: the visible controls, the request, the canvas the prompt shows and the previous
plan, read from an observation or back out of its prompt (`Observation.prompt`, any `PromptView`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from lamops.env.observation import DEFAULT_VIEW, Observation, PromptView


@dataclass(frozen=True)
class Constraints:
    """What grounds one action: the visible controls (label, name) in layout order, the request and the
    canvas section of the prompt (its `[ui]` and `[selection]` lines included), and the previous plan's
    items as the prompt numbers them (`2. Click Center.`), which the decoder may copy (`copy_options`)."""

    controls: tuple[tuple[str, str], ...]
    request: str
    canvas: str
    previous_plan: tuple[str, ...] = ()


def constraints_from_observation(obs: Observation, view: PromptView = DEFAULT_VIEW) -> Constraints:
    """The constraints of `obs` as `obs.prompt(view)` shows it: the canvas is the one that prompt shows (its
    window under the default view), so the `select_text` spans are what the model reads."""
    return Constraints(
        controls=tuple((c.label, c.control_text) for c in obs.controls),
        request=obs.request,
        canvas=obs.render_canvas(view),
        previous_plan=tuple(obs.previous_plan),
    )


_CONTROLS = "<Available Control Item:>\n"
_CANVAS = "\n<Canvas State:>\n"
_REQUEST = "\n<User Request:> "
_HISTORY = "\n<Previous Actions:>\n"


def constraints_from_prompt(prompt: str) -> Constraints:
    """Read the constraints back out of an observation prompt (`Observation.prompt`, compact or json
    controls). Raises ValueError naming the missing section when `prompt` is not an observation prompt."""
    marks = [_CONTROLS, _CANVAS, _REQUEST, _HISTORY]
    at, pos = [], 0
    for mark in marks:
        pos = prompt.find(mark, pos)
        if pos < 0:
            raise ValueError(
                f"not an observation prompt: no {mark.strip()!r} section after position {at[-1] if at else 0}"
            )
        at.append(pos)
        pos += len(mark)
    controls_text = prompt[at[0] + len(_CONTROLS) : at[1]]
    canvas = prompt[at[1] + len(_CANVAS) : at[2]]
    request = prompt[at[2] + len(_REQUEST) : at[3]]
    controls: list[tuple[str, str]] = []
    if controls_text.startswith("["):
        try:
            items = json.loads(controls_text)
            controls = [(str(c["label"]), str(c["control_text"])) for c in items]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"the prompt's json control list does not parse: {e}") from None
    else:
        controls = _compact_controls(controls_text)
    return Constraints(
        controls=tuple(controls), request=request, canvas=canvas, previous_plan=_previous_plan(prompt)
    )


_PLANS = "\n<Previous Plans:>\n"


def _previous_plan(prompt: str) -> tuple[str, ...]:
    """The items of the prompt's last section, `<Previous Plans:>`, one a line; "(none)" or no section: ()."""
    at = prompt.rfind(_PLANS)
    text = prompt[at + len(_PLANS) :] if at >= 0 else ""
    return () if text in ("", "(none)") else tuple(text.split("\n"))


_TYPE = re.compile(r"[A-Z][A-Za-z]*")  # a UI Automation control type: Button, ComboBox, ...


_LABELLED = re.compile(r"\d+:")


def _compact_controls(text: str) -> list[tuple[str, str]]:
    """(label, name) of `label:name` / `label:name:Type` lines, or of `names` lines (`name` / `name:Type`,
    the label being the line's 1-based position), told apart by every line starting with `<digits>:` or not.
    A name may hold ':' itself, so a line ends in a type only when the view shows one there: every line
    typed (`control_types: all`), or the name before the type is shared with another line (`ambiguous`: the
    only controls that show their type)."""
    lines = [line for line in text.split("\n") if line]
    if all(_LABELLED.match(line) for line in lines):
        rows = [line.partition(":")[::2] for line in lines]
    else:  # the `names` format
        rows = [(str(i), line) for i, line in enumerate(lines, 1)]
    split = [rest.rpartition(":")[::2] for _, rest in rows]
    typed = [bool(name) and _TYPE.fullmatch(kind) is not None for name, kind in split]
    if not all(typed):
        shared = Counter(name for (name, _), t in zip(split, typed, strict=True) if t)
        typed = [t and shared[name] > 1 for (name, _), t in zip(split, typed, strict=True)]
    return [
        (label, name if t else rest) for (label, rest), (name, _), t in zip(rows, split, typed, strict=True)
    ]
