"""GPU check of the training path a 7B recipe takes: SFT under DeepSpeed ZeRO-2 bf16 through the pipeline's
Ray Train launcher, on one CUDA device, with a random-init Mistral of Mistral-7B's shape scaled to ~1B
(`lamops.models.sizing.MISTRAL_1B`: half the width and layers, the same head size, GQA and MLP ratios).

What it runs (CUDA): the built-in environment's expert plays sampled tasks; their steps are the SFT rows
(observation -> action, as `imitate` trains on) and a byte-level BPE is trained on them; `SFTLoop`, the loop
of every SFT phase, runs `--steps` optimizer steps via `lamops.train.loop.launch_loop` with
`infra/deepspeed/zero2_gpu_bf16.json` (or `--deepspeed`) on `--backend ray` (a Ray Train `TorchTrainer`,
one GPU worker, NCCL), checkpoints at the last step as a phase does (~14 GB for ~1B parameters: bf16
weights and fp32 Adam states) and publishes the model; the published folder is loaded in bf16 and the LAM
agent's constrained decoder writes one action for a fresh observation. Needs ~25 GB of GPU memory at the
defaults and ~30 GB of free disk in the temporary folder.

Figures, one per line (`name: value unit`): params, tokens_per_s (median of the history windows after the
first: non-pad tokens, steady state), step_s, mfu with its formula (tokens/s x training FLOPs per token /
the device's peak dense bf16 FLOP/s; FLOPs per token 6 N + 6 L T d, Kaplan et al. 2020, N the parameters in
matrix multiplies, T the mean sample length, L layers, d = heads x head dim), peak_memory (the worker's
`torch.cuda.max_memory_allocated`) beside the estimate for the same run, the decoded action and its time;
then the 7B memory table.

`--dry-run` (the default where torch sees no CUDA device) builds nothing: it prints the shapes, parameter
counts and the per-GPU memory estimate per ZeRO stage for the check's shape on one GPU and for Mistral-7B
on `--gpus` GPUs, full fine-tuning and LoRA (`--lora-r`), with the formula (`lamops.models.sizing`:
weights 2 bytes/param bf16, gradients 2 bytes and Adam 12 bytes (fp32 master, m, v) per trainable param;
ZeRO-1 divides Adam by the data-parallel degree, ZeRO-2 gradients too, ZeRO-3 weights too; activations
apart, estimated at `--max-len` x `--micro-batch` for the check and at the paper profile's 2,048 tokens x 2
for the 7B), and exits 0. A test runs it (tests/test_gpu_check.py).

Usage: python bench/gpu_check.py [--dry-run] [--steps N] [--micro-batch B] [--max-len L] [--gpus N]
       [--lora-r R] [--train-lora-r R] [--backend ray|local] [--deepspeed FILE] [--peak-tflops T]
       [--tasks N] [--seed S] [--cpu-smoke]
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

from lamops.models.sizing import MistralShape  # pure arithmetic, no torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LAMOPS_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]

# Peak dense bf16 tensor-core FLOP/s by device name (vendor data sheets, without sparsity); --peak-tflops
# for anything else.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
STAGES = (0, 1, 2, 3)
PAPER_MAX_LEN, PAPER_MICRO_BATCH = 2048, 2  # params/paper.yaml's SFT sections
SMOKE_SHAPE = MistralShape(  # --cpu-smoke: the same code path on a model a CPU trains in seconds
    vocab_size=2048,
    hidden_size=128,
    intermediate_size=448,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=1,
)


def figure(name: str, value, unit: str = "") -> None:
    print(f"{name}: {value} {unit}".rstrip(), flush=True)


def gib(n: float) -> str:
    return f"{n / 1024**3:.1f}"


# ---------------------------------------------------------------------------------------------- estimates


def print_estimates(args) -> None:
    """Shapes, parameter counts and the ZeRO memory table: all arithmetic, nothing built."""
    from lamops.models.sizing import (
        MISTRAL_1B,
        MISTRAL_7B,
        activation_bytes,
        flops_per_token,
        lora_parameter_count,
        parameter_count,
        zero_model_state_bytes,
    )

    figure(
        "formula.memory",
        "per GPU = weights 2 P + gradients 2 P_t + Adam 12 P_t bytes (P params, P_t trainable); "
        "ZeRO-1: Adam / N; ZeRO-2: (gradients + Adam) / N; ZeRO-3: all / N (N data-parallel GPUs); "
        "activations apart: 34 s b h bytes per layer (flash attention, no recomputation)",
    )
    runs = (  # the check's own run; the 7B at the paper profile's sequence length and micro-batch
        ("check_1b", MISTRAL_1B, 1, args.max_len, args.micro_batch),
        ("mistral7b", MISTRAL_7B, args.gpus, PAPER_MAX_LEN, PAPER_MICRO_BATCH),
    )
    for label, shape, gpus, seq, micro_batch in runs:
        s = shape
        figure(
            f"{label}.shape",
            f"vocab {s.vocab_size}, hidden {s.hidden_size}, intermediate {s.intermediate_size}, "
            f"layers {s.num_hidden_layers}, heads {s.num_attention_heads} ({s.num_key_value_heads} kv), "
            f"head_dim {s.head_dim}, tied {str(s.tie_word_embeddings).lower()}",
        )
        params = parameter_count(shape)
        lora = lora_parameter_count(shape, args.lora_r)
        figure(f"{label}.params", f"{params / 1e9:.3f}", "B")
        figure(f"{label}.params_exact", params, "params")
        figure(f"{label}.lora_r{args.lora_r}_params", f"{lora / 1e6:.1f}", "M")
        figure(f"{label}.flops_per_token", f"{flops_per_token(shape, args.max_len) / 1e9:.2f}", "GFLOP")
        for mode, trainable in (("full", params), (f"lora_r{args.lora_r}", lora)):
            for stage in STAGES:
                bytes_ = zero_model_state_bytes(params, trainable, stage, gpus)
                figure(f"{label}.{mode}.zero{stage}.gpus{gpus}", gib(bytes_), "GiB")
        for checkpointing in (False, True):
            what = "checkpointed" if checkpointing else "stored"
            bytes_ = activation_bytes(shape, seq, micro_batch, checkpointing=checkpointing)
            figure(f"{label}.activations_{what}.seq{seq}.mb{micro_batch}", gib(bytes_), "GiB")


# ---------------------------------------------------------------------------------------------- the GPU run


def expert_rows(tasks: int, seed: int):
    """Observation -> action SFT rows from the built-in expert on sampled tasks, and one held-out
    observation for the decode."""
    import random

    from lamops.agents.expert import ExpertAgent
    from lamops.env.families import FAMILIES, applicable_templates, sample_task
    from lamops.env.word import WordEnv
    from lamops.records import StepSFTRow

    rng = random.Random(seed)
    families = sorted(FAMILIES)
    env, rows, sampled = WordEnv(), [], []
    while len(sampled) < tasks + 1:
        family = families[len(sampled) % len(families)]
        templates = applicable_templates(family)
        task = sample_task(family, rng.choice(templates), rng.randrange(1000)) if templates else None
        if task is not None:
            sampled.append(task)
    for task in sampled[:-1]:
        for step in ExpertAgent().run(env, task, verify=False).steps:
            rows.append(
                StepSFTRow(
                    task_id=task.task_id, step=step.step, prompt=step.prompt, completion=step.completion()
                )
            )
    return rows, WordEnv().reset(sampled[-1])


def check_loop(config: dict):
    """The SFT phases' worker loop (`lamops.train.sft.SFTLoop`), plus this worker's peak GPU memory."""
    import torch

    from lamops.train.sft import SFTLoop

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    out = SFTLoop(config).run()
    if out is not None and cuda:
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    return out


def run_check(args, work: Path) -> None:
    """The GPU run in the folder `work` (data, tokenizer, checkpoints, the published model)."""
    import torch

    from lamops.models.sizing import (
        MISTRAL_1B,
        flops_per_token,
        lora_parameter_count,
        parameter_count,
        zero_model_state_bytes,
    )
    from lamops.models.tokenizer import train_tokenizer
    from lamops.settings import ModelSpec, SFTConfig
    from lamops.train.distributed import TrainSpec
    from lamops.train.loop import launch_loop
    from lamops.train.sft import encode_rows

    cuda = not args.cpu_smoke
    if cuda:
        device = torch.cuda.get_device_name()
        figure("gpu_check.mode", f"cuda ({device}, {torch.cuda.device_count()} visible; using 1)")
    else:
        device = "cpu"
        figure("gpu_check.mode", "cpu smoke (the GPU path on a tiny model, no figures worth keeping)")
    t = time.perf_counter()
    rows, observation = expert_rows(args.tasks, args.seed)
    texts = [x for r in rows for x in (r.prompt, r.completion)]
    tokenizer = train_tokenizer(texts, work / "tokenizer", vocab_size=MISTRAL_1B.vocab_size)
    shape = SMOKE_SHAPE if args.cpu_smoke else MISTRAL_1B
    shape = shape.model_copy(update={"vocab_size": len(tokenizer)})  # a small corpus gives fewer tokens
    figure("data.rows", len(rows), "rows")
    figure("data.vocab", len(tokenizer), "tokens")
    figure("data.prep_s", f"{time.perf_counter() - t:.1f}", "s")
    samples, stats = encode_rows(tokenizer, rows, args.max_len)
    mean_len = stats.tokens / stats.samples
    figure("data.mean_tokens", f"{mean_len:.0f}", "tokens/sample")
    spec = ModelSpec(
        source="tiny",
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=max(args.max_len, 2048),
        vocab_size=MISTRAL_1B.vocab_size,
        tie_word_embeddings=False,
        dtype="bfloat16",
        seed=args.seed,
    )
    params = parameter_count(shape)
    lora = args.train_lora_r
    trainable = lora_parameter_count(shape, lora) if lora else params
    figure("params", f"{params / 1e9:.3f}", "B")
    figure("params_trainable", f"{trainable / 1e9:.3f}", "B")
    sft = SFTConfig(
        lr=1e-4,
        warmup_steps=2,
        micro_batch_size=args.micro_batch,
        max_steps=args.steps,
        max_len=args.max_len,
        log_every=max(1, args.steps // 6),
        lora_r=args.train_lora_r,
    )
    train = TrainSpec(
        name=f"gpu-check-{int(time.time())}",
        deepspeed_config=Path(args.deepspeed).resolve(),  # the workers run in another folder
        storage_path=str(work / "runs"),
        backend=args.backend,
        num_workers=1,
        use_gpu=cuda,
        cpus_per_worker=max(1, (os.cpu_count() or 2) // 2),
        checkpoint_every=10**9,  # one checkpoint, at the last step (the run's own cadence)
    )
    out_dir = work / "model"
    t = time.perf_counter()
    launched = launch_loop(
        check_loop,
        train,
        args.steps,
        sft,
        out_dir,
        data={"samples": samples},
        model_dir=None,
        model_spec=spec.model_dump(mode="json"),
        tokenizer_dir=str(work / "tokenizer"),
    )
    figure("train.wall_s", f"{time.perf_counter() - t:.1f}", "s (start-up, steps, checkpoint, publish)")
    back = launched.returned
    history = back.get("history", [])
    steady = history[1:] or history
    tokens_per_s = statistics.median(h["tokens_per_s"] for h in steady)
    figure("train.loss_first", f"{history[0]['loss']:.3f}")
    figure("train.loss_last", f"{history[-1]['loss']:.3f}")
    figure("tokens_per_s", f"{tokens_per_s:.0f}", "tokens/s")
    figure("step_s", f"{statistics.median(h['step_time_s'] for h in steady):.3f}", "s")
    per_token = flops_per_token(shape, round(mean_len))
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device), None)
    figure(
        "formula.mfu",
        f"tokens_per_s x (6 N + 6 L T d) / peak; N {params - shape.vocab_size * shape.hidden_size} (no input "
        f"embedding), L {shape.num_hidden_layers}, T {mean_len:.0f}, d {shape.hidden_size}; "
        f"peak {peak or 'unknown'} TFLOP/s bf16 dense"
        + ("; with LoRA the frozen weights get no gradient, so this overstates the work" if lora else ""),
    )
    if peak:
        figure("mfu", f"{100 * tokens_per_s * per_token / (peak * 1e12):.1f}", "%")
    else:
        figure("mfu", "n/a (unknown device: pass --peak-tflops)")
    if cuda:
        figure("peak_memory", gib(back["peak_memory_bytes"]), "GiB")
    stage = json.loads(Path(args.deepspeed).read_text())["zero_optimization"]["stage"]
    figure(
        f"peak_memory_estimate.zero{stage}.gpus1",
        gib(zero_model_state_bytes(params, trainable, stage, 1)),
        "GiB (model states; activations apart)",
    )
    decode(out_dir, observation, args.max_len, "cuda" if cuda else "cpu")


def decode(out_dir: Path, observation, max_len: int, device: str) -> None:
    """One constrained action from the published folder, in bf16 on `device`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lamops.agents.lam import AgentConfig, LAMAgent

    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.bfloat16, local_files_only=True)
    model = model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    agent = LAMAgent(model, tokenizer, AgentConfig(max_len=max_len + 80, batch_size=1))
    t = time.perf_counter()
    (decoded,) = agent.act([observation])
    figure("decode.s", f"{time.perf_counter() - t:.2f}", "s")
    figure("decode.tokens", decoded.tokens, "tokens")
    figure("decode.action", decoded.text)
    if decoded.error:
        figure("decode.error", decoded.error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="Shapes and estimates only (default: no CUDA)."
    )
    parser.add_argument("--steps", type=int, default=30, help="Optimizer steps of the SFT run.")
    parser.add_argument("--micro-batch", type=int, default=8, help="Samples per step (one GPU).")
    parser.add_argument("--max-len", type=int, default=1024, help="Longest sample in tokens.")
    parser.add_argument("--gpus", type=int, default=8, help="Data-parallel GPUs of the 7B estimate.")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank of the estimates' LoRA rows.")
    parser.add_argument(
        "--train-lora-r",
        type=int,
        default=None,
        help="Train the check with LoRA of this rank (default: full).",
    )
    parser.add_argument("--backend", choices=("ray", "local"), default="ray", help="Ray Train or in-process.")
    parser.add_argument(
        "--deepspeed", default=str(ROOT / "infra/deepspeed/zero2_gpu_bf16.json"), help="DeepSpeed JSON."
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="Peak bf16 TFLOP/s for the MFU.")
    parser.add_argument("--tasks", type=int, default=200, help="Built-in tasks the expert plays for data.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="Run the GPU path on the CPU with a tiny model (checks the script, not the hardware); use with "
        "--backend local --deepspeed infra/deepspeed/zero2_cpu_bf16.json.",
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        figure("gpu_check.mode", "dry-run (--dry-run)")
    else:
        import torch

        if torch.cuda.is_available() or args.cpu_smoke:
            with tempfile.TemporaryDirectory(prefix="lamops-gpu-check-") as work:  # ~30 GB at the defaults
                run_check(args, Path(work))
        else:
            figure("gpu_check.mode", "dry-run (torch sees no CUDA device; the GPU run is left ready)")
    print_estimates(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
