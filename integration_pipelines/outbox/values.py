"""ATS values as JSON (outbox payloads) and back (`ats_changes_since`, outbound contexts)."""

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa


def jsonable(value: Any) -> Any:
    """A value the ATS wrote, as JSON: dates and datetimes as ISO text, Decimals as numbers."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    return str(value)


def as_utc(value: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes; the framework stores UTC only)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def for_column(column: sa.Column, value: Any) -> Any:
    """A JSON (or caller-given) value as the Python type `column` stores: date, datetime, Decimal."""
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, sa.DateTime):
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return as_utc(value) if isinstance(value, datetime) else value
    if isinstance(kind, sa.Date):
        if isinstance(value, datetime):
            return value.date()
        return date.fromisoformat(value[:10]) if isinstance(value, str) else value
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        return value if isinstance(value, Decimal) else Decimal(str(value))
    return value
