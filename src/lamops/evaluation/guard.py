"""The LAM4 guard: does offline RL's candidate still take the reference actions as often as LAM3 does?

PPO maximises the reward model's score, and that score can rise while the policy drifts away from the actions
the expert took (the default run of 4b69118: offline SSR 71.2 for LAM4, 85.6 for LAM3). So the `offline_rl`
stage decodes a validation slice of *training* steps with LAM3 and with the candidate before it publishes,
and publishes LAM3's weights as LAM4 when the candidate does worse (the rule: `judge`, and the stage's
docstring).

- `validation_slice`: which steps. Whole tasks of `datasets/sft/train.jsonl` (the expert's steps LAM2 and
  LAM3 trained on; never the test split, which only `evaluate` reads), in a fixed order of their ids' hashes
  until `max_rows` steps: the file is sorted by task id, i.e. by source; a hash order mixes sources and
  families.
- `score_slice`: one model's greedy, grammar-constrained decode of every step (`offline.decide_actions`, the
  agent configured as `evaluate` configures it), its agreement with the reference actions (SSR,
  `metrics.score_step`) and the mean reward PPO gave those actions (`train.offline_rl.action_rewards`).
- `judge`: the decision, a pure function of both scores and the tolerance. Only the agreement decides: the
  reward is what PPO maximised, so the candidate's is biased upwards (it also rises when the policy exploits
  the reward model's errors, the very failure this guard is for); it is logged beside the agreement.
- `best_candidate`: with intermediate candidates (`PPOConfig.candidate_every`: the policy after every few
  batches), the one the guard judges: the highest slice SSR, then the highest mean reward, then the latest
  (the final one wins every tie).
- `run_guard`: score LAM3 and every candidate, judge the best, publish it (an intermediate one is copied over
  the final one's folder) or, on a rejection, `publish_copy` LAM3's folder over the candidate's, byte for byte
  and atomically (`io.replace_dir`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lamops.records import StepSFTRow

if TYPE_CHECKING:
    from lamops.agents.lam import AgentConfig
    from lamops.settings import PPOConfig

log = logging.getLogger(__name__)

SOURCE_TAG = "lamops.lam4_source"  # on the registered lam4 version: "ppo" or "lam3"
GUARD_TAG = "lamops.lam4_guard"  # why LAM3 was published as LAM4 (only then)
SLICE_SALT = "lamops.offline_rl.guard"
# Slack in the comparison: SSRs are percentages rounded to 2 decimals, and 85.6 - 1.0 is 84.6000000001.
_EPSILON = 1e-9

# The mean reward of actions (second argument) taken in states (first argument).
RewardFn = Callable[[Sequence[str], Sequence[str]], float]


def validation_slice(rows: Sequence[StepSFTRow], max_rows: int) -> list[StepSFTRow]:
    """Whole tasks of `rows`, ordered by sha256(SLICE_SALT, task id) and each task's steps by step number,
    until they hold `max_rows` steps: the last task whole, so a few more may come back; at least one task."""
    from lamops.evaluation.offline import whole_tasks

    def key(row: StepSFTRow) -> tuple[bytes, int]:
        return hashlib.sha256(f"{SLICE_SALT}\0{row.task_id}".encode()).digest(), row.step

    return whole_tasks(sorted(rows, key=key), max_rows)


@dataclass(frozen=True)
class SliceScore:
    """One model on the validation slice."""

    ssr: float  # % of the slice's steps whose decoded action matches the reference (metrics.score_step)
    reward: float | None  # mean PPO reward of the decoded actions, in [-0.5, 0.5]; None: not measured
    steps: int
    tasks: int


def score_slice(
    model_dir: Path,
    rows: Sequence[StepSFTRow],
    agent: AgentConfig,
    reward: RewardFn | None = None,
    name: str = "model",
) -> SliceScore:
    """Decode `rows` with the model in `model_dir` (greedy unless `agent.temperature`), score the actions
    against the references and, given `reward`, by the reward model."""
    from lamops.agents.lam import LAMAgent
    from lamops.agents.plans import PlanLibrary
    from lamops.evaluation.metrics import offline_metrics
    from lamops.evaluation.offline import decide_actions, load
    from lamops.progress import progress

    model, tokenizer = load(model_dir)
    with progress(None, f"offline_rl guard: {name}", total=len(rows)) as bar:
        plans = PlanLibrary.load(model_dir)
        scores, actions = decide_actions(LAMAgent(model, tokenizer, agent, plans), rows, bar)
    metrics = offline_metrics(scores)
    mean = reward([r.prompt for r in rows], [a.text for a in actions]) if reward is not None else None
    return SliceScore(
        ssr=float(metrics["ssr"]), reward=mean, steps=int(metrics["steps"]), tasks=int(metrics["tasks"])
    )


def ppo_reward(reward_dir: Path, ppo: PPOConfig) -> RewardFn:
    """The mean reward offline RL gives actions in states (`train.offline_rl.action_rewards`: the floor for
    an action the environment rejects, else the reward model's clipped half score), by the model in
    `reward_dir`."""
    from lamops.train.offline_rl import action_rewards
    from lamops.train.reward_head import load_reward_model

    model, tokenizer = load_reward_model(reward_dir)

    def mean_reward(prompts: Sequence[str], texts: Sequence[str]) -> float:
        return float(action_rewards(model, tokenizer, prompts, texts, ppo)[0].mean())

    return mean_reward


@dataclass(frozen=True)
class Verdict:
    """The guard's decision: `kept` the candidate, or publish LAM3 as LAM4 because of `reason`."""

    kept: bool
    lam3: SliceScore
    candidate: SliceScore
    tolerance: float
    reason: str | None  # None when kept
    chosen: str = "final"  # which candidate was judged: "final" or an intermediate one's folder name
    considered: int = 1  # candidates scored, the final one included

    def tags(self) -> dict[str, str]:
        """The registered lam4 version's tags: where its weights come from and, for LAM3's, why."""
        if self.kept:
            return {SOURCE_TAG: "ppo" if self.chosen == "final" else f"ppo/{self.chosen}"}
        return {SOURCE_TAG: "lam3", GUARD_TAG: self.reason or ""}

    def metrics(self) -> dict[str, float]:
        """`guard.*` metrics for the stage's MLflow run and StageResult."""
        out = {
            "guard.lam3_ssr": self.lam3.ssr,
            "guard.candidate_ssr": self.candidate.ssr,
            "guard.kept": float(self.kept),
            "guard.steps": float(self.lam3.steps),
            "guard.tasks": float(self.lam3.tasks),
            "guard.candidates": float(self.considered),
            "guard.final_chosen": float(self.chosen == "final"),
        }
        for name, score in (("lam3", self.lam3), ("candidate", self.candidate)):
            if score.reward is not None:
                out[f"guard.{name}_reward"] = score.reward
        return out

    def message(self) -> str:
        """One line for the log."""
        if self.kept:
            which = "" if self.considered == 1 else f" ({self.chosen}, best of {self.considered})"
            return (
                f"offline_rl guard: PPO's candidate{which} kept as LAM4: slice SSR "
                f"{self.candidate.ssr:.1f} vs LAM3 {self.lam3.ssr:.1f} (tolerance {self.tolerance:g}, "
                f"{self.lam3.steps} training steps)"
            )
        return f"offline_rl guard: no PPO update helped, LAM3's weights published as LAM4: {self.reason}"


def judge(lam3: SliceScore, candidate: SliceScore, tolerance: float) -> Verdict:
    """Keep the candidate unless its slice SSR falls more than `tolerance` points below LAM3's."""
    if lam3.steps != candidate.steps:
        raise ValueError(f"LAM3 was scored on {lam3.steps} steps, the candidate on {candidate.steps}")
    drop = lam3.ssr - candidate.ssr
    if drop <= tolerance + _EPSILON:
        return Verdict(True, lam3, candidate, tolerance, None)
    reason = (
        f"candidate slice SSR {candidate.ssr:.1f} fell {drop:.1f} points below LAM3's {lam3.ssr:.1f} "
        f"(tolerance {tolerance:g}, {lam3.steps} training steps of {lam3.tasks} tasks)"
    )
    return Verdict(False, lam3, candidate, tolerance, reason)


def best_candidate(scores: Sequence[tuple[str, SliceScore]]) -> int:
    """The index of the candidate to judge among (name, score) pairs in training order (the final one last):
    the highest slice SSR, then the highest mean reward (unmeasured counts lowest), then the latest."""
    if not scores:
        raise ValueError("no candidate to choose from")

    def key(i: int) -> tuple[float, float, int]:
        score = scores[i][1]
        return (score.ssr, score.reward if score.reward is not None else float("-inf"), i)

    return max(range(len(scores)), key=key)


def publish_copy(source: Path, out_dir: Path) -> None:
    """`source`'s save_pretrained folder as `out_dir`, byte for byte: copied into a staging folder beside
    `out_dir`, which then replaces it whole (`io.replace_dir`), so no reader sees a half-copied model."""
    from lamops.io import replace_dir

    with replace_dir(Path(out_dir)) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)


def run_guard(
    lam3_dir: Path,
    candidate_dir: Path,
    rows: Sequence[StepSFTRow],
    agent: AgentConfig,
    tolerance: float,
    reward: RewardFn | None = None,
    intermediate: Sequence[Path] = (),
) -> Verdict:
    """Score LAM3, the `intermediate` candidates (in training order) and the final candidate in
    `candidate_dir` on `rows`; judge the best (`best_candidate`). A kept intermediate candidate's folder is
    copied over the final one's; a rejected candidate's folder is replaced by LAM3's. Logs the verdict's one
    line (a warning when LAM3 is published)."""
    from dataclasses import replace

    if not rows:
        raise ValueError("the guard's validation slice is empty: datasets/sft/train.jsonl has no rows")
    lam3 = score_slice(lam3_dir, rows, agent, reward, "lam3")
    named = [(Path(p).name, Path(p)) for p in intermediate] + [("final", Path(candidate_dir))]
    scores = [(name, score_slice(folder, rows, agent, reward, f"candidate {name}")) for name, folder in named]
    best = best_candidate(scores)
    verdict = replace(judge(lam3, scores[best][1], tolerance), chosen=scores[best][0], considered=len(scores))
    if not verdict.kept:
        publish_copy(lam3_dir, candidate_dir)
    elif verdict.chosen != "final":
        publish_copy(named[best][1], candidate_dir)
    log.log(logging.INFO if verdict.kept else logging.WARNING, "%s", verdict.message())
    return verdict
