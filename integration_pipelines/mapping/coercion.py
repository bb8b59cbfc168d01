"""`type` coercion of one mapped column: vectorised parsing, with a mask of the values that failed.

Every type first turns values into stripped text (`str(value)`); empty text is null. Then:

- `string`: pandas `str` dtype. Lists and dicts are not strings (error).
- `integer`: nullable `Int64`. Accepts `42`, `"+42"`, `"007"`, `42.0`, `"42.00"` (at most 18 digits);
  `4.5`, `"1e3"`, `true` are errors.
- `number`: `float64`; non-finite values (`nan`, `inf`) are errors.
- `decimal`: `float64` rounded to 2 places with `Series.round(2)` (half-to-even on the binary value).
  Chosen over `decimal.Decimal` objects to stay vectorised and comparable by pandera checks; money
  is stored as NUMERIC by the sink, which converts with `Decimal(str(x))`, exact for 2 places.
- `boolean`: nullable `boolean`; true/false, yes/no, 1/0, case-insensitive.
- `date`: `datetime.date` objects (object dtype). With `format`, a strftime pattern; without, ISO 8601
  `YYYY-MM-DD`, `YYYY-MM` (first of month) or `YYYY` (1 January), a time part is ignored.
- `datetime`: `datetime64[us, UTC]`. With `format` (strftime) or ISO 8601 without. Values with an
  offset keep it; naive values are wall-clock times in `timezone` (default UTC). A wall-clock time
  that occurs twice (DST ends) is the first occurrence, one that does not exist (DST starts) moves
  forward - the same choices as Python's `zoneinfo` with fold=0.
- `list`: object column of lists; a scalar or dict becomes a one-element list, null an empty list.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from integration_pipelines.mapping.paths import as_list

TYPES = ("string", "integer", "number", "decimal", "boolean", "date", "datetime", "list")
UTC_DTYPE = pd.DatetimeTZDtype("us", "UTC")
_SAMPLE = 2048
_NUMBER_KINDS = frozenset({"integer", "floating", "mixed-integer-float"})
BOOLEAN_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}

_INTEGER = r"[+-]?\d{1,18}(?:\.0*)?"
_PARTIAL_DATE = r"\d{4}(?:-\d{1,2}(?:-\d{1,2})?)?(?:[T ].*)?"
_HAS_OFFSET = r"(?i)(?:T|\s)[\d:.,]+\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class Coerced:
    """Coerced values, and which non-null inputs could not be coerced (`bad`, null in `values`)."""

    values: pd.Series
    bad: np.ndarray
    expected: str  # completes "<value> is not ..."


def as_text(values: pd.Series) -> pd.Series:
    """Values as stripped `str`-dtype text; null and empty text are NaN."""
    if (distinct := few_distinct(values)) is not None:  # strip each distinct value once
        codes, uniques = distinct
        return spread(as_text(uniques), codes, values.index)
    text = values if isinstance(values.dtype, pd.StringDtype) else values.astype("str")
    text = text.str.strip()
    return text.mask(text == "")


def coerce(values: pd.Series, type_: str, *, fmt: str | None = None, timezone: str | None = None) -> Coerced:
    """Coerce one column to a mapping `type` (see the module docstring for each type's rules)."""
    if type_ not in ("list", "string") and (distinct := few_distinct(values)) is not None:
        codes, uniques = distinct  # enum-like text (dates, flags, amounts): coerce each value once
        once = coerce(uniques, type_, fmt=fmt, timezone=timezone)
        return Coerced(spread(once.values, codes, values.index), spread(once.bad, codes), once.expected)
    if type_ in ("integer", "number", "decimal") and (numbers := _plain_numbers(values, type_)) is not None:
        return Coerced(numbers, _none(values), "")
    if type_ == "list":
        lists = [as_list(v) for v in values.to_numpy(dtype=object)]
        return Coerced(pd.Series(lists, index=values.index, dtype=object), _none(values), "a list")
    if type_ == "datetime" and isinstance(values.dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType):
        return Coerced(_localize(values, timezone), _none(values), "a datetime")
    text = as_text(values)
    present = text.notna().to_numpy()
    if type_ == "string":
        bad = _containers(values)
        return Coerced(text.mask(bad), bad, "a string")
    if type_ == "integer":
        result, ok = _integers(text)
        expected = "an integer"
    elif type_ in ("number", "decimal"):
        result = pd.to_numeric(text, errors="coerce").astype("float64")
        ok = np.isfinite(result.to_numpy())
        if type_ == "decimal":
            result = result.round(2)
        expected = "a number" if type_ == "number" else "a decimal number"
    elif type_ == "boolean":
        mapped = text.str.lower().map(BOOLEAN_WORDS)
        ok = mapped.notna().to_numpy()
        result = mapped.astype("boolean")
        expected = "a boolean (true/false, yes/no, 1/0)"
    elif type_ == "date":
        result, ok = _dates(text, fmt)
        expected = f"a date (format {fmt})" if fmt else "a date (expected YYYY-MM-DD, YYYY-MM or YYYY)"
    elif type_ == "datetime":
        result = _datetimes(text, fmt, timezone)
        ok = result.notna().to_numpy()
        expected = f"a datetime (format {fmt})" if fmt else "an ISO 8601 datetime"
    else:
        raise ValueError(f"unknown type {type_!r}; expected one of {', '.join(TYPES)}")
    bad = present & ~ok
    if bad.any() and result.dtype != object:  # e.g. inf; object results (dates) hold None already
        result = result.mask(bad)
    return Coerced(result, bad, expected)


def few_distinct(values: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """`(codes, distinct values)` of an object column of text with few distinct values, else None.

    Per-value steps (coercion, enum maps) then run once per distinct value and are spread back
    with `spread`; codes are -1 for nulls. A first look at `_SAMPLE` values skips mostly distinct
    columns (ids, timestamps) before the whole column is hashed.
    """
    if values.dtype != object or len(values) < _SAMPLE or infer_dtype(values, skipna=True) != "string":
        return None
    if len(pd.unique(values.iloc[:_SAMPLE])) > _SAMPLE // 2:
        return None
    codes, uniques = pd.factorize(values.to_numpy(), use_na_sentinel=True)
    if len(uniques) > len(values) // 4:
        return None
    return codes, pd.Series(uniques, dtype=object)


def spread(computed: pd.Series | np.ndarray, codes: np.ndarray, index: pd.Index | None = None) -> Any:
    """Values computed per distinct value (see `few_distinct`), back on every row; null for -1 codes."""
    if isinstance(computed, np.ndarray):  # a mask: False for nulls
        return np.append(computed, False)[codes]
    if computed.dtype == object:  # object results use None for null
        return pd.Series(np.append(computed.to_numpy(), None)[codes], index=index, dtype=object)
    return pd.Series(computed.array.take(codes, allow_fill=True), index=index)


def _plain_numbers(values: pd.Series, type_: str) -> pd.Series | None:
    """An object column holding only numbers (JSON numbers, not text) as `type_`, without going
    through text; None when some value is text, a bool or out of range (the text rules decide)."""
    if values.dtype != object or infer_dtype(values, skipna=True) not in _NUMBER_KINDS:
        return None
    if type_ == "integer":
        if infer_dtype(values, skipna=True) != "integer":
            return None  # 42.0 is accepted as text but 1e16 is not: let the text rules decide
        try:
            result = pd.Series(pd.array(values.to_numpy(), dtype="Int64"), index=values.index)
        except (OverflowError, TypeError, ValueError):
            return None
        return result if not (result.abs() >= 10**18).any() else None
    result = pd.to_numeric(values, errors="coerce").astype("float64")
    if not np.isfinite(result.to_numpy()[result.notna().to_numpy()]).all():
        return None  # inf: an error, reported by the text rules
    return result.round(2) if type_ == "decimal" else result


def _none(values: pd.Series) -> np.ndarray:
    return np.zeros(len(values), dtype=bool)


def _containers(values: pd.Series) -> np.ndarray:
    if values.dtype != object:
        return _none(values)
    cells = values.to_numpy()
    return np.fromiter((isinstance(v, list | tuple | dict) for v in cells), dtype=bool, count=len(cells))


def _integers(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    ok = text.str.fullmatch(_INTEGER).fillna(False).to_numpy(dtype=bool)
    result = pd.Series(pd.NA, index=text.index, dtype="Int64")
    if ok.any():
        digits = text[ok].str.replace(r"\.0*$", "", regex=True)
        result[ok] = pd.to_numeric(digits).astype("int64").to_numpy()
    return result, ok


def _dates(text: pd.Series, fmt: str | None) -> tuple[pd.Series, np.ndarray]:
    if fmt:
        parsed = _to_datetime(text, format=fmt)
    else:
        head = text.where(text.str.fullmatch(_PARTIAL_DATE).fillna(False))
        timed = (head.str.len() > 10).to_numpy(dtype=bool)  # a time part follows the date: drop it
        if timed.any():
            head[timed] = head[timed].str.replace(r"[T ].*$", "", regex=True)
        parsed = _to_datetime(head, format="ISO8601")
    ok = parsed.notna().to_numpy()
    dates = np.full(len(text), None, dtype=object)
    if ok.any() and parsed.dtype == object:  # mixed offsets, one Timestamp per cell
        dates[ok] = [stamp.date() for stamp in parsed[ok]]
    elif ok.any():
        dates[ok] = parsed[ok].dt.date.to_numpy(dtype=object)
    return pd.Series(dates, index=text.index, dtype=object), ok


def _to_datetime(text: pd.Series, **kwargs: Any) -> pd.Series:
    try:
        return pd.to_datetime(text, errors="coerce", **kwargs)
    except ValueError:  # mixed offsets: parse one by one, each keeping its own
        cells = [pd.to_datetime(v, errors="coerce", **kwargs) for v in text.to_numpy(dtype=object)]
        return pd.Series(cells, index=text.index, dtype=object)


def _datetimes(text: pd.Series, fmt: str | None, timezone: str | None) -> pd.Series:
    if timezone in (None, "UTC"):  # naive values are UTC: one parse, no need to find the offsets
        try:
            parsed = pd.to_datetime(text, format=fmt or "ISO8601", utc=True, errors="coerce")
            return parsed.astype(UTC_DTYPE)
        except ValueError:
            pass  # the rules below decide, value by value if need be
    if fmt:
        aware = np.full(len(text), "%z" in fmt or "%Z" in fmt)
    else:
        aware = text.str.contains(_HAS_OFFSET).fillna(False).to_numpy(dtype=bool)
    parts = [pd.Series(pd.NaT, index=text.index[:0], dtype=UTC_DTYPE)]
    try:
        if aware.any():
            parsed = pd.to_datetime(text[aware], format=fmt or "ISO8601", utc=True, errors="coerce")
            parts.append(parsed.astype(UTC_DTYPE))
        if not aware.all():
            parsed = pd.to_datetime(text[~aware], format=fmt or "ISO8601", errors="coerce")
            parts.append(_localize(parsed, timezone))
    except ValueError:  # an offset the pattern did not see: parse one by one
        cells = [_one_datetime(v, fmt, timezone) for v in text.to_numpy(dtype=object)]
        return pd.Series(cells, index=text.index, dtype=object).astype(UTC_DTYPE)
    return pd.concat(parts).reindex(text.index)


def _one_datetime(value: Any, fmt: str | None, timezone: str | None) -> pd.Timestamp:
    stamp = pd.to_datetime(value, format=fmt or "ISO8601", errors="coerce")
    if pd.isna(stamp):
        return pd.NaT
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(timezone or "UTC", ambiguous=True, nonexistent="shift_forward")
    return stamp.tz_convert("UTC")


def _localize(parsed: pd.Series, timezone: str | None) -> pd.Series:
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC").astype(UTC_DTYPE)
    first_occurrence = np.ones(len(parsed), dtype=bool)
    local = parsed.dt.tz_localize(timezone or "UTC", ambiguous=first_occurrence, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC").astype(UTC_DTYPE)
