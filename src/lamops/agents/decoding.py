"""Grammar-constrained, batched decoding of one LAM action.

The output is always exactly the training completion (`lamops.records.TrajectoryStep.completion()`):

    {"thought": "...", "control_name": "Layout" | null, "control_label": "6" | null, "function": "...",
     "args": {...}, "status": "CONTINUE" | "FINISH", "plan": ["...", ...]}

with json.dumps' separators, ensure_ascii=False and the key order of the training data, so it always parses
with `lamops.env.actions.parse_action` (the environment may still refuse it: a wrong control is a failed
step, not an exception). The grammar applies the levers of STACK-NOTES ("Can a tiny model learn to act?"):

- `control_name` is one of the visible controls' names or null; `control_label` is then forced to that
  control's label (null with null): grounding by name. A null control excludes the functions that need one.
- `function` is one of `lamops.env.actions.FUNCTIONS`; `args` has that function's keys, in the schema's
  order, with values of its types: literals for `button` / `double`, integers as digits without leading
  zeros in a bounded range (paragraph indices 0-999, table number 1-99, rows 1-50, columns 1-20, wheel
  -99-99), strings as below.
- String arguments, decided on the SFT data (data/datasets/sft/train.jsonl, 1,205 steps, measured
  2026-11-22): `select_text` text is a substring of the request in 108/108 steps and of the canvas in 97/108:
  it is a span of the request or a canvas line. `set_edit_text` text is in the request in 104/104 (canvas
  36/104): a span of the request. `keyboard_input` keys are request text in 17/56 (typed text) and special
  keys in 39/56 (`{RIGHT}`, `^{END}`, `{DELETE}`, `{ENTER}`, none in request or canvas): a span of the
  request or 1-4 key chords (`^`/`+`/`%` modifiers, then `{NAME}` with a name the environment knows, or a
  letter or digit). `summary` text (never in the data) is free text. Spans never cross a line and never
  contain a backslash or a control character; a quote inside one is written `\\"` as json.dumps writes it.
- Free text (the thought, plan items, `summary`) is any text without a control character; the only escapes
  are `\\"` and `\\\\`, so the text round-trips through json.dumps unchanged. Each string has a token cap
  (tokens that end inside it, its opening one included); at the cap it is closed by force, and at
  `max_new_tokens` the whole action is closed by force with the shortest valid ending.

How: a byte-level grammar over segments (literal, choice, string body, integer, plan list) walked against a
trie of the vocabulary's token bytes; a free-text state skips the walk with a precomputed mask of the tokens
made of plain text bytes, and checks only the tokens that hold a quote or a backslash. Where the grammar has
one continuation (`", "control_label": "19", "function": "`), the tokenizer's own tokenization of it is
appended without a forward pass each: the whole forced chunk (after the model's last chosen token) goes in
ONE forward that extends the KV cache and yields the logits of the next free choice. Only the part of the
chunk whose tokenization cannot change with what follows is forced (the longest common prefix of the
chunk's tokenization followed by every byte the grammar allows next), so forced text is tokenized as
training tokenized it (on all 1,504 SFT steps, train and test, every forced chunk equals the training
tokenization and every completion's own tokens are allowed at each step). Rows of a batch decode in lockstep:
rows that append different numbers of tokens are right-padded and masked (attention mask with holes,
position_ids = cumsum(mask) - 1); finished rows leave the KV cache.

Why not a library: xgrammar, llguidance and outlines compile a grammar into a token automaton once and are
not installed here (no network); the grammar changes with every observation (visible controls, request and
canvas spans: a span constraint is a substring language, O(n^2) as a regular expression), and Hugging Face
`generate`'s logits processors cannot append several tokens in one forward. The walk is plain Python:
with the tiny model's 2,048-token vocabulary the grammar and tokenizer work cost ~0.3 ms per decode step and
row. Measured 2026-11-22 (2 loaded cores, 1 torch thread), the default tiny model (2.0M params, 319 SFT steps)
on 8 test prompts (731 prompt tokens each) in one batch: 79 completion tokens per action of which 46 forced,
33 forward passes per action, 166 ms per action (prefill 84, decode forwards 56, the rest 17), ~470
completion tokens/s. A 32k SentencePiece vocabulary (Mistral: `▁`, `<0xNN>` byte tokens) gives valid
actions too, more slowly; its tokenizer prepends `▁` to a completion, which this grammar does not write.
"""

from __future__ import annotations

import functools
import json
import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lamops.agents.prompt import fit_prompt
from lamops.env.actions import _SPECIAL as ENV_KEYS  # the key names `parse_keys` accepts
from lamops.env.actions import CONTROL_FUNCTIONS, FUNCTIONS, ActionError, parse_action
from lamops.env.observation import Observation

QUOTE, BACKSLASH = 0x22, 0x5C


# ---------------------------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """Token caps of the free parts of an action (see the module docstring)."""

    thought_tokens: int = 40
    plan_items: int = 10
    plan_item_tokens: int = 48
    arg_tokens: int = 32


@dataclass(frozen=True)
class Constraints:
    """What grounds one action: the visible controls (label, name) in layout order, the request and the
    canvas section of the prompt (its `[ui]` and `[selection]` lines included)."""

    controls: tuple[tuple[str, str], ...]
    request: str
    canvas: str


def constraints_from_observation(obs: Observation) -> Constraints:
    return Constraints(
        controls=tuple((c.label, c.control_text) for c in obs.controls),
        request=obs.request,
        canvas=f"[ui] {obs.ui}\n[selection] {obs.selection}\n{obs.canvas}",
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
        for line in controls_text.split("\n"):
            label, sep, rest = line.partition(":")
            name, sep2, _ = rest.rpartition(":")
            if sep and sep2:
                controls.append((label, name))
    return Constraints(controls=tuple(controls), request=request, canvas=canvas)


# ---------------------------------------------------------------------------------------------- grammar
# A state is (part, sub, rest) or COMPLETE: the part being matched, its own sub-state, and the parts after
# it. `part.step(sub, byte)` answers None (refused), (STAY, sub), (DONE, parts to insert before `rest`) or
# (PASS, parts): the part ended before this byte, which goes to the next part.
STAY, DONE, PASS = 0, 1, 2
COMPLETE = ("complete",)
_CLOSE = "close"  # a string body's answer to its closing quote


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class Lit:
    __slots__ = ("text",)

    def __init__(self, text: bytes):
        self.text = text

    def init(self):
        return 0

    def step(self, k, b):
        if self.text[k] != b:
            return None
        return (DONE, ()) if k + 1 == len(self.text) else (STAY, k + 1)

    def next_bytes(self, k):
        return (self.text[k],)

    def forced(self, k) -> bytes:
        return self.text[k:]

    def finish(self, k) -> bytes:
        return self.text[k:]


class Choice:
    """One of several byte strings, each followed by its own parts. No option is a prefix of another."""

    __slots__ = ("options", "_all")

    def __init__(self, options: Sequence[tuple[bytes, tuple]]):
        self.options = tuple(options)
        texts = sorted(o for o, _ in self.options)
        for a, b in zip(texts, texts[1:], strict=False):
            if b.startswith(a):
                raise ValueError(f"choice option {a!r} is a prefix of {b!r}")
        self._all = tuple(range(len(self.options)))

    def init(self):
        return (0, self._all)

    def step(self, sub, b):
        k, cands = sub
        opts = self.options
        new = tuple(i for i in cands if opts[i][0][k] == b)
        if not new:
            return None
        if len(new) == 1 and len(opts[new[0]][0]) == k + 1:
            return (DONE, opts[new[0]][1])
        return (STAY, (k + 1, new))

    def next_bytes(self, sub):
        k, cands = sub
        return {self.options[i][0][k] for i in cands}

    def forced(self, sub) -> bytes:
        k, cands = sub
        rests = [self.options[i][0][k:] for i in cands]
        first = rests[0]
        n = 0
        while n < len(first) and all(len(r) > n and r[n] == first[n] for r in rests):
            n += 1
        return first[:n]

    def finish(self, sub) -> bytes:
        k, cands = sub
        return min(
            (self.options[i][0][k:] + _finish_parts(self.options[i][1]) for i in cands),
            key=lambda s: (len(s), s),
        )


def _finish_parts(parts: tuple) -> bytes:
    return b"".join(p.finish(p.init()) for p in parts)


class FreeText:
    """String content without control characters; escapes only `\\"` and `\\\\`; valid UTF-8.
    Sub-states: 0 at a character boundary, -1 after a backslash, (remaining, lo, hi) inside a character."""

    free = True

    def init(self):
        return 0

    @staticmethod
    def step(s, b):
        if s == 0:
            if b == QUOTE:
                return _CLOSE
            if b == BACKSLASH:
                return -1
            if b < 0x20:
                return None
            if b < 0x80:
                return 0
            return _utf8_lead(b)
        if s == -1:
            return 0 if b in (QUOTE, BACKSLASH) else None
        rem, lo, hi = s
        if not lo <= b <= hi:
            return None
        return (rem - 1, 0x80, 0xBF) if rem > 1 else 0

    @staticmethod
    def can_close(s) -> bool:
        return s == 0

    @staticmethod
    def finish(s) -> bytes:
        if s == 0:
            return b""
        if s == -1:
            return b"\\"
        rem, lo, _ = s
        return bytes([lo]) + b"\x80" * (rem - 1)


def _utf8_lead(b: int):
    if 0xC2 <= b <= 0xDF:
        return (1, 0x80, 0xBF)
    if b == 0xE0:
        return (2, 0xA0, 0xBF)
    if b == 0xED:
        return (2, 0x80, 0x9F)
    if 0xE1 <= b <= 0xEF:
        return (2, 0x80, 0xBF)
    if b == 0xF0:
        return (3, 0x90, 0xBF)
    if 0xF1 <= b <= 0xF3:
        return (3, 0x80, 0xBF)
    if b == 0xF4:
        return (3, 0x80, 0x8F)
    return None


class Spans:
    """String content that is a non-empty substring of one of `texts`' lines, JSON-escaped."""

    free = False

    def __init__(self, texts: Sequence[str]):
        lines: list[bytes] = []
        for text in texts:
            for piece in re.split(r"[\x00-\x1f\\]+", text):
                if piece:
                    lines.append(json.dumps(piece, ensure_ascii=False)[1:-1].encode("utf-8"))
        # \x00 cannot occur in a span (control characters are refused), so no match crosses two lines.
        self.source = b"\x00".join(dict.fromkeys(lines))

    def __bool__(self) -> bool:
        return bool(self.source)

    def init(self):
        return b""

    def step(self, s: bytes, b: int):
        if b == QUOTE and not s.endswith(b"\\"):
            return _CLOSE if self.can_close(s) else None
        if b < 0x20 or (not s and 0x80 <= b < 0xC0):
            return None
        n = s + bytes((b,))
        return n if n in self.source else None

    @staticmethod
    def can_close(s: bytes) -> bool:
        # A span starts at a character (a lead byte), so only its end can cut one.
        return bool(s) and not s.endswith(b"\\") and not _cut_char(s)

    def finish(self, s: bytes) -> bytes:
        if not s:
            s0 = self.source.split(b"\x00", 1)[0]
            return s0[: _char_len(s0, 0)]
        if s.endswith(b"\\"):
            return b'"'
        if not _cut_char(s):
            return b""
        at = self.source.find(s)
        end = at + len(s)
        extra = b""
        while _cut_char(s + extra):
            extra += self.source[end : end + 1]
            end += 1
        return extra


def _cut_char(s: bytes) -> bool:
    """Whether `s` ends inside a multi-byte UTF-8 character."""
    for back in range(1, min(4, len(s)) + 1):
        b = s[-back]
        if b < 0x80:
            return False
        if b >= 0xC0:
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return back < need
    return False


def _char_len(s: bytes, i: int) -> int:
    b = s[i]
    return 1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4


_KEY_NAMES = tuple(sorted(k for k in ENV_KEYS if k.isupper()))
_KEY_PREFIXES = frozenset(name[:i] for name in _KEY_NAMES for i in range(len(name) + 1))
_MAX_CHORDS = 4


class Keys:
    """`keyboard_input` keys: a span of `spans`, or 1-4 chords: up to two of `^ + %` then `{NAME}`, or one or
    two modifiers then a letter or digit. Sub-state: (span sub-state or None, chord sub-state or None), a
    chord sub-state being (chords done, modifiers, name so far or None)."""

    free = False

    def __init__(self, spans: Spans):
        self.spans = spans

    def init(self):
        return (b"" if self.spans else None, (0, 0, None))

    def step(self, sub, b):
        s, c = sub
        if b == QUOTE:
            if s is not None and s.endswith(b"\\"):
                ns = self.spans.step(s, b)
                return None if ns is None else (ns, None)
            return _CLOSE if self.can_close(sub) else None
        ns = self.spans.step(s, b) if s is not None else None
        nc = _chord_step(c, b) if c is not None else None
        if ns is None and nc is None:
            return None
        return (ns, nc)

    def can_close(self, sub) -> bool:
        s, c = sub
        return (s is not None and self.spans.can_close(s)) or (c is not None and _chord_can_close(c))

    def finish(self, sub) -> bytes:
        s, c = sub
        if c is not None:
            n, mods, name = c
            if name is not None:
                full = next(k for k in _KEY_NAMES if k.startswith(name))
                return full[len(name) :].encode() + b"}"
            if mods:
                return b"a"
            return b"" if n else b"{ENTER}"
        return self.spans.finish(s)


def _chord_step(c, b):
    n, mods, name = c
    ch = chr(b)
    if name is not None:
        if ch == "}" and name in _KEY_NAMES:
            return (n + 1, 0, None)
        return (n, mods, name + ch) if name + ch in _KEY_PREFIXES else None
    if n >= _MAX_CHORDS:
        return None
    if ch in "^+%" and mods < 2:
        return (n, mods + 1, None)
    if ch == "{":
        return (n, mods, "")
    if mods and b < 0x80 and ch.isalnum():
        return (n + 1, 0, None)
    return None


def _chord_can_close(c) -> bool:
    n, mods, name = c
    return n > 0 and mods == 0 and name is None


class Str:
    """A JSON string's body and its closing quote (the opening quote belongs to the literal before)."""

    __slots__ = ("content", "cap")

    def __init__(self, content, cap: int):
        self.content, self.cap = content, cap

    def init(self):
        return (self.content.init(), 0)

    def step(self, sub, b):
        c, n = sub
        if n >= self.cap and self.content.can_close(c):
            return (DONE, ()) if b == QUOTE else None
        r = self.content.step(c, b)
        if r is None:
            return None
        return (DONE, ()) if r is _CLOSE else (STAY, (r, n))

    def end_token(self, sub):
        return (sub[0], sub[1] + 1)

    def free_sub(self, sub):
        c, n = sub
        return c if self.content.free and n < self.cap else None

    def forced(self, sub) -> bytes:
        c, n = sub
        return b'"' if n >= self.cap and self.content.can_close(c) else b""

    def finish(self, sub) -> bytes:
        return self.content.finish(sub[0]) + b'"'


@functools.lru_cache(maxsize=16)
def _int_strings(lo: int, hi: int) -> tuple[frozenset, frozenset]:
    values = frozenset(str(v).encode() for v in range(lo, hi + 1))
    prefixes = frozenset(v[:i] for v in values for i in range(1, len(v) + 1))
    return values, prefixes


class Int:
    """A JSON integer in [lo, hi], digits without leading zeros; it ends at the first byte after it."""

    __slots__ = ("lo", "hi", "values", "prefixes")

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.values, self.prefixes = _int_strings(lo, hi)

    def init(self):
        return b""

    def step(self, s, b):
        n = s + bytes((b,))
        if n in self.prefixes:
            return (STAY, n)
        return (PASS, ()) if s in self.values else None

    def forced(self, s) -> bytes:
        return b""

    def finish(self, s) -> bytes:
        if s in self.values:
            return b""
        best = min((v for v in self.values if v.startswith(s)), key=lambda v: (len(v), v))
        return best[len(s) :]


class Plan:
    """The plan list's body after `[`: up to `max_items` free-text items, then `]`. Sub-state: (phase,
    items, item content, item tokens); phases: 0 after `[`, 1 in an item, 2 after an item, 3 after `,`,
    4 after `, `."""

    __slots__ = ("max_items", "cap")

    def __init__(self, max_items: int, cap: int):
        self.max_items, self.cap = max_items, cap

    def init(self):
        return (0, 0, None, 0)

    def step(self, sub, b):
        phase, items, c, n = sub
        if phase == 1:
            if n >= self.cap and FreeText.can_close(c):
                return (STAY, (2, items + 1, None, 0)) if b == QUOTE else None
            r = FreeText.step(c, b)
            if r is None:
                return None
            return (STAY, (2, items + 1, None, 0)) if r is _CLOSE else (STAY, (1, items, r, n))
        if b == 0x5D and phase in (0, 2):  # ]
            return (DONE, ())
        if phase == 0 and b == QUOTE and self.max_items > 0:
            return (STAY, (1, items, 0, 0))
        if phase == 2 and b == 0x2C and items < self.max_items:  # ,
            return (STAY, (3, items, None, 0))
        if phase == 3 and b == 0x20:
            return (STAY, (4, items, None, 0))
        if phase == 4 and b == QUOTE:
            return (STAY, (1, items, 0, 0))
        return None

    def end_token(self, sub):
        phase, items, c, n = sub
        return (phase, items, c, n + 1) if phase == 1 else sub

    def free_sub(self, sub):
        phase, _, c, n = sub
        return c if phase == 1 and n < self.cap else None

    def forced(self, sub) -> bytes:
        phase, items, c, n = sub
        if phase == 1:
            return b'"' if n >= self.cap and FreeText.can_close(c) else b""
        if (phase == 0 and self.max_items == 0) or (phase == 2 and items >= self.max_items):
            return b"]"
        return {3: b' "', 4: b'"'}.get(phase, b"")

    def finish(self, sub) -> bytes:
        phase, _, c, _ = sub
        if phase == 1:
            return FreeText.finish(c) + b'"]'
        return {0: b"]", 2: b"]", 3: b' ""]', 4: b'""]'}[phase]


def _enter(parts: tuple):
    return (parts[0], parts[0].init(), parts[1:]) if parts else COMPLETE


def advance(state, b: int):
    """The state after byte `b`, or None if the grammar refuses it."""
    while state is not COMPLETE:
        head, sub, rest = state
        r = head.step(sub, b)
        if r is None:
            return None
        kind, val = r
        if kind == STAY:
            return (head, val, rest)
        nxt = _enter(val + rest if val else rest)
        if kind == DONE:
            return nxt
        state = nxt  # PASS: the byte belongs to the next part
    return None


def finish(state) -> bytes:
    """The shortest bytes that complete `state` into a valid action."""
    if state is COMPLETE:
        return b""
    head, sub, rest = state
    return head.finish(sub) + _finish_parts(rest)


# The args of each function, in the schema's key order; None where the function cannot be written.
def _args_parts(fn: str, request: Spans, text: Spans, cap: int) -> tuple | None:
    if fn == "click_input":
        return (
            Lit(b'"button": '),
            Choice([(b'"left"', ()), (b'"right"', ()), (b'"middle"', ())]),
            Lit(b', "double": '),
            Choice([(b"false", ()), (b"true", ())]),
        )
    if fn in ("set_edit_text", "select_text"):
        spans = request if fn == "set_edit_text" else text
        return (Lit(b'"text": "'), Str(spans, cap)) if spans else None
    if fn == "keyboard_input":
        return (Lit(b'"keys": "'), Str(Keys(request), cap))
    if fn == "wheel_mouse_input":
        return (Lit(b'"wheel_dist": '), Int(-99, 99))
    if fn == "select_paragraph":
        return (Lit(b'"start_index": '), Int(0, 999), Lit(b', "end_index": '), Int(0, 999))
    if fn == "select_table":
        return (Lit(b'"number": '), Int(1, 99))
    if fn == "insert_table":
        return (Lit(b'"rows": '), Int(1, 50), Lit(b', "columns": '), Int(1, 20))
    if fn == "summary":
        return (Lit(b'"text": "'), Str(FreeText(), cap))
    raise KeyError(f"no argument grammar for function {fn!r}: add it to lamops.agents.decoding._args_parts")


def action_grammar(constraints: Constraints, limits: Limits):
    """The start state of the grammar of one action under `constraints` (see the module docstring)."""
    request = Spans([constraints.request])
    text = Spans([constraints.request, constraints.canvas])
    tail = (
        Lit(b', "status": '),
        Choice([(b'"CONTINUE"', ()), (b'"FINISH"', ())]),
        Lit(b', "plan": ['),
        Plan(limits.plan_items, limits.plan_item_tokens),
        Lit(b"}"),
    )

    def functions(with_control: bool) -> Choice:
        options = []
        for fn in FUNCTIONS:
            if fn in CONTROL_FUNCTIONS and not with_control:
                continue
            args = _args_parts(fn, request, text, limits.arg_tokens)
            if args is not None:
                options.append((_json_bytes(fn), (Lit(b', "args": {'), *args, Lit(b"}"), *tail)))
        return Choice(options)

    labels: dict[str, str] = {}
    for label, name in constraints.controls:
        labels.setdefault(name, label)  # the environment resolves a repeated name to its first control
    any_fn, no_control_fn = functions(True), functions(False)
    names = [(b"null", (Lit(b', "control_label": null, "function": '), no_control_fn))]
    names += [
        (_json_bytes(name), (Lit(b', "control_label": ' + _json_bytes(label) + b', "function": '), any_fn))
        for name, label in labels.items()
    ]
    parts = (
        Lit(b'{"thought": "'),
        Str(FreeText(), limits.thought_tokens),
        Lit(b', "control_name": '),
        Choice(names),
    )
    return _enter(parts)


# ---------------------------------------------------------------------------------------------- vocabulary


class Vocab:
    """The bytes of every token id (None: special or unknown, never allowed), a trie over them, and the
    free-text masks. Built once per tokenizer and model size (`vocab_for`)."""

    def __init__(self, tokenizer: Any, size: int):
        self.tokenizer = tokenizer
        self.size = size
        pieces = token_bytes(tokenizer)
        self.bytes: list[bytes | None] = (pieces + [None] * size)[:size]
        self.root: list = [{}, []]
        for tid, piece in enumerate(self.bytes):
            if not piece:
                continue
            node = self.root
            for b in piece:
                node = node[0].setdefault(b, [{}, []])
            node[1].append(tid)
        # Tokens with a quote or a backslash: the only ones that can leave free text or escape in it.
        self.special = [i for i, p in enumerate(self.bytes) if p and (QUOTE in p or BACKSLASH in p)]
        self._free: dict[Any, torch.Tensor] = {}
        self._stable: dict[tuple, list[int]] = {}

    def free_mask(self, s) -> torch.Tensor:
        """Tokens made only of free-text bytes (no quote, no backslash) that are valid from sub-state `s`."""
        mask = self._free.get(s)
        if mask is None:
            ok = []
            for tid, piece in enumerate(self.bytes):
                if not piece or QUOTE in piece or BACKSLASH in piece:
                    continue
                t = s
                for b in piece:
                    t = FreeText.step(t, b)
                    if t is None:
                        break
                else:
                    ok.append(tid)
            mask = torch.zeros(self.size, dtype=torch.bool)
            mask[ok] = True
            self._free[s] = mask
        return mask

    def stable_tokens(self, forced: bytes, probes: tuple[str, ...]) -> list[int]:
        """The tokens that start `forced` whatever comes after it: the longest common prefix of the
        tokenizations of `forced` alone and followed by each probe, cut to whole bytes of `forced`."""
        text = _decodable_prefix(forced)
        if not text:
            return []
        key = (text, probes)
        hit = self._stable.get(key)
        if hit is not None:
            return hit
        texts = [text, *(text + p for p in probes)]
        batch = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        first = self.bytes[batch[0][0]] if batch[0] and batch[0][0] < self.size else None
        if not first or not forced.startswith(first):
            # SentencePiece tokenizers prepend a space (`▁`) to a text: tokenize after a newline and drop it.
            again = self.tokenizer(["\n" + t for t in texts], add_special_tokens=False)["input_ids"]
            batch = [self._after_newline(ids) for ids in again]
            if any(ids is None for ids in batch):
                self._stable[key] = []
                return []
        common = list(batch[0])
        for ids in batch[1:]:
            n = 0
            while n < len(common) and n < len(ids) and common[n] == ids[n]:
                n += 1
            del common[n:]
        out, acc = [], b""
        for tid in common:
            piece = self.bytes[tid] if tid < self.size else None
            if not piece or not forced.startswith(acc + piece):
                break
            acc += piece
            out.append(tid)
        if len(self._stable) > 100_000:  # forced chunks repeat (literals, labels): this is a safety net
            self._stable.clear()
        self._stable[key] = out
        return out

    def _after_newline(self, ids: list[int]) -> list[int] | None:
        """`ids` without the tokens of a leading newline (and a prepended space); None if they do not end
        where the newline does."""
        acc = b""
        for k, tid in enumerate(ids):
            piece = self.bytes[tid] if tid < self.size else None
            if piece is None:  # a special token (BOS) added by the tokenizer
                continue
            acc += piece
            if acc in (b"\n", b" \n"):
                return list(ids[k + 1 :])
            if len(acc) >= 2:
                return None
        return None


def _decodable_prefix(data: bytes) -> str:
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""


_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vocab_for(tokenizer: Any, size: int | None = None) -> Vocab:
    """The (cached) Vocab of `tokenizer` padded to `size` ids (the model's output size)."""
    size = size or len(tokenizer)
    per = _VOCABS.setdefault(tokenizer, {})
    if size not in per:
        per[size] = Vocab(tokenizer, size)
    return per[size]


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-unicode table, inverted (what a ByteLevel tokenizer's token strings are made of)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_bytes(tokenizer: Any) -> list[bytes | None]:
    """The bytes each token id stands for; None for special tokens.

    Byte-level BPE (GPT-2 style, lamops' own tokenizer): token strings map back through the byte table.
    SentencePiece style (Mistral, Llama): `▁` is a space and `<0xNN>` a raw byte. Other tokenizers fall back
    to decoding each id alone, which is right for whole-character tokens."""
    n = len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []))
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    decoder = ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.decoder is not None:
        decoder = json.dumps(json.loads(backend.to_str()).get("decoder"))
    table = _byte_decoder()
    out: list[bytes | None] = []
    for tid, tok in enumerate(tokens):
        if tid in special or tok is None:
            out.append(None)
        elif "ByteLevel" in decoder:
            try:
                out.append(bytes(table[ch] for ch in tok))
            except KeyError:
                out.append(None)
        elif "▁" in decoder or "ByteFallback" in decoder:
            m = _BYTE_TOKEN.fullmatch(tok)
            out.append(bytes([int(m.group(1), 16)]) if m else tok.replace("▁", " ").encode("utf-8"))
        else:
            out.append(tokenizer.decode([tid]).encode("utf-8") or None)
    return out


# ---------------------------------------------------------------------------------------------- cursor


class Cursor:
    """One action being decoded: the grammar state, the bytes and tokens so far, and what the grammar
    allows next."""

    def __init__(self, constraints: Constraints, limits: Limits, vocab: Vocab):
        self.vocab = vocab
        self.state = action_grammar(constraints, limits)
        self.out = bytearray()
        self.tokens: list[int] = []
        self.forced_count = 0
        self.closed_by_force = False
        self._mask: torch.Tensor | None = None

    @property
    def complete(self) -> bool:
        return self.state is COMPLETE

    def push(self, tid: int, forced: bool = False) -> None:
        piece = self.vocab.bytes[tid]
        state = self.state
        for b in piece or b"":
            state = advance(state, b)
            if state is None:
                break
        if not piece or state is None:
            raise ValueError(f"token {tid} ({piece!r}) is not allowed after {bytes(self.out)!r}")
        if state is not COMPLETE and hasattr(state[0], "end_token"):
            state = (state[0], state[0].end_token(state[1]), state[2])
        self.state = state
        self.out += piece
        self.tokens.append(tid)
        self.forced_count += forced
        self._mask = None

    def allowed(self) -> torch.Tensor:
        """A bool mask over the vocabulary of the tokens the grammar accepts next."""
        if self._mask is None:
            self._mask = _allowed(self.state, self.vocab)
        return self._mask

    def forced(self) -> list[int]:
        """Tokens the grammar forces now (a forced chunk's stable tokens, or the single allowed token);
        empty when the model has a choice to make or the action is complete."""
        if self.state is COMPLETE:
            return []
        chunk, after = forced_bytes(self.state)
        if chunk:
            tokens = self.vocab.stable_tokens(chunk, _probes(after))
            if tokens:
                return tokens
        mask = self.allowed()
        if int(mask.sum()) == 1:
            return [int(mask.nonzero()[0, 0])]
        return []

    def close(self) -> None:
        """Complete the action with the shortest valid ending (the cap was hit or nothing is allowed)."""
        if self.state is not COMPLETE:
            self.out += finish(self.state)
            self.state = COMPLETE
            self.closed_by_force = True

    def text(self) -> str:
        return bytes(self.out).decode("utf-8", errors="replace")


def forced_bytes(state) -> tuple[bytes, Any]:
    """The bytes the grammar allows as the only continuation of `state`, and the state after them."""
    chunk = b""
    while state is not COMPLETE:
        f = state[0].forced(state[1])
        if not f:
            break
        for b in f:
            state = advance(state, b)
        chunk += f
    return chunk, state


_SAMPLE_CHARS = {2: "é", 3: "€", 4: "😀"}


def _probes(state) -> tuple[str, ...]:
    """A string for every byte the grammar allows after `state` (one sample character per UTF-8 length)."""
    if state is COMPLETE:
        return ()
    head, sub, _ = state
    candidates = head.next_bytes(sub) if hasattr(head, "next_bytes") else range(256)
    out = []
    for b in sorted(candidates):
        if advance(state, b) is None:
            continue
        if b < 0x80:
            out.append(chr(b))
        elif b >= 0xC0:
            out.append(_SAMPLE_CHARS[_char_len(bytes((b,)), 0)])
    return tuple(dict.fromkeys(out))


def _allowed(state, vocab: Vocab) -> torch.Tensor:
    if state is COMPLETE:
        return torch.zeros(vocab.size, dtype=torch.bool)
    head, sub, _ = state
    free = head.free_sub(sub) if hasattr(head, "free_sub") else None
    if free is not None:
        mask = vocab.free_mask(free).clone()
        for tid in vocab.special:
            if _walk(state, vocab.bytes[tid]):
                mask[tid] = True
        return mask
    ids: list[int] = []
    stack = [(vocab.root, state)]
    while stack:
        node, st = stack.pop()
        children = node[0]
        if st is not COMPLETE and hasattr(st[0], "next_bytes"):
            keys = [b for b in st[0].next_bytes(st[1]) if b in children]
        else:
            keys = children.keys() if st is not COMPLETE else ()
        for b in keys:
            nxt = advance(st, b)
            if nxt is None:
                continue
            child = children[b]
            ids.extend(child[1])
            if child[0]:
                stack.append((child, nxt))
    mask = torch.zeros(vocab.size, dtype=torch.bool)
    mask[ids] = True
    return mask


def _walk(state, piece: bytes) -> bool:
    for b in piece:
        state = advance(state, b)
        if state is None:
            return False
    return True


# ---------------------------------------------------------------------------------------------- decoder


@dataclass(frozen=True)
class Decoded:
    """One decoded action and what it cost. In a batch, `forward_s` and `total_s` are the batch's
    (lockstep rows wait for each other): the seconds of the forward passes this row took part in, and of
    the whole decode call."""

    text: str
    action: dict | None  # the parsed action; None only if the text does not parse (a bug: see `error`)
    error: str | None
    generated_tokens: int  # chosen by the model from its logits
    forced_tokens: int  # appended by the grammar, without a forward pass each
    forward_passes: int
    forward_s: float
    total_s: float
    prompt_tokens: int
    prompt_cut: int  # tokens fit_prompt cut from the prompt
    closed_by_force: bool  # the action hit max_new_tokens (or a dead end) and was closed by the grammar

    @property
    def tokens(self) -> int:
        return self.generated_tokens + self.forced_tokens


class ConstrainedDecoder:
    """Decodes batches of actions with `model` (a Hugging Face causal LM) under the action grammar."""

    def __init__(self, model: Any, tokenizer: Any, *, max_len: int, max_new_tokens: int, limits: Limits):
        if max_len - max_new_tokens - 1 < 1:
            raise ValueError(f"max_len {max_len} leaves no room for a prompt after {max_new_tokens} tokens")
        if tokenizer.bos_token_id is None:
            raise ValueError("the tokenizer has no BOS token: train it with lamops.models.tokenizer")
        self.model, self.tokenizer = model, tokenizer
        self.max_len, self.max_new_tokens, self.limits = max_len, max_new_tokens, limits
        out = model.get_output_embeddings()
        self.vocab = vocab_for(tokenizer, out.weight.shape[0] if out is not None else model.config.vocab_size)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def prompt_ids(self, prompt: str) -> tuple[list[int], int]:
        """[BOS] + the prompt fitted as in training (`fit_prompt`), and how many tokens were cut."""
        ids, cut = fit_prompt(self.tokenizer, prompt, self.max_len - self.max_new_tokens - 1)
        return [self.tokenizer.bos_token_id, *ids], cut

    def cursor(self, constraints: Constraints) -> Cursor:
        return Cursor(constraints, self.limits, self.vocab)

    def decode(
        self,
        prompts: Sequence[str],
        constraints: Sequence[Constraints],
        *,
        temperature: float = 0.0,
        generators: Sequence[torch.Generator | None] | None = None,
    ) -> list[Decoded]:
        """One action per prompt, all rows in lockstep. Greedy at temperature 0; otherwise sampled from the
        allowed tokens at `temperature`, row i drawing from `generators[i]` (None: torch's default)."""
        if len(prompts) != len(constraints):
            raise ValueError(f"{len(prompts)} prompts but {len(constraints)} constraints")
        if not prompts:
            return []
        t0 = time.perf_counter()
        n = len(prompts)
        gens = list(generators) if generators is not None else [None] * n
        cursors = [self.cursor(c) for c in constraints]
        fitted = [self.prompt_ids(p) for p in prompts]
        passes, fwd_s = [0] * n, [0.0] * n
        pending: list[list[int]] = []
        for cur in cursors:
            pending.append(self._settle(cur))
        rows = [i for i in range(n) if not cursors[i].complete]
        with torch.inference_mode():
            # Prefill: left-padded prompts plus each row's forced start (`{"thought":`).
            seqs = [fitted[i][0] + pending[i] for i in rows]
            width = max((len(s) for s in seqs), default=0)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            attn = torch.zeros((len(rows), width), dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, width - len(s) :] = torch.tensor(s)
                attn[r, width - len(s) :] = 1
            cache = None
            logits = None
            if rows:
                from transformers import DynamicCache

                cache = DynamicCache()
                logits, dt = self.forward(ids, attn, cache, None)
                for i in rows:
                    passes[i] += 1
                    fwd_s[i] += dt
            while rows:
                pending = {}
                for r, i in enumerate(rows):
                    cur = cursors[i]
                    mask = cur.allowed()
                    if not bool(mask.any()):
                        cur.close()
                        continue
                    tid = _choose(logits[r], mask, temperature, gens[i])
                    cur.push(tid)
                    pending[i] = [tid, *self._settle(cur)]
                keep = [r for r, i in enumerate(rows) if not cursors[i].complete]
                if not keep:
                    break
                if len(keep) < len(rows):
                    index = torch.tensor(keep)
                    cache.batch_select_indices(index)
                    attn = attn[index]
                    rows = [rows[r] for r in keep]
                width = max(len(pending[i]) for i in rows)
                ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                block = torch.zeros((len(rows), width), dtype=torch.long)
                lengths = []
                for r, i in enumerate(rows):
                    ids[r, : len(pending[i])] = torch.tensor(pending[i])
                    block[r, : len(pending[i])] = 1
                    lengths.append(len(pending[i]))
                attn = torch.cat([attn, block], dim=1)
                logits, dt = self.forward(ids, attn, cache, lengths)
                for i in rows:
                    passes[i] += 1
                    fwd_s[i] += dt
        total = time.perf_counter() - t0
        return [
            _decoded(cursors[i], passes[i], fwd_s[i], total, len(fitted[i][0]) - 1, fitted[i][1])
            for i in range(n)
        ]

    def _settle(self, cur: Cursor) -> list[int]:
        """Push what the grammar forces after the model's last choice; close the action at the budget."""
        added: list[int] = []
        while not cur.complete:
            tokens = cur.forced()
            if not tokens:
                if not bool(cur.allowed().any()):
                    cur.close()
                break
            if len(cur.tokens) + len(tokens) > self.max_new_tokens:
                cur.close()
                break
            for tid in tokens:
                cur.push(tid, forced=True)
            added += tokens
        if not cur.complete and len(cur.tokens) >= self.max_new_tokens:
            cur.close()
        return added

    def forward(self, ids, attn, cache, lengths) -> tuple[torch.Tensor, float]:
        """One forward over a block; the logits at each row's last real token (all rows end at the block's
        end when `lengths` is None: the left-padded prefill)."""
        positions = (attn.cumsum(1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        t = time.perf_counter()
        out = self.model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1 if lengths is None else 0,
        )
        dt = time.perf_counter() - t
        if lengths is None:
            return out.logits[:, -1].float(), dt
        last = torch.tensor(lengths) - 1
        return out.logits[torch.arange(len(lengths)), last].float(), dt


def _choose(logits: torch.Tensor, mask: torch.Tensor, temperature: float, gen) -> int:
    scores = logits[: mask.shape[0]].masked_fill(~mask[: logits.shape[0]], float("-inf"))
    if temperature <= 0:
        return int(scores.argmax())
    probs = torch.softmax(scores / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _decoded(cur: Cursor, passes: int, fwd_s: float, total: float, prompt_tokens: int, cut: int) -> Decoded:
    text = cur.text()
    action, error = None, None
    try:
        parse_action(text)
        action = json.loads(text)
    except ActionError as e:
        error = str(e)
    return Decoded(
        text=text,
        action=action,
        error=error,
        generated_tokens=len(cur.tokens) - cur.forced_count,
        forced_tokens=cur.forced_count,
        forward_passes=passes,
        forward_s=fwd_s,
        total_s=total,
        prompt_tokens=prompt_tokens,
        prompt_cut=cut,
        closed_by_force=cur.closed_by_force,
    )
