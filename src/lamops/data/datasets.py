"""`datasets`: judged trajectories and task-plan pairs -> the training and test sets of every phase.

- `plan_sft` (LAM1): every task-plan pair -> {prompt: the task, completion: the numbered plan};
- `sft` (LAM2/LAM3): every step of every successful trajectory -> the paper's {prompt, completion};
- `reward` (reward model): each step of each trajectory judged yes or no -> label +1 / -1 (unsure: left out);
- `tasks`: the test tasks (online evaluation) and the training tasks the expert failed (self-boost retries).

Splits are by lineage, not by row: a task-plan pair and everything made from it (its instantiated task, its
trajectory, evolved pairs that used it) share a split. A pair is in the test split when the hash of
`split_salt` and its id falls below `test_fraction`; an evolved pair when either of its parents is. The
split of an id never depends on what else is in the data, so it is frozen as long as the salt is, and
`leaks` checks that no test id reaches a training file."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

from lamops.records import (
    InstantiatedTask,
    PlanSFTRow,
    RewardRow,
    StepSFTRow,
    TaskPlanPair,
    TaskRow,
    Trajectory,
)

# A dataset's rows by split, by dataset name (plan_sft, sft, reward, tasks).
Sets = dict[str, dict[str, list[PlanSFTRow | StepSFTRow | RewardRow | TaskRow]]]

SPLITS = ("train", "test")


def in_test(task_id: str, salt: str, test_fraction: float) -> bool:
    digest = hashlib.sha256(f"{salt}|{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def split_of(pair: TaskPlanPair, salt: str, test_fraction: float) -> str:
    # An evolved pair's lineage is its parents: it is a test pair when either parent is one.
    ids = pair.parents or [pair.task_id]
    return "test" if any(in_test(i, salt, test_fraction) for i in ids) else "train"


def plan_sample(pair: TaskPlanPair) -> PlanSFTRow:
    return PlanSFTRow(
        task_id=pair.task_id,
        prompt=pair.task,
        completion="\n".join(f"{k}. {step}" for k, step in enumerate(pair.plan, 1)),
        source=pair.source,
        parents=list(pair.parents),
    )


def step_samples(traj: Trajectory, label: int | None = None) -> list[StepSFTRow]:
    """The SFT rows of a trajectory's steps, or its reward rows (every step labelled `label`)."""
    out: list[StepSFTRow] = []
    for step in traj.steps:
        fields = {
            "task_id": traj.task.task_id,
            "step": step.step,
            "family": traj.task.family,
            **step.to_sft(),
        }
        out.append(StepSFTRow(**fields) if label is None else RewardRow(**fields, label=label))
    return out


def build(
    pairs: Iterable[TaskPlanPair],
    tasks: Iterable[InstantiatedTask],
    judged: Iterable[Trajectory],
    *,
    salt: str,
    test_fraction: float,
) -> tuple[Sets, dict[str, int], set[str]]:
    """The datasets by name and split, their counts, and the frozen test ids."""
    split: dict[str, str] = {}
    sets: Sets = {name: {s: [] for s in SPLITS} for name in ("plan_sft", "sft", "reward", "tasks")}
    for pair in sorted(pairs, key=lambda p: p.task_id):
        split[pair.task_id] = split_of(pair, salt, test_fraction)
        sets["plan_sft"][split[pair.task_id]].append(plan_sample(pair))

    def split_of_task(task: InstantiatedTask) -> str:
        source = task.source_id or task.task_id
        return split.get(source) or ("test" if in_test(source, salt, test_fraction) else "train")

    counts: Counter = Counter()
    for traj in sorted(judged, key=lambda t: t.task.task_id):
        which = split_of_task(traj.task)
        complete = traj.verdict.complete if traj.verdict else "unsure"
        counts[f"trajectories_{complete}"] += 1
        if complete == "yes":
            sets["sft"][which].extend(step_samples(traj))
        if complete in ("yes", "no"):
            sets["reward"][which].extend(step_samples(traj, 1 if complete == "yes" else -1))
        if which == "test":
            sets["tasks"]["test"].append(TaskRow(kind="test", expert=complete, **dict(traj.task)))
        elif complete != "yes":
            # The self-boost phase retries the training tasks the expert did not solve.
            sets["tasks"]["train"].append(TaskRow(kind="expert_failed", expert=complete, **dict(traj.task)))
    for name, by_split in sets.items():
        for s, rows in by_split.items():
            counts[f"{name}_{s}"] = len(rows)
    test_ids = {i for i, s in split.items() if s == "test"}
    test_ids |= {row.task_id for row in sets["tasks"]["test"]}
    counts["test_lineages"] = len(test_ids)
    counts["train_lineages"] = sum(1 for s in split.values() if s == "train")
    return sets, dict(counts), test_ids


def leaks(sets: Sets, test_ids: set[str]) -> dict[str, list[str]]:
    """Training rows whose id or lineage (an evolved pair's parents, a task's source pair) is a test id, by
    dataset: must be empty."""
    found = {}
    for name, by_split in sets.items():
        bad = sorted(
            {
                row.task_id
                for row in by_split["train"]
                if {row.task_id, getattr(row, "source_id", None), *getattr(row, "parents", ())} & test_ids
            }
        )
        if bad:
            found[name] = bad
    return found
