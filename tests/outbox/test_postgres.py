"""The outbox on PostgreSQL: the same delivery, and concurrent claiming under real row locks."""

import json
import threading
from datetime import date

import pytest

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.outbox.changes import submit_candidate, update_submission
from integration_pipelines.outbox.delivery import deliver_due
from tests.outbox.conftest import FAST, make_beeline

pytestmark = pytest.mark.postgres


def test_concurrent_delivery_on_postgres(pg_engine, vault, sandbox, tenant) -> None:
    b = make_beeline(pg_engine, ConnectionStore(pg_engine, vault), sandbox, tenant)
    people = b.candidates(8)
    ids = [
        submit_candidate(
            pg_engine,
            tenant_id=tenant,
            candidate_id=person,
            job_id=b.jobs[i % 5],
            bill_rate=75.5,
            currency="USD",
            rate_period="hour",
            available_date=date(2026, 6, 1),
        )
        for i, person in enumerate(people)
    ]
    for status in ("withdrawn", "submitted"):
        for submission_id in ids:
            update_submission(pg_engine, submission_id, status=status)
    reports = []

    def run() -> None:
        reports.append(deliver_due(pg_engine, vault, connection_id=b.connection_id, **FAST))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    reports.append(deliver_due(pg_engine, vault, connection_id=b.connection_id, **FAST))
    delivered = [r.item_id for report in reports for r in report.results if r.outcome == "delivered"]
    assert len(delivered) == len(set(delivered)) == 24
    assert {i["status"] for i in b.items()} == {"delivered"}
    made = b.new_candidates()
    assert len(made) == 8 and {c["status"] for c in made} == {"RESUBMITTED"}
    assert len(b.uploads("/candidates")) == 8
    for c in made:
        sent = [json.loads(u.body)["status"] for u in b.uploads(c["uid"])]
        assert sent == ["RESCINDED", "RESUBMITTED"]
    assert {b.link("submission", s) for s in ids} == {c["uid"] for c in made}
