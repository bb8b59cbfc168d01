"""The partner goes down, the ATS keeps changing, the delivery process is killed: nothing lost or doubled."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pytest

from integration_pipelines.outbox.changes import submit_candidate, update_submission
from integration_pipelines.outbox.delivery import deliver_due
from tests.outbox.conftest import FAST, Beeline, make_beeline

GROUP_MODULE = "from integration_pipelines.cli.outbox import outbox; outbox()"


def deliver_command() -> list[str]:
    """`integration-pipelines outbox deliver` once `cli.main` registers the group, else the group alone."""
    from integration_pipelines.cli.main import cli

    if "outbox" in cli.commands:
        return [sys.executable, "-m", "integration_pipelines.cli.main", "outbox", "deliver"]
    return [sys.executable, "-c", GROUP_MODULE, "deliver"]


def delivered(b: Beeline) -> int:
    return len(b.items(status="delivered"))


@pytest.mark.slow
def test_downtime_and_a_killed_delivery_process_lose_nothing(
    engine, store, sandbox, tenant, vault, vault_key, tmp_path
) -> None:
    b = make_beeline(engine, store, sandbox, tenant, jobs=5)
    seeded_workers = {w["uid"] for w in b.sim.workers(tenant)}
    people = b.candidates(20)

    sandbox.stop_partner("beeline")
    try:
        ids = [
            submit_candidate(
                engine,
                tenant_id=tenant,
                candidate_id=person,
                job_id=b.jobs[i % 5],
                bill_rate=80 + i,
                currency="USD",
                rate_period="hour",
                available_date=date(2026, 2, 1),
            )
            for i, person in enumerate(people)
        ]
        for status in ("withdrawn", "submitted"):
            for submission_id in ids:
                update_submission(engine, submission_id, status=status)
        queued = len(b.items())
        assert queued == 60

        # the partner refuses connections: every due item is tried, scheduled again further out, kept
        now = datetime.now(UTC)
        for attempt in (1, 2, 3):
            report = deliver_due(engine, vault, connection_id=b.connection_id, now=now, **FAST)
            assert (report.delivered, report.retried, report.dead) == (0, 20, 0)
            assert report.skipped_blocked == 40  # the updates wait behind their creates
            creates = b.items(operation="create")
            assert {i["attempts"] for i in creates} == {attempt}
            assert all(i["status"] == "pending" for i in b.items()) and len(b.items()) == queued
            waits = [(i["next_attempt_at"].replace(tzinfo=UTC) - now).total_seconds() for i in creates]
            assert 0.8 * 0.05 * 2**attempt <= min(waits) and max(waits) <= 1.2 * 0.05 * 2**attempt
            errors = {i["last_error"] for i in creates}
            assert all("cannot reach" in e or "circuit breaker is open" in e for e in errors), errors
            now = max(i["next_attempt_at"].replace(tzinfo=UTC) for i in creates)
    finally:
        sandbox.start_partner("beeline")

    # the partner is back: the delivery process runs as its own OS process, and is killed mid-way
    env = {**os.environ, "INTEGRATION_DATABASE_URL": str(engine.url), "INTEGRATION_VAULT_KEYS": vault_key}
    args = [
        *deliver_command(),
        "--connection",
        b.connection_id,
        "--sandbox",
        "--until-empty",
        "--max-seconds",
        "120",
        "--lease-seconds",
        "3",
        "--backoff-base",
        "0.05",
        "--backoff-cap",
        "1",
    ]
    log = tmp_path / "deliver.log"
    with log.open("w") as out:
        first = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            # 15 of the 20 creates (each a POST /workers and a POST /candidates, both honouring the
            # Idempotency-Key); the updates go in later passes (Beeline's PATCH ignores the key, so a
            # kill between its answer and our commit would apply it twice: see outbox.delivery)
            while delivered(b) < 15 and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert first.poll() is None, log.read_text()
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
    at_kill = delivered(b)
    mid_send = len(b.items(status="sending"))
    assert 15 <= at_kill < queued

    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=150)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "outbox empty" in second.stdout

    items = b.items()
    statuses = [i["status"] for i in items]
    assert statuses.count("delivered") == queued and statuses.count("dead") == 0
    # every submission reached Beeline exactly once, with its worker, and both updates in order
    made = b.new_candidates()
    assert len(made) == 20 and len({(c["jobPostingUid"], c["workerUid"]) for c in made}) == 20
    new_workers = [w for w in b.sim.workers(tenant) if w["uid"] not in seeded_workers]
    assert len(new_workers) == 20 and {c["workerUid"] for c in made} == {w["uid"] for w in new_workers}
    for c in made:
        sent = [json.loads(u.body)["status"] for u in b.uploads(c["uid"])]
        assert sent == ["RESCINDED", "RESUBMITTED"] and c["status"] == "RESUBMITTED"
    assert {b.link("submission", s) for s in ids} == {c["uid"] for c in made}
    creates_posted = len(b.uploads("/candidates"))  # repeats carry the same Idempotency-Key
    workers_posted = len(b.uploads("/workers"))
    released = re.search(r"resent after an interrupted send (\d+)", second.stdout)

    retried = sum(1 for i in items if i["attempts"] > 1)
    failed_attempts = sum(i["attempts"] for i in items) - queued
    lost = queued - statuses.count("delivered") - statuses.count("dead")
    print(
        f"\noutbox downtime test: queued {queued}, delivered {statuses.count('delivered')}, "
        f"retried {retried} ({failed_attempts} failed attempts while Beeline was down), "
        f"dead {statuses.count('dead')}, lost {lost}; delivery process killed after {at_kill} "
        f"deliveries with {mid_send} item(s) mid-send, {released.group(1) if released else 0} resent "
        f"by the next process; Beeline received POST /workers {workers_posted}x and POST /candidates "
        f"{creates_posted}x for 20 submissions and holds {len(made)} new candidates, "
        f"{len(new_workers)} new workers"
    )
    assert lost == 0
