"""Benchmark the SFT trainer: tokens/s of `train_sft` (Ray Train + DeepSpeed ZeRO-2, 1 and 2 workers, and
`train.backend: local`, the loop in this process) against a bare PyTorch loop (same tiny model, same batches,
same collator, torch AdamW, no Ray, no DeepSpeed).

Rows: the pipeline's `data/datasets/sft/train.jsonl` when it exists (run the data stages first), else
synthetic observation -> action rows of the same shape. The tokenizer is trained on those rows. Both sides
time only their training steps after `--warmup` steps; the trainer's figure is its own steady-state rate (Ray
start-up, worker start-up and model saving excluded; its metrics are gathered every 5 steps, as in a run) and
its fixed cost is reported apart.

Target: trainer_1w_vs_bare >= 0.90 (the trainer costs at most 10% over a bare loop).

Output, one figure per line (`name: value unit`): params, batch_tokens (mean non-pad tokens of a batch),
bare_tokens_per_s, trainer_1w_tokens_per_s, trainer_1w_vs_bare, trainer_2w_tokens_per_s, trainer_2w_vs_bare,
speedup_2w_vs_1w, launch_overhead_1w_s, launch_overhead_2w_s, trainer_local_tokens_per_s,
trainer_local_vs_bare, launch_overhead_local_s (a phase's fixed cost without Ray Train: what
`backend: local` saves is launch_overhead_1w_s - launch_overhead_local_s).

Usage: python bench/train_throughput.py [--steps N] [--micro-batch B] [--max-len L] [--warmup W]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("LAMOPS_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
LOG_EVERY = 5  # the trainer's metrics window; its all-reduce is part of what the trainer costs


def load_rows(limit: int) -> tuple[list, str]:
    """StepSFTRow records: the pipeline's own SFT data when it is there, else synthetic rows of its shape."""
    from lamops.records import StepSFTRow

    path = ROOT / "data/datasets/sft/train.jsonl"
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        rows = [StepSFTRow.model_validate_json(line) for line in lines]
        return rows[:limit], str(path.relative_to(ROOT))
    rng = random.Random(0)
    words = "the a memo quarterly report paragraph table budget heading summary review team".split()
    rows = []
    for i in range(limit):
        controls = "\n".join(f"{k}:Control {k}:Button" for k in range(1, 48))
        canvas = "\n".join(f"p{p} <Normal> " + " ".join(rng.choices(words, k=25)) for p in range(8))
        prompt = f"<Available Control Item:>\n{controls}\n<Canvas State:>\n{canvas}\n<User Request:> task {i}"
        completion = json.dumps(
            {
                "thought": "Click it.",
                "control_name": "Bold",
                "control_label": "19",
                "function": "click_input",
                "args": {"button": "left", "double": False},
                "status": "CONTINUE",
                "plan": ["2. Save."],
            }
        )
        rows.append(StepSFTRow(task_id=f"synthetic-{i}", step=1, prompt=prompt, completion=completion))
    return rows, "synthetic"


def bare_loop(
    samples, tokenizer, spec, micro_batch: int, steps: int, warmup: int, lr: float
) -> tuple[float, float]:
    """Tokens/s of a plain PyTorch loop over the same batches as the trainer's rank 0 with 1 worker."""
    import torch

    from lamops.models.factory import build_tiny
    from lamops.train.loop import batch_indices
    from lamops.train.sft import SFTCollator

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = build_tiny(spec, tokenizer)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    collate = SFTCollator(tokenizer.pad_token_id)
    tokens = 0.0
    seconds = 0.0
    batch_tokens = []
    for step in range(warmup + steps):
        indices = batch_indices(
            step, rank=0, world_size=1, micro_batch_size=micro_batch, num_samples=len(samples), seed=0
        )
        batch = collate([samples[i] for i in indices])
        started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        if step >= warmup:
            tokens += float(batch["attention_mask"].sum())
            seconds += elapsed
            batch_tokens.append(float(batch["attention_mask"].sum()))
    return tokens / seconds, sum(batch_tokens) / len(batch_tokens)


def trainer(
    rows,
    tokenizer_dir,
    spec,
    workers: int,
    micro_batch: int,
    steps: int,
    warmup: int,
    max_len: int,
    lr: float,
    storage: Path,
    backend: str = "ray",
) -> tuple[float, float]:
    """(steady tokens/s after warm-up, fixed cost s) of train_sft with `workers` Ray Train workers, or in this
    process (`backend` "local", one worker)."""
    from lamops.settings import SFTConfig
    from lamops.train.distributed import TrainSpec
    from lamops.train.sft import train_sft

    total = warmup + steps
    # With 2 workers a global batch is 2 micro-batches: the same per-worker batch, twice the tokens per step.
    sft = SFTConfig(
        lr=lr,
        warmup_steps=1,
        micro_batch_size=micro_batch,
        max_steps=total,
        max_len=max_len,
        log_every=LOG_EVERY,
    )
    train = TrainSpec(
        name=f"bench-{backend}-{workers}w-{time.time_ns()}",
        deepspeed_config=ROOT / "infra/deepspeed/zero2_cpu.json",
        storage_path=str(storage),
        backend=backend,
        num_workers=workers,
        checkpoint_every=10**6,
    )
    started = time.perf_counter()
    result = train_sft(rows, spec, tokenizer_dir, storage / f"model-{workers}", sft, train)
    wall = time.perf_counter() - started
    # Each record is a window of LOG_EVERY steps (the trainer's own metrics cadence, as in a real run): its
    # seconds per step and its rate (non-pad tokens of all workers per second).
    previous = [0.0] + [r["step"] for r in result.history[:-1]]
    steps = [r["step"] - p for r, p in zip(result.history, previous, strict=True)]
    steady = [(r, n) for r, n in zip(result.history, steps, strict=True) if r["step"] - n >= warmup]
    if not steady:
        raise SystemExit("--steps must be at least LOG_EVERY")
    tokens = sum(r["tokens_per_s"] * r["step_time_s"] * n for r, n in steady)
    seconds = sum(r["step_time_s"] * n for r, n in steady)
    run_s = sum(r["step_time_s"] * n for r, n in zip(result.history, steps, strict=True))
    return tokens / seconds, wall - run_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--micro-batch", type=int, default=4, help="samples per worker per step (default 4)")
    parser.add_argument("--max-len", type=int, default=1024, help="longest sample in tokens (default 1024)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))

    from lamops.compute import ensure_ray
    from lamops.models.factory import build_tiny, parameter_count
    from lamops.models.tokenizer import train_tokenizer
    from lamops.settings import ModelSpec
    from lamops.train.sft import encode_rows

    lr = 1e-3
    with tempfile.TemporaryDirectory(prefix="lamops-bench-train-") as folder:
        storage = Path(folder)
        rows, source = load_rows(2000)
        texts = [t for r in rows for t in (r["prompt"], r["completion"])]
        tokenizer = train_tokenizer(texts, storage / "tokenizer", vocab_size=2048)
        spec = ModelSpec()
        samples, _ = encode_rows(tokenizer, rows, args.max_len)
        print(f"rows: {len(rows)} ({source})", file=sys.stderr)
        print(f"params: {parameter_count(build_tiny(spec, tokenizer))} count")
        bare, batch_tokens = bare_loop(
            samples, tokenizer, spec, args.micro_batch, args.steps, args.warmup, lr
        )
        print(f"batch_tokens: {batch_tokens:.0f} tokens")
        print(f"bare_tokens_per_s: {bare:.0f} tokens/s")
        ensure_ray()
        rates, fixed = {}, {}
        for name, workers, backend in (("1w", 1, "ray"), ("2w", 2, "ray"), ("local", 1, "local")):
            rates[name], fixed[name] = trainer(
                rows,
                storage / "tokenizer",
                spec,
                workers,
                args.micro_batch,
                args.steps,
                args.warmup,
                args.max_len,
                lr,
                storage,
                backend=backend,
            )
            print(f"trainer_{name}_tokens_per_s: {rates[name]:.0f} tokens/s")
            print(f"trainer_{name}_vs_bare: {rates[name] / bare:.3f} x")
        print(f"speedup_2w_vs_1w: {rates['2w'] / rates['1w']:.3f} x")
        for name in rates:
            print(f"launch_overhead_{name}_s: {fixed[name]:.1f} s")


if __name__ == "__main__":
    main()
