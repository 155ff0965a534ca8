"""Online evaluation: a phase's model runs the test tasks live in the environment (Ray actors), judged by the
verifier; the expert's judged trajectories on the same tasks are the baseline row.

Latency, as the paper's Table 4 counts it, is what the acting agent waits per step: the decode of its action
(model forward passes, grammar, tokenizer) plus the environment executing it. Episodes run in lockstep
batches, so a step's decode seconds are those of the batch it was decoded in; completion time is an
episode's wall time from reset to verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lamops.evaluation.metrics import EpisodeScore
from lamops.records import InstantiatedTask, Trajectory


def run_phase(
    model_dir: Path,
    tasks: Sequence[InstantiatedTask],
    *,
    templates_dir: Path,
    agent_config,
    workers: int,
    seed: int,
    phase: str,
) -> tuple[list[Trajectory], list[EpisodeScore]]:
    """Play every task once (greedy) with the model in `model_dir` on `workers` Ray actors; the
    trajectories and their scores, in task order."""
    from lamops.agents.lam import EpisodeTiming, rollouts

    timings: list[EpisodeTiming] = []
    trajectories = rollouts(
        model_dir,
        tasks,
        templates_dir=templates_dir,
        attempts=1,
        workers=workers,
        config=agent_config,
        seed=seed,
        agent_name=phase,
        timings=timings,
    )
    by_task = {t.task_id: t for t in timings}
    scores = []
    for trajectory in trajectories:
        timing = by_task.get(trajectory.task.task_id)
        latencies = (
            tuple(s.decode_s + s.env_s for s in timing.steps)
            if timing is not None
            else tuple(s.latency for s in trajectory.steps)
        )
        scores.append(episode_score(trajectory, latencies))
    return trajectories, scores


def episode_score(trajectory: Trajectory, latencies: Sequence[float] | None = None) -> EpisodeScore:
    """An episode's online score; step latencies default to the environment's (an agent without a model)."""
    if latencies is None:
        latencies = tuple(s.latency for s in trajectory.steps)
    return EpisodeScore(
        task_id=trajectory.task.task_id,
        family=trajectory.task.family,
        success=trajectory.success,
        seconds=trajectory.seconds,
        steps=len(trajectory.steps),
        step_latencies=tuple(latencies),
    )


def expert_scores(
    judged: Sequence[Trajectory],
    tasks: Sequence[InstantiatedTask],
    timings: Mapping[str, Mapping] | None = None,
) -> list[EpisodeScore]:
    """The expert's judged trajectories of `tasks`, in task order; a task with none is a failed episode.
    Trajectory files hold no timings (they would differ run to run): `timings` are the execute stage's
    measured ones by task id ({"seconds", "step_latency": [...]}); a task without them counts zero."""
    by_id = {t.task.task_id: t for t in judged}
    timings = timings or {}
    out = []
    for task in tasks:
        trajectory = by_id.get(task.task_id) or Trajectory(task=task, agent="expert", error="not executed")
        measured = timings.get(task.task_id)
        if measured is not None:
            trajectory = trajectory.model_copy(update={"seconds": float(measured["seconds"])})
            out.append(episode_score(trajectory, [float(x) for x in measured["step_latency"]]))
        else:
            out.append(episode_score(trajectory))
    return out
