"""The paper's evaluation metrics as pure functions: planning (Table 2), offline (Table 3), online (Table 4).

Nothing here reads files, loads models or logs: stages score their outputs into the records below and hand
the dicts these functions return to MLflow and DVC (`flatten_metrics`). Rates are percentages (0-100)
rounded to 2 decimals, so they compare directly with the paper's tables.

Planning steps are matched by a deterministic rule (`extract_step` + `match_steps`) instead of the paper's
GPT-4o judge, so that step precision and recall are repeatable; task success may still come from an LLM
judge (`llm_plan_judge`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rapidfuzz import fuzz

# ---- planning: parsing a plan ----------------------------------------------------------------------------
# "1.", "2)", "(3)", "4 -", "Step 5:", and bullets "-", "*", "•", "+" at the start of a line. "1." must not
# be followed by a digit, so that a step starting "1.5 cm" keeps its number.
_NUMBERING = re.compile(
    r"^(?:step\s*\d+\s*[:.)-]?|\(\d+\)|\d+[.)](?!\d)|\d+\s*[:-](?=\s)|[-*•+](?=\s))\s*", re.IGNORECASE
)


def parse_plan(text: str) -> list[str]:
    """The steps of a generated plan: one per non-empty line, numbering and bullets stripped, runs of
    whitespace collapsed to one space. Lines that hold only numbering are dropped."""
    steps = []
    for line in text.splitlines():
        step = " ".join(line.split())
        # Twice at most: "- 1. Click Bold" carries a bullet and a number.
        for _ in range(2):
            step = _NUMBERING.sub("", step, count=1)
        if step:
            steps.append(step)
    return steps


# ---- planning: what a step does to what ------------------------------------------------------------------
@dataclass(frozen=True)
class StepKey:
    """A plan step reduced to what it does (a verb class) and what it acts on (lowercased words)."""

    action: str
    element: str


# First word of a step -> verb class. "use" is listed only so that "Use Ctrl+B" is read as a shortcut and
# "Use the Format Painter" keeps "use" out of its element.
_VERBS = {
    **dict.fromkeys(("click", "double-click", "right-click", "tap", "press", "hit", "push"), "click"),
    **dict.fromkeys(("select", "highlight", "mark"), "select"),
    **dict.fromkeys(
        ("choose", "pick", "set", "apply", "change", "toggle", "check", "uncheck", "enable", "disable"),
        "choose",
    ),
    **dict.fromkeys(("type", "enter", "write", "input", "fill"), "type"),
    **dict.fromkeys(("go", "open", "navigate", "switch", "head", "access", "expand"), "open"),
    **dict.fromkeys(("delete", "remove", "erase", "clear"), "delete"),
    **dict.fromkeys(("insert", "add", "create"), "insert"),
    "use": "other",
}
_KEY_VERBS = frozenset({"press", "hit", "use"})
_LEADING_FILLERS = frozenset({"then", "next", "first", "finally", "now", "please", "and", "also", "lastly"})
_CONJUNCTIONS = frozenset({"and", "then"})
_STOP_WORDS = frozenset(
    {
        "a", "an", "the", "on", "onto", "to", "into", "in", "at", "of", "for", "with", "from", "your", "its",
        "button", "buttons", "tab", "menu", "group", "option", "icon", "then", "and", "please",
    }
)  # fmt: skip
_LOCATION_PREPOSITIONS = frozenset({"in", "under", "within", "from", "inside"})
_CONTAINERS = frozenset(
    {
        "group", "tab", "menu", "ribbon", "dialog", "box", "pane", "panel", "list", "toolbar", "window",
        "section", "dropdown", "drop-down", "gallery", "bar",
    }
)  # fmt: skip
_NAMED_KEYS = frozenset(
    {
        "enter", "return", "tab", "esc", "escape", "delete", "del", "backspace", "space", "spacebar", "home",
        "end", "pageup", "pagedown", "up", "down", "left", "right", "insert",
    }
    | {f"f{n}" for n in range(1, 13)}
)  # fmt: skip
_MODIFIER = r"(?:ctrl|control|alt|shift|cmd|command|win|windows)"
_KEY_COMBO = re.compile(rf"\b{_MODIFIER}\s*\+\s*(?:{_MODIFIER}\s*\+\s*)*[^\s+]+")
_EDGE_PUNCTUATION = ".,;:!?()[]{}<>\"'“”‘’*`→|"

# A quoted string is one token; commas and semicolons followed by a space are tokens of their own.
_TOKEN = re.compile(
    r"\*\*(?P<bold>.+?)\*\*"
    r"|“(?P<dcurly>[^”]+)”"
    r"|‘(?P<scurly>[^’]+)’"
    r'|"(?P<double>[^"]+)"'
    r"|(?<!\w)'(?P<single>[^']+)'(?!\w)"
    r"|`(?P<tick>[^`]+)`"
    r"|(?P<sep>[,;](?=\s|$))"
    r"|(?P<word>\S+?)(?=[,;]?(?:\s|$))"
)


@dataclass(frozen=True)
class _Token:
    text: str  # lowercased; quoted text keeps its inner punctuation
    kind: str  # "word", "quoted" or "sep"


def _tokenize(step: str) -> list[_Token]:
    tokens = []
    for m in _TOKEN.finditer(step):
        if m.group("sep"):
            tokens.append(_Token(m.group("sep"), "sep"))
        elif m.group("word") is not None:
            word = m.group("word").lower().strip(_EDGE_PUNCTUATION)
            if word:  # ">" in "Layout > Orientation" is no word
                tokens.append(_Token(word, "word"))
        else:
            quoted = " ".join(next(g for g in m.groups() if g is not None).lower().split())
            if quoted:
                tokens.append(_Token(quoted, "quoted"))
    return tokens


def _verb(tokens: list[_Token], i: int) -> str | None:
    if i < len(tokens) and tokens[i].kind == "word" and tokens[i].text in _VERBS:
        return tokens[i].text
    return None


def _clause_end(tokens: list[_Token], start: int) -> int:
    """Where the clause starting at `start` ends: at a comma, semicolon, "and" or "then" after which the
    next word (past further "and" / "then") is a verb."""
    for k in range(start, len(tokens)):
        if tokens[k].kind == "sep" or (tokens[k].kind == "word" and tokens[k].text in _CONJUNCTIONS):
            nxt = k + 1
            while nxt < len(tokens) and tokens[nxt].kind == "word" and tokens[nxt].text in _CONJUNCTIONS:
                nxt += 1
            if _verb(tokens, nxt):
                return k
    return len(tokens)


def _key_element(verb: str | None, rest: list[_Token]) -> str | None:
    """The key or key combination a press/hit/use step (or a verbless one) names, else None."""
    if verb is not None and verb not in _KEY_VERBS:
        return None
    combo = _KEY_COMBO.search(" ".join(t.text for t in rest if t.kind != "sep"))
    if combo:
        key = re.sub(r"\s+", "", combo.group(0)).strip(_EDGE_PUNCTUATION)
        return re.sub(r"\bcontrol\b", "ctrl", re.sub(r"\bcommand\b", "cmd", key))
    words = [t.text for t in rest if t.kind != "sep" and t.text not in ("the", "key", "keys")]
    if verb in ("press", "hit") and len(words) == 1 and words[0] in _NAMED_KEYS:
        return words[0]
    return None


def _words_element(rest: list[_Token]) -> str:
    words = [t.text for t in rest if t.kind == "word"]
    # "Bold in the Font group", "Landscape from the list": the location after the element is no element.
    for p in range(1, len(words)):
        if words[p] in _LOCATION_PREPOSITIONS and any(w in _CONTAINERS for w in words[p + 1 :]):
            words = words[:p]
            break
    return " ".join(w for w in words if w not in _STOP_WORDS)


def extract_step(step: str) -> StepKey:
    """What a plan step does and to what, by these rules, in order:

    1. Tokens: quoted strings ('x', "x", curly quotes, `x`, **x**) are one token each; other words are
       lowercased with surrounding punctuation removed; ", " and "; " are separators.
    2. Leading fillers ("then", "next", "first", "finally", "now", "please", "and", "also") are skipped.
    3. The verb is the first word when it is in the verb table; else the first verb right after a
       separator ("In the Font group, click Bold"); else there is none and the action is "other".
       Verb table: click/double-click/right-click/tap/press/hit/push -> click; select/highlight/mark ->
       select; choose/pick/set/apply/change/toggle/check/uncheck/enable/disable -> choose;
       type/enter/write/input/fill -> type; go/open/navigate/switch/head/access/expand -> open;
       delete/remove/erase/clear -> delete; insert/add/create -> insert; use -> other.
    4. Only the verb's clause counts: it ends at a separator, "and" or "then" followed by another verb
       ("Open the Insert tab and click Table" is "open" + "insert").
    5. Keys: when the verb is press/hit/use (or there is none) and the clause names a key combination
       (Ctrl/Control/Alt/Shift/Cmd/Win + key), the action is "key" and the element the combination without
       spaces ("ctrl+b"); "press"/"hit" followed by one named key (Enter, Tab, Esc, Delete, F1-F12, ...,
       optionally "the ... key") is also "key" with that key.
    6. Element: the clause's quoted strings after the verb, joined by a space, when there are any; else its
       words after the verb, cut before a location phrase (in/under/within/from/inside followed later by
       group/tab/menu/ribbon/dialog/box/pane/list/...), without stop words (the, a, on, to, in, of, for,
       with, from, button, tab, menu, group, option, icon, ...). May be empty.
    """
    tokens = _tokenize(step)
    i = 0
    while i < len(tokens) and tokens[i].kind == "word" and tokens[i].text in _LEADING_FILLERS:
        i += 1
    verb = _verb(tokens, i)
    if verb is None:
        after_sep = next(
            (k + 1 for k in range(i, len(tokens)) if tokens[k].kind == "sep" and _verb(tokens, k + 1)), None
        )
        if after_sep is not None:
            i, verb = after_sep, _verb(tokens, after_sep)
    start = i + 1 if verb else i
    rest = tokens[start : _clause_end(tokens, start)]
    key = _key_element(verb, rest)
    if key:
        return StepKey("key", key)
    action = _VERBS[verb] if verb else "other"
    quoted = [t.text for t in rest if t.kind == "quoted"]
    return StepKey(action, " ".join(quoted) if quoted else _words_element(rest))


# ---- planning: matching steps ----------------------------------------------------------------------------
# A button click and a choice from a gallery or list are the same act in Word's ribbon ("Click Yellow" /
# "Choose Yellow"), so plans that differ only in that verb still match.
_COMPATIBLE_ACTIONS = frozenset({frozenset({"click", "choose"})})


def _compatible(a: str, b: str) -> bool:
    return a == b or frozenset({a, b}) in _COMPATIBLE_ACTIONS


def match_steps(predicted: list[str], reference: list[str], threshold: float = 80.0) -> list[tuple[int, int]]:
    """A one-to-one matching of predicted to reference step indices, sorted by predicted index, of the
    largest size possible.

    A pair may match when their `extract_step` actions are equal or compatible (click ~ choose) and
    `rapidfuzz.fuzz.token_set_ratio` of their elements is >= threshold; an empty element matches nothing.
    The maximum matching comes from augmenting paths (Kuhn's algorithm); each predicted step, in order,
    tries its candidates by descending similarity, then reference order, so ties resolve the same way
    every time. Order does not matter: a reordered plan matches fully; a repeated step matches once.
    """
    if not 0.0 <= threshold <= 100.0:
        raise ValueError(f"match_steps: threshold is a similarity in [0, 100], got {threshold}")
    pred_keys = [extract_step(s) for s in predicted]
    ref_keys = [extract_step(s) for s in reference]
    candidates: list[list[int]] = []
    for p in pred_keys:
        scored = []
        for r_index, r in enumerate(ref_keys):
            if p.element and r.element and _compatible(p.action, r.action):
                score = fuzz.token_set_ratio(p.element, r.element)
                if score >= threshold:
                    scored.append((-score, r_index))
        candidates.append([r_index for _, r_index in sorted(scored)])

    owner = [-1] * len(reference)  # reference index -> predicted index matched to it

    def augment(p: int, seen: set[int]) -> bool:
        for r in candidates[p]:
            if r not in seen:
                seen.add(r)
                if owner[r] == -1 or augment(owner[r], seen):
                    owner[r] = p
                    return True
        return False

    for p in range(len(predicted)):
        augment(p, set())
    return sorted((p, r) for r, p in enumerate(owner) if p != -1)


# ---- planning: scores ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanScore:
    """One task's plan: how many steps were predicted, in the reference and matched, and whether it
    succeeded."""

    task_id: str
    predicted: int
    reference: int
    matched: int
    success: bool

    def __post_init__(self) -> None:
        if not 0 <= self.matched <= min(self.predicted, self.reference):
            raise ValueError(
                f"PlanScore {self.task_id!r}: matched={self.matched} must lie in [0, min(predicted="
                f"{self.predicted}, reference={self.reference})]"
            )


def score_plan(
    task_id: str,
    predicted_steps: list[str],
    reference_steps: list[str],
    threshold: float = 80.0,
    judged_success: bool | None = None,
) -> PlanScore:
    """Score one plan. Success is `judged_success` when an LLM judge decided, else "every reference step is
    matched" (never for an empty reference)."""
    matched = len(match_steps(predicted_steps, reference_steps, threshold))
    if judged_success is None:
        success = bool(reference_steps) and matched == len(reference_steps)
    else:
        success = judged_success
    return PlanScore(task_id, len(predicted_steps), len(reference_steps), matched, success)


def _pct(part: int | float, whole: int | float) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _require(scores: Sequence[Any], what: str) -> None:
    if not scores:
        raise ValueError(f"{what}: nothing to score, the sequence of scores is empty")


def planning_metrics(scores: Sequence[PlanScore]) -> dict[str, float | int]:
    """Table 2: TSR (% of tasks), step precision (matched / predicted steps) and step recall (matched /
    reference steps), both micro-averaged over all tasks' steps, 0 when the denominator is 0."""
    _require(scores, "planning_metrics")
    matched = sum(s.matched for s in scores)
    return {
        "tsr": _pct(sum(s.success for s in scores), len(scores)),
        "step_precision": _pct(matched, sum(s.predicted for s in scores)),
        "step_recall": _pct(matched, sum(s.reference for s in scores)),
        "tasks": len(scores),
    }


# ---- planning: the LLM judge of task success -------------------------------------------------------------
class JSONCompleter(Protocol):
    """What `llm_plan_judge` needs of a client: `lamops.roles.openai_compat.OpenAIClient` is one."""

    def complete_json(self, system: str, user: str, *, role: str = "llm") -> dict[str, Any]: ...


PLAN_JUDGE_SYSTEM = """\
You judge plans for tasks in Microsoft Word (the planning evaluation of the Large Action Models paper). \
You get a user request and a step-by-step plan. Decide whether carrying out the plan's steps in order in \
Microsoft Word would accomplish the request completely. A missing, wrong or harmful step means "no"; \
extra harmless steps do not.
Reply with one JSON object only:
{"reason": "<one or two sentences>", "complete": "yes"}
where complete is "yes" or "no"."""

PLAN_JUDGE_USER = """\
Request: {task}

Plan:
{plan}"""


def llm_plan_judge(client: JSONCompleter, task: str, plan: list[str]) -> bool:
    """Whether an LLM judge says the plan accomplishes the task in Word (the paper's TSR for planning).

    Only "yes" counts. An empty plan accomplishes nothing and is "no" without a call. A reply whose
    `complete` is not "yes" or "no" raises ValueError naming the reply.
    """
    if not plan:
        return False
    numbered = "\n".join(f"{n}. {step}" for n, step in enumerate(plan, 1))
    reply = client.complete_json(
        PLAN_JUDGE_SYSTEM, PLAN_JUDGE_USER.format(task=task, plan=numbered), role="plan_judge"
    )
    complete = reply.get("complete") if isinstance(reply, Mapping) else None
    verdict = complete.strip().lower() if isinstance(complete, str) else None
    if verdict not in ("yes", "no"):
        shown = json.dumps(reply, ensure_ascii=False, default=str)
        shown = shown if len(shown) <= 300 else shown[:300] + "..."
        raise ValueError(f'plan judge: the reply has no "complete" of "yes" or "no"; it was {shown}')
    return verdict == "yes"


# ---- offline decision making -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StepScore:
    """One teacher-forced step: which parts of the predicted action were right. Args are reported apart
    (args_acc) and are not part of step success, as in the paper's SSR."""

    task_id: str
    family: str | None
    step: int
    object_ok: bool
    operation_ok: bool
    status_ok: bool
    args_ok: bool

    @property
    def success(self) -> bool:
        return self.object_ok and self.operation_ok and self.status_ok


def _norm_text(value: Any) -> str:
    return "" if value is None else str(value).strip().casefold()


def _norm_field(action: Mapping[str, Any], key: str) -> str:
    value = action.get(key)
    return "" if value is None else str(value).strip()


# Integer and decimal literals without leading zeros ("007" typed into a box is text, not 7).
_NUMBER_LITERAL = re.compile(r"[+-]?(?:0|[1-9]\d*)(?:\.\d+)?")


@dataclass(frozen=True)
class _Flag:
    value: bool


def _norm_value(value: Any) -> Any:
    """Args for comparison: keys stripped and casefolded, string values stripped (case kept), numbers and
    numeric strings as numbers with integral floats as ints (1 == 1.0 == "1"), bools left as bools."""
    if value is None:
        return value
    if isinstance(value, bool):
        return _Flag(value)  # True == 1 in Python; a flag is no number here
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) and float(value).is_integer() else value
    if isinstance(value, str):
        text = value.strip()
        return _norm_value(float(text)) if _NUMBER_LITERAL.fullmatch(text) else text
    if isinstance(value, Mapping):
        return {str(k).strip().casefold(): _norm_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm_value(v) for v in value]
    return value


def _same_control(predicted: Mapping[str, Any], reference: Mapping[str, Any]) -> bool:
    """Names decide (strip + casefold); when both names are empty, labels decide if both have one, else
    both actions are control-less and agree."""
    p_name, r_name = _norm_text(predicted.get("control_name")), _norm_text(reference.get("control_name"))
    if p_name or r_name:
        return p_name == r_name
    p_label, r_label = _norm_text(predicted.get("control_label")), _norm_text(reference.get("control_label"))
    return p_label == r_label if p_label and r_label else True


def score_step(
    task_id: str,
    family: str | None,
    step: int,
    predicted: Mapping[str, Any] | None,
    reference: Mapping[str, Any],
) -> StepScore:
    """Compare one predicted action dict with the reference one (see `_same_control` for the object rule).
    `predicted` None means the model's output did not parse: every part is wrong."""
    if predicted is None:
        return StepScore(task_id, family, step, False, False, False, False)
    return StepScore(
        task_id,
        family,
        step,
        object_ok=_same_control(predicted, reference),
        operation_ok=_norm_field(predicted, "function") == _norm_field(reference, "function"),
        status_ok=_norm_field(predicted, "status").upper() == _norm_field(reference, "status").upper(),
        args_ok=_norm_value(predicted.get("args") or {}) == _norm_value(reference.get("args") or {}),
    )


def offline_metrics(scores: Sequence[StepScore]) -> dict[str, float | int]:
    """Table 3: object, operation, status and args accuracy and SSR as % of steps; TSR as % of tasks (by
    task_id) whose every step succeeded."""
    _require(scores, "offline_metrics")
    tasks: dict[str, bool] = {}
    for s in scores:
        tasks[s.task_id] = tasks.get(s.task_id, True) and s.success
    n = len(scores)
    return {
        "object_acc": _pct(sum(s.object_ok for s in scores), n),
        "operation_acc": _pct(sum(s.operation_ok for s in scores), n),
        "status_acc": _pct(sum(s.status_ok for s in scores), n),
        "args_acc": _pct(sum(s.args_ok for s in scores), n),
        "ssr": _pct(sum(s.success for s in scores), n),
        "tsr": _pct(sum(tasks.values()), len(tasks)),
        "steps": n,
        "tasks": len(tasks),
    }


UNKNOWN_FAMILY = "unknown"  # the by_family key of records without a family


def by_family(scores: Sequence[StepScore]) -> dict[str, dict[str, float | int]]:
    """`offline_metrics` per task family, families sorted; records without a family go under "unknown"."""
    groups: dict[str, list[StepScore]] = {}
    for s in scores:
        groups.setdefault(s.family or UNKNOWN_FAMILY, []).append(s)
    return {family: offline_metrics(groups[family]) for family in sorted(groups)}


# ---- online ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeScore:
    """One live episode: the evaluator's verdict, wall-clock seconds, steps taken and each step's latency."""

    task_id: str
    family: str | None
    success: bool
    seconds: float
    steps: int
    step_latencies: tuple[float, ...] = ()


def _nearest_rank(sorted_values: list[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value with at least `percent`% of values at or below it."""
    rank = max(1, -(-percent * len(sorted_values) // 100))  # ceil in integers: no float rounding at edges
    return sorted_values[rank - 1]


def online_metrics(episodes: Sequence[EpisodeScore]) -> dict[str, float | int]:
    """Table 4: TSR (% of episodes), mean completion time and steps per episode, and step latency (mean,
    p50, p95 nearest-rank) over all steps of all episodes (0.0 when no step was timed). Seconds are rounded
    to 4 decimals, steps to 2."""
    _require(episodes, "online_metrics")
    n = len(episodes)
    latencies = sorted(lat for e in episodes for lat in e.step_latencies)
    return {
        "tsr": _pct(sum(e.success for e in episodes), n),
        "completion_time_s": round(sum(e.seconds for e in episodes) / n, 4),
        "steps": round(sum(e.steps for e in episodes) / n, 2),
        "step_latency_s": round(sum(latencies) / len(latencies), 4) if latencies else 0.0,
        "step_latency_p50_s": round(_nearest_rank(latencies, 50), 4) if latencies else 0.0,
        "step_latency_p95_s": round(_nearest_rank(latencies, 95), 4) if latencies else 0.0,
        "episodes": n,
    }


def online_by_family(episodes: Sequence[EpisodeScore]) -> dict[str, dict[str, float | int]]:
    """TSR and episode count per task family, families sorted; no family goes under "unknown"."""
    groups: dict[str, list[EpisodeScore]] = {}
    for e in episodes:
        groups.setdefault(e.family or UNKNOWN_FAMILY, []).append(e)
    return {
        family: {"tsr": _pct(sum(e.success for e in group), len(group)), "episodes": len(group)}
        for family, group in sorted(groups.items())
    }


# ---- flattening for DVC and MLflow -----------------------------------------------------------------------
def flatten_metrics(nested: Mapping[str, Any], prefix: str = "") -> dict[str, float | int]:
    """Nested metric dicts as one level with dotted keys ({"offline": {"tsr": 1}} -> {"offline.tsr": 1}),
    the form MLflow's log_metrics and DVC's metrics files take. Values that are not numbers (bools, strings,
    None, lists) are left out."""
    flat: dict[str, float | int] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = value
    return flat
