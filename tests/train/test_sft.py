"""SFT: sample encoding and collation against hand-computed cases, the schedule and the data order as pure
functions, then a tiny Mistral fine-tuned through `train_sft` on two Ray Train workers with DeepSpeed ZeRO-2
on CPU (the loss falls, every parameter moves, the saved model reloads and generates what it learned)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import ROOT, CharTokenizer, tiny_spec
from pydantic import ValidationError

from lamops.models.factory import build_tiny
from lamops.models.tokenizer import train_tokenizer
from lamops.records import StepSFTRow
from lamops.settings import SFTConfig
from lamops.train.distributed import TrainSpec
from lamops.train.loop import batch_indices, lr_factor, planned_steps
from lamops.train.sft import IGNORE_INDEX, SFTCollator, encode_rows, encode_sample, train_sft

X = IGNORE_INDEX


A, B, C, Y, Z = (ord(c) for c in "abcyz")


# ------------------------------------------------------------------------------------------------- unit


def test_a_sample_is_bos_prompt_completion_eos_with_loss_on_the_completion_only():
    sample = encode_sample(CharTokenizer(), "abc", "yz", max_len=16)
    assert sample["input_ids"] == [1, A, B, C, Y, Z, 2]
    assert sample["labels"] == [X, X, X, X, Y, Z, 2]
    assert sample["prompt_cut"] == sample["completion_cut"] == 0


def test_too_long_a_sample_loses_the_start_of_its_prompt():
    sample = encode_sample(CharTokenizer(), "abc", "yz", max_len=5)  # BOS + 1 prompt token + yz + EOS
    assert sample["input_ids"] == [1, C, Y, Z, 2]
    assert sample["labels"] == [X, X, Y, Z, 2]
    assert sample["prompt_cut"] == 2 and sample["completion_cut"] == 0
    sample = encode_sample(CharTokenizer(), "abc", "yz", max_len=4)  # no room for any prompt
    assert sample["input_ids"] == [1, Y, Z, 2] and sample["prompt_cut"] == 3


def test_a_completion_longer_than_max_len_is_cut_on_the_right_without_eos_and_counted():
    sample = encode_sample(CharTokenizer(), "abc", "yzyz", max_len=4)
    assert sample["input_ids"] == [1, Y, Z, Y]
    assert sample["labels"] == [X, Y, Z, Y]
    assert sample["prompt_cut"] == 3 and sample["completion_cut"] == 2  # the last z and EOS
    rows = [
        StepSFTRow(task_id="t", step=1, prompt="abc", completion="yzyz"),
        StepSFTRow(task_id="t", step=2, prompt="abc", completion="y"),
    ]
    samples, stats = encode_rows(CharTokenizer(), rows, max_len=4)
    assert [list(s["input_ids"]) for s in samples] == [[1, Y, Z, Y], [1, C, Y, 2]]
    assert (stats.completions_truncated, stats.prompts_truncated) == (1, 2)
    assert (stats.tokens, stats.target_tokens) == (8, 5)
    with pytest.raises(ValueError, match="row 0 has no 'completion'"):
        encode_rows(CharTokenizer(), [SimpleNamespace(prompt="abc")], max_len=4)


def test_the_collator_pads_right_with_pad_id_and_masks_padding():
    batch = SFTCollator(pad_token_id=0)(
        [
            {"input_ids": [1, A, Y, 2], "labels": [X, X, Y, 2], "prompt_cut": 0},
            {"input_ids": [1, Z], "labels": [X, Z]},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, A, Y, 2], [1, Z, 0, 0]]
    assert batch["labels"].tolist() == [[X, X, Y, 2], [X, Z, X, X]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert set(batch) == {"input_ids", "labels", "attention_mask"}


def test_config_is_frozen_and_checked():
    config = SFTConfig()
    assert (config.lr, config.schedule, config.warmup_steps, config.epochs) == (2e-5, "cosine", 2, 3.0)
    with pytest.raises(ValidationError):
        config.lr = 1.0
    with pytest.raises(ValidationError):
        SFTConfig(schedule="constant")
    with pytest.raises(ValidationError):
        SFTConfig(learning_rate=1.0)


def test_steps_come_from_epochs_or_max_steps_and_obey_the_cap():
    config = SFTConfig(micro_batch_size=4, gradient_accumulation_steps=2, epochs=3)
    assert planned_steps(100, config, world_size=2) == 19  # ceil(300 / 16)
    assert planned_steps(100, config, world_size=2, cap=5) == 5
    assert planned_steps(100, config.model_copy(update={"max_steps": 7}), world_size=2) == 7
    # A phase's spec does not cap it: a long profile trains all its epochs (it was capped at 1,000 steps).
    from lamops.config import load_config
    from lamops.stages.training import train_spec

    spec = train_spec(load_config(Path(__file__).resolve().parents[2] / "params.yaml"), "imitate", "data")
    assert spec.max_steps is None
    assert planned_steps(10_000, config, world_size=1, cap=spec.max_steps) == 3_750


def test_lr_warms_up_linearly_then_decays_towards_zero():
    cosine = [lr_factor(s, warmup_steps=2, total_steps=6, schedule="cosine") for s in range(6)]
    assert cosine[:3] == pytest.approx([0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 5))])
    assert all(a > b for a, b in zip(cosine[1:], cosine[2:], strict=False)) and cosine[-1] > 0
    linear = [lr_factor(s, warmup_steps=0, total_steps=4, schedule="linear") for s in range(4)]
    assert linear == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_ranks_read_disjoint_slices_and_every_sample_once_per_epoch():
    def read(micro_step: int, rank: int, seed: int = 3) -> list[int]:
        return batch_indices(
            micro_step, rank=rank, world_size=2, micro_batch_size=3, num_samples=12, seed=seed
        )

    epoch = [i for m in range(2) for r in range(2) for i in read(m, r)]
    assert sorted(epoch) == list(range(12))
    assert read(1, 0) == read(1, 0) and read(2, 0) != read(0, 0)  # deterministic, new order next epoch
    assert read(0, 0) != read(0, 0, seed=4)


def test_grouped_by_length_every_sample_once_an_epoch_and_far_less_padding():
    rng = random.Random(0)
    lengths = [rng.randrange(20, 400) for _ in range(600)]

    def epoch(grouped: bool, seed: int = 0) -> list[list[int]]:
        return [
            batch_indices(
                m,
                rank=0,
                world_size=1,
                micro_batch_size=4,
                num_samples=600,
                seed=seed,
                lengths=lengths if grouped else None,
            )  # fmt: skip
            for m in range(150)
        ]

    def padding(batches: list[list[int]]) -> float:
        width = sum(4 * max(lengths[i] for i in b) for b in batches)
        return 1 - sum(lengths[i] for b in batches for i in b) / width

    grouped = epoch(True)
    assert sorted(i for b in grouped for i in b) == list(range(600))
    assert padding(grouped) < 0.05 < 0.3 < padding(epoch(False))
    firsts = [max(lengths[i] for i in b) for b in grouped[:32]]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)  # batch order stays shuffled
    assert epoch(True, seed=1) != grouped


# -------------------------------------------------------------------------------------- through Ray Train

STYLES = {"bold": "Bold", "italic": "Italic", "underlined": "Underline", "struck through": "Strikethrough"}
WORDS = ["report", "budget", "summary", "title", "invoice", "memo", "agenda", "notes", "draft", "letter"]


def synthetic_rows() -> list[StepSFTRow]:
    return [
        StepSFTRow(
            task_id=f"t{i}",
            step=1,
            prompt=f"<User Request:> Make the word '{word}' {style}.\n<Action:>",
            completion=f'{{"function": "click_input", "control_name": "{control}"}}',
        )
        for i, (word, (style, control)) in enumerate((w, s) for w in WORDS for s in STYLES.items())
    ]


TINY = tiny_spec(max_position_embeddings=256, vocab_size=512)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import ray

    from lamops.compute import ensure_ray

    started = not ray.is_initialized()
    ensure_ray()
    root = tmp_path_factory.mktemp("sft")
    rows = synthetic_rows()
    tokenizer = train_tokenizer(
        [t for r in rows for t in (r.prompt, r.completion)], root / "tokenizer", vocab_size=512
    )
    spec = TrainSpec(
        name="sft-tiny",
        deepspeed_config=ROOT / "infra" / "deepspeed" / "zero2_cpu.json",
        storage_path=str(root / "runs"),
        num_workers=2,
        checkpoint_every=10,
        max_steps=30,
    )
    sft = SFTConfig(lr=1e-2, warmup_steps=2, micro_batch_size=4, max_steps=30, max_len=64, log_every=2)
    result = train_sft(rows, TINY, root / "tokenizer", root / "model", sft, spec)
    yield {"rows": rows, "tokenizer": tokenizer, "result": result, "out": root / "model"}
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_the_loss_falls_and_the_history_comes_back(trained):
    result = trained["result"]
    assert result.steps == 30 and result.resumed_from_step is None
    history = result.history
    assert [int(h["step"]) for h in history] == list(range(2, 31, 2))
    assert history[-1]["loss"] < 0.25 * history[0]["loss"], history
    assert result.final_loss == history[-1]["loss"]
    assert all(h["tokens_per_s"] > 0 and h["grad_norm"] > 0 and h["lr"] > 0 for h in history)
    assert history[0]["lr"] == pytest.approx(1e-2)  # the end of warm-up (steps 1-2)
    assert result.encode.samples == 40 and result.encode.completions_truncated == 0


@pytest.mark.slow
def test_every_parameter_moved_and_the_model_reloads_and_says_what_it_learned(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(trained["out"], local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(trained["out"], local_files_only=True)
    initial = dict(build_tiny(TINY, trained["tokenizer"]).named_parameters())
    unchanged = [n for n, p in model.named_parameters() if torch.allclose(p, initial[n])]
    assert not unchanged
    model.eval()
    # 30 steps teach the action's format, the tokens up to the control's name; which control each style
    # names takes a few hundred (STACK-NOTES: pointing is the slow skill), so the name is not asserted.
    prefix = '{"function": "click_input", "control_name": "'
    for row in trained["rows"][:8]:
        prompt = tokenizer(row.prompt, return_tensors="pt")  # BOS is added by the tokenizer
        target = tokenizer(row.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        out = model.generate(**prompt, max_new_tokens=len(target), do_sample=False)
        generated = out[0, prompt["input_ids"].shape[1] :].tolist()
        text = tokenizer.decode(generated, skip_special_tokens=True)
        assert text.startswith(prefix), (text, row.completion)
        assert generated[: len(target) - 3] == target[: len(target) - 3]
