"""What a task family is, and the helpers families share: plan-step builders, content pickers, goal checks.

A family turns a template document into a concrete task (request, how-to plan, reference action plan, goal
parameters) and owns the goal predicate that decides success. The predicate is the verifier's check, the
evaluation metric and the reward signal alike, so it reads the saved document only, never the agent's
actions."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from docx.document import Document
from docx.oxml.ns import qn
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from lamops.env.document import paragraph_runs, table_paragraphs
from lamops.records import PlanStep


@dataclass
class TaskSpec:
    request: str
    actions: list[PlanStep]
    params: dict[str, Any]
    plan: list[str] = field(default_factory=list)  # how-to steps; derived from the actions when empty


class Family:
    """Subclasses set the class attributes and implement `sample` and `goal`."""

    name: str = ""
    category: str = ""
    description: str = ""
    # False for families whose goal changes the document's text (replace, insert, case...).
    text_preserving: bool = True

    def sample(self, doc: Document, rng: random.Random) -> TaskSpec | None:
        """A task on this document, or None when the family does not apply to it."""
        raise NotImplementedError

    def goal(self, before: Document, after: Document, params: dict[str, Any]) -> dict[str, bool]:
        """Named checks that must all hold for the task to be complete."""
        raise NotImplementedError

    def scope(self, params: dict[str, Any]) -> set[str] | None:
        """Canvas keys (p3, t1, section1, header1, comment2, track...) the task may change; None: anything."""
        return None

    def preserves_text(self, params: dict[str, Any]) -> bool:
        """Whether the task must leave the document's words as they were (formatting-only tasks)."""
        return self.text_preserving

    def applies(self, doc: Document) -> bool:
        return self.sample(doc, random.Random(0)) is not None


# ---- plan steps -------------------------------------------------------------------------------------
class Plan:
    """Builds a reference action plan step by step; the subtasks double as the how-to plan."""

    def __init__(self) -> None:
        self.steps: list[PlanStep] = []

    def _add(self, subtask: str, function: str, control_text: str = "", **args) -> Plan:
        self.steps.append(
            PlanStep(
                step=len(self.steps) + 1,
                subtask=subtask,
                control_text=control_text,
                function=function,
                args=args,
            )
        )
        return self

    def click(self, control: str, subtask: str) -> Plan:
        return self._add(subtask, "click_input", control, button="left", double=False)

    def choose(self, menu: str, item: str) -> Plan:
        """Open a drop-down (menu, list or gallery button) and pick one of its items."""
        return self.click(menu, f"Open the {menu} menu.").click(item, f"Choose {item}.")

    def tab(self, tab: str) -> Plan:
        return self.click(tab, f"Open the {tab} tab.")

    def set_text(self, control: str, text: str, subtask: str | None = None) -> Plan:
        return self._add(
            subtask or f"Enter {text!r} in the {control} box.", "set_edit_text", control, text=text
        )

    def select_text(self, text: str) -> Plan:
        return self._add(f"Select the text {text!r}.", "select_text", text=text)

    def select_paragraph(self, i: int, j: int | None = None, what: str = "") -> Plan:
        j = i if j is None else j
        return self._add(
            f"Select {what or f'paragraph {i}'}.", "select_paragraph", start_index=i, end_index=j
        )

    def select_table(self, n: int) -> Plan:
        return self._add(f"Select table {n}.", "select_table", number=n)

    def keys(self, keys: str, subtask: str) -> Plan:
        return self._add(subtask, "keyboard_input", keys=keys)

    def wheel(self, control: str, dist: int, subtask: str) -> Plan:
        return self._add(subtask, "wheel_mouse_input", control, wheel_dist=dist)

    def spec(self, request: str, params: dict[str, Any]) -> TaskSpec:
        return TaskSpec(
            request=request,
            actions=self.steps,
            params=params,
            plan=[f"{s.step}. {s.subtask}" for s in self.steps],
        )


# ---- reading documents ------------------------------------------------------------------------------
def all_paragraphs(doc: Document) -> list[Paragraph]:
    out: list[Paragraph] = []
    for block in doc.iter_inner_content():
        if isinstance(block, Paragraph):
            out.append(block)
        else:
            out.extend(table_paragraphs(block))
    return out


def full_text(doc: Document) -> str:
    """The document's words: non-empty paragraphs (table cells included) joined by newlines; empty
    paragraphs, empty cells and page-break paragraphs carry no text."""
    return "\n".join(t for t in (p.text for p in all_paragraphs(doc)) if t)


def find(doc: Document, phrase: str) -> tuple[Paragraph, int] | None:
    for p in all_paragraphs(doc):
        i = p.text.find(phrase)
        if i >= 0:
            return p, i
    return None


def runs_over(p: Paragraph, start: int, end: int) -> list[Run]:
    """Runs with visible text overlapping p.text[start:end] (read-only: nothing is split)."""
    out, pos = [], 0
    for r in paragraph_runs(p):
        n = len(r.text)
        if pos < end and pos + n > start and r.text.strip():
            out.append(r)
        pos += n
    return out


def phrase_runs(doc: Document, phrase: str) -> list[Run]:
    found = find(doc, phrase)
    if found is None:
        return []
    p, i = found
    return runs_over(p, i, i + len(phrase))


def style_of(p: Paragraph) -> str:
    return p.style.name if p.style is not None else "Normal"


def starts(p: Paragraph, words: int = 5) -> str:
    """The paragraph's first words, the way people point at a paragraph."""
    return " ".join(p.text.split()[:words])


# ---- picking content from the template ----------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")


def pick_phrase(
    doc: Document,
    rng: random.Random,
    ok=lambda runs: True,
    words: tuple[int, int] = (2, 4),
    in_tables: bool = False,
    phrase_ok=lambda phrase: True,
) -> tuple[str, int | None] | None:
    """A phrase of whole words that occurs exactly once in the document, with its body paragraph index
    (None inside a table). `ok` filters on the runs the phrase covers, `phrase_ok` on its text."""
    text = full_text(doc).lower()
    candidates = []
    for i, p in enumerate(doc.paragraphs):
        # Text under a review comment is left alone: editing it would also change what the comment is on.
        if not p.text.strip() or next(p._p.iter(qn("w:commentRangeStart")), None) is not None:
            continue
        tokens = list(_WORD.finditer(p.text))
        for n in range(words[0], words[1] + 1):
            for k in range(0, len(tokens) - n + 1):
                s, e = tokens[k].start(), tokens[k + n - 1].end()
                phrase = p.text[s:e]
                if len(phrase) < 6 or text.count(phrase.lower()) != 1:
                    continue
                candidates.append((phrase, i))
    if in_tables:
        for t in doc.tables:
            for cp in table_paragraphs(t):
                if cp.text.strip() and len(cp.text) >= 4 and text.count(cp.text.lower()) == 1:
                    candidates.append((cp.text, None))
    rng.shuffle(candidates)
    for phrase, i in candidates:
        if not phrase_ok(phrase):
            continue
        found = find(doc, phrase)
        if found and ok(runs_over(found[0], found[1], found[1] + len(phrase))):
            return phrase, i
    return None


def pick_paragraph(doc: Document, rng: random.Random, ok=lambda p: True, min_words: int = 6) -> int | None:
    """Index of a body paragraph with enough words that `ok` accepts."""
    idx = [i for i, p in enumerate(doc.paragraphs) if len(p.text.split()) >= min_words and ok(p)]
    return rng.choice(idx) if idx else None


def pick_word(doc: Document, rng: random.Random, min_len: int = 5) -> str | None:
    """A word (case-sensitive form as written) worth replacing: appears 1-4 times as a whole word."""
    text = full_text(doc)
    counts: dict[str, int] = {}
    for m in re.finditer(rf"\b[a-z]{{{min_len},}}\b", text):
        counts[m.group(0)] = counts.get(m.group(0), 0) + 1
    words = sorted(
        w
        for w, c in counts.items()
        if c <= 4
        and len(re.findall(rf"\b{w}\b", text, re.IGNORECASE)) == c
        and not re.search(rf"{w}[a-z]|[a-z]{w}", text, re.IGNORECASE)
    )
    return rng.choice(words) if words else None


def phrasing(rng: random.Random, options: list[str], **kw) -> str:
    return rng.choice(options).format(**kw)


def scope_of_phrase(index: int | None, doc_tables: int = 0) -> set[str]:
    return {f"p{index}"} if index is not None else {f"t{n}" for n in range(1, doc_tables + 1)}
