"""Errors of the mapping layer: configuration mistakes raise, bad values become error rows."""

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

ERROR_COLUMNS = ("row", "field", "reason")
_MAX_SHOWN = 80


class MappingConfigError(ValueError):
    """The mapping (or the schema it feeds) cannot work for any record: fix the connector, not the data."""


def empty_errors() -> pd.DataFrame:
    """An error table with no rows: columns `row` (int), `field` and `reason` (str)."""
    return error_frame([], [], [])


def error_frame(rows: Iterable[Any], fields: Iterable[str] | str, reasons: Iterable[str]) -> pd.DataFrame:
    """Build an error table; `fields` may be one field name shared by every row."""
    rows = [int(r) for r in rows]
    reasons = list(reasons)
    fields = [fields] * len(rows) if isinstance(fields, str) else list(fields)
    return pd.DataFrame(
        {
            "row": pd.Series(rows, dtype="int64"),
            "field": pd.Series(fields, dtype="str"),
            "reason": pd.Series(reasons, dtype="str"),
        }
    )


def concat_errors(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Stack error tables, keeping each table's order and renumbering the index."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_errors()
    return pd.concat(frames, ignore_index=True)


def show_value(value: Any) -> str:
    """A value as it appears in an error message: `'abc'`, `42`, `[1, 2]` (long ones are cut)."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
