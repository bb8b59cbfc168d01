"""The change API's transactions and payloads, the outbound context, bodies and CSV files."""

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import job, outbox, submission
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.connectors.spec import CsvLayout, FieldMapping, Outbound
from integration_pipelines.outbox.body import build_body, encode_csv
from integration_pipelines.outbox.changes import (
    ats_changes_since,
    enqueue,
    submit_candidate,
    update_submission,
)
from integration_pipelines.outbox.context import build_context
from integration_pipelines.outbox.delivery import changed_only
from integration_pipelines.outbox.errors import OutboundError
from tests.outbox.conftest import Beeline


def mapping(**fields) -> dict[str, FieldMapping]:
    return {k: FieldMapping(path=v) if isinstance(v, str) else FieldMapping(**v) for k, v in fields.items()}


def test_build_body_nests_formats_and_omits_nulls() -> None:
    context = {
        "submission": {
            "bill_rate": Decimal("95.50"),
            "available_date": date(2026, 1, 5),
            "seen": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
            "rate_period": "hour",
            "currency": None,
        },
        "steps": {"worker": {"id": "w-1"}},
    }
    body = build_body(
        mapping(
            **{
                "rate.amount": {"path": "submission.bill_rate", "type": "number"},
                "rate.currency": "submission.currency",
                "rate.period": {"path": "submission.rate_period", "map": {"hour": "HOURLY"}},
                "availableDate": {"path": "submission.available_date", "type": "date"},
                "untyped": "submission.available_date",
                "seenAt": {"path": "submission.seen", "type": "datetime"},
                "workerUid": "steps.worker.id",
                "count": {"value": 3, "type": "integer"},
                "missing": "submission.nothing_here",
            }
        ),
        context,
    )
    assert body == {
        "rate": {"amount": 95.5, "period": "HOURLY"},
        "availableDate": "2026-01-05",
        "untyped": "2026-01-05",
        "seenAt": "2026-01-05T09:30:00Z",
        "workerUid": "w-1",
        "count": 3,
    }
    assert isinstance(body["rate"]["amount"], float) and isinstance(body["count"], int)


def test_build_body_errors_are_outbound_errors() -> None:
    with pytest.raises(OutboundError, match="unmapped value 'fortnight'"):
        build_body(mapping(p={"path": "s.period", "map": {"hour": "HOURLY"}}), {"s": {"period": "fortnight"}})
    with pytest.raises(OutboundError, match="both a value and a group"):
        build_body(mapping(**{"a": "s.x", "a.b": "s.y"}), {"s": {"x": 1, "y": 2}})
    with pytest.raises(OutboundError, match="hook 'nope' is not defined"):
        build_body({"a": FieldMapping(hook="nope")}, {"s": {}})


def test_encode_csv_writes_the_fieldglass_layout() -> None:
    layout = CsvLayout(
        header_block={"Type": "Job Seeker Upload", "Number Format": "#,##9.99"},
        columns=["Job Posting ID", "First Name", "Bill Rate", "Comments"],
    )
    text = encode_csv(
        layout,
        [
            {
                "Job Posting ID": "JP1",
                "First Name": "Maria",
                "Bill Rate": 95.0,
                "Comments": 'said "hi", left',
            },
            {"Job Posting ID": "JP2", "First Name": "Ann"},
        ],
    )
    lines = text.split("\r\n")
    assert lines[:4] == [
        "Type,Job Seeker Upload",
        'Number Format,"#,##9.99"',
        "",
        "Job Posting ID,First Name,Bill Rate,Comments",
    ]
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[4] == ["JP1", "Maria", "95.0", 'said "hi", left'] and rows[5] == ["JP2", "Ann", "", ""]
    with pytest.raises(OutboundError, match="not columns of the layout"):
        encode_csv(layout, [{"Surname": "x"}])


def test_changed_only_keeps_what_the_change_touched() -> None:
    body = mapping(
        startDate={"path": "placement.start_date", "type": "date"},
        billRate={"path": "placement.bill_rate", "type": "number"},
        jobUid="job.external_id",
        label={"concat": ["placement.status", "' / '", "placement.end_date"]},
    )
    assert set(changed_only(body, "placement", {"start_date"})) == {"startDate", "jobUid"}
    assert set(changed_only(body, "placement", {"end_date"})) == {"label", "jobUid"}
    assert changed_only(body, "placement", {"currency"}) == {}


def test_submit_writes_row_and_items_in_one_transaction(beeline: Beeline) -> None:
    (person,) = beeline.candidates(1)
    # a job no partner knows: the submission is written, nothing is queued
    unlinked = str(uuid.uuid4())
    now = datetime.now(UTC)
    with beeline.engine.begin() as conn:
        conn.execute(
            job.insert().values(
                id=unlinked,
                tenant_id=beeline.tenant,
                title="Local",
                status="open",
                created_at=now,
                updated_at=now,
            )
        )
    local = submit_candidate(beeline.engine, tenant_id=beeline.tenant, candidate_id=person, job_id=unlinked)
    assert beeline.items() == []
    assert update_submission(beeline.engine, local, status="withdrawn") == []

    with pytest.raises(LookupError, match="has no job"):
        submit_candidate(beeline.engine, tenant_id=beeline.tenant, candidate_id=person, job_id="nope")
    with pytest.raises(ValueError, match="submission has no field"):
        update_submission(beeline.engine, local, colour="blue")

    # a linked job: the row and its create item, written together, stamped with the same time
    with beeline.engine.begin() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(submission)).scalar_one()
    sid = submit_candidate(
        beeline.engine,
        tenant_id=beeline.tenant,
        candidate_id=person,
        job_id=beeline.jobs[0],
        bill_rate="12.30",
    )
    (item,) = beeline.items()
    with beeline.engine.connect() as conn:
        row = conn.execute(sa.select(submission).where(submission.c.id == sid)).mappings().one()
        assert conn.execute(sa.select(sa.func.count()).select_from(submission)).scalar_one() == before + 1
    assert row["bill_rate"] == Decimal("12.30") and row["status"] == "submitted"
    assert item["payload"] == {
        "candidate_id": person,
        "job_id": beeline.jobs[0],
        "status": "submitted",
        "bill_rate": 12.3,
    }
    assert item["created_at"].replace(tzinfo=UTC) == row["created_at"].replace(tzinfo=UTC)


def test_a_failed_enqueue_rolls_the_change_back(beeline: Beeline, monkeypatch) -> None:
    (person,) = beeline.candidates(1)
    import integration_pipelines.outbox.changes as changes

    def fail(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(changes, "enqueue", fail)
    with pytest.raises(RuntimeError):
        submit_candidate(
            beeline.engine, tenant_id=beeline.tenant, candidate_id=person, job_id=beeline.jobs[0]
        )
    with beeline.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(submission)).scalar_one() == 0


def test_ats_changes_since_gives_the_latest_typed_value_per_field(beeline: Beeline) -> None:
    (person,) = beeline.candidates(1)
    sid = submit_candidate(
        beeline.engine, tenant_id=beeline.tenant, candidate_id=person, job_id=beeline.jobs[0], bill_rate=90
    )
    with beeline.engine.connect() as conn:
        created = conn.execute(sa.select(outbox.c.created_at)).scalar_one()
    update_submission(beeline.engine, sid, bill_rate="91.25", available_date="2026-05-01")
    update_submission(beeline.engine, sid, status="withdrawn", bill_rate=92)
    with beeline.engine.begin() as conn:  # a conflict re-send lists fields: not an ATS write
        enqueue(
            conn,
            connection_id=beeline.connection_id,
            stream="submissions",
            entity="submission",
            record_id=sid,
            operation="update",
            payload={"fields": ["bill_rate"], "reason": "conflict"},
        )
        changes = ats_changes_since(
            conn, connection_id=beeline.connection_id, entity="submission", record_id=sid, since=created
        )
        everything = ats_changes_since(
            conn,
            connection_id=beeline.connection_id,
            entity="submission",
            record_id=sid,
            since=(created - timedelta(seconds=1)).replace(tzinfo=None),  # naive = UTC
        )
    assert set(changes) == {"bill_rate", "available_date", "status"}
    assert changes["bill_rate"][0] == Decimal("92") and changes["available_date"][0] == date(2026, 5, 1)
    assert changes["status"][0] == "withdrawn" and changes["status"][1].tzinfo is not None
    assert changes["status"][1] >= changes["available_date"][1] > created.replace(tzinfo=UTC)
    assert everything["job_id"][0] == beeline.jobs[0]


def test_context_lays_the_change_over_the_row(beeline: Beeline) -> None:
    (person,) = beeline.candidates(1)
    sid = submit_candidate(
        beeline.engine, tenant_id=beeline.tenant, candidate_id=person, job_id=beeline.jobs[0], bill_rate=90
    )
    update_submission(beeline.engine, sid, status="withdrawn")
    update_submission(beeline.engine, sid, status="submitted")
    withdrawn = beeline.items(operation="update")[0]
    outbound = load_connectors()["beeline"].spec.streams["submissions"].outbound
    with beeline.engine.connect() as conn:
        context = build_context(
            conn,
            connection_id=beeline.connection_id,
            entity="submission",
            record_id=sid,
            outbound=outbound,
            payload=withdrawn["payload"],
            config={"base_url": "x"},
        )
    assert context["submission"]["status"] == "withdrawn" and context["submission"]["bill_rate"] == 90.0
    assert context["candidate"]["email"].startswith("ada.") and context["candidate"]["external_id"] is None
    posting = beeline.link("job", beeline.jobs[0])
    assert context["job"]["external_id"] == posting
    assert context["link"] == {"external_id": None} and context["steps"] == {}
    assert context["config"] == {"base_url": "x"}

    # with its id, an item sends its own value only where a later item changes the field again;
    # elsewhere the current value (e.g. a rate the partner won in a conflict since the change)
    def row_for(item: dict) -> dict:
        with beeline.engine.connect() as conn:
            return build_context(
                conn,
                connection_id=beeline.connection_id,
                entity="submission",
                record_id=sid,
                outbound=outbound,
                payload=item["payload"],
                item_id=item["id"],
            )["submission"]

    latest = beeline.items(operation="update")[1]
    assert row_for(withdrawn)["status"] == "withdrawn" and row_for(latest)["status"] == "submitted"
    create = beeline.items(operation="create")[0]
    with beeline.engine.begin() as conn:  # an inbound sync takes the partner's rate
        conn.execute(submission.update().where(submission.c.id == sid).values(bill_rate=Decimal("99")))
    assert row_for(create)["bill_rate"] == 99.0
    (rate_change,) = update_submission(beeline.engine, sid, bill_rate=91)
    assert row_for(create)["bill_rate"] == 90.0  # a later ATS write follows: the create's own value
    assert row_for(beeline.items(id=rate_change)[0])["bill_rate"] == 91.0

    with beeline.engine.connect() as conn, pytest.raises(OutboundError, match="no column 'client_id'"):
        build_context(
            conn,
            connection_id=beeline.connection_id,
            entity="submission",
            record_id=sid,
            outbound=Outbound(update=outbound.update, context={"client": "job"}),
        )
