"""The built-in expert, working like UFO's dataflow executor.

It receives an action plan of steps {step, subtask, control_text, function, args} with no labels, grounds each
step to the visible control whose text matches best (rapidfuzz; below `min_score` the step, and with it the
trajectory, fails, as in UFO), executes it and records what it saw and did. It never looks at the goal: fed a
vague or wrong plan it fails, which is what gives self-boosting work to do."""

from __future__ import annotations

import time
from pathlib import Path

from rapidfuzz import fuzz

from lamops.env.observation import ControlInfo, Observation
from lamops.records import InstantiatedTask, PlanStep, Trajectory, TrajectoryStep


def match_score(wanted: str, text: str) -> float:
    """Similarity of a plan's control text to a control's text, 0-100. Exact (case-insensitive) is 100; a
    plan naming part of a control ('Highlight' for 'Text Highlight Color') scores up to 90."""
    a, b = wanted.strip().lower(), text.strip().lower()
    if a == b:
        return 100.0
    return max(fuzz.ratio(a, b), 0.9 * fuzz.partial_ratio(a, b)) if len(a) >= 3 else fuzz.ratio(a, b)


def ground(wanted: str, controls: list[ControlInfo]) -> tuple[ControlInfo | None, float]:
    """The best-matching visible control (first in layout order on ties) and its score."""
    best, best_score = None, -1.0
    for c in controls:
        score = match_score(wanted, c.control_text)
        if score > best_score:
            best, best_score = c, score
    return best, best_score


class ExpertAgent:
    name = "expert"

    def __init__(self, min_score: float = 80.0):
        self.min_score = min_score

    def act(self, step: PlanStep, obs: Observation, last: bool) -> dict:
        """The action JSON for one plan step in the current observation; raises LookupError when the step's
        control cannot be grounded."""
        action = {
            "thought": step.subtask,
            "control_name": None,
            "control_label": None,
            "function": step.function,
            "args": dict(step.args),
            "status": "FINISH" if last else "CONTINUE",
            "plan": [],
        }
        if step.control_text:
            control, score = ground(step.control_text, obs.controls)
            if control is None or score < self.min_score:
                near = f"; closest is {control.control_text!r} ({score:.0f})" if control else ""
                raise LookupError(f"step {step.step}: no visible control matches {step.control_text!r}{near}")
            action["control_name"] = control.control_text
            action["control_label"] = control.label
        return action

    def run(
        self, env, task: InstantiatedTask, out_dir: Path | None = None, verify: bool = True
    ) -> Trajectory:
        """Follow the task's action plan in `env`. With `verify` False the verdict is left to a later judge;
        with `out_dir` the final document is saved there as <task_id>.docx."""
        t0 = time.perf_counter()
        obs = env.reset(task)
        steps: list[TrajectoryStep] = []
        error = None
        plan = task.action_plan
        for k, step in enumerate(plan):
            remaining = [f"{s.step}. {s.subtask}" for s in plan[k + 1 :]]
            prompt = obs.prompt(env.view)
            try:
                action = self.act(step, obs, last=k == len(plan) - 1)
            except LookupError as e:
                error = str(e)
                break
            action["plan"] = remaining
            result = env.step(action)
            steps.append(
                TrajectoryStep(
                    step=k + 1,
                    prompt=prompt,
                    ok=result.ok,
                    result=result.result,
                    latency=result.latency,
                    **action,  # exactly the paper's step fields
                )
            )
            obs = result.observation
            if not result.ok:
                error = f"step {step.step} failed: {result.result}"
                break
        verdict = env.verify() if verify else None
        final = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            final = str(env.save(out_dir / f"{task.task_id}.docx"))
        return Trajectory(
            task=task,
            agent=self.name,
            steps=steps,
            verdict=verdict,
            final_document=final,
            error=error,
            seconds=time.perf_counter() - t0,
            final_prompt=obs.prompt(env.view),
        )
