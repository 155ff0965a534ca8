"""The constrained decoder and the training encodings on a Mistral-style SentencePiece tokenizer (`▁`
prepended to a text, `<0xNN>` byte fallback; tests/sp_model.py), the tokenizer `--profile paper` brings:
what SFT trains on is what the decoder writes, token for token, and a random Mistral writes grounded
actions."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import walk

from lamops.agents.constraints import constraints_from_prompt
from lamops.agents.copies import quoted
from lamops.agents.decoding import ConstrainedDecoder, Cursor
from lamops.agents.grammar import Limits
from lamops.agents.lam import AgentConfig
from lamops.agents.vocab import continuation_ids, vocab_for
from lamops.env.actions import parse_action
from lamops.models.factory import load_pretrained
from lamops.settings import ModelSpec
from lamops.train.reward import encode_reward_sample
from lamops.train.sft import IGNORE_INDEX, encode_sample

pytestmark = pytest.mark.usefixtures("one_thread")
MAX_LEN = 2048
LIMITS = Limits(thought_tokens=12, plan_items=3, plan_item_tokens=8, arg_tokens=8)


@pytest.fixture(scope="module")
def pretrained(sp_mistral):
    model, tokenizer = load_pretrained(ModelSpec(source="pretrained", path=str(sp_mistral)))
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def tokenizer(pretrained):
    return pretrained[1]


def sft_targets(tokenizer, prompt: str, completion: str) -> list[int]:
    """The completion's tokens as SFT trains on them (the labels, EOS dropped)."""
    encoded = encode_sample(tokenizer, prompt, completion, MAX_LEN)
    target = [t for t in encoded["labels"] if t != IGNORE_INDEX]
    assert target[-1] == tokenizer.eos_token_id and encoded["completion_cut"] == 0
    return target[:-1]


def test_the_tokenizer_is_mistral_style(tokenizer, sp_mistral):
    import sentencepiece as spm

    text = '{"thought": "Café €5"}\n<User Request:> x'
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids
    pieces = tokenizer.convert_ids_to_tokens(ids[1:])
    assert pieces[0].startswith("▁") and "<0x0A>" in pieces and "<0xE2>" in pieces  # `▁`, newline, €
    # The transformers tokenizer is the SentencePiece model's own tokenization.
    sp = spm.SentencePieceProcessor(model_file=str(sp_mistral.parent / "spm" / "tokenizer.model"))
    assert ids[1:] == sp.encode(text)
    assert tokenizer.pad_token == tokenizer.eos_token  # Mistral has none: the loader pads with EOS
    # A continuation spells exactly its text: no `▁` in front.
    cont = continuation_ids(tokenizer, text)
    assert b"".join(vocab_for(tokenizer).bytes[t] for t in cont) == text.encode()


def cut_quote(step) -> bool:
    """Whether the step's thought quotes only the start of a phrase the request quotes ("Select the paragraph
    starting 'Thank you'" for 'Thank you for your patience...'): copies write the whole phrase, so with copies
    on such a reference is not reachable, whatever the tokenizer (4 of 199 expert steps, the byte-level
    tokenizer alike)."""
    request = quoted(constraints_from_prompt(step.prompt).request)
    return any(p != q and q.startswith(p) for p in quoted(step.thought) for q in request)


@pytest.mark.parametrize("copy", [False, True])
def test_every_reference_is_reachable_with_the_sft_tokenization(tokenizer, expert_steps, copy):
    """The decoder can write every completion with exactly the tokens SFT trains on: forced chunks equal
    them and every other token is allowed (copies on or off)."""
    vocab, limits = vocab_for(tokenizer), AgentConfig().limits()
    for step in expert_steps:
        completion = step.completion()
        if copy and cut_quote(step):
            continue
        cur = Cursor(constraints_from_prompt(step.prompt), limits, vocab)
        walk(cur, sft_targets(tokenizer, step.prompt, completion), copy)
        assert cur.text() == completion


def test_byte_fallback_text_is_reachable(tokenizer, expert_steps):
    """Characters the pieces do not hold are `<0xNN>` bytes, one token per byte: free text reaches them."""
    step = next(s for s in expert_steps if s.step > 1)
    action = json.loads(step.completion())
    for thought in ("Café, 5 €, 😀 and ß.", "ÿ"):
        text = json.dumps({**action, "thought": thought, "plan": [thought]}, ensure_ascii=False)
        target = sft_targets(tokenizer, step.prompt, text)
        assert any(vocab_for(tokenizer).bytes[t] in (b"\xc3", b"\xe2", b"\xf0") for t in target)
        cur = Cursor(constraints_from_prompt(step.prompt), AgentConfig().limits(), vocab_for(tokenizer))
        walk(cur, target, copy=False)
        assert cur.text() == text


def test_the_reward_model_scores_the_tokens_sft_trains_on(tokenizer, expert_steps):
    step = expert_steps[3]
    completion = step.completion()
    sft = encode_sample(tokenizer, step.prompt, completion, MAX_LEN)["input_ids"]
    assert encode_reward_sample(tokenizer, step.prompt, completion, MAX_LEN)["input_ids"] == sft


def test_a_random_mistral_writes_grounded_actions_after_the_training_prompt(pretrained, expert_steps):
    """Greedy, sampled and copying decodes parse and ground, after the very prompt tokens SFT trains on."""
    model, tokenizer = pretrained
    prompts = [s.prompt for s in expert_steps[::7]][:6]
    constraints = [constraints_from_prompt(p) for p in prompts]
    for bonus in (None, float("inf")):
        decoder = ConstrainedDecoder(
            model, tokenizer, max_len=MAX_LEN, max_new_tokens=160, limits=LIMITS, copy_bonus=bonus
        )
        for prompt in prompts:
            ids, cut = decoder.prompt_ids(prompt)
            encoded = encode_sample(tokenizer, prompt, "{}", MAX_LEN)
            assert cut == 0 and encoded["prompt_cut"] == 0
            assert ids == [
                t
                for t, label in zip(encoded["input_ids"], encoded["labels"], strict=True)
                if label == IGNORE_INDEX
            ]
        for temperature in (0.0, 1.0):
            gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
            decoded = decoder.decode(prompts, constraints, temperature=temperature, generators=gens)
            for c, d in zip(constraints, decoded, strict=True):
                assert d.error is None, d.text
                parse_action(d.text)
                if d.action["control_name"] is not None:
                    assert (d.action["control_label"], d.action["control_name"]) in c.controls
                assert d.forced_tokens > 0 and d.forward_passes < d.tokens
            if bonus is not None:
                assert sum(d.copied for d in decoded) > 0
