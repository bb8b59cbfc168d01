"""The demo's second act: the VMS integrations working both ways.

With the first syncs done, the webhook receiver starts and the VMS simulators push signed
events to it. Recruiters submit candidates to client job orders and change placements in
the ATS (outbox); meanwhile the clients change postings, submission statuses and the very
same placements in their VMS (webhooks). Dagster then applies the events, resolves the
conflicts by each connector's policy and delivers the outbox.
"""

import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg
import sqlalchemy as sa

from integration_pipelines.canonical.tables import (
    candidate,
    conflict_log,
    inbox,
    job,
    outbox,
    placement,
    record_links,
)
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.local_server import LocalServer
from integration_pipelines.outbox.changes import submit_candidate, update_placement
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.webhooks.receiver import create_app

SUBMISSIONS_PER_CONNECTION = 3
PLACEMENT_EDITS = 2  # placements changed on both sides
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class TwoWayFigures:
    """What the second act did, per connection."""

    connection_id: str
    events_sent: int = 0
    events_received: int = 0
    events_applied: int = 0
    submissions: int = 0
    delivered: int = 0
    conflicts: dict[str, int] = field(default_factory=dict)
    superseded: int = 0
    outbox_left: int = 0


def _linked(
    conn: sa.Connection, table: sa.Table, connection_id: str, limit: int, **where: str
) -> list[tuple]:
    query = (
        sa.select(table.c.id, record_links.c.external_id)
        .join(record_links, record_links.c.internal_id == table.c.id)
        .where(record_links.c.connection_id == connection_id, record_links.c.entity == table.name)
        .order_by(record_links.c.external_id)
        .limit(limit)
    )
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    return [tuple(r) for r in conn.execute(query)]


def _ats_changes(engine: sa.Engine, tenant: str, connection_id: str, rng: random.Random) -> tuple[int, list]:
    """Recruiters submit candidates to the client's open jobs and edit placements."""
    with engine.connect() as conn:
        jobs = _linked(conn, job, connection_id, SUBMISSIONS_PER_CONNECTION, status="open")
        people = list(
            conn.execute(
                sa.select(candidate.c.id)
                .where(candidate.c.tenant_id == tenant, candidate.c.email.is_not(None))
                .order_by(candidate.c.id)
                .limit(SUBMISSIONS_PER_CONNECTION)
            ).scalars()
        )
        placements = _linked(conn, placement, connection_id, PLACEMENT_EDITS)
    for (job_id, _), candidate_id in zip(jobs, people, strict=False):
        submit_candidate(
            engine,
            tenant_id=tenant,
            candidate_id=candidate_id,
            job_id=job_id,
            bill_rate=round(rng.uniform(40, 120), 2),
            currency="USD",
            rate_period="hour",
            available_date=date.today() + timedelta(days=14),
        )
    for placement_id, _ in placements:
        update_placement(engine, placement_id, end_date=date.today() + timedelta(days=120), pay_rate=64.0)
    return min(len(jobs), len(people)), placements


def _partner_changes(name: str, sim, tenant: str, placements: list[tuple]) -> None:
    """The client's people change postings, statuses and the same placements in their VMS."""
    sim.touch(tenant, 4)
    new_end = (date.today() + timedelta(days=150)).isoformat()
    for _, external_id in placements:
        if name == "beeline":
            sim.edit_assignment(tenant, external_id, endDate=new_end, billRate=101.5, payRate=58.0)
        else:
            sim.edit_work_order(tenant, external_id, end_date=new_end, bill_rate=101.5, pay_rate=58.0)
    if name == "beeline":
        for c in sim.candidates(tenant)[:2]:
            sim.set_candidate_status(
                tenant, c["uid"], "REJECTED" if c["status"] != "REJECTED" else "RESUBMITTED"
            )
    sim.send_event(tenant, None, times=2)  # a partner retrying: the same event twice


def run_two_way(
    *,
    database_url: str,
    vault: CredentialVault,
    sandbox,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    connections: list[tuple[LoadedConnector, str]],
    echo,
) -> list[TwoWayFigures]:
    """Run the second act for every connection whose connector has webhooks and outbound streams."""
    from integration_pipelines.definitions import sync_job_name, webhooks_job_name
    from integration_pipelines.outbox.dagster_defs import JOB_NAME
    from integration_pipelines.resources.dagster_resources import shared_engine

    engine = shared_engine(database_url)
    rng = random.Random(7)
    two_way = [(c, cid) for c, cid in connections if c.spec.webhooks and c.spec.outbound_streams()]
    figures = {cid: TwoWayFigures(cid) for _, cid in two_way}
    with LocalServer(create_app(database_url=database_url, vault=vault), name="webhook receiver") as receiver:
        echo(f"  webhook receiver       {receiver.url}/webhooks/<connection>")
        edited: dict[str, list] = {}
        for connector, connection_id in two_way:
            tenant = connection_id.split("/")[0]
            sandbox.simulators[connector.name].subscribe(tenant, f"{receiver.url}/webhooks/{connection_id}")
            figures[connection_id].submissions, edited[connection_id] = _ats_changes(
                engine, tenant, connection_id, rng
            )
        time.sleep(1.1)  # partners stamp whole seconds: let their edits come after ours
        for connector, connection_id in two_way:
            sim = sandbox.simulators[connector.name]
            tenant = connection_id.split("/")[0]
            before = len(sim.events_sent(tenant))
            _partner_changes(connector.name, sim, tenant, edited[connection_id])
            figures[connection_id].events_sent = len(sim.events_sent(tenant)) - before
        for connector, _ in two_way:
            sandbox.simulators[connector.name].flush_webhooks(30)

    for connector, connection_id in two_way:
        echo(f"  applying webhooks and polling {connection_id} ...")
        for job_name in (webhooks_job_name(connector.name), sync_job_name(connector.name)):
            defs.resolve_job_def(job_name).execute_in_process(
                partition_key=connection_id, instance=instance, raise_on_error=False, run_config=QUIET
            )
    echo("  delivering the outbox ...")
    defs.resolve_job_def(JOB_NAME).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )

    with engine.connect() as conn:
        for connection_id, fig in figures.items():
            counts = dict(
                conn.execute(
                    sa.select(inbox.c.status, sa.func.count())
                    .where(inbox.c.connection_id == connection_id)
                    .group_by(inbox.c.status)
                ).all()
            )
            fig.events_received = sum(counts.values())
            fig.events_applied = counts.get("applied", 0)
            states = dict(
                conn.execute(
                    sa.select(outbox.c.status, sa.func.count())
                    .where(outbox.c.connection_id == connection_id)
                    .group_by(outbox.c.status)
                ).all()
            )
            fig.delivered = states.get("delivered", 0)
            fig.superseded = states.get("superseded", 0)  # the partner's newer value won a conflict
            fig.outbox_left = sum(
                n for status, n in states.items() if status not in ("delivered", "superseded")
            )
            fig.conflicts = dict(
                conn.execute(
                    sa.select(conflict_log.c.winner, sa.func.count())
                    .where(conflict_log.c.connection_id == connection_id)
                    .group_by(conflict_log.c.winner)
                ).all()
            )
    return list(figures.values())
