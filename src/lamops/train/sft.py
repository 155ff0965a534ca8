"""Supervised fine-tuning with the loss on the completion only: the one trainer of LAM1 (plan_pretrain), LAM2
(imitate) and LAM3 (self_boost).

A sample is `BOS + prompt + completion + EOS`; the prompt's positions are labelled -100 so the loss counts the
target tokens only (paper: LAM1 "loss on target tokens only", LAM2/LAM3 completion-only SFT). Too long a
sample has its prompt fitted by `lamops.agents.prompt.fit_prompt`: the canvas loses lines from its end first,
so the controls and the request survive; a completion that alone does not fit is cut on the right and counted.

Driver side: `train_sft(rows, base, tokenizer_dir, out_dir, sft, spec)` encodes the rows, ships them through
Ray's object store and runs `sft_loop` on `spec.num_workers` Ray Train workers with DeepSpeed
(`lamops.train.distributed.launch`). Worker side: `sft_loop(config)`. The data order is a pure function of
(seed, step, rank), so a resumed run sees exactly the batches an unbroken one would have seen.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from lamops.agents.prompt import fit_prompt
from lamops.settings import ModelSpec, SFTConfig
from lamops.train.distributed import (
    TrainSpec,
    ds_engine,
    grad_norm,
    launch,
    load_checkpoint,
    save_checkpoint,
    should_checkpoint,
    spec_from,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label torch's cross-entropy skips


class EncodeStats(BaseModel):
    """What encoding a dataset did to it."""

    samples: int
    tokens: int = Field(description="Tokens of all encoded samples, BOS and EOS included.")
    target_tokens: int = Field(description="Tokens the loss counts (completion + EOS).")
    prompts_truncated: int = Field(description="Samples whose prompt was cut to fit max_len.")
    completions_truncated: int = Field(description="Samples whose completion alone exceeded max_len.")


class SFTResult(BaseModel):
    """What an SFT phase produced."""

    out_dir: str = Field(description="The trained model and tokenizer, save_pretrained layout.")
    steps: int = Field(description="Optimizer steps of the whole run (resumed ones included).")
    final_loss: float | None = Field(description="Mean target-token loss of the last logged window.")
    tokens_per_s: float | None = Field(description="Non-pad tokens per second over this run, all workers.")
    history: list[dict[str, float]] = Field(description="One record per `log_every` steps of this run.")
    resumed_from_step: int | None
    encode: EncodeStats
    run_path: str = Field(description="Ray Train's run folder (checkpoints).")
    wall_s: float


# ---------------------------------------------------------------------------------------------- pure parts


def encode_sample(
    tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_len: int
) -> dict[str, Any]:
    """`BOS + prompt + completion + EOS` as `input_ids`, with `labels` -100 on BOS and the prompt.

    Prompt and completion are tokenized apart (no special tokens), as at inference, where the completion is
    generated after the prompt's last token. Beyond `max_len`, the prompt is fitted by
    `lamops.agents.prompt.fit_prompt` (canvas lines first, then old actions, its start last), as the agent
    fits it at inference. A
    completion that does not fit even without a prompt keeps its first `max_len - 1` tokens and no EOS (it
    did not end there). `prompt_cut` / `completion_cut` say how many prompt / target (completion + EOS)
    tokens were dropped.
    """
    if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs BOS and EOS tokens: train it with lamops.models.tokenizer")
    target = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    completion_cut = 0
    room = max_len - 1 - len(target)  # what the prompt may keep after BOS and the target
    if room < 0:
        completion_cut = len(target) - (max_len - 1)
        target = target[: max_len - 1]
    prompt_ids, prompt_cut = fit_prompt(tokenizer, prompt, room)
    context = [tokenizer.bos_token_id, *prompt_ids]
    return {
        "input_ids": context + target,
        "labels": [IGNORE_INDEX] * len(context) + target,
        "prompt_cut": prompt_cut,
        "completion_cut": completion_cut,
    }


def encode_rows(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict[str, Any]], max_len: int
) -> tuple[list[dict[str, np.ndarray]], EncodeStats]:
    """`encode_sample` over `{prompt, completion, ...}` rows: compact int32 arrays and what was cut."""
    samples: list[dict[str, np.ndarray]] = []
    tokens = target_tokens = prompts_cut = completions_cut = 0
    for index, row in enumerate(rows):
        try:
            prompt, completion = row["prompt"], row["completion"]
        except KeyError as error:
            raise ValueError(
                f"row {index} has no {error}: SFT rows need `prompt` and `completion`"
            ) from error
        encoded = encode_sample(tokenizer, prompt, completion, max_len)
        labels = np.asarray(encoded["labels"], dtype=np.int32)
        samples.append({"input_ids": np.asarray(encoded["input_ids"], dtype=np.int32), "labels": labels})
        tokens += len(labels)
        target_tokens += int((labels != IGNORE_INDEX).sum())
        prompts_cut += encoded["prompt_cut"] > 0
        completions_cut += encoded["completion_cut"] > 0
    if completions_cut:
        log.warning(
            "%d of %d completions exceed max_len=%d and were cut", completions_cut, len(rows), max_len
        )
    stats = EncodeStats(
        samples=len(samples),
        tokens=tokens,
        target_tokens=target_tokens,
        prompts_truncated=prompts_cut,
        completions_truncated=completions_cut,
    )
    return samples, stats


class SFTCollator:
    """Pads a list of `{input_ids, labels}` to the batch's longest: right padding with `pad_token_id`,
    labels -100 on padding, and an attention mask.

    The padding is TRL's own `DataCollatorForLanguageModeling` (trl >= 0.20 replaced
    `DataCollatorForCompletionOnlyLM` with it: labels are masked when the dataset is prepared, as
    `encode_sample` does, and the collator only pads). It is a plain callable with no Trainer or Accelerate
    state, so it runs as is inside a Ray Train worker under DeepSpeed. Extra keys of a sample are dropped.
    """

    def __init__(self, pad_token_id: int) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.pad_token_id = pad_token_id
        self._collate = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=False)

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        return self._collate(
            [
                {"input_ids": np.asarray(s["input_ids"]).tolist(), "labels": np.asarray(s["labels"]).tolist()}
                for s in samples
            ]
        )


def planned_steps(num_samples: int, sft: SFTConfig, world_size: int, cap: int | None = None) -> int:
    """Optimizer steps of a run: `sft.max_steps`, else enough global batches for `sft.epochs` passes; at
    most `cap` (a profile's TrainSpec.max_steps)."""
    if num_samples < 1:
        raise ValueError("no samples to train on")
    if sft.max_steps is not None:
        steps = sft.max_steps
    else:
        global_batch = sft.micro_batch_size * sft.gradient_accumulation_steps * world_size
        steps = max(1, math.ceil(sft.epochs * num_samples / global_batch))
    return min(steps, cap) if cap is not None else steps


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """The multiplier of the peak lr for optimizer step `step` (0-based): linear warm-up reaching 1 at step
    `warmup_steps - 1`, then cosine or linear decay towards 0 (never reached: the last step still learns)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps + 1) / max(1, total_steps - warmup_steps + 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"unknown schedule {schedule!r}: cosine or linear")


def batch_indices(
    micro_step: int, *, rank: int, world_size: int, micro_batch_size: int, num_samples: int, seed: int
) -> list[int]:
    """Sample indices of rank `rank`'s micro-batch number `micro_step` (counted over the whole run).

    The data is a stream of epochs, each a permutation seeded by (seed, epoch); global micro-batch m is
    stream positions [m W B, (m+1) W B) and rank r takes its r-th slice of B. A pure function of its
    arguments, so ranks never overlap and a resumed run reads exactly what an unbroken run reads."""
    start = (micro_step * world_size + rank) * micro_batch_size
    indices = []
    for position in range(start, start + micro_batch_size):
        epoch, offset = divmod(position, num_samples)
        indices.append(int(_epoch_order(num_samples, seed, epoch)[offset]))
    return indices


_ORDER_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    key = (num_samples, seed, epoch)
    if key not in _ORDER_CACHE:
        if len(_ORDER_CACHE) > 4:
            _ORDER_CACHE.clear()
        _ORDER_CACHE[key] = np.random.default_rng([seed, epoch]).permutation(num_samples)
    return _ORDER_CACHE[key]


# ---------------------------------------------------------------------------------------------- driver


def train_sft(
    rows: Sequence[dict[str, Any]],
    base: ModelSpec | Path,
    tokenizer_dir: Path | None,
    out_dir: Path,
    sft: SFTConfig,
    spec: TrainSpec,
) -> SFTResult:
    """Fine-tune `base` on `rows` (`{prompt, completion}`) and publish the model and tokenizer in `out_dir`.

    `base`: a tiny `ModelSpec` (built from `tokenizer_dir`, the pipeline's trained tokenizer), or an earlier
    phase's `save_pretrained` folder (a Path, or `ModelSpec(source="pretrained")`), which brings its own
    tokenizer; `tokenizer_dir` may then be None or must hold the same vocabulary. The run stops at
    `planned_steps(...)`, capped by `spec.max_steps`; a run of the same `spec.name` resumes from its last
    checkpoint. `out_dir` must be reachable from the rank-0 worker (local runs, or a shared filesystem).
    """
    import ray
    from transformers import AutoTokenizer

    from lamops.compute import ensure_ray

    model_dir = _model_dir(base)
    if model_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        if tokenizer_dir is not None:
            given = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
            if given.get_vocab() != tokenizer.get_vocab():
                raise ValueError(
                    f"tokenizer {tokenizer_dir} differs from the one saved with the base model {model_dir}; "
                    "pass tokenizer_dir=None to use the model's own"
                )
    else:
        if tokenizer_dir is None or not (Path(tokenizer_dir) / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"a tiny base model needs the trained tokenizer folder, got {tokenizer_dir}: run the "
                "tokenizer stage (lamops.models.tokenizer.train_tokenizer) first"
            )
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    samples, stats = encode_rows(tokenizer, rows, sft.max_len)
    steps = planned_steps(len(samples), sft, spec.num_workers, cap=spec.max_steps)
    log.info(
        "SFT %r: %d samples (%d tokens, %d target), %d steps on %d workers",
        spec.name,
        stats.samples,
        stats.tokens,
        stats.target_tokens,
        steps,
        spec.num_workers,
    )
    ensure_ray()
    loop_config = {
        "samples": ray.put(samples),
        "model_dir": str(model_dir) if model_dir is not None else None,
        "model_spec": base.model_dump(mode="json") if model_dir is None else None,
        "tokenizer_dir": str(tokenizer_dir) if model_dir is None else None,
        "out_dir": str(Path(out_dir).resolve()),
        "sft": sft.model_dump(mode="json"),
    }
    result = launch(sft_loop, loop_config, spec.model_copy(update={"max_steps": steps}))
    returned = result.return_value or {}
    history = returned.get("history", [])
    return SFTResult(
        out_dir=str(out_dir),
        steps=steps,
        final_loss=history[-1]["loss"] if history else None,
        tokens_per_s=returned.get("tokens_per_s"),
        history=history,
        resumed_from_step=result.resumed_from_step,
        encode=stats,
        run_path=result.path,
        wall_s=result.wall_s,
    )


def _model_dir(base: ModelSpec | Path) -> Path | None:
    if isinstance(base, ModelSpec):
        return Path(base.path) if base.source == "pretrained" else None
    path = Path(base)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: no config.json; expected a save_pretrained folder of an earlier phase"
        )
    return path


# ---------------------------------------------------------------------------------------------- worker


def sft_loop(config: dict) -> dict[str, Any] | None:
    """The Ray Train per-worker loop; `train_sft` builds its `config`.

    Each rank reads its own slice of every global batch (`batch_indices`); DeepSpeed averages gradients,
    clips them to `grad_clip` and steps torch AdamW and the warm-up + decay schedule. Every `log_every` steps
    the ranks agree on loss, lr, grad_norm and tokens/s; rank 0 returns that history (the driver logs it),
    and saves the final model and tokenizer to `config["out_dir"]`."""
    import ray
    import ray.train
    import torch
    import torch.distributed as dist

    from lamops.models.factory import make_model, save

    spec = spec_from(config)
    sft = SFTConfig.model_validate(config["sft"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    samples = config["samples"]
    if isinstance(samples, ray.ObjectRef):
        samples = ray.get(samples)
    total = planned_steps(len(samples), sft, world, cap=spec.max_steps)
    torch.manual_seed(sft.seed)
    if config.get("model_dir"):
        model, tokenizer = make_model(ModelSpec(source="pretrained", path=config["model_dir"]))
    else:
        model, tokenizer = make_model(
            ModelSpec.model_validate(config["model_spec"]), Path(config["tokenizer_dir"])
        )
    collate = SFTCollator(tokenizer.pad_token_id)

    def schedule(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        def factor(step: int) -> float:
            return lr_factor(step, warmup_steps=sft.warmup_steps, total_steps=total, schedule=sft.schedule)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    engine = ds_engine(
        model,
        spec.deepspeed_config,
        _adamw(sft),
        schedule,
        micro_batch_size=sft.micro_batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation_steps,
        # Clipping is a hyperparameter of the recipe; the rest of the DeepSpeed file is hardware.
        overrides={"gradient_clipping": sft.grad_clip},
    )
    start = load_checkpoint(engine) or 0
    engine.train()
    device = engine.device
    history: list[dict[str, float]] = []
    window = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, micro-batches, non-pad tokens
    window_start = run_start = time.perf_counter()
    run_tokens = 0.0
    step = window_first = start
    while step < total:
        for micro in range(sft.gradient_accumulation_steps):
            indices = batch_indices(
                step * sft.gradient_accumulation_steps + micro,
                rank=rank,
                world_size=world,
                micro_batch_size=sft.micro_batch_size,
                num_samples=len(samples),
                seed=sft.seed,
            )
            batch = {k: v.to(device) for k, v in collate([samples[i] for i in indices]).items()}
            loss = engine(**batch).loss
            engine.backward(loss)
            engine.step()
            window += torch.tensor(
                [loss.item(), 1.0, float(batch["attention_mask"].sum())], dtype=torch.float64, device=device
            )
        step += 1
        last = step == total
        if step % sft.log_every == 0 or last or should_checkpoint(step, spec):
            dist.all_reduce(window)
            elapsed = time.perf_counter() - window_start
            record = {
                "step": float(step),
                "loss": window[0].item() / window[1].item(),
                "lr": sft.lr
                * lr_factor(
                    step - 1, warmup_steps=sft.warmup_steps, total_steps=total, schedule=sft.schedule
                ),
                "grad_norm": grad_norm(engine),
                "tokens_per_s": window[2].item() / elapsed,
                "step_time_s": elapsed / (step - window_first),
            }
            window_first = step
            run_tokens += window[2].item()
            history.append(record)
            if rank == 0:
                report_progress(spec.name, step, total, record)
            window.zero_()
            if should_checkpoint(step, spec):
                save_checkpoint(engine, step, {"loss": record["loss"]})
            window_start = time.perf_counter()  # checkpoint time is not training throughput
    run_s = time.perf_counter() - run_start
    _save_final(engine, tokenizer, Path(config["out_dir"]), rank, save)
    if rank != 0:
        return None
    return {
        "start_step": start,
        "steps": total,
        "history": history,
        "tokens_per_s": run_tokens / run_s if step > start else None,
    }


def report_progress(name: str, step: int, total: int, record: dict[str, float]) -> None:
    """Rank 0's progress record for the driver's progress bar (`distributed.publish_progress`); `name` and
    `total` are the bar's already."""
    from lamops.train.distributed import publish_progress

    publish_progress(record)


def _adamw(sft: SFTConfig) -> Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]:
    """torch AdamW (no DeepSpeed JIT build) with weight decay on matrices only."""
    import torch

    def build(parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        decay = [p for p in parameters if p.ndim >= 2]
        rest = [p for p in parameters if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": sft.weight_decay}]
        if rest:
            groups.append({"params": rest, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=sft.lr)

    return build


def _save_final(engine, tokenizer, out_dir: Path, rank: int, save: Callable) -> None:
    """Rank 0 publishes the trained model; under ZeRO-3 every rank first helps gather the parameters."""
    import torch.distributed as dist

    if engine.zero_optimization_stage() == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
            if rank == 0:
                save(engine.module, tokenizer, out_dir)
    elif rank == 0:
        save(engine.module, tokenizer, out_dir)
    dist.barrier()
