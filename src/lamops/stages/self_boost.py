"""LAM3: LAM2 retries the training tasks the expert failed, live; its new successes join the expert's steps;
SFT from LAM2 on the union.

Data in: LAM2 (`imitate.out_dir`), `datasets/tasks/train.jsonl` (the expert's failed training tasks: never a
test lineage), `datasets/sft/train.jsonl` (the expert's successful steps) and the template documents.
Rollouts: every task `attempts` times with sampled, grammar-constrained decoding (`lamops.agents.lam`) on Ray
actors, each episode judged by the verifier. A task counts as turned into a success when one of its attempts
succeeds; the steps of its first successful attempt that the environment accepted become SFT rows in the
expert's format. Data out: `self_boost.rollouts_dir` (every rollout, the policy's own successes and mistakes,
which the `reward_model` stage labels step by step; the successful trajectories; the added rows; per-family
counts) and `self_boost.out_dir`, LAM3, registered in MLflow as `lam3` with `lam2`'s version as its parent.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from lamops.config import Config
from lamops.phases import parent, phase
from lamops.stages.base import ROLLOUTS_FILE, STATS_FILE, StageResult

PHASE = "self_boost"
REGISTERED = phase(PHASE).registered
SUCCESSES_FILE = "successes.jsonl"  # the first successful attempt of each task turned into a success
ADDED_FILE = "sft_added.jsonl"  # its accepted steps as SFT rows


def run(cfg: Config) -> StageResult:
    from lamops.records import StepSFTRow
    from lamops.stages.training import read_rows, read_tasks, train_phase

    started = time.perf_counter()
    c = cfg.self_boost
    datasets = cfg.path(cfg.datasets.out_dir)
    expert_rows = read_rows(datasets / "sft" / "train.jsonl", StepSFTRow)
    tasks = read_tasks(datasets / "tasks" / "train.jsonl", c.max_tasks)
    lam2 = cfg.path(cfg.imitate.out_dir)
    out = cfg.path(c.rollouts_dir)
    trajectories, seconds = _retry(cfg, lam2, tasks)
    added, successes, stats = boost(trajectories, attempts=c.attempts)
    stats["rollout_seconds"] = round(seconds, 3)
    _publish(cfg, out, trajectories, successes, added, stats)
    counts = {k: v for k, v in stats.items() if isinstance(v, int | float)}

    def log_rollouts(tracked) -> None:
        from lamops.records import row_dict
        from lamops.stages.base import gate

        tracked.log_metrics({**counts, "by_family": stats["by_family"]})
        tracked.log_json(stats, "self_boost.json")
        if added:
            gate(
                tracked,
                "sft",
                [{**row_dict(r), "split": "train"} for r in added],
                forbidden_ids=_test_ids(cfg),
            )
            tracked.log_dataset(out / ADDED_FILE, added, "self_boost_added", "training")

    result = train_phase(
        cfg,
        PHASE,
        REGISTERED,
        rows=expert_rows + added,
        base=lam2,
        tokenizer_dir=None,
        out_dir=cfg.path(c.out_dir),
        sft=c.sft,
        data_files=[datasets / "sft" / "train.jsonl", out / ADDED_FILE],
        parent=(parent(PHASE).registered, lam2),
        extra_metrics=counts,
        tracked_hook=log_rollouts,
    )
    return result.model_copy(
        update={
            "outputs": [*result.outputs, str(out)],
            "seconds": time.perf_counter() - started,
            "message": f"retried {stats['tasks_retried']} expert-failed tasks x {c.attempts}: "
            f"{stats['tasks_succeeded']} turned into successes (+{len(added)} SFT rows); {result.message}",
        }
    )


def boost(trajectories, *, attempts: int) -> tuple[list[dict[str, Any]], list, dict[str, Any]]:
    """From rollouts in (task, attempt) order: the SFT rows of each task's first successful attempt (steps
    the environment accepted), those trajectories, and counts overall and per family."""
    from lamops.data.datasets import step_samples

    by_task: dict[str, list] = {}
    for trajectory in trajectories:
        by_task.setdefault(trajectory.task.task_id, []).append(trajectory)
    retried: Counter[str] = Counter()
    succeeded: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    successes = []
    episodes = wins = 0
    for task_id in sorted(by_task):
        attempts_of = by_task[task_id]
        family = attempts_of[0].task.family or "unknown"
        retried[family] += 1
        episodes += len(attempts_of)
        wins += sum(t.success for t in attempts_of)
        first = next((t for t in attempts_of if t.success), None)
        if first is None:
            continue
        succeeded[family] += 1
        successes.append(first)
        accepted = first.model_copy(update={"steps": [s for s in first.steps if s.ok]})
        rows.extend(step_samples(accepted))
    stats = {
        "tasks_retried": sum(retried.values()),
        "tasks_succeeded": sum(succeeded.values()),
        "success_rate": round(100 * sum(succeeded.values()) / max(1, sum(retried.values())), 2),
        "attempts_per_task": attempts,
        "episodes": episodes,
        "successful_episodes": wins,
        "rows_added": len(rows),
        "by_family": {f: {"retried": retried[f], "succeeded": succeeded[f]} for f in sorted(retried)},
    }
    return rows, successes, stats


def _retry(cfg: Config, model_dir, tasks) -> tuple[list, float]:
    from lamops.agents.lam import AgentConfig, rollouts

    c = cfg.self_boost
    started = time.perf_counter()
    # The agent fits a prompt into max_len - max_new_tokens - 1 tokens, SFT into max_len - 1 - the action's
    # length (~80 tokens): this max_len gives the agent the room for a prompt that LAM2 trained with.
    agent = AgentConfig(
        max_len=cfg.imitate.sft.max_len + AgentConfig.model_fields["max_new_tokens"].default - 80,
        temperature=c.temperature,
        **cfg.env.view().model_dump(),
        batch_size=c.batch_size,
        max_steps=min(c.max_steps, cfg.env.max_steps),
    )
    trajectories = rollouts(
        model_dir,
        tasks,
        templates_dir=cfg.path(cfg.templates.out_dir),
        attempts=c.attempts,
        workers=c.workers,
        config=agent,
        seed=c.seed,
        agent_name="lam2",
    )
    return trajectories, time.perf_counter() - started


def _publish(cfg: Config, out, trajectories, successes, added, stats) -> None:
    from lamops.io import replace_dir, write_json, write_jsonl
    from lamops.records import row_dict

    with replace_dir(out) as staging:
        # Timings vary from run to run; zeroed here (the stage's MLflow run has them) so that the same
        # rollouts give the same bytes and DVC can tell nothing changed.
        write_jsonl(staging / ROLLOUTS_FILE, [_untimed(t).model_dump(mode="json") for t in trajectories])
        write_jsonl(staging / SUCCESSES_FILE, [_untimed(t).model_dump(mode="json") for t in successes])
        write_jsonl(staging / ADDED_FILE, [row_dict(r) for r in added])
        write_json(staging / STATS_FILE, stats)


def _untimed(trajectory):
    steps = [s.model_copy(update={"latency": 0.0}) for s in trajectory.steps]
    return trajectory.model_copy(update={"seconds": 0.0, "steps": steps})


def _test_ids(cfg: Config) -> set[str]:
    path = cfg.path(cfg.datasets.out_dir) / "test_ids.txt"
    return set(path.read_text().split()) if path.is_file() else set()
