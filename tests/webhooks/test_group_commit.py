"""Group commit: many events in one transaction, each answered with its own outcome."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from integration_pipelines.db.engine import create_db_engine
from integration_pipelines.webhooks.inbox import NewEvent, pending_events, record_event, record_events
from integration_pipelines.webhooks.receiver import GroupCommit, create_app


def _event(connection_id: str, event_id: str, **kw) -> NewEvent:
    return NewEvent(
        connection_id=connection_id,
        event_id=event_id,
        event_type=kw.pop("event_type", "job.created"),
        occurred_at=kw.pop("occurred_at", None),
        received_at=datetime.now(UTC),
        payload=kw.pop("payload", {"id": event_id}),
        **kw,
    )


def _exercise_batch(engine: sa.Engine, prefix: str) -> None:
    a, b = f"{prefix}/beeline", f"{prefix}/daxtra"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as conn:
        assert record_event(
            conn, connection_id=a, event_id="old", event_type="t", occurred_at=None, payload={}
        )
    batch = [
        _event(a, "e1", occurred_at=when, payload={"id": "e1", "nested": [1, {"x": None}]}),
        _event(a, "old"),  # stored before: duplicate
        _event(a, "e1", payload={"id": "e1", "changed": True}),  # earlier in this batch: duplicate
        _event(b, "e1"),  # same id, other connection
        _event(a, "e2", status="ignored", payload={"id": "e2"}, payload_json='{"id": "e2", "as": "sent"}'),
    ]
    with engine.begin() as conn:
        assert record_events(conn, batch) == [True, False, False, True, True]
        assert record_events(conn, []) == []
    with engine.connect() as conn:
        stored = {e.event_id: e for e in pending_events(conn, a)}
        assert set(stored) == {"old", "e1"}  # e2 is ignored, not pending
        assert stored["e1"].payload == {"id": "e1", "nested": [1, {"x": None}]}  # the first one kept
        assert stored["e1"].occurred_at == when
        payload, status = conn.execute(
            sa.select(sa.column("payload", sa.JSON), sa.column("status"))
            .select_from(sa.table("inbox"))
            .where(sa.text("connection_id = :c AND event_id = 'e2'"))
            .params(c=a)
        ).one()
        assert (payload, status) == ({"id": "e2", "as": "sent"}, "ignored")  # the text as received
    with pytest.raises(ValueError), engine.begin() as conn:
        record_events(conn, [_event(a, "e9", status="weird")])


def test_record_events_sqlite(engine: sa.Engine) -> None:
    _exercise_batch(engine, "t1")


@pytest.mark.postgres
def test_record_events_postgres(pg_engine: sa.Engine) -> None:
    _exercise_batch(pg_engine, f"pg{uuid.uuid4().hex[:6]}")


def test_concurrent_stores_share_transactions_and_get_their_own_outcome(engine: sa.Engine) -> None:
    committer = GroupCommit(lambda: engine)
    ids = [f"e{i}" for i in range(300)]
    sends = ids + ids[:100]  # 100 repeats, some in the same batch as their original

    async def main() -> list[bool]:
        return await asyncio.gather(*(committer.store(_event("gc/x", i)) for i in sends))

    try:
        outcomes = asyncio.run(main())
    finally:
        committer.close()
    assert outcomes[:300] == [True] * 300 and outcomes[300:] == [False] * 100
    assert committer.events == 400 and committer.batches < 400  # grouped, not one commit each
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM inbox WHERE connection_id = 'gc/x'")).scalar() == 300
        )


def test_a_failed_commit_fails_every_waiting_request(tmp_path) -> None:
    gone = create_db_engine(f"sqlite:///{tmp_path}/missing/ats.db")  # the folder does not exist
    committer = GroupCommit(lambda: gone)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(committer.store(_event("gc/y", f"e{i}")) for i in range(5)), return_exceptions=True
        )

    try:
        outcomes = asyncio.run(main())
    finally:
        committer.close()
    assert all(isinstance(o, sa.exc.OperationalError) for o in outcomes)


def test_sqlite_commits_are_fsynced_by_default(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ats.db'}"
    for level, expected in ((None, 2), ("normal", 1)):  # PRAGMA synchronous: 1 NORMAL, 2 FULL
        app = create_app(database_url=url, connectors={}, **({"sqlite_synchronous": level} if level else {}))
        with app.state.receiver.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        app.state.receiver.engine.dispose()
    with pytest.raises(ValueError):
        create_app(database_url=url, connectors={}, sqlite_synchronous="OFF")
