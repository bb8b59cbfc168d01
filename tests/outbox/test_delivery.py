"""Delivering outbox items to the Beeline simulator over real HTTP, from a real SQLite database."""

import json
import random
import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from integration_pipelines.canonical.tables import placement, record_links
from integration_pipelines.outbox.changes import submit_candidate, update_placement, update_submission
from integration_pipelines.outbox.delivery import deliver_due
from tests.outbox.conftest import FAST, Beeline


def submit(b: Beeline, candidate_id: str, job_id: str, **fields) -> str:
    values = {
        "bill_rate": "95.50",
        "currency": "USD",
        "rate_period": "hour",
        "available_date": date(2026, 1, 5),
    }
    return submit_candidate(
        b.engine, tenant_id=b.tenant, candidate_id=candidate_id, job_id=job_id, **{**values, **fields}
    )


def test_submission_is_delivered_with_its_worker_and_links(beeline: Beeline, vault) -> None:
    (person,) = beeline.candidates(1)
    first = submit(beeline, person, beeline.jobs[0])
    (item,) = beeline.items()
    assert (item["operation"], item["status"], item["stream"]) == ("create", "pending", "submissions")
    assert item["payload"]["bill_rate"] == 95.5 and item["payload"]["available_date"] == "2026-01-05"

    report = deliver_due(beeline.engine, vault, **FAST)
    assert (report.delivered, report.retried, report.dead) == (1, 0, 0)

    (made,) = beeline.new_candidates()
    worker = next(w for w in beeline.sim.workers(beeline.tenant) if w["uid"] == made["workerUid"])
    assert worker["email"].startswith("ada.") and worker["lastName"] == "Lovelace"
    postings = {p["uid"] for p in beeline.sim.postings(beeline.tenant)}
    assert made["jobPostingUid"] in postings and made["status"] == "SUBMITTED"
    assert (made["rate"], made["rateCurrency"], made["ratePeriod"]) == (95.5, "USD", "HOURLY")
    assert made["availableDate"] == "2026-01-05"
    assert beeline.link("candidate", person) == worker["uid"]
    assert beeline.link("submission", first) == made["uid"]
    (item,) = beeline.items()
    assert item["status"] == "delivered" and item["external_id"] == made["uid"] and item["attempts"] == 1

    # a second submission of the same candidate reuses the worker: the step is skipped
    workers_before = len(beeline.sim.workers(beeline.tenant))
    posts_before = beeline.sim.stats.request_count("POST", "/workers")
    second = submit(beeline, person, beeline.jobs[1])
    assert deliver_due(beeline.engine, vault, **FAST).delivered == 1
    assert len(beeline.sim.workers(beeline.tenant)) == workers_before
    assert beeline.sim.stats.request_count("POST", "/workers") == posts_before
    again = beeline.candidate_at_partner(beeline.link("submission", second))
    assert again["workerUid"] == worker["uid"] and again["jobPostingUid"] != made["jobPostingUid"]


def delivered_submission(b: Beeline, vault, job: int = 0) -> tuple[str, str]:
    """A submission delivered to Beeline: (ATS id, Beeline candidate uid)."""
    (person,) = b.candidates(1)
    submission_id = submit(b, person, b.jobs[job])
    assert deliver_due(b.engine, vault, connection_id=b.connection_id, **FAST).delivered == 1
    return submission_id, b.link("submission", submission_id)


def patches(b: Beeline, uid: str) -> list[dict]:
    """Bodies of the PATCH requests the simulator applied to one record, in order."""
    return [json.loads(u.body) for u in b.sim.stats.uploads if u.path.endswith(uid)]


def test_update_submission_patches_the_candidate(beeline: Beeline, vault) -> None:
    submission_id, uid = delivered_submission(beeline, vault)
    (item_id,) = update_submission(beeline.engine, submission_id, status="withdrawn")
    assert update_submission(beeline.engine, submission_id, status="withdrawn") == []  # no change
    report = deliver_due(beeline.engine, vault, **FAST)
    assert report.delivered == 1 and report.results[0].item_id == item_id
    assert beeline.candidate_at_partner(uid)["status"] == "RESCINDED"
    assert patches(beeline, uid) == [{"status": "RESCINDED"}]
    (item,) = beeline.items(id=item_id)
    assert (item["status"], item["external_id"], item["payload"]) == (
        "delivered",
        uid,
        {"status": "withdrawn"},
    )

    # a change to nothing Beeline's update carries is delivered without a call
    assert len(update_submission(beeline.engine, submission_id, pay_rate=70)) == 1
    report = deliver_due(beeline.engine, vault, **FAST)
    assert report.delivered == 1 and "nothing sent" in report.results[0].note
    assert len(patches(beeline, uid)) == 1


def test_update_placement_patches_the_seeded_assignment(beeline: Beeline, vault) -> None:
    assignment = beeline.sim.assignments(beeline.tenant)[0]
    start = date.fromisoformat(assignment["startDate"])
    placement_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    with beeline.engine.begin() as conn:
        conn.execute(
            placement.insert().values(
                id=placement_id,
                tenant_id=beeline.tenant,
                status="active",
                start_date=start,
                end_date=date.fromisoformat(assignment["endDate"]),
                bill_rate=assignment["billRate"],
                pay_rate=assignment["payRate"],
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            record_links.insert().values(
                connection_id=beeline.connection_id,
                entity="placement",
                external_id=assignment["uid"],
                internal_id=placement_id,
                synced_at=now,
            )
        )
    new_end = start + timedelta(days=200)
    (item_id,) = update_placement(beeline.engine, placement_id, end_date=new_end, status="ended")
    assert deliver_due(beeline.engine, vault, **FAST).delivered == 1
    after = next(a for a in beeline.sim.assignments(beeline.tenant) if a["uid"] == assignment["uid"])
    assert after["endDate"] == new_end.isoformat() and after["status"] == "ENDED"
    # only what the ATS changed: the bill rate is the partner's to set (conflicts: source_of_truth_partner)
    assert patches(beeline, assignment["uid"]) == [{"endDate": new_end.isoformat(), "status": "ENDED"}]
    assert after["billRate"] == assignment["billRate"]

    # a placement the partner never linked: nothing to update, dead at once (Beeline creates them)
    orphan = str(uuid.uuid4())
    with beeline.engine.begin() as conn:
        conn.execute(
            placement.insert().values(
                id=orphan, tenant_id=beeline.tenant, status="active", created_at=now, updated_at=now
            )
        )
    assert update_placement(beeline.engine, orphan, status="ended") == []  # no connection knows it


def test_updates_of_one_record_never_overtake_each_other(beeline: Beeline, vault) -> None:
    submission_id, uid = delivered_submission(beeline, vault)
    (first,) = update_submission(beeline.engine, submission_id, status="withdrawn")
    (second,) = update_submission(beeline.engine, submission_id, status="submitted")
    beeline.sim.faults.inject("server_error", 1, tenant=beeline.tenant, path_contains=uid)

    report = deliver_due(beeline.engine, vault, **FAST)
    assert (report.delivered, report.retried, report.skipped_blocked) == (0, 1, 1)
    assert beeline.candidate_at_partner(uid)["status"] == "SUBMITTED"
    failed, waiting = beeline.items(id=first)[0], beeline.items(id=second)[0]
    assert failed["attempts"] == 1 and "HTTP 500" in failed["last_error"]
    assert waiting["status"] == "pending" and waiting["attempts"] == 0  # due, but blocked behind #first

    later = failed["next_attempt_at"] + timedelta(seconds=1)
    report = deliver_due(beeline.engine, vault, now=later, **FAST)
    assert [r.item_id for r in report.results] == [first, second] and report.delivered == 2
    assert patches(beeline, uid) == [{"status": "RESCINDED"}, {"status": "RESUBMITTED"}]
    assert beeline.candidate_at_partner(uid)["status"] == "RESUBMITTED"


def test_dead_after_max_attempts_and_what_it_blocks(beeline: Beeline, vault) -> None:
    submission_id, uid = delivered_submission(beeline, vault)
    (item_id,) = update_submission(beeline.engine, submission_id, status="withdrawn")
    beeline.sim.faults.inject("server_error", 20, tenant=beeline.tenant, path_contains=uid)
    now = datetime.now(UTC)
    delays = []
    for attempt in range(1, 9):
        report = deliver_due(beeline.engine, vault, now=now, **FAST)
        (item,) = beeline.items(id=item_id)
        assert item["attempts"] == attempt
        if attempt < 8:
            assert report.retried == 1 and item["status"] == "pending"
            due = item["next_attempt_at"].replace(tzinfo=UTC)
            delays.append((due - now).total_seconds())
            now = due
    assert report.dead == 1 and item["status"] == "dead"
    assert item["last_error"].startswith("gave up after 8 attempts") and "HTTP 500" in item["last_error"]
    # base * 2**attempts with +-20 % jitter, capped at 1 s
    for attempt, delay in enumerate(delays, start=1):
        assert 0.8 * min(1.0, 0.05 * 2**attempt) <= delay <= 1.2 * min(1.0, 0.05 * 2**attempt)

    # a dead item blocks the record's newer items until it is retried or replayed
    (blocked,) = update_submission(beeline.engine, submission_id, status="submitted")
    report = deliver_due(beeline.engine, vault, now=now, **FAST)
    assert report.results == [] and report.skipped_blocked == 1
    assert report.behind_dead == 1 and report.empty
    assert beeline.items(id=blocked)[0]["status"] == "pending"


def test_a_refused_request_is_dead_at_once_and_leaks_no_secret(beeline: Beeline, vault) -> None:
    (person,) = beeline.candidates(1)
    submission_id = submit(beeline, person, beeline.jobs[0], bill_rate=None)
    report = deliver_due(beeline.engine, vault, **FAST)
    assert report.dead == 1 and report.retried == 0
    (item,) = beeline.items()
    assert item["attempts"] == 1 and item["status"] == "dead"
    assert "HTTP 400" in item["last_error"] and "rate is required" in item["last_error"]
    secret = beeline.store.credentials(beeline.connection_id)["client_secret"]
    assert secret not in item["last_error"]
    # the worker step had succeeded and stays linked: a retry will not create a second worker
    assert beeline.link("candidate", person) is not None
    assert beeline.link("submission", submission_id) is None


def test_an_unmapped_value_is_dead_before_any_call(beeline: Beeline, vault) -> None:
    (person,) = beeline.candidates(1)
    submit(beeline, person, beeline.jobs[0], rate_period="fortnight")
    calls = beeline.sim.stats.request_count()
    report = deliver_due(beeline.engine, vault, **FAST)
    assert report.dead == 1
    (item,) = beeline.items()
    assert "unmapped value 'fortnight'" in item["last_error"]
    assert beeline.sim.stats.request_count() == calls


def test_two_delivery_processes_deliver_each_item_once(beeline: Beeline, vault) -> None:
    people = beeline.candidates(10)
    ids = [submit(beeline, p, beeline.jobs[i % 5]) for i, p in enumerate(people)]
    for submission_id in ids:
        update_submission(beeline.engine, submission_id, status="withdrawn")
    reports = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        reports.append(deliver_due(beeline.engine, vault, **FAST))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # whatever the threads left blocked behind each other's creates
    reports.append(deliver_due(beeline.engine, vault, **FAST))
    delivered = [r.item_id for report in reports for r in report.results if r.outcome == "delivered"]
    assert sorted(delivered) == sorted({i["id"] for i in beeline.items()}) and len(delivered) == 20
    assert all(i["status"] == "delivered" for i in beeline.items())
    made = beeline.new_candidates()
    assert len(made) == 10 and {c["status"] for c in made} == {"RESCINDED"}
    assert len(beeline.uploads("/candidates")) == 10 and len(beeline.uploads("/workers")) == 10
    assert len({c["workerUid"] for c in made}) == 10


def test_a_lapsed_claim_is_sent_again_and_the_late_sender_changes_nothing(beeline: Beeline, vault) -> None:
    from integration_pipelines.outbox.delivery import PartnerClients, _deliver_one
    from integration_pipelines.outbox.queue import claim

    submission_id, uid = delivered_submission(beeline, vault)
    (item_id,) = update_submission(beeline.engine, submission_id, status="withdrawn")
    # process A claims the update and stalls past its lease
    row, lease = claim(beeline.engine, item_id, datetime.now(UTC), lease_seconds=-5)
    assert beeline.items(id=item_id)[0]["status"] == "sending"
    # process B finds the lapsed claim, makes it pending again and delivers it
    report = deliver_due(beeline.engine, vault, **FAST)
    assert report.released == 1 and [r.item_id for r in report.results] == [item_id]
    assert "resent after an interrupted send 1" in report.summary()
    delivered_at = beeline.items(id=item_id)[0]["delivered_at"]
    # process A wakes up and sends as well: the same Idempotency-Key, so Beeline replays its first
    # answer and changes nothing; and the item is B's now, so A records nothing either
    patches = beeline.sim.stats.request_count("PATCH")
    with PartnerClients(beeline.engine, vault, allow_loopback=True) as pool:
        clock = lambda: datetime.now(UTC)  # noqa: E731
        result = _deliver_one(beeline.engine, pool, row, lease, clock, 0.05, 1.0, random.Random())
    assert result.outcome == "lease_lost"
    assert beeline.sim.stats.request_count("PATCH") == patches + 1
    (item,) = beeline.items(id=item_id)
    assert item["status"] == "delivered" and item["attempts"] == 1 and item["delivered_at"] == delivered_at
    assert beeline.candidate_at_partner(uid)["status"] == "RESCINDED"


def test_paused_connections_keep_their_items(beeline: Beeline, vault) -> None:
    from integration_pipelines.canonical.tables import connections

    (person,) = beeline.candidates(1)
    submit(beeline, person, beeline.jobs[0])
    with beeline.engine.begin() as conn:
        conn.execute(connections.update().values(status="paused"))
    report = deliver_due(beeline.engine, vault, **FAST)
    assert report.results == [] and report.empty
    assert beeline.items()[0]["status"] == "pending"
    with beeline.engine.begin() as conn:
        conn.execute(connections.update().values(status="active"))
    assert deliver_due(beeline.engine, vault, **FAST).delivered == 1
    with pytest.raises(ValueError, match="needs the credential vault"):
        deliver_due(beeline.engine, None)


def test_a_superseded_item_holds_nothing_back(beeline: Beeline, vault) -> None:
    from integration_pipelines.canonical.tables import outbox

    submission_id, uid = delivered_submission(beeline, vault)
    (moot,) = update_submission(beeline.engine, submission_id, status="withdrawn")
    (kept,) = update_submission(beeline.engine, submission_id, status="submitted")
    with beeline.engine.begin() as conn:  # what conflict resolution does when the partner won
        conn.execute(outbox.update().where(outbox.c.id == moot).values(status="superseded"))
    report = deliver_due(beeline.engine, vault, **FAST)
    assert [r.item_id for r in report.results] == [kept] and report.delivered == 1
    assert [json.loads(u.body) for u in beeline.uploads(uid)] == [{"status": "RESUBMITTED"}]
