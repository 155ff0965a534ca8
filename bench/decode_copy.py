"""Measure decoding with copies of the previous plan (issue 14) against plain constrained decoding.

Decodes the same stored test steps (the `sft` test rows, whole tasks in file order, as the offline evaluation
takes them: `lamops.evaluation.offline.whole_tasks`) three ways with `lamops.agents.lam.LAMAgent`, greedy:
`copy_off` (AgentConfig.copy_plan False), `copy_on` (the default copy_bonus, or --bonus) and `copy_always`
(copy_bonus +inf: the copy whenever one is offered, as the simulation in LEARNING.md), none with the plan
library; when the model folder has one (`lamops.agents.plans`), `copy_on_library` too: copy_on with the
library's first-step proposals, the agent as evaluation runs it. Each action is scored
against its reference with `lamops.evaluation.metrics.score_step` / `offline_metrics`, as evaluation does.

The model is `--model DIR` (a published save_pretrained folder, e.g. `models/lam2`; default: the project's
models/lam2 when it exists), else a randomly initialised tiny Mistral (tests/helpers.py TINY_MODEL's sizes)
with a byte-level BPE trained here on the rows: its numbers only show that the bench runs.

Output, one figure per line (`name: value unit`), for V in copy_off, copy_on, copy_always[, copy_on_library]:
ssr_V, tsr_V, object_acc_V, operation_acc_V, status_acc_V (%), thought_exact_V and plan_exact_V (% of steps
whose thought / plan equals the reference), copies_per_step_V, forward_passes_per_step_V,
decode_ms_per_step_V; then steps.

Usage: python bench/decode_copy.py [--project DIR] [--rows FILE] [--model DIR] [--max-rows N] [--bonus B]
       [--max-len L] [--batch-size B] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "vocab_size": 1024,
}


def random_model(rows, workdir: Path):
    """A tiny random Mistral and a tokenizer trained on the rows' prompts and completions."""
    from lamops.models.factory import build_tiny
    from lamops.models.tokenizer import train_tokenizer
    from lamops.settings import ModelSpec

    texts = [t for r in rows for t in (r.prompt, r.completion)]
    tokenizer = train_tokenizer(texts, workdir / "tokenizer", vocab_size=TINY["vocab_size"])
    return build_tiny(ModelSpec(source="tiny", **TINY), tokenizer).eval(), tokenizer


def measure(model, tokenizer, rows, config, plans=None) -> dict[str, float]:
    """Decode every row with `config` (and the plan library `plans`), score it as offline evaluation does;
    the figures of one variant."""
    from lamops.agents.lam import LAMAgent
    from lamops.evaluation.metrics import offline_metrics, score_step

    agent = LAMAgent(model, tokenizer, config, plans)
    started = time.perf_counter()
    decoded = agent.act_prompts([r.prompt for r in rows])
    seconds = time.perf_counter() - started
    scores, thought, plan = [], 0, 0
    for row, d in zip(rows, decoded, strict=True):
        reference = json.loads(row.completion)
        scores.append(score_step(row.task_id, row.family, row.step, d.action, reference))
        thought += d.action is not None and d.action["thought"] == reference["thought"]
        plan += d.action is not None and d.action["plan"] == reference["plan"]
    m = offline_metrics(scores)
    n = len(rows)
    return {
        "ssr": m["ssr"],
        "tsr": m["tsr"],
        "object_acc": m["object_acc"],
        "operation_acc": m["operation_acc"],
        "status_acc": m["status_acc"],
        "thought_exact": 100 * thought / n,
        "plan_exact": 100 * plan / n,
        "copies_per_step": statistics.fmean(d.copied for d in decoded),
        "forward_passes_per_step": statistics.fmean(d.forward_passes for d in decoded),
        "decode_ms_per_step": 1000 * seconds / n,
    }


UNITS = {
    "ssr": "%",
    "tsr": "%",
    "object_acc": "%",
    "operation_acc": "%",
    "status_acc": "%",
    "thought_exact": "%",
    "plan_exact": "%",
    "copies_per_step": "copies",
    "forward_passes_per_step": "passes",
    "decode_ms_per_step": "ms",
}


def main(argv: list[str] | None = None) -> int:
    from lamops.agents.lam import AgentConfig

    parser = argparse.ArgumentParser(description="Decode test steps with and without previous-plan copies.")
    parser.add_argument("--project", type=Path, default=ROOT, help="project folder (default: this checkout)")
    parser.add_argument("--rows", type=Path, help="step rows (default: PROJECT/data/datasets/sft/test.jsonl)")
    parser.add_argument("--model", type=Path, help="save_pretrained folder (default: PROJECT/models/lam2)")
    parser.add_argument("--max-rows", type=int, default=160, help="rows, whole tasks (default: 160)")
    parser.add_argument("--bonus", type=float, default=AgentConfig().copy_bonus, help="copy_on's bonus")
    parser.add_argument("--max-len", type=int, default=1024, help="model input length, as in training")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args(argv)

    import torch

    from lamops.evaluation.offline import load, whole_tasks
    from lamops.records import StepSFTRow
    from lamops.stages.training import read_rows

    torch.set_num_threads(args.threads)
    rows_file = args.rows or args.project / "data/datasets/sft/test.jsonl"
    rows = whole_tasks(read_rows(rows_file, StepSFTRow), args.max_rows)
    model_dir = args.model or args.project / "models/lam2"
    with tempfile.TemporaryDirectory() as tmp:
        if (model_dir / "config.json").is_file():
            model, tokenizer = load(model_dir)
            print(f"# model {model_dir}, {len(rows)} steps of {rows_file}", file=sys.stderr)
        else:
            model, tokenizer = random_model(rows, Path(tmp))
            print(
                f"# no model at {model_dir}: a random tiny model (numbers only show the bench runs)",
                file=sys.stderr,
            )
        base = AgentConfig(max_len=args.max_len, batch_size=args.batch_size)
        variants = {
            "copy_off": base.model_copy(update={"copy_plan": False}),
            "copy_on": base.model_copy(update={"copy_bonus": args.bonus}),
            "copy_always": base.model_copy(update={"copy_bonus": float("inf")}),
        }
        from lamops.agents.plans import PlanLibrary

        plans = {}
        library = PlanLibrary.load(model_dir) if (model_dir / "config.json").is_file() else None
        if library is not None:  # the agent as evaluation runs it: copies and the model's plan library
            variants["copy_on_library"] = variants["copy_on"]
            plans["copy_on_library"] = library
        for name, config in variants.items():
            for key, value in measure(model, tokenizer, rows, config, plans.get(name)).items():
                print(f"{key}_{name}: {value:.1f} {UNITS[key]}", flush=True)
    print(f"steps: {len(rows)} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
