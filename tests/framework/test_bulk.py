"""Bulk inserts: COPY on PostgreSQL must store exactly what executemany stores on SQLite."""

import uuid
from datetime import UTC, date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import candidate, job, record_links, tenants
from integration_pipelines.sync import bulk


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request) -> sa.Engine:
    return request.getfixturevalue("engine" if request.param == "sqlite" else "pg_engine")


def _tenant(conn: sa.Connection) -> str:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    conn.execute(tenants.insert().values(id=tenant, name=tenant, created_at=datetime.now(UTC)))
    return tenant


def _utc(value: datetime) -> pd.Timestamp:
    """SQLite hands timestamps back without a zone (they are stored in UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch) -> None:
    """COPY streams its CSV in chunks: make every test here span several."""
    monkeypatch.setattr(bulk, "CSV_CHUNK_ROWS", 2)


def test_awkward_values_round_trip(database: sa.Engine) -> None:
    now = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)
    with database.begin() as conn:
        tenant = _tenant(conn)
        ids = bulk.new_ids(5)
        frame = pd.DataFrame(
            {
                "id": ids,
                "tenant_id": tenant,
                "title": ['quote " comma , newline \n end', "", "\\N", "ünïcödé ✓", "plain"],
                "status": ["open"] * 5,
                "description": [None, "", "x", None, "tab\there"],
                "openings": [1.0, None, 3.0, None, 5.0],  # a float column, as pandas makes it
                "bill_rate_max": [12.5, None, 0.0, 99999.99, 1.25],
                "start_date": pd.to_datetime(["2026-01-02", None, "2026-03-04", None, "2026-12-31"]),
                "remote_updated_at": pd.to_datetime(
                    ["2026-01-01T12:00:00+02:00", None, "2026-01-01T00:00:00Z", None, "2026-06-30T23:59:59Z"],
                    utc=True,
                    format="ISO8601",
                ),
                "created_at": now,
                "updated_at": now,
            }
        )
        assert bulk.insert_frame(conn, job, frame) == 5
    with database.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(job).where(job.c.tenant_id == tenant))}
    got = [rows[i] for i in ids]
    assert [r.title for r in got] == list(frame["title"])
    assert [r.description for r in got] == [None, "", "x", None, "tab\there"]  # empty stays empty
    assert [r.openings for r in got] == [1, None, 3, None, 5]
    assert [None if r.bill_rate_max is None else float(r.bill_rate_max) for r in got] == [
        12.5,
        None,
        0.0,
        99999.99,
        1.25,
    ]
    assert [r.start_date for r in got] == [date(2026, 1, 2), None, date(2026, 3, 4), None, date(2026, 12, 31)]
    stamps = [r.remote_updated_at for r in got]
    assert stamps[1] is None and stamps[3] is None
    assert _utc(stamps[0]) == pd.Timestamp("2026-01-01T10:00:00Z")
    assert _utc(got[0].created_at) == pd.Timestamp(now)


def test_json_columns_and_links(database: sa.Engine) -> None:
    now = datetime.now(UTC)
    with database.begin() as conn:
        tenant = _tenant(conn)
        ids = bulk.new_ids(3)
        bulk.insert_frame(
            conn,
            candidate,
            pd.DataFrame(
                {
                    "id": ids,
                    "tenant_id": tenant,
                    "first_name": ["Ann", "Bo", None],
                    "skills": [["python", "sql"], None, []],
                    "created_at": now,
                    "updated_at": now,
                }
            ),
        )
        bulk.insert_frame(
            conn,
            record_links,
            pd.DataFrame(
                {
                    "connection_id": f"{tenant}/x",
                    "entity": "candidate",
                    "external_id": ["a", "b", "c"],
                    "internal_id": ids,
                    "payload_hash": ["h1", None, "h3"],
                    "synced_at": now,
                }
            ),
        )
    with database.connect() as conn:
        skills = dict(
            conn.execute(
                sa.select(candidate.c.id, candidate.c.skills).where(candidate.c.tenant_id == tenant)
            ).all()
        )
        links = conn.execute(
            sa.select(record_links.c.external_id, record_links.c.internal_id, record_links.c.payload_hash)
            .where(record_links.c.connection_id == f"{tenant}/x")
            .order_by(record_links.c.external_id)
        ).all()
    assert [skills[i] for i in ids] == [["python", "sql"], None, []]
    assert [tuple(r) for r in links] == [("a", ids[0], "h1"), ("b", ids[1], None), ("c", ids[2], "h3")]


def test_unknown_columns_are_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="no column"):
        bulk.insert_frame(conn, job, pd.DataFrame({"id": ["x"], "colour": ["red"]}))


def test_new_ids_are_unique_version_7_and_time_ordered() -> None:
    first = bulk.new_ids(1000)
    assert len(set(first)) == 1000
    assert {uuid.UUID(i).version for i in first} == {7}
    assert {uuid.UUID(i).variant for i in first} == {uuid.RFC_4122}
    later = bulk.new_ids(1)
    import time

    time.sleep(0.002)
    assert bulk.new_ids(1)[0][:13] > later[0][:13] >= first[0][:13]  # the millisecond prefix sorts
    assert bulk.new_ids(0) == []


def test_update_frame_sets_only_the_matching_rows(database: sa.Engine) -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    later = datetime(2026, 12, 5, 8, tzinfo=UTC)
    with database.begin() as conn:
        tenant = _tenant(conn)
        ids = bulk.new_ids(3)
        bulk.insert_frame(
            conn,
            job,
            pd.DataFrame({"id": ids, "tenant_id": tenant, "title": ["a", "b", "c"], "status": "open"}).assign(
                created_at=now, updated_at=now
            ),
        )
        for connection in ("x", "y"):  # same external ids under two connections
            bulk.insert_frame(
                conn,
                record_links,
                pd.DataFrame(
                    {"connection_id": connection, "entity": "job", "external_id": ["e1", "e2"]}
                ).assign(internal_id=ids[0], payload_hash="old", synced_at=now),
            )
        changed = pd.DataFrame(
            {
                "id": [ids[0], ids[2]],
                "title": ['new, "quoted"', "c2"],
                "description": [None, ""],
                "openings": [2.0, None],
            }
        )
        assert (
            bulk.update_frame(conn, job, changed.assign(status="closed", updated_at=later), keys=["id"]) == 2
        )
        hashes = pd.DataFrame({"external_id": ["e2"], "payload_hash": ["new"], "synced_at": later})
        bulk.update_frame(conn, record_links, hashes, keys=["external_id"], connection_id="y", entity="job")
    with database.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(job).where(job.c.tenant_id == tenant))}
        links = conn.execute(
            sa.select(record_links.c.connection_id, record_links.c.external_id, record_links.c.payload_hash)
            .where(record_links.c.connection_id.in_(["x", "y"]))
            .order_by(record_links.c.connection_id, record_links.c.external_id)
        ).all()
    assert [(rows[i].title, rows[i].status, rows[i].openings, rows[i].description) for i in ids] == [
        ('new, "quoted"', "closed", 2, None),
        ("b", "open", None, None),  # not in the frame: untouched
        ("c2", "closed", None, ""),
    ]
    assert _utc(rows[ids[0]].updated_at) == pd.Timestamp(later) and _utc(
        rows[ids[1]].updated_at
    ) == pd.Timestamp(now)
    assert [tuple(r) for r in links] == [
        ("x", "e1", "old"),
        ("x", "e2", "old"),
        ("y", "e1", "old"),
        ("y", "e2", "new"),
    ]


@pytest.mark.postgres
def test_refresh_statistics_analyzes_the_tables_on_postgresql(pg_engine: sa.Engine) -> None:
    started = datetime.now(UTC)
    with pg_engine.begin() as conn:
        bulk.refresh_statistics(conn, job, record_links)
    with pg_engine.connect() as conn:
        analyzed = dict(
            conn.exec_driver_sql(
                "SELECT relname, last_analyze FROM pg_stat_user_tables "
                "WHERE relname IN ('job', 'record_links')"
            ).all()
        )
    assert set(analyzed) == {"job", "record_links"}
    assert all(when is not None and when >= started for when in analyzed.values())
