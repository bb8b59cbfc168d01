"""Request bodies for outbound items, built by the same mapping engine as inbound records.

`build_body` runs a body mapping (partner field -> `FieldMapping` over the outbound context)
through `map_records` with the context as the one record, then shapes the result for the wire:
dotted partner names nest (`rate.amount` -> `{"rate": {"amount": ...}}`), dates and datetimes
become ISO text, decimals become floats and nulls are left out. A value the mapping rejects (an
enum value with no `map` entry, a date that does not parse) raises `OutboundError`: the item is
dead-lettered at once, since sending it again would fail the same way.

`encode_csv` writes file-style uploads (SAP Fieldglass's): the header block as `key,value` lines,
one blank line, the column header row, then one row per record.
"""

import csv
import io
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from integration_pipelines.connectors.spec import CsvLayout, FieldMapping
from integration_pipelines.mapping import MappingConfigError, map_records
from integration_pipelines.outbox.errors import OutboundError

Hooks = Mapping[str, Callable[[pd.DataFrame], pd.Series]]


def wire_value(value: Any) -> Any:
    """One mapped cell as JSON: None for nulls, ISO text for dates, float for decimals."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item") and not isinstance(value, list | dict | str | bytes):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [wire_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): wire_value(v) for k, v in value.items()}
    return value


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"rate.amount": 1, "rate.currency": "USD"}` -> `{"rate": {"amount": 1, "currency": "USD"}}`."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise OutboundError(f"body field {name!r}: {part!r} is both a value and a group of fields")
            node = child
        if isinstance(node.get(leaf), dict):
            raise OutboundError(f"body field {name!r} is both a value and a group of fields")
        node[leaf] = value
    return out


def flatten(body: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of `nest`, for form fields and CSV columns."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def build_body(
    mapping: Mapping[str, FieldMapping], context: Mapping[str, Any], *, hooks: Hooks | None = None
) -> dict[str, Any]:
    """The request body for one outbound context (see the module docstring)."""
    if not mapping:
        return {}
    try:
        result = map_records([context], dict(mapping), hooks=hooks)
    except MappingConfigError as exc:
        raise OutboundError(f"the outbound body mapping cannot work: {exc}") from None
    if len(result.errors):
        reasons = "; ".join(dict.fromkeys(str(r) for r in result.errors["reason"]))
        raise OutboundError(f"cannot build the request body: {reasons}")
    flat: dict[str, Any] = {}
    for name in result.frame.columns:
        value = wire_value(result.frame[name].iloc[0])
        if value is not None:
            flat[str(name)] = value
    return nest(flat)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(_cell(v) for v in value)
    return str(value)


def encode_csv(layout: CsvLayout, rows: list[dict[str, Any]]) -> str:
    """Header block (`key,value`), a blank line, the column header row and one line per row.

    Rows are bodies as `build_body` makes them (nested groups are read by their dotted names); a
    field that is not one of the layout's columns is a connector mistake and raises `OutboundError`.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for key, value in layout.header_block.items():
        writer.writerow([key, value])
    if layout.header_block:
        writer.writerow([])
    writer.writerow(layout.columns)
    for row in rows:
        flat = flatten(row)
        unknown = [name for name in flat if name not in layout.columns]
        if unknown:
            raise OutboundError(
                f"CSV body field(s) {', '.join(unknown)} are not columns of the layout "
                f"({', '.join(layout.columns)})"
            )
        writer.writerow([_cell(flat.get(column)) for column in layout.columns])
    return buffer.getvalue()
