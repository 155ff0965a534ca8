"""SFT variants a 7B recipe needs, on a tiny Mistral in this process (`train.backend: local`, DeepSpeed ZeRO-2
on CPU): LoRA SFT trains the adapters only and publishes them merged, a plain folder that `lamops agent`'s
loader reloads and decodes with; bf16 trains on CPU (the paper profile's dtype) with the loss falling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import ROOT, tiny_spec
from train.test_sft import synthetic_rows

from lamops.models.factory import build_tiny
from lamops.models.tokenizer import train_tokenizer
from lamops.settings import MISTRAL_LINEAR, SFTConfig
from lamops.train.distributed import TrainSpec
from lamops.train.sft import LORA_FILE, add_lora, read_lora_record, train_sft

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 20
RANK = 8
# Long enough for an observation of the built-in environment, decoded at the end (RoPE: no extra weights).
TINY = tiny_spec(max_position_embeddings=1024, vocab_size=512)


@pytest.fixture(scope="module")
def observation():
    from lamops.env.families import applicable_templates, sample_task
    from lamops.env.word import WordEnv

    task = sample_task("emphasize_phrase", applicable_templates("emphasize_phrase")[0], 0)
    return WordEnv().reset(task)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, observation):
    rows = synthetic_rows()
    texts = [t for r in rows for t in (r.prompt, r.completion)] + [observation.prompt()]
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(texts, folder, vocab_size=512)
    return folder


def run_sft(root: Path, tokenizer_dir: Path, spec, deepspeed: str, **settings):
    rows = synthetic_rows()
    train = TrainSpec(
        name="sft",
        deepspeed_config=ROOT / "infra" / "deepspeed" / deepspeed,
        storage_path=str(root / "runs"),
        backend="local",
        num_workers=1,
        checkpoint_every=STEPS,  # one checkpoint, at the last step: the trained module before publishing
    )
    sft = SFTConfig(warmup_steps=2, micro_batch_size=4, max_steps=STEPS, max_len=64, log_every=2, **settings)
    result = train_sft(rows, spec, tokenizer_dir, root / "model", sft, train)
    checkpoint = root / "runs" / "sft" / f"step_{STEPS:08d}" / "ds" / "mp_rank_00_model_states.pt"
    return result, torch.load(checkpoint, map_location="cpu", weights_only=False)["module"]


def load_as_the_agent_does(model_dir: Path):
    from lamops.config import load_config
    from lamops.registry.loading import load_model

    return load_model(str(model_dir), load_config(ROOT / "params.yaml"))


def decodes(model, tokenizer, observation) -> dict:
    """One greedy action for `observation` through the agent's constrained decoder; it parses."""
    from lamops.agents.lam import AgentConfig, LAMAgent

    config = AgentConfig(max_len=512, max_new_tokens=96, max_thought_tokens=8, max_plan_items=1)
    (decoded,) = LAMAgent(model, tokenizer, config).act([observation])
    assert decoded.error is None and decoded.action is not None, decoded.text
    return decoded.action


# ------------------------------------------------------------------------------------------------- unit


def test_lora_is_off_by_default_and_named_as_the_reward_models():
    from lamops.settings import RewardConfig

    assert SFTConfig().lora_r is None
    lora = SFTConfig(lora_r=4)
    rm = RewardConfig()
    assert (lora.lora_alpha, lora.lora_dropout, lora.lora_target_modules) == (
        rm.lora_alpha,
        rm.lora_dropout,
        rm.lora_target_modules,
    )
    with pytest.raises(ValueError):
        SFTConfig(lora_r=0)


def test_add_lora_leaves_only_the_adapters_trainable_and_names_a_bad_target(tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    wrapped = add_lora(build_tiny(TINY, tokenizer), SFTConfig(lora_r=RANK))
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == set(MISTRAL_LINEAR)
    with pytest.raises(ValueError, match="lora_target_modules.*q_proj"):
        add_lora(build_tiny(TINY, tokenizer), SFTConfig(lora_r=2, lora_target_modules=("nope",)))


# ------------------------------------------------------------------------------------------------- component


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("lora")
    result, module = run_sft(root, tokenizer_dir, TINY, "zero2_cpu.json", lr=2e-2, lora_r=RANK)
    return root, result, module


def test_a_lora_phase_trains_the_adapters_only_and_the_loss_falls(lora_run, tokenizer_dir):
    from transformers import AutoTokenizer

    _, result, module = lora_run
    # A random-init base with frozen embeddings leaves adapters little to fit in 20 steps; they do fit some.
    assert result.history[-1]["loss"] < 0.95 * result.history[0]["loss"], result.history
    initial = dict(build_tiny(TINY, AutoTokenizer.from_pretrained(tokenizer_dir)).named_parameters())
    base, adapters = {}, {}
    for name, value in module.items():  # the trained peft model, as its last checkpoint holds it
        plain = name.removeprefix("base_model.model.").replace(".base_layer", "")
        (adapters if ".lora_" in name else base)[plain] = value
    assert set(base) - set(initial) <= {"lm_head.weight"}  # the tied head, stored under its own name too
    assert all(torch.equal(base[n], initial[n].detach()) for n in initial)  # the base never moved
    lora_b = [v for n, v in adapters.items() if ".lora_B." in n]
    assert len(lora_b) == len(MISTRAL_LINEAR) * TINY.num_hidden_layers
    assert all(v.abs().max() > 0 for v in lora_b)  # B starts at 0: every adapter learned


def test_the_published_lora_model_is_merged_recorded_and_reloads_for_the_agent(
    lora_run, tokenizer_dir, observation
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _, _ = lora_run
    out = root / "model"
    assert not (out / "adapter_config.json").exists()  # a plain causal LM folder: no peft needed to load it
    assert read_lora_record(out) == {
        "r": RANK,
        "alpha": 32.0,
        "dropout": 0.1,
        "target_modules": list(MISTRAL_LINEAR),
        "merged": True,
        "base": "tiny",
    }
    assert json.loads((out / LORA_FILE).read_text())["r"] == RANK
    merged = dict(AutoModelForCausalLM.from_pretrained(out, local_files_only=True).named_parameters())
    initial = dict(build_tiny(TINY, AutoTokenizer.from_pretrained(tokenizer_dir)).named_parameters())
    for name, before in initial.items():
        delta = (merged[name] - before).detach().double()
        if name.split(".")[-2] in MISTRAL_LINEAR:  # W + (alpha / r) B A: a low-rank update
            singular = torch.linalg.svdvals(delta)
            assert singular[0] > 0, name
            assert singular[RANK:].max() < 1e-4 * singular[0], (name, singular[: RANK + 2])  # rest: rounding
        else:
            assert not delta.any(), name  # embeddings and norms stay the base's
    action = decodes(*load_as_the_agent_does(out), observation)
    assert action["function"] and action["status"] in ("CONTINUE", "FINISH")


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("bf16")
    spec = tiny_spec(max_position_embeddings=1024, vocab_size=512, dtype="bfloat16")
    result, module = run_sft(root, tokenizer_dir, spec, "zero2_cpu_bf16.json", lr=1e-2)
    return root, result, module


def test_bf16_trains_on_cpu_and_the_bf16_model_decodes(bf16_run, observation):
    """The paper profile's dtype: parameters in bf16 from `model.dtype`, DeepSpeed's bf16 mode on (fp32
    master weights in the ZeRO optimizer), the loss falls and the published bf16 model decodes."""
    root, result, module = bf16_run
    losses = [h["loss"] for h in result.history]
    assert all(loss == loss and loss < float("inf") for loss in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert {v.dtype for v in module.values()} == {torch.bfloat16}
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_as_the_agent_does(root / "model")  # as `lamops agent` does: fp32 weights
    decodes(model, tokenizer, observation)
    model = AutoModelForCausalLM.from_pretrained(root / "model", dtype="auto", local_files_only=True)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    decodes(model, tokenizer, observation)  # and in bf16, as on a GPU


def test_the_next_phase_starts_from_the_published_folder_in_its_dtype_with_lora(bf16_run, tmp_path):
    """LAM2 from LAM1's folder: loaded in the dtype it was saved in (bf16, though this DeepSpeed config
    leaves bf16 off), LoRA on it, and the record names that folder as the base."""
    first, _, _ = bf16_run
    result, module = run_sft(tmp_path, None, first / "model", "zero2_cpu.json", lr=1e-2, lora_r=RANK)
    assert {v.dtype for n, v in module.items() if ".lora_" not in n} == {torch.bfloat16}
    # peft keeps adapters over a bf16 base in fp32 (its autocast_adapter_dtype); they are merged in bf16.
    assert {v.dtype for n, v in module.items() if ".lora_" in n} == {torch.float32}
    assert read_lora_record(tmp_path / "model")["base"] == str(first / "model")
    losses = [h["loss"] for h in result.history]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0], losses


def test_a_peft_adapter_folder_loads_merged_into_the_base_it_names(tmp_path, tokenizer_dir, observation):
    """Your own LoRA adapter (peft's save_pretrained: adapter_config.json naming its base, none of the base's
    weights) loads for `lamops agent` as its base with the adapters merged; an SFT phase starts from it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lamops.models.factory import save

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    save(build_tiny(TINY, tokenizer), tokenizer, tmp_path / "base")
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")  # name_or_path: the adapter's base
    adapted = add_lora(base, SFTConfig(lora_r=RANK))
    with torch.no_grad():
        for name, weight in adapted.named_parameters():
            if ".lora_B." in name:
                weight.normal_(std=0.05)  # a trained adapter: B is no longer 0
    adapted.save_pretrained(tmp_path / "adapter")  # adapters only, no tokenizer: the base's is used
    assert not (tmp_path / "adapter" / "config.json").exists()
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        expected = adapted.eval()(input_ids=ids).logits  # eval: no LoRA dropout
    model, loaded_tokenizer = load_as_the_agent_does(tmp_path / "adapter")
    assert type(model).__name__ == "MistralForCausalLM"  # merged: no peft wrapper left
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-4)
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    decodes(model, loaded_tokenizer, observation)
    result, _ = run_sft(tmp_path / "next", None, tmp_path / "adapter", "zero2_cpu.json", lr=1e-2)
    assert result.steps == STEPS
