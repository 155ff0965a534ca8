"""Grammar-constrained, batched decoding of one LAM action.

The output is always exactly the training completion (`lamops.records.TrajectoryStep.completion()`):

    {"thought": "...", "control_name": "Layout" | null, "control_label": "6" | null, "function": "...",
     "args": {...}, "status": "CONTINUE" | "FINISH", "plan": ["...", ...]}

with json.dumps' separators, ensure_ascii=False and the key order of the training data, so it always parses
with `lamops.env.actions.parse_action` (the environment may still refuse it: a wrong control is a failed
step, not an exception). The grammar applies the levers of STACK-NOTES ("Can a tiny model learn to act?"):

- `control_name` is one of the visible controls' names or null; `control_label` is then forced to that
  control's label (null with null): grounding by name. A null control excludes the functions that need one.
- `function` is one of `lamops.env.actions.FUNCTIONS`; `args` has that function's keys, in the schema's
  order, with values of its types: literals for `button` / `double`, integers as digits without leading
  zeros in a bounded range (paragraph indices 0-999, table number 1-99, rows 1-50, columns 1-20, wheel
  -99-99), strings as below.
- String arguments, decided on the SFT data (data/datasets/sft/train.jsonl, 1,205 steps, measured
  2026-11-22): `select_text` text is a substring of the request in 108/108 steps and of the canvas in 97/108:
  it is a span of the request or a canvas line. `set_edit_text` text is in the request in 104/104 (canvas
  36/104): a span of the request. `keyboard_input` keys are request text in 17/56 (typed text) and special
  keys in 39/56 (`{RIGHT}`, `^{END}`, `{DELETE}`, `{ENTER}`, none in request or canvas): a span of the
  request or 1-4 key chords (`^`/`+`/`%` modifiers, then `{NAME}` with a name the environment knows, or a
  letter or digit). `summary` text (never in the data) is free text. Spans never cross a line and never
  contain a backslash or a control character; a quote inside one is written `\\"` as json.dumps writes it.
- Free text (the thought, plan items, `summary`) is any text without a control character; the only escapes
  are `\\"` and `\\\\`, so the text round-trips through json.dumps unchanged. Each string has a token cap
  (tokens that end inside it, its opening one included); at the cap it is closed by force, and at
  `max_new_tokens` the whole action is closed by force with the shortest valid ending.

Copies (issue 14; `lamops.agents.copies`): after the first step the expert data copies the previous plan:
the thought is its first item without the number (905/905 rows), the plan the remaining items (905/905),
FINISH comes exactly when one item is left (295/295); trained tiny models do not copy (greedy thought equal
to the reference in 8 of 121 steps), and forcing the thought to the next item lifted SSR from 44.7 to 58.3
(LEARNING.md). So the thought, the status and the plan list carry their copies (`copies`), in order of
preference (the next item first), and so does the control name, of the thought: the control the written
thought names (`copies.named_control`: the reference control in 94% of the steps with one, and never offered
where the step has none); so do a text argument and typed keys (the thought's quoted phrase),
`select_paragraph`'s indices (the canvas paragraph the thought quotes: `copies.paragraph_copy`), and at a
first step the thought and plan of the agent's plan library (`lamops.agents.plans`: the nearest training
task's first step). With `copy_bonus` set the decoder offers each copy as one whole
continuation: where such a part starts (or while what it has taken is the start of a copy) each copy's first
token is the first token of its training tokenization (the same stable-token rule as forced chunks); the
preferred copy's first token gets `copy_bonus` nats, the token is chosen as usual (greedy or sampled), and a
token that starts a copy writes that whole copy (the earliest that it starts), the rest going in as ONE
forced chunk. Why this rule and not scoring whole options: a multiple-choice over each copy's summed or mean
log-probability costs a forward over every candidate per part and still needs a free-text score to compare
with, while the data say the copy is right whenever there is one; a small model's first token is where it
shows intent (`Select` vs `Click`), and once it agrees the copy is the default, where token-by-token greedy
wanders off after a few tokens. `copy_bonus` sets how strongly the next item is preferred (+inf: always copy,
the measured simulation); None (`AgentConfig.copy_plan` False): no copies, plain constrained decoding. The
grammar's language does not change (copies are free text the grammar already allows, written uncapped), so
every output still parses and grounds, and every reference completion stays reachable with the training
tokenization; but under copies a free thought or plan whose first token starts a copy is written as the copy
(a plan's first token is `[`-like, so a non-empty free plan is not written while a copy is offered).

How: a byte-level grammar over segments (literal, choice, string body, integer, plan list) walked against a
trie of the vocabulary's token bytes; a free-text state skips the walk with a precomputed mask of the tokens
made of plain text bytes, and checks only the tokens that hold a quote or a backslash. Where the grammar has
one continuation (`", "control_label": "19", "function": "`), the tokenizer's own tokenization of it is
appended without a forward pass each: the whole forced chunk (after the model's last chosen token) goes in
ONE forward that extends the KV cache and yields the logits of the next free choice. Only the part of the
chunk whose tokenization cannot change with what follows is forced (the longest common prefix of the
chunk's tokenization followed by every byte the grammar allows next), so forced text is tokenized as
training tokenized it (on all 1,504 SFT steps, train and test, every forced chunk equals the training
tokenization and every completion's own tokens are allowed at each step). Rows of a batch decode in lockstep:
rows that append different numbers of tokens are right-padded and masked (attention mask with holes,
position_ids = cumsum(mask) - 1); finished rows leave the KV cache.

Why not a library (checked 2026-12-04, 1 CPU thread: 40 expert steps walked with their training tokens on a
1k SentencePiece vocabulary and a 32k one): the grammar changes with every observation (visible controls,
request and canvas spans), so it is built per observation. outlines-core 0.2.14 compiles a regular
expression into a token index: 1.6 s / 13 s per observation (1k / 32k), without spans. xgrammar 0.2.9
compiles an EBNF in ~2.5 ms and jumps forward, but a span (a substring language) is O(n^2) as EBNF, its mask
cost 0.54 ms a step at 32k, and with the 1k vocabulary it refused valid tokens in 28 of 40 references.
llguidance 1.9.1 serves a per-observation Lark grammar (the action's shape: controls with their labels,
functions, a span argument (`substring_chars`), free text, status, plan; no caps or integer ranges) with
forced tokens (`compute_ff_tokens`, equal to the training tokens in all 40): ~2 ms to build per observation
and 0.03-0.04 ms a step, against this walk's 0.3 ms per observation and 0.08 (1k) / 0.11 (32k) ms a step,
measured alike: the same few ms per action, far below one forward pass. The copies (a token that starts a
copy writes the whole copy; the preferred copy's bonus), the token caps and the closing by force would
still be built around it, so it is not used. Hugging Face `generate`'s logits processors cannot append
several tokens in one forward. The walk is plain Python:
with the tiny model's 2,048-token vocabulary the grammar and tokenizer work cost ~0.3 ms per decode step and
row. Measured 2026-11-22 (2 loaded cores, 1 torch thread), the default tiny model (2.0M params, 319 SFT steps)
on 8 test prompts (731 prompt tokens each) in one batch: 79 completion tokens per action of which 46 forced,
33 forward passes per action, 166 ms per action (prefill 84, decode forwards 56, the rest 17), ~470
completion tokens/s.

A SentencePiece vocabulary (Mistral's, Llama's: `▁` for a space, `<0xNN>` byte tokens) is read the same way
(`lamops.agents.vocab.token_bytes`); a character without a piece is written byte by byte. Its tokenizer
prepends `▁` to a text, which the grammar never writes: forced chunks, copies and the training targets
(`lamops.train.sft.encode_sample`, the reward model's encoding) all take a text's tokens as a continuation
(`lamops.agents.vocab.continuation_ids`: tokenized mid-text, after a newline that is then dropped), so SFT
trains on exactly the tokens this decoder writes (tests/agents/test_decoding_sentencepiece.py and
tests/stages/test_sentencepiece_phases.py, on a SentencePiece model trained on CPU).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from lamops.agents.constraints import Constraints
from lamops.agents.grammar import (
    COMPLETE,
    Choice,
    FunctionChoice,
    KeysStr,
    Limits,
    Lit,
    NameChoice,
    ParagraphIndex,
    QuotedStr,
    Resumed,
    action_grammar,
    advance,
    char_len,
    finish,
)
from lamops.agents.prompt import fit_prompt
from lamops.agents.vocab import Vocab, vocab_for
from lamops.env.actions import ActionError, parse_action

# ---------------------------------------------------------------------------------------------- cursor


class Cursor:
    """One action being decoded: the grammar state, the bytes and tokens so far, and what the grammar
    allows next."""

    def __init__(self, constraints: Constraints, limits: Limits, vocab: Vocab):
        self.vocab = vocab
        self.state = action_grammar(constraints, limits)
        self.out = bytearray()
        self.written = b""  # the bytes the current part (the state's head) has taken so far
        self.tokens: list[int] = []
        self.forced_count = 0
        self.copied = 0  # parts written as copies (`lock`)
        self.closed_by_force = False
        self._mask: torch.Tensor | None = None
        self._offers: list[tuple[int, Any]] | None = None

    @property
    def complete(self) -> bool:
        return self.state is COMPLETE

    def push(self, tid: int, forced: bool = False) -> None:
        piece = self.vocab.bytes[tid]
        state, written = self.state, self.written
        for b in piece or b"":
            head = state[0]
            state = advance(state, b)
            if state is None:
                break
            written = written + bytes((b,)) if state is not COMPLETE and state[0] is head else b""
        if not piece or state is None:
            raise ValueError(f"token {tid} ({piece!r}) is not allowed after {bytes(self.out)!r}")
        self.written = written
        if state is not COMPLETE and hasattr(state[0], "end_token"):
            state = (state[0], state[0].end_token(state[1]), state[2])
        self.state = state
        self.out += piece
        self.tokens.append(tid)
        self.forced_count += forced
        self._mask = None
        self._offers = None

    def allowed(self) -> torch.Tensor:
        """A bool mask over the vocabulary of the tokens the grammar accepts next."""
        if self._mask is None:
            self._mask = _allowed(self.state, self.vocab)
        return self._mask

    def offers(self) -> list[tuple[int, Any]]:
        """The copies the grammar offers now (`copy_states`), in order of preference, each as its first token
        (the training tokenization of the copy) and the state that writes the whole copy, or None for a copy
        of a choice's option (the token is only preferred: its first token, e.g. a name's opening quote, may
        start other options too, and once the option is the only one left the grammar forces the rest); only
        copies whose first token the grammar allows."""
        if self._offers is None:
            self._offers = []
            for state, lockable in copy_states(self.state, self.written, bytes(self.out)):
                chunk, after = forced_bytes(state)
                tokens = self.vocab.stable_tokens(chunk, _probes(after)) if chunk else []
                if tokens and bool(self.allowed()[tokens[0]]):
                    self._offers.append((tokens[0], state if lockable else None))
        return self._offers

    def lock(self, state) -> None:
        """Write a copy: continue from one of `offers()`' states (the copy is then forced)."""
        self.state, self.written = state, b""
        self.copied += 1
        self._mask = None
        self._offers = None

    def forced(self) -> list[int]:
        """Tokens the grammar forces now (a forced chunk's stable tokens, or the single allowed token);
        empty when the model has a choice to make or the action is complete."""
        if self.state is COMPLETE:
            return []
        chunk, after = forced_bytes(self.state)
        if chunk:
            tokens = self.vocab.stable_tokens(chunk, _probes(after))
            if tokens:
                return tokens
        mask = self.allowed()
        if int(mask.sum()) == 1:
            return [int(mask.nonzero()[0, 0])]
        return []

    def close(self) -> None:
        """Complete the action with the shortest valid ending (the cap was hit or nothing is allowed)."""
        if self.state is not COMPLETE:
            self.out += finish(self.state)
            self.state = COMPLETE
            self.closed_by_force = True

    def text(self) -> str:
        return bytes(self.out).decode("utf-8", errors="replace")


_THOUGHT = b'{"thought": '  # how every action starts


def copy_states(state, written: bytes, out: bytes = b"") -> list[tuple[Any, bool]]:
    """The states that write each copy of the next copyable part (`part_copies`: the thought, the control
    name, the status, the plan list) as a literal, in order of preference: in the literal just before that
    part, or in the part itself while what it has taken (`written`) is the start of a copy (a token may hold
    its first bytes and the bytes before it); inside free text after an opening ` '`, the request's quoted
    phrases (`_quote_copies`); empty elsewhere. Each comes with whether the decoder may lock it (a copy of
    free text) or only prefer it (a choice's option). `out`: the action written so far."""
    if state is COMPLETE:
        return []
    head, sub, rest = state
    copies = part_copies(head, out)
    kept = [c for c in copies if c.startswith(written)]
    if kept:
        lockable = getattr(head, "lock_copies", not isinstance(head, Choice))
        return [((Lit(c), len(written), _after(head, c) + rest), lockable) for c in kept]
    if isinstance(head, Lit) and rest:
        lockable = getattr(rest[0], "lock_copies", not isinstance(rest[0], Choice))
        copies = part_copies(rest[0], out)
        return [((head, sub, (Lit(c), *_after(rest[0], c), *rest[1:])), lockable) for c in copies]
    return _quote_copies(state, out)


def _quote_copies(state, out: bytes) -> list[tuple[Any, bool]]:
    """Inside free text (the thought, a plan item) after an opening ` '`: the request's quoted phrases, each
    with its closing `'`, as copies that continue the same free text after it (`Resumed`). Phrases not yet
    in the action come first (a plan names each phrase once), then in the request's order."""
    head, sub, rest = state
    quotes = getattr(head, "quotes", ())
    at = out.rfind(b" '")
    if not quotes or at < 0 or not head.in_free_text(sub):
        return []
    typed = out[at + 2 :]
    if b"'" in typed or b'"' in typed:
        return []
    before = out[:at]
    ordered = [q for q in quotes if q not in before] + [q for q in quotes if q in before]
    found = []
    for q in ordered:
        chunk = q + b"'"
        if len(typed) >= len(q) or not chunk.startswith(typed):
            continue
        st = state
        for b in chunk[len(typed) :]:
            st = advance(st, b)
            if st is None or st is COMPLETE or st[0] is not head:
                break
        else:
            found.append(((Lit(chunk), len(typed), (Resumed(head, st[1]), *rest)), True))
    return found


def part_copies(part, out: bytes) -> tuple[bytes, ...]:
    """What `part` may copy: its own `copies`, or for the control name the option of the control named by
    the thought that `out` (the action so far) holds."""
    if isinstance(part, (NameChoice, QuotedStr, KeysStr, FunctionChoice)):
        return part.copies_after(_thought(out))
    if isinstance(part, ParagraphIndex):
        return part.copies_after(_thought(out), out)
    return getattr(part, "copies", ())


def _thought(out: bytes) -> str:
    """The thought of an action written up to its control name (`{"thought": "...", ...`), or ''."""
    try:
        value, _ = json.JSONDecoder().raw_decode(out[len(_THOUGHT) :].decode("utf-8"))
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def _after(part, copy: bytes) -> tuple:
    """The parts after `copy` written in place of `part` (a choice's option keeps its own parts)."""
    return dict(part.options).get(copy, ()) if isinstance(part, Choice) else ()


def forced_bytes(state) -> tuple[bytes, Any]:
    """The bytes the grammar allows as the only continuation of `state`, and the state after them."""
    chunk = b""
    while state is not COMPLETE:
        f = state[0].forced(state[1])
        if not f:
            break
        for b in f:
            state = advance(state, b)
        chunk += f
    return chunk, state


_SAMPLE_CHARS = {2: "é", 3: "€", 4: "😀"}


def _probes(state) -> tuple[str, ...]:
    """A string for every byte the grammar allows after `state` (one sample character per UTF-8 length)."""
    if state is COMPLETE:
        return ()
    head, sub, _ = state
    candidates = head.next_bytes(sub) if hasattr(head, "next_bytes") else range(256)
    out = []
    for b in sorted(candidates):
        if advance(state, b) is None:
            continue
        if b < 0x80:
            out.append(chr(b))
        elif b >= 0xC0:
            out.append(_SAMPLE_CHARS[char_len(bytes((b,)), 0)])
    return tuple(dict.fromkeys(out))


def _allowed(state, vocab: Vocab) -> torch.Tensor:
    if state is COMPLETE:
        return torch.zeros(vocab.size, dtype=torch.bool)
    head, sub, _ = state
    free = head.free_sub(sub) if hasattr(head, "free_sub") else None
    if free is not None:
        mask = vocab.free_mask(free).clone()
        for tid in vocab.special:
            if _walk(state, vocab.bytes[tid]):
                mask[tid] = True
        return mask
    ids: list[int] = []
    stack = [(vocab.root, state)]
    while stack:
        node, st = stack.pop()
        children = node[0]
        if st is not COMPLETE and hasattr(st[0], "next_bytes"):
            keys = [b for b in st[0].next_bytes(st[1]) if b in children]
        else:
            keys = children.keys() if st is not COMPLETE else ()
        for b in keys:
            nxt = advance(st, b)
            if nxt is None:
                continue
            child = children[b]
            ids.extend(child[1])
            if child[0]:
                stack.append((child, nxt))
    mask = torch.zeros(vocab.size, dtype=torch.bool)
    mask[ids] = True
    return mask


def _walk(state, piece: bytes) -> bool:
    for b in piece:
        state = advance(state, b)
        if state is None:
            return False
    return True


# ---------------------------------------------------------------------------------------------- decoder


@dataclass(frozen=True)
class Decoded:
    """One decoded action and what it cost. In a batch, `forward_s` and `total_s` are the batch's
    (lockstep rows wait for each other): the seconds of the forward passes this row took part in, and of
    the whole decode call."""

    text: str
    action: dict | None  # the parsed action; None only if the text does not parse (a bug: see `error`)
    error: str | None
    generated_tokens: int  # chosen by the model from its logits
    forced_tokens: int  # appended by the grammar, without a forward pass each
    forward_passes: int
    forward_s: float
    total_s: float
    prompt_tokens: int
    prompt_cut: int  # tokens fit_prompt cut from the prompt
    closed_by_force: bool  # the action hit max_new_tokens (or a dead end) and was closed by the grammar
    copied: int = 0  # free parts written whole as copies of the previous plan (thought, plan list)
    # With `decode(record=True)`: every token id the action's text was written with, and one `TokenChoice` per
    # token the model chose (the others were forced), what PPO needs to score the action on the grammar's
    # distribution (`lamops.train.offline_rl`).
    token_ids: tuple[int, ...] = ()
    choices: tuple[TokenChoice, ...] = ()

    @property
    def tokens(self) -> int:
        return self.generated_tokens + self.forced_tokens


@dataclass(frozen=True)
class TokenChoice:
    """One token the model chose: its position in `Decoded.token_ids`, the tokens the grammar allowed there
    and the copy's first token the choice raised by `bonus` nats (`_choose`; -1: none)."""

    position: int
    allowed: torch.Tensor  # bool, over the vocabulary
    bonus_token: int = -1
    bonus: float = 0.0


def teacher_forced(cur: Cursor, tokens: Sequence[int], *, copy: bool = False) -> list[TokenChoice] | None:
    """Write `tokens` (an action's tokens as SFT trains on them: `vocab.continuation_ids`) with `cur` as the
    decoder would: forced chunks must equal the next tokens and every other token must be allowed; with
    `copy`, a token that starts an offered copy writes that copy (the decoder's rule). Returns one
    `TokenChoice` (the grammar's mask, no bonus) per token the model would have chosen, or None when the
    grammar cannot write exactly these tokens (a control that is not visible, a span not in the request)."""
    i, out = 0, []
    while not cur.complete:
        forced = cur.forced()
        if forced:
            if list(tokens[i : i + len(forced)]) != forced:
                return None
            for tid in forced:
                cur.push(tid, forced=True)
            i += len(forced)
            continue
        if i >= len(tokens):
            return None
        mask = cur.allowed()
        if tokens[i] >= mask.shape[0] or not bool(mask[tokens[i]]):
            return None
        offered = cur.offers() if copy else []
        locked = next((state for t, state in offered if t == tokens[i] and state is not None), None)
        if locked is not None:
            cur.lock(locked)
        out.append(TokenChoice(len(cur.tokens), mask))
        cur.push(tokens[i])
        i += 1
    return out if i == len(tokens) else None


def choice_scores(logits: torch.Tensor, choice: TokenChoice) -> torch.Tensor:
    """The scores `_choose` drew the choice from: the logits with disallowed tokens at -inf and the copy's
    bonus added (divide by the temperature, then log-softmax, for the chosen token's log-probability).
    Differentiable in `logits`."""
    allowed = choice.allowed.to(logits.device)[: logits.shape[-1]]
    scores = logits[..., : allowed.shape[0]].masked_fill(~allowed, float("-inf"))
    if choice.bonus_token >= 0 and choice.bonus != 0.0:
        bump = torch.zeros_like(scores)
        bump[..., choice.bonus_token] = choice.bonus
        scores = scores + bump
    return scores


class ConstrainedDecoder:
    """Decodes batches of actions with `model` (a Hugging Face causal LM) under the action grammar."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_len: int,
        max_new_tokens: int,
        limits: Limits,
        copy_bonus: float | None = None,
    ):
        if max_len - max_new_tokens - 1 < 1:
            raise ValueError(f"max_len {max_len} leaves no room for a prompt after {max_new_tokens} tokens")
        if tokenizer.bos_token_id is None:
            raise ValueError("the tokenizer has no BOS token: train it with lamops.models.tokenizer")
        self.model, self.tokenizer = model, tokenizer
        self.max_len, self.max_new_tokens, self.limits = max_len, max_new_tokens, limits
        self.copy_bonus = copy_bonus  # None: no copies (plain constrained decoding); see "Copies"
        out = model.get_output_embeddings()
        self.vocab = vocab_for(tokenizer, out.weight.shape[0] if out is not None else model.config.vocab_size)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def prompt_ids(self, prompt: str) -> tuple[list[int], int]:
        """[BOS] + the prompt fitted as in training (`fit_prompt`), and how many tokens were cut."""
        ids, cut = fit_prompt(self.tokenizer, prompt, self.max_len - self.max_new_tokens - 1)
        return [self.tokenizer.bos_token_id, *ids], cut

    def cursor(self, constraints: Constraints) -> Cursor:
        return Cursor(constraints, self.limits, self.vocab)

    def decode(
        self,
        prompts: Sequence[str],
        constraints: Sequence[Constraints],
        *,
        temperature: float = 0.0,
        generators: Sequence[torch.Generator | None] | None = None,
        record: bool = False,
    ) -> list[Decoded]:
        """One action per prompt, all rows in lockstep. Greedy at temperature 0; otherwise sampled from the
        allowed tokens at `temperature`, row i drawing from `generators[i]` (None: torch's default).
        `record`: each Decoded carries its token ids and the model's choices (`TokenChoice`)."""
        if len(prompts) != len(constraints):
            raise ValueError(f"{len(prompts)} prompts but {len(constraints)} constraints")
        if not prompts:
            return []
        t0 = time.perf_counter()
        n = len(prompts)
        gens = list(generators) if generators is not None else [None] * n
        cursors = [self.cursor(c) for c in constraints]
        fitted = [self.prompt_ids(p) for p in prompts]
        passes, fwd_s = [0] * n, [0.0] * n
        choices: list[list[TokenChoice]] = [[] for _ in range(n)]
        pending: list[list[int]] = []
        for cur in cursors:
            pending.append(self._settle(cur))
        rows = [i for i in range(n) if not cursors[i].complete]
        with torch.inference_mode():
            # Prefill: left-padded prompts plus each row's forced start (`{"thought":`).
            seqs = [fitted[i][0] + pending[i] for i in rows]
            width = max((len(s) for s in seqs), default=0)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            attn = torch.zeros((len(rows), width), dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, width - len(s) :] = torch.tensor(s)
                attn[r, width - len(s) :] = 1
            cache = None
            logits = None
            if rows:
                from transformers import DynamicCache

                cache = DynamicCache()
                logits, dt = self.forward(ids, attn, cache, None)
                for i in rows:
                    passes[i] += 1
                    fwd_s[i] += dt
            while rows:
                pending = {}
                for r, i in enumerate(rows):
                    cur = cursors[i]
                    mask = cur.allowed()
                    if not bool(mask.any()):
                        cur.close()
                        continue
                    offers = cur.offers() if self.copy_bonus is not None else []
                    tid = _choose(logits[r], mask, temperature, gens[i], offers, self.copy_bonus)
                    if record and not (offers and self.copy_bonus == float("inf")):  # +inf: no choice
                        offered = (offers[0][0], float(self.copy_bonus)) if offers else (-1, 0.0)
                        choices[i].append(TokenChoice(len(cur.tokens), mask, *offered))
                    locked = next((state for t, state in offers if t == tid and state is not None), None)
                    if locked is not None:
                        cur.lock(locked)
                    cur.push(tid)
                    pending[i] = [tid, *self._settle(cur)]
                keep = [r for r, i in enumerate(rows) if not cursors[i].complete]
                if not keep:
                    break
                if len(keep) < len(rows):
                    index = torch.tensor(keep)
                    cache.batch_select_indices(index.to(self.device))
                    attn = attn[index]
                    rows = [rows[r] for r in keep]
                width = max(len(pending[i]) for i in rows)
                ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                block = torch.zeros((len(rows), width), dtype=torch.long)
                lengths = []
                for r, i in enumerate(rows):
                    ids[r, : len(pending[i])] = torch.tensor(pending[i])
                    block[r, : len(pending[i])] = 1
                    lengths.append(len(pending[i]))
                attn = torch.cat([attn, block], dim=1)
                logits, dt = self.forward(ids, attn, cache, lengths)
                for i in rows:
                    passes[i] += 1
                    fwd_s[i] += dt
        total = time.perf_counter() - t0
        out = [
            _decoded(cursors[i], passes[i], fwd_s[i], total, len(fitted[i][0]) - 1, fitted[i][1])
            for i in range(n)
        ]
        if record:
            out = [
                replace(d, token_ids=tuple(cursors[i].tokens), choices=tuple(choices[i]))
                for i, d in enumerate(out)
            ]
        return out

    def _settle(self, cur: Cursor) -> list[int]:
        """Push what the grammar forces after the model's last choice; close the action at the budget."""
        added: list[int] = []
        while not cur.complete:
            tokens = cur.forced()
            if not tokens:
                if not bool(cur.allowed().any()):
                    cur.close()
                break
            if len(cur.tokens) + len(tokens) > self.max_new_tokens:
                cur.close()
                break
            for tid in tokens:
                cur.push(tid, forced=True)
            added += tokens
        if not cur.complete and len(cur.tokens) >= self.max_new_tokens:
            cur.close()
        return added

    def forward(self, ids, attn, cache, lengths) -> tuple[torch.Tensor, float]:
        """One forward over a block; the logits at each row's last real token (all rows end at the block's
        end when `lengths` is None: the left-padded prefill)."""
        positions = (attn.cumsum(1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        device = self.device
        t = time.perf_counter()
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1 if lengths is None else 0,
        )
        dt = time.perf_counter() - t
        if lengths is None:
            return out.logits[:, -1].float().cpu(), dt
        last = torch.tensor(lengths, device=out.logits.device) - 1
        return out.logits[torch.arange(len(lengths), device=out.logits.device), last].float().cpu(), dt

    @property
    def device(self) -> torch.device:
        """The model's device: inputs go there, the logits come back to the CPU, where the grammar's masks
        are (a GPU model decodes as a CPU one does)."""
        return next(self.model.parameters()).device


def _choose(logits: torch.Tensor, mask: torch.Tensor, temperature: float, gen, offers, bonus) -> int:
    """The next token: greedy or sampled among the allowed ones, the preferred copy's first token (offers[0])
    raised by `bonus` nats (always taken at +inf)."""
    scores = logits[: mask.shape[0]].masked_fill(~mask[: logits.shape[0]], float("-inf"))
    if offers:
        if bonus == float("inf"):
            return offers[0][0]
        scores[offers[0][0]] += bonus
    if temperature <= 0:
        return int(scores.argmax())
    probs = torch.softmax(scores / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _decoded(cur: Cursor, passes: int, fwd_s: float, total: float, prompt_tokens: int, cut: int) -> Decoded:
    text = cur.text()
    action, error = None, None
    try:
        parse_action(text)
        action = json.loads(text)
    except ActionError as e:
        error = str(e)
    return Decoded(
        text=text,
        action=action,
        error=error,
        generated_tokens=len(cur.tokens) - cur.forced_count,
        forced_tokens=cur.forced_count,
        forward_passes=passes,
        forward_s=fwd_s,
        total_s=total,
        prompt_tokens=prompt_tokens,
        prompt_cut=cut,
        closed_by_force=cur.closed_by_force,
        copied=cur.copied,
    )
