"""What every stage returns, and how a stage writes an output folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# File names inside the data stages' output folders, written in this one place.
PAIRS_FILE = "pairs.jsonl"  # collect, evolve: TaskPlanPair records
TASKS_FILE = "tasks.jsonl"  # instantiate: InstantiatedTask records that passed the filter
QUARANTINE_FILE = "quarantine.jsonl"  # every record a stage dropped, with its reason
STATS_FILE = "stats.json"  # a stage's counts; `datasets` gathers them into the DVC metrics file
ROLLOUTS_FILE = "rollouts.jsonl"  # self_boost: every rollout (Trajectory), which reward_model labels


class StageInputError(RuntimeError):
    """A stage's input holds nothing it can use; the one-line message says why and where the reasons are
    (the stage wrote them before raising)."""


class RecordsLost(RuntimeError):
    """A stage's counts do not add up: for an input file, records kept + quarantined != records read. Bad
    input never causes this (it is quarantined); a record lost or invented on the way is a bug in lamops."""


def file_counts(read: int, kept: int, quarantined: int) -> dict[str, int]:
    """What a stage did with the records of one input file."""
    return {"read": read, "kept": kept, "quarantined": quarantined}


def checked_counts(stage: str, by_file: dict[str, dict[str, int]]) -> dict:
    """{read, kept, quarantined} summed over `by_file` ({input file: file_counts(...)}), and `by_file` itself,
    for a stage's stats.json, after checking kept + quarantined == read for every file: RecordsLost names the
    first file where it does not hold."""
    for name, c in by_file.items():
        if c["kept"] + c["quarantined"] != c["read"]:
            raise RecordsLost(
                f"{stage}: {name}: {c['read']} records read, but {c['kept']} kept + {c['quarantined']} "
                f"quarantined = {c['kept'] + c['quarantined']}; a record was lost or counted twice (a bug in "
                "lamops, not in the input: please report it)"
            )
    totals = {k: sum(c[k] for c in by_file.values()) for k in ("read", "kept", "quarantined")}
    return {**totals, "by_file": dict(sorted(by_file.items()))}


def check_total(stage: str, what: str, expected: int, got: int) -> None:
    """Raise RecordsLost when a count the stage derives two ways differs (pairs kept by file vs written)."""
    if expected != got:
        raise RecordsLost(
            f"{stage}: {what}: expected {expected}, got {got}; a record was lost or counted twice (a bug in "
            "lamops, not in the input: please report it)"
        )


class StageResult(BaseModel):
    """The summary of one stage run, printed by the CLI and returned by the Prefect task."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="Stage name, as in lamops.stages.STAGES.")
    outputs: list[str] = Field(description="Files and folders the stage wrote.")
    metrics: dict[str, float | int] = Field(description="Headline figures of the run, by name.")
    seconds: float = Field(description="Wall-clock time of the run.")
    message: str = Field(description="One line for a human: what was done.")


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


def write_drops_and_counts(folder: Path, rejected, stats: dict) -> None:
    """A stage's quarantine file (sorted, so reruns write the same bytes) and its counts."""
    from lamops.io import write_json, write_jsonl

    write_jsonl(folder / QUARANTINE_FILE, sorted(rejected, key=lambda r: (r.origin, r.reason)))
    write_json(folder / STATS_FILE, stats)
