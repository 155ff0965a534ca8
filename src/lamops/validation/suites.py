"""The suites: for each data boundary, the columns it expects, how records flatten into them, and its rules.

A boundary validates one frame. Some rules are about the items inside a list column (the functions of an
action plan, the steps of a trajectory); for those the boundary derives a second frame, a *view* with one row
per item, so that a failure shows the offending item itself. Derived columns that GX cannot compute (lengths
of lists, whether a completion parses as JSON) are added by the view builders, never expected from callers.

Expectations are declared as data (`Expect`: a GX class name and its arguments) so that this module imports
without Great Expectations, which takes ~6 s; `lamops.validation.runner` turns them into GX objects."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import pandas as pd
from pydantic import BaseModel

from lamops.env.actions import FUNCTIONS
from lamops.records import (
    ID_PATTERN,
    PairSource,
    PlanSFTRow,
    RewardRow,
    StepSFTRow,
    TrajectoryStep,
    YesNoUnsure,
)

MAX_PLAN_STEPS = 30
# A sanity bound only: the episode limit is params.yaml `env.max_steps` (30 by default).
MAX_TRAJECTORY_STEPS = 100
TASK_CHARS = (5, 300)
ALLOWED_FUNCTIONS: tuple[str, ...] = tuple(FUNCTIONS)
STEP_STATUSES: tuple[str, ...] = get_args(TrajectoryStep.model_fields["status"].annotation)
PAIR_SOURCES: tuple[str, ...] = get_args(PairSource)
VERDICTS: tuple[str, ...] = get_args(YesNoUnsure)
SPLITS = ("train", "test")
LABELS = (-1, 1)
# In Python regexes `$` also matches before a trailing newline ("id\n" would pass); `\Z` does not.
STRICT_ID_PATTERN = ID_PATTERN.removesuffix("$") + r"\Z"
NOT_BLANK = r"\S"


@dataclass(frozen=True)
class Expect:
    """One expectation as data: the GX class name (great_expectations.expectations.<kind>) and arguments.

    `where` = (column, value) restricts it to the rows where column == value (a GX row condition)."""

    kind: str
    description: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    where: tuple[str, Any] | None = None


def expect(kind: str, description: str, where: tuple[str, Any] | None = None, **kwargs: Any) -> Expect:
    return Expect(kind, description, kwargs, where)


@dataclass(frozen=True)
class View:
    """A frame a suite runs on: built from the boundary's frame (index 0..n-1), with its expectations."""

    name: str
    build: Callable[[pd.DataFrame], pd.DataFrame]
    expectations: tuple[Expect, ...]


@dataclass(frozen=True)
class Boundary:
    name: str
    columns: tuple[str, ...]  # the columns a frame must have; frames may carry more
    row: Callable[[dict[str, Any]], dict[str, Any]]  # one record (as a dict) -> one frame row
    views: tuple[View, ...]  # the first is the frame itself (plus derived columns)
    forbidden_where: tuple[str, Any] | None = None  # (column, value): rows the test-id gate applies to


# ---- expectation building blocks ---------------------------------------------------------------------
def _not_null(column: str, what: str) -> Expect:
    return expect("ExpectColumnValuesToNotBeNull", what, column=column)


def _non_empty(column: str, what: str) -> tuple[Expect, ...]:
    return (
        _not_null(column, f"every row has a {what}"),
        expect(
            "ExpectColumnValuesToMatchRegex", f"{what} is not empty or blank", column=column, regex=NOT_BLANK
        ),
    )


def _between(column: str, low: int, high: int, what: str) -> Expect:
    return expect("ExpectColumnValuesToBeBetween", what, column=column, min_value=low, max_value=high)


def _in_set(column: str, values: Iterable[Any], what: str, **kwargs: Any) -> Expect:
    return expect("ExpectColumnValuesToBeInSet", what, column=column, value_set=list(values), **kwargs)


def _pair_equal(a: str, b: str, what: str) -> Expect:
    return expect("ExpectColumnPairValuesToBeEqual", what, column_A=a, column_B=b)


def _ids(unique: bool) -> tuple[Expect, ...]:
    rules = [
        _not_null("task_id", "every row has a task id"),
        expect(
            "ExpectColumnValuesToMatchRegex",
            "task ids are file-name safe (records.ID_PATTERN: no '/', spaces or leading dot)",
            column="task_id",
            regex=STRICT_ID_PATTERN,
        ),
    ]
    if unique:
        rules.append(expect("ExpectColumnValuesToBeUnique", "task ids are unique", column="task_id"))
    return tuple(rules)


def _table(columns: tuple[str, ...]) -> tuple[Expect, ...]:
    """Every boundary's first rules: the columns are there (checked alone when not) and there are rows."""
    return (
        expect(
            "ExpectTableColumnsToMatchSet",
            "the frame has the boundary's columns",
            column_set=list(columns),
            exact_match=False,
        ),
        expect("ExpectTableRowCountToBeBetween", "the data set is not empty", min_value=1),
    )


def forbidden_ids_expectation(where: tuple[str, Any] | None) -> Expect:
    """The "no test ids in train" gate; its value set is the run-time parameter `forbidden_ids`."""
    return expect(
        "ExpectColumnValuesToNotBeInSet",
        "no frozen test task id appears" + (f" where {where[0]} == {where[1]!r}" if where else ""),
        where=where,
        column="task_id",
        value_set={"$PARAMETER": "forbidden_ids"},
    )


# ---- view builders -------------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    """A list cell as a list, whatever the reader made of it (list, tuple, numpy array from Parquet, None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str | bytes | dict):
        return [value]
    return list(value)


def _with(df: pd.DataFrame, **columns: Callable[[pd.DataFrame], Any]) -> pd.DataFrame:
    out = df.reset_index(drop=True)
    return out.assign(**{name: fn(out) for name, fn in columns.items()})


def _counting(**lengths: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A builder adding, for each `name=column`, the length of the lists in `column`."""
    return lambda df: _with(df, **{name: _lengths(column) for name, column in lengths.items()})


def _lengths(column: str) -> Callable[[pd.DataFrame], list[int]]:
    return lambda df: [len(as_list(v)) for v in df[column]]


def _exploding(keys: tuple[str, ...], **lists: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: _explode(df, keys, lists)


def _as_is(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)


def _explode(df: pd.DataFrame, keys: tuple[str, ...], lists: Mapping[str, str]) -> pd.DataFrame:
    """One row per list item: `keys` copied, `step` numbered from 1, each `lists` column (out -> in) spread.

    Lists of unequal length are padded with None, so the item rules catch the mismatch as well."""
    rows = []
    for record in df.reset_index(drop=True).to_dict("records"):
        items = {out: as_list(record[src]) for out, src in lists.items()}
        n = max((len(v) for v in items.values()), default=0)
        for k in range(n):
            row = {key: record[key] for key in keys} | {"step": k + 1, "is_last": k == n - 1}
            rows.append(row | {out: (v[k] if k < len(v) else None) for out, v in items.items()})
    return pd.DataFrame(rows, columns=[*keys, "step", "is_last", *lists])


def _completion_fields(df: pd.DataFrame) -> pd.DataFrame:
    """Parse each completion once: why it is not an action JSON object (None if it is), function, status."""
    errors, functions, statuses = [], [], []
    for text in df["completion"]:
        try:
            action = json.loads(text)
            error = None if isinstance(action, dict) else f"JSON {type(action).__name__}, not an object"
        except (TypeError, ValueError) as exc:
            action, error = None, f"not JSON: {exc}"
        action = action if isinstance(action, dict) else {}
        errors.append(error)
        functions.append(action.get("function"))
        statuses.append(action.get("status"))
    out = df.reset_index(drop=True)
    return out.assign(completion_error=errors, completion_function=functions, completion_status=statuses)


# ---- record -> row ------------------------------------------------------------------------------------
def _task_plan_row(r: dict[str, Any]) -> dict[str, Any]:
    plan = as_list(r.get("plan"))
    return {
        "task_id": r.get("task_id"),
        "task": r.get("task"),
        "plan": plan,
        "n_steps": len(plan),
        "source": r.get("source"),
        "origin": r.get("origin"),
    }


def _instantiated_row(r: dict[str, Any]) -> dict[str, Any]:
    steps = as_list(r.get("action_plan"))
    return {
        "task_id": r.get("task_id"),
        "template": r.get("template"),
        "request": r.get("request"),
        "n_steps": len(steps),
        "functions": [s.get("function") for s in steps],
        "family": r.get("family"),
        "source_id": r.get("source_id"),
    }


def _trajectory_row(r: dict[str, Any]) -> dict[str, Any]:
    steps = as_list(r.get("steps"))
    task, verdict = r.get("task") or {}, r.get("verdict") or {}
    return {
        "task_id": task.get("task_id"),
        "agent": r.get("agent"),
        "n_steps": len(steps),
        "last_status": steps[-1].get("status") if steps else None,
        "complete": verdict.get("complete"),
        "functions": [s.get("function") for s in steps],
        "statuses": [s.get("status") for s in steps],
        "error": r.get("error"),
    }


def _same_row(r: dict[str, Any]) -> dict[str, Any]:
    return dict(r)


# ---- the boundaries -------------------------------------------------------------------------------------
_FUNCTION_RULES = (
    _not_null("function", "every step names a function"),
    _in_set("function", ALLOWED_FUNCTIONS, "every function is in the action space (lamops.env.actions)"),
)

_TASK_PLANS = ("task_id", "task", "plan", "n_steps", "source")
TASK_PLANS = Boundary(
    name="task_plans",
    columns=_TASK_PLANS,
    row=_task_plan_row,
    views=(
        View(
            "task_plans",
            _counting(n_plan="plan"),
            (
                *_table(_TASK_PLANS),
                *_ids(unique=True),
                *_non_empty("task", "task"),
                expect(
                    "ExpectColumnValueLengthsToBeBetween",
                    f"a task has {TASK_CHARS[0]} to {TASK_CHARS[1]} characters",
                    column="task",
                    min_value=TASK_CHARS[0],
                    max_value=TASK_CHARS[1],
                ),
                _not_null("n_steps", "every pair has a step count"),
                _between("n_steps", 1, MAX_PLAN_STEPS, f"a plan has 1 to {MAX_PLAN_STEPS} steps"),
                _pair_equal("n_steps", "n_plan", "n_steps is the length of the plan"),
                _not_null("source", "every pair has a source"),
                _in_set("source", PAIR_SOURCES, "source is a known kind (records.PairSource)"),
            ),
        ),
        View("task_plans.steps", _exploding(("task_id",), text="plan"), _non_empty("text", "plan step text")),
    ),
)

_INSTANTIATED = ("task_id", "template", "request", "n_steps", "functions", "family")
INSTANTIATED = Boundary(
    name="instantiated",
    columns=_INSTANTIATED,
    row=_instantiated_row,
    views=(
        View(
            "instantiated",
            _counting(n_functions="functions"),
            (
                *_table(_INSTANTIATED),
                *_ids(unique=True),
                *_non_empty("template", "template"),
                *_non_empty("request", "request"),
                _not_null("n_steps", "every task has a step count"),
                _between("n_steps", 1, MAX_PLAN_STEPS, f"an action plan has 1 to {MAX_PLAN_STEPS} steps"),
                _pair_equal("n_steps", "n_functions", "n_steps is the length of the action plan"),
            ),
        ),
        View("instantiated.steps", _exploding(("task_id",), function="functions"), _FUNCTION_RULES),
    ),
)

_TRAJECTORIES = ("task_id", "agent", "n_steps", "last_status", "complete", "functions", "statuses")
TRAJECTORIES = Boundary(
    name="trajectories",
    columns=_TRAJECTORIES,
    row=_trajectory_row,
    views=(
        View(
            "trajectories",
            _counting(n_functions="functions", n_statuses="statuses"),
            (
                *_table(_TRAJECTORIES),
                *_ids(unique=False),
                *_non_empty("agent", "agent"),
                expect(
                    "ExpectCompoundColumnsToBeUnique",
                    "one trajectory per task and agent",
                    column_list=["task_id", "agent"],
                ),
                _not_null("n_steps", "every trajectory has a step count"),
                _between(
                    "n_steps", 0, MAX_TRAJECTORY_STEPS, f"a trajectory has 0 to {MAX_TRAJECTORY_STEPS} steps"
                ),
                _pair_equal("n_steps", "n_functions", "n_steps is the number of functions"),
                _pair_equal("n_steps", "n_statuses", "n_steps is the number of statuses"),
                _in_set("last_status", STEP_STATUSES, "the last step's status is CONTINUE or FINISH"),
                _in_set("complete", VERDICTS, "a judged trajectory is complete yes, no or unsure"),
            ),
        ),
        View(
            "trajectories.steps",
            _exploding(("task_id", "agent"), function="functions", status="statuses"),
            (
                *_FUNCTION_RULES,
                _not_null("status", "every step has a status"),
                _in_set("status", STEP_STATUSES, "a step's status is CONTINUE or FINISH"),
                _in_set(
                    "status",
                    ["CONTINUE"],
                    "only the last step may FINISH",
                    where=("is_last", False),
                ),
            ),
        ),
    ),
)

_SFT = (*StepSFTRow.model_fields, "split")  # the rows of lamops.records, and their split
SFT = Boundary(
    name="sft",
    columns=_SFT,
    row=_same_row,
    views=(
        View(
            "sft",
            _completion_fields,
            (
                *_table(_SFT),
                *_non_empty("prompt", "prompt"),
                *_non_empty("completion", "completion"),
                expect(
                    "ExpectColumnValuesToBeNull",
                    "the completion parses as a JSON action object",
                    column="completion_error",
                ),
                _in_set("completion_function", ALLOWED_FUNCTIONS, "the completion's function is allowed"),
                _in_set("completion_status", STEP_STATUSES, "the completion's status is CONTINUE or FINISH"),
                *_ids(unique=False),
                _not_null("split", "every sample has a split"),
                _in_set("split", SPLITS, "split is train or test"),
            ),
        ),
    ),
    # Test rows of the frozen test tasks are legitimate; the gate is on what the model trains on.
    forbidden_where=("split", "train"),
)

_REWARD = tuple(RewardRow.model_fields)
REWARD = Boundary(
    name="reward",
    columns=_REWARD,
    row=_same_row,
    views=(
        View(
            "reward",
            _as_is,
            (
                *_table(_REWARD),
                *_non_empty("prompt", "prompt"),
                # No JSON rule: unparseable actions of failed trajectories are legitimate -1 samples.
                *_non_empty("completion", "completion"),
                *_ids(unique=False),
                _not_null("label", "every sample has a label"),
                _in_set("label", LABELS, "a label is -1 (a bad action) or +1 (a good one)"),
                expect(
                    "ExpectColumnDistinctValuesToContainSet",
                    "both labels occur: a reward model needs successes and failures",
                    column="label",
                    value_set=list(LABELS),
                ),
            ),
        ),
    ),
)

_PLAN_SFT = tuple(PlanSFTRow.model_fields)
PLAN_SFT = Boundary(
    name="plan_sft",
    columns=_PLAN_SFT,
    row=_same_row,
    views=(
        View(
            "plan_sft",
            _as_is,
            (
                *_table(_PLAN_SFT),
                *_non_empty("prompt", "prompt"),
                *_non_empty("completion", "completion"),
                *_ids(unique=False),
            ),
        ),
    ),
)

BOUNDARIES: dict[str, Boundary] = {
    b.name: b for b in (TASK_PLANS, INSTANTIATED, TRAJECTORIES, SFT, REWARD, PLAN_SFT)
}


def boundary(name: str) -> Boundary:
    try:
        return BOUNDARIES[name]
    except KeyError:
        raise ValueError(f"unknown boundary {name!r}; known: {', '.join(BOUNDARIES)}") from None


def frame(name: str, records: Iterable[BaseModel | Mapping[str, Any]]) -> pd.DataFrame:
    """Flatten records (pydantic models or dicts) into the frame boundary `name` validates.

    task_plans takes TaskPlanPair, instantiated InstantiatedTask, trajectories Trajectory; the data set
    boundaries (sft, reward, plan_sft) take their rows (lamops.records) or flat dicts of them. The
    boundary's columns come first; a column the records lack is added empty, so its not-null rule reports
    them."""
    spec = boundary(name)
    rows = [spec.row(r.model_dump(mode="json") if isinstance(r, BaseModel) else dict(r)) for r in records]
    df = pd.DataFrame(rows)
    for column in spec.columns:
        if column not in df.columns:
            df[column] = pd.Series(dtype=object)
    return df[[*spec.columns, *(c for c in df.columns if c not in spec.columns)]]
