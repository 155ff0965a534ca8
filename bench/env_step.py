"""Benchmark the built-in Word-like environment: env.step, env.reset and env.verify latency.

Runs the built-in expert over tasks sampled across every family and applicable template (round-robin, seeds
drawn from a fixed RNG), timing every `env.reset`, every `env.step` (wall time around the call) and every
`env.verify`. Pins itself to one CPU core where the OS allows, and imports no torch.

Targets, on one core: env_step_p50 <= 2 ms, env_reset_p50 <= 20 ms.

Output: one figure per line, `name: value unit`:
    env_step_p50, env_step_p95, env_reset_p50, env_reset_p95 (ms), episodes_per_second (episodes/s: reset +
    steps + verify), verify_p50 (ms), steps_timed (steps).

Usage: python bench/env_step.py [--episodes N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("TRANSFORMERS_NO_TORCH", "1")
os.environ.setdefault("USE_TORCH", "0")


def pin_to_one_core() -> str:
    try:
        os.sched_setaffinity(0, {0})
        return "pinned to core 0"
    except (AttributeError, OSError) as e:  # not Linux, or not allowed
        return f"not pinned ({e.__class__.__name__})"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time WordEnv.reset/step/verify with the expert over sampled tasks of every family "
        "(targets on one core: step p50 <= 2 ms, reset <= 20 ms)."
    )
    parser.add_argument("--episodes", type=int, default=300, help="episodes to run (default: 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing templates and task seeds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")

    pinned = "not pinned (--no-pin)" if args.no_pin else pin_to_one_core()
    print(f"# {pinned}", file=sys.stderr)

    from lamops.agents.expert import ExpertAgent
    from lamops.env.families import FAMILIES, applicable_templates, sample_task
    from lamops.env.word import WordEnv

    rng = random.Random(args.seed)
    families = sorted(FAMILIES)
    applicable = {f: applicable_templates(f) for f in families}
    expert = ExpertAgent()
    env = WordEnv()

    tasks = []
    for i in range(args.episodes):
        fam = families[i % len(families)]
        task = sample_task(fam, rng.choice(applicable[fam]), rng.randrange(20))
        if task is not None:
            tasks.append(task)

    # Warm-up: parse every template once (the env caches live documents), untimed.
    for fam in families:
        env.reset(sample_task(fam, applicable[fam][0], 0))

    step_ms: list[float] = []
    reset_ms: list[float] = []
    verify_ms: list[float] = []
    failures = 0
    t_start = time.perf_counter()
    for task in tasks:
        t0 = time.perf_counter()
        obs = env.reset(task)
        reset_ms.append((time.perf_counter() - t0) * 1000)
        plan = task.action_plan
        for k, step in enumerate(plan):
            try:
                action = expert.act(step, obs, last=k == len(plan) - 1)
            except LookupError:
                break
            t0 = time.perf_counter()
            res = env.step(action)
            step_ms.append((time.perf_counter() - t0) * 1000)
            if not res.ok:
                break
            obs = res.observation
        t0 = time.perf_counter()
        verdict = env.verify()
        verify_ms.append((time.perf_counter() - t0) * 1000)
        failures += verdict.complete != "yes"
    elapsed = time.perf_counter() - t_start
    env.close()

    print(f"env_step_p50: {percentile(step_ms, 0.5):.3f} ms")
    print(f"env_step_p95: {percentile(step_ms, 0.95):.3f} ms")
    print(f"env_reset_p50: {percentile(reset_ms, 0.5):.3f} ms")
    print(f"env_reset_p95: {percentile(reset_ms, 0.95):.3f} ms")
    print(f"episodes_per_second: {len(tasks) / elapsed:.1f} episodes/s")
    print(f"verify_p50: {percentile(verify_ms, 0.5):.3f} ms")
    print(f"steps_timed: {len(step_ms)} steps")
    print(
        f"# {len(tasks)} episodes, {failures} not verified complete, mean step "
        f"{statistics.fmean(step_ms) if step_ms else float('nan'):.3f} ms",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
