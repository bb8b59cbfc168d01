"""The same placement edited on both sides between syncs resolves by the declared policy."""

import time
from datetime import date

import sqlalchemy as sa

from integration_pipelines.canonical.tables import conflict_log, outbox, placement, record_links
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.outbox.changes import update_placement
from integration_pipelines.outbox.delivery import deliver_due
from integration_pipelines.sync.service import sync_stream
from tests.helpers import connect


def linked_placement(engine: sa.Engine, connection_id: str, uid: str) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(placement)
                .join(record_links, record_links.c.internal_id == placement.c.id)
                .where(record_links.c.connection_id == connection_id, record_links.c.external_id == uid)
            )
            .mappings()
            .one()
        )


def test_placement_edited_on_both_sides(store, vault, sandbox, tenant) -> None:
    engine = store.engine
    beeline = load_connectors()["beeline"]  # placement: last_writer_wins; bill_rate partner; pay_rate ATS
    connection_id, _ = connect(store, sandbox, beeline, tenant)
    for stream in ("job_postings", "submissions", "placements"):
        sync_stream(engine, vault, connection_id, stream, allow_loopback=True)
    sim = sandbox.simulators["beeline"]
    assignment = sim.assignments(tenant)[0]
    row = linked_placement(engine, connection_id, assignment["uid"])

    # the ATS changes end date and pay rate; then the client changes end date, pay and bill rate
    update_placement(engine, row["id"], end_date=date(2027, 3, 31), pay_rate=61.0)
    time.sleep(1.1)  # the partner stamps whole seconds
    sim.edit_assignment(tenant, assignment["uid"], endDate="2027-06-30", payRate=55.0, billRate=99.0)

    report = sync_stream(engine, vault, connection_id, "placements", allow_loopback=True)
    assert report.counts.conflicts == 2
    with engine.connect() as conn:
        logged = {r.field: r for r in conn.execute(sa.select(conflict_log)).all()}
    assert set(logged) == {"end_date", "pay_rate"}  # bill_rate changed on one side only
    assert logged["end_date"].winner == "partner" and logged["end_date"].policy == "last_writer_wins"
    assert logged["pay_rate"].winner == "ats" and logged["pay_rate"].policy == "source_of_truth_ats"
    assert float(logged["pay_rate"].partner_value) == 55.0
    after = linked_placement(engine, connection_id, assignment["uid"])
    assert after["end_date"] == date(2027, 6, 30)  # the client wrote last
    assert float(after["pay_rate"]) == 61.0  # the ATS owns pay rates
    assert float(after["bill_rate"]) == 99.0  # no conflict: the partner's change is taken

    # delivering the outbox sends the ATS's winning pay rate back, in order
    deliver_due(engine, vault, connection_id=connection_id, allow_loopback=True)
    with engine.connect() as conn:
        statuses = list(
            conn.execute(sa.select(outbox.c.status).where(outbox.c.record_id == row["id"])).scalars()
        )
    assert statuses and set(statuses) == {"delivered"}
    at_partner = next(a for a in sim.assignments(tenant) if a["uid"] == assignment["uid"])
    assert float(at_partner["payRate"]) == 61.0 and at_partner["endDate"] == "2027-06-30"


def test_the_later_ats_edit_wins_under_last_writer_wins(store, vault, sandbox, tenant) -> None:
    engine = store.engine
    connection_id, _ = connect(store, sandbox, load_connectors()["beeline"], tenant)
    for stream in ("job_postings", "submissions", "placements"):
        sync_stream(engine, vault, connection_id, stream, allow_loopback=True)
    sim = sandbox.simulators["beeline"]
    assignment = sim.assignments(tenant)[1]
    row = linked_placement(engine, connection_id, assignment["uid"])
    sim.edit_assignment(tenant, assignment["uid"], endDate="2027-01-31")
    time.sleep(1.1)  # the partner stamps whole seconds
    update_placement(engine, row["id"], end_date=date(2027, 2, 28))
    report = sync_stream(engine, vault, connection_id, "placements", allow_loopback=True)
    assert report.counts.conflicts == 1
    assert linked_placement(engine, connection_id, assignment["uid"])["end_date"] == date(2027, 2, 28)
