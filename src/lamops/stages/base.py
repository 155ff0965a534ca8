"""What every stage returns, and how a stage writes an output folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# File names inside the data stages' output folders, written in this one place.
PAIRS_FILE = "pairs.jsonl"  # collect, evolve: TaskPlanPair records
TASKS_FILE = "tasks.jsonl"  # instantiate: InstantiatedTask records that passed the filter
QUARANTINE_FILE = "quarantine.jsonl"  # every record a stage dropped, with its reason
STATS_FILE = "stats.json"  # a stage's counts; `datasets` gathers them into the DVC metrics file


class StageResult(BaseModel):
    """The summary of one stage run, printed by the CLI and returned by the Prefect task."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="Stage name, as in lamops.stages.STAGES.")
    outputs: list[str] = Field(description="Files and folders the stage wrote.")
    metrics: dict[str, float | int] = Field(description="Headline figures of the run, by name.")
    seconds: float = Field(description="Wall-clock time of the run.")
    message: str = Field(description="One line for a human: what was done.")


@contextmanager
def replace_dir(path: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `path` that replaces `path` whole when the block succeeds.

    Readers never see a half-written output, and a failed run leaves the previous output in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staging = Path(tmp) / path.name
        staging.mkdir()
        yield staging
        if path.exists():
            path.rename(Path(tmp) / "replaced")
        staging.rename(path)


def gate(tracked, boundary: str, records, *, forbidden_ids: set[str] | None = None) -> None:
    """Run the Great Expectations suite of `boundary` on `records`; the report goes to the stage's MLflow run
    whether it passes or not, and a failure raises DataValidationError naming expectation and rows."""
    from lamops.validation import DataValidationError, check, frame

    df = frame(boundary, records)
    try:
        report = check(boundary, df, forbidden_ids=forbidden_ids)
    except DataValidationError as err:
        tracked.log_text(err.report.to_markdown(), f"validation/{boundary}.md")
        tracked.log_metrics({f"validation.{boundary}.failed": len(err.report.failures)})
        raise
    tracked.log_text(report.to_markdown(), f"validation/{boundary}.md")


def show_progress() -> bool:
    """Progress bars on stderr, unless LAMOPS_PROGRESS=0 (logs of scheduled runs, tests)."""
    import os

    return os.environ.get("LAMOPS_PROGRESS") != "0"


def progress(iterable, desc: str, total: int | None = None):
    """A progress bar over a long loop (see show_progress)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not show_progress(), mininterval=1.0, unit="it")


def write_drops_and_counts(folder: Path, rejected, stats: dict) -> None:
    """A stage's quarantine file (sorted, so reruns write the same bytes) and its counts."""
    from lamops.data.io import write_json, write_jsonl

    write_jsonl(folder / QUARANTINE_FILE, sorted(rejected, key=lambda r: (r.origin, r.reason)))
    write_json(folder / STATS_FILE, stats)
