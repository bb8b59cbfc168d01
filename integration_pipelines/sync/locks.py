"""One run at a time per (connection, stream), across threads, processes and machines.

`stream_lock(engine, connection_id, stream)` is held around a stream's sync (`sync_stream`) and
around the incremental syncs that webhook "something changed" events trigger, so two workers
never page through the same stream and write the same records at once (a Dagster run, a
schedule tick, a CLI `sync` and a webhook run can otherwise overlap).

* **PostgreSQL**: a session-level advisory lock, `pg_try_advisory_lock(<key>)`, where the key is
  a stable signed 64-bit number from `blake2b(connection_id + ':' + stream)`. It is taken on a
  dedicated connection (autocommit, so no transaction stays open) that is kept for the duration
  and released with `pg_advisory_unlock`; if the process dies, PostgreSQL drops the lock with the
  session. Waiting polls every `poll` seconds up to `timeout`, then raises `StreamBusy`.
* **SQLite** (and any other database): a process-wide `threading.Lock` per key, plus SQLite's own
  database write lock, which serialises the writes themselves. Two *processes* syncing the same
  stream of one SQLite file are therefore not kept apart (their writes stay correct, as every
  write is an idempotent upsert, but both do the work): multi-process SQLite is for local use;
  run several workers on PostgreSQL.
"""

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

DEFAULT_TIMEOUT = 300.0
DEFAULT_POLL = 0.5


class StreamBusy(RuntimeError):
    """Another worker holds the stream's lock and did not let go within the timeout."""

    def __init__(self, connection_id: str, stream: str, timeout: float):
        self.connection_id = connection_id
        self.stream = stream
        self.timeout = timeout
        super().__init__(
            f"stream {stream!r} of connection {connection_id} is being synced by another worker; "
            f"gave up waiting for its lock after {timeout:g} s"
        )


def lock_key(connection_id: str, stream: str) -> int:
    """A stable signed 64-bit advisory lock key (the same in every process and Python version)."""
    digest = hashlib.blake2b(f"{connection_id}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_local_locks: dict[tuple[str, str, str], threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _local_lock(engine: sa.Engine, connection_id: str, stream: str) -> threading.Lock:
    key = (engine.url.render_as_string(hide_password=True), connection_id, stream)
    with _local_locks_guard:
        return _local_locks.setdefault(key, threading.Lock())


@contextmanager
def local_lock(
    engine: sa.Engine, connection_id: str, name: str, *, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[None]:
    """The in-process lock alone (per database, connection and name): SQLite's serialisation."""
    lock = _local_lock(engine, connection_id, name)
    if not lock.acquire(timeout=max(timeout, 0)):
        raise StreamBusy(connection_id, name, timeout)
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _advisory_lock(
    engine: sa.Engine, connection_id: str, stream: str, timeout: float, poll: float
) -> Iterator[None]:
    key = lock_key(connection_id, stream)
    deadline = time.monotonic() + timeout
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamBusy(connection_id, stream, timeout)
            time.sleep(min(poll, left))
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except sa.exc.DBAPIError:
                conn.invalidate()  # the session is gone, and the lock with it
    finally:
        conn.close()


@contextmanager
def stream_lock(
    engine: sa.Engine,
    connection_id: str,
    stream: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = DEFAULT_POLL,
) -> Iterator[None]:
    """Hold the (connection, stream) lock for the body; raise `StreamBusy` after `timeout` seconds.

    Not re-entrant: do not take the same stream's lock again inside the body.
    """
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, connection_id, stream, timeout, poll):
            yield
    else:
        with local_lock(engine, connection_id, stream, timeout=timeout):
            yield
