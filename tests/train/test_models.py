"""The tokenizer and the model factory: deterministic training, exact round trips, offline save and reload,
and a real tiny Mistral that learns on a few AdamW steps."""

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer, MistralForCausalLM

from lamops.models.factory import (
    build_tiny,
    flops_per_token,
    load_pretrained,
    make_model,
    parameter_count,
    save,
)
from lamops.models.tokenizer import SPECIAL_TOKENS, corpus_texts, train_tokenizer
from lamops.settings import ModelSpec

ROUND_TRIP = [
    '{"control_label": "47", "function": "click_input", "args": {"button": "left", "double": false}}',
    '<Available Control Item:>\n1:Save:Button\n19:Bold:Button\n<User Request:> Set a left indent of 1.5".',
    "Select the paragraph starting 'This memo from Dana Whitfield,' and save $410,000 on March 4, 2024.",
    "  leading spaces, trailing tab\t and\r\nwindows newlines  ",
    'Unicode: café, naïve, “curly quotes” — em dash, 日本語, emoji 🎉, escaped \\"quote\\"',
    "",
]
# A small corpus in the shape of the real one: observations, JSON actions and numbered plans.
CORPUS = [
    text
    for i in range(60)
    for text in (
        f"<Available Control Item:>\n{i}:Bold:Button\n{i + 1}:Italic:Button\n"
        f"<User Request:> Make word {i} bold.",
        json.dumps({"control_label": str(i), "control_name": "Bold", "function": "click_input", "args": {}}),
        f"1. Click the **Home** tab.\n2. Click **Bold** for paragraph {i}.",
    )
]
SMALL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "vocab_size": 400,
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(CORPUS, tmp_path_factory.mktemp("tok") / "tokenizer", vocab_size=400)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny(ModelSpec(**SMALL), tokenizer)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_tokenizer_training_is_deterministic_and_atomic(tmp_path):
    train_tokenizer(CORPUS, tmp_path / "a", vocab_size=400)
    train_tokenizer(CORPUS, tmp_path / "b", vocab_size=400)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert {"tokenizer.json", "tokenizer_config.json"} <= set(_files(tmp_path / "a"))
    train_tokenizer(CORPUS[:30], tmp_path / "a", vocab_size=300)  # replaces the folder, leaves no staging
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert _files(tmp_path / "a") != _files(tmp_path / "b")


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_tokenizer_round_trips_text_exactly(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.unk_token_id not in ids


def test_tokenizer_special_tokens_and_digits(tokenizer):
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3]
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<s>", "</s>")
    assert tokenizer.tokenize("2024") == ["2", "0", "2", "4"]
    assert len(tokenizer) <= 400


def test_corpus_texts_reads_train_splits_only(tmp_path):
    for name in ("plan_sft", "sft"):
        (tmp_path / name).mkdir()
        rows = [{"prompt": f"{name} p{i}", "completion": f"{name} c{i}"} for i in range(3)]
        (tmp_path / name / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / name / "test.jsonl").write_text(
            json.dumps({"prompt": "SECRET", "completion": "X"}) + "\n"
        )
    texts = list(corpus_texts(tmp_path))
    assert texts[:2] == ["plan_sft p0", "plan_sft c0"] and len(texts) == 12
    assert "SECRET" not in texts
    assert list(corpus_texts(tmp_path, limit=1)) == ["plan_sft p0", "plan_sft c0", "sft p0", "sft c0"]
    (tmp_path / "sft" / "train.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="sft/train.jsonl"):
        list(corpus_texts(tmp_path))


def test_tiny_model_takes_sizes_from_spec_and_vocab_from_tokenizer(model, tokenizer):
    config = model.config
    assert isinstance(model, MistralForCausalLM)
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (32, 64, 2)
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
    assert config.vocab_size == len(tokenizer) == model.get_input_embeddings().num_embeddings
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied
    assert next(model.parameters()).dtype == torch.float32


def test_build_tiny_is_seeded_and_leaves_global_rng_alone(model, tokenizer):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    same = build_tiny(ModelSpec(**SMALL), tokenizer)
    assert torch.equal(torch.rand(3), expected)
    other = build_tiny(ModelSpec(**SMALL, seed=1), tokenizer)
    for (name, a), b in zip(model.state_dict().items(), same.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, other.model.layers[0].mlp.up_proj.weight)


def test_save_and_reload_offline_give_identical_logits(model, tokenizer, tmp_path):
    out = save(model, tokenizer, tmp_path / "phase")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phase"]
    reloaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    text = ROUND_TRIP[0]
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    assert torch.equal(reloaded_tokenizer(text, return_tensors="pt")["input_ids"], ids)
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).logits, reloaded.eval()(ids).logits)
    pretrained, pretrained_tokenizer = make_model(ModelSpec(source="pretrained", path=str(out)))
    with torch.no_grad():
        assert torch.equal(pretrained(ids).logits, model(ids).logits)
    assert pretrained_tokenizer.pad_token_id == tokenizer.pad_token_id


def test_load_pretrained_names_a_missing_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_pretrained(ModelSpec(source="pretrained", path=str(missing)))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained(ModelSpec(source="pretrained", path=str(tmp_path)))


def test_make_model_arguments(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="needs a trained tokenizer"):
        make_model(ModelSpec(**SMALL))
    with pytest.raises(ValueError, match="do not pass one"):
        make_model(ModelSpec(source="pretrained", path="x"), tokenizer)
    tokenizer.save_pretrained(tmp_path)
    built, loaded = make_model(ModelSpec(**SMALL), tmp_path)
    assert built.config.vocab_size == len(loaded) == len(tokenizer)
    with pytest.raises(ValueError, match="vocab_size is 300"):
        build_tiny(ModelSpec(**{**SMALL, "vocab_size": 300}), tokenizer)


def test_model_spec_validation():
    with pytest.raises(ValidationError, match="needs `path`"):
        ModelSpec(source="pretrained")
    with pytest.raises(ValidationError, match="not divisible"):
        ModelSpec(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValidationError, match="not divisible"):
        ModelSpec(num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValidationError, match="Extra inputs"):
        ModelSpec(hidden=8)
    with pytest.raises(ValidationError, match="frozen"):
        ModelSpec().seed = 3  # type: ignore[misc]


def test_adamw_steps_lower_the_loss_and_change_every_parameter(tokenizer):
    model = build_tiny(ModelSpec(**SMALL), tokenizer).train()
    batch = tokenizer(CORPUS[:4], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert unchanged == []


def test_generation_of_a_few_tokens(model, tokenizer):
    inputs = tokenizer(["Make word 3 bold.", "Click"], return_tensors="pt", padding=True, padding_side="left")
    out = model.eval().generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 4)
    assert isinstance(tokenizer.decode(out[0, -4:]), str)


def test_parameter_count_and_flops_per_token(model, tokenizer):
    n = sum(p.numel() for p in model.parameters())
    assert parameter_count(model) == n  # tied embedding counted once
    assert flops_per_token(model) == 6 * n
    assert flops_per_token(model, seq_len=100) == 6 * n + 6 * 2 * 100 * 32
    untied = build_tiny(ModelSpec(**SMALL, tie_word_embeddings=False), tokenizer)
    assert parameter_count(untied) == n + len(tokenizer) * 32
    assert flops_per_token(untied) == 6 * n  # the input lookup is no multiply
