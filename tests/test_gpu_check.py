"""The GPU check's dry run (what CI can run: shapes, parameter counts, memory per ZeRO stage) and the sizing
arithmetic behind it (`lamops.models.sizing`) against real models built from the same shapes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import ROOT

from lamops.models.sizing import (
    MISTRAL_1B,
    MISTRAL_7B,
    MistralShape,
    activation_bytes,
    flops_per_token,
    lora_parameter_count,
    parameter_count,
    zero_model_state_bytes,
)
from lamops.settings import MISTRAL_LINEAR

SMALL = MistralShape(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def test_the_dry_run_prints_shapes_and_a_memory_estimate_per_zero_stage():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--gpus", "8", "--lora-r", "16"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(re.fullmatch(r"[\w.]+: .+", line) for line in lines), lines  # `name: value unit`
    figures = dict(line.split(": ", 1) for line in lines)
    assert figures["gpu_check.mode"].startswith("dry-run")
    assert figures["mistral7b.params_exact"] == "7241732096 params"  # Mistral-7B-v0.1
    assert figures["mistral7b.params"] == "7.242 B"
    assert 0.95 < float(figures["check_1b.params"].split()[0]) < 1.1
    for mode in ("full", "lora_r16"):
        gib = [float(figures[f"mistral7b.{mode}.zero{s}.gpus8"].split()[0]) for s in range(4)]
        assert gib[0] >= gib[1] >= gib[2] >= gib[3] > 0, (mode, gib)
    assert figures["mistral7b.full.zero2.gpus8"] == "25.3 GiB"  # 2 P + 14 P / 8
    assert "ZeRO-2: (gradients + Adam) / N" in figures["formula.memory"]


def test_parameter_counts_match_built_models_tied_or_not():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    for tied in (False, True):
        shape = SMALL.model_copy(update={"tie_word_embeddings": tied})
        config = MistralConfig(**shape.model_dump(), head_dim=shape.head_dim, max_position_embeddings=64)
        with torch.device("meta"):
            model = MistralForCausalLM(config)
        assert sum(p.numel() for p in model.parameters()) == parameter_count(shape), tied
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=list(MISTRAL_LINEAR)))
    adapters = sum(p.numel() for n, p in lora.named_parameters() if "lora_" in n)
    assert adapters == lora_parameter_count(SMALL, 4)
    with pytest.raises(ValueError, match="no linear layer named"):
        lora_parameter_count(SMALL, 4, ("qkv",))


def test_flops_per_token_is_the_factorys_formula():
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from lamops.models.factory import flops_per_token as built_flops

    config = MistralConfig(**SMALL.model_dump(), head_dim=SMALL.head_dim, max_position_embeddings=64)
    with torch.device("meta"):
        model = MistralForCausalLM(config)
    assert flops_per_token(SMALL, 100) == built_flops(model, seq_len=100)


def test_zero_stages_divide_what_the_zero_paper_says():
    p, n = 1000, 4
    assert zero_model_state_bytes(p, p, 0, n) == 16 * p
    assert zero_model_state_bytes(p, p, 1, n) == 4 * p + 12 * p // n
    assert zero_model_state_bytes(p, p, 2, n) == 2 * p + 14 * p // n
    assert zero_model_state_bytes(p, p, 3, n) == 16 * p // n
    assert zero_model_state_bytes(p, 10, 2, n) == 2 * p + 140 // n  # LoRA: only adapters train
    with pytest.raises(ValueError):
        zero_model_state_bytes(p, p, 4, n)
    assert parameter_count(MISTRAL_7B) == 7_241_732_096 and 1.0e9 < parameter_count(MISTRAL_1B) < 1.01e9
    assert activation_bytes(MISTRAL_7B, 2048, 2, checkpointing=True) < activation_bytes(
        MISTRAL_7B, 2048, 2, checkpointing=False
    )
