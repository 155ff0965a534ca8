"""What the training phases' stages share: their Ray Train spec, resumable run names, reading their data,
and logging a phase to MLflow (per-step metrics, loss curves, the registered model and its lineage).

Not a stage itself: `plan_pretrain`, `imitate`, `self_boost`, `reward_model` and `offline_rl` use it."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lamops.stages.base import StageResult

if TYPE_CHECKING:
    from pydantic import BaseModel

    from lamops.config import Config
    from lamops.records import InstantiatedTask
    from lamops.registry.models import RegisteredVersion
    from lamops.tracking import StageRun
    from lamops.train.distributed import TrainSpec

log = logging.getLogger(__name__)
R = TypeVar("R", bound="BaseModel")

TRAIN_DATA_TAG = "lamops.train_data_sha"  # digest of the files a registered model was trained on
LORA_TAG = "lamops.lora"  # a LoRA phase's adapter settings (train.sft.LORA_FILE), merged into the version
# Code whose change changes what a phase trains: part of every phase's run fingerprint.
_TRAIN_CODE = ("train", "models", "settings.py", "agents/prompt.py")


def read_rows(path: Path, model: type[R], *, allow_empty: bool = False) -> list[R]:
    """The typed rows (`lamops.records`: PlanSFTRow, StepSFTRow, RewardRow, TaskRow) of a dataset file the
    `datasets` stage (or an earlier phase) wrote; a bad line names the file and line, and an empty file is
    an error unless `allow_empty`."""
    from lamops.io import read_jsonl

    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stage that writes it first (`dvc repro` does)")
    rows, bad = read_jsonl(path, model, "training")
    if bad:
        raise ValueError(f"{bad[0].origin}: {bad[0].detail} ({len(bad)} bad line(s)); re-run the stage")
    if not rows and not allow_empty:
        raise ValueError(f"{path}: no records to train on")
    return rows


def read_tasks(path: Path, limit: int | None = None) -> list[InstantiatedTask]:
    """The tasks of a `datasets/tasks/<split>.jsonl` file (the rows' own columns, e.g. the expert's verdict,
    dropped), the first `limit` in file order (None: all)."""
    from lamops.records import TaskRow

    tasks = [row.task() for row in read_rows(path, TaskRow)]
    return tasks[:limit] if limit is not None else tasks


def digest(*parts: Any) -> str:
    """A short sha256 of JSON-able parts and of the files/folders among them (a Path: its bytes)."""
    sha = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for path in files:
                if "__pycache__" in path.parts:
                    continue
                name = path.relative_to(part).as_posix() if part.is_dir() else path.name
                sha.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        else:
            sha.update(json.dumps(part, sort_keys=True, default=str).encode() + b"\0")
    return sha.hexdigest()[:16]


def train_spec(cfg: Config, phase: str, *inputs: Any) -> TrainSpec:
    """The phase's TrainSpec. Its run name carries a fingerprint of `inputs` (data, base model, the phase's
    section), the hardware settings that shape a checkpoint and lamops' training code: a re-run of an
    interrupted phase with the same fingerprint resumes from its checkpoint; any change starts afresh."""
    from lamops.train.distributed import TrainSpec

    t = cfg.train
    package = Path(__file__).resolve().parents[1]
    code = [package / part for part in _TRAIN_CODE]
    key = digest(*inputs, t.deepspeed_config.name, t.backend, t.num_workers, t.use_gpu, *code)
    storage = t.storage_path if "://" in t.storage_path else str(cfg.path(t.storage_path).resolve())
    return TrainSpec(
        name=f"{phase}-{key}",
        deepspeed_config=cfg.path(t.deepspeed_config),
        storage_path=storage,
        backend=t.backend,
        num_workers=t.num_workers,
        use_gpu=t.use_gpu,
        cpus_per_worker=t.cpus_per_worker,
        checkpoint_every=t.checkpoint_every,
        max_failures=t.max_failures,
    )


def drop_checkpoints(cfg: Config, spec: TrainSpec) -> None:
    """Delete a finished run's checkpoints unless train.keep_checkpoints (its model is published)."""
    if cfg.train.keep_checkpoints:
        return
    if "://" in spec.storage_path:
        import pyarrow.fs

        filesystem, root = pyarrow.fs.FileSystem.from_uri(spec.storage_path)
        filesystem.delete_dir(f"{root.rstrip('/')}/{spec.name}")
    else:
        shutil.rmtree(Path(spec.storage_path) / spec.name, ignore_errors=True)


def log_history(tracked: StageRun, history: Sequence[dict[str, float]], title: str) -> None:
    """Per-step metrics (`train/<name>` at their optimizer step) and a figure of each curve."""
    import mlflow

    if not history:
        return
    names = [k for k in history[0] if k != "step"]
    for record in history:
        step = int(record["step"])
        mlflow.log_metrics(
            {f"train/{k}": float(v) for k, v in record.items() if k != "step" and v == v}, step=step
        )
    tracked.log_figure(_curves(history, names, title), "curves.png")


def _curves(history: Sequence[dict[str, float]], names: list[str], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history]
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        axis.plot(steps, [r.get(name, float("nan")) for r in history])
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def register(
    cfg: Config,
    model_dir: Path,
    name: str,
    *,
    data: Sequence[str],
    parent: tuple[str, Path] | None,
    example: tuple[str, str] | None,
    trained_on: Sequence[Path] = (),
    task: str = "text-generation",
    extra_tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Log `model_dir` in the active run and register it as a new version of `name`, tagged with the git
    commit, the dvc.lock hashes of `data` (paths relative to the root), the model's own sha and its
    parent's registered version (found by the parent folder's sha; "unregistered" when the parent folder
    was never registered, e.g. a stage run by hand on a copied model). `trained_on`: the files the model was
    trained on, whose digest is tagged too (a stage's own data is not in dvc.lock until the stage ends);
    `extra_tags`: more tags of the stage's own."""
    from lamops.registry.models import (
        MODEL_SHA_TAG,
        find_version,
        lineage_tags,
        log_and_register,
        model_sha,
    )
    from lamops.train.sft import read_lora_record

    tags = {**lineage_tags(cfg.root, list(data)), MODEL_SHA_TAG: model_sha(model_dir)}
    lora = read_lora_record(model_dir)
    if lora is not None:  # trained with LoRA, published merged: say so on the version
        tags[LORA_TAG] = json.dumps(lora, sort_keys=True)
    if trained_on:
        tags[TRAIN_DATA_TAG] = digest(*[Path(p) for p in trained_on])
    tags.update(extra_tags or {})
    parent_ref = None
    if parent is not None:
        parent_name, parent_dir = parent
        version = find_version(parent_name, MODEL_SHA_TAG, model_sha(parent_dir))
        parent_ref = f"{parent_name}/{version}" if version is not None else f"{parent_name}/unregistered"
    return log_and_register(
        model_dir, name, tags=tags, parent=parent_ref, signature_example=example, task=task
    )


def write_plan_library(rows: Sequence[Any], out_dir: Path) -> int | None:
    """The first steps of the step rows a phase trained on, as the model folder's plan library
    (`lamops.agents.plans`); the number of entries, or None for rows that are not steps (LAM1's plans)."""
    from lamops.agents.plans import PlanLibrary
    from lamops.records import StepSFTRow

    if not rows or not isinstance(rows[0], StepSFTRow):
        return None
    library = PlanLibrary.from_rows(rows)
    library.save(out_dir)
    return len(library)


def train_phase(
    cfg: Config,
    phase: str,
    registered: str,
    *,
    rows,
    base,
    tokenizer_dir,
    out_dir: Path,
    sft,
    data_files: list[Path],
    parent: tuple[str, Path] | None,
    extra_metrics: dict | None = None,
    tracked_hook=None,
) -> StageResult:
    """The SFT phases' common body (LAM1, LAM2, LAM3): train `base` on `rows` under Ray Train + DeepSpeed,
    log the run to MLflow and register the model as a new version of `registered`."""
    from lamops.tracking import stage_run
    from lamops.train.sft import train_sft

    start = time.perf_counter()
    base_key = base.model_dump(mode="json") if not isinstance(base, Path) else digest(base)
    spec = train_spec(cfg, phase, sft.model_dump(mode="json"), base_key, *data_files)
    with stage_run(cfg, phase, system_metrics=True) as tracked:
        tracked.log_params({"train": cfg.train.model_dump(mode="json"), "run_name": spec.name})
        if isinstance(base, Path):
            tracked.log_params({"base_model": str(base)})
        else:
            tracked.log_params({"model": base.model_dump(mode="json")})
        for path in data_files:
            tracked.log_dataset(path, rows[:50_000], path.parent.name + "_" + path.stem, "training")
        if tracked_hook is not None:
            tracked_hook(tracked)
        result = train_sft(rows, base, tokenizer_dir, out_dir, sft, spec)
        plans = write_plan_library(rows, out_dir)
        log_history(tracked, result.history, f"{phase} ({registered})")
        metrics = {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "tokens_per_s": result.tokens_per_s,
            "wall_s": result.wall_s,
            "samples": result.encode.samples,
            "tokens": result.encode.tokens,
            "target_tokens": result.encode.target_tokens,
            "prompts_truncated": result.encode.prompts_truncated,
            "completions_truncated": result.encode.completions_truncated,
            "resumed_from_step": result.resumed_from_step if result.resumed_from_step is not None else -1,
            **({"plan_library_entries": plans} if plans is not None else {}),
            **(extra_metrics or {}),
        }
        tracked.log_metrics(metrics)
        version = register(
            cfg,
            out_dir,
            registered,
            data=[str(cfg.datasets.out_dir)],
            parent=parent,
            example=(rows[0].prompt, rows[0].completion),
            trained_on=data_files,
        )
        drop_checkpoints(cfg, spec)
    resumed = (
        f", resumed from step {result.resumed_from_step}" if result.resumed_from_step is not None else ""
    )
    loss = f"{result.final_loss:.3f}" if result.final_loss is not None else "n/a"
    return StageResult(
        stage=phase,
        outputs=[str(out_dir)],
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        seconds=time.perf_counter() - start,
        message=f"{registered}: {result.steps} steps on {len(rows)} samples{resumed}, final loss {loss}, "
        f"registered as {version.model_uri}",
    )
