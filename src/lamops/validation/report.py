"""What a validation found, in a form a user reads (the error message, Markdown) and MLflow stores (JSON).

No Great Expectations import here: a report is plain data, built by `lamops.validation.runner`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

_SHOWN_EXAMPLES = 3  # per failure in the error message; the report itself keeps up to 5


class ExpectationRef(BaseModel):
    """Which expectation: its Great Expectations type, the column(s) it checks and its other arguments."""

    type: str  # e.g. expect_column_values_to_be_in_set
    column: str | None = None  # "a, b" for pair and compound expectations; None for table expectations
    kwargs: dict[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        args = ([f"column={self.column!r}"] if self.column else []) + [
            f"{k}={v!r}" for k, v in self.kwargs.items()
        ]
        return f"{self.type}({', '.join(args)})"


class Failure(BaseModel):
    """One failed expectation with the rows that broke it."""

    expectation: ExpectationRef
    view: str  # the frame it ran on: the boundary itself, or a derived one such as `instantiated.steps`
    description: str = ""  # the rule in words
    unexpected_count: int | None = None  # offending rows; None for table-level expectations
    examples: list[dict[str, Any]] = Field(default_factory=list)  # up to 5 offending rows, strings truncated
    observed: Any = None  # table-level expectations: what was found instead (row count, missing columns...)
    error: str | None = None  # the expectation could not be evaluated (e.g. a column is missing)

    def headline(self) -> str:
        found = (
            f"{self.unexpected_count} unexpected row(s)"
            if self.unexpected_count is not None
            else f"observed {self.observed!r}"
        )
        if self.error:
            found = f"error: {self.error}"
        rule = f" -- {self.description}" if self.description else ""
        return f"{self.expectation} on {self.view}: {found}{rule}"


class ValidationReport(BaseModel):
    """The outcome of one boundary's suite on one frame."""

    boundary: str
    success: bool
    rows: int  # rows of the frame that was given
    evaluated: int  # expectations evaluated, over all views of the boundary
    failures: list[Failure] = Field(default_factory=list)
    views: dict[str, int] = Field(default_factory=dict)  # rows per view the suites ran on
    seconds: float = 0.0

    def to_text(self) -> str:
        """The message a user sees when a stage fails: boundary, each failing expectation, example rows."""
        if self.success:
            return (
                f"Data validation passed at boundary {self.boundary!r}: {self.evaluated} expectations, "
                f"{self.rows} rows."
            )
        lines = [
            f"Data validation failed at boundary {self.boundary!r}: {len(self.failures)} of {self.evaluated} "
            f"expectations failed on {self.rows} rows."
        ]
        for failure in self.failures:
            lines.append(f"- {failure.headline()}")
            lines += [f"    e.g. {_inline(row)}" for row in failure.examples[:_SHOWN_EXAMPLES]]
        lines.append(
            "Fix the stage that wrote these rows (or its input); if the rule itself is wrong, change it in "
            "lamops/validation/suites.py."
        )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        lines = [
            f"# Validation of `{self.boundary}`: {verdict}",
            "",
            f"{self.rows} rows, {self.evaluated} expectations evaluated, {len(self.failures)} failed "
            f"({self.seconds:.2f} s). Rows per view: "
            + ", ".join(f"`{name}` {n}" for name, n in self.views.items()),
        ]
        if not self.failures:
            return "\n".join(lines) + "\n"
        lines += ["", "| expectation | column | view | unexpected | rule |", "|---|---|---|---|---|"]
        for f in self.failures:
            count = f.unexpected_count if f.unexpected_count is not None else f"observed `{f.observed}`"
            if f.error:
                count = f"error: {f.error}"
            lines.append(
                f"| `{f.expectation.type}` | `{f.expectation.column or ''}` | `{f.view}` | {_cell(count)} | "
                f"{_cell(f.description)} |"
            )
        for f in self.failures:
            lines += ["", f"## `{f.expectation}` on `{f.view}`", ""]
            if f.description:
                lines += [f.description, ""]
            if f.examples:
                lines += ["```json", *(_inline(row) for row in f.examples), "```"]
            elif f.error:
                lines.append(f"Error: {f.error}")
            else:
                lines.append(f"Observed: `{f.observed}`")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


class DataValidationError(Exception):
    """A boundary's suite failed; `report` holds the details, the message says what and where."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.to_text())
        self.report = report


def _inline(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
