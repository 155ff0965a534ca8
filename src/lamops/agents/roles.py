"""The LLM roles of data building, one interface each, as the paper's GPT-4o plays them.

Every role has two implementations: the built-in deterministic one (no network; `lamops.data.builtin`) and
an OpenAI-compatible client (`lamops.agents.llm`). Stages receive a `Roles` bundle from `make_roles(cfg.llm)`
and never know which one they hold."""

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


def make_roles(llm: Any, pairs: dict[str, TaskPlanPair] | None = None, max_added_words: int = 20) -> Roles:
    """The roles params.yaml's `llm` section asks for: built-in (`pairs` lets the built-in prefill find the
    parents of evolved pairs) or an OpenAI-compatible endpoint."""
    if llm.provider == "builtin":
        from lamops.data.builtin import builtin_roles

        return builtin_roles(pairs, max_added_words)
    from lamops.agents.llm import LLMSettings, make_openai_roles

    return make_openai_roles(
        LLMSettings(
            base_url=llm.base_url,
            model=llm.model,
            api_key_env=llm.api_key_env,
            timeout_s=llm.timeout_s,
            max_retries=llm.max_retries,
            temperature=llm.temperature,
        )
    )
