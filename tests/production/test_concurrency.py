"""Several workers at once on PostgreSQL: stream locks, outbox claims and inbox claims.

* Two syncs of the same (connection, stream) run one after the other (the second waits for the
  advisory lock), or the second gives up with `StreamBusy` when its timeout is short.
* Three outbox deliverers on one backlog of 30 new candidates deliver each exactly once.
* Two inbox appliers on the same pending webhook events apply each event once.
"""

import threading
import time
from datetime import date

import pytest
import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.local_server import LocalServer
from integration_pipelines.outbox.changes import submit_candidate
from integration_pipelines.outbox.delivery import deliver_due
from integration_pipelines.sync import webhook_events
from integration_pipelines.sync.locks import StreamBusy, lock_key, stream_lock
from integration_pipelines.sync.service import apply_webhook_events, sync_stream
from integration_pipelines.webhooks.receiver import create_app
from tests.helpers import connect, scalar
from tests.outbox.conftest import FAST, make_beeline


def _together(count: int, work) -> tuple[list, list[BaseException]]:
    """Run `work(i)` in `count` threads released at the same moment; results and errors."""
    barrier = threading.Barrier(count)
    results, errors, guard = [], [], threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcome = work(i)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            with guard:
                errors.append(exc)
        else:
            with guard:
                results.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads), "a worker thread did not finish"
    return results, errors


def test_lock_key_is_stable() -> None:
    assert lock_key("acme/beeline", "job_postings") == lock_key("acme/beeline", "job_postings")
    assert lock_key("acme/beeline", "job_postings") != lock_key("acme/beeline", "placements")
    assert -(2**63) <= lock_key("a", "b") < 2**63


def test_stream_busy_on_sqlite(engine) -> None:
    with stream_lock(engine, "acme/beeline", "job_postings"):
        started = time.monotonic()
        with pytest.raises(StreamBusy, match="job_postings.*acme/beeline"):
            with stream_lock(engine, "acme/beeline", "job_postings", timeout=0.2):
                pass
        assert time.monotonic() - started >= 0.2
        with stream_lock(engine, "acme/beeline", "placements", timeout=0):
            pass  # another stream of the same connection is free
    with stream_lock(engine, "acme/beeline", "job_postings", timeout=0):
        pass  # released


@pytest.mark.postgres
def test_same_stream_twice_waits_for_the_lock(pg_engine, vault, sandbox, tenant) -> None:
    store = ConnectionStore(pg_engine, vault)
    connection_id, _ = connect(store, sandbox, load_connectors()["beeline"], tenant)

    def sync(_: int):
        return sync_stream(pg_engine, vault, connection_id, "job_postings", allow_loopback=True)

    reports, errors = _together(2, sync)
    assert not errors, errors
    assert sorted(r.counts.inserted for r in reports) == [0, 300]  # the second found it all done
    assert scalar(pg_engine, "select count(*) from job where tenant_id = :t", t=tenant) == 300
    links = "select count(*) from record_links where connection_id = :c and entity = 'job'"
    assert scalar(pg_engine, links, c=connection_id) == 300
    with pg_engine.connect() as conn:
        runs = conn.execute(
            sa.text(
                "select started_at, finished_at from sync_runs where connection_id = :c "
                "and stream = 'job_postings' order by started_at"
            ),
            {"c": connection_id},
        ).all()
    assert len(runs) == 2
    assert runs[1].started_at >= runs[0].finished_at  # the second ran only after the first finished


@pytest.mark.postgres
def test_same_stream_gives_up_with_stream_busy(pg_engine, vault, sandbox, tenant) -> None:
    store = ConnectionStore(pg_engine, vault)
    connection_id, _ = connect(store, sandbox, load_connectors()["beeline"], tenant)
    with stream_lock(pg_engine, connection_id, "job_postings"):  # another worker is syncing it
        started = time.monotonic()
        with pytest.raises(StreamBusy) as caught:
            sync_stream(pg_engine, vault, connection_id, "job_postings", allow_loopback=True, lock_timeout=1)
        assert time.monotonic() - started >= 1
        assert connection_id in str(caught.value) and "job_postings" in str(caught.value)
        # a different stream of the same connection is not held up
        sync_stream(pg_engine, vault, connection_id, "submissions", allow_loopback=True, lock_timeout=1)
    assert scalar(pg_engine, "select count(*) from job where tenant_id = :t", t=tenant) == 0
    assert (
        sync_stream(pg_engine, vault, connection_id, "job_postings", allow_loopback=True).counts.inserted
        == 300
    )


@pytest.mark.postgres
def test_three_outbox_deliverers_send_each_item_once(pg_engine, vault, sandbox, tenant) -> None:
    b = make_beeline(pg_engine, ConnectionStore(pg_engine, vault), sandbox, tenant)
    people = b.candidates(30)
    ids = [
        submit_candidate(
            pg_engine,
            tenant_id=tenant,
            candidate_id=person,
            job_id=b.jobs[i % len(b.jobs)],
            bill_rate=80.0,
            currency="USD",
            rate_period="hour",
            available_date=date(2026, 7, 1),
        )
        for i, person in enumerate(people)
    ]
    assert len(b.items(status="pending")) == 30

    reports, errors = _together(
        3, lambda _: deliver_due(pg_engine, vault, connection_id=b.connection_id, **FAST)
    )
    assert not errors, errors
    delivered = [r.item_id for report in reports for r in report.results if r.outcome == "delivered"]
    assert len(delivered) == len(set(delivered)) == 30
    assert {i["status"] for i in b.items()} == {"delivered"}
    assert len(b.new_candidates()) == 30  # the partner holds exactly 30 new candidates
    assert len(b.uploads("/candidates")) == 30  # and was asked 30 times, no more
    assert len({b.link("submission", s) for s in ids}) == 30


@pytest.mark.postgres
def test_two_inbox_appliers_apply_each_event_once(pg_engine, vault, sandbox, tenant, monkeypatch) -> None:
    store = ConnectionStore(pg_engine, vault)
    connection_id, _ = connect(store, sandbox, load_connectors()["beeline"], tenant)
    sync_stream(pg_engine, vault, connection_id, "job_postings", allow_loopback=True)
    bee = sandbox.simulators["beeline"]
    url = pg_engine.url.render_as_string(hide_password=False)
    with LocalServer(create_app(database_url=url, vault=vault), name="webhook receiver") as receiver:
        bee.subscribe(tenant, f"{receiver.url}/webhooks/{connection_id}")
        touched = bee.touch(tenant, 40)
        assert bee.flush_webhooks(30)
    pending = "select count(*) from inbox where connection_id = :c and status = 'pending'"
    assert scalar(pg_engine, pending, c=connection_id) == 40

    claim = webhook_events.pending_events
    monkeypatch.setattr(  # small batches, so the two appliers interleave
        webhook_events, "pending_events", lambda conn, cid, limit=5: claim(conn, cid, limit)
    )
    reports, errors = _together(
        2, lambda _: apply_webhook_events(pg_engine, vault, connection_id, allow_loopback=True)
    )
    assert not errors, errors
    assert sum(r.records for r in reports) == 40  # each event's record written by one applier only
    with pg_engine.connect() as conn:
        rows = conn.execute(
            sa.text("select status, attempts from inbox where connection_id = :c"), {"c": connection_id}
        ).all()
    assert len(rows) == 40 and {(r.status, r.attempts) for r in rows} == {("applied", 1)}
    postings = {p["uid"]: p for p in bee.postings(tenant)}
    with pg_engine.connect() as conn:
        for uid in touched:
            openings = conn.execute(
                sa.text(
                    "select j.openings from job j join record_links l on l.internal_id = j.id "
                    "where l.connection_id = :c and l.entity = 'job' and l.external_id = :x"
                ),
                {"c": connection_id, "x": uid},
            ).scalar_one()
            assert openings == postings[uid]["positions"]
    assert scalar(pg_engine, "select count(*) from job where tenant_id = :t", t=tenant) == 300
