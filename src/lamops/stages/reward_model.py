"""The reward model: LAM3 + a scalar head, LoRA-tuned to score one step +1 (a good action in its state) or -1.

Data in: LAM3 (`self_boost.out_dir`); `datasets/reward/{train,test}.jsonl`, the expert's steps labelled one
by one and hard negatives (`lamops.data.datasets` states the rule); self-boost's rollouts
(`self_boost.rollouts_dir`), the policy's own steps, labelled by the same rule with the reference plans of
`datasets/tasks/train.jsonl`. The rollouts of a `held_out_fraction` of the retried tasks are held out with the
test split; hard negatives are dropped until the training classes balance (`with_rollouts`). Objective: MSE to
the label for the classifier (`lamops.train.reward`), then a logistic head over its score and LAM3's
grammar-constrained view of the action, fitted on `head.max_rows` training rows (`lamops.train.reward_head`).
Data out: `reward_model.out_dir`, the merged classifier with LAM3 in `policy/` and the head, registered in
MLflow as `reward_model` with `lam3`'s version as its parent (the head's file is logged with the version's
run, tag `lamops.reward_head`); metrics: the training classes, the epochs the step budget covers, the head's
weights (`head.weight.<feature>`), and on the held-out rows (all, and by group: `test`, `policy`) sign and
balanced accuracy, ROC AUC and the good/bad score gap of the reward model (`held_out.*`) and of the classifier
alone before and after training (`classifier.before.*`, `classifier.after.*`).
"""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.phases import parent, phase
from lamops.stages.base import ROLLOUTS_FILE, StageResult
from lamops.tracking import stage_run

PHASE = "reward_model"
REGISTERED = phase(PHASE).registered
HEAD_TAG = "lamops.reward_head"  # on the registered version: its scores need the head file and lamops.parent


def run(cfg: Config) -> StageResult:
    import hashlib

    import numpy as np
    import pandas as pd

    from lamops.agents.lam import AgentConfig
    from lamops.agents.user_doc import agent_max_len
    from lamops.data.datasets import with_rollouts
    from lamops.io import read_jsonl
    from lamops.records import RewardRow, TaskRow, Trajectory
    from lamops.stages.training import (
        digest,
        drop_checkpoints,
        log_history,
        read_rows,
        register,
        train_spec,
    )
    from lamops.train.reward import evaluate_scores, load_reward_model, train_reward
    from lamops.train.reward_head import FEATURES, HEAD_FILE, GrammarReward, fit_head, publish

    started = time.perf_counter()
    c = cfg.reward_model
    data = cfg.path(cfg.datasets.out_dir) / "reward"
    rollouts_file = cfg.path(cfg.self_boost.rollouts_dir) / ROLLOUTS_FILE
    if not rollouts_file.is_file():
        raise FileNotFoundError(
            f"{rollouts_file}: missing; run the self_boost stage first (`dvc repro` does)"
        )
    rollouts, bad = read_jsonl(rollouts_file, Trajectory, PHASE)
    if bad:
        raise ValueError(f"{bad[0].origin}: {bad[0].detail}; re-run the self_boost stage")
    tasks = read_rows(cfg.path(cfg.datasets.out_dir) / "tasks" / "train.jsonl", TaskRow, allow_empty=True)
    sets = with_rollouts(
        read_rows(data / "train.jsonl", RewardRow),
        read_rows(data / "test.jsonl", RewardRow, allow_empty=True),
        rollouts,
        {t.task_id: t.reference for t in tasks},
        salt=f"{cfg.datasets.split_salt}|{PHASE}",
        held_out_fraction=c.held_out_fraction,
        seed=c.rm.seed,
    )
    train_rows = sets.train
    groups = {name: rows for name, rows in sets.held_out.items() if rows}
    test_rows = [row for rows in groups.values() for row in rows]
    lam3 = cfg.path(cfg.self_boost.out_dir)
    out_dir = cfg.path(c.out_dir)
    # The run's fingerprint is the rows it trains on, however they were assembled.
    rows_sha = hashlib.sha256("\n".join(r.model_dump_json() for r in train_rows).encode()).hexdigest()
    spec = train_spec(cfg, PHASE, c.model_dump(mode="json"), digest(lam3), rows_sha)
    with stage_run(cfg, PHASE, system_metrics=True) as tracked:
        tracked.log_params({"train": cfg.train.model_dump(mode="json"), "run_name": spec.name})
        tracked.log_dataset(data / "train.jsonl", train_rows, "reward_train", "training")
        for name, source in (("test", data / "test.jsonl"), ("policy", rollouts_file)):
            if name in groups:
                tracked.log_dataset(source, groups[name], f"reward_held_out_{name}", "evaluation")
        result = train_reward(train_rows, test_rows, lam3, out_dir, c.rm, spec)
        log_history(tracked, result.history, "reward_model")
        # The head: the classifier's score and LAM3's decisions through the grammar, as the agent decodes.
        agent = AgentConfig(max_len=agent_max_len(cfg), **cfg.env.view().model_dump())
        classifier, tokenizer = load_reward_model(out_dir)
        reward = GrammarReward.build(classifier, tokenizer, lam3, agent)
        rng = np.random.default_rng(c.rm.seed)
        fit_rows = (
            [train_rows[i] for i in sorted(rng.choice(len(train_rows), c.head.max_rows, replace=False))]
            if len(train_rows) > c.head.max_rows
            else list(train_rows)
        )
        features = reward.features(
            [r.prompt for r in fit_rows],
            [r.completion for r in fit_rows],
            max_len=c.rm.max_len,
            batch_size=c.rm.eval_batch_size,
        )
        reward.head = fit_head(features, [r.label for r in fit_rows], l2=c.head.l2)
        held_out_scores = reward.score(
            [r.prompt for r in test_rows],
            [r.completion for r in test_rows],
            max_len=c.rm.max_len,
            batch_size=c.rm.eval_batch_size,
        )
        publish(out_dir, lam3, reward.head, agent, out_dir)
        global_batch = c.rm.micro_batch_size * c.rm.gradient_accumulation_steps * spec.num_workers
        metrics = {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "tokens_per_s": result.tokens_per_s,
            "wall_s": result.wall_s,
            "samples": result.encode.samples,
            "good": result.encode.good,
            "bad": result.encode.bad,
            "epochs": round(result.steps * global_batch / max(1, result.encode.samples), 3),
            "prompts_truncated": result.encode.prompts_truncated,
            "resumed_from_step": result.resumed_from_step if result.resumed_from_step is not None else -1,
            "head.rows": len(fit_rows),
            **{f"head.weight.{name}": w for name, w in zip(FEATURES, reward.head.weights, strict=True)},
            **sets.counts,
        }
        for when, evaluation in (("before", result.eval_before), ("after", result.eval_after)):
            if evaluation is not None:
                metrics.update({f"classifier.{when}.{k}": v for k, v in evaluation.model_dump().items()})
        after = None
        if test_rows:
            after = evaluate_scores(held_out_scores, [r.label for r in test_rows])
            metrics.update({f"held_out.{k}": v for k, v in after.model_dump().items()})
        at = 0
        for name, rows in groups.items():  # the held-out groups, in the order test_rows joined them
            for prefix, scores in (
                ("classifier.after", result.test_scores[at : at + len(rows)]),
                ("held_out", list(held_out_scores[at : at + len(rows)])),
            ):
                if scores:
                    group = evaluate_scores(scores, [r.label for r in rows])
                    metrics.update({f"{prefix}.{name}.{k}": v for k, v in group.model_dump().items()})
            at += len(rows)
        tracked.log_metrics({k: v for k, v in metrics.items() if v is not None})
        example = train_rows[0].prompt + train_rows[0].completion
        version = register(
            cfg,
            out_dir,
            REGISTERED,
            data=[str(cfg.datasets.out_dir), str(cfg.self_boost.rollouts_dir)],
            parent=(parent(PHASE).registered, lam3),
            example=(example, pd.DataFrame({"label": ["LABEL_0"], "score": [0.5]})),
            trained_on=[data / "train.jsonl", rollouts_file],
            task="text-classification",
            extra_tags={HEAD_TAG: "grammar"},
        )
        tracked.log_artifact(out_dir / HEAD_FILE)
        drop_checkpoints(cfg, spec)
    quality = (
        f"held-out balanced accuracy {after.balanced_accuracy:.1%}, AUC {after.auc:.3f}, "
        f"good-bad gap {after.gap:.3f}"
        if after is not None and after.gap is not None
        else f"held-out sign accuracy {after.accuracy:.1%}"
        if after is not None
        else "no held-out rows"
    )
    return StageResult(
        stage=PHASE,
        outputs=[str(out_dir)],
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - started,
        message=f"reward model: {result.steps} steps ({metrics['epochs']} epochs) on {len(train_rows)} "
        f"labelled actions ({result.encode.good} good, {result.encode.bad} bad), {quality}; registered as "
        f"{version.model_uri}",
    )
