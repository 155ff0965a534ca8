"""Typed records that cross stage boundaries: tasks, plan steps, trajectory steps, trajectories, verdicts.

Field names follow REFERENCE.md: UFO's dataflow records (instantiated plan steps, result record) and the
paper's step fields (thought, control_label, control_name, function, args, status, plan)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

YesNoUnsure = Literal["yes", "no", "unsure"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


SourceKind = Literal["doc", "howto", "query"]
PairSource = Literal["doc", "howto", "query", "evolved", "ufo"]
RequestType = Literal["None", "Non_task", "App_involve", "Env", "Others"]
# Ids become file names and DVC paths: no separators, no spaces, no dots at the start.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class RawEntry(_Record):
    """One parsed raw-source item before cleaning: a documentation section, a how-to article or a query."""

    kind: SourceKind
    origin: str  # where it came from: file (or s3 key) plus section / line
    title: str  # the heading, article title or the query itself
    text: str = ""  # the body (steps as written, with whatever noise they carry)
    steps: list[str] = Field(default_factory=list)  # numbered steps when the format has them
    where: str = ""  # the origin with its line, for quarantine records, when the origin lacks it (docs)


class TaskPlanPair(_Record):
    """The paper's task-plan pair, with its lineage."""

    task_id: str = Field(pattern=ID_PATTERN)
    task: str
    plan: list[str]
    source: PairSource
    origin: str  # the raw file and section it came from, or the parents of an evolved pair
    parents: list[str] = Field(default_factory=list)  # evolved pairs: the pairs it was derived from


class Rejected(_Record):
    """A record a stage did not keep, and why: stages quarantine these to a file, never drop silently."""

    stage: str
    reason: str  # short code counted in the stage's metrics: non_english, too_short, near_duplicate, ...
    detail: str = ""
    origin: str = ""
    record: str = ""  # the offending input, truncated


class FilterVerdict(_Record):
    """UFO's instantiation evaluation: may this task be executed? `request_type` None means yes."""

    judge: bool
    thought: str
    request_type: RequestType


class PlanStep(_Record):
    """One step of an action plan as UFO's prefill writes it: no labels, controls named by their text."""

    step: int
    subtask: str
    control_text: str = ""
    function: str
    args: dict[str, Any] = Field(default_factory=dict)


class InstantiatedTask(_Record):
    """A concrete request on one template document, with its plan and (for built-in tasks) its goal."""

    task_id: str = Field(pattern=ID_PATTERN)
    family: str | None = None  # the task family whose goal predicate verifies it; None for foreign tasks
    category: str | None = None
    template: str
    request: str
    plan: list[str] = Field(default_factory=list)  # natural-language how-to steps
    action_plan: list[PlanStep] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)  # the goal predicate's parameters
    seed: int | None = None
    source_id: str | None = None  # the task-plan pair it was instantiated from


class Verdict(_Record):
    """The judge's answer (UFO evaluator format plus the paper's task_quality)."""

    complete: YesNoUnsure
    reason: str
    sub_scores: dict[str, YesNoUnsure] = Field(default_factory=dict)
    task_quality: Literal["ambiguous", "over detailed", "good"] | None = None


class TrajectoryStep(_Record):
    step: int
    prompt: str  # the exact observation text the acting model read
    thought: str = ""
    control_label: str | None = None
    control_name: str | None = None
    function: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: Literal["CONTINUE", "FINISH"] = "CONTINUE"
    plan: list[str] = Field(default_factory=list)
    ok: bool = True
    result: str = ""
    latency: float = 0.0  # seconds the environment took for this step

    def completion(self) -> str:
        """The model output for this step: name before label (see STACK-NOTES, 'Can a tiny model learn')."""
        return json.dumps(
            {
                "thought": self.thought,
                "control_name": self.control_name,
                "control_label": self.control_label,
                "function": self.function,
                "args": self.args,
                "status": self.status,
                "plan": self.plan,
            },
            ensure_ascii=False,
        )

    def to_sft(self) -> dict[str, str]:
        """The paper's SFT pair: observation prompt -> action JSON."""
        return {"prompt": self.prompt, "completion": self.completion()}


class Trajectory(_Record):
    task: InstantiatedTask
    agent: str  # "expert", "lam2", ...
    steps: list[TrajectoryStep] = Field(default_factory=list)
    verdict: Verdict | None = None
    final_document: str | None = None  # path of the saved final .docx
    error: str | None = None  # why the agent stopped early (e.g. a plan step it could not ground)
    seconds: float = 0.0
    final_prompt: str = ""  # the observation after the last step: final control state and canvas, for judges

    @property
    def success(self) -> bool:
        return self.verdict is not None and self.verdict.complete == "yes"


# ---- dataset rows: what `datasets` writes and the trainers and evaluation read --------------------------
class PlanSFTRow(_Record):
    """LAM1's sample (`datasets/plan_sft/<split>.jsonl`): task -> numbered plan, with the pair's lineage."""

    task_id: str
    prompt: str  # the task
    completion: str  # the plan, one numbered step a line
    source: PairSource
    parents: list[str] = Field(default_factory=list)


class StepSFTRow(_Record):
    """LAM2/LAM3's sample (`datasets/sft/<split>.jsonl`, self-boost's added rows): one step of a successful
    trajectory, the paper's observation prompt -> action JSON."""

    task_id: str
    step: int
    family: str | None = None
    prompt: str
    completion: str


class RewardRow(StepSFTRow):
    """The reward model's sample (`datasets/reward/<split>.jsonl`): a state, an action in it and the action's
    label (`lamops.data.datasets` states the rule). `kind` "step" is an action an agent took (a logged step);
    "perturbed" a hard negative: another action on the same state, a mistake the policy could make."""

    label: Literal[-1, 1]
    kind: Literal["step", "perturbed"] = "step"


class TaskRow(InstantiatedTask):
    """A task to play live (`datasets/tasks/<split>.jsonl`): the test tasks, and the training tasks the expert
    failed (self-boost's retries), with the expert's verdict."""

    kind: Literal["test", "expert_failed"]
    expert: YesNoUnsure
    # The task's reference plan (`lamops.data.datasets.restore_reference`): what labels an agent's steps on
    # this task; empty when unknown (a foreign task).
    reference: list[PlanStep] = Field(default_factory=list)

    def task(self) -> InstantiatedTask:
        """The task without the row's own columns."""
        return InstantiatedTask.model_validate(self.model_dump(exclude={"kind", "expert", "reference"}))


def row_dict(row: BaseModel) -> dict[str, Any]:
    """A dataset row as the JSON object its file holds (every field, defaults included)."""
    return row.model_dump(mode="json")


# ---- UFO's result record (dataflow execution_schema.json), one per task ------------------------------
class Outcome(_Record):
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None  # {type, message, traceback}


class UfoPlanStep(_Record):
    Step: int
    Subtask: str
    ControlLabel: str | None = None
    ControlText: str = ""
    Function: str
    Args: dict[str, Any] = Field(default_factory=dict)
    Success: bool | None = None
    MatchedControlText: str | None = None


class ResultRecord(_Record):
    """UFO's per-task result record: what was asked, how it was instantiated, how execution went, timings."""

    unique_id: str
    app: str = "word"
    original: dict[str, Any]  # {original_task, original_steps[]}
    execution_result: Outcome
    instantiation_result: dict[str, Outcome]  # choose_template, prefill, instantiation_evaluation
    time_cost: dict[
        str, float
    ]  # choose_template, prefill, instantiation_evaluation, execute, execute_eval, total

    @classmethod
    def from_trajectory(
        cls,
        traj: Trajectory,
        original_task: str | None = None,
        original_steps: list[str] | None = None,
        time_cost: dict[str, float] | None = None,
        evaluation: Outcome | None = None,
    ) -> ResultRecord:
        task = traj.task
        executed = {s.step: s for s in traj.steps}
        plan = [
            UfoPlanStep(
                Step=p.step,
                Subtask=p.subtask,
                ControlText=p.control_text,
                Function=p.function,
                Args=p.args,
                ControlLabel=executed[p.step].control_label if p.step in executed else None,
                Success=executed[p.step].ok if p.step in executed else False,
                MatchedControlText=executed[p.step].control_name if p.step in executed else None,
            ).model_dump()
            for p in task.action_plan
        ]
        verdict = traj.verdict.model_dump(exclude={"task_quality"}) if traj.verdict else None
        error = {"type": "ExecutionError", "message": traj.error, "traceback": ""} if traj.error else None
        costs = {
            "choose_template": 0.0,
            "prefill": 0.0,
            "instantiation_evaluation": 0.0,
            "execute": traj.seconds,
            "execute_eval": 0.0,
            **(time_cost or {}),
        }
        costs["total"] = sum(v for k, v in costs.items() if k != "total")
        return cls(
            unique_id=task.task_id,
            original={
                "original_task": original_task or task.request,
                "original_steps": original_steps if original_steps is not None else task.plan,
            },
            execution_result=Outcome(result=verdict, error=error),
            instantiation_result={
                "choose_template": Outcome(result={"template": task.template}),
                "prefill": Outcome(result={"instantiated_request": task.request, "instantiated_plan": plan}),
                # Built-in tasks skip the filter; the instantiate stage passes its verdict as `evaluation`.
                "instantiation_evaluation": evaluation or Outcome(),
            },
            time_cost=costs,
        )
