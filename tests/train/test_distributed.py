"""The distributed launcher: pure parts as unit tests, then a tiny MLP trained through `launch` with two Ray
Train workers and DeepSpeed ZeRO-2 on CPU (loss falls, metrics come back, checkpoints every N steps, a
second run of the same name resumes from the first one's last checkpoint and ends where an uninterrupted
run ends, no DeepSpeed op is JIT-built)."""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from helpers import ROOT

from lamops.train.distributed import (
    SPEC_KEY,
    TrainSpec,
    checkpoint_dir_name,
    ds_engine,
    latest_checkpoint_step,
    launch,
    load_checkpoint,
    rank_and_world_size,
    resolve_ds_config,
    save_checkpoint,
    should_checkpoint,
    spec_from,
    step_of_checkpoint,
    worker_env,
)

DS_CONFIGS = ROOT / "infra" / "deepspeed"


# ------------------------------------------------------------------------------------------ the train loop


def mlp(dim: int, hidden: int, depth: int):
    """A regression MLP: `dim` inputs, `depth` hidden layers of `hidden` units, one output."""
    import torch

    layers, width = [], dim
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden), torch.nn.Tanh()]
        width = hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))


def regression_loop(config: dict) -> dict:
    """Fit y = x·w on batches that depend only on (step, rank), so a resumed run sees the same data as an
    uninterrupted one. Reports the mean loss over ranks, a parameter checksum and timings."""
    import torch
    import torch.distributed as dist

    spec = spec_from(config)
    rank, _ = rank_and_world_size()
    torch.manual_seed(0)
    model = mlp(config["dim"], config["hidden"], config["depth"])
    started = time.perf_counter()
    engine = ds_engine(
        model,
        spec.deepspeed_config,
        partial(torch.optim.AdamW, lr=config["lr"]),
        micro_batch_size=config["batch"],
    )
    ds_init_s = time.perf_counter() - started
    # The shared-memory comm op is DeepSpeed's only JIT build on CPU (~45 s cold): it must not be built.
    import os

    extensions = Path(os.environ["TORCH_EXTENSIONS_DIR"])
    shm_op_built = any(extensions.glob("**/deepspeed_shm_comm*")) if extensions.is_dir() else False
    start_step = load_checkpoint(engine) or 0
    w_true = torch.randn(config["dim"], 1, generator=torch.Generator().manual_seed(1234))
    losses: list[float] = []
    step, window_start, window_steps = start_step, time.perf_counter(), 0
    while step < spec.max_steps:
        generator = torch.Generator().manual_seed(step * 1000 + rank)
        x = torch.randn(config["batch"], config["dim"], generator=generator)
        loss = torch.nn.functional.mse_loss(engine(x), x @ w_true)
        engine.backward(loss)
        engine.step()
        step += 1
        window_steps += 1
        losses.append(loss.item())
        if should_checkpoint(step, spec):
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            steps_per_s = window_steps / (time.perf_counter() - window_start)
            save_checkpoint(
                engine,
                step,
                {
                    "loss": mean_loss.item() / dist.get_world_size(),
                    "checksum": _checksum(engine.module),
                    "ds_init_s": ds_init_s,
                    "shm_op_built": float(shm_op_built),
                    "steps_per_s": steps_per_s,
                },
            )
            window_start, window_steps = time.perf_counter(), 0
    return {"start_step": start_step, "losses": losses, "checksum": _checksum(engine.module)}


def _checksum(module) -> float:
    return float(sum(p.detach().double().abs().sum() for p in module.parameters()))


TINY = {"dim": 8, "hidden": 32, "depth": 1, "batch": 16, "lr": 1e-2}


# ------------------------------------------------------------------------------------------------- unit


def _spec(tmp_path, **overrides) -> TrainSpec:
    fields = {
        "name": "t",
        "deepspeed_config": DS_CONFIGS / "zero2_cpu.json",
        "storage_path": str(tmp_path),
        "num_workers": 2,
        "checkpoint_every": 3,
        "max_steps": 7,
    }
    return TrainSpec(**(fields | overrides))


def test_spec_is_frozen_and_wants_an_absolute_storage_path(tmp_path):
    spec = _spec(tmp_path)
    with pytest.raises(ValueError):
        spec.num_workers = 1
    with pytest.raises(ValueError, match="num_workers is 2, not 1"):
        _spec(tmp_path, backend="local")
    with pytest.raises(ValueError, match="absolute"):
        _spec(tmp_path, storage_path="relative/runs")
    assert _spec(tmp_path, storage_path="s3://bucket/runs").storage_path == "s3://bucket/runs"
    assert spec_from({SPEC_KEY: spec.model_dump(mode="json")}) == spec
    with pytest.raises(KeyError, match="launch"):
        spec_from({})


def test_checkpoints_fall_every_n_steps_and_at_the_end(tmp_path):
    spec = _spec(tmp_path)
    assert [s for s in range(1, 8) if should_checkpoint(s, spec)] == [3, 6, 7]
    assert step_of_checkpoint(f"s3://b/run/{checkpoint_dir_name(42)}/") == 42
    assert step_of_checkpoint("/runs/checkpoint_2026-11-22") is None


def test_batch_sizes_are_derived_from_micro_batch_accumulation_and_world():
    raw = json.loads((DS_CONFIGS / "zero2_cpu.json").read_text())
    config = resolve_ds_config(raw, world_size=2, micro_batch_size=4, gradient_accumulation_steps=3)
    assert config["train_batch_size"] == 24
    assert config["zero_optimization"]["stage"] == 2
    with pytest.raises(ValueError, match="train_micro_batch_size_per_gpu"):
        resolve_ds_config(raw, world_size=2)
    with pytest.raises(ValueError, match="optimizer"):
        resolve_ds_config(raw | {"optimizer": {"type": "Adam"}}, world_size=1, micro_batch_size=1)


@pytest.mark.parametrize("path", sorted(DS_CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_config_resolves_without_naming_an_optimizer(path):
    config = resolve_ds_config(
        json.loads(path.read_text()), world_size=8, micro_batch_size=2, gradient_accumulation_steps=4
    )
    assert config["train_batch_size"] == 8 * 2 * 4
    assert ("bf16" in path.stem) == config.get("bf16", {}).get("enabled", False)  # the name says the dtype


def test_workers_get_offline_env_a_stable_extension_cache_and_a_share_of_the_cores(tmp_path):
    env = worker_env(_spec(tmp_path), total_cpus=16, environ={"DO_NOT_TRACK": "1"})
    assert env["OMP_NUM_THREADS"] == "8"
    assert env["HF_HUB_OFFLINE"] == "1" and env["DO_NOT_TRACK"] == "1"
    assert env["TORCH_EXTENSIONS_DIR"]
    env = worker_env(_spec(tmp_path, num_workers=4), total_cpus=2, environ={"TORCH_EXTENSIONS_DIR": "/x"})
    assert env["OMP_NUM_THREADS"] == "1" and env["TORCH_EXTENSIONS_DIR"] == "/x"


def test_no_checkpoint_in_an_empty_storage(tmp_path):
    assert latest_checkpoint_step(str(tmp_path), "nothing-here") is None


def test_launch_refuses_a_missing_deepspeed_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="infra/deepspeed"):
        launch(regression_loop, TINY, _spec(tmp_path, deepspeed_config=tmp_path / "missing.json"))


# -------------------------------------------------------------------------------------- through Ray Train


@pytest.fixture(scope="module")
def ray_session():
    """Ray for this module (local unless $RAY_ADDRESS); shut down at the end only if started here."""
    import ray

    from lamops.compute import ensure_ray

    started = not ray.is_initialized()
    ensure_ray()
    # Ray workers cannot import a test module by name (pytest put its folder on sys.path, not theirs): ship
    # the loop by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def runs(ray_session, tmp_path_factory):
    """Three launches with 2 workers and ZeRO-2: `full` runs 12 steps; `first` stops at 6 and `resumed`,
    the same name with max_steps 12, continues it. Checkpoints every 3 steps."""
    storage = str(tmp_path_factory.mktemp("runs"))
    spec = TrainSpec(
        name="full",
        deepspeed_config=DS_CONFIGS / "zero2_cpu.json",
        storage_path=storage,
        num_workers=2,
        checkpoint_every=3,
        max_steps=12,
        num_to_keep=None,
    )
    full = launch(regression_loop, TINY, spec)
    first = launch(regression_loop, TINY, spec.model_copy(update={"name": "split", "max_steps": 6}))
    resumed = launch(regression_loop, TINY, spec.model_copy(update={"name": "split"}))
    return {"storage": storage, "full": full, "first": first, "resumed": resumed}


@pytest.mark.slow
def test_loss_falls_and_metrics_come_back(runs):
    full = runs["full"]
    losses = full.return_value["losses"]
    assert len(losses) == 12 and full.resumed_from_step is None
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses
    assert full.metrics is not None and full.metrics["step"] == 12
    assert full.metrics["loss"] < losses[0]
    assert full.checkpoint_step == 12


@pytest.mark.slow
def test_a_checkpoint_is_written_every_n_steps(runs):
    run_dir = Path(runs["storage"]) / "full"
    kept = sorted(p.name for p in run_dir.glob("step_*"))
    assert kept == [checkpoint_dir_name(s) for s in (3, 6, 9, 12)]
    files = {p.name for p in (run_dir / checkpoint_dir_name(12)).rglob("*") if p.is_file()}
    # Both ranks' ZeRO-2 optimizer shards landed in the one checkpoint folder.
    assert {f for f in files if f.startswith("zero_pp_rank_")} == {
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    }, files
    assert latest_checkpoint_step(runs["storage"], "full") == 12


@pytest.mark.slow
def test_a_second_run_of_the_same_name_resumes_and_ends_where_an_unbroken_run_ends(runs):
    first, resumed, full = runs["first"], runs["resumed"], runs["full"]
    assert first.resumed_from_step is None and first.checkpoint_step == 6
    assert resumed.resumed_from_step == 6
    assert resumed.return_value["start_step"] == 6 and len(resumed.return_value["losses"]) == 6
    assert resumed.return_value["losses"] == pytest.approx(full.return_value["losses"][6:], rel=1e-5)
    assert resumed.metrics["checksum"] == pytest.approx(full.metrics["checksum"], rel=1e-6)


@pytest.mark.slow
def test_deepspeed_builds_no_op_on_the_way(runs):
    """Measured: a cold JIT build of the shm comm op costs ~45 s; with it disabled (the default) and torch's
    AdamW, nothing is compiled. Checked by what is on disk, not by timing (ds_init_s is printed only)."""
    for run in ("full", "first", "resumed"):
        assert runs[run].metrics["shm_op_built"] == 0.0, (run, runs[run].metrics)
        print(f"{run}: deepspeed.initialize {runs[run].metrics['ds_init_s']:.1f} s")


# ---------------------------------------------------------------------------------------- the local backend


def test_the_local_backend_trains_checkpoints_and_resumes_in_this_process(tmp_path):
    """`backend: local`: the same loop in the test's own process (no Ray Train), checkpoints every 3 steps
    with the oldest pruned to num_to_keep, and a second run of the same name resumes from the first one's last
    checkpoint and ends where an uninterrupted run ends."""
    import os

    import ray

    ray_before = ray.is_initialized()
    spec = _spec(tmp_path, name="full", backend="local", num_workers=1, max_steps=12, num_to_keep=2)
    full = launch(regression_loop, TINY, spec)
    first = launch(regression_loop, TINY, spec.model_copy(update={"name": "split", "max_steps": 6}))
    resumed = launch(regression_loop, TINY, spec.model_copy(update={"name": "split"}))
    assert ray.is_initialized() == ray_before, "the local backend started Ray"
    assert "LOCAL_RANK" not in os.environ, "the local backend leaked its launcher variables"

    losses = full.return_value["losses"]
    assert len(losses) == 12 and full.resumed_from_step is None and full.checkpoint_step == 12
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses
    assert full.metrics["step"] == 12 and full.metrics["shm_op_built"] == 0.0
    kept = sorted(p.name for p in (tmp_path / "full").glob("step_*"))
    assert kept == [checkpoint_dir_name(s) for s in (9, 12)]  # num_to_keep 2
    assert latest_checkpoint_step(str(tmp_path), "full") == 12

    assert first.checkpoint_step == 6 and resumed.resumed_from_step == 6
    assert resumed.return_value["start_step"] == 6
    assert resumed.return_value["losses"] == pytest.approx(losses[6:], rel=1e-5)
    assert resumed.metrics["checksum"] == pytest.approx(full.metrics["checksum"], rel=1e-6)
