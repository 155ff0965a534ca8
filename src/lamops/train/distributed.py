"""Run a training loop on Ray Train workers, each wrapping its model in a DeepSpeed engine.

The driver side is `launch(train_loop, loop_config, spec)`: one `TorchTrainer` over `spec.num_workers` workers
(gloo on CPU, nccl on GPU), storage and retries from `spec`, and automatic resume: a run that finds a
checkpoint left in `spec.storage_path` by an earlier run of the same `spec.name` starts from it.

`spec.backend == "local"` runs the same loop in the calling process as the only worker (world size 1, a
single-process gloo/nccl group, no Ray start-up: ~15-20 s saved per phase on 2 cores), with the same
checkpoint cadence, storage layout (`<storage>/<name>/step_XXXXXXXX`, local or s3://), retries and resume. It
is for one-machine debugging and the test suite's small profile; Ray Train stays the default.

The worker side is three helpers a train loop calls: `ds_engine` (DeepSpeed with the JSON config from
`infra/deepspeed/`), `save_checkpoint` (DeepSpeed checkpoint reported to Ray Train) and `load_checkpoint`
(the step to resume from, or None). A loop reads its spec back with `spec_from(config)`:

    def train_loop(config):
        spec = spec_from(config)
        engine = ds_engine(model, spec.deepspeed_config, lambda p: torch.optim.AdamW(p, lr=1e-3),
                           micro_batch_size=config["micro_batch_size"])
        step = load_checkpoint(engine) or 0
        while step < spec.max_steps:
            ...; engine.backward(loss); engine.step(); step += 1
            if should_checkpoint(step, spec):
                save_checkpoint(engine, step, {"loss": loss.item()})
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# The key under which `launch` hands the spec to the loop, next to the loop's own configuration.
SPEC_KEY = "_lamops_train_spec"
# The key of the Ray queue through which rank 0 sends progress records to the driver's progress bar.
PROGRESS_KEY = "_lamops_progress"
_progress_queue: Any = None  # set on each worker by _worker_entry
_local: _LocalRun | None = None  # set while a `backend: local` loop runs in this process
# The local backend's record of its latest complete checkpoint, next to the checkpoint folders.
LOCAL_LATEST_FILE = "lamops_latest_checkpoint.json"
# Environment variables the workers inherit from the driver when set there (offline hubs, telemetry off).
FORWARDED_ENV = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_HOME",
    "TOKENIZERS_PARALLELISM",
    "DO_NOT_TRACK",
    "RAY_USAGE_STATS_ENABLED",
    "MLFLOW_TRACKING_URI",
    "LAMOPS_PROGRESS",
)
# DeepSpeed JIT-builds its ops (shared-memory allreduce ~45 s, FusedAdam / CPUAdam ~60 s) into this folder;
# a stable one lets every run after the first load them in well under a second.
DEFAULT_TORCH_EXTENSIONS_DIR = Path.home() / ".cache" / "lamops" / "torch_extensions"
# Set to 1 to use DeepSpeed's shared-memory allreduce on CPU (JIT-built once, then cached). Off by default:
# gloo is enough for models that fit on a CPU, and the build costs ~45 s on a cold cache.
SHM_COMM_ENV = "LAMOPS_DS_SHM_COMM"
_CHECKPOINT_DIR = re.compile(r"step_(\d+)$")
_CHECKPOINT_TAG = "ds"


class TrainSpec(BaseModel):
    """Where and how a training phase runs: hardware and scale, never hyperparameters."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Run name; a later run of the same name in storage_path resumes it.")
    deepspeed_config: Path = Field(description="DeepSpeed JSON config, one of infra/deepspeed/*.json.")
    storage_path: str = Field(description="Absolute local folder or s3:// URI for checkpoints and results.")
    backend: Literal["ray", "local"] = Field(
        default="ray", description="ray: Ray Train workers; local: the loop in this process, one worker."
    )
    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (one process each).")
    use_gpu: bool = Field(default=False, description="One GPU per worker and nccl, else CPU and gloo.")
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs Ray reserves for each worker.")
    checkpoint_every: int = Field(default=100, ge=1, description="Steps between checkpoints.")
    max_steps: int | None = Field(
        default=None,
        ge=1,
        description="Optimizer steps the run stops at. None: the phase's own plan (its epochs or max_steps); "
        "the trainers set it to their planned steps before they launch (`launch` needs it set).",
    )
    max_failures: int = Field(default=0, ge=-1, description="Restarts after a failure; -1: no limit.")
    num_to_keep: int | None = Field(default=2, ge=1, description="Checkpoints kept in storage; None = all.")

    @field_validator("storage_path")
    @classmethod
    def _absolute_or_uri(cls, value: str) -> str:
        if "://" in value:
            return value
        if not os.path.isabs(value):
            raise ValueError(f"storage_path must be absolute or a URI (Ray Train requires it), got {value!r}")
        return value

    @model_validator(mode="after")
    def _local_is_one_worker(self) -> TrainSpec:
        if self.backend == "local" and self.num_workers != 1:
            raise ValueError(
                f"backend 'local' runs one worker in this process; num_workers is {self.num_workers}, not 1"
            )
        return self


class LaunchResult(BaseModel):
    """What a `launch` left behind."""

    name: str
    path: str = Field(description="The run folder in storage (local path or URI).")
    metrics: dict[str, Any] | None = Field(description="Metrics of the last checkpointed report.")
    checkpoint_path: str | None = Field(description="The latest checkpoint, None if none was reported.")
    checkpoint_step: int | None = Field(description="The step of the latest checkpoint.")
    resumed_from_step: int | None = Field(description="The checkpoint step this run started from, if any.")
    return_value: Any = Field(default=None, description="What the train loop returned on rank 0.")
    wall_s: float


# ---------------------------------------------------------------------------------------------- pure parts


def should_checkpoint(step: int, spec: TrainSpec) -> bool:
    """A checkpoint is due every `checkpoint_every` steps and at the last step."""
    return step % spec.checkpoint_every == 0 or step == spec.max_steps


def checkpoint_dir_name(step: int) -> str:
    """The checkpoint's folder name in storage; its step is readable from it."""
    return f"step_{step:08d}"


def step_of_checkpoint(path: str) -> int | None:
    """The step encoded in a checkpoint folder name (see `checkpoint_dir_name`), None for other names."""
    match = _CHECKPOINT_DIR.search(path.rstrip("/"))
    return int(match.group(1)) if match else None


def resolve_ds_config(
    raw: dict[str, Any],
    *,
    world_size: int,
    micro_batch_size: int | None = None,
    gradient_accumulation_steps: int | None = None,
) -> dict[str, Any]:
    """The DeepSpeed config with its batch sizes filled in: `train_batch_size = micro × grad_acc × world`.

    Values given here override the file's; "auto" (or absent) in the file needs a value here. The file must
    not name an optimizer: the loop passes one (DeepSpeed's own would JIT-build FusedAdam for ~60 s)."""
    if "optimizer" in raw:
        raise ValueError(
            "the DeepSpeed config names an optimizer; remove it and pass optimizer_factory to ds_engine "
            "(a DeepSpeed optimizer is JIT-compiled on first use, and learning rates belong to the recipe)"
        )
    config = {k: v for k, v in raw.items() if not k.startswith("_")}
    micro = micro_batch_size if micro_batch_size is not None else raw.get("train_micro_batch_size_per_gpu")
    accumulation = (
        gradient_accumulation_steps
        if gradient_accumulation_steps is not None
        else raw.get("gradient_accumulation_steps", 1)
    )
    for key, value in (
        ("train_micro_batch_size_per_gpu", micro),
        ("gradient_accumulation_steps", accumulation),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} is {value!r}; set it in the DeepSpeed config or pass it to ds_engine")
    config["train_micro_batch_size_per_gpu"] = micro
    config["gradient_accumulation_steps"] = accumulation
    config["train_batch_size"] = micro * accumulation * world_size
    return config


def worker_env(spec: TrainSpec, total_cpus: float, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for each worker: the driver's offline/telemetry settings, one stable
    TORCH_EXTENSIONS_DIR, and OMP threads = the cluster's CPUs shared out among the workers."""
    environ = dict(os.environ if environ is None else environ)
    env = {k: environ[k] for k in FORWARDED_ENV if k in environ}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["TORCH_EXTENSIONS_DIR"] = environ.get("TORCH_EXTENSIONS_DIR", str(DEFAULT_TORCH_EXTENSIONS_DIR))
    env[SHM_COMM_ENV] = environ.get(SHM_COMM_ENV, "0")
    env["OMP_NUM_THREADS"] = environ.get("OMP_NUM_THREADS", str(max(1, int(total_cpus // spec.num_workers))))
    return env


# ---------------------------------------------------------------------------------------------- driver


def launch(train_loop: Callable[[dict], Any], loop_config: dict, spec: TrainSpec) -> LaunchResult:
    """Run `train_loop(config)` on `spec.num_workers` Ray Train workers and wait for it.

    `config` is `loop_config` plus the spec (read it back with `spec_from`). Ray is the one in $RAY_ADDRESS
    or a local one. When storage already holds a checkpoint of a run named `spec.name`, the loop's
    `load_checkpoint` returns its step and training continues from there."""
    if not spec.deepspeed_config.is_file():
        raise FileNotFoundError(f"DeepSpeed config {spec.deepspeed_config} not found; see infra/deepspeed/")
    if spec.max_steps is None:
        raise ValueError(f"launch {spec.name!r}: spec.max_steps is not set (the trainer plans it)")
    if spec.backend == "local":
        return _launch_local(train_loop, loop_config, spec)
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from lamops.compute import ensure_ray

    ensure_ray()
    started = time.perf_counter()
    resumed_from = latest_checkpoint_step(spec.storage_path, spec.name)
    if resumed_from is not None:
        log.info("train run %r resumes from its checkpoint at step %d", spec.name, resumed_from)
    else:
        log.info("train run %r starts from scratch", spec.name)
    env = worker_env(spec, ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    config = {**loop_config, SPEC_KEY: spec.model_dump(mode="json")}
    progress = _ProgressBar(spec, resumed_from) if _show_progress() else None
    if progress is not None:
        config[PROGRESS_KEY] = progress.queue
    trainer = TorchTrainer(
        partial(_worker_entry, train_loop),
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if spec.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec.num_workers,
            use_gpu=spec.use_gpu,
            resources_per_worker={"CPU": spec.cpus_per_worker, **({"GPU": 1} if spec.use_gpu else {})},
        ),
        run_config=ray.train.RunConfig(
            name=spec.name,
            storage_path=spec.storage_path,
            failure_config=ray.train.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=spec.num_to_keep),
            worker_runtime_env={"env_vars": env},
        ),
    )
    try:
        result = trainer.fit()
    finally:
        if progress is not None:
            progress.close()
    checkpoint = result.checkpoint
    return LaunchResult(
        name=spec.name,
        path=str(result.path),
        metrics=dict(result.metrics) if result.metrics is not None else None,
        checkpoint_path=checkpoint.path if checkpoint else None,
        checkpoint_step=step_of_checkpoint(checkpoint.path) if checkpoint else None,
        resumed_from_step=resumed_from,
        return_value=getattr(result, "return_value", None),
        wall_s=time.perf_counter() - started,
    )


def latest_checkpoint_step(storage_path: str, name: str) -> int | None:
    """The step of the newest checkpoint that Ray Train recorded for run `name` in `storage_path`.

    Reads Ray Train's run snapshot (what its own restore reads), so a half-written checkpoint of a crashed
    run is never taken for the latest."""
    import pyarrow.fs

    filesystem, root = _filesystem(storage_path)
    snapshot = f"{root.rstrip('/')}/{name}/checkpoint_manager_snapshot.json"
    if filesystem.get_file_info(snapshot).type == pyarrow.fs.FileType.NotFound:
        local = _LocalStore(storage_path, name, None).latest()  # a `backend: local` run's checkpoints
        return local[0] if local is not None else None
    with filesystem.open_input_stream(snapshot) as stream:
        state = json.loads(stream.read().decode("utf-8"))
    latest = state.get("latest_checkpoint_result") or {}
    step = (latest.get("metrics") or {}).get("step")
    return int(step) if step is not None else step_of_checkpoint(latest.get("checkpoint_dir_name", ""))


def _worker_entry(train_loop: Callable[[dict], Any], config: dict) -> Any:
    """Per-worker set-up before the user's loop: torch threads, DeepSpeed's JIT ops, the progress queue."""
    import torch

    global _progress_queue
    _progress_queue = config.get(PROGRESS_KEY)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if os.environ.get(SHM_COMM_ENV, "0") != "1":
        _disable_shm_comm_op()
    return train_loop(config)


def _disable_shm_comm_op() -> None:
    """Keep DeepSpeed on CPU from JIT-building its shared-memory allreduce (~45 s cold): its TorchBackend
    builds the op only when the op is marked compatible, and plain gloo allreduce works without it."""
    import deepspeed.ops
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    deepspeed.ops.__compatible_ops__[ShareMemCommBuilder.NAME] = False


def _show_progress() -> bool:
    from lamops.progress import show_progress

    return show_progress()


class _ProgressBar:
    """A progress bar on the driver, fed by rank 0 through a Ray queue (works on a cluster: no shared files).
    Records arrive as `publish_progress` sends them; a full queue drops records rather than slow training."""

    def __init__(self, spec: TrainSpec, resumed_from: int | None):
        import threading

        from ray.util.queue import Queue
        from tqdm import tqdm

        self.queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})
        self._bar = tqdm(total=spec.max_steps, initial=resumed_from or 0, desc=spec.name, unit="step")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                record = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue actor is gone: no more progress to show
                return
            _show_record(self._bar, record)

    def close(self) -> None:
        import ray

        self._stop.set()
        self._thread.join(timeout=5)
        self._bar.close()
        ray.kill(self.queue.actor)


# ---------------------------------------------------------------------------------------------- in the loop


def publish_progress(record: dict[str, float]) -> None:
    """Send one progress record (its `step` and metrics) to the driver's progress bar; call on rank 0.
    A no-op without a bar (LAMOPS_PROGRESS=0) and when the queue is full."""
    if _progress_queue is None:
        return
    try:
        _progress_queue.put_nowait(dict(record))
    except Exception:  # Full, or the driver is gone: progress is never worth failing training for
        pass


def spec_from(config: dict) -> TrainSpec:
    """The `TrainSpec` that `launch` put into the loop's config."""
    if SPEC_KEY not in config:
        raise KeyError(
            f"config has no {SPEC_KEY!r}: is this loop running under lamops.train.distributed.launch?"
        )
    return TrainSpec.model_validate(config[SPEC_KEY])


def ds_engine(
    model: torch.nn.Module,
    config_path: str | Path,
    optimizer_factory: Callable[[Any], torch.optim.Optimizer],
    lr_scheduler: Any = None,
    *,
    micro_batch_size: int | None = None,
    gradient_accumulation_steps: int | None = None,
    overrides: dict[str, Any] | None = None,
):
    """`model` wrapped by `deepspeed.initialize` with the JSON config at `config_path`, top-level keys of
    `overrides` (a recipe's own settings, e.g. gradient_clipping) replacing the file's.

    `optimizer_factory(parameters)` builds the optimizer (torch AdamW on CPU: no JIT build). Batch sizes come
    from the arguments, else from the file; `train_batch_size` is derived for the current world size. Call it
    inside a `launch`ed loop, where Ray Train has already set up torch.distributed."""
    import deepspeed
    import torch.distributed as dist

    raw = {**json.loads(Path(config_path).read_text()), **(overrides or {})}
    world_size = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
    config = resolve_ds_config(
        raw,
        world_size=world_size,
        micro_batch_size=micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    parameters = [p for p in model.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=parameters,
        optimizer=optimizer_factory(parameters),
        lr_scheduler=lr_scheduler,
        config=config,
        dist_init_required=not dist.is_initialized(),
    )
    return engine


def save_checkpoint(engine, step: int, metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
    """Write the DeepSpeed checkpoint of `engine` at `step` and report it, with `metrics`, to Ray Train;
    `state` (JSON-able, e.g. PPO's KL coefficient) is saved with it and comes back from `resume_state`.

    Every rank calls this: each writes its own ZeRO shards into a local temporary folder and Ray Train merges
    the ranks' folders into one checkpoint in storage."""
    with tempfile.TemporaryDirectory(prefix="lamops-ckpt-") as folder:
        engine.save_checkpoint(folder, tag=_CHECKPOINT_TAG, client_state={**(state or {}), "step": step})
        if _local is not None:
            _local.report(folder, step, {**metrics, "step": step})
            return
        import ray.train

        ray.train.report(
            {**metrics, "step": step},
            checkpoint=ray.train.Checkpoint.from_directory(folder),
            checkpoint_dir_name=checkpoint_dir_name(step),
        )


def load_checkpoint(engine) -> int | None:
    """Load the run's latest checkpoint into `engine` (model, optimizer, scheduler) and return its step;
    None when the run starts from scratch. Every rank calls this."""
    restored = resume_state(engine)
    return restored[0] if restored is not None else None


def resume_state(engine) -> tuple[int, dict[str, Any]] | None:
    """`load_checkpoint` that also returns the `state` saved with the checkpoint: (step, state), or None."""
    if _local is not None:
        latest = _local.store.latest()
        if latest is None:
            return None
        where = _local.store.uri(latest[1])
        with _local.store.local_copy(latest[1]) as folder:
            path, client_state = engine.load_checkpoint(folder, tag=_CHECKPOINT_TAG)
    else:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        where = checkpoint.path
        with checkpoint.as_directory() as folder:
            path, client_state = engine.load_checkpoint(folder, tag=_CHECKPOINT_TAG)
    if path is None:
        raise RuntimeError(f"DeepSpeed found no checkpoint tagged {_CHECKPOINT_TAG!r} in {where}")
    state = dict(client_state or {})
    step = int(state.pop("step"))
    log.info("resumed from the checkpoint at step %d (%s)", step, where)
    return step, state


def grad_norm(engine) -> float:
    """The last step's global gradient norm (0.0 is a real value, e.g. all PPO advantages zero), NaN when
    DeepSpeed reports none."""
    norm = engine.get_global_grad_norm()
    return float("nan") if norm is None else float(norm)


def rank_and_world_size() -> tuple[int, int]:
    """This worker's rank and the world size: Ray Train's context, or (0, 1) under the local backend."""
    if _local is not None:
        return 0, 1
    import ray.train

    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()


def is_local() -> bool:
    """True while a `backend: local` loop runs in this process."""
    return _local is not None


# ---------------------------------------------------------------------------------------------- local backend


def _filesystem(storage_path: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(
        storage_path if "://" in storage_path else Path(storage_path).as_uri()
    )


class _LocalStore:
    """The local backend's checkpoints: `<storage>/<name>/step_XXXXXXXX/` folders (local or any pyarrow
    filesystem, e.g. s3://) and LOCAL_LATEST_FILE, written after a folder is complete: it is the commit point,
    so a checkpoint half-copied by a crash is never resumed from."""

    def __init__(self, storage_path: str, name: str, num_to_keep: int | None):
        self.filesystem, root = _filesystem(storage_path)
        self.root = f"{root.rstrip('/')}/{name}"
        self.storage_path, self.name, self.num_to_keep = storage_path.rstrip("/"), name, num_to_keep

    def uri(self, dir_name: str = "") -> str:
        return f"{self.storage_path}/{self.name}" + (f"/{dir_name}" if dir_name else "")

    def latest(self) -> tuple[int, str, dict[str, Any]] | None:
        """(step, folder name, metrics) of the latest complete checkpoint, or None."""
        import pyarrow.fs

        marker = f"{self.root}/{LOCAL_LATEST_FILE}"
        if self.filesystem.get_file_info(marker).type == pyarrow.fs.FileType.NotFound:
            return None
        with self.filesystem.open_input_stream(marker) as stream:
            record = json.loads(stream.read().decode("utf-8"))
        return int(record["step"]), str(record["checkpoint_dir_name"]), dict(record.get("metrics") or {})

    def put(self, folder: str, step: int, metrics: dict[str, Any]) -> str:
        """Copy the checkpoint `folder` in as step `step`, then mark it the latest and drop the oldest ones
        beyond num_to_keep. Returns its URI."""
        import pyarrow.fs

        dir_name = checkpoint_dir_name(step)
        target = f"{self.root}/{dir_name}"
        self.filesystem.create_dir(self.root, recursive=True)
        if self.filesystem.get_file_info(target).type != pyarrow.fs.FileType.NotFound:
            self.filesystem.delete_dir(target)  # a crash's leftover at this step, never marked complete
        pyarrow.fs.copy_files(
            folder,
            target,
            source_filesystem=pyarrow.fs.LocalFileSystem(),
            destination_filesystem=self.filesystem,
        )
        record = json.dumps({"step": step, "checkpoint_dir_name": dir_name, "metrics": metrics}, default=str)
        marker = f"{self.root}/{LOCAL_LATEST_FILE}"
        if isinstance(self.filesystem, pyarrow.fs.LocalFileSystem):
            from lamops.io import write_atomic

            write_atomic(Path(marker), record.encode("utf-8"))
        else:  # an object store's PUT is atomic
            with self.filesystem.open_output_stream(marker) as stream:
                stream.write(record.encode("utf-8"))
        self._prune(keep=dir_name)
        return self.uri(dir_name)

    def _prune(self, keep: str) -> None:
        if self.num_to_keep is None:
            return
        import pyarrow.fs

        found = self.filesystem.get_file_info(pyarrow.fs.FileSelector(self.root))
        steps = sorted(
            (step_of_checkpoint(info.path), info.path)
            for info in found
            if info.type == pyarrow.fs.FileType.Directory and step_of_checkpoint(info.path) is not None
        )
        for _, path in steps[: max(0, len(steps) - self.num_to_keep)]:
            if not path.rstrip("/").endswith(keep):
                self.filesystem.delete_dir(path)

    def local_copy(self, dir_name: str):
        """A context manager: the checkpoint as a local folder (itself on a local filesystem, else a
        downloaded temporary copy)."""
        import contextlib

        import pyarrow.fs

        source = f"{self.root}/{dir_name}"
        if isinstance(self.filesystem, pyarrow.fs.LocalFileSystem):
            return contextlib.nullcontext(source)

        @contextlib.contextmanager
        def downloaded():
            with tempfile.TemporaryDirectory(prefix="lamops-ckpt-") as folder:
                pyarrow.fs.copy_files(
                    source,
                    folder,
                    source_filesystem=self.filesystem,
                    destination_filesystem=pyarrow.fs.LocalFileSystem(),
                )
                yield folder

        return downloaded()


class _LocalRun:
    """What the helpers above need while a local loop runs: its store and the last reported metrics."""

    def __init__(self, store: _LocalStore):
        self.store = store
        self.metrics: dict[str, Any] | None = None

    def report(self, folder: str, step: int, metrics: dict[str, Any]) -> None:
        self.store.put(folder, step, metrics)
        self.metrics = metrics


def _show_record(bar, record: dict[str, float]) -> None:
    """Move a phase's progress bar to the record's step and show its loss, tokens/s and reward."""
    bar.n = int(record.get("step", bar.n))
    bar.set_postfix(
        {k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "tokens_per_s", "reward")}, refresh=False
    )
    bar.refresh()


class _LocalProgress:
    """The driver's progress bar fed directly (the loop runs in this process): `publish_progress` calls
    `put_nowait` as it would on the Ray queue."""

    def __init__(self, spec: TrainSpec, resumed_from: int | None):
        from tqdm import tqdm

        self._bar = tqdm(total=spec.max_steps, initial=resumed_from or 0, desc=spec.name, unit="step")

    def put_nowait(self, record: dict[str, float]) -> None:
        _show_record(self._bar, record)

    def close(self) -> None:
        self._bar.close()


_LOCAL_RANK_ENV = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}


def _init_local_group(spec: TrainSpec) -> None:
    """A one-process torch.distributed group (kept for the process's lifetime: DeepSpeed's communication
    backend holds on to it, and every later local run reuses it)."""
    import torch.distributed as dist

    if dist.is_initialized():
        if dist.get_world_size() != 1:
            raise RuntimeError(
                f"backend 'local' needs a one-process torch.distributed group; this process already has "
                f"one of {dist.get_world_size()}"
            )
        return
    dist.init_process_group("nccl" if spec.use_gpu else "gloo", store=dist.HashStore(), rank=0, world_size=1)


def _launch_local(train_loop: Callable[[dict], Any], loop_config: dict, spec: TrainSpec) -> LaunchResult:
    """`launch` for `spec.backend == "local"`: the loop in this process, retried from its latest checkpoint
    up to `spec.max_failures` times."""
    global _local, _progress_queue

    started = time.perf_counter()
    store = _LocalStore(spec.storage_path, spec.name, spec.num_to_keep)
    latest = store.latest()
    resumed_from = latest[0] if latest is not None else None
    if resumed_from is not None:
        log.info("train run %r resumes from its checkpoint at step %d (local)", spec.name, resumed_from)
    else:
        log.info("train run %r starts from scratch (local)", spec.name)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(DEFAULT_TORCH_EXTENSIONS_DIR))
    if os.environ.get(SHM_COMM_ENV, "0") != "1":
        _disable_shm_comm_op()
    _init_local_group(spec)
    config = {**loop_config, SPEC_KEY: spec.model_dump(mode="json")}
    progress = _LocalProgress(spec, resumed_from) if _show_progress() else None
    failures = 0
    run = _LocalRun(store)
    _local, _progress_queue = run, progress
    # DeepSpeed's engine reads the launcher's variables (LOCAL_RANK at least); set for this run only, so that
    # nothing started later from this process (Ray, a subprocess) inherits them.
    saved = {key: os.environ.get(key) for key in _LOCAL_RANK_ENV}
    os.environ.update(_LOCAL_RANK_ENV)
    try:
        while True:
            try:
                value = train_loop(config)
                break
            except Exception:
                if spec.max_failures != -1 and failures >= spec.max_failures:
                    raise
                failures += 1
                log.warning(
                    "train run %r failed; restart %d from its latest checkpoint",
                    spec.name,
                    failures,
                    exc_info=True,
                )
    finally:
        _local, _progress_queue = None, None
        for key, before in saved.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before
        if progress is not None:
            progress.close()
    latest = store.latest()
    return LaunchResult(
        name=spec.name,
        path=store.uri(),
        metrics=run.metrics if run.metrics is not None else (latest[2] if latest else None),
        checkpoint_path=store.uri(latest[1]) if latest else None,
        checkpoint_step=latest[0] if latest else None,
        resumed_from_step=resumed_from,
        return_value=value,
        wall_s=time.perf_counter() - started,
    )
