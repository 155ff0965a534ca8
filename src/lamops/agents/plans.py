"""The plan library (issue 14): the training tasks' first steps, which a LAM copies from at its first step.

Why: after the first step the expert data copies the previous plan (`lamops.agents.copies`), so a LAM that
gets its first step right completes most tasks: measured on the default data (64 test tasks, greedy), LAM2
completes 70.3% online when its first step is the expert's and 3.1% on its own. The first step maps a request
to one of ~50 families' plans from ~6 examples a family, which a 2M model trained from scratch does not learn
(test first steps: 1 of 40 exact). A nearest neighbour does: the training task whose request is most like
this one (MiniLM sentence embeddings, quoted phrases masked so that the intent, not the quoted text, decides)
is of the same family for 78% of the test requests, and its first step, adapted to this request (below), is
the expert's exactly for 42 of 64.

So a trained model folder carries `plan_library.jsonl`: one line `{"request", "items"}` per distinct first
step of its training data (the plan as the prompt numbers it: `1. <thought>`, then the plan's items). At a
first step (no previous plan) the agent offers the nearest entry's items, adapted, as the previous plan's
copies (`Constraints.previous_plan`): the decoder writes the thought and plan as a copy when the model's own
first token agrees (`copy_bonus`, `lamops.agents.decoding`), and the model still decides the control, the
function and its arguments. Measured with the default recipe's LAM2 (lr 3e-3, 528 steps) on 64 test tasks:
online TSR 3.1 without the library, 37.5 with it (24/64).

Adapting an entry to a request: the two requests are aligned word by word (difflib); the neighbour's quoted
phrases become this request's, in order, and each other replaced run of words (`1` -> `1.5`, `Wide` ->
`Moderate`, `dark red` -> `purple`) is replaced in the items' text as whole words, keeping a capital first
letter where the item has one. Item numbers are never touched.
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

_WORD = re.compile(r"\d+(?:\.\d+)?|\w+|[^\w\s]")
_QUOTE = re.compile(r"'(.+?)'(?!\w)")
_NUMBERED = re.compile(r"(\d+\.\s+)(.*)", re.S)
_HOLE = "\ue000"  # a private-use character: no request or plan holds it


def mask_quotes(request: str) -> str:
    """`request` with each quoted phrase written 'x': what the request asks, not what it quotes."""
    return _QUOTE.sub("'x'", request)


def _same_case(found: str, replacement: str) -> str:
    if found[:1].isupper() and replacement[:1].islower():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def adapt(text: str, source: str, target: str) -> str:
    """`text`, written for request `source`, rewritten for request `target` (see the module docstring)."""
    pairs = list(zip(_QUOTE.findall(source), _QUOTE.findall(target), strict=False))
    out = text
    for k, (a, _) in enumerate(pairs):  # a placeholder no word swap can touch, restored at the end
        out = out.replace(f"'{a}'", f"'{_HOLE * (k + 1)}'")
    sw, tw = _WORD.findall(_QUOTE.sub("'", source)), _WORD.findall(_QUOTE.sub("'", target))
    swaps: dict[str, str] = {}
    matcher = difflib.SequenceMatcher(a=sw, b=tw, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace":
            old, new = " ".join(sw[i1:i2]), " ".join(tw[j1:j2])
            if old.strip("'") and new.strip("'") and "'" not in old + new:
                swaps[old] = new
    for old, new in sorted(swaps.items(), key=lambda kv: -len(kv[0])):
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


@dataclass
class PlanLibrary:
    """First steps of training tasks: `requests[i]`'s first step as numbered items `items[i]`."""

    requests: list[str]
    items: list[tuple[str, ...]]
    _vectors: Any = field(default=None, repr=False)

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

    def nearest(self, requests: Sequence[str]) -> list[int | None]:
        """For each request, the index of the entry whose request is most similar (None: empty library)."""
        if not self.requests:
            return [None] * len(requests)
        if self._vectors is None:
            self._vectors = self._embed(self.requests)
        scores = self._embed([r.strip() for r in requests]) @ self._vectors.T
        return [int(i) for i in scores.argmax(axis=1)]

    def propose(self, requests: Sequence[str]) -> list[tuple[str, ...]]:
        """For each request, the nearest entry's items adapted to it (empty for an empty library)."""
        out = []
        for request, i in zip(requests, self.nearest(requests), strict=True):
            out.append(() if i is None else adapt_items(self.items[i], self.requests[i], request.strip()))
        return out
