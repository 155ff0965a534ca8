"""The plan library (issue 14): the training tasks' first steps, which a LAM copies from at its first step.

Why: after the first step the expert data copies the previous plan (`lamops.agents.copies`), so a LAM that
gets its first step right completes most tasks: measured on the default data (64 test tasks, greedy), LAM2
completes 70.3% online when its first step is the expert's and 3.1% on its own. The first step maps a request
to one of ~50 families' plans from ~6 examples a family, which a 2M model trained from scratch does not learn
(test first steps: 1 of 40 exact). A nearest neighbour does.

So a trained model folder carries `plan_library.jsonl`: one line `{"request", "items"}` per distinct first
step of its training data (the plan as the prompt numbers it: `1. <thought>`, then the plan's items). At a
first step (no previous plan) the agent proposes a plan from it and offers the proposal as the previous
plan's copies (`Constraints.previous_plan`): the decoder writes the thought and plan as a copy when the
model's own first token agrees (`copy_bonus`, `lamops.agents.decoding`), and the model still decides the
control, the function and its arguments.

The proposal: a request is split into its parts ("Do X, then do Y." -> "Do X.", "Do Y.": `clauses`); each
part takes the one-part entry whose request is most similar (MiniLM sentence embeddings, quoted phrases
masked so that the intent, not the quoted text, decides), its items adapted to the part; the parts' plans are
joined and renumbered, a later part that does not open a ribbon tab first going back to the Home tab
(`join_parts`, as the data's compound tasks do). Adapting an entry to a request: the two requests are aligned
word by word (difflib, a URL one word); the neighbour's quoted phrases become this request's, in order, and
each other replaced run of words (`1` -> `1.5`, `Wide` -> `Moderate`, `dark red` -> `purple`) is replaced in
the items' text as whole words, keeping the item's capitals; runs of grammar words only ("the first table"
-> "table 1 as") are not swapped, and item numbers are never touched.

Measured on the default data (108 test tasks): the proposal is the expert's first step exactly for 86 (76
with the whole request's nearest entry of any kind, before parts). With the default recipe's LAM2 (lr 3e-3,
528 steps) and the decoder's copies, online TSR on the first 64 test tasks: 3.1 without the library, 57.8
with it (the expert: 64.1); 60.2 on all 108.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamops.agents.constraints import constraints_from_prompt
from lamops.io import write_atomic

FILE = "plan_library.jsonl"

_WORD = re.compile(r"https?://[^\s,']*[^\s,.']|\d+(?:\.\d+)?|\w+|[^\w\s]")  # a URL is one word
_QUOTE = re.compile(r"'(.+?)'(?!\w)")
_NUMBERED = re.compile(r"(\d+\.\s+)(.*)", re.S)
_HOLE = "\ue000"  # a private-use character: no request or plan holds it
_CLAUSES = re.compile(r",? then ")  # "Do X, then do Y." (how compound requests join their parts)
_GLUE = "Open the Home tab."
_TAB = re.compile(r"Open the (Home|Insert|Layout|References|Review|View) tab\.")
_NO_CONTROL = re.compile(r"(Select|Move|Press|Type) ")  # items done without a control (select_*, keys)
# Words whose swap rewrites grammar, not a value ("the first table" -> "table 1 as" would give "Open 1 as").
_FUNCTION_WORDS = frozenset("a an and as at by for from in into of on or the then to with 's".split())


def mask_quotes(request: str) -> str:
    """`request` with each quoted phrase written 'x': what the request asks, not what it quotes."""
    return _QUOTE.sub("'x'", request)


def clauses(request: str) -> list[str]:
    """The parts of a compound request ("Do X, then do Y." -> ["Do X.", "Do Y."]); one part otherwise. A
    "then" inside a quoted phrase does not split."""
    text = request.strip()
    quoted = [m.span() for m in _QUOTE.finditer(text)]
    pieces, last = [], 0
    for m in _CLAUSES.finditer(text):
        if not any(a <= m.start() < b for a, b in quoted):
            pieces.append(text[last : m.start()])
            last = m.end()
    pieces.append(text[last:])
    parts = [p.strip().rstrip(".") for p in pieces if p.strip().rstrip(".")]
    return [p[:1].upper() + p[1:] + "." for p in parts] or [text]


def _same_case(found: str, replacement: str) -> str:
    if found.istitle() and not replacement.istitle():
        return replacement.title()  # "Dark Red" -> "Bright Green"
    if found[:1].isupper() and replacement[:1].islower():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _swaps(source: str, target: str) -> dict[str, str]:
    """Each replaced run of words of `source` (quoted phrases aside) -> the run of `target` that replaces it,
    as the requests write them."""
    src, tgt = _QUOTE.sub("'", source), _QUOTE.sub("'", target)
    sm, tm = list(_WORD.finditer(src)), list(_WORD.finditer(tgt))
    matcher = difflib.SequenceMatcher(a=[m.group(0) for m in sm], b=[m.group(0) for m in tm], autojunk=False)
    out: dict[str, str] = {}
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace":
            continue
        old, new = src[sm[i1].start() : sm[i2 - 1].end()], tgt[tm[j1].start() : tm[j2 - 1].end()]
        words = {m.group(0).lower() for m in sm[i1:i2]}
        if "'" in old + new or words <= _FUNCTION_WORDS or not re.search(r"\w", old + new):
            continue
        out[old] = new
    return out


def adapt(text: str, source: str, target: str) -> str:
    """`text`, written for request `source`, rewritten for request `target` (see the module docstring)."""
    pairs = list(zip(_QUOTE.findall(source), _QUOTE.findall(target), strict=False))
    out = text
    for k, (a, _) in enumerate(pairs):  # a placeholder no word swap can touch, restored at the end
        out = out.replace(f"'{a}'", f"'{_HOLE * (k + 1)}'")
    for old, new in sorted(_swaps(source, target).items(), key=lambda kv: -len(kv[0])):
        pattern = re.compile(rf"(?<![\w.]){re.escape(old)}(?![\w]|\.\d)", re.IGNORECASE)
        out = pattern.sub(lambda m, new=new: _same_case(m.group(0), new), out)
    for k, (_, b) in reversed(list(enumerate(pairs))):
        out = out.replace(f"'{_HOLE * (k + 1)}'", f"'{b}'")
    return out


def adapt_items(items: Sequence[str], source: str, target: str) -> tuple[str, ...]:
    """Each numbered item's text adapted (`adapt`), its number kept."""
    out = []
    for item in items:
        m = _NUMBERED.match(item)
        number, body = (m.group(1), m.group(2)) if m else ("", item)
        out.append(number + adapt(body, source, target))
    return tuple(out)


def _text(item: str) -> str:
    m = _NUMBERED.match(item)
    return m.group(2) if m else item


def join_parts(parts: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The plans of a compound request's parts as one plan, renumbered: a later part that does not open a
    tab itself first goes back to the Home tab, where every part's plan starts (as the data composes them:
    `lamops.env.families.composite.compose`)."""
    texts: list[str] = []
    for k, part in enumerate(parts):
        bodies = [_text(i) for i in part]
        first = next((b for b in bodies if not _NO_CONTROL.match(b)), None)
        if k and (first is None or not _TAB.fullmatch(first)):
            texts.append(_GLUE)
        texts += bodies
    return tuple(f"{n}. {t}" for n, t in enumerate(texts, 1))


@dataclass
class PlanLibrary:
    """First steps of training tasks: `requests[i]`'s first step as numbered items `items[i]`."""

    requests: list[str]
    items: list[tuple[str, ...]]
    _vectors: Any = field(default=None, repr=False)
    _singles: list[int] | None = field(default=None, repr=False)

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> PlanLibrary:
        """The distinct first steps of SFT rows (`StepSFTRow`: step 1, the observation prompt and the action
        JSON), in row order."""
        seen: dict[tuple[str, tuple[str, ...]], None] = {}
        for row in rows:
            if row.step != 1:
                continue
            action = json.loads(row.completion)
            request = constraints_from_prompt(row.prompt).request.strip()
            items = (f"1. {action['thought']}", *action["plan"])
            seen.setdefault((request, items), None)
        return cls(requests=[r for r, _ in seen], items=[i for _, i in seen])

    def __len__(self) -> int:
        return len(self.requests)

    def save(self, folder: Path) -> Path:
        """Write `folder/plan_library.jsonl` (atomically) and return its path."""
        path = Path(folder) / FILE
        lines = (
            json.dumps({"request": r, "items": list(i)}, ensure_ascii=False) + "\n"
            for r, i in zip(self.requests, self.items, strict=True)
        )
        write_atomic(path, "".join(lines).encode("utf-8"))
        return path

    @classmethod
    def load(cls, folder: Path) -> PlanLibrary | None:
        """The library of a model folder; None when it has none (an older model, or LAM1). A line that does
        not parse is an error naming the file and line."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        requests, items = [], []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
                request, plan = str(entry["request"]), tuple(str(i) for i in entry["items"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{number}: not a plan library line ({e})") from None
            requests.append(request)
            items.append(plan)
        return cls(requests=requests, items=items)

    def _embed(self, texts: list[str]) -> np.ndarray:
        from lamops.embeddings import embed

        return embed([mask_quotes(t) for t in texts])

    def _single(self) -> list[int]:
        """The entries of one-part requests (a compound request's plan is built from its parts')."""
        if self._singles is None:
            self._singles = [i for i, r in enumerate(self.requests) if len(clauses(r)) == 1]
        return self._singles

    def nearest(self, requests: Sequence[str]) -> list[int | None]:
        """For each request, the index of the one-part entry whose request is most similar (None: no such
        entry)."""
        pool = self._single()
        if not pool or not requests:
            return [None] * len(requests)
        if self._vectors is None:
            self._vectors = self._embed([self.requests[i] for i in pool])
        scores = self._embed([r.strip() for r in requests]) @ self._vectors.T
        return [pool[int(i)] for i in scores.argmax(axis=1)]

    def propose(self, requests: Sequence[str]) -> list[tuple[str, ...]]:
        """For each request, a first step's plan: for each of its parts (`clauses`), the nearest one-part
        entry's items adapted to that part, joined (`join_parts`); empty for an empty library."""
        parts = [clauses(r) for r in requests]
        flat = [p for ps in parts for p in ps]
        found = iter(zip(flat, self.nearest(flat), strict=True))
        out = []
        for ps in parts:
            plans = []
            for part, i in (next(found) for _ in ps):
                if i is not None:
                    plans.append(adapt_items(self.items[i], self.requests[i], part))
            out.append(join_parts(plans) if len(plans) == len(ps) and plans else ())
        return out
