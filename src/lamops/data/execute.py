"""Stage logic of `execute`: the expert runs every instantiated task, one environment per Ray worker.

Like UFO's dataflow executor, no LLM is asked per step: the expert grounds each plan step and acts. Judging is
the next stage, so trajectories are stored without a verdict. Output folder, keyed by task id:

    trajectories/<task_id>.json  the Trajectory (verdict None, timing fields zeroed: see below)
    documents/<task_id>.docx     the final document (normalised: the same episode gives the same bytes)
    settings.json                what else the trajectories depend on: settings, template and code hashes
    timings.jsonl                seconds and step latencies per task id, sorted; the one file that varies

Trajectory files hold `seconds` and `latency` as 0.0 and the measured values go to timings.jsonl, so the
same tasks give byte-identical trajectories and documents on every run (DVC can cache them) while no timing
is lost. The folder persists between runs: a task whose trajectory is already there for the same task,
settings, templates and code is not run again, and files of task ids no longer asked for are removed.

The driver does all file I/O (workers return bytes), so workers need no shared file system. Every file is
written through a temp file and a rename, the document before its trajectory, and a trajectory is only
trusted when its document is there: a crash at any moment leaves no partial file and loses nothing."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lamops.compute import LOST, WorkerPool
from lamops.env.observation import PromptView
from lamops.io import write_atomic
from lamops.records import InstantiatedTask, Trajectory

log = logging.getLogger(__name__)

TRAJECTORIES = "trajectories"
DOCUMENTS = "documents"
SETTINGS_FILE = "settings.json"
TIMINGS_FILE = "timings.jsonl"
_JOURNAL = ".timings.journal.jsonl"  # timings appended as tasks finish, merged into TIMINGS_FILE at the end
# Comments added during an episode carry the wall-clock time; saved documents carry this one instead.
COMMENT_DATE = "2024-01-01T00:00:00Z"  # the templates' own comments carry the same
# Sources whose change can change a trajectory: a change invalidates every stored trajectory.
_CODE = ("env", "agents/expert.py", "records.py", "data/execute.py")


class ExecuteSummary(BaseModel):
    """What one `execute_tasks` call did."""

    model_config = ConfigDict(extra="forbid")

    tasks: int = Field(description="Tasks asked for; the output folder holds one trajectory for each.")
    run: int = Field(description="Tasks the expert ran in this call.")
    resumed: int = Field(description="Tasks whose stored trajectory was still valid, so not run again.")
    removed: int = Field(description="Task ids no longer asked for whose files were removed.")
    failed_to_run: int = Field(description="Tasks of this call the environment could not run (error set).")
    seconds: float = Field(description="Wall-clock time of the call, Ray start-up excluded.")
    trajectories_per_s: float = Field(description="Tasks run per second of wall-clock time (run / seconds).")
    workers: int = Field(description="Ray workers used (at most that many at once); 0 when run in-process.")


@dataclass(frozen=True)
class BatchDone:
    """Passed to `on_batch` after each finished batch: progress, and which worker process ran it."""

    size: int
    done: int
    worker_pid: int


@dataclass
class TaskOutput:
    """What a worker returns for one task: the files' content, and timings kept out of them."""

    task_id: str
    trajectory: bytes
    document: bytes | None
    seconds: float
    latencies: list[float] = field(default_factory=list)
    failed_to_run: bool = False


# ---- the work, the same in-process and in a Ray worker -------------------------------------------------
def document_path(task_id: str) -> str:
    """Where a task's final document lies, relative to the output folder (stored in the trajectory)."""
    return f"{DOCUMENTS}/{task_id}.docx"


class _NormalisedEntries:
    """python-docx's physical package writer interface, writing entries as `normalize_docx_bytes` does."""

    def __init__(self, zf: zipfile.ZipFile):
        from lamops.env import templates

        self.zf, self.t = zf, templates

    def write(self, pack_uri, blob: bytes) -> None:
        info = zipfile.ZipInfo(pack_uri.membername, date_time=self.t._ZIP_DATE_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = self.t._ZIP_EXTERNAL_ATTR
        info.create_system = self.t._ZIP_CREATE_SYSTEM
        self.zf.writestr(info, blob, compresslevel=self.t._ZIP_COMPRESSLEVEL)


def document_bytes(live) -> bytes:
    """The episode's document as reproducible .docx bytes, equal to `normalize_docx_bytes` of a save: fixed
    comment dates and zip metadata.

    Built in one pass from python-docx's package writer, where saving and then normalising compressed every
    part twice (a save was two thirds of a task's time)."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.pkgwriter import PackageWriter
    from docx.oxml.ns import qn

    # Found through the relationship, not `doc.comments`, which would add a comments part to a document
    # without one.
    for rel in live.doc.part.rels.values():
        if rel.reltype == RT.COMMENTS and not rel.is_external:
            for el in rel.target_part.element.iter(qn("w:comment")):
                el.set(qn("w:date"), COMMENT_DATE)
    package = live.doc.part.package
    for part in package.parts:
        part.before_marshal()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        # PackageWriter.write of python-docx 1.x, with our writer in place of its zip writer.
        entries = _NormalisedEntries(zf)
        PackageWriter._write_content_types_stream(entries, package.parts)
        PackageWriter._write_pkg_rels(entries, package.rels)
        PackageWriter._write_parts(entries, package.parts)
    return out.getvalue()


def run_task(env, agent, task: InstantiatedTask) -> TaskOutput:
    """Run one task; any failure of the environment becomes a trajectory with `error` set, never a raise."""
    t0 = time.perf_counter()
    traj: Trajectory | None = None
    document = None
    failed = False
    try:
        traj = agent.run(env, task, verify=False)
        document = document_bytes(env.live)
    except Exception as e:  # a broken template or an environment bug must not end the stage
        log.warning("task %s: the environment failed: %s: %s", task.task_id, type(e).__name__, e)
        failed = True
        reason = f"the environment failed to run the task: {type(e).__name__}: {e}"
        traj = (traj or Trajectory(task=task, agent=agent.name)).model_copy(update={"error": reason})
    seconds = time.perf_counter() - t0
    stored = traj.model_copy(
        update={
            "steps": [s.model_copy(update={"latency": 0.0}) for s in traj.steps],
            "seconds": 0.0,
            "verdict": None,
            "final_document": document_path(task.task_id) if document is not None else None,
        }
    )
    return TaskOutput(
        task_id=task.task_id,
        trajectory=(stored.model_dump_json() + "\n").encode("utf-8"),
        document=document,
        seconds=seconds,
        latencies=[s.latency for s in traj.steps],
        failed_to_run=failed,
    )


class ExecuteWorker:
    """One environment over the template library and one expert; in a Ray worker process or in-process."""

    def __init__(self, templates: dict[str, bytes], max_steps: int, view: PromptView, min_score: float):
        from lamops.agents.expert import ExpertAgent
        from lamops.env.word import WordEnv

        self.env = WordEnv(templates, max_steps=max_steps, view=view)
        self.agent = ExpertAgent(min_score=min_score)

    def run_batch(self, tasks: list[InstantiatedTask]) -> tuple[int, list[TaskOutput]]:
        """(this process's id, one output per task)."""
        return os.getpid(), [run_task(self.env, self.agent, t) for t in tasks]


@dataclass(frozen=True)
class Resumed:
    """A worker's answer for a task whose stored trajectory is still valid (`execute_task_file`)."""

    task_id: str


class ExecuteFileWorker(ExecuteWorker):
    """ExecuteWorker over the lines of instantiate's tasks.jsonl as Ray Data reads them: parses each line and
    runs its task unless the trajectory stored in `out_dir` (on the file system the workers share) is still
    valid for it, as the driver decides on the other path."""

    def __init__(
        self, templates: dict[str, bytes], max_steps: int, view: PromptView, min_score: float, out_dir: str
    ):
        super().__init__(templates, max_steps, view, min_score)
        self.out_dir = Path(out_dir)

    def run_lines(self, records: list[tuple[str, str]]) -> list[TaskOutput | Resumed]:
        out: list[TaskOutput | Resumed] = []
        for path, line in records:
            try:
                task = InstantiatedTask.model_validate_json(line)
            except ValueError as e:
                detail = str(e).splitlines()[0]
                raise ValueError(
                    f"{path}: a malformed task line ({detail}); instantiate wrote and validated this file, "
                    "so it was damaged since: run instantiate again"
                ) from None
            if _is_resumable(self.out_dir / TRAJECTORIES / f"{task.task_id}.json", task, self.out_dir):
                out.append(Resumed(task.task_id))
            else:
                out.append(run_task(self.env, self.agent, task))
        return out


# ---- the output folder ---------------------------------------------------------------------------------
def code_fingerprint() -> str:
    """sha256 over the sources a trajectory depends on (environment, expert, records, this module)."""
    import lamops

    root = Path(lamops.__file__).parent
    h = hashlib.sha256()
    for rel in _CODE:
        path = root / rel
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _settings(max_steps: int, view: PromptView, min_score: float, shas: dict[str, str]) -> dict:
    return {
        "agent": "expert",
        "max_steps": max_steps,
        **view.model_dump(),
        "min_score": min_score,
        "templates": dict(sorted(shas.items())),
        "code": code_fingerprint(),
    }


def _is_resumable(path: Path, task: InstantiatedTask, out_dir: Path) -> bool:
    """A stored trajectory counts when it parses, is for this very task, and its document (if any) exists."""
    try:
        stored = Trajectory.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return False
    if stored.task != task or stored.verdict is not None or (stored.error or "").startswith(LOST):
        return False
    if stored.final_document is None:
        return True
    expected = document_path(task.task_id)
    return stored.final_document == expected and (out_dir / expected).is_file()


def _sweep(out_dir: Path, keep: Callable[[str], bool]) -> set[str]:
    """Remove from trajectories/ and documents/ the files of every task id `keep` refuses, and every temp
    file (a crashed run's); returns the task ids whose files were removed."""
    removed: set[str] = set()
    for folder, suffix in ((out_dir / TRAJECTORIES, ".json"), (out_dir / DOCUMENTS, ".docx")):
        for f in folder.iterdir():
            task_id = (
                f.name[: -len(suffix)] if f.name.endswith(suffix) and not f.name.startswith(".") else None
            )
            if task_id is not None:
                if keep(task_id):
                    continue
                removed.add(task_id)
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink()
    return removed


def _settle(out_dir: Path, settings: dict) -> tuple[bool, set[str]]:
    """Make the folders; when `settings` differ from the stored ones (or there are none), empty the folder
    and store them. Returns whether they were the same (stored trajectories may then be resumed) and the
    task ids whose files went with the old settings."""
    (out_dir / TRAJECTORIES).mkdir(parents=True, exist_ok=True)
    (out_dir / DOCUMENTS).mkdir(parents=True, exist_ok=True)
    settings_path = out_dir / SETTINGS_FILE
    try:
        same = json.loads(settings_path.read_text(encoding="utf-8")) == settings
    except (OSError, ValueError):
        same = False
    if same:
        return True, set()
    wiped = _sweep(out_dir, lambda _: False)
    for name in (TIMINGS_FILE, _JOURNAL):
        (out_dir / name).unlink(missing_ok=True)
    write_atomic(settings_path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())
    return False, wiped


def _prepare(out_dir: Path, tasks: Sequence[InstantiatedTask], settings: dict) -> tuple[list, int, int]:
    """Bring the folder in line with `tasks` and `settings`: (tasks to run, resumed, task ids removed)."""
    wanted = {t.task_id for t in tasks}
    same, wiped = _settle(out_dir, settings)
    # Everything went with old settings; only the task ids no longer asked for count as removed.
    removed = _sweep(out_dir, wanted.__contains__) if same else wiped - wanted
    traj_dir = out_dir / TRAJECTORIES
    to_run = [t for t in tasks if not _is_resumable(traj_dir / f"{t.task_id}.json", t, out_dir)]
    return to_run, len(tasks) - len(to_run), len(removed)


def _read_timings(path: Path) -> dict[str, dict]:
    """Timings by task id from a JSON Lines file; later lines win, a torn last line is skipped."""
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            out[entry["task_id"]] = entry
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _merge_timings(out_dir: Path, task_ids: set[str]) -> None:
    timings = _read_timings(out_dir / TIMINGS_FILE) | _read_timings(out_dir / _JOURNAL)
    lines = [json.dumps(timings[k], sort_keys=True) + "\n" for k in sorted(timings) if k in task_ids]
    write_atomic(out_dir / TIMINGS_FILE, "".join(lines).encode("utf-8"))
    (out_dir / _JOURNAL).unlink(missing_ok=True)


class _Writer:
    """Writes workers' outputs as they arrive (in the driver): document, then trajectory, then timing."""

    def __init__(self, out_dir: Path, total: int | None, resumed: int, progress: bool, on_batch) -> None:
        from tqdm import tqdm

        self.out_dir, self.on_batch = out_dir, on_batch
        self.done = self.failed = 0
        self.journal = (out_dir / _JOURNAL).open("a", encoding="utf-8")
        self.bar = tqdm(total=total, initial=resumed, unit="task", desc="execute", disable=not progress)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.journal.close()
        self.bar.close()

    def write(self, out: TaskOutput) -> None:
        doc = self.out_dir / document_path(out.task_id)
        if out.document is not None:
            write_atomic(doc, out.document)
        else:
            doc.unlink(missing_ok=True)
        write_atomic(self.out_dir / TRAJECTORIES / f"{out.task_id}.json", out.trajectory)
        timing = {"task_id": out.task_id, "seconds": out.seconds, "step_latency": out.latencies}
        self.journal.write(json.dumps(timing, sort_keys=True) + "\n")
        self.done += 1
        self.failed += out.failed_to_run

    def batch(self, _: int, tasks: list[InstantiatedTask], result: tuple[int, list[TaskOutput]]) -> None:
        pid, outputs = result
        for out in outputs:
            self.write(out)
        self.journal.flush()
        self.bar.update(len(outputs))
        if self.on_batch is not None:
            self.on_batch(BatchDone(size=len(outputs), done=self.done, worker_pid=pid))

    def lost(self, _: int, task: InstantiatedTask, why: str) -> None:
        traj = Trajectory(task=task, agent="expert", error=f"{LOST}: {why}")
        self.write(TaskOutput(task.task_id, (traj.model_dump_json() + "\n").encode(), None, 0.0, [], True))
        self.bar.update(1)


# ---- the stage function --------------------------------------------------------------------------------
def _library(templates_dir: Path, max_steps: int, view: PromptView, min_score: float) -> tuple[dict, dict]:
    """(the template library's bytes by name, the settings the trajectories depend on)."""
    from lamops.env.templates import load_library

    library = load_library(Path(templates_dir))
    templates = {name: info.path.read_bytes() for name, info in library.items()}
    return templates, _settings(max_steps, view, min_score, {n: i.sha256 for n, i in library.items()})


def _summary(
    tasks: int, writer: _Writer, resumed: int, removed: int, start: float, workers: int
) -> ExecuteSummary:
    seconds = time.perf_counter() - start
    return ExecuteSummary(
        tasks=tasks,
        run=writer.done,
        resumed=resumed,
        removed=removed,
        failed_to_run=writer.failed,
        seconds=seconds,
        trajectories_per_s=writer.done / seconds if seconds > 0 else 0.0,
        workers=workers,
    )


def execute_tasks(
    tasks: Sequence[InstantiatedTask],
    out_dir: Path,
    *,
    templates_dir: Path,
    workers: int,
    max_steps: int,
    view: PromptView,
    min_score: float,
    batch_size: int = 16,
    progress: bool = True,
    on_batch: Callable[[BatchDone], None] | None = None,
) -> ExecuteSummary:
    """Run the expert on every task not already done in `out_dir` (see the module docstring for the layout).

    workers 0 runs in-process; workers >= 1 runs that many Ray workers (Ray is started here unless it runs
    already; $RAY_ADDRESS connects to a cluster). `on_batch` is called in this process after every batch."""
    if workers < 0 or batch_size < 1:
        raise ValueError(f"execute: workers must be >= 0 and batch_size >= 1 (got {workers}, {batch_size})")
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
        raise ValueError(f"execute: task ids must be unique, repeated: {', '.join(dup)}")
    if workers:
        from lamops.compute import ensure_ray

        ensure_ray()  # before the clock starts: Ray start-up is once per process, not per stage
    start = time.perf_counter()
    out_dir = Path(out_dir)
    templates, settings = _library(templates_dir, max_steps, view, min_score)
    worker_args = (templates, max_steps, view, min_score)
    with WorkerPool(ExecuteWorker, worker_args, workers) as pool:
        to_run, resumed, removed = _prepare(out_dir, tasks, settings)  # while the workers start
        with _Writer(out_dir, len(tasks), resumed, progress, on_batch) as writer:
            pool.map("run_batch", to_run, batch_size=batch_size, on_result=writer.batch, on_lost=writer.lost)
    _merge_timings(out_dir, set(ids))
    return _summary(len(tasks), writer, resumed, removed, start, pool.workers)


def execute_task_file(
    source: Path,
    out_dir: Path,
    *,
    templates_dir: Path,
    workers: int,
    max_steps: int,
    view: PromptView,
    min_score: float,
    batch_size: int = 16,
    progress: bool = True,
    ray_cfg=None,
) -> tuple[ExecuteSummary, list[str]]:
    """`execute_tasks` of the tasks in `source` (instantiate's tasks.jsonl) where Ray Data reads the file in
    the workers, for a Ray cluster: the driver never holds the tasks, and still writes every output file
    (the same folder, byte for byte). Returns the summary and the task ids, in the order they came back.

    The workers must see `source` and `out_dir` (a file system the cluster shares): they parse the lines
    and decide which stored trajectories are still valid. Unlike `execute_tasks`, a malformed line or a
    repeated task id fails the stage after the work before it is written (a re-run resumes it), and a task
    whose worker keeps dying fails the stage instead of being written as lost."""
    from lamops.compute import ensure_ray, stream_files

    if workers < 1 or batch_size < 1:
        raise ValueError(f"execute: workers must be >= 1 and batch_size >= 1 (got {workers}, {batch_size})")
    ensure_ray(ray_cfg)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    templates, settings = _library(templates_dir, max_steps, view, min_score)
    _, wiped = _settle(out_dir, settings)
    _sweep(out_dir, lambda _: True)  # a crashed run's temp files
    ids: list[str] = []
    seen: set[str] = set()
    resumed = 0
    args = (templates, max_steps, view, min_score, str(out_dir.resolve()))
    outputs = stream_files(
        ExecuteFileWorker,
        args,
        "run_lines",
        [str(Path(source).resolve())],
        workers=workers,
        lines=True,
        ray_cfg=ray_cfg,
        batch_size=batch_size,
    )
    with _Writer(out_dir, None, 0, progress, None) as writer:
        for out in outputs:
            if out.task_id in seen:
                raise ValueError(f"execute: task ids must be unique, repeated: {out.task_id} ({source})")
            seen.add(out.task_id)
            ids.append(out.task_id)
            if isinstance(out, Resumed):
                resumed += 1
            else:
                writer.write(out)
            writer.bar.update(1)
            if len(ids) % batch_size == 0:
                writer.journal.flush()
    removed = (_sweep(out_dir, seen.__contains__) | wiped) - seen
    _merge_timings(out_dir, seen)
    return _summary(len(ids), writer, resumed, len(removed), start, workers), ids
