"""Validate a mapped frame with a pandera schema, splitting it into valid rows and row errors.

Failures pandera ties to a row (a check, a null, a value that does not coerce) reject that row.
Failures of the frame's shape - a column the schema requires is missing, an unexpected column under
`strict=True`, columns out of order under `ordered=True` - are configuration problems: the mapping
does not produce what the schema needs, for any batch, so `MappingConfigError` is raised and the sync
stops loudly. Other failures with no row (a whole column of the wrong dtype that is not coerced, a
dataframe check returning a single False, a check that raises) depend on the data: every row still
standing is rejected with that reason, so nothing is dropped silently and the batch is quarantined.

Rows are validated in passes: pandera cannot run a column's checks while some of its values fail
to coerce, so after removing rejected rows the rest are validated again until they pass.
"""

import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

from integration_pipelines.mapping.errors import (
    ERROR_COLUMNS,
    MappingConfigError,
    concat_errors,
    empty_errors,
    error_frame,
    show_value,
)
from integration_pipelines.mapping.paths import is_null

STRUCTURAL_CHECKS = frozenset(
    {
        "column_in_dataframe",
        "column_in_schema",
        "column_ordered",
        "dataframe_column_labels_unique",
        "add_missing_has_default",
        "column_in_index",
        "multiindex_strict",
    }
)
MAX_PASSES = 10
BATCH_FIELD = "*"
_DTYPE_CHECK = re.compile(r"dtype\('?(.*?)'?\)$")
_COERCE_CHECK = re.compile(r"coerce_dtype\('?(.*?)'?\)$")


@dataclass
class ValidationResult:
    """`valid`: the rows that passed, as the schema returns them (coerced, filtered), index kept.
    `errors`: one row per failure, columns `row` (index label of the input frame), `field`, `reason`."""

    valid: pd.DataFrame
    errors: pd.DataFrame

    def rejected_rows(self) -> set[int]:
        """Index labels of the rows that failed validation."""
        return set(self.errors["row"].tolist())


def validate_frame(
    frame: pd.DataFrame, schema: type[pa.DataFrameModel] | pa.DataFrameSchema
) -> ValidationResult:
    """Validate lazily with `schema`; failing rows become errors, the rest are returned validated.

    Raises `MappingConfigError` when the frame's columns do not fit the schema (see module docstring).
    """
    dataframe_schema = schema.to_schema() if isinstance(schema, type) else schema
    remaining = frame
    errors: list[pd.DataFrame] = []
    for _ in range(MAX_PASSES):
        try:
            valid = dataframe_schema.validate(remaining, lazy=True)
            return ValidationResult(valid, _sorted(errors))
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
        no_row = cases["index"].isna()
        structural = cases[no_row & cases["check"].isin(STRUCTURAL_CHECKS)]
        if len(structural):
            raise MappingConfigError(_structural_message(structural, dataframe_schema))
        row_cases = cases[~no_row]
        if len(row_cases):
            errors.append(_row_errors(row_cases, remaining))
            remaining = remaining.drop(index=row_cases["index"].unique())
            if len(remaining):
                continue
        else:
            reasons = [_batch_reason(case) for case in cases.to_dict("records")]
            fields = ", ".join(
                dict.fromkeys(_field(c["column"], remaining) for c in cases.to_dict("records"))
            )
            errors.append(error_frame(remaining.index, fields, ["; ".join(reasons)] * len(remaining)))
        break
    else:
        reason = f"validation did not settle after {MAX_PASSES} passes"
        errors.append(error_frame(remaining.index, BATCH_FIELD, [reason] * len(remaining)))
    return ValidationResult(_empty_valid(remaining.iloc[:0], dataframe_schema), _sorted(errors))


def combine_errors(*errors: pd.DataFrame | None) -> pd.DataFrame:
    """One row per rejected record: `row`, `field` (", "-joined) and `reason` ("; "-joined), by row.

    Pass the mapping errors and the validation errors; quarantine each row once with all reasons.
    """
    stacked = concat_errors(e for e in errors if e is not None)
    if not len(stacked):
        return empty_errors()
    stacked = stacked.drop_duplicates(["row", "field", "reason"])
    combined = stacked.groupby("row", sort=True).agg(
        field=("field", lambda s: ", ".join(dict.fromkeys(s))),
        reason=("reason", "; ".join),
    )
    return error_frame(combined.index, combined["field"], combined["reason"])[list(ERROR_COLUMNS)]


def _sorted(errors: list[pd.DataFrame]) -> pd.DataFrame:
    return concat_errors(errors).sort_values("row", kind="stable", ignore_index=True)


def _field(column: Any, frame: pd.DataFrame) -> str:
    return str(column) if column in frame.columns else BATCH_FIELD


def _row_errors(cases: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    records = cases.to_dict("records")
    coerce_failed = {(c["index"], c["column"]) for c in records if _COERCE_CHECK.match(str(c["check"]))}
    rows, fields, reasons = [], [], []
    wide: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for case in records:
        check = str(case["check"])
        if case["schema_context"] == "DataFrameSchema":  # one case per column of the row: group them
            wide.setdefault((case["index"], check), []).append(case)
            continue
        if _DTYPE_CHECK.match(check) and (case["index"], case["column"]) in coerce_failed:
            continue  # the coerce_dtype failure of the same cell says it already
        field = _field(case["column"], frame)
        rows.append(case["index"])
        fields.append(field)
        reasons.append(_row_reason(case, _cell(frame, case["index"], case["column"]), field))
    for (row, check), group in wide.items():
        columns = [c["column"] for c in group if c["column"] in frame.columns]
        shown = ", ".join(f"{c}={show_value(_cell(frame, row, c))}" for c in columns)
        what = "duplicate combination" if check == "multiple_fields_uniqueness" else f"row fails {check}"
        rows.append(row)
        fields.append(", ".join(columns) or BATCH_FIELD)
        reasons.append(f"{what} ({shown})" if shown else what)
    return error_frame(rows, fields, reasons)


def _cell(frame: pd.DataFrame, row: Hashable, column: Any) -> Any:
    if column in frame.columns and row in frame.index:
        return frame.at[row, column]
    return None


def _row_reason(case: dict[str, Any], value: Any, field: str) -> str:
    check = str(case["check"])
    if value is None or (not isinstance(value, list | dict) and is_null(value)):
        value = case["failure_case"]
    shown = "null" if is_null(value) else show_value(value)
    if check == "not_nullable":
        return f"{field}: null not allowed"
    if check in ("field_uniqueness", "multiple_fields_uniqueness"):
        return f"{field}: duplicate value {shown}"
    if match := _COERCE_CHECK.match(check):
        return f"{field}: {shown} cannot be coerced to {match.group(1)}"
    if match := _DTYPE_CHECK.match(check):
        return f"{field}: {shown} is not {match.group(1)}"
    return f"{field}: {shown} fails {check}"


def _batch_reason(case: dict[str, Any]) -> str:
    check, column, failure = str(case["check"]), case["column"], case["failure_case"]
    if match := _DTYPE_CHECK.match(check):
        return f"{column}: column dtype is {failure}, expected {match.group(1)} (whole batch rejected)"
    return f"{column}: {check} failed for the whole batch ({failure})"


def _structural_message(cases: pd.DataFrame, schema: pa.DataFrameSchema) -> str:
    problems = []
    for case in cases.to_dict("records"):
        check, failure = case["check"], case["failure_case"]
        if check == "column_in_dataframe":
            problems.append(f"column {failure!r} required by the schema is not in the mapped frame")
        elif check == "column_in_schema":
            problems.append(f"column {failure!r} is not in the schema (strict=True)")
        else:
            problems.append(f"{check}: {failure}")
    name = schema.name or "schema"
    return f"mapped frame does not fit {name}: " + "; ".join(problems)


def _empty_valid(empty: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    try:
        return schema.validate(empty, lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError):
        return empty
