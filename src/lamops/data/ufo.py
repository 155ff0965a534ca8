"""UFO dataflow interchange: import its result records as lamops records; export task-plan pairs as its tasks.

UFO's `dataflow/` (microsoft/UFO) instantiates and executes task-plan pairs in Word on Windows and writes one
result JSON per task (its `schema/execution_schema.json`), routed into folders by outcome:
`results/<mode>/execution_pass|execution_fail|execution_unsure/` and
`results/instantiation/instantiation_pass|instantiation_fail/`. `import_dir` reads such a tree (or a folder of
UFO task files) and turns each record into what it can honestly become:

- a `TaskPlanPair` (original task + original steps)                      -> LAM1 (`plan_pretrain`);
- an `InstantiatedTask` (chosen template, instantiated request and plan) -> re-executable by lamops only when
  its template is one of the built-in environment's;
- a `UfoOutcome` (the judge's verdict and UFO's per-step Success)       -> no per-step observations, so never
  LAM2-LAM4 step samples by itself.

The record's `execution_result.result.complete` is the truth; the folder a file sits in is only a hint, and a
disagreement is reported. Malformed files are rejected with a reason and never stop the import.

The records it produces are in `lamops.data.ufo_records`, task ids (`safe_id`) in `lamops.data.ufo_ids`.
`lamops.data.ufo_export.export_pairs` writes task-plan pairs as UFO's dataflow input: one JSON file per task,
`{"app", "unique_id", "task", "refined_steps"}`, in a folder that `python -m dataflow batch dataflow
<folder>` runs whole.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lamops.data.ufo_ids import UnusableIdError, json_type, safe_id, short, with_suffix
from lamops.data.ufo_records import VERDICT_VALUES, ImportedFile, ImportResult, UfoOutcome, clip, printable
from lamops.env.actions import FUNCTIONS
from lamops.records import InstantiatedTask, PlanStep, Rejected, TaskPlanPair, Verdict

__all__ = [
    "UnusableIdError",
    "import_dir",
    "safe_id",
]

STAGE = "ufo_import"  # the `stage` of every Rejected record written by the import
UFO_APPS = ("word", "excel", "powerpoint")  # dataflow's AppEnum, matched case-insensitively by UFO
MAX_FILE_BYTES = 16 * 2**20  # a real result record is a few KB; anything this big is not one
MAX_TEXT_CHARS = 100_000  # per string value or key; a task, step or traceback is far shorter
MAX_DEPTH = 32  # nesting of objects and arrays; a real record is under 10 deep, and the writer recurses
# The command names UFO's puppeteer knows (each registered command class's `name()`), plus lamops's own
# action space: a plan step calling anything else is no UFO record. Read from microsoft/UFO:
#   ufo/automator/ui_control/controller.py (commit 9551f904), ControlReceiver: the control commands, the
#     no-action command, whose name is "" (there is no "no_action"), and the OpenAI Operator commands
#     (click, double_click, drag, keypress, move, scroll, type, wait);
#   ufo/automator/app_apis/word/wordclient.py (ca5d5a8c), excel/excelclient.py (894f2f92) and
#     powerpoint/powerpointclient.py (6855327c): the Word, Excel and PowerPoint COM commands.
UFO_FUNCTIONS = frozenset(
    {
        "click_input", "click_on_coordinates", "drag_on_coordinates", "summary", "set_edit_text", "texts",
        "wheel_mouse_input", "annotation", "keyboard_input", "",
        "click", "double_click", "drag", "keypress", "move", "scroll", "type", "wait",
        "insert_table", "select_text", "select_table", "select_paragraph", "save_as", "set_font",
        "table2markdown", "insert_excel_table", "select_table_range", "get_range_values",
        "reorder_columns", "set_background_color",
    }
) | frozenset(FUNCTIONS)  # fmt: skip
# Folder names UFO routes result files into, and what they claim: (kind, claim).
_FOLDER_HINTS = {
    "execution_pass": ("execution", "yes"),
    "execution_fail": ("execution", "no"),
    "execution_unsure": ("execution", "unsure"),
    "pass": ("execution", "yes"),
    "fail": ("execution", "no"),
    "unsure": ("execution", "unsure"),
    "instantiation_pass": ("instantiation", "pass"),
    "instantiation_fail": ("instantiation", "fail"),
}
_HELP = {
    "empty_file": "the run that wrote it was probably interrupted; re-run the task or delete the file",
    "too_large": "a UFO result record is a few KB; check that this file is one",
    "not_utf8": "re-save the file as UTF-8",
    "bad_json": "UFO writes one JSON object per file; fix or delete the file",
    "missing_field": "see UFO's dataflow/schema/execution_schema.json for the record's shape",
    "wrong_type": "see UFO's dataflow/schema/execution_schema.json for the record's shape",
    "wrong_value": "the judge answers yes, no or unsure; fix the value or re-run the evaluation",
    "unreadable": "check the file's permissions",
    "bad_unique_id": "give the task a unique_id of letters, digits, '_', '-' or '.', without path parts",
    "bad_text": "UTF-8 cannot hold half of a UTF-16 pair; fix the text or delete the file",
    "too_deep": "a UFO result record is a few levels deep; check that this file is one",
    "unknown_function": "UFO runs only its own functions; fix the plan or delete the file",
    "bad_file_name": "rename the file to a UTF-8 name",
    "not_a_file": "UFO writes regular files; remove it from the folder",
    "dangling_link": "the link's target is gone; remove the link or restore its target",
}


# ---- import ---------------------------------------------------------------------------------------------
class _Invalid(Exception):
    """A file that cannot be imported: a short reason code and a message saying what and where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _In(BaseModel):
    # UFO adds keys between versions (and its LLMs add more); what lamops does not read is ignored.
    model_config = ConfigDict(extra="ignore")


class _Original(_In):
    original_task: str
    original_steps: list[str]


class _Step(_In):
    Step: int
    Subtask: str
    ControlText: str | None = None
    Function: str
    Args: dict[str, Any] | None = None  # the prefill LLM sometimes omits it
    Success: bool | None = None


class _Prefill(_In):
    instantiated_request: str
    instantiated_plan: list[_Step] | None


class _Judged(_In):
    reason: str = ""
    sub_scores: dict[str, str] = Field(default_factory=dict)
    complete: str


class _Execution(_In):
    result: _Judged | None = None
    error: Any = None  # {type, message, traceback}


class _Stage(_In):
    result: Any = None
    error: Any = None  # UFO writes {type, error_message, traceback} here although its schema says string


class _PrefillStage(_In):
    result: _Prefill | None = None
    error: Any = None


class _Instantiation(_In):
    choose_template: _Stage | None = None
    prefill: _PrefillStage | None = None
    instantiation_evaluation: _Stage | None = None


class _ResultFile(_In):
    unique_id: Any
    app: str = "word"
    original: _Original
    execution_result: _Execution | None  # required, null allowed (the schema's ["object", "null"])
    instantiation_result: _Instantiation


class _TaskFile(_In):
    """UFO's dataflow input: one task-plan pair."""

    unique_id: Any
    app: str = "word"
    task: str
    refined_steps: list[str]


@dataclass
class _Parsed:
    path: Path
    rel: str
    hint: tuple[str, str, str] | None  # (folder, kind, claim)
    record: _ResultFile | _TaskFile


def import_dir(src: Path, builtin_templates: Iterable[str] | None = None) -> ImportResult:
    """Read every UFO dataflow result file (and task file) under `src`, recursively; or `src` if a file.

    `builtin_templates`: the template names lamops's environment has (default: lamops.env.templates.
    TEMPLATES); an instantiated task is re-executable here only when its template is one of them."""
    src = Path(src)
    if not src.exists() and not src.is_symlink():  # a dangling link is a rejected entry, not a typo
        raise FileNotFoundError(
            f"UFO import: {src} does not exist; point it at UFO's dataflow results folder"
        )
    if builtin_templates is None:
        from lamops.env.templates import TEMPLATES  # python-docx; only when the caller did not say

        builtin_templates = TEMPLATES
    result = ImportResult(src=src, builtin_templates=frozenset(builtin_templates))
    parsed: list[_Parsed] = []
    for path in _json_files(src, result):
        rel = path.name if path == src else path.relative_to(src).as_posix()
        try:
            _check_name(path)
            parsed.append(_Parsed(path, rel, _folder_hint(rel), _parse(path)))
        except _Invalid as bad:
            result.rejected.append(_rejected(path, bad))

    for item, task_id in _assign_ids(parsed, result):
        _keep(item, task_id, result)
    return result


def _json_files(src: Path, result: ImportResult) -> list[Path]:
    """The JSON files to read under `src` (or `src` itself), in path order; counts the other files in
    `result.skipped` and rejects what is no regular file (a FIFO, socket or device: opening one could block
    forever) or a link whose target is gone, whatever its name, since either hides what should be there."""
    entries = (
        [src] if not src.is_dir() else sorted(src.rglob("*"), key=lambda p: p.relative_to(src).as_posix())
    )
    paths: list[Path] = []
    for path in entries:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            result.rejected.append(_rejected(path, _Invalid("dangling_link", "a link to nothing")))
            continue
        except OSError as exc:
            result.rejected.append(_rejected(path, _Invalid("unreadable", f"cannot stat: {exc.strerror}")))
            continue
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            bad = _Invalid("not_a_file", f"not a regular file but {_file_kind(mode)}; it was not opened")
            result.rejected.append(_rejected(path, bad))
        elif path == src or (path.suffix.lower() == ".json" and not path.name.startswith(".")):
            paths.append(path)
        else:
            result.skipped += 1
    return paths


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"))
    return next((name for test, name in kinds if test(mode)), "a block device or other special file")


def _check_name(path: Path) -> None:
    """Records carry their file's path as text, which must be UTF-8 like every record lamops writes."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid("bad_file_name", "the file's name is not UTF-8") from None


def _rejected(path: Path, bad: _Invalid) -> Rejected:
    detail = f"{bad.detail} ({_HELP[bad.reason]})" if bad.reason in _HELP else bad.detail
    record = ""
    try:
        if stat.S_ISREG(path.stat().st_mode):  # never open a FIFO or device: it may block
            with path.open("rb") as handle:
                record = handle.read(200).decode("utf-8", errors="replace")  # the file's start, for a human
    except OSError:
        pass
    origin = os.fsencode(path).decode("utf-8", errors="backslashreplace")
    return Rejected(stage=STAGE, reason=bad.reason, detail=printable(detail), origin=origin, record=record)


def _parse(path: Path) -> _ResultFile | _TaskFile:
    """Read and validate one file; raise _Invalid saying what is wrong and where."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Invalid("too_large", f"file is {size:,} bytes (limit {MAX_FILE_BYTES:,})")
        data = path.read_bytes()
    except OSError as exc:
        raise _Invalid("unreadable", f"cannot read the file: {exc.strerror or exc}") from None
    if not data.strip():
        raise _Invalid("empty_file", "file is empty" if not data else "file holds only whitespace")
    try:
        text = data.decode("utf-8-sig")  # a BOM is what Windows tools add; tolerate it
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _Invalid(
            "not_utf8", f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})"
        ) from None
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _Invalid(
            "bad_json", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN / Infinity, which JSONL readers downstream would choke on
        raise _Invalid("bad_json", f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _Invalid("bad_json", "invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _Invalid("wrong_type", f"top level is {json_type(doc)}, expected an object")
    _check_sizes(doc)
    is_task_file = "original" not in doc and "task" in doc and "refined_steps" in doc
    model: type[_ResultFile | _TaskFile] = _TaskFile if is_task_file else _ResultFile
    try:
        record = model.model_validate(doc)
    except ValidationError as exc:
        raise _invalid_from(exc) from None
    task = record.task if isinstance(record, _TaskFile) else record.original.original_task
    if not task.strip():
        where = "task" if isinstance(record, _TaskFile) else "original.original_task"
        raise _Invalid("missing_field", f"{where} is empty")
    if isinstance(record, _ResultFile):
        if record.execution_result and record.execution_result.result:
            _verdict(record.execution_result.result)  # raise here, before any record of the file is kept
        _check_functions(record)
    return record


def _check_functions(record: _ResultFile) -> None:
    """A plan step calling a function neither UFO nor lamops has is no record of UFO's: refuse the file
    rather than import, say, `launch_missiles` as a step of a successful plan."""
    prefill = record.instantiation_result.prefill
    steps = (prefill.result.instantiated_plan or []) if prefill and prefill.result else []
    for i, step in enumerate(steps):
        if step.Function not in UFO_FUNCTIONS:
            raise _Invalid(
                "unknown_function",
                f"instantiation_result.prefill.result.instantiated_plan[{i}].Function is "
                f"{short(step.Function)}, not a function of UFO's or lamops's",
            )


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _check_sizes(doc: Any) -> None:
    """Refuse what the records could not be written with: huge strings, nesting deeper than MAX_DEPTH (the
    writer recurses), and lone surrogates (`"\\ud800"` is valid JSON but not encodable as UTF-8)."""
    stack: list[tuple[str, Any, int]] = [("", doc, 0)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Invalid("too_deep", f"{_clip(where)} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str):
            _check_text(value, where or "value")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"a key under {_clip(where) or 'the top level'}")
                stack.append((f"{where}.{key}" if where else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise _Invalid(
            "too_large", f"{_clip(where)} is {len(text):,} characters long (limit {MAX_TEXT_CHARS:,})"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Invalid(
            "bad_text", f"{_clip(where)} holds a lone surrogate \\u{ord(text[exc.start]):04x}"
        ) from None


def _clip(where: str) -> str:
    """A field path short enough for a report (a deep one would be thousands of characters)."""
    return clip(where, 120)


def _invalid_from(exc: ValidationError) -> _Invalid:
    errors = exc.errors()
    first = errors[0]
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    if first["type"] == "missing":
        return _Invalid("missing_field", f"missing field {where}{more}")
    got = json_type(first.get("input"))
    return _Invalid("wrong_type", f"{where}: {first['msg'].lower()}, got {got}{more}")


def _verdict(judged: _Judged) -> Verdict:
    def norm(value: str, where: str) -> str:
        out = value.strip().strip(".").lower()
        if out not in VERDICT_VALUES:
            raise _Invalid("wrong_value", f"{where} is {short(value)}, expected yes, no or unsure")
        return out

    scores = {k: norm(v, f"execution_result.result.sub_scores[{k!r}]") for k, v in judged.sub_scores.items()}
    complete = norm(judged.complete, "execution_result.result.complete")
    return Verdict.model_validate({"complete": complete, "reason": judged.reason, "sub_scores": scores})


def _folder_hint(rel: str) -> tuple[str, str, str] | None:
    for part in reversed(PurePosixPath(rel).parts[:-1]):
        hint = _FOLDER_HINTS.get(part.lower())
        if hint:
            return (part, *hint)
    return None


def _assign_ids(parsed: list[_Parsed], result: ImportResult) -> Iterator[tuple[_Parsed, str]]:
    """Safe, unique, deterministic task ids: the unique_id when it is already safe and unique, else a
    sanitized one; files whose ids collide all get a suffix hashed from their path, in any order."""
    bases: list[tuple[_Parsed, str]] = []
    for item in parsed:
        try:
            bases.append((item, safe_id(item.record.unique_id)))
        except UnusableIdError as exc:
            result.rejected.append(_rejected(item.path, _Invalid("bad_unique_id", str(exc))))
    counts = Counter(base for _, base in bases)
    final = [(item, base if counts[base] == 1 else with_suffix(base, item.rel)) for item, base in bases]
    taken = Counter(task_id for _, task_id in final)
    for item, task_id in final:
        if taken[task_id] > 1:  # a suffixed id equal to another file's literal id: refuse rather than guess
            bad = _Invalid("bad_unique_id", f"task id {task_id!r} is not unique after de-duplication")
            result.rejected.append(_rejected(item.path, bad))
            continue
        yield item, task_id


@dataclass
class _Converted:
    """All records one file became; kept only once the whole file converted, so no file is half imported."""

    entry: ImportedFile
    pair: TaskPlanPair
    task: InstantiatedTask | None = None
    outcome: UfoOutcome | None = None
    mismatch: str | None = None


def _keep(item: _Parsed, task_id: str, result: ImportResult) -> None:
    try:
        done = _convert(item, task_id, result.builtin_templates)
    except _Invalid as bad:
        result.rejected.append(_rejected(item.path, bad))
        return
    except ValidationError as exc:  # a value lamops's records refuse although UFO's shape allowed it
        result.rejected.append(_rejected(item.path, _invalid_from(exc)))
        return
    result.files.append(done.entry)
    result.pairs.append(done.pair)
    if done.task is not None:
        result.tasks.append(done.task)
    if done.outcome is not None:
        result.outcomes[task_id] = done.outcome
    if done.mismatch:
        result.mismatches.append(f"{item.rel}: {done.mismatch}")


def _convert(item: _Parsed, task_id: str, builtin_templates: frozenset[str]) -> _Converted:
    rec = item.record
    origin = str(item.path)
    entry = ImportedFile(file=item.rel, task_id=task_id, pair=True)
    raw_id = str(rec.unique_id).strip()
    if task_id != raw_id:
        entry.notes.append(f"unique_id {short(raw_id, 30)} -> {task_id}")
    if rec.app.lower() not in UFO_APPS:
        entry.notes.append(f"app {short(rec.app, 20)} is not one UFO's dataflow knows")

    if isinstance(rec, _TaskFile):
        entry.notes.append("UFO task file (not yet run)")
        pair = TaskPlanPair(
            task_id=task_id, task=rec.task, plan=rec.refined_steps, source="ufo", origin=origin
        )
        return _Converted(entry, pair)

    original = rec.original
    done = _Converted(
        entry,
        TaskPlanPair(
            task_id=task_id,
            task=original.original_task,
            plan=original.original_steps,
            source="ufo",
            origin=origin,
        ),
    )

    inst = rec.instantiation_result
    template = _template(inst.choose_template.result if inst.choose_template else None)
    prefill = inst.prefill.result if inst.prefill else None
    steps = (prefill.instantiated_plan or []) if prefill else []
    plan = [
        PlanStep(
            step=s.Step,
            subtask=s.Subtask,
            control_text=s.ControlText or "",
            function=s.Function,
            args=s.Args or {},
        )
        for s in steps
    ]
    filter_result = inst.instantiation_evaluation.result if inst.instantiation_evaluation else None
    judge = filter_result.get("judge") if isinstance(filter_result, dict) else None

    if prefill is None:
        entry.notes.append("not instantiated" + _error_note(inst.prefill.error if inst.prefill else None))
    elif prefill.instantiated_plan is None:
        entry.notes.append("prefill wrote no plan")
    elif template is None:
        entry.notes.append("prefill without a chosen template")
    elif judge is False:
        entry.task = "filtered"
        kind = filter_result.get("request_type") if isinstance(filter_result, dict) else None
        entry.notes.append(f"UFO's filter rejected the request ({kind or 'no type'})")
    else:
        done.task = InstantiatedTask(
            task_id=task_id,
            family=None,
            template=template,
            request=prefill.instantiated_request,
            plan=original.original_steps,
            action_plan=plan,
            source_id=task_id,
        )
        entry.task = "built-in" if template in builtin_templates else "foreign"

    execution = rec.execution_result
    verdict = _verdict(execution.result) if execution and execution.result else None
    error = _error_text(execution.error) if execution else None
    if verdict is None and error and not plan:
        entry.notes.append(f"execution error without a plan: {clip(error, 60)}")
    elif verdict is not None or error:
        done.outcome = UfoOutcome(
            task_id=task_id,
            verdict=verdict,
            request=prefill.instantiated_request if prefill else "",
            plan=plan,
            step_success=[s.Success for s in steps],
            error=error,
            filed_under=item.hint[0] if item.hint else None,
            origin=origin,
        )
        entry.outcome = verdict.complete if verdict else "error"
    else:
        entry.notes.append("not executed")

    done.mismatch = _mismatch(item, verdict, judge)
    if done.mismatch:
        entry.notes.append(done.mismatch)
    return done


def _template(value: Any) -> str | None:
    """UFO writes the copied template's path; lamops's own records write {"template": name}."""
    if isinstance(value, dict):
        value = value.get("template")
    return value if isinstance(value, str) and value.strip() else None


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    if isinstance(error, dict):
        message = error.get("message") or error.get("error_message") or ""
        kind = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>$", r"\1", str(error.get("type", "Error")))
        text = f"{kind}: {message}".strip()
    else:
        text = str(error)
    return clip(text, 500)


def _error_note(error: Any) -> str:
    text = _error_text(error)
    return f" ({clip(text, 60)})" if text else ""


def _mismatch(item: _Parsed, verdict: Verdict | None, judge: Any) -> str | None:
    if item.hint is None:
        return None
    folder, kind, claim = item.hint
    if kind == "execution":
        actual = verdict.complete if verdict else "no"  # UFO routes a record without a verdict to fail
        if actual != claim:
            said = f"complete is {actual!r}" if verdict else "has no verdict"
            return f"filed under {folder} but the record {said}"
    else:
        actual = "pass" if judge is True else "fail"
        if actual != claim:
            return f"filed under {folder} but UFO's filter judge is {judge!r}"
    return None
