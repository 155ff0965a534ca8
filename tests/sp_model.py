"""A Mistral-style SentencePiece model on CPU: a small SentencePiece BPE trained on the pipeline's own text
with the `sentencepiece` package, converted to transformers' Llama/Mistral tokenizer (`LlamaTokenizer`, the
fast one: `▁` word boundaries prepended to a text, `<0xNN>` byte fallback, BOS `<s>` added, EOS `</s>`
not, no pad token), saved with a tiny random `MistralForCausalLM` in the `save_pretrained` layout: what
`model.source: pretrained` loads for `--profile paper`, at a size CPU tests can train.

The session fixture `sp_mistral` of tests/conftest.py builds one (`save_sp_mistral`) on expert steps.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterable
from pathlib import Path

# The trainer's settings of Llama's and Mistral's tokenizer.model (their normalizer spec and trainer spec):
# BPE, raw text (no NFKC, spaces kept as they are), a dummy `▁` prefix, digits split, byte fallback for what
# the pieces do not cover, ids 0-2 = <unk>, <s>, </s>, no pad.
SPM_SETTINGS = {
    "model_type": "bpe",
    "byte_fallback": True,
    "split_digits": True,
    "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False,
    "allow_whitespace_only_pieces": True,
    "add_dummy_prefix": True,
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "character_coverage": 0.9995,
    "num_threads": 1,
    "minloglevel": 2,
}


def train_sentencepiece(texts: Iterable[str], out_file: Path, vocab_size: int) -> Path:
    """Train a SentencePiece BPE on `texts` and write its `tokenizer.model` to `out_file`.

    SentencePiece reads sentences (one a line, as a corpus file gives them): each text is split at its
    newlines, so a newline is never a piece and is written as the byte token `<0x0A>`, as in Mistral's."""
    import sentencepiece as spm

    lines = [line for text in texts for line in text.split("\n") if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, **SPM_SETTINGS
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(model.getvalue())
    return out_file


def mistral_tokenizer(model_file: Path, *, legacy: bool = False):
    """The fast Llama/Mistral tokenizer of a SentencePiece `tokenizer.model`, converted by transformers as
    it converts Mistral's (`convert_slow_tokenizer`'s LlamaConverter): BOS added, no EOS, no pad token.
    `legacy` True prepends `▁` to every text segment (Mistral v0.1's setting), False only to the first."""
    from transformers import LlamaTokenizer

    folder = model_file.parent / f"convert-{model_file.stem}"
    folder.mkdir(exist_ok=True)
    shutil.copy(model_file, folder / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(folder, add_bos_token=True, add_eos_token=False, legacy=legacy)


def save_sp_mistral(texts: Iterable[str], out_dir: Path, *, vocab_size: int = 1000, **sizes) -> Path:
    """A `save_pretrained` folder: the SentencePiece tokenizer of `texts` and a tiny random MistralForCausalLM
    (tests/helpers.py's TINY_MODEL sizes, `sizes` overriding), with Mistral's special ids (no pad: the
    loader makes EOS the pad, as for Mistral)."""
    import torch
    from helpers import TINY_MODEL
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = mistral_tokenizer(
        train_sentencepiece(texts, out_dir.parent / "spm" / "tokenizer.model", vocab_size)
    )
    size = {**TINY_MODEL, **sizes}
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=size["hidden_size"],
        intermediate_size=size["intermediate_size"],
        num_hidden_layers=size["num_hidden_layers"],
        num_attention_heads=size["num_attention_heads"],
        num_key_value_heads=size["num_key_value_heads"],
        head_dim=size["hidden_size"] // size["num_attention_heads"],
        max_position_embeddings=size["max_position_embeddings"],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MistralForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
