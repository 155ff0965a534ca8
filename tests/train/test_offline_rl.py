"""Offline RL (LAM4): reward normalisation, the adaptive KL controller, advantages and the clipped objective
against hand-computed values, which actions the reward model scores, actions sampled through the grammar and
their log-probabilities on the decoder's distribution against a per-sample computation, then PPO through
`train_offline_rl` on two Ray Train workers with DeepSpeed ZeRO-2 on CPU: a tiny policy (taught the action
format by a few in-process SFT steps), itself as the reference, and a hand-built reward model that prefers
clicking Bold. The run is split in two launches of one name, so it also shows the resume (beta included)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, tiny_spec
from pydantic import ValidationError

from lamops.models.factory import build_tiny, save
from lamops.models.tokenizer import train_tokenizer
from lamops.records import RewardRow
from lamops.settings import PPOConfig
from lamops.train.distributed import TrainSpec
from lamops.train.offline_rl import (
    action_rewards,
    adaptive_kl_coef,
    choice_logprobs,
    clipped_policy_loss,
    grammar_samples,
    is_valid_action,
    normalise_rewards,
    per_worker,
    ppo_steps,
    rollout_batch,
    sequence_advantages,
    train_offline_rl,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------- unit


def test_rewards_are_the_clipped_half_score_and_invalid_actions_get_the_floor():
    rewards = normalise_rewards(
        [2.0, 0.4, -0.3, -5.0, float("nan"), 0.9], [True, True, True, True, False, False]
    )
    np.testing.assert_allclose(rewards, [0.5, 0.2, -0.15, -0.5, -0.5, -0.5])


def test_the_kl_coefficient_moves_by_at_most_20_percent_times_n_over_horizon():
    # e = clip(kl / 0.1 - 1, -0.2, 0.2); beta * (1 + e * 8 / 10000)
    assert adaptive_kl_coef(0.2, 0.15, 8, target=0.1, horizon=10000) == pytest.approx(0.2 * (1 + 0.2 * 8e-4))
    assert adaptive_kl_coef(0.2, 0.11, 8, target=0.1, horizon=10000) == pytest.approx(0.2 * (1 + 0.1 * 8e-4))
    assert adaptive_kl_coef(0.2, 0.0, 8, target=0.1, horizon=10000) == pytest.approx(0.2 * (1 - 0.2 * 8e-4))
    assert adaptive_kl_coef(0.2, 0.1, 8, target=0.1, horizon=10000) == pytest.approx(0.2)
    assert adaptive_kl_coef(0.5, 1.0, 100, target=0.1, horizon=100) == pytest.approx(0.6)


def test_advantages_are_the_kl_penalised_reward_minus_the_batch_mean():
    advantages = sequence_advantages(
        torch.tensor([0.5, -0.5, 0.0, 0.2]), torch.tensor([0.1, 0.0, 0.3, -0.1]), 0.2
    )
    # R = [0.48, -0.5, -0.06, 0.22], mean 0.035
    torch.testing.assert_close(advantages, torch.tensor([0.445, -0.535, -0.095, 0.185]))


def test_the_clipped_objective_on_a_hand_made_batch():
    old = torch.log(torch.tensor([[0.2, 0.5], [0.4, 0.3]]))
    # ratios 1.5 and 0.9 on a good sequence (A = +1), 0.5 on a bad one (A = -1); its second token is padding
    new = (old + torch.log(torch.tensor([[1.5, 0.9], [0.5, 7.0]]))).requires_grad_()
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, clip_fraction = clipped_policy_loss(new, old, torch.tensor([1.0, -1.0]), mask, clip_range=0.2)
    # per token max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2, max(-0.9, -0.9) = -0.9, max(0.5, 0.8) = 0.8
    assert loss.item() == pytest.approx((-1.2 - 0.9 + 0.8) / 3)
    assert clip_fraction.item() == pytest.approx(2 / 3)
    loss.backward()
    # Clipped tokens pass no gradient; the free one passes -A r / 3; padding none.
    torch.testing.assert_close(new.grad, torch.tensor([[0.0, -0.3], [0.0, 0.0]]))


def test_only_actions_the_environment_accepts_count_as_valid():
    assert is_valid_action('{"function": "click_input", "control_name": "Bold"}')
    assert not is_valid_action('{"function": "click_input", "control_name": "Bold"')  # cut short
    assert not is_valid_action('{"function": "click_input"}')  # no control
    assert not is_valid_action('{"function": "fly", "args": {}}')


def test_batches_split_evenly_and_steps_follow_epochs_or_max_steps():
    assert per_worker(PPOConfig(batch_size=8, mini_batch_size=2), 2) == 4
    with pytest.raises(ValueError, match="does not split over 3 workers"):
        per_worker(PPOConfig(batch_size=8), 3)
    with pytest.raises(ValueError, match="mini_batch_size 3"):
        per_worker(PPOConfig(batch_size=8, mini_batch_size=3), 2)
    assert ppo_steps(100, PPOConfig(), cap=None) == 13  # ceil(100 / 8)
    assert ppo_steps(100, PPOConfig(epochs=2), cap=20) == 20
    assert ppo_steps(100, PPOConfig(max_steps=3)) == 3


def test_config_defaults_are_the_papers_and_leave_room_for_a_prompt():
    config = PPOConfig()
    assert (config.lr, config.batch_size, config.mini_batch_size, config.ppo_epochs) == (1.4e-5, 8, 1, 4)
    assert (config.target_kl, config.init_kl_coef, config.clip_range) == (0.1, 0.2, 0.2)
    with pytest.raises(ValidationError, match="no room"):
        PPOConfig(max_len=64, max_new_tokens=63)


# ------------------------------------------------------------------------------------------ tiny models

STYLES = {"bold": "Bold", "italic": "Italic", "underlined": "Underline", "struck through": "Strikethrough"}
WORDS = ["report", "budget", "summary", "title", "invoice", "memo", "agenda", "notes", "draft", "letter"]


CONTROLS = list(STYLES.values())


def prompt_of(word: str, style: str) -> str:
    """An observation prompt in the names view: the four style buttons, a one-line canvas, the request."""
    return (
        "<Available Control Item:>\n" + "\n".join(CONTROLS) + "\n<Canvas State:>\n"
        f"p0 <Normal> The {word} is ready.\n<User Request:> Make the word '{word}' {style}.\n"
        "<Previous Actions:>\n(none)\n<Previous Plans:>\n(none)"
    )


def action_of(control: str) -> str:
    """The action clicking `control`, written as the grammar writes it (key order, separators)."""
    return json.dumps(
        {
            "thought": f"Click {control}.",
            "control_name": control,
            "control_label": str(CONTROLS.index(control) + 1),
            "function": "click_input",
            "args": {"button": "left", "double": False},
            "status": "FINISH",
            "plan": [],
        }
    )


def synthetic_rows() -> list[RewardRow]:
    """Reward-dataset rows (only the prompt is used by offline RL)."""
    return [
        RewardRow(
            task_id=f"t{i}",
            step=1,
            family=style,
            label=1,
            prompt=prompt_of(word, style),
            completion=action_of(control),
        )
        for i, (word, (style, control)) in enumerate((w, s) for w in WORDS for s in STYLES.items())
    ]


TINY = tiny_spec(max_position_embeddings=256, vocab_size=512)


def teach_the_format(model, tokenizer, rows: list[RewardRow], steps: int) -> None:
    """A few in-process SFT steps: enough for mostly valid actions, not for the right control."""
    from lamops.train.sft import SFTCollator, encode_rows

    samples, _ = encode_rows(tokenizer, rows, 160)
    collate = SFTCollator(tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        chosen = np.random.default_rng(step).choice(len(samples), 16, replace=False)
        model(**collate([samples[i] for i in chosen])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def bold_counter(tokenizer, target_id: int):
    """A one-layer MistralForSequenceClassification whose score rises with the share of `target_id` tokens.

    Embedding: every token has 1 in dimension 2, the target also 1 in dimension 0. Attention: q = k = 0, so
    each position averages the values of all positions up to it; v copies dimension 0 and o writes it to
    dimension 1. The MLP is off. At the last token (where the score is read), dimension 1 holds 2 x the
    target's share f and dimension 2 holds 1; after the final RMSNorm the head reads
    42 x dim 1 - 3.05 x dim 2 / sqrt(8). Every prompt names Bold once (the control list) and a ~118-token
    sample holds it twice when the action clicks Bold: ~+1 then, ~-1 with the prompt's one alone."""
    from transformers import MistralConfig, MistralForSequenceClassification

    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = MistralForSequenceClassification(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.model.embed_tokens.weight[:, 2] = 1.0
        model.model.embed_tokens.weight[target_id, 0] = 1.0
        layer = model.model.layers[0]
        layer.input_layernorm.weight.fill_(1.0)
        layer.post_attention_layernorm.weight.fill_(1.0)
        layer.self_attn.v_proj.weight[0, 0] = 1.0
        layer.self_attn.o_proj.weight[1, 0] = 1.0
        model.model.norm.weight.fill_(1.0)
        model.score.weight[0, 1] = 42.0
        model.score.weight[0, 2] = -3.05 / math.sqrt(8)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo-models")
    rows = synthetic_rows()
    tokenizer = train_tokenizer(
        [t for r in rows for t in (r.prompt, r.completion)], root / "tok", vocab_size=512
    )
    (bold,) = tokenizer("Bold", add_special_tokens=False)["input_ids"]
    assert all(bold in tokenizer(r.completion, add_special_tokens=False)["input_ids"] for r in rows[::4])
    assert all(tokenizer(r.prompt, add_special_tokens=False)["input_ids"].count(bold) == 1 for r in rows)
    policy = build_tiny(TINY, tokenizer)
    torch.manual_seed(0)
    teach_the_format(policy, tokenizer, rows, steps=50)
    save(policy, tokenizer, root / "lam3")
    save(bold_counter(tokenizer, bold), tokenizer, root / "rm")
    return {"root": root, "rows": rows, "tokenizer": tokenizer, "lam3": root / "lam3", "rm": root / "rm"}


def test_the_hand_built_reward_model_prefers_bold(models):
    from lamops.train.reward import load_reward_model, score

    model, tokenizer = load_reward_model(models["rm"])
    rows = models["rows"][:8]
    scores = score(model, tokenizer, [r.prompt for r in rows], [r.completion for r in rows], max_len=192)
    is_bold = np.array(['"Bold"' in r.completion for r in rows])
    assert (scores[is_bold] > 0.9).all() and (scores[~is_bold] < -0.9).all(), scores


def test_only_valid_actions_are_scored_and_invalid_ones_get_the_floor(models):
    from lamops.train.reward import load_reward_model

    model, tokenizer = load_reward_model(models["rm"])
    bold, italic = models["rows"][:2]
    assert '"Bold"' in bold.completion and '"Italic"' in italic.completion
    texts = [bold.completion, italic.completion, bold.completion[:-1]]  # the last one cut short: invalid
    rewards, raw, valid = action_rewards(
        model,
        tokenizer,
        [bold.prompt, italic.prompt, bold.prompt],
        texts,
        PPOConfig(max_len=192, max_new_tokens=96),
    )
    assert valid.tolist() == [True, True, False]
    assert raw[0] > 0.9 and raw[1] < -0.9 and np.isnan(raw[2])
    np.testing.assert_allclose(rewards, [min(raw[0], 1.0) / 2, max(raw[1], -1.0) / 2, -0.5])


def agent_of(model, tokenizer, temperature: float = 1.0):
    from lamops.agents.lam import AgentConfig, LAMAgent

    config = AgentConfig(max_len=192, max_new_tokens=96, temperature=temperature, batch_size=16)
    return LAMAgent(model, tokenizer, config)


def test_grammar_samples_are_valid_actions_whose_choices_replay_the_decoders_distribution(models):
    """Sampled through the grammar, every action is valid; the log-probability `choice_logprobs` gives each
    chosen token from one padded batch forward equals the one recomputed alone from the recorded allowed set
    (the decoder's masked softmax at temperature 1), and a forced token is never a choice."""
    from transformers import AutoModelForCausalLM

    from lamops.agents.decoding import choice_scores

    model = AutoModelForCausalLM.from_pretrained(models["lam3"]).eval()
    tokenizer = models["tokenizer"]
    agent = agent_of(model, tokenizer)
    texts = [r.prompt for r in models["rows"][:6]]
    decoded = grammar_samples(agent, texts, seed=3)
    assert all(is_valid_action(d.text) for d in decoded)
    assert [d.text for d in grammar_samples(agent, texts, seed=3)] == [d.text for d in decoded]
    prompts = [agent.decoder.prompt_ids(t)[0] for t in texts]
    responses = [list(d.token_ids) for d in decoded]
    assert not any(d.closed_by_force for d in decoded)
    assert all(tokenizer.decode(r) == d.text for r, d in zip(responses, decoded, strict=True))
    batch = rollout_batch(prompts, responses, pad_token_id=0)
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits.float()
        logp, mask = choice_logprobs(logits, batch, [d.choices for d in decoded], 1.0)
        for row, (prompt, response, d) in enumerate(zip(prompts, responses, decoded, strict=True)):
            assert mask[row].sum() == len(d.choices) == d.generated_tokens < len(response)
            alone = model(torch.tensor([prompt + response])).logits[0].float()
            for choice in d.choices:
                allowed = choice.allowed[: alone.shape[-1]]
                assert allowed[response[choice.position]] and allowed.sum() > 1
                scores = choice_scores(alone[len(prompt) + choice.position - 1], choice)
                expected = torch.log_softmax(scores, -1)[response[choice.position]]
                torch.testing.assert_close(logp[row, choice.position], expected, atol=1e-4, rtol=1e-4)
    assert (logp[~mask] == 0).all() and (logp[mask] <= 0).all() and (logp[mask] < -1e-6).any()


# -------------------------------------------------------------------------------------- through Ray Train

PPO = PPOConfig(
    lr=3e-4,
    batch_size=16,
    mini_batch_size=4,
    ppo_epochs=2,
    max_new_tokens=96,
    max_len=192,
    max_steps=8,
    init_kl_coef=0.05,
    kl_horizon=100,
    seed=1,
)
FIRST = 3


def bold_share(model_dir: Path, tokenizer, rows: list[RewardRow], seed: int = 7) -> tuple[float, float]:
    """(share of actions sampled through the grammar that click Bold, share that are valid) over four
    samples per prompt."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    decoded = grammar_samples(agent_of(model, tokenizer), [r.prompt for r in rows] * 4, seed)
    texts = [d.text for d in decoded]
    return float(np.mean(['"Bold"' in t for t in texts])), float(np.mean([is_valid_action(t) for t in texts]))


@pytest.fixture(scope="module")
def trained(models):
    import ray

    from lamops.compute import ensure_ray

    started = not ray.is_initialized()
    ensure_ray()
    root = models["root"]
    spec = TrainSpec(
        name="ppo-tiny",
        deepspeed_config=ROOT / "infra" / "deepspeed" / "zero2_cpu.json",
        storage_path=str(root / "runs"),
        num_workers=2,
        checkpoint_every=100,
        max_steps=FIRST,
    )
    args = (models["rows"], models["lam3"], models["lam3"], models["rm"], root / "lam4")
    first = train_offline_rl(*args, PPO, spec)
    resumed = train_offline_rl(*args, PPO, spec.model_copy(update={"max_steps": PPO.max_steps}))
    yield {"first": first, "resumed": resumed, "out": root / "lam4", **models}
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_a_second_launch_resumes_with_the_adapted_kl_coefficient(trained):
    first, resumed = trained["first"], trained["resumed"]
    assert first.resumed_from_step is None and first.steps == FIRST
    assert resumed.resumed_from_step == FIRST and resumed.steps == PPO.max_steps
    assert [int(h["step"]) for h in first.history] == [1, 2, 3]
    assert [int(h["step"]) for h in resumed.history] == list(range(FIRST + 1, PPO.max_steps + 1))
    last = first.history[-1]
    restored = adaptive_kl_coef(
        last["kl_coef"], last["kl"], PPO.batch_size, target=0.1, horizon=PPO.kl_horizon
    )
    assert first.kl_coef == pytest.approx(restored)
    assert resumed.history[0]["kl_coef"] == pytest.approx(restored)


@pytest.mark.slow
def test_the_history_comes_back_and_the_kl_coefficient_adapts(trained):
    history = trained["first"].history + trained["resumed"].history
    for record in history:
        assert {
            "loss",
            "clip_frac",
            "kl",
            "kl_coef",
            "score",
            "reward",
            "invalid",
            "lr",
            "grad_norm",
        } <= record.keys()
        assert -0.5 <= record["reward"] <= 0.5 and 0 <= record["invalid"] <= 1 and record["tokens_per_s"] > 0
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the policy starts as the reference
    assert history[0]["kl_coef"] == PPO.init_kl_coef
    assert all(h["kl"] != 0 for h in history[1:])
    assert history[-1]["kl_coef"] != PPO.init_kl_coef
    assert any(h["clip_frac"] > 0 for h in history)
    print(
        "\n".join(
            f"{h['step']:.0f}: reward {h['reward']:.3f} kl {h['kl']:.3f} beta {h['kl_coef']:.4f} "
            f"invalid {h['invalid']:.2f} clip {h['clip_frac']:.2f}"
            for h in history
        )
    )


@pytest.mark.slow
def test_the_policy_moves_towards_what_the_reward_model_prefers(trained):
    before, valid_before = bold_share(trained["lam3"], trained["tokenizer"], trained["rows"])
    after, valid_after = bold_share(trained["out"], trained["tokenizer"], trained["rows"])
    print(f"Bold {before:.2f} -> {after:.2f}, valid {valid_before:.2f} -> {valid_after:.2f}")
    assert after > before + 0.2
    history = trained["first"].history + trained["resumed"].history
    assert np.mean([h["reward"] for h in history[-3:]]) > np.mean([h["reward"] for h in history[:3]])


@pytest.mark.slow
def test_every_parameter_moved_and_the_policy_left_the_reference(trained):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(trained["out"]).eval()
    reference = AutoModelForCausalLM.from_pretrained(trained["lam3"]).eval()
    initial = dict(reference.named_parameters())
    unchanged = [n for n, p in policy.named_parameters() if torch.equal(p, initial[n])]
    assert not unchanged
    tokenizer = trained["tokenizer"]
    ids = torch.tensor([tokenizer(trained["rows"][0].prompt + trained["rows"][0].completion)["input_ids"]])
    with torch.no_grad():
        p, q = policy(ids).logits.log_softmax(-1), reference(ids).logits.log_softmax(-1)
    exact_kl = (p.exp() * (p - q)).sum(-1).mean()  # over the whole vocabulary at every position
    assert exact_kl > 1e-4
