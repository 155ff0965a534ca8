"""`evolve`: harder variants of collected task-plan pairs (the paper's data evolving).

Each variant combines a pair with a partner about another feature, as a combination ("A, then B") or an added
requirement ("A, and also B", at most `max_added_words` words added); the plan is updated to do both. Partners
are drawn deterministically from the seed. A candidate the evolver declines is counted as `not_evolvable`."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from functools import partial

from lamops.records import Rejected, TaskPlanPair
from lamops.roles.builtin import stable_int
from lamops.roles.protocols import Evolver

STAGE = "evolve"
MAX_TASK_CHARS = 300  # the task_plans data gate's bound (lamops.validation.suites.TASK_CHARS)
MAX_ROUNDS = 4  # candidates are drawn in rounds until the target is met or this many rounds have passed


def evolved_id(base: TaskPlanPair, other: TaskPlanPair) -> str:
    return "evo-" + hashlib.blake2b(f"{base.task_id}+{other.task_id}".encode(), digest_size=6).hexdigest()


def candidates(
    pairs: list[TaskPlanPair], count: int, seed: int, start: int, group: Callable[[str], object] | None = None
) -> list[tuple[int, int]]:
    """`count` (base, partner) index pairs, the i-th base cycling through `pairs`, partners drawn by seed from
    the bases' own group (`group(task_id)`, e.g. its train/test split: a variant never mixes the two)."""
    n = len(pairs)
    key = group or (lambda _id: None)
    members: dict[object, list[int]] = {}
    for k, p in enumerate(pairs):
        members.setdefault(key(p.task_id), []).append(k)
    out = []
    for i in range(start, start + count):
        base = i % n
        mates = members[key(pairs[base].task_id)]
        if len(mates) < 2:
            continue
        j = mates[stable_int(seed, i) % len(mates)]
        if j == base:
            j = mates[(mates.index(j) + 1) % len(mates)]
        out.append((base, j))
    return out


def evolve_batch(batch: list[tuple[TaskPlanPair, TaskPlanPair]], evolver: Evolver) -> list[dict]:
    out = []
    for base, other in batch:
        try:
            drafted = evolver.evolve(base, other)
        except Exception as err:  # one failed call (an LLM timeout) costs one candidate, not the stage
            out.append({"rejected": _reject(base, other, "evolve_failed", f"{type(err).__name__}: {err}")})
            continue
        if drafted is None or not drafted.plan or not drafted.task.strip():
            out.append({"rejected": _reject(base, other, "not_evolvable", "the evolver declined")})
            continue
        if len(drafted.task) > MAX_TASK_CHARS:
            detail = f"task of {len(drafted.task)} characters"
            out.append({"rejected": _reject(base, other, "too_long", detail)})
            continue
        pair = TaskPlanPair(
            task_id=evolved_id(base, other),
            task=drafted.task,
            plan=drafted.plan,
            source="evolved",
            origin=f"{base.task_id}+{other.task_id}",
            parents=[base.task_id, other.task_id],
        )
        out.append({"pair": pair})
    return out


def _reject(base: TaskPlanPair, other: TaskPlanPair, reason: str, detail: str) -> Rejected:
    return Rejected(
        stage=STAGE,
        reason=reason,
        detail=detail,
        origin=f"{base.task_id}+{other.task_id}",
        record=f"{base.task} || {other.task}",
    )


def evolve_pairs(
    pairs: list[TaskPlanPair],
    evolver: Evolver,
    *,
    ratio: float,
    seed: int,
    map_batches,
    group: Callable[[str], object] | None = None,
) -> tuple[list[TaskPlanPair], list[Rejected], Counter]:
    """Evolved pairs (about `ratio` x len(pairs)), the declined candidates, and counts by outcome. Partners
    come from the base's `group` when given."""
    target = round(ratio * len(pairs))
    made: dict[str, TaskPlanPair] = {}
    rejected: list[Rejected] = []
    counts: Counter = Counter()
    drawn = 0
    for _ in range(MAX_ROUNDS):
        need = target - len(made)
        if need <= 0 or len(pairs) < 2:
            break
        batch = [(pairs[i], pairs[j]) for i, j in candidates(pairs, need, seed, drawn, group)]
        drawn += need
        for result in map_batches(partial(evolve_batch, evolver=evolver), batch):
            if "pair" in result:
                pair = result["pair"]
                if pair.task_id in made or len(made) >= target:
                    counts["duplicate_candidate"] += 1
                    continue
                made[pair.task_id] = pair
                counts["evolved"] += 1
            else:
                rejected.append(result["rejected"])
                counts[result["rejected"].reason] += 1
    counts["target"] = target
    return sorted(made.values(), key=lambda p: p.task_id), rejected, counts
