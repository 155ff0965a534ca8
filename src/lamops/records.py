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


class PlanStep(_Record):
    """One step of an action plan as UFO's prefill writes it: no labels, controls named by their text."""

    step: int
    subtask: str
    control_text: str = ""
    function: str
    args: dict[str, Any] = Field(default_factory=dict)


class InstantiatedTask(_Record):
    """A concrete request on one template document, with its plan and (for built-in tasks) its goal."""

    task_id: str
    family: str | None = None  # the task family whose goal predicate verifies it; None for foreign tasks
    category: str | None = None
    template: str
    request: str
    plan: list[str] = Field(default_factory=list)  # natural-language how-to steps
    action_plan: list[PlanStep] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)  # the goal predicate's parameters
    seed: int | None = None


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

    @property
    def success(self) -> bool:
        return self.verdict is not None and self.verdict.complete == "yes"
