"""Dotted paths into partner records, and the flat frame the mapping engine reads them from.

Path grammar: segments separated by dots; a segment is a dict key, or an integer index into
a list (`ContactInformation.Telephones.0.Raw`, `Title.0`, negative indices count from the end).
Because XML converted with xmltodict gives a dict where a repeated element occurs once and a
list where it occurs more than once, index `0` of a value that is not a list is the value itself
(`as_list` semantics) and any other index of it is null.

`flatten_records` turns nested dicts into dotted columns (lists stay as list cells, values stay
exactly as the partner sent them, in object columns). `resolve_path` finds a path in that frame:
the longest flattened column that is a prefix of the path, then the remaining segments applied
element-wise. A path no record has gives an all-null column.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# a path segment: word characters plus the characters xmltodict and partner APIs use in keys
# (`@id`, `#text`, `ns:Tag`, `first-name`, `$ref`), with at least one word character
_SEGMENT = r"[\w@#$:-]*\w[\w@#$:-]*"
PATH_PATTERN = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_INDEX = re.compile(r"-?\d+")


def as_list(value: Any) -> list[Any]:
    """`value` as a list: null -> [], list/tuple -> list, anything else (dict, scalar) -> [value].

    Use it wherever XML may hold one element or many: xmltodict returns a dict for a single
    `<JobPosting>` and a list of dicts for several.
    """
    if is_null(value):
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def is_null(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA (never for lists or dicts, unlike `pd.isna`)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and value != value


def is_path(item: str) -> bool:
    """Whether `item` is written like a path (see the module docstring for the grammar)."""
    return PATH_PATTERN.fullmatch(item) is not None


def step(value: Any, segment: str) -> Any:
    """Apply one path segment to one value; null when the segment does not apply."""
    if is_null(value):
        return None
    if isinstance(value, list | tuple):
        if _INDEX.fullmatch(segment):
            index = int(segment)
            return value[index] if -len(value) <= index < len(value) else None
        return None
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        return value if segment == "0" else None
    return value if segment == "0" else None


def get_path(obj: Any, path: str) -> Any:
    """The value at `path` in one nested object (dicts and lists), or None if it is absent."""
    for segment in path.split("."):
        obj = step(obj, segment)
        if obj is None:
            return None
    return obj


def flatten_records(records: Sequence[Mapping[str, Any] | None]) -> pd.DataFrame:
    """One row per record, one object column per dotted leaf path; lists stay as list cells.

    Missing leaves are None. Empty dicts add no column. A None record is an empty row.
    """
    n = len(records)
    columns: dict[str, list[Any]] = {}

    def walk(node: Mapping[str, Any], prefix: str, row: int) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(value, name + ".", row)
                continue
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * n
            column[row] = value

    for row, record in enumerate(records):
        if record is None:
            continue
        if not isinstance(record, Mapping):
            raise TypeError(f"record {row} is a {type(record).__name__}, expected a mapping")
        walk(record, "", row)
    index = pd.RangeIndex(n)
    return pd.DataFrame(
        {name: pd.Series(values, index=index, dtype=object) for name, values in columns.items()},
        index=index,
    )


def _readings(segments: list[str], columns: set[str]) -> list[tuple[str, list[str]]]:
    """(column, remaining segments) pairs where `segments` can be found, most specific first.

    Besides the literal prefixes, a `0` segment inside a prefix may be skipped: a column
    `A.B.Raw` exists for records whose `A.B` was a single dict, which path `A.B.0.Raw` means too.
    """
    found: list[tuple[str, list[str]]] = []
    for end in range(len(segments), 0, -1):
        prefix = segments[:end]
        variants = [prefix]
        for i in range(len(prefix) - 2, 0, -1):  # never the first or last segment of the prefix
            if prefix[i] == "0":
                variants += [v[:i] + v[i + 1 :] for v in variants]
        for variant in variants:
            name = ".".join(variant)
            if name in columns and all(name != c for c, _ in found):
                found.append((name, segments[end:]))
    return found


def _walk_column(column: pd.Series, segments: list[str]) -> pd.Series:
    if not segments:
        return column
    values = column.to_numpy(dtype=object)
    for segment in segments:
        values = [step(v, segment) for v in values]
    return pd.Series(values, index=column.index, dtype=object)


def resolve_path(frame: pd.DataFrame, path: str) -> pd.Series:
    """The values at `path` for every row of a frame from `flatten_records` (all null if absent).

    Hooks can use it too: it never raises for a path that this batch does not contain.
    """
    segments = path.split(".")
    readings = _readings(segments, set(frame.columns))
    if not readings:
        return pd.Series(None, index=frame.index, dtype=object)
    column, rest = readings[0]
    result = _walk_column(frame[column], rest)
    for column, rest in readings[1:]:
        other = _walk_column(frame[column], rest)
        result = result.astype(object)
        missing = np.fromiter((is_null(v) for v in result.to_numpy()), dtype=bool, count=len(result))
        if missing.any():
            values = result.to_numpy(dtype=object).copy()
            values[missing] = other.to_numpy(dtype=object)[missing]
            result = pd.Series(values, index=frame.index, dtype=object)
    return result
