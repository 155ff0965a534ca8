"""LAM4: offline PPO from LAM3 against the reward model, KL-anchored to LAM3; LAM3 again if PPO made it worse.

Data in: LAM3 (`self_boost.out_dir`: the policy's start and the frozen reference), the reward model
(`reward_model.out_dir`), the states of `datasets/reward/train.jsonl` (logged steps of failed and successful
trajectories) and, for the guard, the expert's steps of `datasets/sft/train.jsonl`. The algorithm is in
`lamops.train.offline_rl`'s docstring. Data out: `offline_rl.out_dir`, LAM4, registered in MLflow as `lam4`
with `lam3`'s version as its parent and the reward model's version as a tag.

The guard (`offline_rl.guard`, `lamops.evaluation.guard`): after training, LAM3 and PPO's candidate each
decode a validation slice of *training* steps (whole tasks of `datasets/sft/train.jsonl` in a fixed hash
order, at least `guard.max_rows` steps; the test split is never read), greedily through the agent's
constrained decoder as `evaluate` runs it, and each decoded action is compared with the step's reference
action (SSR on the slice). The decision rule:

- the candidate is LAM4 when its slice SSR is at most `guard.tolerance` points below LAM3's; the registered
  version is tagged `lamops.lam4_source=ppo`;
- otherwise no PPO update helped: LAM3's folder replaces the candidate's, byte for byte and atomically, the
  stage logs one line saying so with both SSRs, and the registered version is tagged
  `lamops.lam4_source=lam3` and `lamops.lam4_guard=<why, with both numbers>`.

With `ppo.candidate_every`, PPO also publishes the policy every that many batches (into a hidden folder
beside `out_dir`, by run name, so a resumed run keeps its own; removed once the stage has published): each is
scored on the slice too and the best (highest slice SSR, then mean reward, then the latest) is the one judged
and, when kept, published as LAM4 (tag `lamops.lam4_source=ppo/step-NNNNNN` for an intermediate one).

The mean PPO reward of each model's decoded actions is measured too but decides only between candidates: it
is what PPO maximised, so a candidate's is biased upwards. Metrics `guard.lam3_ssr`, `guard.candidate_ssr`
(the judged candidate's), `guard.kept` (1/0), `guard.steps` (the slice's size), `guard.tasks`,
`guard.candidates` (scored, the final one included), `guard.final_chosen` (1/0) and `guard.lam3_reward` /
`guard.candidate_reward` go to the stage's MLflow run and its result. With `guard.enabled: false` the
candidate is published unchecked (tagged `lamops.lam4_source=ppo`, no `guard.*` metrics).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lamops.config import Config
from lamops.evaluation.guard import SOURCE_TAG
from lamops.phases import parent, phase
from lamops.stages.base import StageResult
from lamops.tracking import stage_run

if TYPE_CHECKING:
    from lamops.evaluation.guard import Verdict

PHASE = "offline_rl"
REGISTERED = phase(PHASE).registered
REWARD = phase("reward_model").registered
REWARD_MODEL_TAG = "lamops.reward_model"


def run(cfg: Config) -> StageResult:
    from lamops.agents.lam import AgentConfig
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
    from lamops.train.offline_rl import candidates_dir, train_offline_rl

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
        # PPO samples as the agent acts (the env's prompt view); max_len, tokens, temperature: PPO's.
        agent = AgentConfig(**cfg.env.view().model_dump())
        result = train_offline_rl(rows, lam3, lam3, reward_dir, out_dir, c.ppo, spec, agent)
        carry_plan_library(lam3, out_dir)
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
        verdict = _guard(cfg, tracked, lam3, out_dir, reward_dir, spec.name) if c.guard.enabled else None
        if verdict is not None:
            metrics.update(verdict.metrics())
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
        for key, value in (verdict.tags() if verdict is not None else {SOURCE_TAG: "ppo"}).items():
            tag_version(REGISTERED, version.version, key, value)
        drop_checkpoints(cfg, spec)
        shutil.rmtree(candidates_dir(out_dir), ignore_errors=True)  # judged: LAM4 is published
    kl = result.kl_coef if result.kl_coef is not None else float("nan")
    source = "" if verdict is None else f"; {verdict.message()}"
    return StageResult(
        stage=PHASE,
        outputs=[str(out_dir)],
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - started,
        message=f"lam4: {result.steps} PPO batches over {result.prompts} logged states, final KL coefficient "
        f"{kl:.3f}; registered as {version.model_uri} (reward model {reward_ref}){source}",
    )


def _guard(cfg: Config, tracked, lam3: Path, out_dir: Path, reward_dir: Path, run_name: str) -> Verdict:
    """LAM3 and the candidates of run `run_name` (the final one in `out_dir`) on the validation slice; the
    best candidate is published, or LAM3 when it is worse."""
    from lamops.agents.lam import AgentConfig
    from lamops.agents.user_doc import agent_max_len
    from lamops.evaluation.guard import ppo_reward, run_guard, validation_slice
    from lamops.records import StepSFTRow
    from lamops.stages.training import read_rows
    from lamops.train.offline_rl import candidates_dir

    c = cfg.offline_rl
    data = cfg.path(cfg.datasets.out_dir) / "sft" / "train.jsonl"
    rows = validation_slice(read_rows(data, StepSFTRow), c.guard.max_rows)
    tracked.log_dataset(data, rows, "offline_rl_guard_slice", "validation")
    # The agent as `evaluate` builds it (its max_len, the env's prompt view); the decode is greedy.
    agent = AgentConfig(
        max_len=agent_max_len(cfg), **cfg.env.view().model_dump(), batch_size=c.guard.batch_size
    )
    # PPO's intermediate candidates (ppo.candidate_every) act with LAM3's plan library, as the final one does.
    intermediate = sorted((candidates_dir(out_dir) / run_name).glob("step-*"))
    for folder in intermediate:
        carry_plan_library(lam3, folder)
    reward = ppo_reward(reward_dir, c.ppo)
    return run_guard(lam3, out_dir, rows, agent, c.guard.tolerance, reward, intermediate)


def carry_plan_library(source: Path, out_dir: Path) -> None:
    """LAM4 acts with the plan library of the policy it started from (`lamops.agents.plans`)."""
    from lamops.agents.plans import PlanLibrary

    library = PlanLibrary.load(source)
    if library is not None:
        library.save(out_dir)
