"""Where work runs: in-process, or on Ray (a local Ray or the cluster in $RAY_ADDRESS).

Ray start-up (`ensure_ray`), the batch mapper over Ray Data (`map_batches`: batches of a list the driver
holds), the file mapper (`map_files`: Ray Data's reader opens the input files, local or `s3://`, in the
workers, which parse them and map the batches, so the driver never holds the corpus) and the worker pool
(`WorkerPool`: stateful workers on Ray tasks that reuse Ray's processes, or on dedicated actors). The
per-record functions are the same either way; `workers` only picks the executor, and `reads_where_data_lies`
says when a stage should take the file path (on a cluster or for an `s3://` input). The bottom layer: it
imports nothing of lamops."""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

_RETRIES = 2  # re-runs of a batch whose worker process died (on a new one, or its actor restarted)
# The error of an item whose worker kept dying (out of memory, say): callers run it again on resume.
LOST = "the worker process died while running the task"
_READS_PER_WORKER = 8  # map_files: read tasks per worker, at most one per file
_RANGES_PER_WORKER = 4  # stream_files: byte ranges of a JSON Lines file per worker
_FILES_PER_BLOCK = 512  # stream_files: files per read block, at least one block per worker


class RaySettings(Protocol):
    """What ensure_ray reads of a settings object (lamops.config.RayConfig)."""

    address: str | None
    num_cpus: int | None


def ensure_ray(cfg: RaySettings | None = None) -> None:
    """Start (or connect to) Ray once per process: params' address, else $RAY_ADDRESS, else local."""
    import ray

    if ray.is_initialized():
        return
    address = (cfg.address if cfg else None) or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=cfg.num_cpus if cfg else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def map_batches(
    fn: Callable[[list[Any]], list[Any]],
    items: list[Any],
    *,
    workers: int,
    ray_cfg: RaySettings | None = None,
    batch_size: int = 256,
) -> list[Any]:
    """`fn` applied to consecutive batches of `items`, results concatenated in order.

    workers 0 runs in-process; otherwise the batches go through Ray Data (`workers` concurrent tasks), so a
    cluster spreads them over its nodes. `fn` must be a module-level function of picklable records."""
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if workers == 0 or len(batches) <= 1:
        return [out for batch in batches for out in fn(batch)]
    import ray.data

    ensure_ray(ray_cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # One row per batch, pickled, so that Ray Data moves bytes and never guesses an Arrow schema.
    rows = [{"index": i, "batch": pickle.dumps(batch)} for i, batch in enumerate(batches)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _apply,
        fn_kwargs={"fn": fn},
        batch_size=1,
        batch_format="pandas",
        compute=ray.data.TaskPoolStrategy(size=workers),
        num_cpus=1,
    )
    results: dict[int, list[Any]] = {}
    for row in dataset.iter_rows():
        results[int(row["index"])] = pickle.loads(row["batch"])
    return [out for i in range(len(batches)) for out in results[i]]


def _apply(frame, fn: Callable[[list[Any]], list[Any]]):
    """Ray Data map function: unpickle each batch, apply `fn`, pickle the result."""
    frame = frame.copy()
    frame["batch"] = [pickle.dumps(fn(pickle.loads(b))) for b in frame["batch"]]
    return frame


# ---- files read by Ray Data ------------------------------------------------------------------------------
@dataclass
class FileOutput:
    """What `map_files` made of one input file."""

    uri: str
    records: int  # records `parse` made of the file
    rejected: list[Any]  # what `parse` turned away (each naming file and line)
    results: list[Any]  # `fn`'s outputs for the file's records, in order


def reads_where_data_lies(ray_cfg: RaySettings | None, uris: Sequence[str] = ()) -> bool:
    """Whether a stage should read its input files with `map_files` rather than in the driver: on a Ray
    cluster (params' address or $RAY_ADDRESS, unless it is "local") or when an input is on S3. A local run
    on local files keeps the driver-side list: its files are small and Ray Data's planning costs more than
    it saves there."""
    address = (ray_cfg.address if ray_cfg else None) or os.environ.get("RAY_ADDRESS")
    return bool(address and address != "local") or any(u.startswith("s3://") for u in uris)


def map_files(
    fn: Callable[[list[Any]], list[Any]],
    uris: Sequence[str],
    *,
    parse: Callable[[bytes, str], tuple[list[Any], list[Any]]],
    workers: int,
    ray_cfg: RaySettings | None = None,
    batch_size: int = 256,
    s3_endpoint_url: str | None = None,
) -> list[FileOutput]:
    """`fn` applied to consecutive batches of the records of each file of `uris` (local paths or
    `s3://bucket/key`), one FileOutput per file in the order of `uris`.

    `parse(data, uri)` turns a file's bytes into (records, rejected): a line it cannot read goes to
    rejected, naming file and line, and the caller decides whether that fails the stage. workers 0 reads
    and maps in-process; otherwise `ray.data.read_binary_files` reads the files in Ray tasks (`workers` at a
    time) and each task parses its files and maps their batches there, so only `fn`'s outputs come back to
    the driver (a local file whose name is not UTF-8, which pyarrow cannot open, is read in the driver).
    Parallelism is across files (up to 8 read tasks per worker, each taking whole files), so a corpus
    should be stored as several files (shards). S3 goes through pyarrow's S3FileSystem at
    `s3_endpoint_url` (else $AWS_ENDPOINT_URL, else AWS); credentials in the driver's AWS_* variables travel
    with it, otherwise each node finds its own (its environment, ~/.aws, instance role). `fn` and `parse`
    must be module-level functions (or partials of them) of picklable records."""
    uris = list(uris)
    if not uris:
        return []
    filesystem, paths = _filesystem(uris, s3_endpoint_url)
    if workers == 0:
        return [
            _map_file(fn, parse, uri, _read(filesystem, path), batch_size)
            for uri, path in zip(uris, paths, strict=True)
        ]
    import ray.data

    ensure_ray(ray_cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    out: dict[int, FileOutput] = {}
    # A local name that is not UTF-8 (bytes Python holds as lone surrogates) cannot pass through pyarrow:
    # the driver reads those few files itself.
    readable = {}
    for i, path in enumerate(paths):
        if filesystem is None and not _utf8(path):
            out[i] = _map_file(fn, parse, uris[i], _read(None, path), batch_size)
        else:
            readable[path] = i
    if readable:
        dataset = ray.data.read_binary_files(
            list(readable),
            include_paths=True,
            filesystem=filesystem,
            # Several read tasks per worker balance uneven files; not one per file: many small files
            # would each pay a task's overhead.
            override_num_blocks=min(len(readable), _READS_PER_WORKER * workers),
        ).map_batches(
            _map_files_batch,
            fn_kwargs={"fn": fn, "parse": parse, "index": readable, "uris": uris, "batch_size": batch_size},
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
        for row in dataset.iter_rows():
            out[int(row["file"])] = pickle.loads(row["output"])
    missing = [uris[i] for i in range(len(uris)) if i not in out]
    if missing:  # two uris naming one file (Ray Data reads it once), or a reader that skipped a file
        raise RuntimeError(f"map_files: no output for {len(missing)} file(s), first: {missing[0]}")
    return [out[i] for i in range(len(uris))]


def _filesystem(uris: Sequence[str], s3_endpoint_url: str | None) -> tuple[Any, list[str]]:
    """(pyarrow filesystem, paths on it) of `uris`: all local or all on S3."""
    on_s3 = [u.startswith("s3://") for u in uris]
    if not any(on_s3):
        return None, [os.path.abspath(u) for u in uris]
    if not all(on_s3):
        raise ValueError("map_files: input files must be all local or all on s3://, not a mix")
    from pyarrow import fs

    endpoint = s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    env = os.environ
    options: dict[str, Any] = {
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        "connect_timeout": 5,
        "request_timeout": 30,
    }
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        # Ray workers do not see variables set after Ray started; the driver's boto3 calls use these too.
        options.update(
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            session_token=env.get("AWS_SESSION_TOKEN") or None,
        )
    return fs.S3FileSystem(**{k: v for k, v in options.items() if v is not None}), [u[5:] for u in uris]


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read(filesystem: Any, path: str) -> bytes:
    if filesystem is None:
        with open(path, "rb") as f:
            return f.read()
    with filesystem.open_input_stream(path) as f:
        return f.read()


def _map_file(fn, parse, uri: str, data: bytes, batch_size: int) -> FileOutput:
    records, rejected = parse(data, uri)
    results = [out for i in range(0, len(records), batch_size) for out in fn(records[i : i + batch_size])]
    return FileOutput(uri, len(records), list(rejected), results)


def _map_files_batch(frame, fn, parse, index: dict[str, int], uris: list[str], batch_size: int):
    """Ray Data map function over read_binary_files' rows (path, bytes): parse and map each file."""
    import pandas as pd

    files, outputs = [], []
    for path, data in zip(frame["path"], frame["bytes"], strict=True):
        i = index[path]
        files.append(i)
        outputs.append(pickle.dumps(_map_file(fn, parse, uris[i], data, batch_size)))
    return pd.DataFrame({"file": files, "output": outputs})


def stream_files(
    worker_cls: type,
    worker_args: tuple,
    method: str,
    uris: Sequence[str],
    *,
    workers: int,
    lines: bool = False,
    ray_cfg: RaySettings | None = None,
    batch_size: int = 16,
    s3_endpoint_url: str | None = None,
) -> Iterator[Any]:
    """`worker.<method>(records)` over the records of `uris` (local paths, on a file system the Ray workers
    share, or `s3://bucket/key`), read by Ray Data in the workers; yields the outputs one by one, in input
    order, as they stream back (so the driver holds neither the input nor all outputs).

    A record is (path, text of one line) with `lines` (JSON Lines, one record per non-blank line: each file
    goes to the workers as byte ranges cut at line ends, about 4 per worker, which they read themselves),
    else (path, bytes of the whole file) (`read_binary_files`: one record per file). `workers` Ray actors
    (Ray Data's actor pool, one CPU each) each build `worker_cls(*worker_args)` once and take batches of
    `batch_size` records; `method` returns one output per record, any picklable value. An exception in
    `method` fails the stream after Ray Data's retries (there is no per-item recovery as in `WorkerPool`:
    callers write what came back before, so a re-run resumes). S3 as in `map_files`."""
    uris = list(uris)
    if not uris:
        return
    import ray.data

    ensure_ray(ray_cfg)
    filesystem, paths = _filesystem(uris, s3_endpoint_url)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if lines:
        # Ray Data reads a file as one block and hands an actor whole blocks, so one tasks.jsonl would go to
        # a single actor: the files go as byte ranges cut at line ends (the driver reads a few bytes around
        # each cut, never the lines), and the worker that takes a range reads it.
        cuts = [
            {"path": uri, "start": start, "end": end}
            for uri, path in zip(uris, paths, strict=True)
            for start, end in _line_ranges(filesystem, path, _RANGES_PER_WORKER * workers)
        ]
        if not cuts:
            return
        dataset = ray.data.from_items(cuts, override_num_blocks=len(cuts))
    else:
        dataset = ray.data.read_binary_files(
            paths,
            include_paths=True,
            filesystem=filesystem,
            # Few large blocks: each costs the actor pool a round of scheduling (measured: 40 files in 16
            # blocks 14.6 s, in 2 blocks 4.8 s on 2 local workers).
            override_num_blocks=min(len(paths), max(workers, math.ceil(len(paths) / _FILES_PER_BLOCK))),
            # Reading is I/O: the read tasks reserve no CPU, else `workers` actors holding every CPU of a
            # small cluster would leave none to read with, and the stream would wait forever.
            num_cpus=0,
        )
    dataset = dataset.map_batches(
        _StreamWorker,
        fn_constructor_args=(worker_cls, worker_args, method, batch_size, filesystem if lines else None),
        batch_size=1 if lines else batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    dataset.context.execution_options.preserve_order = True
    for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
        for out in batch["out"]:
            yield pickle.loads(out)


class _StreamWorker:
    """Ray Data's callable class of `stream_files`: one worker per actor, pickled outputs. Its rows are
    files read by Ray Data (path, bytes), or byte ranges of JSON Lines files (path, start, end) that it
    reads itself, through `filesystem` (None: local) and maps in batches of `batch_size` lines."""

    def __init__(self, worker_cls: type, worker_args: tuple, method: str, batch_size: int, filesystem: Any):
        self.call = getattr(worker_cls(*worker_args), method)
        self.batch_size, self.filesystem = batch_size, filesystem

    def __call__(self, frame):
        import pandas as pd

        if "bytes" in frame:
            records = list(zip(frame["path"], frame["bytes"], strict=True))
            outputs = self.call(records)
        else:
            records, outputs = [], []
            for uri, start, end in zip(frame["path"], frame["start"], frame["end"], strict=True):
                path = uri[5:] if self.filesystem is not None else uri
                text = _read_range(self.filesystem, path, int(start), int(end)).decode("utf-8")
                lines = [(uri, line) for line in text.splitlines() if line.strip()]
                for i in range(0, len(lines), self.batch_size):
                    outputs.extend(self.call(lines[i : i + self.batch_size]))
                records.extend(lines)
        if len(outputs) != len(records):
            raise RuntimeError(f"stream_files: {len(outputs)} outputs for {len(records)} records")
        return pd.DataFrame({"out": [pickle.dumps(o) for o in outputs]})


def _read_range(filesystem: Any, path: str, start: int, end: int) -> bytes:
    if filesystem is None:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)
    with filesystem.open_input_file(path) as f:
        return f.read_at(end - start, start)


def _line_ranges(filesystem: Any, path: str, parts: int) -> list[tuple[int, int]]:
    """About `parts` byte ranges of a file that together cover it, each ending after a newline (or at the
    end of the file); reads a few KiB around each cut."""
    size = os.path.getsize(path) if filesystem is None else (filesystem.get_file_info(path).size or 0)
    cuts = [0]
    for k in range(1, parts):
        at = max(cuts[-1], size * k // parts)
        while 0 < at < size:  # move the cut past the next newline
            chunk = _read_range(filesystem, path, at, min(size, at + 4096))
            newline = chunk.find(b"\n")
            if newline >= 0:
                at += newline + 1
                break
            at += len(chunk)
        cuts.append(min(at, size))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


# ---- batches over actors -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Put:
    """A large worker argument, put in the object store once and fetched by each actor."""

    ref: Any


class _Host:
    """The Ray actor around a worker, which it builds on its first call (and again after a restart).

    The worker's arguments come with every call rather than to the constructor: Ray warns (at error level)
    that a restart may fail whenever a constructor receives an object ref, and the refs here live as long as
    the pool that holds them."""

    def __init__(self, worker_cls: type):
        self.worker_cls = worker_cls
        self.worker = None

    def ready(self, args: list[Any]) -> None:
        if self.worker is None:
            import ray

            self.worker = self.worker_cls(*(ray.get(a.ref) if isinstance(a, _Put) else a for a in args))

    def call(self, args: list[Any], method: str, payload: Any) -> Any:
        self.ready(args)
        return getattr(self.worker, method)(payload)


# In a Ray worker process: the workers built there by the latest pools, by pool id (see WorkerPool).
_BUILT: dict[str, Any] = {}
_BUILT_KEPT = 2  # pools whose workers a process keeps: two pools alive at once do not rebuild each other's


def _pooled_call(pool_id: str, spec: _Put, method: str | None, payload: Any, after: Any = None) -> tuple:
    """The Ray task of a pool that shares processes: build the pool's worker in this process unless it is
    there already (`spec`: its class and arguments, fetched only then), then call `method` (None: build
    only). Returns (the result, a token): the token is the `after` of the slot's next task, which Ray
    starts only once this one has finished."""
    worker = _BUILT.get(pool_id)
    if worker is None:
        import ray

        while len(_BUILT) >= _BUILT_KEPT:  # the oldest pool's worker goes (its pool is closed by now)
            _BUILT.pop(next(iter(_BUILT)))
        worker_cls, args = ray.get(spec.ref)
        worker = _BUILT[pool_id] = worker_cls(*args)
    return (None if method is None else getattr(worker, method)(payload)), None


class WorkerPool:
    """Workers that take batches: one in-process object (workers 0), or `workers` on Ray, one CPU each.

    On Ray the batches are Ray tasks in `workers` slots: each slot is a chain in which a task waits (in Ray)
    for the previous one's token, so at most `workers` run at once while each slot's next batch is already
    submitted (no worker waits for the driver between two batches). A task builds the pool's worker in its
    Ray worker process on that process's first batch and keeps it for the next; Ray keeps its worker
    processes between tasks, so the next pool (the judge after execute, a second run in the same session)
    starts on processes that have imported everything already, where an actor per worker cost a new
    process each (~0.6 s of CPU: on 2 cores, a tenth of the default execute stage). Idle processes hold no
    CPU, so Ray Train or Ray Data can run next. A process keeps the workers of the last two pools, so they
    must be light (an environment, a template library); a worker that holds a model sets `dedicated` and gets
    Ray actors of its own, killed when the pool closes so that its memory goes with them.

    Workers start when the pool is made (asynchronously: the caller can prepare its work meanwhile). A batch
    whose process dies is run again (`max_retries`, `max_task_retries`) on a new one; a batch whose worker
    keeps dying is split into single items, and an item that still kills its worker goes to `on_lost`."""

    DEPTH = 2  # batches queued per worker, so a worker never waits for the driver between two

    def __init__(self, worker_cls: type, worker_args: tuple, workers: int, *, dedicated: bool = False):
        self.workers = workers
        self.actors: list[Any] = []
        self._args: list[Any] = []
        self._task = self._spec = None
        self._ready: list[Any] = []
        if workers == 0:
            self.local = worker_cls(*worker_args)
            return
        import uuid

        import ray

        ensure_ray()
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise RuntimeError("the Ray cluster has no CPU to place a worker on; start it with num_cpus >= 1")
        if workers > cpus:
            log.warning("%d workers asked for, but Ray has %d CPUs: using %d", workers, cpus, cpus)
            self.workers = cpus
        if dedicated:
            # Dicts (the template library) go to the object store once, not with every call.
            self._args = [_Put(ray.put(a)) if isinstance(a, dict) else a for a in worker_args]
            remote = ray.remote(_Host).options(num_cpus=1, max_restarts=-1, max_task_retries=_RETRIES)
            self.actors = [remote.remote(worker_cls) for _ in range(self.workers)]
            for actor in self.actors:
                actor.ready.remote(self._args)  # build the workers now, while the caller prepares the work
            return
        self._id = uuid.uuid4().hex
        # The class and its arguments go to the object store once; a task fetches them only to build.
        self._spec = _Put(ray.put((worker_cls, worker_args)))
        self._task = ray.remote(_pooled_call).options(num_cpus=1, max_retries=_RETRIES, num_returns=2)
        # Build the workers now, while the caller prepares the work: one slot per worker, each a chain of
        # tasks (see `map`).
        self._ready = [self._submit(None, None, None)[1] for _ in range(self.workers)]

    def _submit(self, method: str | None, payload: Any, after: Any) -> tuple[Any, Any]:
        """(result ref, token ref) of a task that Ray starts once the token `after` is there."""
        return self._task.remote(self._id, self._spec, method, payload, after)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.actors:
            import ray

            for actor in self.actors:
                ray.kill(actor)
        self.actors, self._args, self._task, self._ready, self._spec = [], [], None, [], None

    def map(
        self,
        method: str,
        items: Sequence[Any],
        *,
        batch_size: int,
        on_result: Callable[[int, list[Any], Any], None],
        on_lost: Callable[[int, Any, str], None],
        load: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        """Call `worker.<method>(load(batch))` on consecutive batches of `items`; each result goes to
        `on_result(index of the batch's first item, batch, result)` in this process as it arrives.

        In-process the batches run in order. On Ray, batches shrink towards the end (guided self-scheduling:
        at most 1/(2 x workers) of what is left) so that no worker is left with a long tail."""
        load = load or (lambda batch: batch)
        if not self.actors and self._task is None:
            for start in range(0, len(items), batch_size):
                batch = list(items[start : start + batch_size])
                on_result(start, batch, getattr(self.local, method)(load(batch)))
            return

        import ray
        from ray.exceptions import (
            GetTimeoutError,
            ObjectLostError,
            OutOfMemoryError,
            RayActorError,
            RayError,
            WorkerCrashedError,
        )

        n = self.workers
        next_index = 0
        retry: deque[tuple[int, list[Any]]] = deque()
        # ref -> (slot, first item's index, batch, the token of the slot's previous task or None)
        in_flight: dict[Any, tuple[int, int, list[Any], Any]] = {}
        queued = [0] * n
        # Tasks: each slot is a chain, every task waiting (in Ray, not here) for the token of the one before,
        # so at most `workers` run at once while the next batch of each is already submitted.
        last = self._ready or [None] * n
        self._ready = []

        def take() -> tuple[int, list[Any]] | None:
            nonlocal next_index
            if retry:
                return retry.popleft()
            remaining = len(items) - next_index
            if remaining <= 0:
                return None
            size = min(batch_size, max(1, math.ceil(remaining / (2 * n))))
            start, next_index = next_index, next_index + size
            return start, list(items[start:next_index])

        def fill() -> None:
            for a in range(n):
                while queued[a] < self.DEPTH and (job := take()) is not None:
                    start, batch = job
                    prev = None
                    if self.actors:
                        ref = self.actors[a].call.remote(self._args, method, load(batch))
                    else:
                        prev = last[a]
                        ref, last[a] = self._submit(method, load(batch), prev)
                    in_flight[ref] = (a, start, batch, prev)
                    queued[a] += 1

        def failed(token: Any) -> bool:
            """Whether a task's token holds an error (the task failed); False while it has not finished."""
            try:
                ray.get(token, timeout=0)
            except GetTimeoutError:
                return False
            except RayError:
                return True
            return False

        fill()
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            a, start, batch, prev = in_flight.pop(ref)
            queued[a] -= 1
            try:
                result = ray.get(ref)
            except (RayActorError, WorkerCrashedError, ObjectLostError, OutOfMemoryError) as e:
                if prev is not None and failed(prev):
                    # Never ran: the slot's previous task failed, and Ray fails what waits on it.
                    retry.appendleft((start, batch))
                elif len(batch) > 1:
                    log.warning("workers died %d times on a batch: re-running it item by item", _RETRIES + 1)
                    retry.extendleft(reversed([(start + i, [x]) for i, x in enumerate(batch)]))
                else:
                    on_lost(start, batch[0], f"{type(e).__name__}: {str(e).splitlines()[0]}")
                if not self.actors:
                    last[a] = None  # the slot starts a new chain: its tokens hold the error now
            else:
                fill()  # the next batch before this one's result is handled
                on_result(start, batch, result)
            fill()
