"""The steps that compute one canonical column: source, `map`, `type`, `lookup`, `default`.

Each step works on whole columns. A value a step cannot handle becomes null and a row error
(`Step.bad` + `Step.reasons`); later steps leave that cell alone.

Concat items: an item wrapped in single quotes (`"'USA'"`, `"' - '"`) is a literal, quotes removed.
Otherwise an item written like a path (dot-separated segments of letters, digits, `_`, `-`, `@`,
`#`, `$`, `:` - see `paths.PATH_PATTERN`) is a path, and anything else - containing a space, a comma,
a slash or other punctuation, or empty - is a literal. So `[location.city, ", ", location.region]`
is path, literal, path; a bare word like `USA` is a path, write `"'USA'"` for the text.

Values (stripped text; empty is null) are written in order. Each value is preceded by the literals
between it and the previous path item, and by `separator`, unless it is the first value written:
a null value is skipped together with the literals just before it. Literals before the first path
item and after the last are a prefix and a suffix, written around the result when any value is
present. No value at all gives null. `[city, ", ", region]`: "Austin, TX", "Austin", "TX" or null.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from integration_pipelines.mapping.coercion import as_text, coerce, few_distinct, spread
from integration_pipelines.mapping.errors import MappingConfigError, show_value
from integration_pipelines.mapping.paths import as_list, get_path, is_path, resolve_path

Lookup = Callable[[str, pd.Series], pd.Series]
_MAX_KNOWN_SHOWN = 12


@dataclass(frozen=True)
class ConcatPart:
    """One concat item: a path to read or a literal to write."""

    text: str
    is_path: bool


@dataclass(frozen=True)
class Step:
    """A step's output column, and the rows it rejected with why."""

    values: pd.Series
    bad: np.ndarray | None = None
    reasons: list[str] = field(default_factory=list)


def parse_concat(items: list[str]) -> list[ConcatPart]:
    """Classify concat items as paths or literals (rule in the module docstring)."""
    parts = []
    for item in items:
        if len(item) >= 2 and item[0] == item[-1] == "'":
            parts.append(ConcatPart(item[1:-1], False))
        else:
            parts.append(ConcatPart(item, is_path(item)))
    return parts


def concat_values(raw: pd.DataFrame, parts: list[ConcatPart], separator: str = "") -> pd.Series:
    """Join paths and literals row by row, skipping null values with their leading literals."""
    paths = [i for i, p in enumerate(parts) if p.is_path]
    if not paths:
        raise MappingConfigError("concat needs at least one path item; use `value` for a constant")
    prefix = "".join(p.text for p in parts[: paths[0]])
    suffix = "".join(p.text for p in parts[paths[-1] + 1 :])
    result = pd.Series(np.nan, index=raw.index, dtype="str")
    previous = paths[0]
    for position in paths:
        joiner = separator + "".join(p.text for p in parts[previous + 1 : position])
        previous = position
        text = as_text(resolve_path(raw, parts[position].text))
        has_text, has_result = text.notna(), result.notna()
        joined = result + joiner + text
        result = joined.where(has_text & has_result, text.where(has_text, result))
    return prefix + result + suffix


def constant(raw: pd.DataFrame, value: Any) -> pd.Series:
    """`value` on every row."""
    return pd.Series([value] * len(raw), index=raw.index, dtype=object)


def shape_items(values: pd.Series, items: Mapping[str, str]) -> pd.Series:
    """Each cell's list of partner objects as a list of `{key: value at path}` dicts."""

    def shape(cell: Any) -> list[dict[str, Any]]:
        return [{key: get_path(element, path) for key, path in items.items()} for element in as_list(cell)]

    return pd.Series([shape(v) for v in values.to_numpy(dtype=object)], index=values.index, dtype=object)


def call_hook(
    raw: pd.DataFrame, hook_name: str, hook: Callable[[pd.DataFrame], Any], field_name: str
) -> pd.Series:
    """Run a hook on the raw batch and align its output to the batch's rows (not called for no rows)."""
    if not len(raw):
        return pd.Series([], index=raw.index, dtype=object)
    try:
        out = hook(raw.copy(deep=False))
    except Exception as exc:
        exc.add_note(f"in hook {hook_name!r}, computing field {field_name!r}")
        raise
    where = f"hook {hook_name!r} (field {field_name!r})"
    if not isinstance(out, pd.Series):
        if isinstance(out, pd.DataFrame | str | bytes | Mapping) or not hasattr(out, "__len__"):
            raise MappingConfigError(f"{where} must return a Series, got {type(out).__name__}")
        out = pd.Series(list(out), dtype=object)
    if len(out) != len(raw):
        raise MappingConfigError(f"{where} returned {len(out)} values for {len(raw)} records")
    if out.index.equals(raw.index):
        return out
    if out.index.is_unique and out.index.isin(raw.index).all():
        return out.reindex(raw.index)
    return pd.Series(out.array, index=raw.index)


def apply_map(values: pd.Series, table: Mapping[str, Any], default: Any, field_name: str) -> Step:
    """Translate enum values by their text; unmapped values take `default`, or are errors without one."""
    if (distinct := few_distinct(values)) is not None:  # map each distinct value once
        codes, uniques = distinct
        once = apply_map(uniques, table, default, field_name)
        if once.bad is None:
            return Step(spread(once.values, codes, values.index))
        bad = spread(once.bad, codes)
        reason_of = dict(zip(np.flatnonzero(once.bad).tolist(), once.reasons, strict=True))
        reasons = [reason_of[c] for c in codes[bad].tolist()]
        return Step(spread(once.values, codes, values.index), bad, reasons)
    text = as_text(values)
    present = text.notna().to_numpy()
    known = text.isin(list(table)).to_numpy()
    out = text.map(dict(table)).to_numpy(dtype=object).copy()
    out[~known] = None
    unmapped = present & ~known
    if not unmapped.any():
        return Step(pd.Series(out, index=values.index, dtype=object))
    if default is not None:
        out[unmapped] = [default] * int(unmapped.sum())
        return Step(pd.Series(out, index=values.index, dtype=object))
    keys = list(table)
    shown = ", ".join(map(str, keys[:_MAX_KNOWN_SHOWN])) + (", ..." if len(keys) > _MAX_KNOWN_SHOWN else "")
    reasons = [
        f"{field_name}: unmapped value {show_value(v)} (known: {shown})"
        for v in values.to_numpy(dtype=object)[unmapped]
    ]
    return Step(pd.Series(out, index=values.index, dtype=object), unmapped, reasons)


def apply_type(values: pd.Series, type_: str, fmt: str | None, timezone: str | None, field_name: str) -> Step:
    """Coerce to the mapping `type`; values that do not parse are row errors."""
    result = coerce(values, type_, fmt=fmt, timezone=timezone)
    if not result.bad.any():
        return Step(result.values)
    reasons = [
        f"{field_name}: {show_value(v)} is not {result.expected}"
        for v in values.to_numpy(dtype=object)[result.bad]
    ]
    return Step(result.values, result.bad, reasons)


def apply_lookup(
    values: pd.Series, entity: str, lookup: Lookup, field_name: str, missing: str = "reject"
) -> Step:
    """Resolve partner external ids (as text) to ATS internal ids; unknown ids are row errors
    (or, with `missing="null"`, simply null: a reference the ATS does not hold).

    `lookup(entity, ids)` is called once, with the non-null ids (index = their rows), and must
    return the internal ids aligned to that index (null where unknown).
    """
    ids = as_text(values)
    present = ids.notna().to_numpy()
    if not present.any():
        return Step(pd.Series(None, index=values.index, dtype=object))
    query = ids[present]
    found = lookup(entity, query)
    if not isinstance(found, pd.Series):
        found = pd.Series(list(found), dtype=object) if np.ndim(found) == 1 else None
        if found is None or len(found) != len(query):
            raise MappingConfigError(f"lookup for {entity!r} must return one internal id per external id")
        found.index = query.index
    elif not found.index.equals(query.index):
        if query.index.isin(found.index).all():
            found = found.reindex(query.index)
        elif len(found) == len(query):
            found = pd.Series(found.array, index=query.index)
        else:
            raise MappingConfigError(
                f"lookup for {entity!r} returned {len(found)} ids for {len(query)} queried"
            )
    if found.dtype.kind in "iu":
        found = found.astype("Int64")
    result = found.reindex(values.index)
    if missing == "null":
        return Step(result)
    unresolved = present & result.isna().to_numpy()
    reasons = [
        f"{field_name}: no {entity} with external id {show_value(v)} has been synced for this connection"
        for v in ids.to_numpy(dtype=object)[unresolved]
    ]
    return Step(result, unresolved if unresolved.any() else None, reasons)


def apply_default(values: pd.Series, default: Any, keep_null: np.ndarray) -> pd.Series:
    """Fill nulls with `default`, except cells in `keep_null` (values already rejected)."""
    if default is None:
        return values
    missing = values.isna().to_numpy() & ~keep_null
    if not missing.any():
        return values
    if isinstance(default, list | tuple | dict):
        cells = values.to_numpy(dtype=object).copy()
        cells[missing] = [default] * int(missing.sum())
        return pd.Series(cells, index=values.index, dtype=object)
    return values.mask(missing, default)
