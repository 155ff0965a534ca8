"""Reward model: encoding, collation, the score position and the held-out metrics as pure functions, then a
tiny Mistral backbone LoRA-tuned through `train_reward` on two Ray Train workers with DeepSpeed ZeRO-2 on CPU
(the loss falls, only the adapters and the head move, a separable held-out set is scored right, and the
merged folder loads without peft and scores as the loop did)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, CharTokenizer, tiny_spec
from pydantic import ValidationError

from lamops.models.factory import build_tiny, save
from lamops.models.tokenizer import train_tokenizer
from lamops.records import RewardRow, StepSFTRow
from lamops.settings import MISTRAL_LINEAR, RewardConfig
from lamops.train.distributed import TrainSpec
from lamops.train.reward import (
    build_reward_model,
    collate_reward,
    encode_reward_rows,
    encode_reward_sample,
    evaluate_scores,
    last_token_index,
    load_reward_model,
    score,
    train_reward,
)

pytestmark = pytest.mark.usefixtures("one_thread")


A, B, C, Y, Z = (ord(c) for c in "abcyz")


# ------------------------------------------------------------------------------------------------- unit


def test_a_sample_is_bos_prompt_completion_eos_and_a_long_prompt_is_fitted():
    assert encode_reward_sample(CharTokenizer(), "abc", "yz", max_len=16)["input_ids"] == [
        1,
        A,
        B,
        C,
        Y,
        Z,
        2,
    ]
    sample = encode_reward_sample(CharTokenizer(), "abc", "yz", max_len=5)
    assert sample["input_ids"] == [1, C, Y, Z, 2] and sample["prompt_cut"] == 2


def test_a_too_long_completion_still_ends_with_eos_where_the_score_is_read():
    sample = encode_reward_sample(CharTokenizer(), "abc", "yzyz", max_len=4)
    assert sample["input_ids"] == [1, Y, Z, 2]
    assert (sample["prompt_cut"], sample["completion_cut"]) == (3, 2)


def test_rows_need_a_plus_or_minus_one_label():
    rows = [
        RewardRow(task_id="t", step=1, prompt="ab", completion="y", label=1),
        RewardRow(task_id="t", step=2, prompt="a", completion="z", label=-1),
    ]
    samples, stats = encode_reward_rows(CharTokenizer(), rows, max_len=8)
    assert [s["label"] for s in samples] == [1.0, -1.0]
    assert (stats.good, stats.bad, stats.tokens) == (1, 1, 9)
    with pytest.raises(ValueError, match="row 0 has label 0"):
        unchecked = RewardRow.model_construct(task_id="t", step=1, prompt="a", completion="b", label=0)
        encode_reward_rows(CharTokenizer(), [unchecked], max_len=8)
    with pytest.raises(ValueError, match="row 0 has no 'label'"):
        encode_reward_rows(CharTokenizer(), [StepSFTRow(task_id="t", step=1, prompt="a", completion="b")], 8)


def test_collation_pads_right_and_the_score_is_read_at_the_last_real_token():
    batch = collate_reward(
        [{"input_ids": [1, A, 2], "label": 1.0}, {"input_ids": [1, A, B, C, 2], "label": -1.0}], 0
    )
    assert batch["input_ids"].tolist() == [[1, A, 2, 0, 0], [1, A, B, C, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [1.0, -1.0]
    assert last_token_index(batch["input_ids"], 0).tolist() == [2, 4]
    assert last_token_index(torch.tensor([[0, 0, 1, 2]]), 0).tolist() == [3]  # left padding too


def test_metrics_against_hand_computed_values():
    result = evaluate_scores([0.9, 0.2, -0.1, -0.8, 0.3], [1, 1, 1, -1, -1])
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert result.mean_good == pytest.approx(1.0 / 3) and result.mean_bad == pytest.approx(-0.25)
    assert result.gap == pytest.approx(1.0 / 3 + 0.25)
    only_good = evaluate_scores([0.5], [1])
    assert only_good.mean_bad is None and only_good.gap is None and only_good.balanced_accuracy is None
    assert only_good.auc is None


def test_auc_against_hand_counted_pairs():
    # Good scores 0.9, 0.2, -0.1 against bad -0.8, 0.3: 0.9 beats both, 0.2 and -0.1 beat -0.8 only: 4 of 6.
    assert evaluate_scores([0.9, 0.2, -0.1, -0.8, 0.3], [1, 1, 1, -1, -1]).auc == pytest.approx(4 / 6)
    # A tie counts half; a constant scorer is at chance; a perfect ranking is 1 whatever the threshold.
    assert evaluate_scores([0.5, 0.5, 0.1], [1, -1, -1]).auc == pytest.approx((0.5 + 1) / 2)
    assert evaluate_scores([0.3] * 4, [1, -1, 1, -1]).auc == pytest.approx(0.5)
    perfect = evaluate_scores([-0.1, -0.2, -0.5, -0.9], [1, 1, -1, -1])
    assert perfect.auc == 1.0 and perfect.balanced_accuracy == 0.5
    assert evaluate_scores([-1.0, 1.0], [1, -1]).auc == 0.0


def test_config_defaults_are_the_papers_and_it_is_frozen():
    config = RewardConfig()
    assert (config.lr, config.epochs, config.lora_r, config.lora_alpha, config.lora_dropout) == (
        2e-5,
        2.0,
        8,
        32,
        0.1,
    )
    with pytest.raises(ValidationError):
        config.lr = 1.0
    with pytest.raises(ValidationError):
        RewardConfig(lora_dropout=1.0)


# ------------------------------------------------------------------------------------------ tiny models

WORDS = [
    "report",
    "budget",
    "summary",
    "title",
    "invoice",
    "memo",
    "agenda",
    "notes",
    "draft",
    "letter",
    "plan",
]
HELD_OUT = ["minutes", "review", "proposal", "contract"]


def rows_for(words: list[str]) -> list[RewardRow]:
    """An easy separable task: a step that clicks Bold is good, one that clicks Italic is bad."""
    rows = []
    for i, word in enumerate(words):
        for style in ("bold", "italic", "underlined"):
            for control, label in (("Bold", 1), ("Italic", -1)):
                rows.append(
                    RewardRow(
                        task_id=f"t{i}-{style}",
                        step=1,
                        family=style,
                        prompt=f"<User Request:> Make the word '{word}' {style}.\n<Action:>",
                        completion=f'{{"function": "click_input", "control_name": "{control}"}}',
                        label=label,
                    )
                )
    return rows


TINY = tiny_spec(max_position_embeddings=256, vocab_size=512)
RM = RewardConfig(lr=5e-3, micro_batch_size=4, max_steps=30, max_len=64, log_every=2, eval_batch_size=8)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rm-backbone")
    rows = rows_for(WORDS + HELD_OUT)
    tokenizer = train_tokenizer(
        [t for r in rows for t in (r.prompt, r.completion)], root / "tok", vocab_size=512
    )
    return save(build_tiny(TINY, tokenizer), tokenizer, root / "lam3")


def test_the_score_of_a_padded_batch_is_the_head_at_each_samples_eos(backbone):
    model, tokenizer = build_reward_model(backbone, RM)
    model.eval()
    rows = rows_for(["report"])[:3]
    samples, _ = encode_reward_rows(tokenizer, rows, max_len=64)
    batch = collate_reward(samples, tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        at = last_token_index(batch["input_ids"], tokenizer.pad_token_id)
        assert (batch["input_ids"][torch.arange(3), at] == tokenizer.eos_token_id).all()
        by_hand = model.base_model.model.score(out.hidden_states[-1][torch.arange(3), at])
        torch.testing.assert_close(out.logits, by_hand)
        alone = [
            model(input_ids=torch.as_tensor(s["input_ids"][None], dtype=torch.long)).logits for s in samples
        ]
    torch.testing.assert_close(out.logits, torch.cat(alone), atol=1e-5, rtol=1e-5)


def test_only_the_adapters_and_the_head_are_trainable(backbone):
    model, _ = build_reward_model(backbone, RM)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".score." in n for n in trainable), trainable
    assert any(".score.modules_to_save." in n for n in trainable)
    again, _ = build_reward_model(backbone, RM)  # seeded: the same head and adapters
    for (name, p), (_, q) in zip(model.named_parameters(), again.named_parameters(), strict=True):
        assert torch.equal(p, q), name


# -------------------------------------------------------------------------------------- through Ray Train


@pytest.fixture(scope="module")
def trained(backbone, tmp_path_factory):
    import ray

    from lamops.compute import ensure_ray

    started = not ray.is_initialized()
    ensure_ray()
    root = tmp_path_factory.mktemp("rm")
    spec = TrainSpec(
        name="rm-tiny",
        deepspeed_config=ROOT / "infra" / "deepspeed" / "zero2_cpu.json",
        storage_path=str(root / "runs"),
        num_workers=2,
        checkpoint_every=100,
        max_steps=30,
    )
    test_rows = rows_for(HELD_OUT)
    result = train_reward(rows_for(WORDS), test_rows, backbone, root / "rm", RM, spec)
    yield {"result": result, "out": root / "rm", "test_rows": test_rows}
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_the_loss_falls_and_held_out_steps_are_told_apart(trained):
    result = trained["result"]
    assert result.steps == 30 and result.resumed_from_step is None
    history = result.history
    assert [int(h["step"]) for h in history] == list(range(2, 31, 2))
    assert np.mean([h["loss"] for h in history[-3:]]) < 0.3 * np.mean([h["loss"] for h in history[:2]]), (
        history
    )
    assert all(h["tokens_per_s"] > 0 and h["grad_norm"] > 0 and h["lr"] > 0 for h in history)
    assert history[0]["lr"] == pytest.approx(5e-3 * (1 - 2 / 31))  # linear decay, no warm-up
    assert result.encode.good == result.encode.bad == 33
    before, after = result.eval_before, result.eval_after
    assert before.samples == after.samples == len(trained["test_rows"])
    assert after.accuracy >= 0.95 and after.gap > 1.0, after
    assert after.gap > before.gap
    print(f"held-out before {before}\nafter {after}")


@pytest.mark.slow
def test_only_lora_and_the_head_moved_and_the_merge_is_a_low_rank_update(trained, backbone):
    from transformers import AutoModelForSequenceClassification

    merged = dict(AutoModelForSequenceClassification.from_pretrained(trained["out"]).named_parameters())
    initial, _ = build_reward_model(backbone, RM)  # the loop's starting point, B = 0
    base = dict(initial.merge_and_unload().named_parameters())
    assert merged.keys() == base.keys()
    targeted = 0
    for name, weight in merged.items():
        if name == "score.weight":
            assert not torch.equal(weight, base[name])
        elif any(f".{module}." in name for module in MISTRAL_LINEAR):
            delta = (weight - base[name]).double()
            singular = torch.linalg.svdvals(delta)
            assert singular[0] > 0, name
            # B @ A * alpha / r has rank <= r: the rest of the spectrum is rounding.
            assert singular[RM.lora_r :].max() < 1e-5 * singular[0], (name, singular[: RM.lora_r + 2])
            targeted += 1
        else:  # embeddings and norms: bitwise the base
            assert torch.equal(weight, base[name]), name
    assert targeted == len(MISTRAL_LINEAR) * TINY.num_hidden_layers


@pytest.mark.slow
def test_the_folder_loads_without_peft_and_scores_as_the_loop_did(trained):
    out = trained["out"]
    assert not (out / "adapter_config.json").exists()
    model, tokenizer = load_reward_model(out)
    assert type(model).__name__ == "MistralForSequenceClassification"
    assert not any("lora" in name or "modules_to_save" in name for name in model.state_dict())
    rows = trained["test_rows"]
    scores = score(
        model,
        tokenizer,
        [r.prompt for r in rows],
        [r.completion for r in rows],
        max_len=64,
        batch_size=5,
    )
    np.testing.assert_allclose(scores, trained["result"].test_scores, atol=1e-4)
