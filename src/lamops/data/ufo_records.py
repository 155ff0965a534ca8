"""What the UFO dataflow import (`lamops.data.ufo.import_dir`) produces: one `UfoOutcome` per executed task,
one `ImportedFile` per accepted file, and the `ImportResult` that writes the records and the human report."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lamops.io import replace_dir, write_jsonl
from lamops.records import ID_PATTERN, InstantiatedTask, PlanStep, Rejected, TaskPlanPair, Verdict

__all__ = ["ImportResult", "ImportedFile", "UfoOutcome"]

VERDICT_VALUES = ("yes", "no", "unsure")


# ---- records the import produces -------------------------------------------------------------------------
class UfoOutcome(BaseModel):
    """How UFO's execution of one instantiated task went: the judge's verdict and UFO's per-step Success.

    There are no per-step observations (control lists, canvas): UFO keeps them only in its logs and
    screenshots, so an outcome is not a source of step-level training samples."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(pattern=ID_PATTERN)
    verdict: Verdict | None  # None: execution stopped with an error before the judge ran
    request: str  # the instantiated request that was executed
    plan: list[PlanStep]  # the instantiated action plan, in execution order
    step_success: list[bool | None]  # UFO's `Success` per plan step; None: not reached
    error: str | None = None  # "RuntimeError: Step 2 execution failed. ..." from execution_result.error
    filed_under: str | None = None  # the folder UFO routed the file to (a hint, not the truth)
    origin: str  # the result file

    @property
    def success(self) -> bool:
        return self.verdict is not None and self.verdict.complete == "yes"


@dataclass
class ImportedFile:
    """What one accepted file became: its id, which records, and anything worth a human's attention."""

    file: str  # relative to the import's source
    task_id: str
    pair: bool = False
    task: str = "-"  # "built-in" | "foreign" | "filtered" | "-"
    outcome: str = "-"  # the verdict (yes / no / unsure), "error", or "-"
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """Everything `import_dir` made of a folder of UFO dataflow files."""

    src: Path
    pairs: list[TaskPlanPair] = field(default_factory=list)
    tasks: list[InstantiatedTask] = field(default_factory=list)
    outcomes: dict[str, UfoOutcome] = field(default_factory=dict)  # by task_id
    rejected: list[Rejected] = field(default_factory=list)
    files: list[ImportedFile] = field(default_factory=list)  # one per accepted file, in path order
    mismatches: list[str] = field(default_factory=list)  # folder says one thing, the record another
    skipped: int = 0  # files under src that are not .json (UFO's logs, documents, screenshots)
    builtin_templates: frozenset[str] = frozenset()

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write pairs.jsonl, tasks.jsonl, outcomes.jsonl and rejected.jsonl into a staging folder that
        replaces `out_dir` whole at the end: a failure leaves the previous output, never half of a new one.
        Raises lamops.io.UnsafeOutput when `out_dir` is a file or a project folder."""
        out_dir = Path(out_dir)
        groups: dict[str, Iterable[BaseModel]] = {
            "pairs": self.pairs,
            "tasks": self.tasks,
            "outcomes": self.outcomes.values(),
            "rejected": self.rejected,
        }
        with replace_dir(out_dir) as staging:
            for name, records in groups.items():
                write_jsonl(staging / f"{name}.jsonl", records)
        return {name: out_dir / f"{name}.jsonl" for name in groups}

    def summary(self, max_rows: int = 40) -> str:
        """A human report: what each file became, the rejections, and which lamops phases can use what."""
        lines = [
            f"UFO import from {self.src}: {len(self.files) + len(self.rejected)} JSON files, "
            f"{len(self.files)} imported, {len(self.rejected)} rejected"
            + (f", {self.skipped} non-JSON files skipped" if self.skipped else "")
        ]
        if self.files:
            lines += ["", *_table(self.files, max_rows)]
        if self.rejected:
            lines += ["", "Rejected files:"]
            lines += [f"  {r.origin}: {r.reason}: {r.detail}" for r in self.rejected[:max_rows]]
            if len(self.rejected) > max_rows:
                lines.append(f"  ... and {len(self.rejected) - max_rows} more in rejected.jsonl")
        if self.mismatches:
            lines += ["", "Folder and record disagree (the record's verdict was used):"]
            lines += [f"  {m}" for m in self.mismatches]
        lines += ["", *self._usage()]
        return "\n".join(lines)

    def _usage(self) -> list[str]:
        builtin = sorted({t.template for t in self.tasks if t.template in self.builtin_templates})
        n_builtin = sum(t.template in self.builtin_templates for t in self.tasks)
        foreign = [t.template for t in self.tasks if t.template not in self.builtin_templates]
        filtered = sum(f.task == "filtered" for f in self.files)
        judged = Counter(o.verdict.complete for o in self.outcomes.values() if o.verdict is not None)
        errors = sum(o.verdict is None for o in self.outcomes.values())
        tasks = (
            f"{n_builtin} on a built-in template ({', '.join(builtin) or 'none'}): lamops's expert and "
            "agents can re-execute them in the built-in environment (execute, self_boost); they have no task "
            "family, so the judge decides success, not a goal predicate. "
            f"{len(foreign)} on documents lamops does not have"
            + (f" (e.g. {foreign[0]})" if foreign else "")
            + ": not executable here."
            + (f" Not counted: {filtered} that UFO's instantiation filter rejected." if filtered else "")
        )
        outcomes = (
            ", ".join(f"{judged[v]} {v}" for v in VERDICT_VALUES)
            + f", {errors} stopped by an execution error (no verdict). They carry the plan and UFO's "
            "per-step Success but NOT per-step observations (control lists, canvas), so they cannot become "
            "LAM2-LAM4 step samples (imitate, self_boost, reward_model, offline_rl) directly. Step samples "
            "come only from re-executing the built-in-template tasks in lamops."
        )
        items = [
            (len(self.pairs), "task-plan pairs", "LAM1 (plan_pretrain): task -> plan."),
            (len(self.tasks), "instantiated tasks", tasks),
            (len(self.outcomes), "UFO outcomes", outcomes),
        ]
        if self.rejected:
            items.append((len(self.rejected), "rejected files", "rejected.jsonl, with the reason for each."))
        out = ["What lamops can use:"]
        for count, label, text in items:
            head = f"  {count:5d} {label:<18} -> "
            wrapped = textwrap.wrap(
                text, 110, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False
            )
            out += wrapped
        return out


def _table(files: list[ImportedFile], max_rows: int) -> list[str]:
    head = ("file", "task_id", "pair", "task", "outcome", "notes")
    rows = [
        (f.file, f.task_id, "yes" if f.pair else "-", f.task, f.outcome, "; ".join(f.notes))
        for f in files[:max_rows]
    ]
    widths = [min(48, max(len(r[i]) for r in (head, *rows))) for i in range(len(head) - 1)]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [clip(c, w).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        return "  ".join([*cells, row[-1]]).rstrip()

    out = [fmt(head), fmt(tuple("-" * w for w in widths) + ("-----",)), *(fmt(r) for r in rows)]
    if len(files) > max_rows:
        out.append(f"... and {len(files) - max_rows} more files (see the JSONL files)")
    return out


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def printable(text: str) -> str:
    """`text` with any lone surrogate spelled as `\\udXXX`, so that it can be written as UTF-8 and printed."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
