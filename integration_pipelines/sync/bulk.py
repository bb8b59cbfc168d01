"""Writing many new rows at once: COPY on PostgreSQL, executemany elsewhere.

`insert_frame` takes a DataFrame whose columns are (a subset of) a table's columns and
writes every row in the caller's transaction. On PostgreSQL (psycopg2) the frame is turned
into CSV by pandas and streamed with ``COPY ... FROM STDIN``: one round trip and no
per-row Python, which is what makes a first sync of a large stream fast. Other databases
(SQLite) get one executemany INSERT, which is fast there already.
"""

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

NULL = "\\N"  # COPY's NULL marker; an empty field stays an empty string
CSV_CHUNK_ROWS = 2_000  # rows formatted at a time while COPY streams them
COPY_READ_BYTES = 1 << 16


def plain(value: Any) -> Any:
    """A pandas cell as a value the database driver and JSON accept."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str, bytes)):
        return value.item()  # numpy scalar
    return value


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts (NaN/NaT become None, timestamps become datetimes)."""
    columns = list(frame.columns)
    return [
        {c: plain(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def json_default(value: Any) -> Any:
    """JSON for what json.dumps does not know: dates as ISO 8601, the rest as text."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def new_ids(count: int) -> list[str]:
    """`count` new record ids: UUID version 7 (RFC 9562), so ids made later sort later.

    The first 48 bits are the Unix time in milliseconds and the rest random (with the version
    and variant bits set), so a batch of new rows lands at the end of the primary-key index
    instead of at random places in it: on PostgreSQL that halves the cost of the index inserts.
    """
    if count <= 0:
        return []
    raw = np.frombuffer(bytearray(os.urandom(16 * count)), dtype=np.uint8).reshape(count, 16)
    raw[:, :6] = np.frombuffer((time.time_ns() // 1_000_000).to_bytes(6, "big"), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


def utc_microseconds(values: pd.Series) -> np.ndarray:
    """A datetime64 column as numpy datetime64[us] in UTC (a naive column is taken as UTC)."""
    utc = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
    return utc.to_numpy(dtype="datetime64[us]")


def _copy_column(column: sa.Column, values: pd.Series) -> pd.Series:
    """One column in the text form COPY reads for the column's type."""
    if isinstance(column.type, sa.JSON):
        return values.map(lambda v: None if plain(v) is None else json.dumps(v, default=json_default))
    if values.dtype.kind == "M":  # datetime64: ISO 8601 in UTC, formatted by numpy in C
        text = np.datetime_as_string(utc_microseconds(values), unit="us", timezone="UTC")
        return pd.Series(np.where(values.isna().to_numpy(), None, text), index=values.index, dtype=object)
    if isinstance(column.type, sa.Integer) and values.dtype.kind != "i":
        return values.astype("Int64")  # 3.0 from a float column would be refused by an integer column
    return values


def _copyable(table: sa.Table, frame: pd.DataFrame) -> bool:
    """False for binary columns, or when a text cell equals the NULL marker itself: plain
    INSERT keeps those exact."""
    for name in frame.columns:
        if isinstance(table.c[name].type, sa.LargeBinary):
            return False
        values = frame[name]
        if values.dtype.kind in "OSUT" or str(values.dtype) in ("string", "str"):
            if values.astype(object).eq(NULL).any():
                return False
    return True


class _CsvStream(io.RawIOBase):
    """CSV text of a frame, made chunk by chunk as COPY reads it.

    PostgreSQL parses and inserts the rows of one chunk while the next is being formatted,
    instead of waiting for the whole batch to be turned into text first.
    """

    def __init__(self, table: sa.Table, frame: pd.DataFrame):
        step = CSV_CHUNK_ROWS
        self._chunks = (self._csv(table, frame.iloc[i : i + step]) for i in range(0, len(frame), step))
        self._pending = b""
        self._offset = 0

    @staticmethod
    def _csv(table: sa.Table, chunk: pd.DataFrame) -> bytes:
        text = pd.DataFrame({name: _copy_column(table.c[name], chunk[name]) for name in chunk.columns})
        return text.to_csv(index=False, header=False, na_rep=NULL, quoting=csv.QUOTE_MINIMAL).encode()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._offset >= len(self._pending):  # the next chunk, or b"" at the end
            self._pending, self._offset = next(self._chunks, b""), 0
        end = len(self._pending) if size < 0 else self._offset + size
        out = self._pending[self._offset : end]
        self._offset += len(out)
        return out


def _copy(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame, into: str | None = None) -> None:
    """COPY `frame` into `table` (or into the table named `into`, with `table`'s column types)."""
    buffer = _CsvStream(table, frame)
    columns = ", ".join(f'"{name}"' for name in frame.columns)
    with conn.connection.dbapi_connection.cursor() as cursor:
        cursor.copy_expert(
            f"COPY \"{into or table.name}\" ({columns}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')",
            buffer,
            size=COPY_READ_BYTES,
        )


def _check_columns(table: sa.Table, frame: pd.DataFrame) -> None:
    unknown = set(frame.columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")


def _uses_copy(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2" and _copyable(table, frame)


def insert_frame(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` into `table`; returns the number of rows written."""
    if frame.empty:
        return 0
    _check_columns(table, frame)
    if _uses_copy(conn, table, frame):
        _copy(conn, table, frame)
    else:
        conn.execute(table.insert(), frame_rows(frame))
    return len(frame)


def update_frame(
    conn: sa.Connection, table: sa.Table, frame: pd.DataFrame, keys: Sequence[str], **fixed: Any
) -> int:
    """Set the other columns of `frame` on the rows of `table` matching its `keys` columns
    (and the `fixed` column values); returns the number of rows in `frame`.

    On PostgreSQL the rows are COPYed into a temporary table and applied with one
    ``UPDATE ... FROM``: one plan instead of one statement per row.
    """
    if frame.empty:
        return 0
    _check_columns(table, frame)
    values = [c for c in frame.columns if c not in keys]
    if not _uses_copy(conn, table, frame):
        conn.execute(
            table.update()
            .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
            .where(*(table.c[k] == v for k, v in fixed.items()))
            .values({c: sa.bindparam(f"v_{c}") for c in values}),
            frame_rows(frame.rename(columns={c: f"k_{c}" if c in keys else f"v_{c}" for c in frame.columns})),
        )
        return len(frame)
    staged = f"staged_{table.name}"
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    conn.exec_driver_sql(
        f'CREATE TEMPORARY TABLE "{staged}" AS SELECT {columns} FROM "{table.name}" WITH NO DATA'
    )
    _copy(conn, table, frame, into=staged)
    target = sa.table(table.name, *(sa.column(c) for c in [*frame.columns, *fixed]))
    source = sa.table(staged, *(sa.column(c) for c in frame.columns))
    conn.execute(
        target.update()
        .where(*(target.c[k] == source.c[k] for k in keys))
        .where(*(target.c[k] == sa.literal(v, table.c[k].type) for k, v in fixed.items()))
        .values({c: source.c[c] for c in values})
    )
    conn.exec_driver_sql(f'DROP TABLE "{staged}"')  # on an error, the rollback removes it
    return len(frame)


def refresh_statistics(conn: sa.Connection, *tables: sa.Table) -> None:
    """Give PostgreSQL's planner fresh row counts after a bulk load (elsewhere: nothing).

    Until autovacuum gets round to it, the planner still believes the tables hold what they
    held before the load, and picks plans that scan every link of a connection to update a few
    of them (38 ms instead of a few for 1,000 changed records among 100,000). A small sample
    (statistics target 10, ~3,000 rows per table) is enough for row counts and costs ~15 ms a
    table; autovacuum later analyzes with the full target.
    """
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
    for table in tables:
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')
