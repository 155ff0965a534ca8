"""What an action copies (issue 14): the byte strings the decoder may copy whole.

In the expert data, at every step after the first, the thought is the first "Previous Plans" item without
its number (905/905 rows), the plan is the remaining items (905/905), and the status is FINISH exactly when
one item is left (295/295). `copy_options` turns a previous plan into those continuations, ready to be
written in place of a free part of the action grammar (`lamops.agents.grammar`); how the decoder chooses
between a copy and free text is `lamops.agents.decoding`'s (see its docstring, "Copies").

The control name is a copy too, of the thought: `named_control` is the visible control the thought names
(the longest visible name found in it as whole words, outside quoted text and not as its first word, the
verb: "Select the text 'x'" names no control; of two as long, the first). On the default data's 1,504 steps
it is the reference control in 1,111 of the 1,172 steps with a control (none found in 38, another in 23:
"Post the comment." names Comment, the control is Post), and it names none in all 332 steps without one.

A text argument is a copy too, of the thought's quoted phrase (`text_copies`): "Select the text 'glazed
roof'." selects `glazed roof`, "Enter '3' in the Number of rows box." enters `3` (every such step of the
default data); the request's quoted phrases follow, for a thought that quotes none or quotes a phrase that is
not there to copy.

The function is a copy too, of the thought's verb and object (`named_function`): "Select the text 'x'." is
`select_text`, "Select the 2 paragraphs from 'x'." `select_paragraph`, "Select table 1." `select_table`: the
one function whose name's words all appear in the thought (quoted text aside; a plural counts), its first
word as the thought's first. On the default data's 1,504 steps (train and test) it names 261 functions, all
the reference's, and none in the other 1,243 ("Choose Insert Table...." clicks a control: its first word is
not `insert`).

A paragraph index is a copy too, of the canvas line the thought quotes (`paragraph_copy`): "Select the
paragraph starting 'Our team moves'." selects the paragraph the canvas shows as `p7 <Normal> Our team moves
...`, and "Select the 2 paragraphs from 'x'" ends one paragraph later. On the default data's 103
select_paragraph steps (train and test) the rule gives the reference indices in 74 and other indices in none;
in the other 29 the thought quotes no paragraph ("Select the first paragraph.", "Select the bulleted list.")
or the canvas window does not show it, and nothing is offered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

_NUMBER = re.compile(r"\d+\.\s+")
_QUOTED = re.compile(r"""(?<!\w)['"‘“](.+?)['"’”](?!\w)""")
_PARAGRAPH = re.compile(r"^p(\d+) <[^>\n]*> (.*)$", re.M)  # a canvas paragraph line: `p7 <Normal> text ...`
_RUN = re.compile(r"\{[^{}:\n]*:|\}")  # the canvas' run markup: `{b:text}`, `{font=Arial,size=13:text}`
_COUNT = re.compile(r"Select the (\d+) paragraphs from ")


def item_text(item: str) -> str:
    """A plan item without its leading number (`2. Click Center.` -> `Click Center.`)."""
    return _NUMBER.sub("", item, count=1) if _NUMBER.match(item) else item


def _body(value) -> bytes:
    """`value` as the action writes it (json.dumps, ensure_ascii=False), less its opening `"` or `[`."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")[1:]


def copy_options(
    previous_plan: Sequence[str],
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]:
    """The copies of the thought, the status and the plan list, each in order of preference and as the bytes
    that complete the part after its opening quote or bracket: the thought is an item without its number and
    the closing quote (the first item first, then the others in order); the status is `"FINISH"` when one
    item is left, else `"CONTINUE"`; the plan is the items after the first (then after the second, ...) and
    `]`. All empty without a previous plan."""
    if not previous_plan:
        return (), (), ()
    thoughts = tuple(dict.fromkeys(_body(item_text(item)) for item in previous_plan))
    status = b'"FINISH"' if len(previous_plan) == 1 else b'"CONTINUE"'
    plans = tuple(_body(list(previous_plan[k:])) for k in range(1, len(previous_plan) + 1))
    return thoughts, (status,), plans


def quoted(text: str) -> list[str]:
    """The phrases `text` quotes ('x', "x", ‘x’ or “x”), in order, each once."""
    return list(dict.fromkeys(m.group(1) for m in _QUOTED.finditer(text)))


def text_copies(thought: str, request: str) -> list[str]:
    """What a text argument (`select_text`'s or `set_edit_text`'s `text`) may copy, preferred first: the
    phrases the thought quotes, then those the request quotes. In the expert data the argument is the
    thought's first quoted phrase in every such step (139/139 select_text, 134/134 set_edit_text)."""
    return list(dict.fromkeys([*quoted(thought), *quoted(request)]))


def named_control(thought: str, names: Sequence[str]) -> str | None:
    """The visible control `thought` names (see the module docstring), or None."""
    text = _QUOTED.sub(lambda m: " " * len(m.group(0)), thought).lower()
    found = []  # (-length, position, name): the longest, then the first named
    for name in dict.fromkeys(names):
        at = [m.start() for m in re.finditer(rf"(?<![0-9a-z]){re.escape(name.lower())}(?![0-9a-z])", text)]
        at = [i for i in at if i > 0]
        if name and at:
            found.append((-len(name), at[0], name))
    return min(found)[2] if found else None


def paragraph_copy(thought: str, canvas: str) -> tuple[int, int] | None:
    """(start, end) paragraph indices of the canvas paragraph whose text starts with the thought's first
    quoted phrase (the canvas may cut the line short: then the phrase starts with what it shows), ending
    N - 1 paragraphs later for "Select the N paragraphs from ..."; None when the thought quotes nothing or
    no shown paragraph matches (see the module docstring)."""
    phrases = quoted(thought)
    if not phrases:
        return None
    phrase = phrases[0]
    count = _COUNT.match(thought)
    for index, text in _PARAGRAPH.findall(canvas):
        shown = _RUN.sub("", text).removesuffix("…").rstrip()
        if shown and (shown.startswith(phrase) or phrase.startswith(shown)):
            start = int(index)
            return start, start + (int(count.group(1)) - 1 if count else 0)
    return None


def named_function(thought: str, functions: Sequence[str]) -> str | None:
    """The one function of `functions` the thought names (see the module docstring), or None."""
    words = re.findall(r"[a-z]+", _QUOTED.sub(" ", thought).lower())
    if not words:
        return None
    present = set(words) | {w[:-1] for w in words if w.endswith("s")}
    hits = [f for f in functions if f.split("_")[0] == words[0] and set(f.split("_")) <= present]
    return hits[0] if len(hits) == 1 else None
