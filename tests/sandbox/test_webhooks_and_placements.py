"""Bi-directional VMS simulators: pushed webhooks, submissions, placements, buyer-side edits.

Everything runs over real HTTP on 127.0.0.1: the simulators in a ``Sandbox`` and, for the
events they push, a tiny Starlette receiver served by uvicorn that records every request.
"""

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
import xmltodict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from integration_pipelines.sandbox import Sandbox
from integration_pipelines.sandbox.beeline import BeelineSimulator
from integration_pipelines.sandbox.sap_fieldglass import SapFieldglassSimulator

WO_DOWNLOAD = "/vc/connector/WorkOrderDownload"


# ---------------------------------------------------------------------------- a webhook receiver


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every POST; answers the statuses queued in ``script`` first, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[int] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["POST"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            status = self.script.pop(0) if self.script else 200
            self.requests.append(Received(request.url.path, dict(request.headers), body, status))
        return Response(status_code=status)

    def start(self) -> "Receiver":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received()) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def vms() -> Iterator[Sandbox]:
    sb = Sandbox(
        partners=["beeline", "sap_fieldglass"], options={"beeline": {"rate_limit_per_minute": 100_000}}
    )
    with sb:
        yield sb


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def fresh_tenant(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def beeline(vms: Sandbox) -> BeelineSimulator:
    return vms.simulators["beeline"]  # type: ignore[return-value]


def fieldglass(vms: Sandbox) -> SapFieldglassSimulator:
    return vms.simulators["sap_fieldglass"]  # type: ignore[return-value]


def beeline_auth(client: httpx.Client, vms: Sandbox, tenant: str) -> dict[str, str]:
    creds = beeline(vms).add_tenant(tenant, records=40)
    r = client.post(
        vms.base_url("beeline") + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def fg_auth(client: httpx.Client, vms: Sandbox, tenant: str) -> dict[str, str]:
    creds = fieldglass(vms).add_tenant(tenant, records=40)
    r = client.post(
        vms.base_url("sap_fieldglass") + "/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "response_type": "token"},
        auth=(creds["client_id"], creds["license_key"]),
        headers={"X-ApplicationKey": creds["application_key"]},
    )
    assert r.status_code == 200, r.text
    return {
        "Authorization": f"Bearer {r.json()['access_token']}",
        "X-ApplicationKey": creds["application_key"],
    }


def verify_beeline_signature(request: Received, secret: str) -> None:
    """The receiver's check, written independently of the simulator."""
    timestamp = request.headers["x-beeline-timestamp"]
    assert abs(int(timestamp) - time.time()) < 30
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-beeline-signature"], f"sha256={expected}")


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- beeline


def test_beeline_touch_and_add_send_signed_events(vms: Sandbox, receiver: Receiver) -> None:
    sim = beeline(vms)
    tenant = fresh_tenant("bw")
    creds = sim.add_tenant(tenant, records=40)
    assert creds["webhook_secret"] == sim.derive(tenant, "webhook-secret", 48)
    sim.touch(tenant, 1)  # before subscribing: nothing is queued
    sim.subscribe(tenant, receiver.url())
    touched = sim.touch(tenant, 2)
    added = sim.add_records(tenant, 1)
    assert sim.flush_webhooks(5)
    got = receiver.received()
    assert len(got) == 3
    postings = {p["uid"]: p for p in sim.postings(tenant)}
    for request in got:
        assert request.headers["content-type"] == "application/json"
        verify_beeline_signature(request, creds["webhook_secret"])
    events = [r.json() for r in got]
    assert [e["event"] for e in events] == ["jobPosting.updated", "jobPosting.updated", "jobPosting.created"]
    assert [e["jobPostingUid"] for e in events] == touched + added
    for e in events:
        assert set(e) == {"eventId", "event", "occurredAt", "jobPostingUid"}
        assert str(uuid.UUID(e["eventId"])) == e["eventId"]
        assert e["occurredAt"] == postings[e["jobPostingUid"]]["updatedAt"]
        assert e["occurredAt"].endswith("Z")
    assert len({e["eventId"] for e in events}) == 3
    assert sim.events_sent(tenant) == events
    assert sim.stats.webhooks_sent >= 3

    # a tampered body no longer matches the signature (the check above can fail)
    forged = Received(got[0].path, got[0].headers, got[0].body.replace(b"jobPosting", b"jobPostinG"), 200)
    with pytest.raises(AssertionError):
        verify_beeline_signature(forged, creds["webhook_secret"])


def test_beeline_duplicates_shuffle_and_admin(vms: Sandbox, receiver: Receiver, client: httpx.Client) -> None:
    sim = beeline(vms)
    tenant = fresh_tenant("bd")
    sim.add_tenant(tenant, records=40)
    admin = vms.admin_url("beeline")
    r = client.post(f"{admin}/subscribe", json={"tenant": tenant, "url": receiver.url("admin")})
    assert r.status_code == 200 and sim.subscription(tenant) == receiver.url("admin")
    assert client.post(f"{admin}/subscribe", json={"tenant": tenant, "url": "ftp://x"}).status_code == 400

    event = sim.send_event(tenant, times=3)
    assert event["event"] == "jobPosting.updated" and event["jobPostingUid"] in {
        p["uid"] for p in sim.postings(tenant)
    }
    assert sim.flush_webhooks(5)
    got = receiver.received()
    assert [r.json() for r in got] == [event] * 3  # duplicates: same eventId three times
    assert all(r.path == "/admin" for r in got)

    sim.shuffle_next(3)
    custom = [{"eventId": f"e{i}", "event": "jobPosting.updated", "jobPostingUid": "x"} for i in range(4)]
    for e in custom:
        sim.send_event(tenant, e)
    r = client.post(f"{admin}/flush-webhooks", json={"timeout": 5})
    assert r.json() == {"flushed": True}
    ids = [r.json()["eventId"] for r in receiver.received()[3:]]
    assert ids == ["e2", "e1", "e0", "e3"]  # the next three reversed, then FIFO again

    r = client.post(f"{admin}/send-event", json={"tenant": tenant, "times": 2})
    assert r.status_code == 200
    assert sim.flush_webhooks(5) and len(receiver.received()) == 9
    assert client.post(f"{admin}/unsubscribe", json={"tenant": tenant}).status_code == 200
    with pytest.raises(ValueError, match="no subscriber"):
        sim.send_event(tenant)
    sim.touch(tenant, 1)
    assert sim.flush_webhooks(2) and len(receiver.received()) == 9
    assert len(sim.events_sent(tenant)) == 9


def test_beeline_submission_idempotency_and_status_events(
    vms: Sandbox, receiver: Receiver, client: httpx.Client
) -> None:
    sim = beeline(vms)
    tenant = fresh_tenant("bs")
    auth = beeline_auth(client, vms, tenant)
    base = vms.base_url("beeline")
    sim.subscribe(tenant, receiver.url())
    r = client.post(
        base + "/workers",
        headers={**auth, "Idempotency-Key": "w-1"},
        json={"firstName": "Maria", "lastName": "Lopez", "email": "maria.lopez@example.com"},
    )
    assert r.status_code == 201
    worker = r.json()
    again = client.post(
        base + "/workers",
        headers={**auth, "Idempotency-Key": "w-1"},
        json={"firstName": "Maria", "lastName": "Lopez", "email": "maria.lopez@example.com"},
    )
    assert again.status_code == 200 and again.json() == worker
    assert again.headers["Idempotent-Replayed"] == "true"

    posting = next(p for p in sim.postings(tenant) if p["status"] == "OPEN")
    submission = {
        "jobPostingUid": posting["uid"],
        "workerUid": worker["uid"],
        "rate": 80.5,
        "rateCurrency": "USD",
        "ratePeriod": "HOURLY",
        "availableDate": "2026-07-01",
    }
    bad = client.post(
        base + "/candidates", headers=auth, json={**submission, "jobPostingUid": str(uuid.uuid4())}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "Bad Request"
    assert "jobPostingUid" in bad.json()["message"]
    bad = client.post(base + "/candidates", headers=auth, json={**submission, "workerUid": str(uuid.uuid4())})
    assert bad.status_code == 400 and "workerUid" in bad.json()["message"]

    before = len(sim.candidates(tenant))
    since = now_iso()
    key = {**auth, "Idempotency-Key": "sub-123"}
    first = client.post(base + "/candidates", headers=key, json=submission)
    assert first.status_code == 201
    cand = first.json()
    assert cand["status"] == "SUBMITTED" and cand["submittedAt"] == cand["updatedAt"]
    replay = client.post(base + "/candidates", headers=key, json=submission)
    assert replay.status_code == 200 and replay.json() == cand
    assert len(sim.candidates(tenant)) == before + 1
    assert client.post(base + "/candidates", headers=auth, json=submission).status_code == 409  # no key

    listed = client.get(base + "/candidates", headers=auth, params={"updatedSince": since}).json()["items"]
    assert [c["uid"] for c in listed] == [cand["uid"]]
    assert client.get(base + f"/candidates/{cand['uid']}", headers=auth).json() == cand
    everything = client.get(base + "/candidates", headers=auth, params={"limit": 200}).json()["items"]
    assert [(c["updatedAt"], c["uid"]) for c in everything] == sorted(
        (c["updatedAt"], c["uid"]) for c in everything
    )
    assert client.get(base + "/candidates", headers=auth, params={"updatedSince": "soon"}).status_code == 400

    # supplier-side changes (POST/PATCH) fired nothing; the buyer's status change does
    assert sim.flush_webhooks(5) and receiver.received() == []
    updated = sim.set_candidate_status(tenant, cand["uid"], "REJECTED")
    assert updated["updatedAt"] > cand["updatedAt"]
    assert sim.flush_webhooks(5)
    (request,) = receiver.received()
    verify_beeline_signature(request, sim.credentials(tenant)["webhook_secret"])
    event = request.json()
    assert event["event"] == "candidate.statusChanged"
    assert (event["candidateUid"], event["status"], event["occurredAt"]) == (
        cand["uid"],
        "REJECTED",
        updated["updatedAt"],
    )
    assert client.get(base + f"/candidates/{cand['uid']}", headers=auth).json()["status"] == "REJECTED"
    with pytest.raises(ValueError):
        sim.set_candidate_status(tenant, cand["uid"], "HIRED")


def test_beeline_assignments_paging_patch_and_buyer_edits(
    vms: Sandbox, receiver: Receiver, client: httpx.Client
) -> None:
    sim = beeline(vms)
    tenant = fresh_tenant("ba")
    auth = beeline_auth(client, vms, tenant)
    base = vms.base_url("beeline")
    seeded = sim.assignments(tenant)
    assert len(seeded) == 20
    accepted = {c["uid"]: c for c in sim.candidates(tenant) if c["status"] == "ACCEPTED"}
    workers = {w["uid"] for w in sim.workers(tenant)}
    for a in seeded:
        assert a["candidateUid"] in accepted and a["workerUid"] in workers
        assert a["status"] in ("PENDING_START", "ACTIVE", "ENDED", "CANCELLED")
        assert isinstance(a["billRate"], float) and a["payRate"] < a["billRate"]
    other = BeelineSimulator()
    other.add_tenant(tenant, records=40)
    assert other.assignments(tenant) == seeded  # deterministic seed

    pages: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.get(base + "/assignments", headers=auth, params={"limit": 7, "offset": offset}).json()[
            "items"
        ]
        pages += page
        offset += 7
        if len(page) < 7:
            break
    assert pages == seeded  # every assignment once, ordered by updatedAt then uid

    sim.subscribe(tenant, receiver.url())
    target = seeded[0]
    since = now_iso()
    r = client.patch(
        base + f"/assignments/{target['uid']}",
        headers=auth,
        json={"endDate": "2027-03-31", "billRate": 99.5, "status": "ACTIVE", "payRate": None},
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert (patched["endDate"], patched["billRate"], patched["status"]) == ("2027-03-31", 99.5, "ACTIVE")
    assert patched["updatedAt"] > max(a["updatedAt"] for a in seeded)
    assert client.get(base + f"/assignments/{target['uid']}", headers=auth).json() == patched
    changed = client.get(base + "/assignments", headers=auth, params={"updatedSince": since}).json()["items"]
    assert [a["uid"] for a in changed] == [target["uid"]]
    for body in (
        {"hours": 40},
        {},
        {"status": None},
        {"endDate": "31/03/2027"},
        {"payRate": -1},
        {"status": "DONE"},
    ):
        bad = client.patch(base + f"/assignments/{target['uid']}", headers=auth, json=body)
        assert bad.status_code == 400 and bad.json()["error"] == "Bad Request", body
    before_start = client.patch(
        base + f"/assignments/{target['uid']}", headers=auth, json={"endDate": "2000-01-01"}
    )
    assert before_start.status_code == 400
    assert (
        client.patch(
            base + f"/assignments/{uuid.uuid4()}", headers=auth, json={"status": "ENDED"}
        ).status_code
        == 404
    )
    assert sim.flush_webhooks(5) and receiver.received() == []  # the supplier's PATCH fires nothing

    # the buyer changes the same placement: assignment.updated, and polling sees the buyer's value
    edited = sim.edit_assignment(tenant, target["uid"], end_date="2027-06-30", pay_rate=70)
    assert edited["endDate"] == "2027-06-30" and edited["billRate"] == 99.5 and edited["payRate"] == 70.0
    assert edited["updatedAt"] > patched["updatedAt"]
    with pytest.raises(ValueError):
        sim.edit_assignment(tenant, target["uid"], hours=3)
    with pytest.raises(KeyError):
        sim.edit_assignment(tenant, "nope", status="ENDED")

    # accept: a new assignment plus two events, in order
    worker = next(iter(sim.workers(tenant)))
    posting = next(p for p in sim.postings(tenant) if p["status"] == "OPEN")
    cand = client.post(
        base + "/candidates",
        headers=auth,
        json={
            "jobPostingUid": posting["uid"],
            "workerUid": worker["uid"],
            "rate": 90,
            "rateCurrency": "USD",
            "ratePeriod": "HOURLY",
        },
    ).json()
    new_uid = sim.accept(tenant, cand["uid"], "2027-01-04", "2027-06-30")
    assert sim.flush_webhooks(5)
    events = [r.json() for r in receiver.received()]
    assert [(e["event"], e.get("assignmentUid") or e.get("candidateUid")) for e in events] == [
        ("assignment.updated", target["uid"]),
        ("candidate.statusChanged", cand["uid"]),
        ("assignment.updated", new_uid),
    ]
    assert events[0]["occurredAt"] == edited["updatedAt"]
    new = client.get(base + f"/assignments/{new_uid}", headers=auth).json()
    assert new["status"] == "PENDING_START" and new["candidateUid"] == cand["uid"]
    assert (new["startDate"], new["endDate"], new["billRate"]) == ("2027-01-04", "2027-06-30", 90.0)
    assert client.get(base + f"/candidates/{cand['uid']}", headers=auth).json()["status"] == "ACCEPTED"
    with pytest.raises(ValueError, match="already has an assignment"):
        sim.accept(tenant, cand["uid"], "2027-01-04", "2027-06-30")


def test_beeline_assignment_faults_go_through_the_pipeline(vms: Sandbox, client: httpx.Client) -> None:
    sim = beeline(vms)
    tenant = fresh_tenant("bf")
    auth = beeline_auth(client, vms, tenant)
    base = vms.base_url("beeline")
    sim.faults.inject("server_error", tenant=tenant, path_contains="/assignments")
    assert client.get(base + "/assignments", headers=auth).status_code == 500
    sim.faults.inject("malformed_record", tenant=tenant, path_contains="/assignments")
    items = client.get(base + "/assignments", headers=auth).json()["items"]
    assert "status" not in items[0] and "status" in items[2]
    assert client.get(base + "/assignments").status_code == 401
    assert sim.stats.request_count("GET", "/assignments") >= 3


# ---------------------------------------------------------------------------- retries, give-up, downtime


def test_retries_after_500_then_delivers_once(vms: Sandbox, receiver: Receiver) -> None:
    sim = beeline(vms)
    tenant = fresh_tenant("br")
    sim.add_tenant(tenant, records=40)
    sim.subscribe(tenant, receiver.url())
    receiver.script = [500, 500]
    attempts_before = len(sim.stats.webhook_deliveries)
    sent_before, failed_before = sim.stats.webhooks_sent, sim.stats.webhooks_failed
    started = time.monotonic()
    event = sim.send_event(tenant)
    assert sim.flush_webhooks(5)
    elapsed = time.monotonic() - started
    assert [r.status for r in receiver.received()] == [500, 500, 200]
    assert {r.json()["eventId"] for r in receiver.received()} == {event["eventId"]}
    assert sim.stats.webhook_deliveries[attempts_before:] == [
        (event["eventId"], 500),
        (event["eventId"], 500),
        (event["eventId"], 200),
    ]
    assert sim.stats.webhooks_sent == sent_before + 1 and sim.stats.webhooks_failed == failed_before
    assert 0.55 <= elapsed < 3  # backoff 0.2 s then 0.4 s


def test_gives_up_after_five_tries_and_moves_on(receiver: Receiver) -> None:
    with Sandbox(partners=["beeline"], options={"beeline": {"webhook_backoff_seconds": 0.01}}) as sb:
        sim = beeline(sb)
        sim.add_tenant("acme", records=10)
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/hook"
        dead.close()  # nothing listens there: connection refused
        sim.subscribe("acme", dead_url)
        lost = sim.send_event("acme")
        assert sim.flush_webhooks(5)
        assert sim.stats.webhooks_failed == 1 and sim.stats.webhooks_sent == 0
        attempts = sim.stats.webhook_deliveries
        assert len(attempts) == 5 and all(e == lost["eventId"] and isinstance(o, str) for e, o in attempts)
        assert "ConnectError" in str(attempts[0][1])
        sim.subscribe("acme", receiver.url())
        receiver.script = [503] * 5
        sim.send_event("acme")
        kept = sim.send_event("acme")
        assert sim.flush_webhooks(5)
        assert [r.status for r in receiver.received()] == [503] * 5 + [200]
        assert receiver.received()[-1].json()["eventId"] == kept["eventId"]
        snapshot = sim.stats.snapshot()
        assert snapshot["webhooks_failed"] == 2 and snapshot["webhooks_sent"] == 1
    assert not sim.webhooks.running


def test_downtime_keeps_pending_events(vms: Sandbox, receiver: Receiver, client: httpx.Client) -> None:
    sim = fieldglass(vms)
    tenant = fresh_tenant("fd")
    sim.add_tenant(tenant, records=40)
    sim.subscribe(tenant, receiver.url())
    vms.stop_partner("sap_fieldglass")
    try:
        assert not sim.webhooks.running
        with httpx.Client(timeout=2) as fresh, pytest.raises(httpx.ConnectError):
            fresh.get(vms.base_url("sap_fieldglass") + WO_DOWNLOAD)
        touched = sim.touch(tenant, 2)
        assert not sim.flush_webhooks(0.3)
        assert receiver.received() == []
    finally:
        vms.start_partner("sap_fieldglass")
    assert sim.flush_webhooks(5)
    ids = [xmltodict.parse(r.body)["Event"]["JobPosting"]["JobPostingID"] for r in receiver.received()]
    assert ids == touched


# ---------------------------------------------------------------------------- sap fieldglass


def test_fieldglass_push_basic_auth_and_xml_envelope(
    vms: Sandbox, receiver: Receiver, client: httpx.Client
) -> None:
    sim = fieldglass(vms)
    tenant = fresh_tenant("fp")
    creds = sim.add_tenant(tenant, records=40)
    assert creds["webhook_password"] == sim.derive(tenant, "webhook-password", 32)
    sim.subscribe(tenant, receiver.url("fg"))
    touched = sim.touch(tenant, 1)
    added = sim.add_records(tenant, 1)
    order_id = sim.work_orders(tenant)[0]["Work Order ID"]
    edited = sim.edit_work_order(tenant, order_id, end_date="2027-05-31", **{"Bill Rate": 101.25})
    assert sim.flush_webhooks(5)
    got = receiver.received()
    assert len(got) == 3
    expected_auth = base64.b64encode(
        f"{creds['webhook_username']}:{creds['webhook_password']}".encode()
    ).decode()
    for request in got:
        assert request.headers["content-type"] == "application/xml"
        assert request.headers["authorization"] == f"Basic {expected_auth}"
        assert "x-beeline-signature" not in request.headers
    events = [xmltodict.parse(r.body)["Event"] for r in got]
    assert [e["EventType"] for e in events] == ["JobPostingUpdated", "JobPostingCreated", "WorkOrderUpdated"]
    for e in events:
        assert list(e)[:3] == ["EventID", "EventType", "OccurredAt"]
        uuid.UUID(e["EventID"])

    # the posting inside the event is exactly what the download serves
    r = client.get(
        vms.base_url("sap_fieldglass") + "/vc/connector/JobPostingSupplierDownload",
        params={"fromDate": events[0]["OccurredAt"]},
        headers=fg_auth(client, vms, tenant),
    )
    downloaded = xmltodict.parse(r.text, force_list=("JobPosting",))["JobPostings"]["JobPosting"]
    by_id = {p["JobPostingID"]: p for p in downloaded}
    assert events[0]["JobPosting"] == by_id[touched[0]]
    assert (
        events[1]["JobPosting"] == by_id[added[0]]
        and events[1]["JobPosting"]["Status"] == "Pending Submission"
    )
    assert events[0]["OccurredAt"] == events[0]["JobPosting"]["LastModified"]

    work_order = events[2]["WorkOrder"]
    assert work_order["WorkOrderID"] == order_id
    assert (work_order["EndDate"], work_order["BillRate"]) == ("2027-05-31", "101.25")
    assert work_order["LastModified"] == edited["Last Modified"] == events[2]["OccurredAt"]
    assert set(work_order) == {
        "WorkOrderID",
        "JobPostingID",
        "JobSeekerID",
        "WorkerID",
        "FirstName",
        "LastName",
        "Status",
        "StartDate",
        "EndDate",
        "BillRate",
        "PayRate",
        "Currency",
        "LastModified",
    }
    sample = sim.send_event(tenant, times=2)
    assert sim.flush_webhooks(5)
    dupes = [xmltodict.parse(r.body)["Event"]["EventID"] for r in receiver.received()[3:]]
    assert dupes == [sample["EventID"]] * 2
    with pytest.raises(ValueError):
        sim.edit_work_order(tenant, order_id, status="Finished")
    with pytest.raises(KeyError):
        sim.edit_work_order(tenant, "NOPE", status="Closed")


def test_fieldglass_work_order_download_and_update_upload(
    vms: Sandbox, receiver: Receiver, client: httpx.Client
) -> None:
    sim = fieldglass(vms)
    tenant = fresh_tenant("fw")
    auth = fg_auth(client, vms, tenant)
    base = vms.base_url("sap_fieldglass")
    sim.subscribe(tenant, receiver.url())
    rows = client.get(base + WO_DOWNLOAD, headers=auth).json()["Data"]
    assert len(rows) == 15 and rows == sim.work_orders(tenant)
    assert set(rows[0]) == {
        "Work Order ID",
        "Job Posting ID",
        "Job Seeker ID",
        "Worker ID",
        "First name",
        "Last name",
        "Status",
        "Start date",
        "End date",
        "Bill Rate",
        "Pay Rate",
        "Currency",
        "Last Modified",
    }
    prefix = rows[0]["Work Order ID"][:4]
    assert all(r["Work Order ID"].startswith(prefix + "WO") for r in rows)
    assert {r["Status"] for r in rows} <= {"Pending", "Active", "Closed", "Cancelled"}
    postings = {p["JobPostingID"] for p in sim.postings(tenant)}
    assert all(r["Job Posting ID"] in postings for r in rows)
    middle = rows[7]["Last Modified"]
    later = client.get(base + WO_DOWNLOAD, headers=auth, params={"fromDate": middle}).json()["Data"]
    assert later == [r for r in rows if r["Last Modified"] >= middle] and 0 < len(later) < 15
    assert client.get(base + WO_DOWNLOAD, headers=auth, params={"fromDate": "today"}).status_code == 400

    since = now_iso()
    a, b = rows[0]["Work Order ID"], rows[1]["Work Order ID"]
    csv_body = (
        "Type,Work Order Update Upload\nTransaction,False\nDate Format,MM/DD/YYYY\n"
        'Number Format,"#,##9.99"\nComments,Extension from ATS\n\n'
        "Work Order ID,End Date,Bill Rate,Pay Rate,Comments\n"
        f'{a},03/31/2027,"1,105.50",,extended\n'
        f"{b},,,61.00,pay rise\n"
        f"{prefix}WO99999999,03/31/2027,,,ghost\n"
    )
    r = client.post(
        base + "/vc/connector/WorkOrderUpdateUpload",
        content=csv_body,
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["Message"] == "File received"
    transaction = r.json()["TransactionID"]
    orders = {o["Work Order ID"]: o for o in sim.work_orders(tenant)}
    assert (orders[a]["End date"], orders[a]["Bill Rate"], orders[a]["Pay Rate"]) == (
        "2027-03-31",
        1105.5,
        rows[0]["Pay Rate"],
    )
    assert orders[b]["Pay Rate"] == 61.0 and orders[b]["End date"] == rows[1]["End date"]
    audit = [x for x in sim.audit_trail(tenant) if x["TransactionID"] == transaction]
    assert [(x["Work Order ID"], x["Status"]) for x in audit] == [
        (a, "Success"),
        (b, "Success"),
        (f"{prefix}WO99999999", "Failed"),
    ]
    assert "not found" in audit[2]["Message"] and audit[0]["Comments"] == "extended"
    changed = client.get(base + WO_DOWNLOAD, headers=auth, params={"fromDate": since}).json()["Data"]
    assert sorted(o["Work Order ID"] for o in changed) == sorted([a, b])
    assert all(o["Last Modified"] >= since for o in changed)

    # JSON upload, Transaction defaults to False for JSON: the bad row fails alone
    r = client.post(
        base + "/vc/connector/WorkOrderUpdateUpload",
        json={
            "Data": [{"Work Order ID": a, "End Date": "2027-04-30"}, {"Work Order ID": b, "Bill Rate": "-5"}]
        },
        headers=auth,
    )
    assert r.status_code == 200
    audit = [x for x in sim.audit_trail(tenant) if x["TransactionID"] == r.json()["TransactionID"]]
    assert [x["Status"] for x in audit] == ["Success", "Failed"]
    assert sim.work_orders(tenant)[-1]["End date"] == "2027-04-30"
    # the supplier's uploads push nothing back
    assert sim.flush_webhooks(5) and receiver.received() == []


def test_fieldglass_job_seeker_upload_with_supplier_reference(vms: Sandbox, client: httpx.Client) -> None:
    sim = fieldglass(vms)
    tenant = fresh_tenant("fj")
    auth = fg_auth(client, vms, tenant)
    open_posting = next(p for p in sim.postings(tenant) if p["Status"] == "Submitted")["JobPostingID"]
    csv_body = (
        "Type,Job Seeker Upload\nTransaction,False\nDate Format,YYYY-MM-DD\n\n"
        "Job Posting ID,First Name,Last Name,Email,Bill Rate,Available Date,Supplier Reference\n"
        f"{open_posting},Maria,Lopez,maria.lopez@example.com,95.00,2027-01-04,ATS-SUB-1\n"
        f"{open_posting},Kwame,Mensah,kwame.mensah@example.com,90.00,2027-01-04,ATS-SUB-1\n"
    )
    url = vms.base_url("sap_fieldglass") + "/vc/connector/JobSeekerUpload"
    r = client.post(url, content=csv_body, headers={**auth, "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["Message"] == "File received"
    assert set(r.json()) == {"TransactionID", "Message"}
    seeker = sim.job_seeker_by_reference(tenant, "ATS-SUB-1")
    assert seeker is not None and seeker["First Name"] == "Maria"
    assert re.fullmatch(r"[A-Z]{4}JS\d{8}", seeker["Job Seeker ID"])
    audit = [x for x in sim.audit_trail(tenant) if x["TransactionID"] == r.json()["TransactionID"]]
    assert [(x["Status"], x["Supplier Reference"]) for x in audit] == [
        ("Success", "ATS-SUB-1"),
        ("Failed", "ATS-SUB-1"),
    ]
    assert audit[0]["Job Seeker ID"] == seeker["Job Seeker ID"] and "Duplicate" in audit[1]["Message"]
    # a retried upload (same reference) creates no second job seeker
    client.post(url, content=csv_body, headers={**auth, "Content-Type": "text/csv"})
    assert [s["Supplier Reference"] for s in sim.job_seekers(tenant)] == ["ATS-SUB-1"]
    assert sim.job_seeker_by_reference(tenant, "nope") is None


def test_patches_honour_idempotency_keys() -> None:
    import httpx

    from integration_pipelines.sandbox.server import Sandbox

    with Sandbox(partners=["beeline"]) as box:
        sim = box.simulators["beeline"]
        creds = sim.add_tenant("idem")
        base = box.base_url("beeline")
        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(creds["client_id"], creds["client_secret"]),
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "outbox-42"}
        candidate = sim.candidates("idem")[0]
        first = httpx.patch(
            f"{base}/candidates/{candidate['uid']}", json={"status": "RESCINDED"}, headers=headers
        )
        again = httpx.patch(
            f"{base}/candidates/{candidate['uid']}", json={"status": "RESCINDED"}, headers=headers
        )
        assert first.status_code == 200 and again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        other = httpx.patch(
            f"{base}/candidates/{candidate['uid']}",
            json={"status": "RESCINDED"},
            headers={**headers, "Idempotency-Key": "outbox-43"},
        )
        assert other.status_code == 409  # a new key is a new request
