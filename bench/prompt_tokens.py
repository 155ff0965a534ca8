"""Measure step prompts in tokens: how long they are and where the tokens go, for two prompt views at once.

Runs the built-in expert over tasks sampled across every family and applicable template (one task in three a
composite of two tasks on one document, as the pipeline's evolved tasks are; seeds from a fixed RNG), keeps
the observation of every step, and renders each one under the measured view (params.yaml's `env` section
unless overridden) and under the baseline view (`--canvas full --control-types all`: the earlier prompt).
Each view gets its own tokenizer trained the way the pipeline trains it
(`lamops.models.tokenizer.train_tokenizer`, params.yaml's `model.vocab_size`) on that view's step prompts and
the expert's actions, since the pipeline trains its tokenizer on its own prompts; `--tokenizer DIR` measures
both views with one saved tokenizer instead. Imports no torch.

Output, one figure per line (`name: value unit`), for the measured view and again prefixed `baseline_`:
prompt_tokens_p50, prompt_tokens_p95, prompt_tokens_max (tokens), controls_share, canvas_share,
request_history_plan_share (%: the rest of the prompt, section headers included); then prompts (steps) and
shrink_p50 (x: baseline p50 / measured p50).

Usage: python bench/prompt_tokens.py [--tasks N] [--seed S] [--canvas window|full]
    [--control-types ambiguous|all] [--control-format compact|json] [--vocab-size V] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import yaml

os.environ.setdefault("TRANSFORMERS_NO_TORCH", "1")
os.environ.setdefault("USE_TORCH", "0")
ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[int], q: float) -> float:
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def sample_tasks(n: int, seed: int) -> list:
    """`n` tasks round-robin over the families; every third one a composite of two tasks on one template."""
    from lamops.env.families import FAMILIES, applicable_templates, sample_task
    from lamops.env.families.composite import combinable, compose

    rng = random.Random(seed)
    families = sorted(FAMILIES)
    applicable = {f: applicable_templates(f) for f in families}
    tasks = []
    for i in range(n):
        fam = families[i % len(families)]
        if not applicable[fam]:
            continue
        template = rng.choice(applicable[fam])
        task = sample_task(fam, template, rng.randrange(20))
        if task is None:
            continue
        if i % 3 == 2:
            other = rng.choice([f for f in families if template in applicable[f] and f != fam] or [fam])
            second = sample_task(other, template, rng.randrange(20))
            if second is not None and combinable([task, second]):
                task = compose([task, second], f"composite-{i}")
        tasks.append(task)
    return tasks


def observe_steps(tasks: list) -> list[tuple]:
    """(observation, the expert's action as JSON) of every step the expert takes on `tasks`."""
    from lamops.agents.expert import ExpertAgent
    from lamops.env.word import WordEnv

    expert, env, out = ExpertAgent(), WordEnv(), []
    for task in tasks:
        obs = env.reset(task)
        plan = task.action_plan
        for k, step in enumerate(plan):
            try:
                action = expert.act(step, obs, last=k == len(plan) - 1)
            except LookupError:
                break
            action["plan"] = [f"{s.step}. {s.subtask}" for s in plan[k + 1 :]]
            out.append((obs, json.dumps(action, ensure_ascii=False)))
            result = env.step(action)
            if not result.ok:
                break
            obs = result.observation
    env.close()
    return out


def tokenizer_for(texts: list[str], vocab_size: int, saved: str | None):
    from transformers import PreTrainedTokenizerFast

    from lamops.models.tokenizer import train_tokenizer

    if saved:
        return PreTrainedTokenizerFast.from_pretrained(saved)
    with tempfile.TemporaryDirectory() as tmp:
        return train_tokenizer(texts, Path(tmp) / "tokenizer", vocab_size=vocab_size)


def measure(steps: list[tuple], view, vocab_size: int, saved: str | None) -> dict[str, float]:
    """Token figures of every step's prompt under `view`."""
    prompts = [obs.prompt(view) for obs, _ in steps]
    corpus = [t for p, (_, a) in zip(prompts, steps, strict=True) for t in (p, a)]
    tok = tokenizer_for(corpus, vocab_size, saved)

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    totals = [count(p) for p in prompts]
    controls = sum(count(obs.render_controls(view)) for obs, _ in steps)
    canvas = sum(count(obs.render_canvas(view)) for obs, _ in steps)
    whole = sum(totals)
    return {
        "prompt_tokens_p50": percentile(totals, 0.5),
        "prompt_tokens_p95": percentile(totals, 0.95),
        "prompt_tokens_max": max(totals),
        "controls_share": 100 * controls / whole,
        "canvas_share": 100 * canvas / whole,
        "request_history_plan_share": 100 * (whole - controls - canvas) / whole,
    }


def main(argv: list[str] | None = None) -> int:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    env = params["env"]
    parser = argparse.ArgumentParser(
        description="Step prompt tokens (p50/p95) and the shares of controls / canvas / the rest, for a "
        "prompt view and for the earlier full view (targets for the default view: p50 <= 300, p95 <= 450)."
    )
    parser.add_argument("--tasks", type=int, default=150, help="tasks to run the expert on (default: 150)")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing templates and task seeds")
    parser.add_argument("--canvas", choices=("window", "full"), default=env["canvas"])
    parser.add_argument("--control-types", choices=("ambiguous", "all"), default=env["control_types"])
    parser.add_argument(
        "--control-format", choices=("names", "compact", "json"), default=env["control_format"]
    )
    parser.add_argument("--vocab-size", type=int, default=params["model"]["vocab_size"])
    parser.add_argument(
        "--tokenizer", help="a saved tokenizer to measure with instead of training one per view"
    )
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be >= 1")

    from lamops.env.observation import PromptView

    view = PromptView(
        control_format=args.control_format, control_types=args.control_types, canvas=args.canvas
    )
    baseline = PromptView(control_format=args.control_format, control_types="all", canvas="full")
    steps = observe_steps(sample_tasks(args.tasks, args.seed))
    if not steps:
        print("no steps: the expert took none on the sampled tasks", file=sys.stderr)
        return 1
    print(f"# measured view: {view.model_dump()}; {len(steps)} step prompts", file=sys.stderr)
    figures = measure(steps, view, args.vocab_size, args.tokenizer)
    base = measure(steps, baseline, args.vocab_size, args.tokenizer)
    for prefix, values in (("", figures), ("baseline_", base)):
        for name, value in values.items():
            unit = "%" if name.endswith("share") else "tokens"
            print(
                f"{prefix}{name}: {value:.1f} {unit}"
                if unit == "%"
                else f"{prefix}{name}: {value:.0f} {unit}"
            )
    print(f"prompts: {len(steps)} steps")
    print(f"shrink_p50: {base['prompt_tokens_p50'] / figures['prompt_tokens_p50']:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
