"""The sync core against an in-memory partner: every pagination kind, idempotency, resume."""

import httpx
import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import job, quarantine, record_links, sync_state
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.resources.clients import build_partner_client
from integration_pipelines.sync.runner import StreamSync
from tests.framework.fake_partner import PAGINATION, FakePartner, connector, make_records


def run_sync(store: ConnectionStore, loaded, partner, connection_id: str):
    connection = store.get(connection_id)
    client = build_partner_client(loaded, connection, {}, transport=httpx.MockTransport(partner))
    with client:
        return StreamSync(engine=store.engine, connection=connection, connector=loaded, client=client).run(
            "jobs"
        )


def count(engine: sa.Engine, table: sa.Table, **where: str) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


@pytest.mark.parametrize("kind", sorted(PAGINATION))
def test_every_pagination_kind_loads_every_record_once(store: ConnectionStore, kind: str) -> None:
    loaded = connector(kind)
    conn = store.add("acme", loaded.spec)
    partner = FakePartner(kind, make_records(23))
    report = run_sync(store, loaded, partner, conn.id)
    assert report.status == "succeeded"
    assert report.records == 23 and report.counts.inserted == 23
    assert count(store.engine, job, tenant_id="acme") == 23
    assert report.pages == (1 if kind == "none" else 5)
    # a second full run changes nothing and duplicates nothing
    again = run_sync(store, loaded, partner, conn.id)
    assert again.counts.inserted == 0 and again.counts.unchanged == 23
    assert count(store.engine, job, tenant_id="acme") == 23


def test_incremental_fetches_from_the_committed_cursor(store: ConnectionStore) -> None:
    loaded = connector("offset", incremental=True)
    conn = store.add("acme", loaded.spec)
    records = make_records(12)
    partner = FakePartner("offset", records)
    first = run_sync(store, loaded, partner, conn.id)
    assert first.cursor == max(r["modified"] for r in records)
    records[3].update(name="Renamed", modified="2025-02-01T00:00:00Z")
    partner.requests.clear()
    second = run_sync(store, loaded, partner, conn.id)
    assert partner.requests[0].url.params["since"] == first.cursor
    # the boundary record (modified == cursor) comes again: inclusive bound, harmless upsert
    assert second.records == 2 and second.counts.updated == 1 and second.counts.unchanged == 1
    with store.engine.connect() as c:
        assert c.execute(sa.select(job.c.title).where(job.c.title == "Renamed")).scalar_one() == "Renamed"


def test_bad_rows_are_quarantined_and_the_page_goes_on(store: ConnectionStore) -> None:
    loaded = connector("offset")
    conn = store.add("acme", loaded.spec)
    records = make_records(10)
    records[2]["state"] = "EXPLODED"
    records[5]["name"] = None
    del records[7]["id"]
    report = run_sync(store, loaded, FakePartner("offset", records), conn.id)
    assert report.counts.inserted == 7 and report.rejected == 3
    with store.engine.connect() as c:
        rows = c.execute(sa.select(quarantine.c.external_id, quarantine.c.reason, quarantine.c.raw)).all()
    reasons = {r.external_id: r.reason for r in rows}
    assert "unmapped value 'EXPLODED'" in reasons["J0002"]
    assert "title" in reasons["J0005"]
    assert any("primary key" in r.reason and r.raw["name"] == "Job 7" for r in rows)


def test_a_failed_page_keeps_earlier_pages_and_resumes(store: ConnectionStore) -> None:
    loaded = connector("offset")
    conn = store.add("acme", loaded.spec)
    partner = FakePartner("offset", make_records(23))
    original = partner.__call__

    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 3:  # third page: the partner is down for good this run
            partner.fail_next = [503] * 10
        return original(request)

    connection = store.get(conn.id)
    client = build_partner_client(
        loaded, connection, {}, transport=httpx.MockTransport(flaky), sleep=lambda s: None
    )
    with client, pytest.raises(Exception, match="503|unavailable|Unavailable"):
        StreamSync(engine=store.engine, connection=connection, connector=loaded, client=client).run("jobs")
    assert count(store.engine, job, tenant_id="acme") == 10
    with store.engine.connect() as c:
        state = c.execute(sa.select(sync_state)).one()
    assert state.checkpoint["page"] == {"offset": 10} and state.last_error
    partner.fail_next = []
    resumed = run_sync(store, loaded, partner, conn.id)
    assert resumed.resumed and resumed.records == 13
    assert count(store.engine, job, tenant_id="acme") == 23
    assert count(store.engine, record_links, connection_id=conn.id) == 23


def test_a_repeated_page_is_fetched_again_not_skipped(store: ConnectionStore) -> None:
    loaded = connector("offset")
    conn = store.add("acme", loaded.spec)
    partner = FakePartner("offset", make_records(12))
    served = {"n": 0}

    def repeats_page_one(request: httpx.Request) -> httpx.Response:
        served["n"] += 1
        if served["n"] == 2:  # the second request gets the first page again
            return partner(httpx.Request("GET", request.url.copy_with(params={"limit": 5, "offset": 0})))
        if served["n"] == 3:  # and then a body that is not JSON
            return httpx.Response(200, content=b'{"items": [')
        return partner(request)

    report = run_sync(store, loaded, repeats_page_one, conn.id)
    assert report.records == 12 and report.counts.inserted == 12
    assert count(store.engine, job, tenant_id="acme") == 12


def test_a_partner_that_keeps_repeating_pages_fails_clearly(store: ConnectionStore) -> None:
    loaded = connector("offset")
    conn = store.add("acme", loaded.spec)
    partner = FakePartner("offset", make_records(12))

    def always_page_one(request: httpx.Request) -> httpx.Response:
        return partner(httpx.Request("GET", request.url.copy_with(params={"limit": 5, "offset": 0})))

    with pytest.raises(Exception, match="served the previous page again"):
        run_sync(store, loaded, always_page_one, conn.id)
    assert count(store.engine, job, tenant_id="acme") == 5
