"""The action grammar of `lamops.agents.decoding`: limits, and a byte-level grammar over segments (literal,
choice, string body, integer, plan list) whose states `advance` byte by byte; `action_grammar` builds the
initial state of one action from the `lamops.agents.constraints` an observation puts on it."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lamops.agents.constraints import Constraints
from lamops.agents.copies import (
    copy_options,
    named_control,
    named_function,
    paragraph_copy,
    quoted,
    text_copies,
)
from lamops.env.actions import CONTROL_FUNCTIONS, FUNCTIONS
from lamops.env.actions import SPECIAL_KEYS as ENV_KEYS  # the key names `parse_keys` accepts

QUOTE, BACKSLASH = 0x22, 0x5C


# ---------------------------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """Token caps of the free parts of an action (see the module docstring)."""

    thought_tokens: int = 40
    plan_items: int = 10
    plan_item_tokens: int = 48
    arg_tokens: int = 32


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
    """One of several byte strings, each followed by its own parts. No option is a prefix of another.
    `copies`: options the decoder prefers (see `lamops.agents.decoding`, "Copies")."""

    __slots__ = ("options", "_all", "copies")

    def __init__(self, options: Sequence[tuple[bytes, tuple]], copies: tuple[bytes, ...] = ()):
        self.options, self.copies = tuple(options), copies
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


class NameChoice(Choice):
    """The control-name choice. Its copy is the option of the control the thought names
    (`lamops.agents.copies.named_control`), known only once the thought is written: `copies_after`."""

    __slots__ = ("by_name",)

    def __init__(self, options: Sequence[tuple[bytes, tuple]], by_name: dict[str, bytes]):
        super().__init__(options)
        self.by_name = by_name

    def copies_after(self, thought: str) -> tuple[bytes, ...]:
        name = named_control(thought, list(self.by_name))
        return (self.by_name[name],) if name is not None else ()


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
            return s0[: char_len(s0, 0)]
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


def char_len(s: bytes, i: int) -> int:
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
    """A JSON string's body and its closing quote (the opening quote belongs to the literal before).
    `copies`: whole bodies (closing quote included) the decoder may write at its start, uncapped (see
    `lamops.agents.decoding`, "Copies"); `quotes`: phrases (JSON-escaped) it may copy inside free text
    after an opening ` '` (`in_free_text`); the language is still the content's."""

    __slots__ = ("content", "cap", "copies", "quotes")

    def __init__(self, content, cap: int, copies: tuple[bytes, ...] = (), quotes: tuple[bytes, ...] = ()):
        self.content, self.cap, self.copies, self.quotes = content, cap, copies, quotes

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

    def in_free_text(self, sub) -> bool:
        return self.content.free

    def free_sub(self, sub):
        c, n = sub
        return c if self.content.free and n < self.cap else None

    def forced(self, sub) -> bytes:
        c, n = sub
        return b'"' if n >= self.cap and self.content.can_close(c) else b""

    def finish(self, sub) -> bytes:
        return self.content.finish(sub[0]) + b'"'


class QuotedStr(Str):
    """A text argument over spans (`Spans`): its copies are the phrases the thought or the request quotes
    (`lamops.agents.copies.text_copies`), known only once the thought is written: `copies_after`; only
    phrases the spans allow whole are offered."""

    __slots__ = ("request",)

    def __init__(self, content: Spans, cap: int, request: str):
        super().__init__(content, cap)
        self.request = request

    def copies_after(self, thought: str) -> tuple[bytes, ...]:
        return span_copies(text_copies(thought, self.request), self.content)


def span_copies(phrases: Sequence[str], spans: Spans) -> tuple[bytes, ...]:
    """Each phrase `spans` allows whole, as the string body a copy writes (JSON-escaped, closing quote)."""
    out = []
    for phrase in phrases:
        body = json.dumps(phrase, ensure_ascii=False)[1:-1].encode("utf-8")
        if body and b"\x00" not in body and body in spans.source and spans.can_close(body):
            out.append(body + b'"')
    return tuple(out)


class FunctionChoice(Choice):
    """The function: its copy is the function the written thought names (`copies.named_function`), known only
    once the thought is written: `copies_after`. Unlike other choices its copy is locked, not only
    preferred: a first token that agrees with it writes it (`select_text` and `select_paragraph` share their
    first token)."""

    __slots__ = ()
    lock_copies = True

    def copies_after(self, thought: str) -> tuple[bytes, ...]:
        names = {json.loads(option): option for option, _ in self.options}
        fn = named_function(thought, list(names))
        return (names[fn],) if fn is not None else ()


class KeysStr(Str):
    """`keyboard_input`'s keys (`Keys`): its copies are the phrases the thought quotes ("Type 'next quarter'
    over it." types `next quarter`: 20 of the default data's 20 keyboard steps whose thought quotes a phrase),
    known only once the thought is written: `copies_after`; only phrases the request spans allow whole."""

    def copies_after(self, thought: str) -> tuple[bytes, ...]:
        return span_copies(quoted(thought), self.content.spans)


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


class ParagraphIndex(Int):
    """`select_paragraph`'s start or end index: a paragraph index whose copy is the paragraph the written
    thought quotes in the canvas (`lamops.agents.copies.paragraph_copy`), known only once the thought (for
    the end: and the start) is written: `copies_after`."""

    __slots__ = ("canvas", "end")

    def __init__(self, canvas: str, end: bool):
        super().__init__(0, 999)
        self.canvas, self.end = canvas, end

    def copies_after(self, thought: str, out: bytes) -> tuple[bytes, ...]:
        found = paragraph_copy(thought, self.canvas)
        if found is None:
            return ()
        start, end = found
        if not self.end:
            return (str(start).encode(),)
        written = re.search(rb'"start_index": (\d+)', out)
        return (str(end).encode(),) if written and int(written.group(1)) == start else ()


class Plan:
    """The plan list's body after `[`: up to `max_items` free-text items, then `]`. Sub-state: (phase,
    items, item content, item tokens); phases: 0 after `[`, 1 in an item, 2 after an item, 3 after `,`,
    4 after `, `. `copies`: whole lists after `[` (`]` included) the decoder may copy at the start; `quotes`:
    phrases an item may copy after an opening ` '`, as `Str`'s."""

    __slots__ = ("max_items", "cap", "copies", "quotes")

    def __init__(
        self, max_items: int, cap: int, copies: tuple[bytes, ...] = (), quotes: tuple[bytes, ...] = ()
    ):
        self.max_items, self.cap, self.copies, self.quotes = max_items, cap, copies, quotes

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

    def in_free_text(self, sub) -> bool:
        return sub[0] == 1

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


class Resumed:
    """`part` entered at the sub-state `sub`: the rest of a free text after a phrase copied into it (see
    `lamops.agents.decoding.copy_states`)."""

    __slots__ = ("part", "sub")
    copies: tuple[bytes, ...] = ()  # its part's start is behind it (its quotes stay on offer)

    def __init__(self, part, sub):
        self.part, self.sub = part, sub

    def init(self):
        return self.sub

    def __getattr__(self, name: str):
        return getattr(self.part, name)


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
def _args_parts(
    fn: str, request: Spans, text: Spans, cap: int, request_text: str = "", canvas: str = ""
) -> tuple | None:
    if fn == "click_input":
        return (
            Lit(b'"button": '),
            Choice([(b'"left"', ()), (b'"right"', ()), (b'"middle"', ())]),
            Lit(b', "double": '),
            Choice([(b"false", ()), (b"true", ())]),
        )
    if fn in ("set_edit_text", "select_text"):
        spans = request if fn == "set_edit_text" else text
        return (Lit(b'"text": "'), QuotedStr(spans, cap, request_text)) if spans else None
    if fn == "keyboard_input":
        return (Lit(b'"keys": "'), KeysStr(Keys(request), cap))
    if fn == "wheel_mouse_input":
        return (Lit(b'"wheel_dist": '), Int(-99, 99))
    if fn == "select_paragraph":
        return (
            Lit(b'"start_index": '),
            ParagraphIndex(canvas, end=False),
            Lit(b', "end_index": '),
            ParagraphIndex(canvas, end=True),
        )
    if fn == "select_table":
        return (Lit(b'"number": '), Int(1, 99))
    if fn == "insert_table":
        return (Lit(b'"rows": '), Int(1, 50), Lit(b', "columns": '), Int(1, 20))
    if fn == "summary":
        return (Lit(b'"text": "'), Str(FreeText(), cap))
    raise KeyError(f"no argument grammar for function {fn!r}: add it to lamops.agents.grammar._args_parts")


def action_grammar(constraints: Constraints, limits: Limits):
    """The start state of the grammar of one action under `constraints` (see the module docstring)."""
    request = Spans([constraints.request])
    text = Spans([constraints.request, constraints.canvas])
    thought_copies, status_copies, plan_copies = copy_options(constraints.previous_plan)
    quotes = tuple(
        json.dumps(q, ensure_ascii=False)[1:-1].encode("utf-8") for q in quoted(constraints.request)
    )
    tail = (
        Lit(b', "status": '),
        Choice([(b'"CONTINUE"', ()), (b'"FINISH"', ())], status_copies),
        Lit(b', "plan": ['),
        Plan(limits.plan_items, limits.plan_item_tokens, plan_copies, quotes),
        Lit(b"}"),
    )

    def functions(with_control: bool) -> Choice:
        options = []
        for fn in FUNCTIONS:
            if fn in CONTROL_FUNCTIONS and not with_control:
                continue
            args = _args_parts(fn, request, text, limits.arg_tokens, constraints.request, constraints.canvas)
            if args is not None:
                options.append((_json_bytes(fn), (Lit(b', "args": {'), *args, Lit(b"}"), *tail)))
        return FunctionChoice(options)

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
        Str(FreeText(), limits.thought_tokens, thought_copies, quotes),
        Lit(b', "control_name": '),
        NameChoice(names, {name: _json_bytes(name) for name in labels}),
    )
    return _enter(parts)
