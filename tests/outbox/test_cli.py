"""`outbox list | retry | replay | deliver` through click, on a real database and the Beeline simulator."""

import json
import re
from datetime import date

import pytest
from click.testing import CliRunner

from integration_pipelines.cli.outbox import outbox
from integration_pipelines.outbox.changes import submit_candidate, update_submission
from tests.outbox.conftest import Beeline


@pytest.fixture
def run(beeline: Beeline, vault_key: str, monkeypatch):
    monkeypatch.setenv("INTEGRATION_DATABASE_URL", beeline.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", vault_key)

    def invoke(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(outbox, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def deliver(run) -> str:
    return run("deliver", "--until-empty", "--sandbox", "--max-seconds", "30", "--backoff-base", "0.05")


def test_dead_items_block_their_record_until_retried(beeline: Beeline, run) -> None:
    (person,) = beeline.candidates(1)
    submission_id = submit_candidate(
        beeline.engine,
        tenant_id=beeline.tenant,
        candidate_id=person,
        job_id=beeline.jobs[0],
        currency="USD",
        rate_period="hour",
        available_date=date(2026, 4, 1),
    )  # no bill rate: Beeline answers 400
    output = deliver(run)
    assert "dead 1" in output and "rate is required" in output and "outbox empty" in output
    (create,) = beeline.items()

    # the recruiter adds the rate; that update waits behind the dead create
    (fix,) = update_submission(beeline.engine, submission_id, bill_rate=88)
    listing = run("list")
    assert re.search(rf"{fix} .* pending \(blocked by #{create['id']}\)", listing), listing
    assert re.search(rf"{create['id']} .* dead .*HTTP 400: rate is required", listing), listing
    assert "1 pending, 0 sending, 0 delivered, 1 dead" in listing
    assert str(create["id"]) in run("list", "--status", "dead", "--connection", beeline.connection_id)
    assert "item(s) wait behind dead items" in deliver(run)

    assert f"1 item(s) pending again: {create['id']}" in run("retry", str(create["id"]))
    (item,) = beeline.items(id=create["id"])
    assert (item["status"], item["attempts"]) == ("pending", 0)
    assert "delivered 2" in deliver(run)
    (made,) = beeline.new_candidates()
    assert made["rate"] == 88.0 and beeline.link("submission", submission_id) == made["uid"]
    assert "0 pending, 0 sending, 2 delivered, 0 dead" in run("list")

    assert "not dead" in run("retry", str(create["id"]), code=1)
    assert "give item IDs or --all-dead" in run("retry", code=2)


def test_retry_all_dead_and_replay(beeline: Beeline, run) -> None:
    people = beeline.candidates(2)
    ids = [
        submit_candidate(
            beeline.engine,
            tenant_id=beeline.tenant,
            candidate_id=person,
            job_id=beeline.jobs[1],
            bill_rate=70,
            currency="USD",
            rate_period="hour",
        )
        for person in people
    ]
    # the partner revokes the credentials: a configuration error, dead at once (retrying cannot help)
    beeline.sim.revoke(beeline.tenant)
    output = deliver(run)
    assert "dead 2" in output and "refused the credentials" in output
    beeline.sim.unrevoke(beeline.tenant)  # the customer fixes it; the operator retries what died
    output = run("retry", "--all-dead", "--connection", beeline.connection_id)
    assert "2 item(s) pending again" in output
    assert "delivered 2" in deliver(run)

    update_submission(beeline.engine, ids[0], status="withdrawn")
    (update_id,) = update_submission(beeline.engine, ids[0], status="submitted")
    assert "delivered 2" in deliver(run)
    uid = beeline.link("submission", ids[0])
    before = [json.loads(u.body) for u in beeline.uploads(uid)]
    assert before == [{"status": "RESCINDED"}, {"status": "RESUBMITTED"}]
    output = run("replay", str(update_id))
    new_id = int(re.search(rf"#{update_id} -> #(\d+)", output).group(1))
    (copy,) = beeline.items(id=new_id)
    (original,) = beeline.items(id=update_id)
    assert copy["payload"] == original["payload"] and copy["created_at"] == original["created_at"]
    assert "delivered 1" in deliver(run)
    assert [json.loads(u.body) for u in beeline.uploads(uid)] == [*before, {"status": "RESUBMITTED"}]
    assert "cannot replay: #999999 is unknown" in run("replay", "999999", code=1)
