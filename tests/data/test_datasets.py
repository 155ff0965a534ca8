"""datasets: lineage splits, the frozen test split, the leak check, labels."""

from lamops.data.datasets import build, in_test, leaks, split_of
from lamops.records import (
    InstantiatedTask,
    PlanSFTRow,
    PlanStep,
    StepSFTRow,
    TaskPlanPair,
    Trajectory,
    TrajectoryStep,
    Verdict,
)

SALT, FRACTION = "s", 0.3


def pair(i: str, parents=()) -> TaskPlanPair:
    return TaskPlanPair(
        task_id=i,
        task=f"task {i}",
        plan=["a", "b"],
        source="evolved" if parents else "howto",
        origin="o",
        parents=list(parents),
    )


def traj(i: str, complete: str, steps: int = 2) -> Trajectory:
    task = InstantiatedTask(
        task_id=i,
        template="plain_text",
        request=f"do {i}",
        source_id=i,
        action_plan=[PlanStep(step=1, subtask="s", function="click_input")],
    )
    return Trajectory(
        task=task,
        agent="expert",
        steps=[TrajectoryStep(step=k, prompt=f"p{k}", function="click_input") for k in range(1, steps + 1)],
        verdict=Verdict(complete=complete, reason="r"),
    )


def ids_in(split: str, n: int = 400) -> list[str]:
    return [f"p{k}" for k in range(n) if in_test(f"p{k}", SALT, FRACTION) == (split == "test")]


def test_split_is_a_function_of_the_id_alone():
    ids = [f"p{k}" for k in range(2000)]
    test = [i for i in ids if in_test(i, SALT, FRACTION)]
    assert 0.25 < len(test) / len(ids) < 0.35
    # Adding or removing other data never moves an id: the split is frozen with the salt.
    assert [i for i in ids[:500] if in_test(i, SALT, FRACTION)] == test[
        : len([t for t in test if int(t[1:]) < 500])
    ]
    assert any(in_test(i, "other salt", FRACTION) != in_test(i, SALT, FRACTION) for i in ids)


def test_evolved_pair_follows_a_test_parent():
    train, test = ids_in("train"), ids_in("test")
    assert split_of(pair("evo-1", parents=[train[0], test[0]]), SALT, FRACTION) == "test"
    assert split_of(pair("evo-2", parents=[test[1], train[1]]), SALT, FRACTION) == "test"
    assert split_of(pair("evo-3", parents=[train[0], train[1]]), SALT, FRACTION) == "train"


def test_build_labels_and_sets():
    train, test = ids_in("train"), ids_in("test")
    pairs = [pair(train[0]), pair(train[1]), pair(test[0])]
    judged = [traj(train[0], "yes"), traj(train[1], "no", 3), traj(test[0], "yes"), traj(train[2], "unsure")]
    sets, counts, test_ids = build(pairs, [], judged, salt=SALT, test_fraction=FRACTION)
    assert {r.task_id for r in sets["sft"]["train"]} == {train[0]}
    assert {r.task_id for r in sets["sft"]["test"]} == {test[0]}
    labels = {(r.task_id, r.label) for r in sets["reward"]["train"]}
    assert labels == {(train[0], 1), (train[1], -1)}  # unsure is left out
    assert len(sets["reward"]["train"]) == 2 + 3
    failed = {r.task_id: r.kind for r in sets["tasks"]["train"]}
    assert failed == {train[1]: "expert_failed", train[2]: "expert_failed"}  # kept for self_boost
    assert [r.task_id for r in sets["tasks"]["test"]] == [test[0]]
    assert test[0] in test_ids and train[0] not in test_ids
    assert counts["trajectories_yes"] == 2 and counts["sft_train"] == 2
    assert leaks(sets, test_ids) == {}


def test_leak_check_catches_a_test_id_or_lineage_in_train():
    train, test = ids_in("train"), ids_in("test")
    sets = {
        "plan_sft": {
            "train": [
                PlanSFTRow(
                    task_id=train[0], prompt="t", completion="1. s", source="evolved", parents=[test[0]]
                )
            ],
            "test": [],
        },
        "sft": {"train": [StepSFTRow(task_id=test[1], step=1, prompt="p", completion="c")], "test": []},
    }
    assert leaks(sets, {test[0], test[1]}) == {"plan_sft": [train[0]], "sft": [test[1]]}


def test_evolve_partners_come_from_the_same_split():
    from functools import partial

    from lamops.data.evolve import candidates

    pairs = [pair(f"p{k}") for k in range(200)]
    group = partial(in_test, salt=SALT, test_fraction=FRACTION)
    chosen = candidates(pairs, 300, seed=0, start=0, group=group)
    assert len(chosen) == 300
    assert all(group(pairs[i].task_id) == group(pairs[j].task_id) and i != j for i, j in chosen)
    assert any(group(pairs[i].task_id) for i, _ in chosen)  # test pairs are evolved too, among themselves
