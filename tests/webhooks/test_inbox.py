"""The inbox table: one row per (connection, event id), duplicates reported not raised."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from integration_pipelines.webhooks.inbox import counts, pending_events, record_event


def _record(engine: sa.Engine, connection_id: str, event_id: str, **kw) -> bool:
    with engine.begin() as conn:
        return record_event(
            conn,
            connection_id=connection_id,
            event_id=event_id,
            event_type=kw.pop("event_type", "job.created"),
            occurred_at=kw.pop("occurred_at", None),
            payload=kw.pop("payload", {"id": event_id}),
            **kw,
        )


def _exercise(engine: sa.Engine, prefix: str) -> None:
    a, b = f"{prefix}/beeline", f"{prefix}/daxtra"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _record(engine, a, "e1", occurred_at=when, payload={"id": "e1", "nested": [1, {"x": None}]})
    assert not _record(engine, a, "e1", payload={"id": "e1", "changed": True})  # duplicate: first one kept
    assert _record(engine, b, "e1")  # same id, other connection
    assert _record(engine, a, "e2", status="ignored")
    assert _record(engine, a, "e3")

    # a duplicate inside a larger transaction does not abort it
    with engine.begin() as conn:
        assert not record_event(
            conn, connection_id=a, event_id="e3", event_type="t", occurred_at=None, payload={}
        )
        assert record_event(
            conn, connection_id=a, event_id="e4", event_type="t", occurred_at=None, payload={}
        )

    with engine.connect() as conn:
        assert counts(conn, a) == {"pending": 3, "ignored": 1}
        assert counts(conn, b) == {"pending": 1}
        pending = pending_events(conn, a)
        assert [e.event_id for e in pending] == ["e1", "e3", "e4"]
        first = pending[0]
        assert first.payload == {"id": "e1", "nested": [1, {"x": None}]}
        assert first.occurred_at == when
        assert first.received_at.tzinfo is not None
        assert first.status == "pending" and first.attempts == 0
        assert [e.event_id for e in pending_events(conn, a, after_id=first.id, limit=1)] == ["e3"]
        assert {e.connection_id for e in pending_events(conn)} >= {a, b}

    with pytest.raises(ValueError):
        _record(engine, a, "e9", status="weird")


def test_inbox_sqlite(engine: sa.Engine) -> None:
    _exercise(engine, "t1")


@pytest.mark.postgres
def test_inbox_postgres(pg_engine: sa.Engine) -> None:
    _exercise(pg_engine, "pg")
