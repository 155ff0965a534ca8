"""Files: atomic writes, whole-folder replacement, and JSON Lines reads that quarantine bad lines.

The bottom layer: it imports nothing of lamops but `records`."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lamops.records import Rejected

M = TypeVar("M", bound=BaseModel)
MAX_LINE_CHARS = 1_000_000  # a line longer than this is rejected unparsed (a runaway or hostile input)
_REPLACED = "a stage replaces its output folder whole"
# Entries that mark a folder as a project or a repository: such a folder is never a stage's output.
PROJECT_MARKERS = ("params.yaml", "dvc.yaml", ".git", ".dvc")


class UnsafeOutput(ValueError):
    """An output folder that replacing would destroy something that is no output: a file, a project, the
    working folder."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file beside it and an atomic rename.

    The temp name is fixed per process and thread (`.<name>.<pid>.<thread>.tmp`): mkstemp's random names cost
    a third of `execute`'s driver time, and no two writers share a process and thread. A crash leaves at
    worst a dot-file that the next run of the stage removes or replaces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dumps(record: BaseModel | dict[str, Any]) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json()
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write one record per line, atomically; returns the number written."""
    lines = [dumps(r) for r in records]
    write_atomic(path, "".join(line + "\n" for line in lines).encode("utf-8"))
    return len(lines)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


def truncate(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def read_jsonl(path: Path, model: type[M], stage: str) -> tuple[list[M], list[Rejected]]:
    """Records of `model` from `path`, one per line; a line that is not UTF-8, not JSON or not a valid
    record becomes a Rejected (with file and line) instead of failing the read."""
    return parse_jsonl(Path(path).read_bytes(), str(path), model=model, stage=stage)


def parse_jsonl(data: bytes, name: str, *, model: type[M], stage: str) -> tuple[list[M], list[Rejected]]:
    """`read_jsonl` of a file's bytes already read (by `lamops.compute.map_files` in a Ray worker, say);
    `name` names the file in each Rejected's origin, as `name:line`."""
    good: list[M] = []
    bad: list[Rejected] = []
    for number, raw, text, error in iter_lines(data, name):
        origin = f"{name}:{number}"
        if error:
            bad.append(Rejected(stage=stage, reason="malformed", detail=error, origin=origin, record=text))
            continue
        try:
            good.append(model.model_validate_json(raw))
        except ValidationError as err:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in err.errors()[:5]
            )
            bad.append(Rejected(stage=stage, reason="malformed", detail=detail, origin=origin, record=text))
    return good, bad


_NEWLINE = re.compile(rb"\r\n|\r|\n")


def iter_lines(
    data: bytes, origin: str, *, bare_cr: bool = False
) -> Iterator[tuple[int, bytes, str, str | None]]:
    """(line number, raw bytes, text for a report, error or None) for each non-empty line of `data`.

    Lines end at LF or CRLF; with `bare_cr`, at a lone CR too (plain text written on old Macs: without it,
    such a file would be one line). JSON Lines keep it off: there a CR is whitespace inside a record."""
    for number, raw in enumerate(_NEWLINE.split(data) if bare_cr else data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_CHARS:
            yield (
                number,
                raw,
                truncate(raw[:2000].decode("utf-8", "replace")),
                (f"line of {len(raw):,} bytes is longer than the limit of {MAX_LINE_CHARS:,}"),
            )
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield (
                number,
                raw,
                truncate(raw.decode("utf-8", "replace")),
                f"not UTF-8: {err.reason} at byte {err.start}",
            )
            continue
        yield number, raw, truncate(text), None


@contextmanager
def replace_dir(path: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `path` that replaces `path` whole when the block succeeds.

    Readers never see a half-written output, and a failed run leaves the previous output in place. A `path`
    that `check_replaceable` refuses raises UnsafeOutput before anything is touched.
    """
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staging = Path(tmp) / path.name
        staging.mkdir()
        yield staging
        if path.exists():
            path.rename(Path(tmp) / "replaced")
        staging.rename(path)


def check_replaceable(path: Path) -> None:
    """Raise UnsafeOutput when `path` exists and is not a folder, holds a project marker (PROJECT_MARKERS), or
    holds the working folder. The config already refuses such outputs (lamops.config); this is the last guard
    before a folder is replaced whole."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise UnsafeOutput(f"{path}: is a file, not an output folder; refusing to replace it")
    marker = next((name for name in PROJECT_MARKERS if (path / name).exists()), None)
    if marker:
        raise UnsafeOutput(
            f"{path}: holds {marker}, so it is a project, not an output folder; refusing to replace it"
        )
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise UnsafeOutput(f"{path}: holds the working folder {Path.cwd()}; refusing to replace it")


def folder_problems(
    root: Path, folders: Sequence[tuple[str, Path]], kept: Iterable[tuple[str, Path, Collection[str]]]
) -> Iterator[tuple[str, str]]:
    """(name, what is wrong) for each of `folders` (name, resolved path) that replacing whole would destroy
    something else with, the first found of: it is or holds the project `root`; it is, holds or lies in a
    `kept` path (what it is, resolved path, names of the folders allowed to overlap it); it is an existing
    file; it is or holds another of `folders` (two equal folders: each names the other)."""
    kept = list(kept)
    for name, path in folders:
        if root.is_relative_to(path):
            yield name, f"{path} {_relation(path, root)} the project root; {_REPLACED}"
            continue
        clash = next(
            ((what, other) for what, other, ok in kept if name not in ok and _relation(path, other)), None
        )
        if clash:
            yield name, f"{path} {_relation(path, clash[1])} {clash[0]} ({clash[1]}); {_REPLACED}"
        elif path.exists() and not path.is_dir():
            yield name, f"{path} is a file, not an output folder"
        else:
            held = next(((n, p) for n, p in folders if n != name and p.is_relative_to(path)), None)
            if held:
                yield name, f"{path} {_relation(path, held[1])} {held[0]}'s folder {held[1]}; outputs overlap"


def _relation(path: Path, other: Path) -> str:
    """How `path` lies to `other`: "is", "holds", "lies in", or "" when apart."""
    if path == other:
        return "is"
    if other.is_relative_to(path):
        return "holds"
    return "lies in" if path.is_relative_to(other) else ""
