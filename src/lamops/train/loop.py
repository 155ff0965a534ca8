"""The one training loop of lamops: what every trainer shares, written once.

A trainer module supplies its objective; this module owns the rest.

- `SupervisedLoop`, the worker loop of the supervised trainers (SFT in `lamops.train.sft`, the reward model
  in `lamops.train.reward`). A trainer subclasses it, TRL-style, and overrides `build` (model + tokenizer),
  `collate` (samples -> tensors) and `loss` (engine + batch -> scalar); optional hooks `before_resume`,
  `after_training` and `publish`. The loop owns the gradient-accumulation window, the data order
  (`batch_indices`, a pure function of (seed, step, rank)), per-step torch seeding, the all-reduce of the
  window's metrics, the history records (every `log_every` steps, at the last step and at each checkpoint),
  the checkpoint cadence (`should_checkpoint`), resume from the run's last checkpoint, the progress feed and
  publishing the final model.
- Pieces the PPO trainer (`lamops.train.offline_rl`, whose rollout/update structure is its own) uses as
  well: `make_engine` (DeepSpeed around torch AdamW with decay on matrices only, `adamw`, and the warm-up +
  decay schedule, `lr_scheduler` / `lr_factor`), `worker_context` / `fetch`, `step_seed`, `record_due`,
  `feed_progress`, `publish_final`; and on the driver `launch_loop` (ship the data through Ray's object
  store, run the worker loop on Ray Train, hand back what rank 0 returned), the results' shared fields
  (`RunResult`, `SupervisedResult`), and `read_fields` / `encode_dataset` (typed dataset rows read by
  attribute, a trainer's per-sample encoding applied and its truncations counted).

Checkpoints, resume and the launch itself are `lamops.train.distributed`'s; this module decides when.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from lamops.settings import RewardConfig, SFTConfig, TrainerSettings
from lamops.train.distributed import (
    LaunchResult,
    TrainSpec,
    ds_engine,
    grad_norm,
    is_local,
    launch,
    load_checkpoint,
    publish_progress,
    rank_and_world_size,
    save_checkpoint,
    should_checkpoint,
    spec_from,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

SupervisedSettings = SFTConfig | RewardConfig
# The history record's metrics, in the order they are logged.
SUPERVISED_METRICS = ("loss", "lr", "grad_norm", "tokens_per_s", "step_time_s")


# ---------------------------------------------------------------------------------------------- pure parts


def planned_steps(
    num_samples: int, settings: SupervisedSettings, world_size: int, cap: int | None = None
) -> int:
    """Optimizer steps of a run: `settings.max_steps`, else enough global batches for `settings.epochs`
    passes; at most `cap` (a profile's TrainSpec.max_steps)."""
    if num_samples < 1:
        raise ValueError("no samples to train on")
    if settings.max_steps is not None:
        steps = settings.max_steps
    else:
        global_batch = settings.micro_batch_size * settings.gradient_accumulation_steps * world_size
        steps = max(1, math.ceil(settings.epochs * num_samples / global_batch))
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
    micro_step: int,
    *,
    rank: int,
    world_size: int,
    micro_batch_size: int,
    num_samples: int,
    seed: int,
    lengths: Sequence[int] | None = None,
) -> list[int]:
    """Sample indices of rank `rank`'s micro-batch number `micro_step` (counted over the whole run).

    The data is a stream of epochs, each a permutation seeded by (seed, epoch); global micro-batch m is
    stream positions [m W B, (m+1) W B) and rank r takes its r-th slice of B. A pure function of its
    arguments, so ranks never overlap and a resumed run reads exactly what an unbroken run reads.

    With `lengths` (each sample's token count), every epoch's permutation is grouped by length: cut into
    spans of `GROUP` global micro-batches, each span sorted by length, then its micro-batches shuffled
    (seeded too). A micro-batch then holds samples of similar length, so little of it is padding, while the
    order of micro-batches stays random (Hugging Face's `group_by_length`, without its longest-first bias)."""
    block = world_size * micro_batch_size
    start = (micro_step * world_size + rank) * micro_batch_size
    indices = []
    for position in range(start, start + micro_batch_size):
        epoch, offset = divmod(position, num_samples)
        indices.append(int(_epoch_order(num_samples, seed, epoch, lengths, block)[offset]))
    return indices


GROUP = 32  # global micro-batches per span that `batch_indices` sorts by length
_ORDER_CACHE: dict[tuple, np.ndarray] = {}


def _epoch_order(
    num_samples: int, seed: int, epoch: int, lengths: Sequence[int] | None, block: int
) -> np.ndarray:
    lengths = None if lengths is None else tuple(lengths)  # keyed by content: an id() can be reused
    key = (num_samples, seed, epoch, block, lengths)
    if key not in _ORDER_CACHE:
        if len(_ORDER_CACHE) > 4:
            _ORDER_CACHE.clear()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(num_samples)
        if lengths is not None:
            order = _grouped_by_length(order, np.asarray(lengths), block, rng)
        _ORDER_CACHE[key] = order
    return _ORDER_CACHE[key]


def _grouped_by_length(order: np.ndarray, lengths: np.ndarray, block: int, rng) -> np.ndarray:
    """`order` with each span of GROUP blocks sorted by length and its whole blocks shuffled."""
    span = GROUP * block
    pieces = []
    for first in range(0, len(order), span):
        part = order[first : first + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        blocks = [part[i : i + block] for i in range(0, len(part), block)]
        pieces.extend(blocks[i] for i in rng.permutation(len(blocks)))
    return np.concatenate(pieces) if pieces else order


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of rank `rank` at step `step`: dropout masks and sampling are a pure function of
    (seed, step, rank), so a resumed run draws what an unbroken one would have drawn."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def record_due(step: int, total: int, log_every: int, spec: TrainSpec) -> bool:
    """Whether step `step` (1-based, just finished) closes a history window: every `log_every` steps, at
    the last step and at each checkpoint (a resumed run's history starts on a window boundary)."""
    return step % log_every == 0 or step == total or should_checkpoint(step, spec)


def read_fields(row: Any, index: int, names: Sequence[str], what: str) -> tuple[Any, ...]:
    """The attributes `names` of dataset row number `index` (a typed record of `lamops.records`); a row
    that lacks one is a ValueError naming it and what `what` rows need."""
    try:
        return tuple(getattr(row, name) for name in names)
    except AttributeError:
        missing = next(name for name in names if not hasattr(row, name))
        need = (
            ", ".join(f"`{n}`" for n in names[:-1]) + (" and " if len(names) > 1 else "") + f"`{names[-1]}`"
        )
        raise ValueError(f"row {index} has no {missing!r}: {what} rows need {need}") from None


class EncodeCounts(BaseModel):
    """What encoding a dataset did to it; a trainer's statistics subclass this and add their own."""

    samples: int
    tokens: int = Field(description="Tokens of all encoded samples, BOS and EOS included.")
    prompts_truncated: int = Field(description="Samples whose prompt was cut to fit max_len.")
    completions_truncated: int = Field(description="Samples whose completion alone exceeded max_len.")


def encode_dataset(
    rows: Sequence[Any],
    fields: Sequence[str],
    what: str,
    encode: Callable[..., dict[str, Any]],
    max_len: int,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A trainer's `encode(index, *values)` over `rows`, `values` the row's `fields` (`read_fields`).

    `encode` returns the sample (`input_ids` and whatever else the trainer's collate reads) with the
    `prompt_cut` / `completion_cut` token counts, which are taken out and counted. Returns the samples and
    the `EncodeCounts` fields; completions cut are logged."""
    samples: list[dict[str, Any]] = []
    tokens = prompts_cut = completions_cut = 0
    for index, row in enumerate(rows):
        sample = dict(encode(index, *read_fields(row, index, fields, what)))
        prompts_cut += sample.pop("prompt_cut") > 0
        completions_cut += sample.pop("completion_cut") > 0
        tokens += len(sample["input_ids"])
        samples.append(sample)
    if completions_cut:
        log.warning(
            "%d of %d completions exceed max_len=%d and were cut", completions_cut, len(rows), max_len
        )
    counts = {
        "samples": len(samples),
        "tokens": tokens,
        "prompts_truncated": prompts_cut,
        "completions_truncated": completions_cut,
    }
    return samples, counts


# ---------------------------------------------------------------------------------------------- driver


class RunResult(BaseModel):
    """What every training phase reports (stages and MLflow read these fields); a trainer's result
    subclasses it and adds its own."""

    out_dir: str = Field(description="The trained model and tokenizer, save_pretrained layout.")
    steps: int = Field(description="Optimizer steps of the whole run (resumed ones included).")
    tokens_per_s: float | None = Field(description="Non-pad tokens per second over this run, all workers.")
    history: list[dict[str, float]] = Field(description="One record per `log_every` steps of this run.")
    resumed_from_step: int | None = Field(description="The checkpoint step this run started from, if any.")
    run_path: str = Field(description="Ray Train's run folder (checkpoints).")
    wall_s: float


class SupervisedResult(RunResult):
    """What a `SupervisedLoop` trainer reports."""

    final_loss: float | None = Field(description="Mean loss of the last logged window.")


@dataclass(frozen=True)
class Launched:
    """A finished `launch_loop`: Ray Train's result and what the loop returned on rank 0 (or {})."""

    result: LaunchResult
    returned: dict[str, Any]

    @property
    def history(self) -> list[dict[str, float]]:
        return self.returned.get("history", [])

    def run_fields(self, out_dir: Path, steps: int) -> dict[str, Any]:
        """The `RunResult` fields of this run, which stopped at `steps` and published to `out_dir`."""
        return {
            "out_dir": str(out_dir),
            "steps": steps,
            "tokens_per_s": self.returned.get("tokens_per_s"),
            "history": self.history,
            "resumed_from_step": self.result.resumed_from_step,
            "run_path": self.result.path,
            "wall_s": self.result.wall_s,
        }

    def supervised_fields(self, out_dir: Path, steps: int) -> dict[str, Any]:
        """The `SupervisedResult` fields: `run_fields` and the last window's loss."""
        history = self.history
        return {**self.run_fields(out_dir, steps), "final_loss": history[-1]["loss"] if history else None}


def launch_loop(
    train_loop: Callable[[dict], Any],
    spec: TrainSpec,
    steps: int,
    settings: TrainerSettings,
    out_dir: Path,
    *,
    data: dict[str, Any],
    **config: Any,
) -> Launched:
    """Run `train_loop` on Ray Train workers for `steps` optimizer steps (the spec's max_steps).

    `data` travels through Ray's object store (one copy per node; read it with `fetch`); `config` as is.
    The loop finds `settings` under "settings" and the resolved `out_dir` under "out_dir"."""
    if spec.backend == "local":  # the loop runs in this process: no Ray, no object store
        shipped = dict(data)
    else:
        import ray

        from lamops.compute import ensure_ray

        ensure_ray()
        shipped = {key: ray.put(value) for key, value in data.items()}
    loop_config = {
        **shipped,
        **config,
        "out_dir": str(Path(out_dir).resolve()),
        "settings": settings.model_dump(mode="json"),
    }
    result = launch(train_loop, loop_config, spec.model_copy(update={"max_steps": steps}))
    return Launched(result=result, returned=result.return_value or {})


# ---------------------------------------------------------------------------------------------- in a worker


def worker_context(config: dict) -> tuple[TrainSpec, int, int]:
    """The spec `launch` passed, this worker's rank and the world size."""
    rank, world_size = rank_and_world_size()
    return spec_from(config), rank, world_size


def fetch(value: Any) -> Any:
    """A `launch_loop` data entry: the object behind a Ray reference, anything else as is."""
    if is_local():
        return value
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def adamw(settings: TrainerSettings) -> Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]:
    """torch AdamW (no DeepSpeed JIT build) at `settings.lr`, weight decay on matrices only."""
    import torch

    def build(parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        decay = [p for p in parameters if p.ndim >= 2]
        rest = [p for p in parameters if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": settings.weight_decay}]
        if rest:
            groups.append({"params": rest, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=settings.lr)

    return build


def lr_scheduler(
    schedule: str, *, warmup_steps: int, total_steps: int
) -> Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LambdaLR]:
    """The factory of the `lr_factor` schedule that `ds_engine` steps with the optimizer."""
    import torch

    def build(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        def factor(step: int) -> float:
            return lr_factor(step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    return build


def make_engine(
    model: torch.nn.Module,
    spec: TrainSpec,
    settings: TrainerSettings,
    *,
    micro_batch_size: int,
    gradient_accumulation_steps: int,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
):
    """`model` in a DeepSpeed engine: the spec's config file, `adamw(settings)`, `scheduler` (None: a
    constant lr) and the recipe's gradient clipping (the rest of the DeepSpeed file is hardware)."""
    return ds_engine(
        model,
        spec.deepspeed_config,
        adamw(settings),
        scheduler,
        micro_batch_size=micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        overrides={"gradient_clipping": settings.grad_clip},
    )


def feed_progress(rank: int, record: dict[str, float]) -> None:
    """Rank 0's history record to the driver's progress bar (`distributed.publish_progress`)."""
    if rank == 0:
        publish_progress(record)


def publish_final(
    engine,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    rank: int,
    save: Callable[[Any, PreTrainedTokenizerBase, Path], Any] | None = None,
) -> None:
    """Rank 0 publishes the trained model with `save(module, tokenizer, out_dir)` (default:
    `lamops.models.factory.save`); under ZeRO-3 every rank first helps gather the parameters. Every rank
    calls this, and all wait for the save."""
    import torch.distributed as dist

    from lamops.models.factory import save as save_pretrained

    save = save or save_pretrained
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
            if rank == 0:
                save(engine.module, tokenizer, out_dir)
    elif rank == 0:
        save(engine.module, tokenizer, out_dir)
    dist.barrier()


class SupervisedLoop:
    """The Ray Train worker loop of a supervised trainer; `run()` it from the trainer's loop function.

    A trainer subclasses this and supplies `build`, `collate` and `loss` (and, when it needs them,
    `schedule`, `metrics`, `before_resume`, `after_training`, `publish`). Its driver passes, through
    `launch_loop`, the encoded samples as data entry "samples" and its settings.

    One optimizer step is `gradient_accumulation_steps` micro-batches per rank, each the rank's slice of the
    global batch (`batch_indices`); torch is seeded from (seed, step, rank) before each step. DeepSpeed
    averages gradients, clips them to `grad_clip` and steps torch AdamW and the warm-up + decay schedule.
    The window's loss sum, micro-batch count and non-pad tokens are all-reduced when a record is due
    (`record_due`); the record holds `metrics`, checkpoints fall at `should_checkpoint` steps, a run of the
    same name resumes from the last one. Rank 0 returns `{start_step, steps, history, tokens_per_s}` plus
    what `after_training` adds; the model is published to `config["out_dir"]`."""

    settings_type: ClassVar[type[SFTConfig] | type[RewardConfig]]
    schedule: ClassVar[str] = "linear"  # the lr decay after warm-up, see `lr_factor`
    metrics: ClassVar[tuple[str, ...]] = SUPERVISED_METRICS  # what a history record holds, in order

    def __init__(self, config: dict) -> None:
        self.config = config
        self.spec, self.rank, self.world = worker_context(config)
        self.settings: SupervisedSettings = self.settings_type.model_validate(config["settings"])
        self.samples: Sequence[dict[str, Any]] = fetch(config["samples"])
        self.lengths = tuple(len(sample["input_ids"]) for sample in self.samples)  # for `group_by_length`
        self.total = planned_steps(len(self.samples), self.settings, self.world, cap=self.spec.max_steps)

    # ---- what a trainer supplies

    def build(self) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """The model to train and its tokenizer."""
        raise NotImplementedError

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A micro-batch of encoded samples as tensors; `attention_mask` counts the tokens."""
        raise NotImplementedError

    def loss(self, engine: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The micro-batch's scalar loss (the window reports its mean over micro-batches)."""
        raise NotImplementedError

    def before_resume(self, engine: Any) -> None:
        """Called once the engine exists, before a checkpoint is loaded into it."""

    def after_training(self, engine: Any) -> dict[str, Any]:
        """Called on every rank after the last step, before publishing; rank 0's return joins its result."""
        return {}

    def publish(self, module: Any, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Any:
        """Save the trained module (rank 0); the default is `lamops.models.factory.save`."""
        from lamops.models.factory import save

        return save(module, tokenizer, out_dir)

    # ---- the loop

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step `step` (0-based)."""
        s = self.settings
        return s.lr * lr_factor(
            step, warmup_steps=s.warmup_steps, total_steps=self.total, schedule=self.schedule
        )

    def run(self) -> dict[str, Any] | None:
        import torch
        import torch.distributed as dist

        s, spec, rank, world = self.settings, self.spec, self.rank, self.world
        model, tokenizer = self.build()
        engine = make_engine(
            model,
            spec,
            s,
            micro_batch_size=s.micro_batch_size,
            gradient_accumulation_steps=s.gradient_accumulation_steps,
            scheduler=lr_scheduler(self.schedule, warmup_steps=s.warmup_steps, total_steps=self.total),
        )
        self.before_resume(engine)
        start = load_checkpoint(engine) or 0
        engine.train()
        device = engine.device
        history: list[dict[str, float]] = []
        window = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, micro-batches, non-pad tokens
        window_start = run_start = time.perf_counter()
        run_tokens = 0.0
        step = window_first = start
        while step < self.total:
            torch.manual_seed(step_seed(s.seed, step, rank))  # dropout: the same masks after a resume
            for micro in range(s.gradient_accumulation_steps):
                indices = batch_indices(
                    step * s.gradient_accumulation_steps + micro,
                    rank=rank,
                    world_size=world,
                    micro_batch_size=s.micro_batch_size,
                    num_samples=len(self.samples),
                    seed=s.seed,
                    lengths=self.lengths if s.group_by_length else None,
                )
                batch = {k: v.to(device) for k, v in self.collate([self.samples[i] for i in indices]).items()}
                loss = self.loss(engine, batch)
                engine.backward(loss)
                engine.step()
                window += torch.tensor(
                    [loss.item(), 1.0, float(batch["attention_mask"].sum())],
                    dtype=torch.float64,
                    device=device,
                )
            step += 1
            if not record_due(step, self.total, s.log_every, spec):
                continue
            dist.all_reduce(window)
            elapsed = time.perf_counter() - window_start
            values = {
                "loss": window[0].item() / window[1].item(),
                "lr": self.lr_at(step - 1),
                "grad_norm": grad_norm(engine),
                "tokens_per_s": window[2].item() / elapsed,
                "step_time_s": elapsed / (step - window_first),
            }
            record = {"step": float(step), **{name: values[name] for name in self.metrics}}
            window_first = step
            run_tokens += window[2].item()
            history.append(record)
            feed_progress(rank, record)
            window.zero_()
            if should_checkpoint(step, spec):
                save_checkpoint(engine, step, {"loss": record["loss"]})
            window_start = time.perf_counter()  # checkpoint time is not training throughput
        run_s = time.perf_counter() - run_start
        extra = self.after_training(engine)
        publish_final(engine, tokenizer, Path(self.config["out_dir"]), rank, self.publish)
        if rank != 0:
            return None
        return {
            "start_step": start,
            "steps": self.total,
            "history": history,
            "tokens_per_s": run_tokens / run_s if step > start else None,
            **extra,
        }
