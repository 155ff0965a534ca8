"""The constrained decoder: always the training format, grounded controls and spans, forced chunks equal to
token-by-token decoding, batched equal to unbatched, and a trained tiny model reproducing its actions."""

from __future__ import annotations

import json
import random

import pytest
import torch
from helpers import tiny_spec, walk
from tokenizers import Tokenizer, decoders, models, normalizers, trainers
from transformers import DynamicCache, PreTrainedTokenizerFast

from lamops.agents.constraints import Constraints, constraints_from_observation, constraints_from_prompt
from lamops.agents.copies import (
    copy_options,
    item_text,
    named_control,
    named_function,
    paragraph_copy,
    quoted,
    text_copies,
)
from lamops.agents.decoding import ConstrainedDecoder, Cursor, copy_states
from lamops.agents.expert import ExpertAgent
from lamops.agents.grammar import COMPLETE, Limits, action_grammar, advance
from lamops.agents.lam import AgentConfig
from lamops.agents.vocab import continuation_ids, vocab_for
from lamops.env.actions import FUNCTIONS, parse_action, parse_keys
from lamops.env.observation import ControlInfo, Observation, PromptView
from lamops.env.word import WordEnv
from lamops.models.factory import build_tiny
from lamops.models.tokenizer import train_tokenizer
from lamops.records import TrajectoryStep

KEYS = ["thought", "control_name", "control_label", "function", "args", "status", "plan"]
pytestmark = pytest.mark.usefixtures("one_thread")
# helpers.TINY_MODEL with room for whole observation prompts.
CONTEXT = 2048
LIMITS = Limits(thought_tokens=12, plan_items=3, plan_item_tokens=8, arg_tokens=8)


@pytest.fixture(scope="module")
def steps() -> list[TrajectoryStep]:
    """Expert steps on one task of each of a few families: real observation prompts and completions."""
    from lamops.env.families import FAMILIES, applicable_templates, sample_task

    env, expert, out = WordEnv(), ExpertAgent(), []
    for family in sorted(FAMILIES)[::3]:
        task = sample_task(family, applicable_templates(family)[0], 0)
        if task is not None:
            out += expert.run(env, task, verify=False).steps
    return out


@pytest.fixture(scope="module")
def tokenizer(steps, tmp_path_factory):
    texts = [t for s in steps for t in (s.prompt, s.completion())]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tokenizer", vocab_size=1024)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny(tiny_spec(max_position_embeddings=CONTEXT), tokenizer).eval()


def decoder(model, tokenizer, max_len=2048, max_new_tokens=160, limits=LIMITS) -> ConstrainedDecoder:
    return ConstrainedDecoder(model, tokenizer, max_len=max_len, max_new_tokens=max_new_tokens, limits=limits)


def check_action(text: str, constraints: Constraints) -> dict:
    """The text is the exact training format, parses, and is grounded in `constraints`."""
    parse_action(text)
    action = json.loads(text)
    assert list(action) == KEYS
    assert json.dumps(action, ensure_ascii=False) == text
    step = TrajectoryStep(step=1, prompt="", **action)
    assert step.completion() == text
    labels = {}
    for label, name in constraints.controls:
        labels.setdefault(name, label)
    if action["control_name"] is None:
        assert action["control_label"] is None
    else:
        assert labels[action["control_name"]] == action["control_label"]
    args = action["args"]
    assert list(args) == list(FUNCTIONS[action["function"]].model_fields)
    if action["function"] == "select_text":
        assert args["text"] in constraints.request or args["text"] in constraints.canvas
    if action["function"] == "set_edit_text":
        assert args["text"] in constraints.request
    if action["function"] == "keyboard_input":
        assert args["keys"] in constraints.request or parse_keys(args["keys"])
    return action


def test_constraints_read_back_from_prompts(steps):
    env = WordEnv()
    obs = env.reset(_task())
    assert constraints_from_prompt(obs.prompt()) == constraints_from_observation(obs)
    js = PromptView(control_format="json")
    assert constraints_from_prompt(obs.prompt(js)) == constraints_from_observation(obs, js)
    for step in steps[:5]:
        c = constraints_from_prompt(step.prompt)
        assert c.controls and c.request in step.prompt and c.canvas.startswith("[ui] ")
    with pytest.raises(ValueError, match="Canvas State"):
        constraints_from_prompt("<Available Control Item:>\n1:Save:Button\n<User Request:> x")


def _task():
    from lamops.env.families import applicable_templates, sample_task

    return sample_task("emphasize_phrase", applicable_templates("emphasize_phrase")[0], 0)


def test_every_function_has_an_argument_grammar_and_random_walks_always_parse(tokenizer):
    """Uniformly random allowed tokens (no model): every path through the grammar is a valid action."""
    obs = Observation(
        controls=[
            ControlInfo(label=str(i), control_text=t, control_type="Button")
            for i, t in enumerate(["Bold", "Bold Italic", 'Say "hi"', "Font Size", "Bold"], 1)
        ],
        canvas='p0 <Normal> Café prices rose 5% — see "Table 2" \\ notes.',
        ui="tab Home",
        selection="none",
        request='Select "Café prices" and type ^{END} then 1.5" please.',
        previous_actions=[],
        previous_plan=[],
    )
    constraints = constraints_from_observation(obs)
    vocab = vocab_for(tokenizer)
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        cur = Cursor(constraints, LIMITS, vocab)
        for _ in range(400):
            if cur.complete:
                break
            forced = cur.forced()
            if forced:
                for tid in forced:
                    cur.push(tid, forced=True)
                continue
            allowed = cur.allowed().nonzero().flatten().tolist()
            cur.push(rng.choice(allowed))
        assert cur.complete
        action = check_action(cur.text(), constraints)
        seen.add(action["function"])
        if action["control_name"] is not None:
            assert action["control_label"] == {"Bold": "1", "Bold Italic": "2", 'Say "hi"': "3"}.get(
                action["control_name"], action["control_label"]
            )
    assert seen == set(FUNCTIONS)


def test_random_model_always_writes_a_grounded_action(model, tokenizer, steps):
    dec = decoder(model, tokenizer, max_len=1024)
    prompts = [s.prompt for s in steps[::2]][:12]
    constraints = [constraints_from_prompt(p) for p in prompts]
    greedy = dec.decode(prompts, constraints)
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    sampled = dec.decode(prompts, constraints, temperature=1.0, generators=gens)
    for d, c in zip(greedy + sampled, constraints + constraints, strict=True):
        assert d.error is None, d.text
        check_action(d.text, c)
        assert d.action == json.loads(d.text)
        assert d.forward_passes < d.tokens  # forced chunks go in one forward each
        assert d.forced_tokens > 0 and d.forward_s <= d.total_s
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    again = dec.decode(prompts, constraints, temperature=1.0, generators=gens)
    assert [d.text for d in again] == [d.text for d in sampled]


def sentencepiece_tokenizer(texts: list[str], size: int) -> PreTrainedTokenizerFast:
    """A Mistral-style tokenizer: `▁` for spaces, prepended to every text, and `<0xNN>` byte fallback."""
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.normalizer = norm
    trained.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=size, special_tokens=["<unk>", "<s>", "</s>"])
    )
    state = json.loads(trained.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{i:02X}>": 3 + i for i in range(256)}}
    for piece in sorted(state["vocab"], key=state["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    backend.normalizer = norm
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def test_a_sentencepiece_vocabulary_gives_valid_actions_too(steps):
    texts = [t for s in steps for t in (s.prompt, s.completion())]
    tokenizer = sentencepiece_tokenizer(texts, 900)
    assert tokenizer.tokenize("é") == ["▁", "<0xC3>", "<0xA9>"]
    model = build_tiny(
        tiny_spec(max_position_embeddings=CONTEXT, vocab_size=len(tokenizer)), tokenizer
    ).eval()
    dec = decoder(model, tokenizer, max_len=1024)
    prompts = [s.prompt for s in steps[::4]][:4]
    constraints = [constraints_from_prompt(p) for p in prompts]
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    for d, c in zip(
        dec.decode(prompts, constraints, temperature=1.0, generators=gens), constraints, strict=True
    ):
        check_action(d.text, c)
        assert d.forward_passes < d.tokens


def test_budget_closes_the_action_by_force(model, tokenizer, steps):
    limits = Limits(thought_tokens=60, plan_items=10, plan_item_tokens=30, arg_tokens=30)
    dec = decoder(model, tokenizer, max_len=1024, max_new_tokens=24, limits=limits)
    prompt = steps[0].prompt
    [d] = dec.decode([prompt], [constraints_from_prompt(prompt)])
    assert d.closed_by_force and d.tokens <= 24
    check_action(d.text, constraints_from_prompt(prompt))


def reference_decode(model, tokenizer, prompt: str, limits: Limits, max_len: int, max_new_tokens: int) -> str:
    """One token at a time, the whole sequence recomputed for every token (no KV cache, no chunks)."""
    dec = decoder(model, tokenizer, max_len=max_len, max_new_tokens=max_new_tokens, limits=limits)
    ids, _ = dec.prompt_ids(prompt)
    cur = Cursor(constraints_from_prompt(prompt), limits, dec.vocab)
    while not cur.complete:
        forced = cur.forced()
        for tid in forced[:1]:  # one at a time
            cur.push(tid, forced=True)
            ids.append(tid)
        if forced:
            continue
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, -1]
        tid = int(logits.masked_fill(~cur.allowed(), float("-inf")).argmax())
        cur.push(tid)
        ids.append(tid)
    return cur.text()


def test_forced_chunks_and_kv_cache_give_the_reference_text(model, tokenizer, steps):
    dec = decoder(model, tokenizer, max_len=1024)
    for step in steps[:3]:
        [d] = dec.decode([step.prompt], [constraints_from_prompt(step.prompt)])
        assert not d.closed_by_force
        assert d.text == reference_decode(model, tokenizer, step.prompt, LIMITS, 1024, 160)


def test_batched_decoding_equals_unbatched(model, tokenizer, steps):
    dec = decoder(model, tokenizer, max_len=1024)
    prompts = [s.prompt for s in steps[1::3]][:5]
    constraints = [constraints_from_prompt(p) for p in prompts]
    batched = dec.decode(prompts, constraints)
    alone = [dec.decode([p], [c])[0] for p, c in zip(prompts, constraints, strict=True)]
    assert [d.text for d in batched] == [d.text for d in alone]
    assert len({len(dec.prompt_ids(p)[0]) for p in prompts}) > 1  # padding was exercised


def test_masked_blocks_with_holes_give_unbatched_logits(model, tokenizer):
    """Rows appending different numbers of tokens: padded, masked, positions from the mask."""
    dec = decoder(model, tokenizer)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(4, len(tokenizer), (n,), generator=g) for n in (30, 17)]
    chunks = [
        [torch.randint(4, len(tokenizer), (n,), generator=g) for n in ns] for ns in ((3, 1, 2), (1, 4, 1))
    ]

    def alone(prompt, blocks):
        cache = DynamicCache()
        attn = torch.ones(1, len(prompt), dtype=torch.long)
        out = [dec.forward(prompt[None], attn, cache, None)[0][0]]
        for block in blocks:
            attn = torch.cat([attn, torch.ones(1, len(block), dtype=torch.long)], 1)
            out.append(dec.forward(block[None], attn, cache, [len(block)])[0][0])
        return out

    expected = [alone(p, c) for p, c in zip(prompts, chunks, strict=True)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(2, width, dtype=torch.long)
    attn = torch.zeros(2, width, dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :], attn[r, width - len(p) :] = p, 1
    cache = DynamicCache()
    got = [list(dec.forward(ids, attn, cache, None)[0])]
    for k in range(3):
        blocks = [chunks[r][k] for r in range(2)]
        w = max(len(b) for b in blocks)
        ids = torch.zeros(2, w, dtype=torch.long)
        mask = torch.zeros(2, w, dtype=torch.long)
        for r, b in enumerate(blocks):
            ids[r, : len(b)], mask[r, : len(b)] = b, 1
        attn = torch.cat([attn, mask], 1)
        got.append(list(dec.forward(ids, attn, cache, [len(b) for b in blocks])[0]))
    for k in range(4):
        for r in range(2):
            assert torch.allclose(got[k][r], expected[r][k], atol=1e-4), (k, r)


# ---- a trained model reproduces its actions --------------------------------------------------------------
def _examples() -> list[tuple[Observation, dict]]:
    controls = ["Save", "Home", "Insert", "Layout", "Bold", "Italic", "Underline", "Font Size"]
    types = ["Button", "TabItem", "TabItem", "TabItem", "Button", "Button", "Button", "ComboBox"]
    base = {
        "controls": [
            ControlInfo(label=str(i), control_text=t, control_type=k)
            for i, (t, k) in enumerate(zip(controls, types, strict=True), 1)
        ],
        "canvas": "p0 <Normal> Quarterly revenue grew by 12 percent in the north region.",
        "ui": "tab Home",
        "request": "Make 'revenue grew' bold and set the size to 14.",
        "previous_plan": [],
    }
    return [
        (
            Observation(**base, selection="caret in p0 at 0", previous_actions=[]),
            {
                "thought": "Select the text.",
                "control_name": None,
                "control_label": None,
                "function": "select_text",
                "args": {"text": "revenue grew"},
                "status": "CONTINUE",
                "plan": ["2. Click Bold.", "3. Set the size."],
            },
        ),
        (
            Observation(**base, selection="'revenue grew' in p0", previous_actions=["1. select_text -> ok"]),
            {
                "thought": "Click Bold.",
                "control_name": "Bold",
                "control_label": "5",
                "function": "click_input",
                "args": {"button": "left", "double": False},
                "status": "CONTINUE",
                "plan": ["3. Set the size."],
            },
        ),
        (
            Observation(
                **base,
                selection="'revenue grew' in p0",
                previous_actions=["1. select_text -> ok", "2. Bold -> ok"],
            ),
            {
                "thought": "Set the size.",
                "control_name": "Font Size",
                "control_label": "8",
                "function": "set_edit_text",
                "args": {"text": "14"},
                "status": "FINISH",
                "plan": [],
            },
        ),
    ]


def test_a_trained_tiny_model_reproduces_its_actions(tmp_path):
    examples = [(obs.prompt(), json.dumps(action, ensure_ascii=False)) for obs, action in _examples()]
    tokenizer: PreTrainedTokenizerFast = train_tokenizer(
        [t for pair in examples for t in pair] * 3, tmp_path / "tok", vocab_size=400
    )
    spec = tiny_spec(vocab_size=400, max_position_embeddings=512)
    model = build_tiny(spec, tokenizer).train()
    max_len, max_new = 512, 160
    dec = decoder(model, tokenizer, max_len=max_len, max_new_tokens=max_new)
    rows = []
    for prompt, completion in examples:
        context, _ = dec.prompt_ids(prompt)
        target = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((context + target, [-100] * len(context) + target))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [0] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    attn = (torch.arange(width)[None] < torch.tensor([len(i) for i, _ in rows])[:, None]).long()
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05
    model.eval()
    observations = [obs for obs, _ in _examples()]
    decoded = dec.decode([p for p, _ in examples], [constraints_from_observation(o) for o in observations])
    assert [d.text for d in decoded] == [c for _, c in examples]
    assert all(d.forward_passes < d.generated_tokens + d.forced_tokens for d in decoded)


def test_grammar_state_is_complete_only_at_the_end(tokenizer):
    cur = Cursor(Constraints(controls=(("1", "Save"),), request="r", canvas=""), LIMITS, vocab_for(tokenizer))
    assert cur.state is not COMPLETE
    cur.close()
    assert cur.complete and cur.closed_by_force
    check_action(cur.text(), Constraints(controls=(("1", "Save"),), request="r", canvas=""))


# ---- copies of the previous plan ---------------------------------------------------------------------------
def test_previous_plan_is_read_from_the_prompt_and_offered_as_copies(steps):
    later = [s for s in steps if s.step > 1]
    assert later and all(constraints_from_prompt(s.prompt).previous_plan for s in later)
    for step in steps:
        plan = constraints_from_prompt(step.prompt).previous_plan
        assert "(none)" not in plan and all(item and "\n" not in item for item in plan)
        if step.step == 1:
            assert plan == ()
    assert item_text("12. Click Center.") == "Click Center." and item_text("Click 2. Bold") == "Click 2. Bold"
    thoughts, status, plans = copy_options(['2. Click "Center".', "3. Type é."])
    assert thoughts == (b'Click \\"Center\\"."', b'Type \xc3\xa9."')
    assert status == (b'"CONTINUE"',) and copy_options(["3. Type."])[1] == (b'"FINISH"',)
    assert plans == (b'"3. Type \xc3\xa9."]', b"]")
    assert copy_options([]) == ((), (), ())


def test_the_control_a_thought_names_is_the_copy_of_the_control_name():
    names = ["Home", "Insert", "Select", "Bold", "Font", "Font Settings", "Replace", "Replace All"]
    assert named_control("Click Bold on the Home tab.", names) == "Bold"  # as long: the first named
    assert named_control("Open the Font Settings dialog.", names) == "Font Settings"  # the longest
    assert named_control("Click Replace All.", names) == "Replace All"
    assert named_control("Select the text 'Bold'.", names) is None  # the verb, and quoted text, name none
    assert named_control("Click Boldface.", names) is None  # whole words only
    state = action_grammar(
        Constraints(controls=(("1", "Home"), ("2", "Bold")), request="r", canvas=""), LIMITS
    )
    out = b'{"thought": "Click Bold on the Home tab.", "control_name": '
    for b in out:
        state = advance(state, b)
    # Preferred, not locked: a name's first token (its quote) starts every other name too.
    assert [(s[0].text, lockable) for s, lockable in copy_states(state, b"", out)] == [(b'"Bold"', False)]
    state = action_grammar(
        Constraints(controls=(("1", "Home"), ("2", "Bold")), request="r", canvas=""), LIMITS
    )
    out = b'{"thought": "Select the text \'Bold\'.", "control_name": '
    for b in out:
        state = advance(state, b)
    assert copy_states(state, b"", out) == []  # no control named: null stays the model's choice


def test_a_text_argument_copies_the_phrase_the_thought_quotes_else_one_the_request_quotes():
    assert text_copies("Select the text 'glazed roof'.", "Set 'glazed roof' to 16 and 'x' too") == [
        "glazed roof",
        "x",
    ]
    assert text_copies("Enter ‘3’ in the Number of rows box.", "") == ["3"]
    assert text_copies("Open the Insert tab.", "Bold 'the in-house'.") == ["the in-house"]
    constraints = Constraints(
        controls=(("1", "Home"),), request="Bold 'the in-house' and 'nowhere'.", canvas="p1 the in-house rule"
    )
    state = action_grammar(constraints, LIMITS)
    out = b'{"thought": "Select the text \'the press\'.", "control_name": null, "control_label": null, '
    out += b'"function": "select_text", "args": {"text": "'
    for b in out:
        state = advance(state, b)
    # 'the press' is not there to select; 'nowhere' is in the request but select_text takes a span of either.
    offered = [(s[0].text, lockable) for s, lockable in copy_states(state, b"", out)]
    assert offered == [(b'the in-house"', True), (b'nowhere"', True)]


def test_free_text_copies_a_phrase_the_request_quotes_after_an_opening_quote():
    constraints = Constraints(controls=(("1", "Home"),), request="Bold 'a b' and 'c\"d'.", canvas="")
    state = action_grammar(constraints, LIMITS)
    out = b"{\"thought\": \"Select 'a b' then '"
    for b in out:
        state = advance(state, b)
    # Inside the thought after ` '`: the phrase not yet written first, each with its closing quote; the copy
    # is followed by the rest of the same free text.
    offered = copy_states(state, b"", out)
    assert [(s[0].text, lockable) for s, lockable in offered] == [(b"c\\\"d'", True), (b"a b'", True)]
    after = offered[0][0]
    for b in b'c\\"d\'. More."':
        after = advance(after, b)
    assert after is not None and after[0].__class__.__name__ == "Lit"  # the thought closed
    # Partly typed: only the phrases it starts; elsewhere (no ` '`, or a closed quote) nothing.
    typed = out + b"a"
    st = advance(state, ord("a"))
    assert [s[0].text for s, _ in copy_states(st, b"", typed)] == [b"a b'"]
    st = advance(advance(state, ord("x")), ord("'"))
    assert copy_states(st, b"", out + b"x'") == []


def test_a_byte_level_continuation_is_the_plain_tokenization(tokenizer, steps):
    """`continuation_ids` (what SFT trains on) changes nothing for lamops' byte-level tokenizer, which adds
    no prefix space: only a tokenizer that prepends `▁` gets the mid-text tokenization
    (tests/agents/test_decoding_sentencepiece.py)."""
    for text in [s.completion() for s in steps] + [" a leading space", "é€😀"]:
        assert continuation_ids(tokenizer, text) == tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("copy", [False, True])
def test_every_reference_is_reachable_with_the_training_tokenization(tokenizer, steps, copy):
    """Copies (thought, status and plan: the next item, the rest) and free text (first steps) alike, under
    the agent's default limits. The thought and the plan are written whole as copies (locked); the status
    and the control name are choices whose copy is only preferred."""
    vocab, limits = vocab_for(tokenizer), AgentConfig().limits()
    copied = 0
    for step in steps:
        completion = step.completion()
        cur = Cursor(constraints_from_prompt(step.prompt), limits, vocab)
        walk(cur, tokenizer(completion, add_special_tokens=False)["input_ids"], copy)
        assert cur.text() == completion
        previous = constraints_from_prompt(step.prompt).previous_plan
        if previous:  # the data's copies (LEARNING.md, "The targets are mostly copies")
            action = json.loads(completion)
            assert action["thought"] == item_text(previous[0]) and action["plan"] == list(previous[1:])
        copied += cur.copied
    later = sum(s.step > 1 for s in steps)
    # A text argument is the thought's first quoted phrase in every such step: written whole as a copy.
    texts = sum(json.loads(s.completion())["function"] in ("select_text", "set_edit_text") for s in steps)
    # A first step's thought and plan items quote the request: each ` 'phrase'` is written as a copy.
    quotes = sum(
        free.count(f" '{phrase}'")
        for s in steps
        if s.step == 1
        for phrase in quoted(constraints_from_prompt(s.prompt).request)
        for free in [json.loads(s.completion())["thought"], *json.loads(s.completion())["plan"]]
    )
    # Typed keys are the thought's quoted phrase; a paragraph's indices those of the canvas line it quotes.
    keys = sum(
        json.loads(s.completion())["function"] == "keyboard_input" and bool(quoted(s.thought)) for s in steps
    )
    paragraphs = sum(
        2
        for s in steps
        if json.loads(s.completion())["function"] == "select_paragraph"
        and paragraph_copy(s.thought, constraints_from_prompt(s.prompt).canvas) is not None
    )
    # The function the thought names ("Select the text 'x'." -> select_text) is written as a copy.
    functions = sum(named_function(s.thought, list(FUNCTIONS)) is not None for s in steps)
    assert texts > 0 and quotes > 0 and paragraphs > 0 and functions > 0
    assert copied == (2 * later + texts + quotes + keys + paragraphs + functions if copy else 0)


def test_free_text_is_still_reachable_after_a_previous_plan(tokenizer, steps):
    step = next(s for s in steps if len(constraints_from_prompt(s.prompt).previous_plan) > 1)
    action = json.loads(step.completion())
    vocab, limits = vocab_for(tokenizer), AgentConfig().limits()
    # With copies, a thought of its own (its first token starts no copy) and the plan copied.
    for thought in ("~ A thought of its own.", "~ Mine."):
        text = json.dumps({**action, "thought": thought}, ensure_ascii=False)
        cur = Cursor(constraints_from_prompt(step.prompt), limits, vocab)
        walk(cur, tokenizer(text, add_special_tokens=False)["input_ids"], copy=True)
        assert cur.text() == text
    # Without copies, any plan: the grammar's language is unchanged (a copy is the decoder's choice).
    for plan in (["~ 9. A step of its own."], action["plan"][:1] + ["~ other"], []):
        text = json.dumps({**action, "thought": "Click 2. Bold", "plan": plan}, ensure_ascii=False)
        cur = Cursor(constraints_from_prompt(step.prompt), limits, vocab)
        walk(cur, tokenizer(text, add_special_tokens=False)["input_ids"], copy=False)
        assert cur.text() == text


def test_a_model_that_prefers_the_copy_writes_exactly_the_previous_plan(model, tokenizer, steps):
    later = [s for s in steps if s.step > 1][:6]
    prompts = [s.prompt for s in later]
    constraints = [constraints_from_prompt(p) for p in prompts]
    plain = decoder(model, tokenizer, max_len=1024).decode(prompts, constraints)
    for bonus in (float("inf"), 1e4):
        dec = ConstrainedDecoder(
            model, tokenizer, max_len=1024, max_new_tokens=160, limits=LIMITS, copy_bonus=bonus
        )
        for d, c, p in zip(dec.decode(prompts, constraints), constraints, plain, strict=True):
            action = check_action(d.text, c)
            assert action["thought"] == item_text(c.previous_plan[0])
            assert action["plan"] == list(c.previous_plan[1:])
            assert action["status"] == ("FINISH" if len(c.previous_plan) == 1 else "CONTINUE")
            named = named_control(action["thought"], [name for _, name in c.controls])
            assert named is None or action["control_name"] == named
            # thought and plan locked (and a text argument); status and name preferred
            text_arg = action["function"] in ("select_text", "set_edit_text")
            if text_arg:
                assert action["args"]["text"] == text_copies(action["thought"], c.request)[0]
            keys = action["function"] == "keyboard_input" and bool(quoted(action["thought"]))
            if keys:  # typed text is the thought's quoted phrase, locked too
                assert action["args"]["keys"] == quoted(action["thought"])[0]
            paragraph = paragraph_copy(action["thought"], c.canvas)
            indices = action["function"] == "select_paragraph" and paragraph is not None
            if indices:  # as are the indices of the paragraph the thought quotes
                assert (action["args"]["start_index"], action["args"]["end_index"]) == paragraph
            function = named_function(action["thought"], list(FUNCTIONS))
            assert function in (None, action["function"])  # a named function is always written
            named_fn = function is not None
            assert d.copied == 2 + text_arg + keys + 2 * indices + named_fn and p.copied == 0


def test_paragraph_copy_reads_the_quoted_paragraph_off_the_canvas():
    canvas = (
        "[ui] tab Home\n[selection] caret in p6 at 3\n"
        "p0 <Normal|center> {b:Introducing the Aurora Smart} shippi …\n"
        "p6 <Normal> Thank you for your patience during t …\n[6 more lines]\n"
    )
    assert paragraph_copy("Select the paragraph starting 'Introducing the Aurora'.", canvas) == (0, 0)
    assert paragraph_copy(
        "Select the paragraph starting 'Thank you for your patience during the'.", canvas
    ) == (
        6,
        6,
    )
    assert paragraph_copy("Select the 3 paragraphs from 'Thank you for'.", canvas) == (6, 8)
    assert paragraph_copy("Select the first paragraph.", canvas) is None  # nothing quoted
    assert paragraph_copy("Select the paragraph starting 'Not on screen'.", canvas) is None


def test_named_function_reads_verb_and_object_off_the_thought():
    names = list(FUNCTIONS)
    assert named_function("Select the text 'the paragraph'.", names) == "select_text"  # quotes aside
    assert named_function("Select the 2 paragraphs from 'x'.", names) == "select_paragraph"  # plural
    assert named_function("Select table 1.", names) == "select_table"
    assert named_function("Choose Insert Table....", names) is None  # a control's name, not the verb
    assert named_function("Select the bulleted list.", names) is None


def test_teacher_forcing_finds_the_choices_the_decoder_recorded(model, tokenizer, steps):
    """Writing a decoded action's own tokens back through a cursor (`teacher_forced`, what the reward model
    scores actions with) finds the same choices, at the same positions, from the same masks; an action the
    grammar cannot write in the state (a control that is not visible) has none."""
    from lamops.agents.decoding import teacher_forced

    d = decoder(model, tokenizer)
    chosen = steps[:6]
    constraints = [constraints_from_prompt(s.prompt) for s in chosen]
    decoded = d.decode([s.prompt for s in chosen], constraints, record=True)
    for out, c in zip(decoded, constraints, strict=True):
        forced = teacher_forced(d.cursor(c), list(out.token_ids))
        assert forced is not None and [f.position for f in forced] == [x.position for x in out.choices]
        assert all(torch.equal(f.allowed, x.allowed) for f, x in zip(forced, out.choices, strict=True))
    action = json.loads(chosen[0].completion())
    hidden = json.dumps({**action, "control_name": "No Such Control"}, ensure_ascii=False)
    tokens = tokenizer(hidden, add_special_tokens=False)["input_ids"]
    assert teacher_forced(d.cursor(constraints[0]), tokens) is None
    # Cut short, the tokens do not close the action: not writable either (under the agent's limits).
    reference = tokenizer(chosen[0].completion(), add_special_tokens=False)["input_ids"]
    vocab, limits = vocab_for(tokenizer), AgentConfig().limits()
    assert teacher_forced(Cursor(constraints[0], limits, vocab), reference[:-3]) is None
    assert teacher_forced(Cursor(constraints[0], limits, vocab), reference) is not None
