"""`integration-pipelines demo`: every inbound stream of every connector, end to end.

Starts the partner simulators in-process, creates two demo tenants with a connection to
every connector, seeds their ATS with candidates and CV documents, then materialises each
connection's sync assets through Dagster and prints what happened.

`--faults` (or `INTEGRATION_DEMO_FAULTS=1`) runs the same demo against misbehaving partners:
before the first syncs every simulator is armed, for the first tenant, with a 503 and a 429
storm (two 429s with a short `Retry-After`); the OAuth partners also expire its access token
once; and one connection of the second tenant has its credentials revoked (see
`inject_demo_faults`). The transient
faults must be ridden out by the retries; the revoked connection's first run must fail with a
clear error, after which its credentials are restored and it is synced again. The exit code
is 0 only if all of that happened.
"""

import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
import dagster as dg
import sqlalchemy as sa

from integration_pipelines.canonical.tables import ENTITY_TABLES, candidate, candidate_document
from integration_pipelines.cli.common import table
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault

DEMO_TENANTS = {"acme": "Acme Staffing", "globex": "Globex Talent"}
CANDIDATES_PER_TENANT = 40
UNREADABLE_DOCUMENTS = 2  # per tenant: show quarantine at work
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run's events stay in Dagster


def _fresh_dagster_home(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


def purge_tenant(engine: sa.Engine, tenant_id: str) -> None:
    """Delete a tenant and everything of it (used to start the demo clean on a shared database)."""
    from integration_pipelines.canonical import tables as t

    with engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.select(t.connections.c.id).where(t.connections.c.tenant_id == tenant_id)
            ).scalars()
        )
        for table in (t.record_links, t.sync_state, t.sync_runs, t.quarantine, t.credentials):
            conn.execute(table.delete().where(table.c.connection_id.in_(ids)))
        for entity in ("placement", "submission", "parsed_resume", "candidate_document", "job", "candidate"):
            table = ENTITY_TABLES[entity]
            conn.execute(table.delete().where(table.c.tenant_id == tenant_id))
        conn.execute(t.connections.delete().where(t.connections.c.tenant_id == tenant_id))
        conn.execute(t.tenants.delete().where(t.tenants.c.id == tenant_id))


def seed_ats(engine: sa.Engine, tenant_id: str, count: int, unreadable: int) -> int:
    """Candidates known only by name, each with a CV document awaiting parsing."""
    from integration_pipelines.sandbox.cv_documents import corrupt_document, render_cv
    from integration_pipelines.sandbox.data import generate_candidates

    now = datetime.now(UTC)
    people = generate_candidates(tenant_id, count)
    candidates, documents = [], []
    for i, person in enumerate(people):
        cid = str(uuid.uuid4())
        candidates.append(
            {
                "id": cid,
                "tenant_id": tenant_id,
                "first_name": person["first_name"],
                "last_name": person["last_name"],
                "created_at": now,
                "updated_at": now,
            }
        )
        fmt = "html" if i % 3 == 0 else "txt"
        content = corrupt_document() if i < unreadable else render_cv(person, fmt)
        documents.append(
            {
                "id": str(uuid.uuid4()),
                "tenant_id": tenant_id,
                "candidate_id": cid,
                "file_name": f"{person['first_name']}_{person['last_name']}.{fmt}".lower(),
                "content_type": "text/html" if fmt == "html" else "text/plain",
                "content": content,
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(candidate.insert(), candidates)
        conn.execute(candidate_document.insert(), documents)
    return len(documents)


def sandbox_config(connector: LoadedConnector, base_url: str) -> dict[str, str]:
    """Config for a sandbox connection: the simulator's URL, placeholders for required fields."""
    config = {
        name: "sandbox" for name, f in connector.spec.config.items() if f.required and f.default is None
    }
    return {**config, "base_url": base_url}


FAULT_RETRY_AFTER_SECONDS = 0.1  # short, so the 429 storm slows the demo down by little


def inject_demo_faults(sandbox, connection_ids: list[tuple[LoadedConnector, str]]) -> dict[str, str]:
    """Arm `--faults`: transient faults for the first tenant's connections (a 503, then two
    429s, then an expired token for OAuth partners), revoked credentials for one connection of
    the last tenant (its first API-key connector, else its last connection).

    Returns {connection id: what was done} for the connection whose credentials were revoked.
    """
    first_tenant = connection_ids[0][1].split("/")[0]
    for connector, connection_id in connection_ids:
        tenant = connection_id.split("/")[0]
        if tenant != first_tenant:
            continue
        simulator = sandbox.simulators[connector.name]
        simulator.faults.inject("server_error", count=1, tenant=tenant, status=503)
        simulator.faults.inject("rate_limit", count=2, tenant=tenant, retry_after=FAULT_RETRY_AFTER_SECONDS)
        if getattr(simulator, "bearer_tokens", False):
            simulator.faults.inject("expire_token", count=1, tenant=tenant)
    last_tenant = connection_ids[-1][1].split("/")[0]
    candidates = [(c, cid) for c, cid in connection_ids if cid.startswith(f"{last_tenant}/")]
    connector, connection_id = next(
        ((c, cid) for c, cid in candidates if c.spec.auth.kind == "api_key"), candidates[-1]
    )
    sandbox.simulators[connector.name].revoke(last_tenant)
    return {connection_id: "revoked credentials"}


def _metadata_value(value: object) -> object:
    return getattr(value, "value", value)


def run_demo(workdir: Path, database_url: str | None = None, faults: bool = False) -> int:
    """Run the demo; returns the process exit code (0 when every stream succeeded).

    `faults`: run it against misbehaving partners (see the module docstring)."""
    from integration_pipelines.definitions import build_definitions, sync_job_name
    from integration_pipelines.sandbox.server import Sandbox

    started = time.monotonic()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if database_url is None:
        db_file = workdir / "ats.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{db_file}"
    os.environ["DAGSTER_HOME"] = str(_fresh_dagster_home(workdir / "dagster_home"))
    os.environ["INTEGRATION_DATABASE_URL"] = database_url
    os.environ["INTEGRATION_SANDBOX"] = "1"
    key_file = workdir / "vault.key"  # demo only: production keys come from INTEGRATION_VAULT_KEYS
    vault = CredentialVault.from_env(key_file=key_file, create_key_file=True)
    if not os.environ.get("INTEGRATION_VAULT_KEYS"):
        os.environ["INTEGRATION_VAULT_KEY_FILE"] = str(key_file)

    engine = create_db_engine(database_url)
    migrate(engine)
    store = ConnectionStore(engine, vault)
    connectors = list(load_connectors().values())
    click.echo(f"integration-pipelines demo: {len(connectors)} connectors, {len(DEMO_TENANTS)} tenants")
    click.echo(f"  database: {engine.url.render_as_string(hide_password=True)}")

    with Sandbox(partners=[c.name for c in connectors]).start() as sandbox:
        for name, url in sorted((n, sandbox.base_url(n)) for n in sandbox.simulators):
            click.echo(f"  sandbox {name:<15} {url}")
        connection_ids: list[tuple[LoadedConnector, str]] = []
        for tenant, title in DEMO_TENANTS.items():
            purge_tenant(engine, tenant)
            store.ensure_tenant(tenant, title)
            seed_ats(engine, tenant, CANDIDATES_PER_TENANT, UNREADABLE_DOCUMENTS)
            for connector in connectors:
                secrets = sandbox.simulators[connector.name].add_tenant(tenant)
                connection = store.add(
                    tenant, connector.spec, sandbox_config(connector, sandbox.base_url(connector.name))
                )
                for name, value in secrets.items():
                    store.set_credential(connection.id, name, value)
                connection_ids.append((connector, connection.id))

        instance = dg.DagsterInstance.get()
        defs = build_definitions(connectors)
        for connector in connectors:
            keys = [cid for c, cid in connection_ids if c.name == connector.name]
            instance.add_dynamic_partitions(f"{connector.name}_connections", keys)

        injected: dict[str, str] = {}
        if faults:
            injected = inject_demo_faults(sandbox, connection_ids)
            click.echo(
                "  faults injected: a 503 and two 429s per connection of the first tenant, an expired "
                "token per OAuth connection of it, "
                + "; ".join(f"{what} for {cid}" for cid, what in injected.items())
            )

        rows, failures = [], 0
        for connector, connection_id in connection_ids:
            job = defs.resolve_job_def(sync_job_name(connector.name))
            if connection_id in injected:
                click.echo(f"  syncing {connection_id} with {injected[connection_id]} ...", nl=False)
                result = job.execute_in_process(
                    partition_key=connection_id, instance=instance, raise_on_error=False, run_config=QUIET
                )
                if result.success:
                    failures += 1
                    click.echo(f" NOT refused (run {result.run_id[:8]}): the injected fault was not noticed")
                else:
                    errors = [e.event_specific_data.error.message for e in result.get_step_failure_events()]
                    first = errors[0].strip().splitlines()[0] if errors else "no error recorded"
                    first = first.removeprefix("dagster._core.definitions.events.Failure: ")
                    click.echo(f" failed as expected (run {result.run_id[:8]}): {first[:160]}")
                sandbox.simulators[connector.name].unrevoke(connection_id.split("/")[0])
                click.echo(f"  credentials of {connection_id} restored; syncing it again")
            t0 = time.monotonic()
            click.echo(f"  syncing {connection_id} ...", nl=False)
            result = job.execute_in_process(
                partition_key=connection_id, instance=instance, raise_on_error=False, run_config=QUIET
            )
            elapsed = time.monotonic() - t0
            click.echo(
                f" {'done' if result.success else 'FAILED'} in {elapsed:.1f}s (run {result.run_id[:8]})"
            )
            materialized = {}
            for event in result.get_asset_materialization_events():
                mat = event.materialization
                materialized[mat.asset_key.path[-1]] = {
                    k: _metadata_value(v) for k, v in mat.metadata.items()
                }
            for stream in connector.spec.inbound_streams():
                meta = materialized.get(stream)
                if meta is None:
                    failures += 1
                    error = next(
                        (
                            e.event_specific_data.error.message.strip().splitlines()[0]
                            for e in result.get_step_failure_events()
                            if stream in e.step_key
                        ),
                        "did not run",
                    )
                    rows.append(
                        [
                            connection_id.split("/")[0],
                            connection_id,
                            stream,
                            "-",
                            "-",
                            f"{elapsed:.2f}",
                            f"FAILED: {error[:80]}",
                        ]
                    )
                else:
                    rows.append(
                        [
                            connection_id.split("/")[0],
                            connection_id,
                            stream,
                            meta["written"],
                            meta["rejected"],
                            f"{meta['duration_seconds']:.2f}",
                            "succeeded",
                        ]
                    )

        click.echo("")
        click.echo("Two-way VMS: webhooks in, submissions and placement changes out, conflicts resolved")
        from integration_pipelines.cli.demo_two_way import run_two_way

        two_way = run_two_way(
            database_url=database_url,
            vault=vault,
            sandbox=sandbox,
            instance=instance,
            defs=defs,
            connections=connection_ids,
            echo=click.echo,
        )

    click.echo("")
    click.echo(table(["tenant", "connection", "stream", "written", "rejected", "seconds", "status"], rows))
    click.echo("")
    click.echo(
        table(
            [
                "connection",
                "events sent",
                "stored",
                "applied",
                "submitted",
                "delivered",
                "superseded",
                "conflicts won ats/partner",
                "outbox left",
            ],
            [
                [
                    f.connection_id,
                    f.events_sent,
                    f.events_received,
                    f.events_applied,
                    f.submissions,
                    f.delivered,
                    f.superseded,
                    f"{f.conflicts.get('ats', 0)}/{f.conflicts.get('partner', 0)}",
                    f.outbox_left,
                ]
                for f in two_way
            ],
        )
    )
    failures += sum(1 for f in two_way if f.outbox_left or f.events_applied != f.events_received)

    from datetime import UTC, datetime

    from integration_pipelines.cli.health import health_table
    from integration_pipelines.health.derive import derive_health
    from integration_pipelines.health.tokens import issue_token

    click.echo("")
    click.echo("Health (derived from runs, inbox, outbox and incidents):")
    now = datetime.now(UTC)
    click.echo(health_table(derive_health(engine, now=now), now))
    click.echo("")
    click.echo("Status pages (serve them with the command below; each link carries that tenant's token):")
    click.echo(f"  INTEGRATION_DATABASE_URL={database_url} .venv/bin/integration-pipelines serve --port 8800")
    for tenant in DEMO_TENANTS:
        click.echo(f"  http://127.0.0.1:8800/status/{tenant}?token={issue_token(engine, tenant)}")
    total_written = sum(r[3] for r in rows if isinstance(r[3], int))
    total_rejected = sum(r[4] for r in rows if isinstance(r[4], int))
    click.echo("")
    click.echo(
        f"{len(rows)} streams, {len(rows) - failures} succeeded, {failures} failed; "
        f"{total_written} records written, {total_rejected} rejected (see the quarantine table); "
        f"{time.monotonic() - started:.1f}s in all"
    )
    click.echo(f"Dagster home: {os.environ['DAGSTER_HOME']} (open with: DAGSTER_HOME=... dg dev)")
    return 1 if failures else 0
