"""datasets: lineage splits, the frozen test split, the leak check, step labels, hard negatives."""

import json

import pytest

from lamops.agents.constraints import constraints_from_prompt
from lamops.agents.grammar import COMPLETE, Limits, action_grammar, advance
from lamops.data.datasets import (
    build,
    in_test,
    leaks,
    perturbations,
    restore_reference,
    reward_set,
    split_of,
    step_labels,
    with_rollouts,
)
from lamops.env.actions import parse_action
from lamops.env.observation import ControlInfo, Observation, PromptView
from lamops.records import (
    InstantiatedTask,
    PlanSFTRow,
    PlanStep,
    RewardRow,
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
    # Unsure is left out, and so are the failed trajectory's executed steps: no reference plan can say which
    # was wrong. Its prompts are no observations, so no hard negative can be grounded in them either.
    assert labels == {(train[0], 1)}
    assert len(sets["reward"]["train"]) == 2
    assert counts["reward_train_left_out"] == counts["reward_train_no_reference"] == 3
    assert counts["reward_train_perturbed"] == 0 and counts["references_missing"] == 4
    assert all(r.reference == [] for split in ("train", "test") for r in sets["tasks"][split])
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


# ---- step labels and hard negatives, on hand-built observations ------------------------------------------
CONTROLS = [
    "Home",
    "Insert",
    "Layout",
    "Bold",
    "Italic",
    "Underline",
    "Align Left",
    "Center",
    "Align Right",
    "Justify",
    "Font Size",
]
REQUEST = "Make the paragraph 'Alpha beta gamma' bold and justified."
CANVAS = "p0 <Normal> Alpha beta gamma delta.\np1 <Normal> Second paragraph here."
CLICK = {"button": "left", "double": False}
# The family's reference: select the paragraph, Bold, Justify.
REFERENCE = [
    PlanStep(
        step=1,
        subtask="Select paragraph 0.",
        function="select_paragraph",
        args={"start_index": 0, "end_index": 0},
    ),
    PlanStep(step=2, subtask="Click Bold.", control_text="Bold", function="click_input", args=CLICK),
    PlanStep(step=3, subtask="Click Justify.", control_text="Justify", function="click_input", args=CLICK),
]


def observation_prompt(done: int = 0, request: str = REQUEST) -> str:
    obs = Observation(
        controls=[
            ControlInfo(label=str(i), control_text=n, control_type="Button")
            for i, n in enumerate(CONTROLS, 1)
        ],
        canvas=CANVAS,
        ui="tab Home",
        selection="caret in p0 at 0",
        request=request,
        previous_actions=[f"{k}. done" for k in range(1, done + 1)],
        previous_plan=[f"{s.step}. {s.subtask}" for s in REFERENCE[done + 1 :]],
    )
    return obs.prompt(PromptView(canvas="full"))


def act(k: int, control: str | None, function: str, args: dict, status: str = "CONTINUE", ok: bool = True):
    """Step k+1 of an episode: the action, taken in the k-th state."""
    return TrajectoryStep(
        step=k + 1,
        prompt=observation_prompt(k),
        thought=f"Click {control}." if control else "Select the paragraph.",
        control_name=control,
        control_label=str(CONTROLS.index(control) + 1) if control else None,
        function=function,
        args=args,
        status=status,
        ok=ok,
    )


SELECT = ("select_paragraph", {"start_index": 0, "end_index": 0})
EXPERT = [
    act(0, None, *SELECT),
    act(1, "Bold", "click_input", CLICK),
    act(2, "Justify", "click_input", CLICK, "FINISH"),
]


def episode(steps, complete: str, task_id: str = "t1") -> Trajectory:
    """The steps as an episode of task `task_id`, whose request names it (each task its own states)."""
    request = f"{REQUEST} ({task_id})"
    steps = [s.model_copy(update={"prompt": s.prompt.replace(REQUEST, request)}) for s in steps]
    task = InstantiatedTask(
        task_id=task_id, family="f", template="plain_text", request=request, action_plan=REFERENCE
    )
    return Trajectory(task=task, agent="lam2", steps=steps, verdict=Verdict(complete=complete, reason="r"))


def in_grammar(step: TrajectoryStep) -> bool:
    """The constrained decoder could write this completion for this prompt."""
    state = action_grammar(constraints_from_prompt(step.prompt), Limits())
    for b in step.completion().encode():
        state = advance(state, b)
        if state is None:
            return False
    return state is COMPLETE


def test_a_failed_trajectory_is_good_until_it_leaves_the_reference_path():
    wrong = act(2, "Align Right", "click_input", CLICK, "FINISH")
    assert step_labels(episode([*EXPERT[:2], wrong], "no"), REFERENCE) == [
        (1, "on_path"),
        (1, "on_path"),
        (-1, "off_path"),
    ]
    # Off the path once is off for good: after a detour the reference no longer says what is right, so the
    # steps after it are left out, whatever they do.
    detour = [
        EXPERT[0],
        act(1, "Italic", "click_input", CLICK),
        act(2, "Bold", "click_input", CLICK, "FINISH"),
    ]
    assert step_labels(episode(detour, "no"), REFERENCE) == [
        (1, "on_path"),
        (-1, "off_path"),
        (None, "after_off_path"),
    ]
    # The right control but FINISH too early, or other arguments, leave the path too.
    early = act(1, "Bold", "click_input", CLICK, "FINISH")
    other = act(0, None, "select_paragraph", {"start_index": 1, "end_index": 1})
    assert [label for label, _ in step_labels(episode([EXPERT[0], early], "no"), REFERENCE)] == [1, -1]
    assert [label for label, _ in step_labels(episode([other], "no"), REFERENCE)] == [-1]
    # The whole reference path, even if the verifier said no (an unfinished episode cut short), is +1.
    assert [label for label, _ in step_labels(episode(EXPERT, "no"), REFERENCE)] == [1, 1, 1]


def test_a_step_that_failed_to_execute_is_bad_whatever_the_verdict():
    refused = act(1, "Bold", "click_input", CLICK, ok=False)
    assert step_labels(episode([EXPERT[0], refused, EXPERT[2]], "no"), REFERENCE) == [
        (1, "on_path"),
        (-1, "failed"),
        (None, "after_off_path"),
    ]
    # A refused step is -1 wherever it comes.
    assert [label for label, _ in step_labels(episode([EXPERT[0], refused, refused], "no"), REFERENCE)] == [
        1,
        -1,
        -1,
    ]
    assert step_labels(episode([EXPERT[0], refused, EXPERT[2]], "yes"), REFERENCE) == [
        (1, "success"),
        (-1, "failed"),
        (1, "success"),
    ]
    # Without a reference only the refused step can be told: the others are left out.
    assert step_labels(episode([EXPERT[0], refused], "no"), None) == [(None, "no_reference"), (-1, "failed")]
    with pytest.raises(ValueError, match="unsure"):
        step_labels(episode(EXPERT, "unsure"), REFERENCE)


def test_the_reference_is_the_family_plan_with_the_prefills_steps():
    # The prefill named the third step's control as the pair's plan does, and a composite's prefill put a Home
    # tab step in: the restored reference keeps both steps, with the family's control name.
    home = PlanStep(
        step=3, subtask="Open the Home tab.", control_text="Home", function="click_input", args=CLICK
    )
    renamed = REFERENCE[2].model_copy(update={"control_text": "Align Right", "step": 4})
    task = InstantiatedTask(
        task_id="t", template="plain_text", request=REQUEST, action_plan=[*REFERENCE[:2], home, renamed]
    )
    restored = restore_reference(task, REFERENCE)
    assert [s.control_text for s in restored] == ["", "Bold", "Home", "Justify"]
    assert restore_reference(task.model_copy(update={"action_plan": REFERENCE[:2]}), REFERENCE) is None
    moved = REFERENCE[0].model_copy(update={"args": {"start_index": 1, "end_index": 1}})
    assert (
        restore_reference(task.model_copy(update={"action_plan": [moved, *REFERENCE[1:]]}), REFERENCE) is None
    )


def test_hard_negatives_are_valid_actions_of_their_state_and_never_the_right_one():
    # The check has teeth: an invisible control, or a text that is no span of the request, is refused.
    assert not in_grammar(EXPERT[1].model_copy(update={"control_name": "Paste"}))
    assert not in_grammar(act(1, "Font Size", "set_edit_text", {"text": "zzz"}))
    assert in_grammar(act(1, "Font Size", "set_edit_text", {"text": "Alpha"}))
    kinds = set()
    for traj, reference in ((episode(EXPERT, "yes"), REFERENCE), (episode(EXPERT[:2], "no"), REFERENCE)):
        for k, step in enumerate(traj.steps):
            wrong = perturbations(traj, k, reference, seed=0)
            assert wrong, k
            assert perturbations(traj, k, reference, seed=0) == wrong  # deterministic
            for candidate in wrong:
                parse_action(candidate.completion())
                assert in_grammar(candidate), candidate.completion()
                assert candidate.prompt == step.prompt
                action = (candidate.control_name, candidate.function, candidate.args, candidate.status)
                assert action != (step.control_name, step.function, step.args, step.status)
                kinds.add(
                    next(
                        f
                        for f in ("control_name", "function", "args", "status")
                        if getattr(candidate, f) != getattr(step, f)
                    )
                )
    assert kinds == {"control_name", "function", "args", "status"}
    # A skipped step: the next reference step's action (Bold), taken in the first state.
    skipped = perturbations(episode(EXPERT[:2], "no"), 0, REFERENCE, seed=0)
    assert any(c.control_name == "Bold" and c.function == "click_input" for c in skipped)


def test_hard_negatives_balance_the_classes_on_the_states_of_good_steps():
    trajs = [
        (episode(EXPERT, "yes", "t1"), REFERENCE),
        (
            episode([*EXPERT[:2], act(2, "Align Right", "click_input", CLICK, "FINISH")], "no", "t2"),
            REFERENCE,
        ),
        (episode(EXPERT[:2], "yes", "t3"), None),
    ]
    rows, counts = reward_set(trajs, seed=0)
    assert (counts["good"], counts["bad"], counts["perturbed"]) == (7, 1, 6)
    assert sum(r.label == 1 for r in rows) == sum(r.label == -1 for r in rows) == 7
    good_prompts = {r.prompt for r in rows if r.label == 1}
    perturbed = [r for r in rows if r.kind == "perturbed"]
    assert all(r.label == -1 and r.prompt in good_prompts for r in perturbed)
    assert {r.prompt for r in rows} == {s.prompt for t, _ in trajs for s in t.steps}  # no new state
    assert len({(r.prompt, r.completion) for r in rows}) == len(rows)
    assert reward_set(trajs, seed=0)[0] == rows
    assert reward_set(trajs, seed=1)[0] != rows
    # One negative per good state before a second for any.
    per_state = {p: sum(r.prompt == p for r in perturbed) for p in good_prompts}
    assert max(per_state.values()) - min(per_state.values()) <= 1


def test_negatives_of_test_states_stay_in_the_test_split_and_nothing_leaks():
    train, test = ids_in("train"), ids_in("test")
    judged = [
        episode(EXPERT, "yes", train[0]),
        episode(EXPERT[:2], "no", test[0]),
        episode(EXPERT, "yes", test[1]),
    ]
    plans = {t.task.task_id: REFERENCE for t in judged}
    sets, counts, test_ids = build(
        [pair(train[0]), pair(test[0]), pair(test[1])],
        [],
        judged,
        salt=SALT,
        test_fraction=FRACTION,
        family_plans=plans,
        seed=0,
    )
    assert leaks(sets, test_ids) == {}
    assert {r.task_id for r in sets["reward"]["test"] if r.kind == "perturbed"} <= {test[0], test[1]}
    for split in ("train", "test"):
        rows = sets["reward"][split]
        assert counts[f"reward_{split}_perturbed"] > 0
        assert sum(r.label == 1 for r in rows) == sum(r.label == -1 for r in rows)
    assert counts["references_restored"] == 3
    assert [r.reference for r in sets["tasks"]["test"]] == [REFERENCE, REFERENCE]


def test_rollouts_join_training_except_the_held_out_tasks_and_the_classes_stay_balanced():
    ids = [f"r{k}" for k in range(40)]
    held = [i for i in ids if in_test(i, "s", 0.25)]
    kept = [i for i in ids if not in_test(i, "s", 0.25)]
    train = [RewardRow(task_id=i, step=1, prompt=f"p{i}", completion="a", label=1) for i in ids]
    train += [
        RewardRow(task_id=i, step=1, prompt=f"p{i}", completion="b", label=-1, kind="perturbed") for i in ids
    ]
    failed = act(0, "Italic", "click_input", CLICK)
    rollouts = [episode([failed], "no", i) for i in (held[0], kept[0], kept[1])]
    test = [RewardRow(task_id="x", step=1, prompt="q", completion="a", label=1)]
    sets = with_rollouts(
        train, test, rollouts, {i: REFERENCE for i in ids}, salt="s", held_out_fraction=0.25, seed=0
    )
    assert held and len(kept) > 1
    # Held out: the retried tasks that hash below the fraction; the expert's rows of other tasks stay.
    assert {r.task_id for r in sets.train} == set(ids) - {held[0]}
    assert sets.held_out["test"] == test
    assert [(r.task_id, r.label) for r in sets.held_out["policy"]] == [(held[0], -1)]
    assert sum(r.label == 1 for r in sets.train) == sum(r.label == -1 for r in sets.train) == len(ids) - 1
    assert sets.counts["perturbed_dropped"] == 2 and sets.counts["rollout_off_path"] == 3
    assert sets.counts["held_out_tasks"] == 1


@pytest.fixture(scope="module")
def expert_episodes():
    """The expert on one task of every fifth family: real observation prompts, real reference plans."""
    from lamops.agents.expert import ExpertAgent
    from lamops.env.families import FAMILIES, applicable_templates, sample_task
    from lamops.env.word import WordEnv

    env, out = WordEnv(), []
    for family in sorted(FAMILIES)[::5]:
        task = sample_task(family, applicable_templates(family)[0], 0)
        if task is not None:
            out.append(ExpertAgent().run(env, task))
    return out


def test_hard_negatives_of_real_expert_steps_are_actions_the_decoder_could_write(expert_episodes):
    checked = 0
    for traj in expert_episodes:
        assert traj.success, traj.task.task_id
        assert [
            label
            for label, _ in step_labels(
                traj.model_copy(update={"verdict": Verdict(complete="no", reason="r")}), traj.task.action_plan
            )
        ] == [1] * len(traj.steps)
        for k, step in enumerate(traj.steps):
            assert in_grammar(step), step.completion()
            for candidate in perturbations(traj, k, traj.task.action_plan, seed=0):
                assert in_grammar(candidate), (traj.task.family, candidate.completion())
                assert json.loads(candidate.completion()) != json.loads(step.completion())
                checked += 1
    assert checked > 20
