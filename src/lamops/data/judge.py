"""Stage logic of `judge`: complete yes / no / unsure for every trajectory the execute stage wrote.

A task with a family has a goal predicate: the verifier compares the pristine template with the saved final
document (and their canvases), exactly as `WordEnv.verify` does at the end of a live episode, and checks that
the document reopens. A task without one (an LLM's prefill) goes to the `Judge` role with what the paper's
judge reads: the request, the canvases before and after and their line diff, the control state before and
after, and the executed actions. A missing or unreadable final document is a "no".

Outputs, sorted by task id and written atomically:

    judged.jsonl                     one Trajectory with its verdict per line
    results/{pass,fail,unsure}.jsonl UFO result records, routed by `complete` as UFO's dataflow does

Workers (on Ray, or one in-process object) do the document work and return finished lines; the driver
reads the files, calls the judge role (so an LLM client lives in one process) and writes the outputs. Each
batch's lines go to a part file first, so the driver never holds all trajectories."""

from __future__ import annotations

import difflib
import io
import json
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lamops.compute import WorkerPool
from lamops.data.execute import TRAJECTORIES
from lamops.records import ResultRecord, Trajectory, TrajectoryStep, Verdict
from lamops.roles.protocols import Judge, JudgeInput

JUDGED_FILE = "judged.jsonl"
RESULTS_DIR = "results"
ROUTES = {"yes": "pass", "no": "fail", "unsure": "unsure"}  # verdict -> results/<route>.jsonl
NO_FAMILY = "no_family"  # by_family key of tasks judged by the judge role
_PARTS = ".parts"


class JudgeSummary(BaseModel):
    """What one `judge_trajectories` call decided. Dumps with the route names: pass, fail, unsure."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True)

    judged: int = Field(description="Trajectories judged.")
    pass_: int = Field(alias="pass", description="Verdict yes: routed to results/pass.jsonl.")
    fail: int = Field(description="Verdict no: routed to results/fail.jsonl.")
    unsure: int = Field(description="Verdict unsure: routed to results/unsure.jsonl.")
    by_family: dict[str, dict[str, int]] = Field(
        description=f"{{family: {{pass, fail, unsure}}}}; tasks without a family under {NO_FAMILY!r}."
    )
    seconds: float = Field(description="Wall-clock time of the call, Ray start-up excluded.")


@dataclass
class JudgeItem:
    """One trajectory sent to a worker: the file's bytes and its final document's (or why there is none)."""

    name: str  # the trajectory file, for error messages
    trajectory: bytes
    document: bytes | None
    missing: str = ""


@dataclass
class Judged:
    """A worker's answer: finished lines (verifier), or a case for the judge role (trajectory unjudged)."""

    family: str | None
    complete: str | None = None
    judged_line: bytes = b""
    result_line: bytes = b""
    case: JudgeInput | None = None
    trajectory: bytes = b""


# ---- helpers for the judge role's input -----------------------------------------------------------------
def _section(prompt: str, start: str, end: str) -> str:
    """The text of a prompt between two of its headers (see Observation.prompt)."""
    head, sep, rest = prompt.partition(start)
    if not sep:
        return ""
    return rest.partition(end)[0].strip("\n")


def control_state(prompt: str) -> str:
    """The control state an observation prompt shows: the available controls and the [ui] line."""
    controls = _section(prompt, "<Available Control Item:>", "<Canvas State:>")
    canvas = _section(prompt, "<Canvas State:>", "<User Request:>").splitlines()
    ui = next((line for line in canvas if line.startswith("[ui]")), "")
    return f"{controls}\n{ui}".strip("\n")


def action_line(s: TrajectoryStep) -> str:
    """One executed action as the judge reads it, e.g. `2. click_input Bold [19] {} -> ok: applied bold on`;
    `-> error` marks a refused one."""
    target = f" {s.control_name} [{s.control_label}]" if s.control_name else ""
    args = json.dumps(s.args, ensure_ascii=False, sort_keys=True)
    return f"{s.step}. {s.function}{target} {args} -> {'ok' if s.ok else 'error'}: {s.result}"


def canvas_diff(before: list[str], after: list[str]) -> str:
    return "\n".join(difflib.unified_diff(before, after, "before", "after", n=0, lineterm=""))


def _no(reason: str) -> Verdict:
    return Verdict(complete="no", reason=reason, sub_scores={"document_reopens": "no"})


# ---- the work, the same in-process and in a Ray worker -------------------------------------------------
@dataclass
class _Saved:
    """A saved document as `canvas_items` reads it. Episodes never write the styles part, so the style names
    are the template's, as in `WordEnv.verify` (a full LiveDocument would also snapshot every part, for undo:
    a third of the judge's time)."""

    doc: Any
    style_names: dict[str, str]


class JudgeWorker:
    """Judges trajectories against the template library; caches each template's document and canvas."""

    def __init__(self, templates: dict[str, bytes]):
        self.templates = templates
        self._before: dict[str, tuple] = {}
        self._env = None

    def _template(self, name: str) -> tuple:
        """(pristine Document, its canvas items, its style names) of a template, parsed once."""
        if name not in self._before:
            from lamops.env.canvas import canvas_items
            from lamops.env.document import LiveDocument

            live = LiveDocument(self.templates[name])  # read here, never edited
            self._before[name] = (live.doc, canvas_items(live), live.style_names)
        return self._before[name]

    def _initial_prompt(self, traj: Trajectory) -> str:
        if traj.steps:
            return traj.steps[0].prompt
        if traj.final_prompt:
            return traj.final_prompt  # no step ran: the last observation is the first
        if self._env is None:
            from lamops.env.word import WordEnv

            self._env = WordEnv(self.templates)
        return self._env.reset(traj.task).prompt(self._env.view)

    def judge_one(self, item: JudgeItem) -> Judged:
        import docx

        from lamops.env import verifier
        from lamops.env.canvas import canvas_items

        try:
            traj = Trajectory.model_validate_json(item.trajectory)
        except ValueError as e:
            raise ValueError(f"{item.name}: not a trajectory ({e}); re-run the execute stage") from None
        task = traj.task
        verdict: Verdict | None = None
        if item.document is None:
            verdict = _no(f"no final document: {item.missing}")
        elif task.template not in self.templates:
            verdict = Verdict(complete="unsure", reason=f"template {task.template!r} is not in the library")
        else:
            before, before_items, style_names = self._template(task.template)
            try:
                after = _Saved(docx.Document(io.BytesIO(item.document)), style_names)
                after_items = canvas_items(after)
            except Exception as e:  # any parse failure means the saved document is unusable
                verdict = _no(f"the final document does not reopen: {type(e).__name__}: {e}")
        if verdict is None:
            if task.family is None:
                lines_before = [ln for _, ln in before_items]
                lines_after = [ln for _, ln in after_items]
                case = JudgeInput(
                    request=task.request,
                    canvas_before="\n".join(lines_before),
                    canvas_after="\n".join(lines_after),
                    canvas_diff=canvas_diff(lines_before, lines_after),
                    controls_before=control_state(self._initial_prompt(traj)),
                    controls_after=control_state(traj.final_prompt),
                    actions=[action_line(s) for s in traj.steps],
                )
                return Judged(family=None, case=case, trajectory=item.trajectory)
            try:
                verdict = verifier.judge(task, before, after.doc, before_items, after_items)
            except Exception as e:  # e.g. a family this version does not know
                verdict = Verdict(complete="unsure", reason=f"the verifier failed: {type(e).__name__}: {e}")
            else:
                verdict.sub_scores["document_reopens"] = "yes"
        return finish(traj, verdict)

    def judge_batch(self, items: list[JudgeItem]) -> list[Judged]:
        return [self.judge_one(item) for item in items]

    def judge_files(self, records: list[tuple[str, bytes]]) -> list[Judged]:
        """`judge_batch` of trajectory files as Ray Data reads them (path, bytes): each file's document is
        read here, from the execute folder the file lies in (trajectories/<task_id>.json)."""
        return [self.judge_one(_item(Path(p), bytes(raw), Path(p).parent.parent)) for p, raw in records]


def finish(traj: Trajectory, verdict: Verdict) -> Judged:
    """The output lines of a judged trajectory."""
    traj = traj.model_copy(update={"verdict": verdict})
    return Judged(
        family=traj.task.family,
        complete=verdict.complete,
        judged_line=(traj.model_dump_json() + "\n").encode("utf-8"),
        result_line=(ResultRecord.from_trajectory(traj).model_dump_json() + "\n").encode("utf-8"),
    )


# ---- the stage function --------------------------------------------------------------------------------
def _item(path: Path, raw: bytes, traj_dir: Path) -> JudgeItem:
    """A trajectory file's bytes and the document it names (read here), or why there is none."""
    try:
        stored = json.loads(raw)
        final, error = stored.get("final_document"), stored.get("error")
    except (ValueError, AttributeError) as e:
        raise ValueError(f"{path}: not a trajectory file ({e}); re-run the execute stage") from e
    if not final:
        return JudgeItem(str(path), raw, None, f"the run stopped without one ({error or 'no reason given'})")
    try:
        return JudgeItem(str(path), raw, (traj_dir / final).read_bytes())
    except OSError as e:
        return JudgeItem(str(path), raw, None, f"{final} cannot be read ({type(e).__name__})")


def _loader(traj_dir: Path) -> Callable[[list[Path]], list[JudgeItem]]:
    """Reads a batch of trajectory files and the documents they name, in the driver: workers need no files."""

    def load(paths: list[Path]) -> list[JudgeItem]:
        return [_item(path, path.read_bytes(), traj_dir) for path in paths]

    return load


def judge_trajectories(
    traj_dir: Path,
    out_dir: Path,
    *,
    templates_dir: Path,
    judge: Judge,
    workers: int,
    progress: bool = True,
    batch_size: int = 16,
    read_in_workers: bool = False,
    ray_cfg=None,
) -> JudgeSummary:
    """Judge every trajectory in `traj_dir` (the execute stage's output folder: trajectories/ and the
    documents/ they name) into `out_dir` (see the module docstring). workers 0 runs in-process, workers >= 1
    on that many Ray workers (Ray is started here unless it runs already).

    `read_in_workers` (with workers >= 1; for a Ray cluster whose nodes share `traj_dir`'s file system):
    Ray Data reads the trajectory files and the workers their documents (compute.stream_files), so the
    driver reads none of them; the outputs are the same, byte for byte. A document that kills its worker
    then fails the stage instead of being judged "no"."""
    from tqdm import tqdm

    from lamops.env.templates import load_library

    if workers < 0 or batch_size < 1:
        raise ValueError(f"judge: workers must be >= 0 and batch_size >= 1 (got {workers}, {batch_size})")
    traj_dir, out_dir = Path(traj_dir), Path(out_dir)
    source = traj_dir / TRAJECTORIES
    if not source.is_dir():
        raise FileNotFoundError(f"judge: {source} does not exist; run the execute stage first")
    if workers:
        from lamops.compute import ensure_ray

        ensure_ray()
    start = time.perf_counter()
    library = load_library(Path(templates_dir))
    templates = {name: info.path.read_bytes() for name, info in library.items()}
    # The workers start while the work is listed.
    streaming = bool(read_in_workers and workers)
    with nullcontext() if streaming else WorkerPool(JudgeWorker, (templates,), workers) as pool:
        paths = sorted(
            (p for p in source.iterdir() if p.suffix == ".json" and not p.name.startswith(".")),
            key=lambda p: p.name[: -len(".json")],
        )
        parts = out_dir / _PARTS
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        counts = {route: 0 for route in ROUTES.values()}
        by_family: dict[str, dict[str, int]] = {}
        bar = tqdm(total=len(paths), unit="traj", desc="judge", disable=not progress)

        def on_result(first: int, batch: list[Path], results: list[Judged]) -> None:
            lines: dict[str, list[bytes]] = {"judged": [], **{r: [] for r in ROUTES.values()}}
            for path, r in zip(batch, results, strict=True):
                if r.case is not None:
                    try:
                        verdict = judge.judge(r.case)
                    except Exception as e:
                        raise RuntimeError(f"judge: the judge role failed on {path.name}: {e}") from e
                    r = finish(Trajectory.model_validate_json(r.trajectory), verdict)
                route = ROUTES[r.complete]
                lines["judged"].append(r.judged_line)
                lines[route].append(r.result_line)
                counts[route] += 1
                family = by_family.setdefault(r.family or NO_FAMILY, {k: 0 for k in ROUTES.values()})
                family[route] += 1
            for name, chunk in lines.items():
                if chunk:
                    (parts / f"{first:09d}.{name}.jsonl").write_bytes(b"".join(chunk))
            bar.update(len(batch))

        def on_lost(index: int, path: Path, why: str) -> None:
            traj = Trajectory.model_validate_json(path.read_bytes())
            verdict = _no(f"judging the final document kills the worker: {why}")
            on_result(index, [path], [finish(traj, verdict)])

        try:
            if streaming:
                _judge_streamed(paths, templates, workers, batch_size, ray_cfg, on_result)
            else:
                pool.map(
                    "judge_batch",
                    paths,
                    batch_size=batch_size,
                    on_result=on_result,
                    on_lost=on_lost,
                    load=_loader(traj_dir),
                )
        finally:
            bar.close()
    _concatenate(parts, "judged", out_dir / JUDGED_FILE)
    for route in ROUTES.values():
        _concatenate(parts, route, out_dir / RESULTS_DIR / f"{route}.jsonl")
    shutil.rmtree(parts)
    return JudgeSummary(
        judged=len(paths),
        pass_=counts["pass"],
        fail=counts["fail"],
        unsure=counts["unsure"],
        by_family={k: by_family[k] for k in sorted(by_family)},
        seconds=time.perf_counter() - start,
    )


def _judge_streamed(
    paths: list[Path], templates: dict[str, bytes], workers: int, batch_size: int, ray_cfg, on_result
) -> None:
    """The trajectory files through compute.stream_files (in order, one output each), handed to
    `on_result` in runs of `batch_size` as they come back."""
    from lamops.compute import stream_files

    uris = [str(p.resolve()) for p in paths]
    outputs = stream_files(
        JudgeWorker,
        (templates,),
        "judge_files",
        uris,
        workers=workers,
        ray_cfg=ray_cfg,
        batch_size=batch_size,
    )
    run: list[Judged] = []
    first = 0
    for judged in outputs:
        run.append(judged)
        if len(run) == batch_size:
            on_result(first, paths[first : first + len(run)], run)
            first, run = first + len(run), []
    if first + len(run) != len(paths):
        raise RuntimeError(f"judge: {first + len(run)} verdicts came back for {len(paths)} trajectories")
    if run:
        on_result(first, paths[first:], run)


def _concatenate(parts: Path, name: str, target: Path) -> None:
    """Join the part files of one output in batch order (batches are runs of the sorted task ids)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("wb") as out:
        for part in sorted(parts.glob(f"*.{name}.jsonl")):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out)
    tmp.replace(target)
