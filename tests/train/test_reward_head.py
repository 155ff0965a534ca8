"""The reward model's grammar head (`lamops.train.reward_head`): the logistic fit, which part of an action a
choice writes, and the features of a real observation through a tiny model's grammar-constrained view."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lamops.train.reward_head import FEATURES, PARTS, GrammarReward, choice_parts, fit_head


def test_the_head_separates_unbalanced_classes_and_ignores_a_constant_feature():
    rng = np.random.default_rng(0)
    good = rng.normal(1.0, 1.0, size=(300, 2))
    bad = rng.normal(-1.0, 1.0, size=(60, 2))
    x = np.hstack([np.vstack([good, bad]), np.full((360, 1), 7.0)])
    y = [1] * 300 + [-1] * 60
    head = fit_head(x, y, l2=1.0)
    s = head.scores(x)
    assert ((s > -1) & (s < 1)).all()
    recall_good, recall_bad = (s[:300] > 0).mean(), (s[300:] <= 0).mean()
    # Class-balanced: the minority class is not sacrificed for the majority's accuracy.
    assert recall_good > 0.8 and recall_bad > 0.8
    assert head.weights[2] == 0.0 and head.weights[0] > 0 and head.weights[1] > 0
    with pytest.raises(ValueError, match="one class is missing"):
        fit_head(x, [1] * 360)


def test_each_choice_belongs_to_the_part_of_the_action_it_writes():
    text = '{"thought": "Click Bold.", "control_name": "Bold", "function": "click_input", "plan": ["x"]}'
    pieces = [bytes([b]) for b in text.encode()]
    at = {name: text.index(value) for name, value in (("t", "Click"), ("c", 'Bold"'), ("f", "click_"))}
    at["p"] = text.index('["x"]') + 2
    parts = choice_parts(pieces, [0, at["t"], at["c"], at["f"], at["p"]])
    assert [PARTS[p] for p in parts] == ["thought", "thought", "action", "action", "plan"]


def test_features_of_the_greedy_action_and_of_another_one(tmp_path):
    """Through a tiny random model: the policy's own greedy action agrees with itself and has no off-greedy
    choice; an action naming an invisible control is unreachable; another visible control is not the
    greedy one. The published folder reloads and scores the same."""
    from helpers import tiny_spec

    from lamops.agents.constraints import constraints_from_prompt
    from lamops.agents.lam import AgentConfig
    from lamops.env.families import applicable_templates, sample_task
    from lamops.env.word import WordEnv
    from lamops.models.factory import build_tiny, save
    from lamops.models.tokenizer import train_tokenizer
    from lamops.train.reward import _load_classifier
    from lamops.train.reward_head import HEAD_FILE, load_reward_model, publish, score

    env = WordEnv()
    task = sample_task("emphasize_phrase", applicable_templates("emphasize_phrase")[0], 0)
    obs = env.reset(task)
    config = AgentConfig(copy_plan=False, plan_library=False)
    prompt = obs.prompt(config.view())
    tokenizer = train_tokenizer([prompt, '{"thought": "x"}'], tmp_path / "tok", vocab_size=512)
    policy_dir = save(build_tiny(tiny_spec(), tokenizer), tokenizer, tmp_path / "lam3")
    classifier = _load_classifier(policy_dir)
    classifier.config.pad_token_id = tokenizer.pad_token_id
    reward = GrammarReward.build(classifier.eval(), tokenizer, policy_dir, config)
    greedy = reward.agent.act_prompts([prompt])[0].text
    action = json.loads(greedy)
    label, name = next(c for c in constraints_from_prompt(prompt).controls if c[1] != action["control_name"])
    click = {"function": "click_input", "args": {"button": "left", "double": False}}
    texts = [
        greedy,
        json.dumps({**action, **click, "control_name": "No Such Control", "control_label": label}),
        json.dumps({**action, **click, "control_name": name, "control_label": label}),
    ]
    x = reward.features([prompt] * 3, texts, max_len=1024)
    col = {name: i for i, name in enumerate(FEATURES)}
    assert x[0, col["agrees"]] == 1 and x[0, col["unreachable"]] == 0
    assert all(x[0, col[f"{p}.off_greedy"]] == 0 and x[0, col[f"{p}.margin_sum"]] == 0 for p in PARTS)
    assert x[1, col["unreachable"]] == 1 and x[1, col["agrees"]] == 0
    assert x[2, col["unreachable"]] == 0 and x[2, col["agrees"]] == 0 and x[2, col["action.off_greedy"]] >= 1
    assert x[2, col["action.margin_min"]] < 0
    reward.head = fit_head(x, [1, -1, -1])
    before = reward.score([prompt] * 3, texts, max_len=1024)
    assert before[0] > 0 and (before[1:] < 0).all()
    folder = tmp_path / "rm"
    classifier.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    publish(folder, policy_dir, reward.head, config, folder)
    assert (folder / HEAD_FILE).is_file() and (folder / "policy" / "config.json").is_file()
    model, tok = load_reward_model(folder)
    assert np.allclose(score(model, tok, [prompt] * 3, texts, max_len=1024), before)
    # PPO's reference is LAM3: the reward model uses it instead of loading its hard-linked policy/ again,
    # but not a copy of the files (however equal) nor another folder.
    reference = reward.agent.model
    shared, _ = load_reward_model(folder, shared=(policy_dir, reference, tokenizer))
    assert shared.agent.model is reference
    assert np.allclose(score(shared, tok, [prompt] * 3, texts, max_len=1024), before)
    copied = shutil.copytree(policy_dir, tmp_path / "lam3-copy")
    assert load_reward_model(folder, shared=(copied, reference, tokenizer))[0].agent.model is not reference
