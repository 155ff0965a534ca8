"""The reward model: LAM3 + a scalar head, LoRA-tuned to score a step +1 (its trajectory succeeded) or -1.

Data in: LAM3 (`self_boost.out_dir`) and `datasets/reward/{train,test}.jsonl` (every judged step of the
expert's trajectories, labelled by the verdict; unsure ones left out). Objective: MSE to the label
(`lamops.train.reward`). Data out: `reward_model.out_dir`, the merged classifier, registered in MLflow as
`reward_model` with `lam3`'s version as its parent; held-out sign accuracy and the good/bad score gap.
"""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.phases import parent, phase
from lamops.stages.base import StageResult
from lamops.tracking import stage_run

PHASE = "reward_model"
REGISTERED = phase(PHASE).registered


def run(cfg: Config) -> StageResult:
    import pandas as pd

    from lamops.records import RewardRow
    from lamops.stages.training import (
        digest,
        drop_checkpoints,
        log_history,
        read_rows,
        register,
        train_spec,
    )
    from lamops.train.reward import train_reward

    started = time.perf_counter()
    c = cfg.reward_model
    data = cfg.path(cfg.datasets.out_dir) / "reward"
    train_rows = read_rows(data / "train.jsonl", RewardRow)
    test_rows = read_rows(data / "test.jsonl", RewardRow, allow_empty=True)
    lam3 = cfg.path(cfg.self_boost.out_dir)
    out_dir = cfg.path(c.out_dir)
    spec = train_spec(cfg, PHASE, c.rm.model_dump(mode="json"), digest(lam3), data / "train.jsonl")
    with stage_run(cfg, PHASE, system_metrics=True) as tracked:
        tracked.log_params({"train": cfg.train.model_dump(mode="json"), "run_name": spec.name})
        tracked.log_dataset(data / "train.jsonl", train_rows, "reward_train", "training")
        if test_rows:
            tracked.log_dataset(data / "test.jsonl", test_rows, "reward_test", "evaluation")
        result = train_reward(train_rows, test_rows, lam3, out_dir, c.rm, spec)
        log_history(tracked, result.history, "reward_model")
        metrics = {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "tokens_per_s": result.tokens_per_s,
            "wall_s": result.wall_s,
            "samples": result.encode.samples,
            "prompts_truncated": result.encode.prompts_truncated,
            "resumed_from_step": result.resumed_from_step if result.resumed_from_step is not None else -1,
        }
        for when, evaluation in (("before", result.eval_before), ("after", result.eval_after)):
            if evaluation is not None:
                metrics.update({f"eval_{when}.{k}": v for k, v in evaluation.model_dump().items()})
        tracked.log_metrics({k: v for k, v in metrics.items() if v is not None})
        example = train_rows[0].prompt + train_rows[0].completion
        version = register(
            cfg,
            out_dir,
            REGISTERED,
            data=[str(cfg.datasets.out_dir)],
            parent=(parent(PHASE).registered, lam3),
            example=(example, pd.DataFrame({"label": ["LABEL_0"], "score": [0.5]})),
            trained_on=[data / "train.jsonl"],
            task="text-classification",
        )
        drop_checkpoints(cfg, spec)
    after = result.eval_after
    quality = (
        f"held-out sign accuracy {after.accuracy:.1%}, good-bad gap {after.gap:.3f}"
        if after is not None and after.gap is not None
        else "no held-out rows"
    )
    return StageResult(
        stage=PHASE,
        outputs=[str(out_dir)],
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - started,
        message=f"reward model: {result.steps} steps on {len(train_rows)} steps' labels, {quality}; "
        f"registered as {version.model_uri}",
    )
