"""Benchmark the LAM agent's step latency: model forward passes against everything else (grammar, tokenizer,
prompt building, the environment's step, bookkeeping).

Plays episodes of sampled built-in tasks (families round-robin over their templates, seeds from a fixed RNG)
with `lamops.agents.lam.run_episodes`, greedy, at batch size 1 (`lamops agent`) and 8 (evaluation). The
model is `--model DIR` (default `models/lam4` when it exists), else a randomly initialised tiny Mistral of
params.yaml's `model` section with a byte-level BPE trained here on the expert's prompts and actions for
sampled tasks (nothing is downloaded). A random model's actions are nonsense but cost what a trained
model's cost per token; its tokens per step differ, so compare shares, not absolute step times.

A step's wall time is measured around the whole step with perf_counter: from the agent's decode call
(`agent.act`, prompt building included) to the next one, less episode resets and verifications (those are
once per episode, not per step; reported apart). In lockstep a decode serves every live episode, so a
round's wall time is shared by its steps; `step_ms` is per step (round / steps in it), `round_ms` per
decode. From `StepTiming` (through the `on_step` hook): `forward_s` (model forward passes), `decode_s` (the
whole decode: forward + grammar + tokenizer) and `env_s` (the environment executing the action).

Target: everything else (other_share = 100% - forward_share) <= 5% of a step.

Output, one figure per line (`name: value unit`), for B in 1 and 8: agent_step.batchB.step_ms,
.round_ms, .forward_ms, .forward_share, .other_share, .grammar_tokenizer_share (decode - forward),
.env_share, .bookkeeping_share (the rest: prompts, records, the loop), .tokens_per_step (generated +
forced), .forward_passes_per_step, .steps, .episode_overhead_ms (reset + verify per episode).

Usage: python bench/agent_step.py [--model DIR] [--episodes N] [--max-steps S] [--seed S] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 8)


def sample_tasks(n: int, seed: int) -> list:
    """`n` built-in tasks: families in turn, each on a template it applies to, seeds from a fixed RNG."""
    from lamops.env.families import FAMILIES, applicable_templates, sample_task

    rng = random.Random(seed)
    families = sorted(FAMILIES)
    rng.shuffle(families)
    tasks = []
    k = 0
    while len(tasks) < n and k < 20 * n:
        family = families[k % len(families)]
        k += 1
        templates = applicable_templates(family)
        if templates:
            task = sample_task(family, rng.choice(templates), rng.randrange(1000))
            if task is not None:
                tasks.append(task)
    return tasks


def random_model(cfg, workdir: Path, seed: int):
    """A tiny Mistral of params' `model` section with a tokenizer trained on expert steps of sampled tasks."""
    from lamops.agents.expert import ExpertAgent
    from lamops.env.word import WordEnv
    from lamops.models.factory import build_tiny
    from lamops.models.tokenizer import train_tokenizer

    env = WordEnv()
    texts = []
    for task in sample_tasks(60, seed + 1):
        for s in ExpertAgent().run(env, task, verify=False).steps:
            texts += [s.prompt, s.completion()]
    tokenizer = train_tokenizer(texts, workdir / "tokenizer", vocab_size=cfg.model.vocab_size)
    spec = cfg.model.model_copy(update={"source": "tiny"})
    return build_tiny(spec, tokenizer), tokenizer


class Clock:
    """Timestamps of the run: decode calls (rounds), steps, and the per-episode work between rounds."""

    def __init__(self):
        self.rounds: list[dict] = []  # {"start", "steps": [StepTiming], "overhead"}
        self.overhead = 0.0  # reset and verify seconds, all episodes
        self.episodes = 0

    def start_round(self) -> None:
        self.rounds.append({"start": time.perf_counter(), "steps": [], "overhead": 0.0})

    def add_overhead(self, seconds: float) -> None:
        self.overhead += seconds
        if self.rounds:
            self.rounds[-1]["overhead"] += seconds


def timed_env_class(clock: Clock):
    from lamops.env.word import WordEnv

    class TimedEnv(WordEnv):
        """WordEnv whose resets and verifications are timed apart from the steps."""

        def reset(self, task):
            t = time.perf_counter()
            try:
                return super().reset(task)
            finally:
                clock.episodes += 1
                clock.add_overhead(time.perf_counter() - t)

        def verify(self):
            t = time.perf_counter()
            try:
                return super().verify()
            finally:
                clock.add_overhead(time.perf_counter() - t)

    return TimedEnv


def measure(model, tokenizer, cfg, tasks, batch_size: int, max_steps: int) -> dict[str, float]:
    from lamops.agents.lam import AgentConfig, LAMAgent, run_episodes
    from lamops.agents.user_doc import agent_max_len

    config = AgentConfig(
        max_len=agent_max_len(cfg),
        **cfg.env.view().model_dump(),
        max_steps=max_steps,
        batch_size=batch_size,
        temperature=0,
    )
    agent = LAMAgent(model, tokenizer, config)
    clock = Clock()
    env_class = timed_env_class(clock)
    # Warm-up: one decode, so that first-call allocations are not counted.
    warm_env = env_class(max_steps=max_steps, view=config.view())
    agent.act([warm_env.reset(tasks[0])])
    clock.episodes, clock.overhead = 0, 0.0

    act = agent.act

    def timed_act(observations, generator=None):
        clock.start_round()
        return act(observations, generator)

    agent.act = timed_act  # type: ignore[method-assign]
    trajectories = run_episodes(
        agent,
        tasks,
        lambda: env_class(max_steps=max_steps, view=config.view()),
        on_step=lambda task, step, timing: clock.rounds[-1]["steps"].append(timing),
    )
    end = time.perf_counter()
    walls, forward, decode, env, tokens, passes, rows = [], [], [], [], [], [], []
    for k, r in enumerate(clock.rounds):
        if not r["steps"]:
            continue
        stop = clock.rounds[k + 1]["start"] if k + 1 < len(clock.rounds) else end
        walls.append(stop - r["start"] - r["overhead"])
        forward.append(max(t.forward_s for t in r["steps"]))  # the batch's forward seconds, shared
        decode.append(max(t.decode_s for t in r["steps"]))
        env.append(sum(t.env_s for t in r["steps"]))
        tokens += [t.generated_tokens + t.forced_tokens for t in r["steps"]]
        passes += [t.forward_passes for t in r["steps"]]
        rows.append(len(r["steps"]))
    wall, steps = sum(walls), sum(rows)
    overhead = clock.overhead
    other = wall - sum(forward)
    assert steps == sum(len(t.steps) for t in trajectories)
    return {
        "step_ms": 1000 * wall / steps,
        "round_ms": 1000 * statistics.fmean(walls),
        "forward_ms": 1000 * sum(forward) / steps,
        "forward_share": 100 * sum(forward) / wall,
        "other_share": 100 * other / wall,
        "grammar_tokenizer_share": 100 * (sum(decode) - sum(forward)) / wall,
        "env_share": 100 * sum(env) / wall,
        "bookkeeping_share": 100 * (wall - sum(decode) - sum(env)) / wall,
        "tokens_per_step": statistics.fmean(tokens),
        "forward_passes_per_step": statistics.fmean(passes),
        "steps": steps,
        "episode_overhead_ms": 1000 * overhead / max(1, clock.episodes),
    }


UNITS = {
    "step_ms": "ms",
    "round_ms": "ms",
    "forward_ms": "ms",
    "forward_share": "%",
    "other_share": "%",
    "grammar_tokenizer_share": "%",
    "env_share": "%",
    "bookkeeping_share": "%",
    "tokens_per_step": "tokens",
    "forward_passes_per_step": "passes",
    "steps": "steps",
    "episode_overhead_ms": "ms",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the LAM agent's steps: model forward against everything else (target: <= 5%)."
    )
    default_model = ROOT / "models/lam4"
    parser.add_argument(
        "--model",
        type=Path,
        default=default_model if (default_model / "config.json").is_file() else None,
        help="a save_pretrained folder (default: models/lam4 if it exists, else a random tiny model)",
    )
    parser.add_argument("--episodes", type=int, default=16, help="episodes per batch size (default: 16)")
    parser.add_argument("--max-steps", type=int, default=6, help="step limit of an episode (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled tasks")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.max_steps < 1:
        parser.error("--episodes and --max-steps must be >= 1")

    import torch

    from lamops.config import load_config
    from lamops.models.factory import make_model, parameter_count
    from lamops.settings import ModelSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is not None:
            model, tokenizer = make_model(ModelSpec(source="pretrained", path=str(args.model)))
            source = str(args.model)
        else:
            model, tokenizer = random_model(cfg, Path(tmp), args.seed)
            source = "random tiny Mistral (params.yaml model section)"
    model.eval()
    print(f"# model: {source}, {parameter_count(model) / 1e6:.2f}M parameters", file=sys.stderr)
    print(f"# torch threads: {torch.get_num_threads()}, max_steps: {args.max_steps}", file=sys.stderr)
    tasks = sample_tasks(args.episodes, args.seed)
    for batch_size in BATCH_SIZES:
        started = time.perf_counter()
        figures = measure(model, tokenizer, cfg, tasks, batch_size, args.max_steps)
        for name, value in figures.items():
            print(f"agent_step.batch{batch_size}.{name}: {value:.1f} {UNITS[name]}")
        print(f"# batch {batch_size}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print("agent_step.target_other_share_max: 5.0 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
