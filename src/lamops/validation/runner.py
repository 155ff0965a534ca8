"""Run a boundary's suites with Great Expectations 1.x and turn GX's results into a ValidationReport.

One ephemeral GX context per process, one pandas data source, one dataframe asset and whole-dataframe batch
definition per view, and one validation definition per (view, variant) built on first use and reused. GX is
imported on the first validation only (~6 s)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lamops.validation.report import DataValidationError, ExpectationRef, Failure, ValidationReport
from lamops.validation.suites import Boundary, Expect, View, boundary, forbidden_ids_expectation

MAX_EXAMPLES = 5
MAX_CHARS = 80  # per string in an example row
MAX_ITEMS = 12  # per list in an example row or an expectation argument
_DUPLICATE_CHECKS = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
_COLUMN_KWARGS = ("column", "column_list", "column_A", "column_B")


class _Gx:
    """The process's GX context and the validation definitions built so far."""

    def __init__(self) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.row_conditions import Column

        self._gx, self._gxe, self._column = gx, gxe, Column
        self._context = gx.get_context(mode="ephemeral")
        # GX draws a tqdm bar per validation; stage logs are no place for them.
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self._context.data_sources.add_pandas("lamops")
        self._definitions: dict[str, Any] = {}
        self._lock = threading.Lock()  # GX contexts are not documented as thread-safe

    def run(self, name: str, expectations: Sequence[Expect], df: pd.DataFrame, params: dict[str, Any]) -> Any:
        with self._lock:
            definition = self._definitions.get(name)
            if definition is None:
                definition = self._definitions[name] = self._define(name, expectations)
            return definition.run(
                batch_parameters={"dataframe": df}, expectation_parameters=params, result_format="SUMMARY"
            )

    def _define(self, name: str, expectations: Sequence[Expect]) -> Any:
        suite = self._context.suites.add(
            self._gx.ExpectationSuite(
                name=name,
                expectations=[self._expectation(e) for e in expectations],
            )
        )
        batch = self._source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        return self._context.validation_definitions.add(
            self._gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )

    def _expectation(self, e: Expect) -> Any:
        where = {"row_condition": self._column(e.where[0]) == e.where[1]} if e.where else {}
        return getattr(self._gxe, e.kind)(description=e.description, **e.kwargs, **where)


@functools.cache
def _gx() -> _Gx:
    return _Gx()


def validate(name: str, df: pd.DataFrame, *, forbidden_ids: set[str] | None = None) -> ValidationReport:
    """Run boundary `name`'s suites on `df` (see `frame`); `forbidden_ids` adds the frozen-test-id gate."""
    spec = boundary(name)
    start = time.perf_counter()
    gx = _gx()
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        # The views need the columns: run only the column check, so the report says which are missing.
        runs = [(spec.views[0].name, spec.views[0].expectations[:1], df, f"{spec.name}.columns", {})]
    else:
        runs = [_plan(spec, view, df, forbidden_ids, primary=i == 0) for i, view in enumerate(spec.views)]
    failures, evaluated, sizes = [], 0, {}
    for view_name, expectations, view_df, key, params in runs:
        result = gx.run(key, expectations, view_df, params)
        evaluated += len(result.results)
        sizes[view_name] = len(view_df)
        failures += [_failure(r, view_name, view_df) for r in result.results if not r.success]
    return ValidationReport(
        boundary=spec.name,
        success=not failures,
        rows=len(df),
        evaluated=evaluated,
        failures=failures,
        views=sizes,
        seconds=round(time.perf_counter() - start, 3),
    )


def check(name: str, df: pd.DataFrame, *, forbidden_ids: set[str] | None = None) -> ValidationReport:
    """`validate`, raising DataValidationError (message: boundary, failing rules, example rows) on failure."""
    report = validate(name, df, forbidden_ids=forbidden_ids)
    if not report.success:
        raise DataValidationError(report)
    return report


def _plan(
    spec: Boundary, view: View, df: pd.DataFrame, forbidden_ids: set[str] | None, primary: bool
) -> tuple[str, Sequence[Expect], pd.DataFrame, str, dict[str, Any]]:
    view_df = view.build(df)
    if primary and forbidden_ids is not None:
        expectations = (*view.expectations, forbidden_ids_expectation(spec.forbidden_where))
        params = {"forbidden_ids": sorted(forbidden_ids)}
        return view.name, expectations, view_df, f"{view.name}+forbidden", params
    return view.name, view.expectations, view_df, view.name, {}


def _failure(result: Any, view: str, df: pd.DataFrame) -> Failure:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    columns = _columns_of(kwargs)
    info = result.exception_info or {}
    error = info.get("exception_message") if info.get("raised_exception") else None
    if error is None and isinstance(info, dict):  # GX keys exceptions by metric when several were raised
        messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict)]
        error = next((m for m in messages if m), None)
    outcome = result.result or {}
    if config.type in _DUPLICATE_CHECKS and columns:
        # GX lists the first duplicates it met; showing each duplicate next to its twin reads better.
        dupes = df[df.duplicated(subset=columns, keep=False)].sort_values(columns, kind="stable")
        indices = list(dupes.index[:MAX_EXAMPLES])
    else:
        indices = list(outcome.get("partial_unexpected_index_list") or [])[:MAX_EXAMPLES]
    return Failure(
        expectation=ExpectationRef(
            type=config.type,
            column=", ".join(columns) or None,
            kwargs={k: _short(_plain_condition(v)) for k, v in kwargs.items() if k not in _COLUMN_KWARGS},
        ),
        view=view,
        description=config.description or "",
        unexpected_count=outcome.get("unexpected_count"),
        examples=[_example(df.loc[i], columns) for i in indices if i in df.index],
        observed=_observed(outcome),
        error=error,
    )


def _columns_of(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


def _plain_condition(value: Any) -> Any:
    # GX stores a row condition as {"type": "comparison", "column": {"name": ...}, "operator", "parameter"}.
    if isinstance(value, dict) and value.get("type") == "comparison":
        return f"{value['column']['name']} {value['operator']} {value['parameter']!r}"
    return value


def _observed(outcome: dict[str, Any]) -> Any:
    missing = (outcome.get("details") or {}).get("mismatched", {}).get("missing")
    if missing:
        return {"missing columns": missing}
    if outcome.get("partial_missing_list"):
        return {"missing values": _short(outcome["partial_missing_list"])}
    return _short(outcome.get("observed_value"))


def _example(row: pd.Series, first: list[str]) -> dict[str, Any]:
    """An offending row: the checked columns first, then the task id, then the rest; long values cut."""
    order = [*first, *(["task_id"] if "task_id" in row.index else [])]
    order += [c for c in row.index if c not in order]
    return {str(c): _short(row[c]) for c in order if c in row.index}


def _short(value: Any) -> Any:
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars and arrays
        value = value.tolist()
    if isinstance(value, list | tuple | set | frozenset):
        items = [_short(v) for v in list(value)[:MAX_ITEMS]]
        return items + ([f"... ({len(value)} in all)"] if len(value) > MAX_ITEMS else [])
    if isinstance(value, dict):
        return {str(k): _short(v) for k, v in list(value.items())[:MAX_ITEMS]}
    if value is None or pd.isna(value):
        return None
    if isinstance(value, str):
        return value if len(value) <= MAX_CHARS else f"{value[:MAX_CHARS]}... ({len(value)} chars)"
    if isinstance(value, bool | int | float):
        return value
    return _short(str(value))
