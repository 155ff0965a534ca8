"""Fitting an observation prompt into a token budget, the same way in training and at inference.

An observation prompt (`lamops.env.observation.Observation.prompt`) has five sections: the visible controls,
the canvas, the request, the previous actions and the previous plan. When it is too long, what the model can
best do without goes first: the canvas loses lines from its end (its `[ui]` and `[selection]` lines stay),
replaced by one line saying how many are not shown; then the oldest previous actions go the same way. Only a
prompt that still does not fit (or one without these sections, e.g. a LAM1 task) loses tokens from its start.
The controls, the request and the action the model answers with are never cut while anything else can be.
"""

from __future__ import annotations

from typing import Any

CANVAS = "<Canvas State:>\n"
REQUEST = "\n<User Request:>"
HISTORY = "<Previous Actions:>\n"
PLANS = "\n<Previous Plans:>"
_KEPT_CANVAS_LINES = 2  # [ui] and [selection]


def omitted(n: int) -> str:
    """The line that stands for `n` cut lines."""
    return f"[{n} more lines not shown]"


def fit_prompt(tokenizer: Any, prompt: str, room: int) -> tuple[list[int], int]:
    """Token ids (no special tokens) of `prompt` fitted into `room` tokens, and how many tokens were cut.

    Cuts canvas lines from the end, then the oldest previous actions, then (last resort) tokens from the
    start; see the module docstring. `room` below 0 counts as 0."""
    room = max(0, room)
    ids = _ids(tokenizer, prompt)
    if len(ids) <= room:
        return ids, 0
    full = len(ids)
    for cut in (_cut_canvas, _cut_history):
        shorter = cut(tokenizer, prompt, room)
        if shorter is not None:
            prompt = shorter
            ids = _ids(tokenizer, prompt)
            if len(ids) <= room:
                return ids, full - len(ids)
    return ids[len(ids) - room :] if room else [], full - room


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _cut_canvas(tokenizer: Any, prompt: str, room: int) -> str | None:
    start = prompt.find(CANVAS)
    end = prompt.find(REQUEST, start + 1)
    if start < 0 or end < 0:
        return None
    head, body, tail = prompt[: start + len(CANVAS)], prompt[start + len(CANVAS) : end], prompt[end:]
    lines = body.split("\n")
    fixed, rest = lines[:_KEPT_CANVAS_LINES], lines[_KEPT_CANVAS_LINES:]
    return _drop_lines(
        tokenizer, room, rest, lambda kept, n: head + "\n".join(fixed + kept + _marker(n)) + tail
    )


def _cut_history(tokenizer: Any, prompt: str, room: int) -> str | None:
    start = prompt.find(HISTORY)
    end = prompt.find(PLANS, start + 1)
    if start < 0 or end < 0:
        return None
    head, body, tail = prompt[: start + len(HISTORY)], prompt[start + len(HISTORY) : end], prompt[end:]
    lines = body.split("\n")
    # The newest actions matter most: drop from the front, keep the last ones.
    return _drop_lines(
        tokenizer,
        room,
        lines[::-1],
        lambda kept, n: head + "\n".join(_marker(n) + kept[::-1]) + tail,
    )


def _marker(n: int) -> list[str]:
    return [omitted(n)] if n else []


def _drop_lines(tokenizer: Any, room: int, lines: list[str], render) -> str:
    """The rendering that keeps the most of `lines` (a prefix) and fits `room`, or keeps none of them."""
    lo, hi = 0, len(lines)  # the largest k in [lo, hi] whose rendering fits; k=0 is the fallback
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_ids(tokenizer, render(lines[:mid], len(lines) - mid))) <= room:
            lo = mid
        else:
            hi = mid - 1
    return render(lines[:lo], len(lines) - lo)
