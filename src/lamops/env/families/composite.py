"""Composite tasks: several families' tasks on one document in one request (the paper's evolved tasks).

A composite task's parameters list its parts `[{family, params}, ...]`; its goal holds when every part's goal
holds, it may change what any part may change, and it must keep the text intact only when every part must.
Parts are combined only when their scopes are known and disjoint, so each part's goal can be checked on the
final document independently of the others."""

from __future__ import annotations

from typing import Any

from docx.document import Document

from lamops.env.families.base import Family
from lamops.records import InstantiatedTask, PlanStep

NAME = "composite"


def _parts(params: dict[str, Any]) -> list[tuple[Family, dict[str, Any]]]:
    from lamops.env.families import get_family

    parts = params.get("parts")
    if not isinstance(parts, list) or len(parts) < 2:
        raise ValueError("a composite task needs params.parts: a list of at least two {family, params}")
    out = []
    for part in parts:
        if part.get("family") == NAME:
            raise ValueError("composite tasks do not nest")
        out.append((get_family(part["family"]), part.get("params", {})))
    return out


class Composite(Family):
    name = NAME
    category = "composite"
    description = "Several tasks in one request."

    def sample(self, doc, rng):  # composites are built by compose(), never sampled on their own
        return None

    def goal(self, before: Document, after: Document, params: dict[str, Any]) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        for i, (family, part) in enumerate(_parts(params), 1):
            for name, ok in family.goal(before, after, part).items():
                checks[f"part{i}.{name}"] = ok
        return checks

    def scope(self, params: dict[str, Any]) -> set[str] | None:
        keys: set[str] = set()
        for family, part in _parts(params):
            scope = family.scope(part)
            if scope is None:
                return None
            keys |= scope
        return keys

    def preserves_text(self, params: dict[str, Any]) -> bool:
        return all(family.preserves_text(part) for family, part in _parts(params))


def combinable(tasks: list[InstantiatedTask]) -> bool:
    """Parts on one template with known, pairwise disjoint scopes; only the last may change the text."""
    from lamops.env.families import get_family

    if (
        len(tasks) < 2
        or len({t.template for t in tasks}) != 1
        or any(t.family in (None, NAME) for t in tasks)
    ):
        return False
    seen: set[str] = set()
    for k, t in enumerate(tasks):
        family = get_family(t.family)
        scope = family.scope(t.params)
        if scope is None or scope & seen:
            return False
        if not family.preserves_text(t.params) and k != len(tasks) - 1:
            return False
        seen |= scope
    return True


def compose(tasks: list[InstantiatedTask], task_id: str, request: str | None = None) -> InstantiatedTask:
    """One task doing `tasks` in order: requests joined, action plans concatenated and renumbered."""
    if not combinable(tasks):
        raise ValueError(f"tasks {[t.task_id for t in tasks]} cannot be combined (see combinable)")
    from lamops.env.ribbon import TABS

    steps: list[PlanStep] = []
    for k, t in enumerate(tasks):
        # Each family's plan starts where an episode starts, on the Home tab; a later part starts wherever
        # the previous one ended, so it goes back there first unless its plan opens a tab itself.
        first = next((s for s in t.action_plan if s.control_text), None)
        if k and (first is None or first.control_text not in TABS):
            steps.append(
                PlanStep(
                    step=len(steps) + 1,
                    subtask="Open the Home tab.",
                    control_text="Home",
                    function="click_input",
                    args={"button": "left", "double": False},
                )
            )
        for s in t.action_plan:
            steps.append(s.model_copy(update={"step": len(steps) + 1}))
    if request is None:
        first, *rest = (t.request.rstrip(". ") for t in tasks)
        request = first + "".join(f", then {r[:1].lower()}{r[1:]}" for r in rest) + "."
    return InstantiatedTask(
        task_id=task_id,
        family=NAME,
        category=NAME,
        template=tasks[0].template,
        request=request,
        plan=[f"{s.step}. {s.subtask}" for s in steps],
        action_plan=steps,
        params={"parts": [{"family": t.family, "params": t.params} for t in tasks]},
        seed=tasks[0].seed,
    )
