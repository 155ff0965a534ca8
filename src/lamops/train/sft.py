"""Supervised fine-tuning with the loss on the completion only: the one trainer of LAM1 (plan_pretrain), LAM2
(imitate) and LAM3 (self_boost).

What this module supplies to the shared loop (`lamops.train.loop`, which owns accumulation, metrics,
history, checkpoints, resume, the optimiser and schedule, and publishing):

- encoding: a row (`PlanSFTRow` / `StepSFTRow` of `lamops.records`, read as `row.prompt`, `row.completion`)
  becomes `BOS + prompt + completion + EOS` (`encode_sample`, `encode_rows`); the prompt's positions are
  labelled -100 so the loss counts the target tokens only (paper: LAM1 "loss on target tokens only",
  LAM2/LAM3 completion-only SFT). Too long a sample has its prompt fitted by
  `lamops.agents.prompt.fit_prompt`: the canvas loses lines from its end first, so the controls and the
  request survive; a completion that alone does not fit is cut on the right and counted.
- collation: `SFTCollator` (TRL's padding collator);
- the loss: the causal LM's mean cross-entropy over the target tokens (`SFTLoop.loss`);
- the model: a tiny Mistral built from the pipeline's tokenizer, or an earlier phase's folder; with
  `SFTConfig.lora_r` set, peft LoRA adapters on its linear layers and every base weight frozen (`add_lora`),
  merged into the base when published (a plain causal LM folder, which the next phase, evaluation and
  `lamops agent` load as any other) with `LORA_FILE` beside it recording the adapters and the base;
- the lr schedule's decay, `SFTConfig.schedule` (cosine by default).

Driver side: `train_sft(rows, base, tokenizer_dir, out_dir, sft, spec)` encodes the rows and runs `sft_loop`
on `spec.num_workers` Ray Train workers with DeepSpeed (`lamops.train.loop.launch_loop`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from lamops.agents.prompt import fit_prompt
from lamops.settings import MISTRAL_LINEAR, ModelSpec, SFTConfig
from lamops.train.distributed import TrainSpec
from lamops.train.loop import (
    EncodeCounts,
    SupervisedLoop,
    SupervisedResult,
    encode_dataset,
    launch_loop,
    planned_steps,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from lamops.records import PlanSFTRow, StepSFTRow

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label torch's cross-entropy skips
LORA_FILE = "lamops_lora.json"  # in a folder published by a LoRA phase (not peft's adapter_config.json: that
# name would make transformers load the folder as an adapter needing its base)


class EncodeStats(EncodeCounts):
    """What encoding a dataset did to it."""

    target_tokens: int = Field(description="Tokens the loss counts (completion + EOS).")


class SFTResult(SupervisedResult):
    """What an SFT phase produced (see `lamops.train.loop.RunResult` for the run's fields)."""

    final_loss: float | None = Field(description="Mean target-token loss of the last logged window.")
    encode: EncodeStats


# ---------------------------------------------------------------------------------------------- pure parts


def encode_sample(
    tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_len: int
) -> dict[str, Any]:
    """`BOS + prompt + completion + EOS` as `input_ids`, with `labels` -100 on BOS and the prompt.

    Prompt and completion are tokenized apart (no special tokens), as at inference, where the completion is
    generated after the prompt's last token; the completion as a continuation (`continuation_ids`: exactly its
    bytes, without the `▁` a SentencePiece tokenizer prepends to a text), token for token what the constrained
    decoder writes for it. Beyond `max_len`, the prompt is fitted by
    `lamops.agents.prompt.fit_prompt` (canvas lines first, then old actions, its start last), as the agent
    fits it at inference. A
    completion that does not fit even without a prompt keeps its first `max_len - 1` tokens and no EOS (it
    did not end there). `prompt_cut` / `completion_cut` say how many prompt / target (completion + EOS)
    tokens were dropped.
    """
    if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs BOS and EOS tokens: train it with lamops.models.tokenizer")
    from lamops.agents.vocab import continuation_ids  # imports torch: not at module import

    target = continuation_ids(tokenizer, completion) + [tokenizer.eos_token_id]
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
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[PlanSFTRow | StepSFTRow], max_len: int
) -> tuple[list[dict[str, np.ndarray]], EncodeStats]:
    """`encode_sample` over rows with `.prompt` and `.completion`: compact int32 arrays and what was cut."""

    def encode(index: int, prompt: str, completion: str) -> dict[str, Any]:
        encoded = encode_sample(tokenizer, prompt, completion, max_len)
        return {
            **encoded,
            "input_ids": np.asarray(encoded["input_ids"], dtype=np.int32),
            "labels": np.asarray(encoded["labels"], dtype=np.int32),
        }

    samples, counts = encode_dataset(rows, ("prompt", "completion"), "SFT", encode, max_len)
    target_tokens = sum(int((s["labels"] != IGNORE_INDEX).sum()) for s in samples)
    return samples, EncodeStats(**counts, target_tokens=target_tokens)


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


def lora_record(sft: SFTConfig, base: str) -> dict[str, Any]:
    """What `LORA_FILE` in a published folder holds: the adapters' settings, that they are merged, and the
    base model they were trained on (a folder, or "tiny" for a randomly initialised one)."""
    return {
        "r": sft.lora_r,
        "alpha": sft.lora_alpha,
        "dropout": sft.lora_dropout,
        "target_modules": list(sft.lora_target_modules),
        "merged": True,
        "base": str(base),
    }


def read_lora_record(model_dir: Path) -> dict[str, Any] | None:
    """The `LORA_FILE` record of a published folder; None when the model was fully fine-tuned."""
    path = Path(model_dir) / LORA_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def add_lora(model: torch.nn.Module, sft: SFTConfig) -> torch.nn.Module:
    """`model` with peft LoRA adapters (`sft.lora_*`) on its `lora_target_modules`; every other parameter
    is frozen. The adapters are initialised from `sft.seed` in a forked RNG (B = 0: the wrapped model
    computes what the base does until the first step)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=sft.lora_r,
        lora_alpha=sft.lora_alpha,
        lora_dropout=sft.lora_dropout,
        target_modules=list(sft.lora_target_modules),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sft.seed)
        try:
            return get_peft_model(model, lora)
        except ValueError as error:  # no module of those names
            raise ValueError(
                f"sft.lora_target_modules {list(sft.lora_target_modules)}: {error}; name linear layers of "
                f"the base model (Mistral/Llama: {', '.join(MISTRAL_LINEAR)})"
            ) from None


# ---------------------------------------------------------------------------------------------- driver


def train_sft(
    rows: Sequence[PlanSFTRow | StepSFTRow],
    base: ModelSpec | Path,
    tokenizer_dir: Path | None,
    out_dir: Path,
    sft: SFTConfig,
    spec: TrainSpec,
) -> SFTResult:
    """Fine-tune `base` on `rows` (`.prompt`, `.completion`) and publish the model and tokenizer in `out_dir`.

    `base`: a tiny `ModelSpec` (built from `tokenizer_dir`, the pipeline's trained tokenizer), or an earlier
    phase's `save_pretrained` folder (a Path, or `ModelSpec(source="pretrained")`), which brings its own
    tokenizer; `tokenizer_dir` may then be None or must hold the same vocabulary. The run stops at
    `planned_steps(...)`, capped by `spec.max_steps`; a run of the same `spec.name` resumes from its last
    checkpoint. `out_dir` must be reachable from the rank-0 worker (local runs, or a shared filesystem).
    """
    from transformers import AutoTokenizer

    from lamops.models.factory import load_tokenizer

    model_dir = _model_dir(base)
    if model_dir is not None:
        tokenizer = load_tokenizer(model_dir)
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
    launched = launch_loop(
        sft_loop,
        spec,
        steps,
        sft,
        out_dir,
        data={"samples": samples},
        model_dir=str(model_dir) if model_dir is not None else None,
        model_dtype=base.dtype if isinstance(base, ModelSpec) and model_dir is not None else None,
        model_spec=base.model_dump(mode="json") if model_dir is None else None,
        tokenizer_dir=str(tokenizer_dir) if model_dir is None else None,
    )
    return SFTResult(**launched.supervised_fields(out_dir, steps), encode=stats)


def _model_dir(base: ModelSpec | Path) -> Path | None:
    if isinstance(base, ModelSpec):
        return Path(base.path) if base.source == "pretrained" else None
    from lamops.models.factory import is_model_folder

    path = Path(base)
    if not is_model_folder(path):
        raise FileNotFoundError(
            f"{path}: no config.json; expected a save_pretrained folder of an earlier phase (or a peft "
            "adapter folder naming its base)"
        )
    return path


# ---------------------------------------------------------------------------------------------- worker


class SFTLoop(SupervisedLoop):
    """SFT's part of the shared loop: the causal LM, TRL's padding collator and the completion-only loss."""

    settings_type = SFTConfig
    settings: SFTConfig

    @property
    def schedule(self) -> str:  # type: ignore[override]
        return self.settings.schedule

    def build(self) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        import torch

        from lamops.models.factory import make_model, saved_dtype

        torch.manual_seed(self.settings.seed)
        if self.config.get("model_dir"):
            # The params' model.dtype for the pipeline's base model, else the dtype the folder was saved in
            # (an earlier phase's): a 7B base is never materialised in fp32 on the way to bf16.
            dtype = self.config.get("model_dtype") or saved_dtype(self.config["model_dir"])
            spec = ModelSpec(source="pretrained", path=self.config["model_dir"], dtype=dtype)
            model, tokenizer = make_model(spec)
        else:
            model, tokenizer = make_model(
                ModelSpec.model_validate(self.config["model_spec"]), Path(self.config["tokenizer_dir"])
            )
        self._collate = SFTCollator(tokenizer.pad_token_id)
        if self.settings.lora_r is not None:
            model = add_lora(model, self.settings)
        return model, tokenizer

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self._collate(samples)

    def loss(self, engine: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over the target tokens (labels -100 elsewhere), as the causal LM computes it."""
        return engine(**batch).loss

    def publish(self, module: Any, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
        """Save the trained model; LoRA adapters are merged into the base weights first (a plain causal LM
        folder, no peft needed to load it) and `LORA_FILE` beside it says how it was trained."""
        from lamops.models.factory import save

        if self.settings.lora_r is None:
            return save(module, tokenizer, out_dir)
        record = lora_record(self.settings, self.config.get("model_dir") or "tiny")
        return save(module.merge_and_unload(), tokenizer, out_dir, extra={LORA_FILE: record})


def sft_loop(config: dict) -> dict[str, Any] | None:
    """The Ray Train per-worker loop; `train_sft` builds its `config`. See `SFTLoop` and
    `lamops.train.loop.SupervisedLoop`: rank 0 returns the history and publishes the model and tokenizer."""
    return SFTLoop(config).run()
