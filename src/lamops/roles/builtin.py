"""The built-in, deterministic implementations of the LLM roles: no network, same output every run.

They play the roles the way a careful rule-based system can, not the way GPT-4o does:
- structure: a doc section or article is a pair as written (title -> task, steps -> plan); a search query is
  rewritten into a request and given the application's how-to plan for its feature;
- evolve: two pairs about different features become one harder task (a combination, or an added requirement
  of at most `max_added_words` words), the plans concatenated;
- prefill: the task's feature (lexical match against the environment's feature knowledge) is sampled on the
  template, which grounds the request and the arguments in the document's real content; each step's control is
  then named the way *the pair's plan* names it. A plan that names a control vaguely, differently
  from the UI or from an older UI keeps that name, so the expert fails on it at `execute` (as UFO's executor
  does);
- filter: UFO's request types by rule (other applications, environment dependence, subjective requests);
- judge: without a goal predicate a rule cannot decide success: it says `no` when nothing changed or the
  actions failed, else `unsure`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lamops.agents.expert import match_score
from lamops.records import FilterVerdict, PlanStep, RawEntry, TaskPlanPair, Verdict
from lamops.roles.protocols import Drafted, JudgeInput, Prefilled, Roles

ALIGN_MIN_SCORE = 80.0  # a plan's mention names a step's control when it matches this well (as the expert)


def stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


# ---- structure ---------------------------------------------------------------------------------------
_HOW_TO = re.compile(r"^\s*(?:how\s+(?:to|do\s+(?:i|you)|can\s+i)\s+)", re.IGNORECASE)
_APP_SUFFIX = re.compile(
    r"\s+(?:in|on|using|with)\s+(?:ms\s+|microsoft\s+)?word(?:\s+\d{2,4})?\s*[?.!]*$", re.I
)
_APP_WORD = re.compile(r"\b(?:ms\s+|microsoft\s+)?word\b", re.IGNORECASE)


def task_from_title(title: str) -> str:
    """'How to Add a Page Border in Word?' -> 'Add a Page Border in Word'."""
    task = _HOW_TO.sub("", title).strip().rstrip("?.! ")
    task = _APP_SUFFIX.sub("", task)
    return (task[:1].upper() + task[1:] + " in Word") if task else ""


def rewrite_query(query: str) -> str:
    """'word how to bold txt' -> 'Bold txt in Word'."""
    text = _APP_WORD.sub(" ", query)
    text = re.sub(r"\s+", " ", _HOW_TO.sub("", text.strip())).strip(" ?.!")
    text = _HOW_TO.sub("", text).strip()
    return (text[:1].upper() + text[1:] + " in Word") if text else ""


class BuiltinStructurer:
    def structure(self, entry: RawEntry) -> list[Drafted]:
        from lamops.roles.knowledge import best_feature

        if entry.kind == "query":
            found = best_feature(entry.title)
            task = rewrite_query(entry.title)
            if found is None or not task:
                return []
            return [Drafted(task=task, plan=list(found[0].plan))]
        task = task_from_title(entry.title)
        return [Drafted(task=task, plan=list(entry.steps))] if task and entry.steps else []


# ---- evolve ------------------------------------------------------------------------------------------
def _clause(task: str) -> str:
    task = _APP_SUFFIX.sub("", task.strip().rstrip(".!?"))
    return task[:1].lower() + task[1:]


class BuiltinEvolver:
    def __init__(self, max_added_words: int = 20):
        self.max_added_words = max_added_words

    def evolve(self, pair: TaskPlanPair, other: TaskPlanPair | None) -> Drafted | None:
        from lamops.roles.knowledge import best_feature

        if other is None:
            return None
        mine, theirs = (
            best_feature(" ".join([pair.task, *pair.plan])),
            best_feature(" ".join([other.task, *other.plan])),
        )
        if mine is None or theirs is None or mine[0].family == theirs[0].family:
            return None
        added = _clause(other.task)
        if len(added.split()) > self.max_added_words:
            return None
        base = _clause(pair.task)
        base = base[:1].upper() + base[1:]
        if stable_int(pair.task_id, other.task_id) % 2:
            task = f"{base}, and also {added} in Word"  # an added requirement
        else:
            task = f"{base}, then {added} in Word"  # a combination of features
        return Drafted(task=task, plan=[*pair.plan, *other.plan])


# ---- prefill -----------------------------------------------------------------------------------------
_MENTIONS = (
    re.compile(r"\*\*(.+?)\*\*"),
    re.compile(r"'([^']{2,40})'"),
    re.compile(r'"([^"]{2,40})"'),
    re.compile(
        r"(?:the\s+)?([A-Z][\w&.-]*(?:\s+[A-Z][\w&.-]*){0,3})\s+"
        r"(?:button|tab|menu|box|list|gallery|dialog|option|icon|command|field)\b"
    ),
)
_CAPS = r"[A-Z][\w&.-]*(?:\s+[A-Z][\w&.-]*)*"  # capitalised words: how a UI name is written
_PATH = re.compile(rf"({_CAPS}(?:\s*>\s*{_CAPS})+)")


def mentions(line: str) -> list[str]:
    """Control names a plan step mentions, in order of appearance."""
    found: list[tuple[int, str]] = []
    for m in _PATH.finditer(line):
        offset = m.start()
        for part in m.group(1).split(">"):
            found.append((offset, part.strip().rstrip(".")))
            offset += len(part) + 1
    for pattern in _MENTIONS:
        found.extend((m.start(), m.group(1).strip()) for m in pattern.finditer(line))
    seen, out = set(), []
    for _, text in sorted(found, key=lambda x: x[0]):
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _object_phrase(line: str) -> str:
    """What a step without a recognisable control name points at: its words after the verb."""
    words = re.sub(r"[^\w\s'-]", " ", line).split()
    while words and words[0].lower() in {"then", "now", "next", "first", "finally", "and"}:
        words.pop(0)
    return " ".join(words[1:6]) if len(words) > 1 else line.strip()


def align(step: PlanStep, k: int, n: int, plan: list[str], request: str = "") -> PlanStep:
    """`step` (k of n, from the family's reference plan) with its control named as `plan` names it.

    A control the concrete request itself names (the colour, style or size asked for) keeps that name: the
    value belongs to this task, not to how the generic plan was written."""
    if not step.control_text:
        return step
    if request and re.search(rf"(?<!\w){re.escape(step.control_text)}(?!\w)", request, re.IGNORECASE):
        return step
    named = [m for line in plan for m in mentions(line)]  # in plan order: ties go to the first mention
    if named:
        best = max(named, key=lambda m: match_score(step.control_text, m))
        if match_score(step.control_text, best) >= ALIGN_MIN_SCORE:
            return step.model_copy(update={"control_text": best})
    if not plan:
        return step
    # No mention of this control: the step at the same relative place in the plan is the best guess.
    line = plan[min(len(plan) - 1, round(k * (len(plan) - 1) / max(1, n - 1)))]
    own = mentions(line)
    return step.model_copy(update={"control_text": own[0] if own else _object_phrase(line)})


@dataclass
class BuiltinPrefiller:
    """Needs the pairs an evolved pair was made from (`parents`), to prefill each part."""

    pairs: dict[str, TaskPlanPair]

    def prefill(
        self, pair: TaskPlanPair, template: str, description: str, canvas: str, controls: list[str]
    ) -> Prefilled | None:
        if not pair.parents:
            return self._single(pair, template)
        task = self._composite(pair, template, aligned=True)
        if task is None:
            return None
        return Prefilled(
            request=task.request,
            action_plan=task.action_plan,
            family=task.family,
            params=task.params,
            category=task.category,
        )

    def family_plan(self, pair: TaskPlanPair, template: str) -> list[PlanStep] | None:
        """The family plan `prefill` sampled for `pair` on `template`, before `align` named its controls as
        the pair's plan does: the controls as the interface names them (`lamops.data.datasets` labels agents'
        steps with it). None where `prefill` made no task."""
        if pair.parents:
            task = self._composite(pair, template, aligned=False)
        else:
            task = self._task(pair, template, aligned=False)
        return list(task.action_plan) if task is not None else None

    def _composite(self, pair: TaskPlanPair, template: str, aligned: bool):
        from lamops.env.families.composite import combinable, compose

        parts = []
        for k, parent_id in enumerate(pair.parents):
            parent = self.pairs.get(parent_id)
            if parent is None:
                return None
            task = self._task(parent, template, salt=f"{pair.task_id}/{k}", aligned=aligned)
            if task is None:
                return None
            parts.append(task)
        return compose(parts, pair.task_id) if combinable(parts) else None

    def _task(self, pair: TaskPlanPair, template: str, *, aligned: bool, salt: str = ""):
        from lamops.env.families import sample_task
        from lamops.roles.knowledge import best_feature

        found = best_feature(" ".join([pair.task, *pair.plan]))
        if found is None:
            return None
        family = found[0].family
        task = sample_task(family, template, stable_int(pair.task_id, salt) % 2**31)
        if task is None:
            return None
        n = len(task.action_plan)
        steps = [
            align(s, k, n, pair.plan, task.request) if aligned else s for k, s in enumerate(task.action_plan)
        ]
        return task.model_copy(update={"action_plan": steps, "task_id": pair.task_id})

    def _single(self, pair: TaskPlanPair, template: str) -> Prefilled | None:
        task = self._task(pair, template, aligned=True)
        if task is None:
            return None
        request = task.request
        if not BuiltinFilter().filter(pair.task, task.action_plan).judge:
            # What makes the task unfit (another app, the environment, taste) stays in the request, as an
            # LLM's prefill keeps the user's demand, so that the filter can see it.
            request = f"{request} Also: {pair.task.rstrip('.')}."
        return Prefilled(
            request=request,
            action_plan=task.action_plan,
            family=task.family,
            params=task.params,
            category=task.category,
        )


# ---- filter ------------------------------------------------------------------------------------------
_APP_INVOLVE = re.compile(
    r"\b(?:excel|powerpoint|outlook|e-?mail|teams|onenote|chart from|spreadsheet|send (?:it|this|the))\b",
    re.I,
)
_ENV = re.compile(
    r"\b(?:print(?:er|ing)?|onedrive|sharepoint|cloud|internet|online|download|install|add-?in|"
    r"scan(?:ner)?|save (?:it |this |the document )?(?:to|as|on)|network|usb|desktop)\b",
    re.I,
)
_SUBJECTIVE = re.compile(
    r"\b(?:look(?:s)? (?:better|nicer|good|professional|modern)|more (?:professional|appealing|attractive|"
    r"readable)|beautiful|prettier|nicer|improve the (?:look|design|style)|as you (?:like|see fit))\b",
    re.I,
)


class BuiltinFilter:
    def filter(self, request: str, action_plan: list[PlanStep]) -> FilterVerdict:
        if _APP_INVOLVE.search(request):
            return FilterVerdict(
                judge=False, thought="the task involves another application", request_type="App_involve"
            )
        if _ENV.search(request):
            return FilterVerdict(
                judge=False,
                thought="the task depends on the environment outside the document",
                request_type="Env",
            )
        if _SUBJECTIVE.search(request):
            return FilterVerdict(
                judge=False,
                thought="the request is subjective: no concrete, checkable outcome",
                request_type="Non_task",
            )
        if not action_plan:
            return FilterVerdict(judge=False, thought="no executable step in the plan", request_type="Others")
        return FilterVerdict(judge=True, thought="a concrete task in the document", request_type="None")


# ---- judge -------------------------------------------------------------------------------------------
class BuiltinJudge:
    def judge(self, case: JudgeInput) -> Verdict:
        failed = [a for a in case.actions if "-> error" in a]
        if case.canvas_before == case.canvas_after:
            return Verdict(
                complete="no",
                reason="the document did not change",
                sub_scores={"document_changed": "no"},
                task_quality="good",
            )
        if failed:
            return Verdict(
                complete="no",
                reason=f"{len(failed)} action(s) failed: {failed[0]}",
                sub_scores={"actions_succeeded": "no"},
                task_quality="good",
            )
        return Verdict(
            complete="unsure",
            reason="the document changed and every action succeeded, but without a goal predicate a rule "
            "cannot tell whether the request was met",
            sub_scores={"document_changed": "yes", "actions_succeeded": "yes"},
            task_quality="good",
        )


def builtin_roles(pairs: dict[str, TaskPlanPair] | None = None, max_added_words: int = 20) -> Roles:
    return Roles(
        structure=BuiltinStructurer(),
        evolve=BuiltinEvolver(max_added_words),
        prefill=BuiltinPrefiller(pairs or {}),
        filter=BuiltinFilter(),
        judge=BuiltinJudge(),
    )
