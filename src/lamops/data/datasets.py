"""`datasets`: judged trajectories and task-plan pairs -> the training and test sets of every phase.

- `plan_sft` (LAM1): every task-plan pair -> {prompt: the task, completion: the numbered plan};
- `sft` (LAM2/LAM3): every step of every successful trajectory -> the paper's {prompt, completion};
- `reward` (reward model): the steps of the trajectories judged yes or no, each labelled by its own rule
  (below; unsure trajectories and steps the rule cannot decide are left out), plus hard negatives;
- `tasks`: the test tasks (online evaluation) and the training tasks the expert failed (self-boost retries),
  each with its reference plan (`TaskRow.reference`) so that agents' steps on it can be labelled the same way.

Splits are by lineage, not by row: a task-plan pair and everything made from it (its instantiated task, its
trajectory, evolved pairs that used it) share a split. A pair is in the test split when the hash of
`split_salt` and its id falls below `test_fraction`; an evolved pair when either of its parents is. The
split of an id never depends on what else is in the data, so it is frozen as long as the salt is, and
`leaks` checks that no test id reaches a training file.

Step labels (`step_labels`). A trajectory's verdict says whether the episode reached the goal, not which step
went wrong: of the expert's failed trajectories almost every step executed and was right, the failure came
later (a control the plan named so that nothing matched it, a step left out). So a step is labelled from what
the environment and the task's reference plan say about it:
- a step that failed to execute (`ok` false: the environment refused it, so it changed nothing) is -1;
- every other step of a trajectory judged yes is +1 (its path reached the goal: the verifier accepts it);
- a step of a trajectory judged no is +1 while the trajectory is still on the reference path: this step and
  every one before it is the action the expert takes for the reference step at its position, in the same
  state (`follows`: the same function, arguments and status, and the control the expert grounds the
  reference's control text to among the prompt's visible controls). The first step that leaves the path is
  -1: the reference path would have reached the goal, this one did not. The executed steps after it, or after
  a step that failed, are left out (`after_off_path`): their states are off the reference path, so no
  reference says what is right there (measured on a default run's self-boost rollouts: 71% of the steps the
  older rule labelled -1 there were the policy's own greedy choice in such a state, noise to the reward
  model);
- without a reference plan (a foreign task, made by an LLM prefill and judged by an LLM) the rule cannot tell
  a good step of a failed trajectory from a bad one: those steps are left out.
The reference plan is the family's plan the task was sampled with (`lamops.roles.builtin`), not the task's
`action_plan`: the prefill renamed its controls as the pair's how-to plan names them, which is what makes the
expert fail ('Click Justify.' grounded as 'Align Right'), so only the family's names tell a right step from a
wrong one (`restore_reference`). A step that changed nothing although the reference step would have is either
refused by the environment (failed) or off the path; a successful trajectory's detours stay +1.

Hard negatives (`perturbations`): the logged failures are few (the expert mostly fails by stopping, and
self-boost adds the policy's own failures later, in the `reward_model` stage), so each split also gets, on
states labelled +1, actions the policy could take instead, labelled -1: another visible control (the thought
renamed with it), another function on the same control, other arguments (another span or paragraph, the next
table, the other wheel direction, another key), the next reference step's action taken now (a skipped step),
the previous step's action repeated, or FINISH before the end. Each is a valid action in the paper's format
that the constrained decoder could write for that prompt (visible controls, spans of the request and canvas,
`lamops.agents.grammar`), and differs from every logged action of its state. As many are drawn as balance the
split's classes (one per +1 state before a second for any), in an order fixed by `seed`. They add no state:
offline RL reads only the distinct prompts."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

from lamops.records import (
    InstantiatedTask,
    PlanSFTRow,
    PlanStep,
    RewardRow,
    StepSFTRow,
    TaskPlanPair,
    TaskRow,
    Trajectory,
    TrajectoryStep,
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


def step_samples(traj: Trajectory) -> list[StepSFTRow]:
    """The SFT rows of a trajectory's steps."""
    return [_row(traj, step, StepSFTRow) for step in traj.steps]


def _row(traj: Trajectory, step: TrajectoryStep, record: type, **extra) -> StepSFTRow:
    return record(
        task_id=traj.task.task_id, step=step.step, family=traj.task.family, **step.to_sft(), **extra
    )


# ----------------------------------------------------------------------------------------------- step labels

HOME_STEP = PlanStep(
    step=0,
    subtask="Open the Home tab.",
    control_text="Home",
    function="click_input",
    args={"button": "left", "double": False},
)  # what `lamops.env.families.composite.compose` puts between parts


def _is_home(step: PlanStep) -> bool:
    return step.model_copy(update={"step": 0}) == HOME_STEP


def restore_reference(task: InstantiatedTask, family_plan: Sequence[PlanStep]) -> list[PlanStep] | None:
    """The task's action plan with each control named as the family names it: the reference path, which
    the expert grounds right on every built-in template. None when `family_plan` is not where the task's plan
    came from.

    The prefill changes only control names (`lamops.roles.builtin.align`); a composite's prefill also puts
    "Open the Home tab." between parts where the next part's first control no longer reads as a tab, so such a
    step may be in one plan and not in the other (it changes nothing the goal checks). Every other step must
    agree in subtask, function and arguments."""
    out: list[PlanStep] = []
    j = 0
    for step in task.action_plan:
        while j < len(family_plan) and _is_home(family_plan[j]) and not _same_step(step, family_plan[j]):
            j += 1
        if j < len(family_plan) and _same_step(step, family_plan[j]):
            out.append(step.model_copy(update={"control_text": family_plan[j].control_text}))
            j += 1
        elif _is_home(step):
            out.append(step)
        else:
            return None
    while j < len(family_plan) and _is_home(family_plan[j]):
        j += 1
    return out if out and j == len(family_plan) else None


def _same_step(a: PlanStep, b: PlanStep) -> bool:
    return (a.subtask, a.function, a.args) == (b.subtask, b.function, b.args)


def _visible(prompt: str) -> dict[str, str]:
    """The prompt's visible controls, name -> label (a repeated name resolves to its first control, as in the
    environment and the decoder's grammar); {} when `prompt` is not an observation prompt."""
    from lamops.agents.constraints import constraints_from_prompt

    try:
        controls = constraints_from_prompt(prompt).controls
    except ValueError:
        return {}
    labels: dict[str, str] = {}
    for label, name in controls:
        labels.setdefault(name, label)
    return labels


def grounded(control_text: str, visible: Mapping[str, str]) -> str | None:
    """The visible control the expert grounds `control_text` to (`lamops.agents.expert`), or None."""
    from lamops.agents.expert import ExpertAgent, ground
    from lamops.env.observation import ControlInfo

    found, score = ground(
        control_text,
        [ControlInfo(label=label, control_text=name, control_type="") for name, label in visible.items()],
    )
    return found.control_text if found is not None and score >= ExpertAgent().min_score else None


def _args(function: str, args: Mapping) -> dict:
    """Arguments with their defaults filled in, so that `{}` and `{"button": "left", ...}` compare equal."""
    from lamops.env.actions import FUNCTIONS

    try:
        return FUNCTIONS[function].model_validate(dict(args)).model_dump()
    except (KeyError, ValueError):
        return dict(args)


def follows(step: TrajectoryStep, ref: PlanStep, last: bool) -> bool:
    """Whether `step` is the expert's action for reference step `ref` in the step's state: the same function,
    arguments and status (FINISH on the reference's `last` step), and, when `ref` names a control, the visible
    control the expert grounds that name to."""
    if step.function != ref.function or step.status != ("FINISH" if last else "CONTINUE"):
        return False
    if _args(step.function, step.args) != _args(ref.function, ref.args):
        return False
    return not ref.control_text or step.control_name == grounded(ref.control_text, _visible(step.prompt))


# Why a step got its label (or none): the counts in stats.json are by these.
REASONS = ("success", "on_path", "failed", "off_path", "after_off_path", "no_reference")


def step_labels(traj: Trajectory, reference: Sequence[PlanStep] | None) -> list[tuple[int | None, str]]:
    """(label, reason) of each step of a trajectory judged yes or no: the rule of the module docstring.
    `reference` is the task's reference plan (`restore_reference`), None when unknown."""
    complete = traj.verdict.complete if traj.verdict else "unsure"
    if complete not in ("yes", "no"):
        raise ValueError(
            f"{traj.task.task_id}: only trajectories judged yes or no are labelled, not {complete}"
        )
    out: list[tuple[int | None, str]] = []
    on_path = reference is not None
    for k, step in enumerate(traj.steps):
        if not step.ok:
            out.append((-1, "failed"))
            on_path = False
        elif complete == "yes":
            out.append((1, "success"))
        elif reference is None:
            out.append((None, "no_reference"))
        elif on_path and k < len(reference) and follows(step, reference[k], last=k == len(reference) - 1):
            out.append((1, "on_path"))
        elif on_path:
            out.append((-1, "off_path"))
            on_path = False
        else:  # after a failed or off-path step: the reference no longer says what is right here
            out.append((None, "after_off_path"))
    return out


def reward_rows(traj: Trajectory, reference: Sequence[PlanStep] | None) -> tuple[list[RewardRow], Counter]:
    """The labelled steps of a trajectory judged yes or no as reward rows, and the steps by reason."""
    rows, reasons = [], Counter()
    for step, (label, reason) in zip(traj.steps, step_labels(traj, reference), strict=True):
        reasons[reason] += 1
        if label is not None:
            rows.append(_row(traj, step, RewardRow, label=label))
    return rows, reasons


# ------------------------------------------------------------------------------------------- hard negatives


def _action(step: TrajectoryStep) -> tuple:
    """What an action does (its thought and plan are only text): control, function, arguments, status."""
    return (
        step.control_name,
        step.function,
        json.dumps(_args(step.function, step.args), sort_keys=True),
        step.status,
    )


NEAR = 3  # a wrong control is one of the 3 before or after the right one in the prompt's list (its group)
_WORD = re.compile(r"[^\W_][\w'.,$%-]*[^\W_]|[^\W_]")


def _other_text(text: str, sources: Sequence[str], rng: random.Random) -> str | None:
    """Another text argument from `sources` (spans the grammar allows): the phrase without its last word, or
    another word of the first source."""
    words = text.split()
    if len(words) > 1:
        return " ".join(words[:-1])
    others = sorted({w for w in _WORD.findall(sources[0]) if w != text and len(w) > 1})
    return rng.choice(others) if others else None


_KEY_SWAPS = {
    "{END}": "{HOME}",
    "{HOME}": "{END}",
    "{ENTER}": "{TAB}",
    "{TAB}": "{ENTER}",
    "{UP}": "{DOWN}",
    "{DOWN}": "{UP}",
    "{LEFT}": "{RIGHT}",
    "{RIGHT}": "{LEFT}",
    "{DELETE}": "{BACKSPACE}",
    "{BACKSPACE}": "{DELETE}",
}


def _other_args(step: TrajectoryStep, request: str, canvas: str, rng: random.Random) -> dict | None:
    """The step's function with arguments the policy could get wrong; None when there is no such variant."""
    a, fn = dict(step.args), step.function
    if fn == "select_paragraph":
        start, end = int(a.get("start_index", 0)), int(a.get("end_index", 0))
        shift = 1 if end < 999 else -1
        return {"start_index": max(0, start + shift), "end_index": end + shift}
    if fn == "select_table":
        return {"number": int(a.get("number", 1)) + 1}
    if fn == "insert_table":
        return {"rows": min(50, int(a.get("rows", 1)) % 50 + 1), "columns": int(a.get("columns", 1))}
    if fn == "wheel_mouse_input":
        return {"wheel_dist": -int(a.get("wheel_dist", 0)) or 1}
    if fn == "select_text":
        text = _other_text(str(a.get("text", "")), [request, canvas], rng)
        return {"text": text} if text else None
    if fn == "set_edit_text":
        text = _other_text(str(a.get("text", "")), [request], rng)
        return {"text": text} if text else None
    if fn == "keyboard_input":
        keys = str(a.get("keys", ""))
        for key, other in _KEY_SWAPS.items():
            if key in keys:
                return {"keys": keys.replace(key, other)}
        text = _other_text(keys, [request], rng) if keys in request else None
        return {"keys": text} if text else {"keys": "{ENTER}"}
    return None  # click_input (its button), summary: nothing a policy mistakes


def perturbations(
    traj: Trajectory, k: int, reference: Sequence[PlanStep] | None, seed: int
) -> list[TrajectoryStep]:
    """Wrong actions for the state of step `k` (labelled +1), in an order drawn from `seed`: see the module
    docstring. Each is grounded in the step's prompt as the decoder's grammar grounds an action: a visible
    control with its first label, text arguments that are spans of the request (and canvas)."""
    from lamops.agents.constraints import constraints_from_prompt
    from lamops.env.actions import CONTROL_FUNCTIONS, ActionError, parse_action

    step = traj.steps[k]
    try:
        constraints = constraints_from_prompt(step.prompt)
    except ValueError:
        return []
    visible = _visible(step.prompt)
    rng = random.Random(
        int.from_bytes(hashlib.sha256(f"{seed}|{traj.task.task_id}|{k}".encode()).digest()[:8], "big")
    )
    out: list[TrajectoryStep] = []

    def add(**update) -> None:
        control = update.get("control_name", step.control_name)
        if control is not None and control not in visible:
            return
        update["control_label"] = visible[control] if control is not None else None
        out.append(step.model_copy(update=update))

    if step.control_name in visible:  # a neighbour in the layout: the same ribbon group, a near miss
        names = list(visible)
        at = names.index(step.control_name)
        near = [n for n in names[max(0, at - NEAR) : at + NEAR + 1] if n != step.control_name]
        if near:
            other = rng.choice(near)
            add(control_name=other, thought=step.thought.replace(step.control_name, other))
    args = _other_args(step, constraints.request, constraints.canvas, rng)
    if args is not None:
        # The decoder copies a text argument from the thought's quote: the quote changes with it.
        old, new = str(step.args.get("text", "")), str(args.get("text", ""))
        add(args=args, thought=step.thought.replace(f"'{old}'", f"'{new}'") if old and new else step.thought)
    # The next step's action taken now (a step skipped): on a successful trajectory its own next step, on a
    # failed one (whose +1 steps are on the reference path) the reference's next step.
    following = None
    if traj.success and k + 1 < len(traj.steps):
        nxt = traj.steps[k + 1]
        following = {
            "thought": nxt.thought,
            "control_name": nxt.control_name,
            "function": nxt.function,
            "args": dict(nxt.args),
            "status": nxt.status,
        }
    elif not traj.success and reference is not None and k + 1 < len(reference):
        ref = reference[k + 1]
        control = grounded(ref.control_text, visible) if ref.control_text else None
        if control is not None or not ref.control_text:
            following = {
                "thought": ref.subtask,
                "control_name": control,
                "function": ref.function,
                "args": dict(ref.args),
                "status": "FINISH" if k + 2 == len(reference) else "CONTINUE",
            }
    if following is not None:
        add(**following)
    if k > 0:  # the previous action again
        prev = traj.steps[k - 1]
        add(
            thought=prev.thought,
            control_name=prev.control_name,
            function=prev.function,
            args=dict(prev.args),
            status="CONTINUE",
        )
    if step.status == "CONTINUE":
        add(status="FINISH")
    rng.shuffle(out)
    # Another function on the same control is the mistake least like the policy's (its thought names the
    # function's verb), so it comes last: used when a state needs a second negative or has no other.
    if step.control_name in visible and step.function == "click_input":  # typing into what is clicked
        text = _other_text("", [constraints.request], rng)
        if text:
            add(function="set_edit_text", args={"text": text})
    elif step.control_name in visible and step.function == "set_edit_text":  # clicking what is typed into
        add(function="click_input", args={"button": "left", "double": False})
    valid, seen = [], {_action(step)}  # the right action (a plan may repeat a step: skipping it is right)
    for candidate in out:
        try:
            parse_action(candidate.completion())
        except ActionError:
            continue
        if candidate.function in CONTROL_FUNCTIONS and candidate.control_name is None:
            continue
        if _action(candidate) not in seen:
            seen.add(_action(candidate))
            valid.append(candidate)
    return valid


def reward_set(
    items: Iterable[tuple[Trajectory, Sequence[PlanStep] | None]], seed: int
) -> tuple[list[RewardRow], Counter]:
    """One split's reward rows: the labelled steps of (trajectory, reference) pairs and as many hard negatives
    as balance the classes, each after the step whose state it perturbs; counts of steps by reason, of rows
    `good`, `bad` and `perturbed`, and `left_out` steps."""
    rows: list[RewardRow] = []
    counts: Counter = Counter()
    states: list[tuple[int, Trajectory, int, Sequence[PlanStep] | None]] = []  # (row index, traj, k, ref)
    taken: dict[str, set] = {}  # prompt -> actions already in the set (logged or drawn)
    for traj, reference in items:
        for k, (step, (label, reason)) in enumerate(
            zip(traj.steps, step_labels(traj, reference), strict=True)
        ):
            counts[reason] += 1
            if label is None:
                counts["left_out"] += 1
                continue
            rows.append(_row(traj, step, RewardRow, label=label))
            taken.setdefault(step.prompt, set()).add(_action(step))
            counts["good" if label == 1 else "bad"] += 1
            if label == 1:
                states.append((len(rows) - 1, traj, k, reference))
    need = max(0, counts["good"] - counts["bad"])
    order = list(range(len(states)))
    random.Random(seed).shuffle(order)
    pools = {i: None for i in order}
    drawn: dict[int, list[RewardRow]] = {}
    while need and pools:
        for i in list(order):
            if not need:
                break
            if i not in pools:
                continue
            at, traj, k, reference = states[i]
            if pools[i] is None:
                pools[i] = perturbations(traj, k, reference, seed)
            pool, seen = pools[i], taken.setdefault(traj.steps[k].prompt, set())
            while pool and _action(pool[0]) in seen:
                pool.pop(0)
            if not pool:
                del pools[i]
                continue
            wrong = pool.pop(0)
            seen.add(_action(wrong))
            drawn.setdefault(at, []).append(_row(traj, wrong, RewardRow, label=-1, kind="perturbed"))
            need -= 1
        order = [i for i in order if i in pools]
    out: list[RewardRow] = []
    for at, row in enumerate(rows):
        out.append(row)
        out.extend(drawn.get(at, []))
    counts["perturbed"] = len(out) - len(rows)
    return out, counts


class RewardSets(BaseModel):
    """What the reward model trains and is evaluated on (`with_rollouts`)."""

    train: list[RewardRow] = Field(description="Logged steps, the policy's labelled steps, hard negatives.")
    held_out: dict[str, list[RewardRow]] = Field(
        description="By group: `test`, the test split's rows (its steps and their hard negatives); `policy`, "
        "the steps of the held-out tasks' rollouts (the policy's own successes and mistakes)."
    )
    counts: dict[str, int] = Field(description="Rows and steps by kind; see `with_rollouts`.")


def with_rollouts(
    train: Sequence[RewardRow],
    test: Sequence[RewardRow],
    rollouts: Iterable[Trajectory],
    references: Mapping[str, Sequence[PlanStep]],
    *,
    salt: str,
    held_out_fraction: float,
    seed: int,
) -> RewardSets:
    """The reward set with the policy's own rollouts (self-boost's) added, labelled by `step_labels` with
    the task's reference plan (`references`, by task id; a task without one is labelled without).

    The rollouts' tasks whose hash of `salt` and id falls below `held_out_fraction` are held out: neither
    their rollouts nor their rows of `train` (the expert's steps on the same states) are trained on, and their
    rollouts' steps are the `policy` group of `held_out`. Rollouts add mostly -1 steps, so hard negatives of
    `train` are dropped (those first in an order drawn from `seed`) until the classes balance, never below
    none. Counts: `rollout_<reason>` steps (`REASONS`), `held_out_tasks`, `train_good`, `train_bad`,
    `train_perturbed`, `perturbed_dropped`, `held_out_<group>`."""
    counts: Counter = Counter()
    rollouts = [t for t in rollouts if t.verdict is not None and t.verdict.complete in ("yes", "no")]
    held = {t.task.task_id for t in rollouts if in_test(t.task.task_id, salt, held_out_fraction)}
    added: list[RewardRow] = []
    policy: list[RewardRow] = []
    for traj in rollouts:
        reference = references.get(traj.task.task_id) or None
        rows, reasons = reward_rows(traj, reference)
        counts.update({f"rollout_{k}": v for k, v in reasons.items()})
        (policy if traj.task.task_id in held else added).extend(rows)
    rows = [r for r in train if r.task_id not in held] + added
    good = sum(r.label == 1 for r in rows)
    bad = len(rows) - good
    perturbed = [i for i, r in enumerate(rows) if r.kind == "perturbed"]
    random.Random(seed).shuffle(perturbed)
    drop = set(perturbed[: max(0, bad - good)])
    rows = [r for i, r in enumerate(rows) if i not in drop]
    counts.update(
        held_out_tasks=len(held),
        train_good=good,
        train_bad=bad - len(drop),
        train_perturbed=len(perturbed) - len(drop),
        perturbed_dropped=len(drop),
        held_out_test=len(test),
        held_out_policy=len(policy),
    )
    for reason in REASONS:
        counts.setdefault(f"rollout_{reason}", 0)
    return RewardSets(train=rows, held_out={"test": list(test), "policy": policy}, counts=dict(counts))


def build(
    pairs: Iterable[TaskPlanPair],
    tasks: Iterable[InstantiatedTask],
    judged: Iterable[Trajectory],
    *,
    salt: str,
    test_fraction: float,
    family_plans: Mapping[str, Sequence[PlanStep]] | None = None,
    seed: int = 0,
) -> tuple[Sets, dict[str, int], set[str]]:
    """The datasets by name and split, their counts, and the frozen test ids.

    `family_plans`: by task id, the family plan each built-in task was sampled with (`lamops.roles.builtin`),
    from which `restore_reference` makes its reference plan; a task without one has none. `seed` draws the
    reward set's hard negatives."""
    family_plans = family_plans or {}
    split: dict[str, str] = {}
    sets: Sets = {name: {s: [] for s in SPLITS} for name in ("plan_sft", "sft", "reward", "tasks")}
    for pair in sorted(pairs, key=lambda p: p.task_id):
        split[pair.task_id] = split_of(pair, salt, test_fraction)
        sets["plan_sft"][split[pair.task_id]].append(plan_sample(pair))

    def split_of_task(task: InstantiatedTask) -> str:
        source = task.source_id or task.task_id
        return split.get(source) or ("test" if in_test(source, salt, test_fraction) else "train")

    counts: Counter = Counter()
    labelled: dict[str, list[tuple[Trajectory, list[PlanStep] | None]]] = {s: [] for s in SPLITS}
    for traj in sorted(judged, key=lambda t: t.task.task_id):
        which = split_of_task(traj.task)
        complete = traj.verdict.complete if traj.verdict else "unsure"
        counts[f"trajectories_{complete}"] += 1
        plan = family_plans.get(traj.task.task_id)
        reference = restore_reference(traj.task, plan) if plan is not None else None
        counts[
            "references_" + ("restored" if reference else "unmatched" if plan is not None else "missing")
        ] += 1
        if complete == "yes":
            sets["sft"][which].extend(step_samples(traj))
        if complete in ("yes", "no"):
            labelled[which].append((traj, reference))
        row = {**dict(traj.task), "expert": complete, "reference": reference or []}
        if which == "test":
            sets["tasks"]["test"].append(TaskRow(kind="test", **row))
        elif complete != "yes":
            # The self-boost phase retries the training tasks the expert did not solve.
            sets["tasks"]["train"].append(TaskRow(kind="expert_failed", **row))
    for which, items in labelled.items():
        sets["reward"][which], by = reward_set(items, seed)
        counts.update(
            {f"reward_{which}_{k}": by[k] for k in (*REASONS, "good", "bad", "perturbed", "left_out")}
        )
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
