"""Partners push signed events to the real receiver; Dagster applies them from the inbox."""

import dagster as dg
import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.definitions import build_definitions, webhooks_job_name
from integration_pipelines.local_server import LocalServer
from integration_pipelines.resources.dagster_resources import default_resources, shared_engine
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.sync.service import sync_stream
from integration_pipelines.webhooks.receiver import create_app
from tests.helpers import connect, scalar


def test_pushed_events_are_received_once_and_applied(tmp_path, monkeypatch, sandbox, tenant) -> None:
    key = CredentialVault.generate_key()
    url = f"sqlite:///{tmp_path / 'ats.db'}"
    for name, value in {
        "INTEGRATION_DATABASE_URL": url,
        "INTEGRATION_VAULT_KEYS": key,
        "INTEGRATION_SANDBOX": "1",
    }.items():
        monkeypatch.setenv(name, value)
    engine = shared_engine(url)
    vault = CredentialVault([key])
    store = ConnectionStore(engine, vault)
    connectors = load_connectors()
    beeline, _ = connect(store, sandbox, connectors["beeline"], tenant)
    fieldglass, _ = connect(store, sandbox, connectors["sap_fieldglass"], tenant)
    for connection_id, streams in (
        (beeline, ["job_postings", "submissions", "placements"]),
        (fieldglass, ["job_postings", "placements"]),
    ):
        for stream in streams:
            sync_stream(engine, vault, connection_id, stream, allow_loopback=True)
    bee, fg = sandbox.simulators["beeline"], sandbox.simulators["sap_fieldglass"]

    with LocalServer(create_app(database_url=url, vault=vault), name="webhook receiver") as receiver:
        bee.subscribe(tenant, f"{receiver.url}/webhooks/{beeline}")
        fg.subscribe(tenant, f"{receiver.url}/webhooks/{fieldglass}")
        touched = bee.touch(tenant, 5)  # 5 jobPosting.updated notifications
        assignment = bee.assignments(tenant)[0]
        bee.edit_assignment(tenant, assignment["uid"], billRate=123.45)
        duplicate = bee.send_event(tenant, None, times=3)  # the same event three times
        fg_touched = fg.touch(tenant, 3)  # postings pushed inside the events
        work_order = fg.work_orders(tenant)[0]
        fg.edit_work_order(tenant, work_order["Work Order ID"], bill_rate=77.5)  # a wake-up
        assert bee.flush_webhooks(15) and fg.flush_webhooks(15)

    inbox_rows = "select count(*) from inbox where connection_id = :c"
    assert scalar(engine, inbox_rows, c=beeline) == 5 + 1 + 1  # the duplicate stored once
    assert scalar(engine, inbox_rows, c=fieldglass) == 3 + 1
    assert scalar(engine, "select count(*) from inbox where event_id = :e", e=duplicate["eventId"]) == 1

    defs = build_definitions(list(connectors.values()), resources=default_resources())
    with dg.instance_for_test() as instance:
        for name, connection_id in (("beeline", beeline), ("sap_fieldglass", fieldglass)):
            instance.add_dynamic_partitions(f"{name}_connections", [connection_id])
            result = defs.resolve_job_def(webhooks_job_name(name)).execute_in_process(
                partition_key=connection_id, instance=instance
            )
            assert result.success
    pending = "select count(*) from inbox where status = 'pending' and connection_id in (:a, :b)"
    assert scalar(engine, pending, a=beeline, b=fieldglass) == 0
    with engine.connect() as conn:

        def ats(entity: str, connection_id: str, external_id: str) -> dict:
            return dict(
                conn.execute(
                    sa.text(
                        f"select e.* from {entity} e join record_links l on l.internal_id = e.id "
                        "where l.connection_id = :c and l.external_id = :x"
                    ),
                    {"c": connection_id, "x": external_id},
                )
                .mappings()
                .one()
            )

        postings = {p["uid"]: p for p in bee.postings(tenant)}
        for uid in touched:
            assert ats("job", beeline, uid)["openings"] == postings[uid]["positions"]
        assert float(ats("placement", beeline, assignment["uid"])["bill_rate"]) == 123.45
        fg_postings = {p["JobPostingID"]: p for p in fg.postings(tenant)}
        for posting_id in fg_touched:
            assert ats("job", fieldglass, posting_id)["openings"] == int(fg_postings[posting_id]["Positions"])
        assert float(ats("placement", fieldglass, work_order["Work Order ID"])["bill_rate"]) == 77.5


def test_out_of_order_pushes_leave_the_newest_version(store, vault, sandbox, tenant) -> None:
    """Fieldglass pushes carry the record: a late, older push must not overwrite a newer one."""
    import time

    from integration_pipelines.sync.service import apply_webhook_events

    engine = store.engine
    url = engine.url.render_as_string(hide_password=False)
    fieldglass, _ = connect(store, sandbox, load_connectors()["sap_fieldglass"], tenant)
    sync_stream(engine, vault, fieldglass, "job_postings", allow_loopback=True)
    fg = sandbox.simulators["sap_fieldglass"]
    with LocalServer(create_app(database_url=url, vault=vault), name="webhook receiver") as receiver:
        fg.subscribe(tenant, f"{receiver.url}/webhooks/{fieldglass}")
        (posting_id,) = fg.touch(tenant, 1)
        for _ in range(2):
            time.sleep(1.05)  # whole-second stamps: each version is newer than the last
            fg.touch(tenant, 1, ids=[posting_id])
        assert fg.flush_webhooks(15)
    with engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.text("select id from inbox where connection_id = :c order by occurred_at desc"),
                {"c": fieldglass},
            ).scalars()
        )
        assert len(ids) == 3
        # apply the newest version now; the two older ones "arrive later"
        conn.execute(
            sa.text("update inbox set status = 'held' where id in (:a, :b)"), {"a": ids[1], "b": ids[2]}
        )
    first = apply_webhook_events(engine, vault, fieldglass, allow_loopback=True)
    with engine.begin() as conn:
        conn.execute(sa.text("update inbox set status = 'pending' where status = 'held'"))
    late = apply_webhook_events(engine, vault, fieldglass, allow_loopback=True)
    # the older pushes are stale: nothing is written over the newer version
    assert first.counts.updated == 1 and late.counts.stale >= 1 and late.counts.updated == 0
    final = next(p for p in fg.postings(tenant) if p["JobPostingID"] == posting_id)
    with engine.connect() as conn:
        openings = conn.execute(
            sa.text(
                "select j.openings from job j join record_links l on l.internal_id = j.id "
                "where l.connection_id = :c and l.external_id = :x"
            ),
            {"c": fieldglass, "x": posting_id},
        ).scalar_one()
    assert openings == int(final["Positions"])
