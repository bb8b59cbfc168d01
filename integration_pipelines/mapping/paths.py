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
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

# a path segment: word characters plus the characters xmltodict and partner APIs use in keys
# (`@id`, `#text`, `ns:Tag`, `first-name`, `$ref`), with at least one word character
_SEGMENT = r"[\w@#$:-]*\w[\w@#$:-]*"
PATH_PATTERN = re.compile(rf"{_SEGMENT}(?:\.(?:{_SEGMENT}|\*))*")
EACH = "*"  # a segment that plucks the rest of the path from every element of a list
_INDEX = re.compile(r"-?\d+")
_LEAF_TYPES = frozenset({str, int, float, bool, list, type(None)})
# what `infer_dtype` calls an object column that certainly holds no dict
_SCALAR_KINDS = frozenset({"empty", "string", "integer", "floating", "mixed-integer-float", "boolean"})


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


def walk(value: Any, segments: Sequence[str]) -> Any:
    """Apply path segments to one value; `*` maps the rest over each list element (nulls dropped)."""
    for i, segment in enumerate(segments):
        if segment == EACH:
            rest = segments[i + 1 :]
            plucked = (walk(v, rest) for v in as_list(value))
            return [v for v in plucked if not is_null(v)]
        value = step(value, segment)
        if value is None:
            return None
    return value


def get_path(obj: Any, path: str) -> Any:
    """The value at `path` in one nested object (dicts and lists), or None if it is absent."""
    if type(obj) is dict and path in obj and "." not in path and path != EACH:
        return obj[path]  # a plain key (runs for every record of a page): no walk needed
    return walk(obj, path.split("."))


def flatten_records(records: Sequence[Mapping[str, Any] | None]) -> pd.DataFrame:
    """One row per record, one object column per dotted leaf path; lists stay as list cells.

    Missing leaves are None. Empty dicts add no column. A None record is an empty row.
    Columns come in order of first appearance, a nested dict's columns where its key is.

    Each level is read by pandas' C record reader (`pd.DataFrame(dicts, dtype=object)`), not by a
    Python loop per value; only columns holding dicts are flattened further, the same way.
    """
    rows = _dict_rows(records)
    index = pd.RangeIndex(len(rows))
    columns = _flat_columns(rows, "")
    if not columns:
        return pd.DataFrame(index=index)
    return pd.DataFrame(columns, index=index, dtype=object, copy=False)  # one block per column: no stacking


def _dict_rows(records: Sequence[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """The records as a list of dicts (None -> {}); TypeError for anything that is not a mapping."""
    rows = list(records)
    if set(map(type, rows)) <= {dict}:
        return rows
    for row, record in enumerate(rows):
        if record is None:
            rows[row] = {}
        elif not isinstance(record, Mapping):
            raise TypeError(f"record {row} is a {type(record).__name__}, expected a mapping")
        elif type(record) is not dict:
            rows[row] = dict(record)
    return rows


def _flat_columns(rows: list[dict[str, Any]], prefix: str) -> dict[str, np.ndarray]:
    """Dotted columns (`prefix` + key) of one nesting level of `rows`, nested dicts flattened too."""
    level = pd.DataFrame(rows, dtype=object)  # keys in order of first appearance; absent keys: NaN
    every_row_has_every_key = sum(map(len, rows)) == level.shape[1] * len(rows)
    columns: dict[str, np.ndarray] = {}
    for key, column in level.items():
        name = f"{prefix}{key}"
        cells = column.to_numpy(dtype=object)  # read-only view: copied before a change
        absent = np.zeros(len(rows), dtype=bool)
        if not every_row_has_every_key:  # pandas gave NaN where the key is absent: a missing leaf is None
            absent = ~np.fromiter(map(dict.__contains__, rows, repeat(key)), dtype=bool, count=len(rows))
            cells = cells.copy()
            cells[absent] = None
        found = _mappings(cells)
        if found is None:
            _add_column(columns, name, cells, absent)
            continue
        nested, kinds = found
        if (~nested & ~absent).any():  # some records have a plain value (or null) here
            leaves = cells.copy()
            leaves[nested] = None
            _add_column(columns, name, leaves, absent | nested)
        children = cells.tolist()
        if kinds != {dict}:  # some rows hold no dict here, or another kind of mapping
            children = [
                (c if type(c) is dict else dict(c)) if flag else {}
                for c, flag in zip(children, nested.tolist(), strict=True)
            ]
        for child, child_cells in _flat_columns(children, name + ".").items():
            _add_column(columns, child, child_cells, None)
    return columns


def _mappings(cells: np.ndarray) -> tuple[np.ndarray, set[type]] | None:
    """Which cells are dicts (or other mappings) to flatten further, and the types of all cells;
    None if no cell is a mapping."""
    if infer_dtype(cells, skipna=True) in _SCALAR_KINDS:
        return None
    types = list(map(type, cells))
    kinds = set(types)
    nested = {t for t in kinds if t is dict or (t not in _LEAF_TYPES and issubclass(t, Mapping))}
    if not nested:
        return None
    return np.fromiter(map(nested.__contains__, types), dtype=bool, count=len(types)), kinds


def _add_column(
    columns: dict[str, np.ndarray], name: str, cells: np.ndarray, unset: np.ndarray | None
) -> None:
    """Add a column; where a name repeats (a key `a.b` beside `a: {b: ...}`), set cells win."""
    if name in columns:
        cells = np.where(_nulls(cells) if unset is None else unset, columns[name], cells)
    columns[name] = cells


def _variants(segments: list[str], keep_last: bool) -> list[list[str]]:
    """`segments`, then with `0` segments skipped (never the first; the last only if not `keep_last`).

    A column `A.B.Raw` exists for records whose `A.B` was a single dict, which `A.B.0.Raw` means too.
    """
    variants = [segments]
    last = len(segments) - (2 if keep_last else 1)
    for i in range(last, 0, -1):
        if segments[i] == "0":
            variants += [v[:i] + v[i + 1 :] for v in variants]
    return variants


def _readings(segments: list[str], columns: set[str]) -> list[tuple[str, list[str]]]:
    """(column, remaining segments) pairs where `segments` can be found, most specific first."""
    found: list[tuple[str, list[str]]] = []
    for end in range(len(segments), 0, -1):
        for variant in _variants(segments[:end], keep_last=True):
            name = ".".join(variant)
            if name in columns and all(name != c for c, _ in found):
                found.append((name, segments[end:]))
    return found


def _children(segments: list[str], columns: pd.Index) -> list[tuple[str, list[str]]]:
    """Flattened columns below the node `segments` (when the path names a dict, not a leaf)."""
    found: list[tuple[str, list[str]]] = []
    for variant in _variants(segments, keep_last=False):
        prefix = ".".join(variant) + "."
        found += [(c, c[len(prefix) :].split(".")) for c in columns if c.startswith(prefix)]
    return found


def _walk_column(column: pd.Series, segments: list[str]) -> pd.Series:
    if not segments:
        return column
    values = column.to_numpy(dtype=object)
    for segment in segments:
        values = [step(v, segment) for v in values]
    return pd.Series(values, index=column.index, dtype=object)


def _nulls(values: np.ndarray) -> np.ndarray:
    return np.fromiter((is_null(v) for v in values), dtype=bool, count=len(values))


def _fill(result: pd.Series, other: pd.Series) -> pd.Series:
    """`result` with its null cells taken from `other`."""
    cells = result.to_numpy(dtype=object)
    missing = _nulls(cells)
    if not missing.any():
        return result
    cells = cells.copy()
    cells[missing] = other.to_numpy(dtype=object)[missing]
    return pd.Series(cells, index=result.index, dtype=object)


def _rebuild_dicts(frame: pd.DataFrame, children: list[tuple[str, list[str]]]) -> pd.Series:
    """The dict each row had at a node, rebuilt from its flattened child columns (None if none)."""
    cells = np.full(len(frame), None, dtype=object)
    for column, keys in children:
        values = frame[column].to_numpy(dtype=object)
        for row in np.flatnonzero(~_nulls(values)):
            node = cells[row] if cells[row] is not None else {}
            cells[row] = node
            for key in keys[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    break
            else:
                node.setdefault(keys[-1], values[row])
    return pd.Series(cells, index=frame.index, dtype=object)


def resolve_path(frame: pd.DataFrame, path: str) -> pd.Series:
    """The values at `path` for every row of a frame from `flatten_records` (all null if absent).

    A path naming a dict (not a leaf) gives that dict, rebuilt from the flattened columns below it.
    Hooks can use it too: it never raises for a path that this batch does not contain.
    """
    segments = path.split(".")
    if EACH in segments:
        at = segments.index(EACH)
        lists = resolve_path(frame, ".".join(segments[:at])) if at else pd.Series(None, index=frame.index)
        rest = segments[at:]
        return pd.Series(
            [walk(v, rest) for v in lists.to_numpy(dtype=object)], index=frame.index, dtype=object
        )
    readings = _readings(segments, set(frame.columns))
    if readings:
        column, rest = readings[0]
        result = _walk_column(frame[column], rest)
        for column, rest in readings[1:]:
            result = _fill(result, _walk_column(frame[column], rest))
    else:
        result = pd.Series(None, index=frame.index, dtype=object)
    children = _children(segments, frame.columns)
    if children:
        result = _fill(result, _rebuild_dicts(frame, children))
    return result
