"""Export task-plan pairs as UFO dataflow task files (`export_pairs`), and read pairs from JSONL for the CLI.

One JSON file per task, `{"app", "unique_id", "task", "refined_steps"}`, in a folder that
`python -m dataflow batch dataflow <folder>` runs whole. The import is `lamops.data.ufo`."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from lamops.data.ufo import UFO_APPS
from lamops.data.ufo_ids import short_hash
from lamops.io import replace_dir
from lamops.records import TaskPlanPair

__all__ = ["export_pairs", "read_pairs_jsonl"]

_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


# ---- export ---------------------------------------------------------------------------------------------
def export_pairs(
    pairs: Iterable[TaskPlanPair],
    out_dir: Path,
    app: str = "word",
    shard_size: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write `pairs` as UFO dataflow task files, one `<task_id>.json` per pair; return the files written.

    UFO's batch mode (`python -m dataflow batch dataflow <folder>`) runs every file directly in one folder, so
    the folder holds nothing else. `shard_size`: at most that many files per `part-NNNN/` subfolder, one batch
    each (for several Windows machines); None: all in `out_dir`. The whole folder is replaced atomically; an
    existing non-empty `out_dir` is replaced only with `overwrite` (old tasks left beside new ones would run).
    Files are pure ASCII: UFO opens them with the Windows locale's encoding, not UTF-8."""
    app = app.lower()
    if app not in UFO_APPS:
        raise ValueError(f"app {app!r} is not one UFO's dataflow knows: {', '.join(UFO_APPS)}")
    if shard_size is not None and shard_size < 1:
        raise ValueError(f"shard_size must be a positive number of files, got {shard_size}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file; export_pairs writes a folder of UFO task files")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out_dir} is not empty; UFO's batch mode runs every file in a folder, so old tasks would run "
            "with the new ones. Choose an empty folder or pass overwrite=True to replace it."
        )
    pairs = list(pairs)
    seen = Counter(p.task_id for p in pairs)
    dupes = sorted(k for k, n in seen.items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate task_id in the pairs to export: {', '.join(dupes[:5])}")

    names = _file_stems([p.task_id for p in pairs])
    relative: list[Path] = []
    with replace_dir(out_dir) as staging:
        for i, pair in enumerate(pairs):
            folder = Path(f"part-{i // shard_size:04d}") if shard_size else Path()
            rel = folder / f"{names[pair.task_id]}.json"
            (staging / folder).mkdir(exist_ok=True)
            task = {"app": app, "unique_id": pair.task_id, "task": pair.task, "refined_steps": pair.plan}
            (staging / rel).write_text(json.dumps(task, indent=4, ensure_ascii=True) + "\n", encoding="ascii")
            relative.append(rel)
    return [out_dir / rel for rel in relative]


def _file_stems(task_ids: list[str]) -> dict[str, str]:
    """A file stem per task id that UFO and Windows keep apart.

    UFO names the task's saved document and logs after the file name up to its first '.', and Windows compares
    names without case and refuses CON, NUL, COM1...: stems have no dots, and clashes get a hashed suffix."""

    def stem(task_id: str) -> str:
        out = task_id.replace(".", "_")
        return out + "_" if out.upper() in _WINDOWS_RESERVED else out

    groups: dict[str, list[str]] = defaultdict(list)
    for task_id in task_ids:
        groups[stem(task_id).casefold()].append(task_id)
    stems = {
        task_id: stem(task_id) if len(group) == 1 else f"{stem(task_id)}-{short_hash(task_id)}"
        for group in groups.values()
        for task_id in group
    }
    clashes = [n for n, c in Counter(v.casefold() for v in stems.values()).items() if c > 1]
    if clashes:  # only if a task id literally ends in another's hash suffix; never overwrite a task file
        raise ValueError(f"task ids give the same UFO file name: {', '.join(clashes[:5])}; rename them")
    return stems


# ---- helpers for the CLI ---------------------------------------------------------------------------------
def read_pairs_jsonl(path: Path) -> Iterator[TaskPlanPair]:
    """The task-plan pairs of a JSONL file (e.g. data/task_plans/collected.jsonl), one per non-blank line."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield TaskPlanPair.model_validate_json(line)
            except ValidationError as exc:
                raise ValueError(f"{path}:{lineno}: not a task-plan pair: {exc.errors()[0]['msg']}") from None
