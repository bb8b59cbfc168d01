"""Outbound formats: CSV file uploads to the SAP Fieldglass simulator, and form bodies."""

import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import job, placement, record_links
from integration_pipelines.connections import Connection
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.connectors.spec import Outbound
from integration_pipelines.outbox.changes import submit_candidate, update_placement
from integration_pipelines.outbox.clients import Target
from integration_pipelines.outbox.delivery import deliver_due
from integration_pipelines.outbox.sending import Sender
from integration_pipelines.resources.partner_client import PartnerClient
from tests.helpers import connect
from tests.outbox.conftest import FAST, add_candidates, outbox_items


@pytest.fixture
def fieldglass(engine, store, sandbox, tenant) -> tuple[str, object]:
    sim = sandbox.simulators["sap_fieldglass"]
    sim.add_tenant(tenant, records=30)
    connection_id, _ = connect(store, sandbox, load_connectors()["sap_fieldglass"], tenant)
    return connection_id, sim


def link(conn: sa.Connection, connection_id: str, entity: str, external_id: str, internal_id: str) -> None:
    conn.execute(
        record_links.insert().values(
            connection_id=connection_id,
            entity=entity,
            external_id=external_id,
            internal_id=internal_id,
            synced_at=datetime.now(UTC),
        )
    )


def test_submission_goes_as_a_job_seeker_upload_file(engine, tenant, vault, fieldglass) -> None:
    connection_id, sim = fieldglass
    posting = next(p for p in sim.postings(tenant) if p["Status"] == "Submitted")
    job_id, now = str(uuid.uuid4()), datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            job.insert().values(
                id=job_id, tenant_id=tenant, title="x", status="open", created_at=now, updated_at=now
            )
        )
        link(conn, connection_id, "job", posting["JobPostingID"], job_id)
    (person,) = add_candidates(engine, tenant, 1)
    submission_id = submit_candidate(
        engine,
        tenant_id=tenant,
        candidate_id=person,
        job_id=job_id,
        bill_rate=1250,
        available_date=date(2026, 7, 1),
    )
    report = deliver_due(engine, vault, **FAST)
    assert report.delivered == 1
    (upload,) = [u for u in sim.stats.uploads if u.tenant == tenant]
    assert upload.content_type == "text/csv"
    lines = upload.body.decode().split("\r\n")
    assert lines[0] == "Type,Job Seeker Upload" and lines[4] == 'Number Format,"#,##9.99"'
    header = lines.index("") + 1
    assert lines[header].startswith("Job Posting ID,First Name,Last Name,Email,Bill Rate,Pay Rate")
    assert lines[header + 1].startswith(f"{posting['JobPostingID']},Ada")
    (seeker,) = sim.job_seekers(tenant)
    assert seeker["Job Posting ID"] == posting["JobPostingID"] and seeker["Bill Rate"] == 1250.0
    assert seeker["Supplier Reference"] == submission_id and seeker["Available Date"] == "2026-07-01"
    (item,) = outbox_items(engine, connection_id=connection_id)
    assert (
        item["status"] == "delivered" and item["external_id"] == sim.audit_trail(tenant)[-1]["TransactionID"]
    )


def test_placement_update_goes_as_a_work_order_update_file(engine, tenant, vault, fieldglass) -> None:
    connection_id, sim = fieldglass
    order = sim.work_orders(tenant)[0]
    placement_id, now = str(uuid.uuid4()), datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            placement.insert().values(
                id=placement_id,
                tenant_id=tenant,
                status="active",
                start_date=date.fromisoformat(order["Start date"]),
                end_date=date.fromisoformat(order["End date"]),
                bill_rate=order["Bill Rate"],
                created_at=now,
                updated_at=now,
            )
        )
        link(conn, connection_id, "placement", order["Work Order ID"], placement_id)
    new_end = date.fromisoformat(order["Start date"]) + timedelta(days=90)
    update_placement(engine, placement_id, end_date=new_end)
    assert deliver_due(engine, vault, **FAST).delivered == 1
    after = next(o for o in sim.work_orders(tenant) if o["Work Order ID"] == order["Work Order ID"])
    assert after["End date"] == new_end.isoformat() and after["Bill Rate"] == order["Bill Rate"]
    (upload,) = [u for u in sim.stats.uploads if u.tenant == tenant]
    rows = upload.body.decode().split("\r\n")
    assert f"{order['Work Order ID']},{new_end.isoformat()},,,Updated from the ATS" in rows


def test_form_bodies_are_flat_fields() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "p-1"})

    client = PartnerClient(
        partner="formy",
        connection_id="acme/formy",
        base_url="https://formy.example/api",
        auth=None,
        transport=httpx.MockTransport(handler),
    )
    outbound = Outbound.model_validate(
        {"create": {"method": "POST", "path": "/people"}, "format": "form", "body": {"a.b": "x.y"}}
    )
    connector = load_connectors()["beeline"]  # any connector: only its (absent) hooks are read
    target = Target(Connection("acme/formy", "acme", "formy", {}), connector, {}, client)
    sender = Sender(None, target, None, outbound, "people")  # type: ignore[arg-type]
    sender._request(outbound.create, {}, {"name": "Ann Lee", "rate": {"amount": 12.5}}, "form", "outbox-7")
    (request,) = seen
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["idempotency-key"] == "outbox-7"
    assert parse_qs(request.content.decode()) == {"name": ["Ann Lee"], "rate.amount": ["12.5"]}
