"""Great Expectations suites guarding lamops' data boundaries.

    df = frame("instantiated", tasks)          # records -> the frame the boundary's suite expects
    report = check("instantiated", df)         # raises DataValidationError(report) when a rule fails
    mlflow.log_text(report.to_markdown(), "validation/instantiated.md")

Boundaries: task_plans, instantiated, trajectories, sft, reward, plan_sft (see `suites.BOUNDARIES` for the
columns and rules of each). `forbidden_ids=` (the frozen test ids) adds the "no test ids in train" gate.
Importing this package does not import Great Expectations; the first validation does (~6 s)."""

from lamops.validation.report import DataValidationError, ExpectationRef, Failure, ValidationReport
from lamops.validation.runner import check, validate
from lamops.validation.suites import ALLOWED_FUNCTIONS, BOUNDARIES, frame

__all__ = [
    "ALLOWED_FUNCTIONS",
    "BOUNDARIES",
    "DataValidationError",
    "ExpectationRef",
    "Failure",
    "ValidationReport",
    "check",
    "frame",
    "validate",
]
