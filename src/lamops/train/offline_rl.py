"""LAM4 (phase `offline_rl`): the paper's "offline PPO" of LAM3 against the reward model, with no environment.

Data in: the reward dataset's rows (`prompt` = a logged state of a successful or failed trajectory; only the
prompts are used), the LAM3 policy and reference folders and the reward model (`lamops.train.reward`).
Data out: the LAM4 policy, a save_pretrained MistralForCausalLM + tokenizer.

The algorithm (paper: clipped ratio x advantage from RM rewards, KL to the reference, lr 1.4e-5, batch 8,
mini-batch 1, 4 PPO epochs, target KL 0.1, initial KL coefficient 0.2, rewards normalised to [-0.5, 0.5]).
For PPO batch k = 0, 1, ... (`batch_size` prompts, split evenly over the workers):

1. States: the prompts of batch k (distinct prompts of the rows), a deterministic function of (seed, k, rank)
   (`lamops.train.loop.batch_indices`, the supervised trainers' epoch-permutation stream), each
   `BOS + fit_prompt(prompt)` in `max_len - max_new_tokens` tokens, as the agent fits its prompt.
2. Actions: one action per prompt sampled from the current policy through the grammar-constrained decoder,
   the one evaluation and self-boost act with (`lamops.agents.lam.LAMAgent` at `temperature`: the grammar's
   allowed tokens, the previous plan's copies with their bonus, LAM3's plan library at a first step), each
   row from its own generator seeded from (seed, k, rank). The decoder records every token it wrote and, for
   each token the model chose, the allowed set and the copy bonus it was drawn with (`TokenChoice`); the
   other tokens are forced by the grammar. Every sample is a well-formed action (the failure of unconstrained
   sampling, where 88-94% of samples were invalid and sat at the floor reward, is gone by construction);
   `invalid` in the history counts what the environment still rejects. Under ZeRO-2 every rank holds the
   whole policy, so the engine's module decodes directly; ZeRO-3 would need the parameters gathered for the
   decode (`deepspeed.zero.GatheredParameters`) -- not implemented.
3. Rewards: an action that `parse_action` rejects gets the floor -0.5 without asking the reward model (it was
   trained on valid actions only and its score there means nothing); a valid one gets
   r = clip(s, -1, 1) / 2 from its reward-model score s (`score`, the encoding the RM was trained with).
   Why this normalisation: the RM regresses +-1 labels, so [-1, 1] is its scale and anything beyond is
   overshoot; a fixed map keeps one action's reward independent of its batch (a min-max over 8 samples would
   not), and an invalid action ranks with a confidently bad one.
4. Log-probabilities are those of the distribution the decoder sampled from (`choice_logprobs`: the logits
   of the allowed tokens, the bonus added, at `temperature`), for the chosen tokens only: a forced token has
   probability 1 under every policy and carries no gradient or KL. KL penalty, per token:
   KL_i = mean over the chosen tokens t of (log pi_old(a_t|.) - log pi_ref(a_t|.)), pi_ref = LAM3 on the same
   allowed sets; R_i = r_i - beta * KL_i. Length-normalised, so a long thought is not penalised for its
   length, and the target is in nats per decision.
5. Advantage: A_i = R_i - mean_j R_j over the global batch, the same for every token of completion i. No
   learned value head: the completion is one action scored once, so a per-token critic would only have to
   learn this batch-level baseline, at twice the cost of a tiny policy (and with its own ill-conditioned
   fit on 8 samples). No division by the batch's std: the reward already has a fixed scale, and a batch
   of nearly equal rewards must give ~0 advantage, not amplified noise.
6. `ppo_epochs` passes over the batch, each in a seeded random order, in mini-batches of `mini_batch_size`
   samples per worker (one optimizer step each; global mini-batch = mini_batch_size x workers):
   loss = -mean_t min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps) A_i), rho_t = pi(a_t|.) / pi_old(a_t|.), the
   mean over the chosen tokens of the mini-batch (TRL's token-level masked mean), on the grammar's
   distribution as in 4. pi_old and pi_ref are computed once, when the batch is sampled.
7. beta adapts after each batch (Ziegler et al. 2019; TRL's AdaptiveKLController, gone from TRL with its
   legacy PPOTrainer): e = clip(KL / target_kl - 1, -0.2, 0.2), beta <- beta (1 + e * n / horizon), KL the
   batch's mean KL_i, n = batch_size. TRL's horizon, 10,000 samples, moves beta by at most 0.016% a batch of
   8: over a run of tens of batches it is a constant. The profiles set a horizon of a few batches
   (`kl_horizon`), so beta follows the KL within the run.

Not stated by the paper and chosen here: steps 2-5 above; `mini_batch_size` per worker (TRL's meaning); a
constant learning rate (TRL PPO's default); one pass over the prompts by default.

A step is one PPO batch (sample, score, `ppo_epochs` of updates); checkpoints fall between batches and keep
beta in DeepSpeed's client state, so a resumed run continues exactly where an unbroken one would be.
`train_offline_rl(rows, policy_dir, reference_dir, reward_dir, out_dir, ppo, spec)` drives `offline_rl_loop`
on Ray Train workers; the reference (LAM3, frozen) and the reward model (frozen) live on every worker as plain
torch modules in eval mode. The rows are typed records of `lamops.records` (`RewardRow` or `StepSFTRow`), read
as `row.prompt`.

What this module supplies: the rollout/update structure above (sampling, rewards, KL, advantages, the clipped
loss, beta's controller) and its history records. What it reuses from the shared loop (`lamops.train.loop`):
the launch and data shipping, the optimiser (`make_engine`: AdamW with decay on matrices only, gradient
clipping), the prompt order (`batch_indices`), per-step seeds, the record and checkpoint cadence, the progress
feed and publishing the policy.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from lamops.agents.prompt import fit_prompt
from lamops.env.actions import ActionError, parse_action
from lamops.settings import PPOConfig
from lamops.train.distributed import TrainSpec, grad_norm, resume_state, save_checkpoint, should_checkpoint
from lamops.train.loop import (
    RunResult,
    batch_indices,
    feed_progress,
    fetch,
    launch_loop,
    make_engine,
    publish_final,
    read_fields,
    record_due,
    step_seed,
    worker_context,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from lamops.agents.lam import AgentConfig
    from lamops.records import RewardRow, StepSFTRow

log = logging.getLogger(__name__)

FLOOR_REWARD = -0.5  # the reward of an invalid action, the bottom of the normalised range
KL_ERROR_CLIP = 0.2  # Ziegler et al.'s bound on the controller's proportional error


class PPOResult(RunResult):
    """What the offline RL phase produced (see `lamops.train.loop.RunResult` for the run's fields)."""

    out_dir: str = Field(description="The LAM4 policy and tokenizer, save_pretrained layout.")
    steps: int = Field(description="PPO batches of the whole run (resumed ones included).")
    prompts: int = Field(description="Distinct prompts the batches are drawn from.")
    prompts_truncated: int = Field(description="Prompts fitted to max_len - max_new_tokens.")
    history: list[dict[str, float]] = Field(description="One record per `log_every` PPO batches of this run.")
    kl_coef: float | None = Field(description="beta after the last batch of this run.")
    tokens_per_s: float | None = Field(
        description="Prompt + completion tokens x ppo_epochs per second, sampling included, all workers."
    )
    steps_per_s: float | None = Field(description="PPO batches per second over this run.")


# ---------------------------------------------------------------------------------------------- pure parts


def normalise_rewards(scores: Sequence[float] | np.ndarray, valid: Sequence[bool] | np.ndarray) -> np.ndarray:
    """Rewards in [-0.5, 0.5]: clip(score, -1, 1) / 2 for a valid action, -0.5 for an invalid one (whose
    score is ignored and may be NaN)."""
    scores, valid = np.asarray(scores, dtype=np.float64), np.asarray(valid, dtype=bool)
    return np.where(valid, np.clip(np.nan_to_num(scores), -1.0, 1.0) / 2, FLOOR_REWARD)


def adaptive_kl_coef(coef: float, current_kl: float, n_steps: int, *, target: float, horizon: float) -> float:
    """Ziegler et al. 2019's adaptive KL controller (TRL's AdaptiveKLController.update): move beta by at
    most 20% x n_steps / horizon towards the coefficient that brings the KL to `target`."""
    error = float(np.clip(current_kl / target - 1.0, -KL_ERROR_CLIP, KL_ERROR_CLIP))
    return coef * (1.0 + error * n_steps / horizon)


def sequence_advantages(rewards: torch.Tensor, kls: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """A_i = (r_i - beta KL_i) - mean_j (r_j - beta KL_j) over the whole (global) batch."""
    penalised = rewards - kl_coef * kls
    return penalised - penalised.mean()


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, to minimise, and the share of tokens where the clip binds.

    `logp`, `old_logp`, `mask`: (batch, tokens); `advantages`: (batch,), one per sequence. The loss is the
    mean over the mask of max(-A rho, -A clip(rho, 1 - eps, 1 + eps))."""
    import torch

    ratio = (logp - old_logp).exp()
    advantage = advantages[:, None]
    unclipped = -advantage * ratio
    clipped = -advantage * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    mask = mask.to(logp.dtype)
    count = mask.sum().clamp(min=1.0)
    loss = (torch.maximum(unclipped, clipped) * mask).sum() / count
    clip_fraction = ((clipped > unclipped).to(logp.dtype) * mask).sum() / count
    return loss, clip_fraction.detach()


def is_valid_action(text: str) -> bool:
    """Whether the environment would accept `text` as an action (`lamops.env.actions.parse_action`)."""
    try:
        parse_action(text)
    except ActionError:
        return False
    return True


def action_rewards(
    reward_model: Any, reward_tokenizer: Any, prompts: Sequence[str], texts: Sequence[str], ppo: PPOConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3 of the algorithm for actions `texts` taken in states `prompts`: (rewards, the reward model's
    raw scores (NaN where not asked), valid). Only valid actions go to the reward model, `ppo.max_len`
    tokens each (the RM's training encoding), `ppo.reward_batch_size` at a time."""
    from lamops.train.reward_head import score

    valid = np.array([is_valid_action(t) for t in texts], dtype=bool)
    raw = np.full(len(texts), np.nan)
    if valid.any():
        chosen = np.flatnonzero(valid)
        raw[chosen] = score(
            reward_model,
            reward_tokenizer,
            [prompts[i] for i in chosen],
            [texts[i] for i in chosen],
            max_len=ppo.max_len,
            batch_size=ppo.reward_batch_size,
        )
    return normalise_rewards(raw, valid), raw, valid


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, room: int) -> tuple[list[int], int]:
    """`BOS + prompt` fitted into `room` tokens (BOS included) by `fit_prompt`, and the tokens cut."""
    if tokenizer.bos_token_id is None:
        raise ValueError("the tokenizer needs a BOS token: train it with lamops.models.tokenizer")
    ids, cut = fit_prompt(tokenizer, prompt, room - 1)
    return [tokenizer.bos_token_id, *ids], cut


def ppo_steps(num_prompts: int, ppo: PPOConfig, cap: int | None = None) -> int:
    """PPO batches of a run: `ppo.max_steps`, else enough batches for `ppo.epochs` passes over the prompts;
    at most `cap` (a profile's TrainSpec.max_steps)."""
    if num_prompts < 1:
        raise ValueError("no prompts to sample from")
    steps = (
        ppo.max_steps
        if ppo.max_steps is not None
        else max(1, math.ceil(ppo.epochs * num_prompts / ppo.batch_size))
    )
    return min(steps, cap) if cap is not None else steps


def per_worker(ppo: PPOConfig, world_size: int) -> int:
    """Samples each worker draws per batch; the batch must split evenly into workers and mini-batches."""
    if ppo.batch_size % world_size:
        raise ValueError(f"batch_size {ppo.batch_size} does not split over {world_size} workers")
    share = ppo.batch_size // world_size
    if share % ppo.mini_batch_size:
        raise ValueError(
            f"each of {world_size} workers gets {share} samples per batch, not a multiple of "
            f"mini_batch_size {ppo.mini_batch_size}"
        )
    return share


# ---------------------------------------------------------------------------------------------- rollouts


def grammar_samples(agent: Any, texts: Sequence[str], seed: int) -> list[Any]:
    """One action per prompt sampled through the agent's grammar-constrained decoder (`LAMAgent.act_prompts`
    at its temperature, copies and plan library as when it acts), with token ids and choices recorded; row i
    draws from a generator seeded with (seed, i)."""
    import torch

    generators = [torch.Generator().manual_seed(seed * 1_000 + i) for i in range(len(texts))]
    return agent.act_prompts(list(texts), generator=generators, record=True)


def rollout_batch(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Right-padded `prompt + response` rows: `input_ids`, `attention_mask`, and per row where its response
    starts (`prompt_lens`) and how long it is (`response_lens`)."""
    import torch

    rows = [[*p, *r] for p, r in zip(prompts, responses, strict=True)]
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "prompt_lens": torch.tensor([len(p) for p in prompts]),
        "response_lens": torch.tensor([len(r) for r in responses]),
    }


def choice_logprobs(
    logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    choices: Sequence[Sequence[Any]],
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities, on the distribution the decoder sampled from (`decoding.choice_scores`: allowed
    tokens only, the copy bonus added, at `temperature`), of the tokens each row's model chose, left-aligned
    over its response: (rows, longest response) and the mask of chosen tokens; forced tokens (probability 1
    under the grammar) are masked out. `logits`: the model's output on `batch["input_ids"]`; `choices[r]`:
    row r's `TokenChoice`s."""
    import torch

    from lamops.agents.decoding import choice_scores

    longest = int(batch["response_lens"].max())
    logp = torch.zeros((len(choices), longest), dtype=logits.dtype, device=logits.device)
    mask = torch.zeros((len(choices), longest), dtype=torch.bool, device=logits.device)
    input_ids = batch["input_ids"].to(logits.device)
    for row, row_choices in enumerate(choices):
        start = int(batch["prompt_lens"][row])
        for choice in row_choices:
            at = start + choice.position  # the chosen token's index in the row; its logits are at at - 1
            scores = choice_scores(logits[row, at - 1], choice) / temperature
            logp[row, choice.position] = torch.log_softmax(scores, -1)[input_ids[row, at]]
            mask[row, choice.position] = True
    return logp, mask


def _logprobs_of(
    model: Any, batch: dict[str, torch.Tensor], choices: Sequence[Sequence[Any]], temperature: float
) -> tuple[Any, Any]:
    device = next(model.parameters()).device
    logits = model(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        use_cache=False,
    ).logits
    return choice_logprobs(logits.float(), batch, choices, temperature)


# ---------------------------------------------------------------------------------------------- driver


def train_offline_rl(
    rows: Sequence[RewardRow | StepSFTRow],
    policy_dir: Path,
    reference_dir: Path,
    reward_dir: Path,
    out_dir: Path,
    ppo: PPOConfig,
    spec: TrainSpec,
    agent: AgentConfig | None = None,
) -> PPOResult:
    """Optimise the policy in `policy_dir` (LAM3) against the reward model in `reward_dir`, with a KL
    penalty to `reference_dir` (LAM3 again), on the states of `rows` (their `.prompt`); publish LAM4 in
    `out_dir`. The run stops at `ppo_steps(...)` batches, capped by `spec.max_steps`; a run of the same
    `spec.name` resumes from its last checkpoint, beta included. With `ppo.candidate_every`, the policy after
    every that many batches (before the last) is published too, in
    `candidates_dir(out_dir)/<spec.name>/step-NNNNNN`."""
    from transformers import AutoTokenizer

    from lamops.agents.lam import AgentConfig

    for role, folder in (("policy", policy_dir), ("reference", reference_dir), ("reward model", reward_dir)):
        if not (Path(folder) / "config.json").is_file():
            raise FileNotFoundError(
                f"{role} folder {folder} has no config.json; expected a save_pretrained one"
            )
    tokenizer = AutoTokenizer.from_pretrained(policy_dir, local_files_only=True)
    reference_vocab = AutoTokenizer.from_pretrained(reference_dir, local_files_only=True).get_vocab()
    if reference_vocab != tokenizer.get_vocab():
        raise ValueError(f"the reference {reference_dir} has another vocabulary than the policy {policy_dir}")
    share = per_worker(ppo, spec.num_workers)
    texts: list[str] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        (prompt,) = read_fields(row, index, ("prompt",), "offline RL")
        if prompt not in seen:  # a state logged twice is not twice as important
            seen.add(prompt)
            texts.append(prompt)
    room = ppo.max_len - ppo.max_new_tokens
    prompts, truncated = [], 0
    for text in texts:
        _, cut = encode_prompt(tokenizer, text, room)
        prompts.append({"text": text})
        truncated += cut > 0
    steps = ppo_steps(len(prompts), ppo, cap=spec.max_steps)
    log.info(
        "offline RL %r: %d prompts (%d fitted), %d PPO batches of %d (%d per worker) on %d workers",
        spec.name,
        len(prompts),
        truncated,
        steps,
        ppo.batch_size,
        share,
        spec.num_workers,
    )
    launched = launch_loop(
        offline_rl_loop,
        spec,
        steps,
        ppo,
        out_dir,
        data={"prompts": prompts},
        policy_dir=str(Path(policy_dir).resolve()),
        reference_dir=str(Path(reference_dir).resolve()),
        reward_dir=str(Path(reward_dir).resolve()),
        agent=(agent or AgentConfig()).model_dump(mode="json"),
        candidates_dir=str((candidates_dir(Path(out_dir)) / spec.name).resolve()),
    )
    return PPOResult(
        **launched.run_fields(out_dir, steps),
        prompts=len(prompts),
        prompts_truncated=truncated,
        kl_coef=launched.returned.get("kl_coef"),
        steps_per_s=launched.returned.get("steps_per_s"),
    )


def candidates_dir(out_dir: Path) -> Path:
    """Where a run publishing to `out_dir` puts its intermediate candidates (`PPOConfig.candidate_every`): a
    hidden folder beside it, which the `offline_rl` stage removes once the guard has chosen."""
    return Path(out_dir).parent / f".{Path(out_dir).name}.candidates"


# ---------------------------------------------------------------------------------------------- worker


def offline_rl_loop(config: dict) -> dict[str, Any] | None:
    """The Ray Train per-worker loop; `train_offline_rl` builds its `config`. See the module docstring for
    the algorithm; rank 0 returns the history and publishes the policy."""
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    from lamops.agents.lam import AgentConfig, LAMAgent
    from lamops.agents.plans import PlanLibrary
    from lamops.models.factory import make_model
    from lamops.settings import ModelSpec
    from lamops.train.reward_head import load_reward_model

    spec, rank, world = worker_context(config)
    ppo = PPOConfig.model_validate(config["settings"])
    prompts = fetch(config["prompts"])
    share = per_worker(ppo, world)
    total = ppo_steps(len(prompts), ppo, cap=spec.max_steps)
    policy, tokenizer = make_model(ModelSpec(source="pretrained", path=config["policy_dir"]))
    reference = AutoModelForCausalLM.from_pretrained(
        config["reference_dir"], dtype=policy.dtype, local_files_only=True
    )
    reference.requires_grad_(False).eval()
    # The reward model's policy is LAM3, the reference: shared rather than loaded twice when it is the same
    # files (the reward_model stage hard-links them).
    reward_model, reward_tokenizer = load_reward_model(
        Path(config["reward_dir"]), shared=(Path(config["reference_dir"]), reference, tokenizer)
    )
    # A constant learning rate (TRL PPO's default): no scheduler.
    engine = make_engine(
        policy, spec, ppo, micro_batch_size=ppo.mini_batch_size, gradient_accumulation_steps=1
    )
    # The sampler: the policy acting through the grammar, as evaluation and self-boost decode it.
    agent_settings = {
        **config["agent"],
        "max_len": ppo.max_len,
        "max_new_tokens": ppo.max_new_tokens,
        "temperature": ppo.temperature,
        "batch_size": share,
    }
    agent = LAMAgent(
        engine.module, tokenizer, AgentConfig(**agent_settings), PlanLibrary.load(Path(config["policy_dir"]))
    )
    restored = resume_state(engine)
    if restored is not None and "kl_coef" not in restored[1]:
        raise RuntimeError("the checkpoint holds no kl_coef: was its run name used by another phase?")
    start, kl_coef = (restored[0], float(restored[1]["kl_coef"])) if restored else (0, ppo.init_kl_coef)
    device = engine.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    history: list[dict[str, float]] = []
    window: list[dict[str, float]] = []
    run_start = time.perf_counter()
    run_tokens = 0.0
    step = start
    while step < total:
        step_start = time.perf_counter()
        indices = batch_indices(
            step, rank=rank, world_size=world, micro_batch_size=share, num_samples=len(prompts), seed=ppo.seed
        )
        texts_in = [prompts[i]["text"] for i in indices]
        # 1-3: sample through the grammar, check, score.
        engine.module.eval()
        decoded = grammar_samples(agent, texts_in, step_seed(ppo.seed, step, rank))
        prompt_ids = [agent.decoder.prompt_ids(t)[0] for t in texts_in]
        responses = [list(d.token_ids) for d in decoded]
        choices = [d.choices for d in decoded]
        texts = [d.text for d in decoded]
        rewards, raw, valid = action_rewards(reward_model, reward_tokenizer, texts_in, texts, ppo)
        batch = rollout_batch(prompt_ids, responses, pad_id)
        with torch.no_grad():
            old_logp, mask = _logprobs_of(engine.module, batch, choices, ppo.temperature)
            ref_logp, _ = _logprobs_of(reference, batch, choices, ppo.temperature)
        # Per-token KL, averaged over each action's chosen tokens (forced ones have none).
        kls = ((old_logp - ref_logp) * mask).sum(1) / mask.sum(1).clamp(min=1)
        # 4-5: every rank needs the whole batch's rewards and KLs for the baseline.
        local = torch.stack(
            [
                torch.as_tensor(rewards, dtype=torch.float32, device=device),
                kls.to(device=device, dtype=torch.float32),
                torch.as_tensor(np.nan_to_num(raw), dtype=torch.float32, device=device),
                torch.as_tensor(valid, dtype=torch.float32, device=device),
            ]
        )
        gathered = [torch.zeros_like(local) for _ in range(world)]
        dist.all_gather(gathered, local)
        everyone = torch.cat(gathered, dim=1)  # (4, batch_size), rank-major: rank r's samples at r*share
        advantages = sequence_advantages(everyone[0], everyone[1], kl_coef)[rank * share : (rank + 1) * share]
        rollout_s = time.perf_counter() - step_start
        # 6: PPO epochs over the sampled batch.
        engine.module.train()
        losses, clips = [], []
        for epoch in range(ppo.ppo_epochs):
            order = np.random.default_rng([ppo.seed, step, rank, epoch]).permutation(share)
            for start_at in range(0, share, ppo.mini_batch_size):
                members = order[start_at : start_at + ppo.mini_batch_size].tolist()
                mini = rollout_batch(
                    [prompt_ids[i] for i in members], [responses[i] for i in members], pad_id
                )
                logp, mini_mask = _logprobs_of(engine, mini, [choices[i] for i in members], ppo.temperature)
                width = logp.shape[1]
                loss, clip = clipped_policy_loss(
                    logp,
                    old_logp[members, :width].to(device),
                    advantages[members],
                    mini_mask,
                    ppo.clip_range,
                )
                engine.backward(loss)
                engine.step()
                losses.append(loss.item())
                clips.append(clip.item())
        # 7: adapt beta to the KL this batch was sampled at.
        batch_kl = everyone[1].mean().item()
        valid_count = everyone[3].sum().item()
        sums = torch.tensor(
            [
                float(np.mean(losses)),
                float(np.mean(clips)),
                float(batch["attention_mask"].sum()) * ppo.ppo_epochs,
                float(batch["response_lens"].sum()),
                float(mask.sum()),
            ],
            dtype=torch.float64,
            device=device,
        )
        dist.all_reduce(sums)
        step_s = time.perf_counter() - step_start
        record = {
            "step": float(step + 1),
            "loss": sums[0].item() / world,
            "clip_frac": sums[1].item() / world,
            "kl": batch_kl,
            "kl_coef": kl_coef,
            "score": everyone[2].sum().item() / valid_count if valid_count else float("nan"),
            "reward": everyone[0].mean().item(),
            "invalid": 1.0 - valid_count / ppo.batch_size,
            "response_tokens": sums[3].item() / ppo.batch_size,
            "chosen_tokens": sums[4].item() / ppo.batch_size,
            "lr": ppo.lr,
            "grad_norm": grad_norm(engine),
            "tokens_per_s": sums[2].item() / step_s,
            "rollout_share": rollout_s / step_s,
        }
        run_tokens += sums[2].item()
        kl_coef = adaptive_kl_coef(
            kl_coef, batch_kl, ppo.batch_size, target=ppo.target_kl, horizon=ppo.kl_horizon
        )
        step += 1
        window.append(record)
        if record_due(step, total, ppo.log_every, spec):
            history.append(_mean_record(window))
            window = []
            feed_progress(rank, history[-1])
        if ppo.candidate_every and step % ppo.candidate_every == 0 and step < total:
            publish_final(engine, tokenizer, Path(config["candidates_dir"]) / f"step-{step:06d}", rank)
        if should_checkpoint(step, spec):
            save_checkpoint(
                engine,
                step,
                {"reward": record["reward"], "kl": batch_kl, "kl_coef": kl_coef},
                state={"kl_coef": kl_coef},
            )
    run_s = time.perf_counter() - run_start
    publish_final(engine, tokenizer, Path(config["out_dir"]), rank)
    if rank != 0:
        return None
    ran = step > start
    return {
        "start_step": start,
        "steps": total,
        "history": history,
        "kl_coef": kl_coef if ran else None,
        "tokens_per_s": run_tokens / run_s if ran else None,
        "steps_per_s": (step - start) / run_s if ran else None,
    }


def _mean_record(window: list[dict[str, float]]) -> dict[str, float]:
    """One history record for a window of batches: means, except the step, beta, lr and grad_norm, which
    are the last batch's."""
    last = window[-1]
    keep = {"step", "kl_coef", "lr", "grad_norm"}
    return {key: last[key] if key in keep else float(np.nanmean([r[key] for r in window])) for key in last}
