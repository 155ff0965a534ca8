"""The interfaces of the LLM roles (structure, evolve, prefill, filter, judge) and the `Roles` bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lamops.records import FilterVerdict, PlanStep, RawEntry, TaskPlanPair, Verdict


@dataclass
class Drafted:
    """A task-plan pair as a role writes it, before the stage gives it an id and lineage."""

    task: str
    plan: list[str]


@dataclass
class Prefilled:
    """A concrete request on a template with its action plan. Built-in tasks also name the family whose goal
    predicate verifies them and its parameters; an LLM's prefill leaves them empty (the LLM judge decides)."""

    request: str
    action_plan: list[PlanStep]
    family: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    category: str | None = None


@dataclass
class JudgeInput:
    """What the paper's judge reads: the request, the canvas diff, the control state before and after."""

    request: str
    canvas_before: str
    canvas_after: str
    canvas_diff: str
    controls_before: str
    controls_after: str
    actions: list[str]


class Structurer(Protocol):
    def structure(self, entry: RawEntry) -> list[Drafted]:
        """Task-plan pairs found in one raw entry (a doc section, an article, a query); [] when none."""
        ...


class Evolver(Protocol):
    def evolve(self, pair: TaskPlanPair, other: TaskPlanPair | None) -> Drafted | None:
        """A harder variant of `pair` (combined with `other` when given), still executable; None if none."""
        ...


class Prefiller(Protocol):
    def prefill(
        self, pair: TaskPlanPair, template: str, description: str, canvas: str, controls: list[str]
    ) -> Prefilled | None:
        """The pair made concrete on one template document; None when it cannot be."""
        ...


class Filter(Protocol):
    def filter(self, request: str, action_plan: list[PlanStep]) -> FilterVerdict:
        """UFO's instantiation evaluation: is this a concrete, self-contained task for this application?"""
        ...


class Judge(Protocol):
    def judge(self, case: JudgeInput) -> Verdict:
        """Complete yes / no / unsure with a reason and the task's quality, from the canvas diff."""
        ...


@dataclass
class Roles:
    structure: Structurer
    evolve: Evolver
    prefill: Prefiller
    filter: Filter
    judge: Judge
