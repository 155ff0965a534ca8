"""The LAM4 guard (lamops.evaluation.guard): the decision rule on hand-made scores, the validation slice, then
the guard on tiny models: a LAM3 fitted to a few expert steps against a candidate with its weights perturbed
(published in its place, byte for byte) and against the same candidate under a tolerance that lets it pass
(kept as it is)."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, tiny_spec

from lamops.evaluation.guard import (
    GUARD_TAG,
    SLICE_SALT,
    SOURCE_TAG,
    SliceScore,
    best_candidate,
    judge,
    publish_copy,
    run_guard,
    validation_slice,
)
from lamops.records import StepSFTRow

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------- unit


def scored(ssr: float, reward: float | None = None) -> SliceScore:
    return SliceScore(ssr=ssr, reward=reward, steps=50, tasks=15)


def test_a_candidate_more_than_the_tolerance_below_lam3_is_replaced_by_it():
    verdict = judge(scored(85.6, 0.40), scored(71.2, 0.44), tolerance=1.0)
    assert not verdict.kept
    tags = verdict.tags()
    assert tags[SOURCE_TAG] == "lam3"
    assert "71.2" in tags[GUARD_TAG] and "85.6" in tags[GUARD_TAG] and "tolerance 1" in tags[GUARD_TAG]
    assert "71.2" in verdict.message() and "85.6" in verdict.message() and "\n" not in verdict.message()
    assert verdict.metrics() == {
        "guard.lam3_ssr": 85.6,
        "guard.candidate_ssr": 71.2,
        "guard.kept": 0.0,
        "guard.steps": 50.0,
        "guard.tasks": 15.0,
        "guard.candidates": 1.0,
        "guard.final_chosen": 1.0,
        "guard.lam3_reward": 0.40,
        "guard.candidate_reward": 0.44,
    }


def test_a_candidate_within_the_tolerance_or_better_is_kept():
    for candidate in (84.6, 85.6, 92.0):  # 84.6: exactly the tolerance below (85.6 - 1.0 is 84.6000000001)
        verdict = judge(scored(85.6), scored(candidate), tolerance=1.0)
        assert verdict.kept, candidate
        assert verdict.tags() == {SOURCE_TAG: "ppo"} and verdict.reason is None
        assert verdict.metrics()["guard.kept"] == 1.0 and "guard.lam3_reward" not in verdict.metrics()
    assert not judge(scored(85.6), scored(84.5), tolerance=1.0).kept
    assert judge(scored(85.6), scored(71.2), tolerance=20.0).kept


def test_the_best_candidate_has_the_highest_ssr_then_reward_then_is_the_latest():
    assert best_candidate([("step-1", scored(80.0)), ("step-2", scored(82.0)), ("final", scored(81.0))]) == 1
    tied = [("step-1", scored(80.0, 0.3)), ("step-2", scored(80.0, 0.1)), ("final", scored(80.0))]
    assert best_candidate(tied) == 0  # an unmeasured reward counts lowest
    assert best_candidate([("step-1", scored(80.0, 0.2)), ("final", scored(80.0, 0.2))]) == 1
    with pytest.raises(ValueError, match="no candidate"):
        best_candidate([])


def test_both_models_must_be_scored_on_the_same_slice():
    with pytest.raises(ValueError, match="50 steps, the candidate on 10"):
        judge(scored(80.0), SliceScore(ssr=80.0, reward=None, steps=10, tasks=3), tolerance=1.0)


def steps(*tasks: tuple[str, int]) -> list[StepSFTRow]:
    return [
        StepSFTRow(task_id=t, step=k, prompt="p", completion="c") for t, n in tasks for k in range(1, n + 1)
    ]


def test_the_slice_is_whole_tasks_in_a_hash_order_whatever_the_file_order():
    rows = steps(*[(f"task-{i:02d}", 1 + i % 4) for i in range(30)])
    order = sorted(rows, key=lambda r: hashlib.sha256(f"{SLICE_SALT}\0{r.task_id}".encode()).digest())
    chosen = validation_slice(rows, 10)
    assert chosen == order[: len(chosen)] and chosen != rows[: len(chosen)]
    assert validation_slice(list(reversed(rows)), 10) == chosen  # the file's order does not matter
    last = [r for r in chosen if r.task_id == chosen[-1].task_id]
    assert len(chosen) >= 10 > len(chosen) - len(last)  # tasks until 10 steps, the last one whole
    assert last == [r for r in rows if r.task_id == chosen[-1].task_id]  # its steps in step order
    assert validation_slice(rows, 1) == [r for r in rows if r.task_id == order[0].task_id]
    assert validation_slice(rows, 1000) == order


# ------------------------------------------------------------------------------------------ tiny models

FAMILIES = ("emphasize_phrase", "indent_paragraph", "insert_table", "align_paragraph")


def expert_rows() -> list[StepSFTRow]:
    """The expert's steps on one task of each of FAMILIES, rendered as the default params render prompts."""
    from lamops.agents.expert import ExpertAgent
    from lamops.config import load_config
    from lamops.data.datasets import step_samples
    from lamops.env.families import applicable_templates, sample_task
    from lamops.env.word import WordEnv

    env = WordEnv(view=load_config(ROOT / "params.yaml").env.view())
    rows = []
    for family in FAMILIES:
        task = sample_task(family, applicable_templates(family)[0], 0)
        rows += step_samples(ExpertAgent().run(env, task, verify=False))
    return rows


def fit(model, tokenizer, rows: list[StepSFTRow], steps: int) -> None:
    """In-process SFT steps on `rows` (completion-only loss): the tiny model learns to repeat them."""
    from lamops.train.sft import SFTCollator, encode_rows

    samples, _ = encode_rows(tokenizer, rows, 1024)
    collate = SFTCollator(tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        chosen = np.random.default_rng(step).choice(len(samples), min(4, len(samples)), replace=False)
        model(**collate([samples[i] for i in chosen])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def reward_model(tokenizer):
    """A random one-layer reward model (num_labels 1): the guard only averages what it says."""
    from transformers import MistralConfig, MistralForSequenceClassification

    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return MistralForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """lam3: a tiny model fitted to the expert's steps; worse: lam3 with every weight perturbed; rm."""
    from lamops.models.factory import build_tiny, save
    from lamops.models.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("guard")
    rows = expert_rows()
    tokenizer = train_tokenizer(
        [x for r in rows for x in (r.prompt, r.completion)], root / "tok", vocab_size=1024
    )
    model = build_tiny(tiny_spec(), tokenizer)
    torch.manual_seed(0)
    fit(model, tokenizer, rows, steps=40)
    save(model, tokenizer, root / "lam3")
    with torch.no_grad():
        noise = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=noise) * 2.0 * (p.std() if p.numel() > 1 else 1.0))
    save(model, tokenizer, root / "worse")
    save(reward_model(tokenizer), tokenizer, root / "rm")
    return {"root": root, "rows": rows}


def agent():
    """The agent as the stage builds it: the default params' prompt view, greedy."""
    from lamops.agents.lam import AgentConfig
    from lamops.config import load_config

    return AgentConfig(
        max_len=1024, **load_config(ROOT / "params.yaml").env.view().model_dump(), batch_size=8
    )


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def guarded(models, tolerance: float, name: str):
    from lamops.evaluation.guard import ppo_reward
    from lamops.settings import PPOConfig

    root = models["root"]
    candidate = shutil.copytree(root / "worse", root / name)
    reward = ppo_reward(root / "rm", PPOConfig(max_len=1024, max_new_tokens=160))
    verdict = run_guard(root / "lam3", candidate, models["rows"], agent(), tolerance, reward)
    return verdict, candidate


def test_a_worse_candidate_is_replaced_by_lam3s_weights_byte_for_byte(models):
    from safetensors.torch import load_file

    from lamops.evaluation.offline import load

    verdict, candidate = guarded(models, 1.0, "published")
    root = models["root"]
    assert verdict.lam3.ssr >= 40, "the fitted LAM3 should repeat many of its training steps"
    assert not verdict.kept and verdict.candidate.ssr < verdict.lam3.ssr - 1.0
    assert verdict.tags()[SOURCE_TAG] == "lam3" and f"{verdict.lam3.ssr:.1f}" in verdict.tags()[GUARD_TAG]
    assert verdict.lam3.steps == len(models["rows"]) and verdict.lam3.tasks == len(FAMILIES)
    for name in ("lam3", "candidate"):
        assert -0.5 <= verdict.metrics()[f"guard.{name}_reward"] <= 0.5
    assert files(candidate) == files(root / "lam3")
    old, new = load_file(root / "lam3" / "model.safetensors"), load_file(candidate / "model.safetensors")
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    model, tokenizer = load(candidate)  # a model that loads, with its tokenizer
    assert type(model).__name__ == "MistralForCausalLM" and tokenizer.bos_token_id is not None
    assert not list(candidate.parent.glob(f".{candidate.name}.*")), "the staging folder is left behind"


def test_a_candidate_within_the_tolerance_is_left_as_it_is(models):
    verdict, candidate = guarded(models, 100.0, "kept")
    assert verdict.kept and verdict.tags() == {SOURCE_TAG: "ppo"}
    assert files(candidate) == files(models["root"] / "worse")
    assert math.isclose(verdict.metrics()["guard.kept"], 1.0)


def test_a_better_intermediate_candidate_is_published_over_the_final_one(models):
    """PPO's final candidate is the perturbed model, an earlier one LAM3's weights: the earlier one is judged,
    kept and copied over the final one's folder."""
    root = models["root"]
    final = shutil.copytree(root / "worse", root / "final-worse")
    early = shutil.copytree(root / "lam3", root / "candidates" / "step-000003")
    verdict = run_guard(root / "lam3", final, models["rows"], agent(), 1.0, None, [early])
    assert verdict.kept and verdict.chosen == "step-000003" and verdict.candidate.ssr == verdict.lam3.ssr
    assert verdict.tags() == {SOURCE_TAG: "ppo/step-000003"}
    assert verdict.metrics()["guard.candidates"] == 2 and verdict.metrics()["guard.final_chosen"] == 0
    assert files(final) == files(root / "lam3")


def test_publish_copy_replaces_the_whole_folder(tmp_path):
    source, out = tmp_path / "lam3", tmp_path / "lam4"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"lam3 weights")
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"ppo weights")
    (out / "stale.json").write_text("{}")
    publish_copy(source, out)
    assert files(out) == {"model.safetensors": b"lam3 weights"}
