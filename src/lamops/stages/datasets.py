"""Build the datasets: plan SFT (LAM1), step SFT (LAM2/3), reward samples, tasks; a frozen test split.

Counts (stats.json): of each input file (collect's and evolve's pairs.jsonl, instantiate's tasks.jsonl,
judge's judged.jsonl; `by_file`, and in all), the lines `read`, `kept` (valid records) and `quarantined`
(always 0: the upstream stage validated the file, so a malformed line fails the stage, naming it).
kept + quarantined == read is checked, and so is that every pair is one plan_sft row (train + test) and
every judged trajectory is counted once by verdict (trajectories_yes/no/unsure); a mismatch fails the stage
(RecordsLost)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lamops.config import Config
from lamops.io import replace_dir
from lamops.stages.base import (
    PAIRS_FILE,
    STATS_FILE,
    TASKS_FILE,
    StageResult,
    check_total,
    checked_counts,
    file_counts,
    gate,
)
from lamops.tracking import stage_run

# Each data stage's stats.json, gathered into the DVC metrics file by stage name.
_STATS = {
    "sources": lambda cfg: cfg.sources.out_dir,
    "collect": lambda cfg: cfg.collect.out_dir,
    "evolve": lambda cfg: cfg.evolve.out_dir,
    "instantiate": lambda cfg: cfg.instantiate.out_dir,
    "execute": lambda cfg: cfg.execute.out_dir,
    "judge": lambda cfg: cfg.judge.out_dir,
}


def run(cfg: Config) -> StageResult:
    from lamops.data.datasets import build, leaks
    from lamops.data.judge import JUDGED_FILE
    from lamops.io import write_atomic, write_json, write_jsonl
    from lamops.records import InstantiatedTask, TaskPlanPair, Trajectory, row_dict

    start = time.perf_counter()
    c = cfg.datasets
    out_dir = cfg.path(c.out_dir)
    with stage_run(cfg, "datasets") as tracked:
        by_file: dict[str, dict[str, int]] = {}

        def read(folder: Path, name: str, model) -> list:
            records = _read(cfg.path(folder) / name, model)
            by_file[(folder / name).as_posix()] = file_counts(len(records), len(records), 0)
            return records

        collected = read(cfg.collect.out_dir, PAIRS_FILE, TaskPlanPair)
        evolved = read(cfg.evolve.out_dir, PAIRS_FILE, TaskPlanPair)
        tasks = read(cfg.instantiate.out_dir, TASKS_FILE, InstantiatedTask)
        judged = read(cfg.judge.out_dir, JUDGED_FILE, Trajectory)
        counts_in = checked_counts("datasets", by_file)
        sets, counts, test_ids = build(
            collected + evolved,
            tasks,
            judged,
            salt=c.split_salt,
            test_fraction=c.test_fraction,
            family_plans=family_plans(collected + evolved, judged),
            seed=c.negatives_seed,
        )
        pairs_rows = counts["plan_sft_train"] + counts["plan_sft_test"]
        check_total("datasets", "pairs read vs plan_sft rows", len(collected) + len(evolved), pairs_rows)
        by_verdict = sum(v for k, v in counts.items() if k.startswith("trajectories_"))
        check_total("datasets", "trajectories read vs counted by verdict", len(judged), by_verdict)
        leaked = leaks(sets, test_ids)
        if leaked:  # a check, not a convention: a leak is a bug and the stage fails
            raise RuntimeError(
                f"test ids in training sets: {json.dumps({k: v[:5] for k, v in leaked.items()})}"
            )
        gate(tracked, "plan_sft", sets["plan_sft"]["train"], forbidden_ids=test_ids)
        gate(
            tracked,
            "sft",
            [{**row_dict(r), "split": s} for s in ("train", "test") for r in sets["sft"][s]],
            forbidden_ids=test_ids,
        )
        gate(tracked, "reward", sets["reward"]["train"], forbidden_ids=test_ids)
        with replace_dir(out_dir) as staging:
            for name, by_split in sets.items():
                for split, rows in by_split.items():
                    write_jsonl(staging / name / f"{split}.jsonl", [row_dict(r) for r in rows])
            write_atomic(staging / "test_ids.txt", "".join(f"{i}\n" for i in sorted(test_ids)).encode())
            write_json(staging / STATS_FILE, {**counts_in, **counts})
        for name, by_split in sets.items():
            for split, rows in by_split.items():
                if rows and name != "tasks":
                    tracked.log_dataset(
                        out_dir / name / f"{split}.jsonl",
                        rows[:50_000],
                        f"{name}_{split}",
                        "training" if split == "train" else "evaluation",
                    )
        metrics = data_metrics(cfg, {**counts_in, **counts})
        write_json(cfg.path(c.metrics_file), metrics)
        tracked.log_metrics(counts)
        tracked.log_json(metrics, "data.json")
    return StageResult(
        stage="datasets",
        outputs=[str(out_dir), str(cfg.path(c.metrics_file))],
        metrics={k: v for k, v in counts.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - start,
        message=f"plan SFT {counts['plan_sft_train']}/{counts['plan_sft_test']}, step SFT "
        f"{counts['sft_train']}/{counts['sft_test']}, reward "
        f"{counts['reward_train']}/{counts['reward_test']} "
        f"(train/test; train: {counts['reward_train_good']} good, {counts['reward_train_bad']} bad and "
        f"{counts['reward_train_perturbed']} perturbed steps); {counts['tasks_train']} expert-failed "
        "training tasks kept for self_boost",
    )


def family_plans(pairs, judged) -> dict:
    """By task id, the family plan each built-in task was sampled with (`BuiltinPrefiller.family_plan`):
    what its reference plan is made from. Foreign tasks (no family) have none."""
    from lamops.roles.builtin import BuiltinPrefiller

    by_id = {p.task_id: p for p in pairs}
    prefiller = BuiltinPrefiller(by_id)
    out = {}
    for traj in judged:
        task = traj.task
        pair = by_id.get(task.source_id or task.task_id)
        if task.family is not None and pair is not None:
            plan = prefiller.family_plan(pair, task.template)
            if plan is not None:
                out[task.task_id] = plan
    return out


def _read(path: Path, model):
    """Records an upstream stage wrote and validated: a bad line means the file was damaged since, and the
    sets built from it would silently miss records, so it is an error naming the line."""
    from lamops.io import read_jsonl

    records, bad = read_jsonl(path, model, "datasets")
    if bad:
        raise ValueError(
            f"{bad[0].origin}: {bad[0].detail} ({len(bad)} bad line(s)); "
            f"re-run the stage that wrote {path.name}"
        )
    return records


def data_metrics(cfg: Config, datasets_counts: dict) -> dict:
    """Every data stage's counts in one DVC metrics file: how much data, how good."""
    out = {}
    for stage, folder in _STATS.items():
        path = Path(cfg.path(folder(cfg))) / STATS_FILE
        if path.is_file():
            out[stage] = json.loads(path.read_text())
    out["datasets"] = datasets_counts
    return out
