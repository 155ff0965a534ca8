"""LAM4: offline PPO from LAM3 against the reward model, KL-anchored to LAM3; no environment interaction.

Data in: LAM3 (`self_boost.out_dir`: the policy's start and the frozen reference), the reward model
(`reward_model.out_dir`) and the states of `datasets/reward/train.jsonl` (logged steps of failed and
successful trajectories). The algorithm is in `lamops.train.offline_rl`'s docstring. Data out:
`offline_rl.out_dir`, LAM4, registered in MLflow as `lam4` with `lam3`'s version as its parent and the reward
model's version as a tag.
"""

from __future__ import annotations

import time

from lamops.config import Config
from lamops.phases import parent, phase
from lamops.stages.base import StageResult
from lamops.tracking import stage_run

PHASE = "offline_rl"
REGISTERED = phase(PHASE).registered
REWARD = phase("reward_model").registered
REWARD_MODEL_TAG = "lamops.reward_model"


def run(cfg: Config) -> StageResult:
    from lamops.records import RewardRow
    from lamops.registry.models import MODEL_SHA_TAG, find_version, model_sha, tag_version
    from lamops.stages.training import (
        digest,
        drop_checkpoints,
        log_history,
        read_rows,
        register,
        train_spec,
    )
    from lamops.train.offline_rl import train_offline_rl

    started = time.perf_counter()
    c = cfg.offline_rl
    data = cfg.path(cfg.datasets.out_dir) / "reward" / "train.jsonl"
    rows = read_rows(data, RewardRow)
    lam3 = cfg.path(cfg.self_boost.out_dir)
    reward_dir = cfg.path(cfg.reward_model.out_dir)
    out_dir = cfg.path(c.out_dir)
    spec = train_spec(cfg, PHASE, c.ppo.model_dump(mode="json"), digest(lam3), digest(reward_dir), data)
    with stage_run(cfg, PHASE, system_metrics=True) as tracked:
        tracked.log_params({"train": cfg.train.model_dump(mode="json"), "run_name": spec.name})
        tracked.log_dataset(data, rows, "offline_rl_states", "training")
        result = train_offline_rl(rows, lam3, lam3, reward_dir, out_dir, c.ppo, spec)
        log_history(tracked, result.history, "offline_rl (lam4)")
        metrics = {
            "steps": result.steps,
            "prompts": result.prompts,
            "prompts_truncated": result.prompts_truncated,
            "kl_coef": result.kl_coef,
            "tokens_per_s": result.tokens_per_s,
            "steps_per_s": result.steps_per_s,
            "wall_s": result.wall_s,
            "resumed_from_step": result.resumed_from_step if result.resumed_from_step is not None else -1,
        }
        last = result.history[-1] if result.history else {}
        metrics.update({f"final.{k}": v for k, v in last.items() if k != "step"})
        # None: not measured; NaN: nothing to average (e.g. no valid action in the last window).
        tracked.log_metrics({k: v for k, v in metrics.items() if v is not None and v == v})
        version = register(
            cfg,
            out_dir,
            REGISTERED,
            data=[str(cfg.datasets.out_dir)],
            parent=(parent(PHASE).registered, lam3),
            example=(rows[0].prompt, rows[0].completion),
            trained_on=[data],
        )
        reward_version = find_version(REWARD, MODEL_SHA_TAG, model_sha(reward_dir))
        reward_ref = f"{REWARD}/{reward_version}" if reward_version is not None else f"{REWARD}/unregistered"
        tag_version(REGISTERED, version.version, REWARD_MODEL_TAG, reward_ref)
        drop_checkpoints(cfg, spec)
    return StageResult(
        stage=PHASE,
        outputs=[str(out_dir)],
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - started,
        message=f"lam4: {result.steps} PPO batches over {result.prompts} logged states, final KL coefficient "
        f"{result.kl_coef if result.kl_coef is not None else float('nan'):.3f}; registered as "
        f"{version.model_uri} (reward model {reward_ref})",
    )
