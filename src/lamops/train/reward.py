"""The reward model (phase `reward_model`): LAM3 with a scalar head, LoRA-tuned to score one agent step.

Data in: `{prompt, completion, label}` rows (`lamops.records.RewardRow`): a state, an action in it and the
action's label, +1 (good) or -1 (bad). The paper labels every step of a successful trajectory +1 and of a
failed one -1; here each step has its own label (`lamops.data.datasets`: the step rule, hard negatives, the
policy's rollouts; the `reward_model` stage assembles them).

Objective (paper: LAM3 + scalar head, LoRA r=8 alpha=32 dropout 0.1, MSE, 2 epochs, lr 2e-5 linear, AdamW):
the LAM3 folder is loaded as `AutoModelForSequenceClassification(num_labels=1)` (a new, seeded score head),
LoRA adapters go on every linear layer of the decoder and the head trains whole (peft's SEQ_CLS task puts
`score` in `modules_to_save`); the base weights stay frozen. A sample is `BOS + prompt + completion + EOS`
(the prompt fitted by `lamops.agents.prompt.fit_prompt`, as in SFT); the score is the head's output at the
last non-pad token, the EOS, as Hugging Face's sequence classifiers read it with `config.pad_token_id` set.
The loss is the mean squared error to the +-1 label.

Data out: the LoRA merged into the backbone (`merge_and_unload`) and saved atomically in the save_pretrained
layout as a `MistralForSequenceClassification` + tokenizer, which loads with the Auto class and no peft;
`load_reward_model` and `score` (the same encoding as training) are what offline RL and evaluation use. The
result carries held-out sign and balanced accuracy, ROC AUC and the mean scores of good and bad steps before
(untrained head) and after training.

What this module supplies to the shared loop (`lamops.train.loop`, which owns accumulation, metrics,
history, checkpoints, resume, the optimiser and schedule, and publishing): the encoding of a `RewardRow`
(`lamops.records`, read as `row.prompt`, `row.completion`, `row.label`; `encode_reward_rows`), the collation
(`collate_reward`), the model (`build_reward_model`), the loss (`RewardLoop.loss`, MSE of the score to the
label), the held-out scoring before and after training and the merged publish. To change the objective, change
`RewardLoop.loss`. `train_reward` encodes on the driver and `reward_loop` runs `RewardLoop` on Ray Train
workers under DeepSpeed, with a data order that is a pure function of (seed, step, rank) and checkpoint/resume
by run name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from lamops.agents.prompt import fit_prompt
from lamops.settings import RewardConfig
from lamops.train.distributed import TrainSpec
from lamops.train.loop import (
    EncodeCounts,
    SupervisedLoop,
    SupervisedResult,
    encode_dataset,
    fetch,
    launch_loop,
    planned_steps,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lamops.records import RewardRow

log = logging.getLogger(__name__)


# Every linear layer of a Mistral decoder block (QLoRA's advice: adapters on all of them, not just q and v).
class RewardEncodeStats(EncodeCounts):
    """What encoding a labelled dataset did to it."""

    good: int = Field(description="Samples labelled +1.")
    bad: int = Field(description="Samples labelled -1.")


class RewardEval(BaseModel):
    """How well scores separate good (+1) from bad (-1) held-out steps."""

    samples: int
    accuracy: float = Field(description="Share of samples whose score has the label's sign (0 counts as -1).")
    balanced_accuracy: float | None = Field(
        description="Mean of the accuracy on good and on bad samples; None when a class is absent."
    )
    auc: float | None = Field(
        default=None,
        description="ROC AUC: the chance that a random +1 sample scores above a random -1 one (ties count "
        "half); independent of the threshold 0. None when a class is absent.",
    )
    mean_good: float | None = Field(description="Mean score of +1 samples.")
    mean_bad: float | None = Field(description="Mean score of -1 samples.")
    gap: float | None = Field(description="mean_good - mean_bad.")


class RewardResult(SupervisedResult):
    """What the reward-model phase produced (see `lamops.train.loop.RunResult` for the run's fields)."""

    out_dir: str = Field(description="Merged MistralForSequenceClassification + tokenizer, save_pretrained.")
    final_loss: float | None = Field(description="Mean MSE of the last logged window.")
    encode: RewardEncodeStats
    eval_before: RewardEval | None = Field(description="Held-out scores of the untrained head.")
    eval_after: RewardEval | None = Field(description="Held-out scores after training.")
    test_scores: list[float] = Field(description="Held-out score of each test row after training, in order.")


# ---------------------------------------------------------------------------------------------- pure parts


def encode_reward_sample(
    tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_len: int
) -> dict[str, Any]:
    """`BOS + prompt + completion + EOS` as `input_ids`, at most `max_len` tokens.

    The prompt is fitted by `fit_prompt` into what the completion leaves. A completion that does not fit even
    without a prompt keeps its first `max_len - 2` tokens and still ends with EOS: the score is always read at
    an EOS, the position the head is trained at. `prompt_cut` / `completion_cut` count dropped tokens."""
    if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs BOS and EOS tokens: train it with lamops.models.tokenizer")
    if max_len < 3:
        raise ValueError(f"max_len {max_len} leaves no room for BOS, a token and EOS")
    from lamops.agents.vocab import continuation_ids  # imports torch: not at module import

    action = continuation_ids(tokenizer, completion)  # as SFT encodes it and the decoder writes it
    completion_cut = max(0, len(action) - (max_len - 2))
    action = action[: len(action) - completion_cut]
    prompt_ids, prompt_cut = fit_prompt(tokenizer, prompt, max_len - 2 - len(action))
    return {
        "input_ids": [tokenizer.bos_token_id, *prompt_ids, *action, tokenizer.eos_token_id],
        "prompt_cut": prompt_cut,
        "completion_cut": completion_cut,
    }


def encode_reward_rows(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[RewardRow], max_len: int
) -> tuple[list[dict[str, Any]], RewardEncodeStats]:
    """`encode_reward_sample` over rows with `.prompt`, `.completion` and `.label`: int32 ids, float labels,
    statistics."""

    def encode(index: int, prompt: str, completion: str, label: int) -> dict[str, Any]:
        if label not in (1, -1):
            raise ValueError(f"row {index} has label {label!r}; reward labels are +1 or -1")
        encoded = encode_reward_sample(tokenizer, prompt, completion, max_len)
        return {
            **encoded,
            "input_ids": np.asarray(encoded["input_ids"], dtype=np.int32),
            "label": float(label),
        }

    samples, counts = encode_dataset(rows, ("prompt", "completion", "label"), "reward", encode, max_len)
    good = sum(s["label"] == 1.0 for s in samples)
    return samples, RewardEncodeStats(**counts, good=good, bad=len(samples) - good)


def collate_reward(samples: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad `{input_ids[, label]}` samples: `input_ids`, `attention_mask` and, when every sample has
    one, float `labels`."""
    import torch

    if not samples:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(s["input_ids"]) for s in samples)
    input_ids = torch.full((len(samples), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), longest), dtype=torch.long)
    for row, sample in enumerate(samples):
        ids = torch.as_tensor(np.asarray(sample["input_ids"], dtype=np.int64))
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if all("label" in s for s in samples):
        batch["labels"] = torch.tensor([float(s["label"]) for s in samples], dtype=torch.float32)
    return batch


def last_token_index(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Per row, the position of its last non-pad token: where a Hugging Face sequence classifier reads the
    score (`MistralForSequenceClassification` with `config.pad_token_id` set; right or left padding)."""
    import torch

    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


def roc_auc(scores: np.ndarray, good: np.ndarray) -> float:
    """ROC AUC of `scores` for the boolean labels `good` (both classes present), by the rank-sum
    (Mann-Whitney U) formula with tied scores given their mean rank."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Runs of equal scores share the mean of the 1-based ranks they span.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + 1 + end) / 2
    n_good, n_bad = int(good.sum()), int((~good).sum())
    return float((ranks[good].sum() - n_good * (n_good + 1) / 2) / (n_good * n_bad))


def evaluate_scores(scores: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> RewardEval:
    """Sign accuracy (a score > 0 predicts +1), balanced accuracy, ROC AUC and mean scores of good and bad
    samples."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if scores.shape != labels.shape or scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"need two equal, non-empty 1-d arrays, got {scores.shape} and {labels.shape}")
    predicted = np.where(scores > 0, 1.0, -1.0)
    good, bad = labels > 0, labels < 0
    mean_good = float(scores[good].mean()) if good.any() else None
    mean_bad = float(scores[bad].mean()) if bad.any() else None
    balanced = (
        float(((predicted[good] == 1).mean() + (predicted[bad] == -1).mean()) / 2)
        if good.any() and bad.any()
        else None
    )
    return RewardEval(
        samples=len(scores),
        accuracy=float((predicted == labels).mean()),
        balanced_accuracy=balanced,
        auc=roc_auc(scores[good | bad], good[good | bad]) if good.any() and bad.any() else None,
        mean_good=mean_good,
        mean_bad=mean_bad,
        gap=mean_good - mean_bad if mean_good is not None and mean_bad is not None else None,
    )


# ---------------------------------------------------------------------------------------------- models


def build_reward_model(backbone_dir: Path, rm: RewardConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """The LoRA-wrapped sequence classifier the loop trains, and its tokenizer.

    `backbone_dir` is a save_pretrained causal LM (LAM3); its decoder loads into a
    `AutoModelForSequenceClassification(num_labels=1)` whose score head is new. The head and the LoRA
    adapters are initialised from `rm.seed` in a forked RNG: the same call gives the same model."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoTokenizer

    backbone_dir = Path(backbone_dir)
    if not (backbone_dir / "config.json").is_file():
        raise FileNotFoundError(f"{backbone_dir}: no config.json; expected LAM3's save_pretrained folder")
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rm.seed)
        model = _load_classifier(backbone_dir)
        model.config.pad_token_id = tokenizer.pad_token_id
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,  # puts the score head in modules_to_save: trained whole
            r=rm.lora_r,
            lora_alpha=rm.lora_alpha,
            lora_dropout=rm.lora_dropout,
            target_modules=list(rm.lora_target_modules),
        )
        model = get_peft_model(model, lora)
    return model, tokenizer


def _load_classifier(backbone_dir: Path) -> PreTrainedModel:
    """The causal LM's decoder under a new score head. Transformers' load report (a warning naming the
    missing head) is replaced by a check that nothing else is missing."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            backbone_dir, num_labels=1, local_files_only=True, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = set(info["missing_keys"]) - {"score.weight"}
    if missing:
        raise ValueError(f"{backbone_dir}: the backbone lacks {sorted(missing)}; is it a causal LM folder?")
    return model


def load_reward_model(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The trained classifier of a reward-model folder and its tokenizer, in eval mode; no peft needed. The
    reward model a folder scores with, its grammar head included, is `lamops.train.reward_head.
    load_reward_model`'s."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json; run the reward_model phase first")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    if model.config.num_labels != 1 or model.config.pad_token_id is None:
        raise ValueError(
            f"{path} is not a reward model: need num_labels 1 and a pad_token_id, got "
            f"{model.config.num_labels} and {model.config.pad_token_id}"
        )
    model.requires_grad_(False)
    return model.eval(), tokenizer


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    max_len: int,
    batch_size: int = 16,
) -> np.ndarray:
    """The reward model's score of each (prompt, completion), encoded as in training
    (`encode_reward_sample`); float64, in the order given."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    samples = [
        {"input_ids": encode_reward_sample(tokenizer, p, c, max_len)["input_ids"]}
        for p, c in zip(prompts, completions, strict=True)
    ]
    return score_encoded(model, samples, model.config.pad_token_id, batch_size)


def score_encoded(
    model: Any, samples: Sequence[dict[str, Any]], pad_token_id: int, batch_size: int
) -> np.ndarray:
    """Scores of encoded samples, in batches of similar length (less padding), returned in input order."""
    import torch

    out = np.zeros(len(samples), dtype=np.float64)
    if not samples:
        return out
    order = np.argsort([len(s["input_ids"]) for s in samples], kind="stable")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate_reward([samples[i] for i in chunk], pad_token_id)
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).logits
            out[chunk] = logits[:, 0].double().cpu().numpy()
    model.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------- driver


def train_reward(
    train_rows: Sequence[RewardRow],
    test_rows: Sequence[RewardRow] | None,
    backbone_dir: Path,
    out_dir: Path,
    rm: RewardConfig,
    spec: TrainSpec,
) -> RewardResult:
    """Train the reward model on `train_rows` from LAM3 in `backbone_dir`; publish it in `out_dir`.

    `test_rows` (held out; may be empty) are scored before and after training. The run stops at
    `planned_steps(...)`, capped by `spec.max_steps`; a run of the same `spec.name` resumes from its last
    checkpoint. `out_dir` must be reachable from the rank-0 worker."""
    from transformers import AutoTokenizer

    backbone_dir = Path(backbone_dir)
    if not (backbone_dir / "config.json").is_file():
        raise FileNotFoundError(f"{backbone_dir}: no config.json; expected LAM3's save_pretrained folder")
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir, local_files_only=True)
    samples, stats = encode_reward_rows(tokenizer, train_rows, rm.max_len)
    test_samples, _ = encode_reward_rows(tokenizer, test_rows or [], rm.max_len)
    steps = planned_steps(len(samples), rm, spec.num_workers, cap=spec.max_steps)
    log.info(
        "reward model %r: %d samples (%d good, %d bad, %d tokens), %d test, %d steps on %d workers",
        spec.name,
        stats.samples,
        stats.good,
        stats.bad,
        stats.tokens,
        len(test_samples),
        steps,
        spec.num_workers,
    )
    launched = launch_loop(
        reward_loop,
        spec,
        steps,
        rm,
        out_dir,
        data={"samples": samples, "test_samples": test_samples},
        backbone_dir=str(backbone_dir.resolve()),
    )
    labels = [s["label"] for s in test_samples]
    before, after = launched.returned.get("scores_before"), launched.returned.get("scores_after")
    return RewardResult(
        **launched.supervised_fields(out_dir, steps),
        encode=stats,
        eval_before=evaluate_scores(before, labels) if labels and before is not None else None,
        eval_after=evaluate_scores(after, labels) if labels and after is not None else None,
        test_scores=list(after) if after is not None else [],
    )


# ---------------------------------------------------------------------------------------------- worker


class RewardLoop(SupervisedLoop):
    """The reward model's part of the shared loop: the LoRA-wrapped classifier, right-padded batches, the
    MSE of the score to the +-1 label, the held-out scores (split over the ranks) before the checkpoint is
    loaded and after the last step, and the merged publish. The lr decays linearly after the warm-up."""

    settings_type = RewardConfig
    settings: RewardConfig
    schedule = "linear"
    metrics = ("loss", "lr", "grad_norm", "tokens_per_s")  # its history has always been without step_time_s

    def build(self) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        self.test_samples = fetch(self.config["test_samples"])
        model, tokenizer = build_reward_model(Path(self.config["backbone_dir"]), self.settings)
        self.pad_id = tokenizer.pad_token_id
        return model, tokenizer

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_reward(samples, self.pad_id)

    def loss(self, engine: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared error of the score (the head at each sample's EOS) to the +-1 label."""
        import torch

        scores = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
        return torch.nn.functional.mse_loss(scores.float(), batch["labels"])

    def before_resume(self, engine: Any) -> None:
        # Before loading any checkpoint: the untrained head, the same in every run of this seed.
        self.scores_before = self._score_test(engine)

    def after_training(self, engine: Any) -> dict[str, Any]:
        scores_after = self._score_test(engine)
        return {
            "scores_before": self.scores_before.tolist() if self.test_samples else None,
            "scores_after": scores_after.tolist() if self.test_samples else None,
        }

    def publish(self, module: Any, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
        """Fold the LoRA into the backbone first, so the folder needs no peft."""
        from lamops.models.factory import save

        return save(module.merge_and_unload(), tokenizer, out_dir)

    def _score_test(self, engine: Any) -> np.ndarray:
        return _score_split(
            engine.module,
            self.test_samples,
            self.pad_id,
            self.settings.eval_batch_size,
            self.rank,
            self.world,
        )


def reward_loop(config: dict) -> dict[str, Any] | None:
    """The Ray Train per-worker loop; `train_reward` builds its `config`. See `RewardLoop` and
    `lamops.train.loop.SupervisedLoop`: rank 0 returns the history and the held-out scores, and publishes
    the merged model."""
    return RewardLoop(config).run()


def _score_split(
    module: Any, samples: Sequence[dict[str, Any]], pad_id: int, batch_size: int, rank: int, world: int
) -> np.ndarray:
    """Every rank scores samples rank, rank + world, ...; all ranks get all the scores, in order."""
    import torch.distributed as dist

    mine = list(range(rank, len(samples), world))
    local = score_encoded(module, [samples[i] for i in mine], pad_id, batch_size)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, (mine, local.tolist()))
    out = np.zeros(len(samples), dtype=np.float64)
    for indices, values in gathered:
        out[indices] = values
    return out
