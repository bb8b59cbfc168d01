"""PostgreSQL stopped and started again in the middle of a sync.

The test runs its own throwaway PostgreSQL cluster (initdb + pg_ctl on a free port, in a
temporary directory, as the `postgres` user when run as root), never the shared server that
other tests and people use. Beeline's 300 job postings come in pages of 50; after two pages
are committed the cluster is stopped (`-m immediate`: like a crash) and later started again.

What must hold:
* the run fails promptly with a database error that says so (no hang, no partial success);
* nothing is half-written: the rows written equal the record links, both equal the pages
  committed before the stop, and the checkpoint points at the next page;
* once the database is back, the failed run no longer shows as running after the next start,
  the rerun resumes from the checkpoint and ends with exact counts (300 rows, 300 links, no
  duplicates, cursor committed, no checkpoint left);
* the same through Dagster: the failed materialisation is recorded in Dagster, the rerun
  succeeds with exact counts; and the webhook receiver answers 503 while the database is down,
  stores the event once it is back.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import get_connector, load_connectors
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.definitions import build_definitions, sync_job_name
from integration_pipelines.resources import partner_client
from integration_pipelines.resources.dagster_resources import default_resources
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.sync import runner
from integration_pipelines.sync.service import sync_stream
from tests.conftest import REQUIRE_POSTGRES
from tests.helpers import connect

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RECORDS, PAGE = 300, 50
STOP_AFTER_PAGES = 2


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    """A private PostgreSQL cluster: its data directory, port and the commands to run it."""

    bin: Path
    data: Path
    port: int
    user: str | None  # run as this user (root cannot run PostgreSQL)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data / "db"), "-o", options, "-l", str(self.data / "log"), "-w", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data / "db"), "-m", mode, "-w", "stop")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    binaries = _binaries()
    if binaries is None or not (binaries / "pg_ctl").exists():
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " and INTEGRATION_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    user = None
    data = Path(tempfile.mkdtemp(prefix="it-pg-restart-"))
    if os.geteuid() == 0:
        user = "postgres"
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            shutil.rmtree(data)
            message = "running as root and there is no `postgres` user to run a private cluster as"
            if REQUIRE_POSTGRES:
                pytest.fail(message)
            pytest.skip(message)
        os.chown(data, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(binaries, data, _free_port(), user)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop("fast")
        except (AssertionError, subprocess.SubprocessError):
            pass  # already stopped
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pg(cluster: Cluster) -> Iterator[sa.Engine]:
    engine = create_db_engine(cluster.url)
    migrate(engine)
    yield engine
    engine.dispose()


def counts(engine: sa.Engine, tenant: str, connection_id: str) -> dict:
    with engine.connect() as conn:
        one = lambda sql: conn.execute(sa.text(sql), {"t": tenant, "c": connection_id}).scalar_one()  # noqa: E731
        state = conn.execute(
            sa.text(
                "select cursor, checkpoint, last_error from sync_state "
                "where connection_id = :c and stream = 'job_postings'"
            ),
            {"c": connection_id},
        ).first()
        runs = [
            r.status
            for r in conn.execute(
                sa.text(
                    "select status from sync_runs "
                    "where connection_id = :c and stream = 'job_postings' order by id"
                ),
                {"c": connection_id},
            )
        ]
        return {
            "jobs": one("select count(*) from job where tenant_id = :t"),
            "distinct": one(
                "select count(distinct external_id) from record_links "
                "where connection_id = :c and entity = 'job'"
            ),
            "links": one("select count(*) from record_links where connection_id = :c and entity = 'job'"),
            "linked jobs": one(
                "select count(*) from job j join record_links l on l.internal_id = j.id "
                "where j.tenant_id = :t and l.connection_id = :c and l.entity = 'job'"
            ),
            "state": tuple(state) if state else None,
            "runs": runs,
        }


def assert_consistent(found: dict, rows: int | None = None) -> int:
    """Rows, links and the checkpoint agree (and the rows are `rows`, when given); returns the rows."""
    assert found["jobs"] == found["links"] == found["linked jobs"] == found["distinct"], found
    if rows is not None:
        assert found["jobs"] == rows, found
    if found["state"] and found["state"][1]:  # a checkpoint: the next page starts after the rows
        assert f"'offset': {found['jobs']}" in str(found["state"][1]), found
    return found["jobs"]


@pytest.fixture(autouse=True)
def _page_per_batch(monkeypatch) -> None:
    """Every page is its own write batch, so the outage falls between committed batches."""
    monkeypatch.setattr(runner, "WRITE_BATCH_RECORDS", PAGE)


def test_sync_survives_postgres_restart(cluster: Cluster, pg: sa.Engine, sandbox, tenant) -> None:
    vault = CredentialVault([CredentialVault.generate_key()])
    store = ConnectionStore(pg, vault)
    connection_id, _ = connect(store, sandbox, get_connector("beeline"), tenant)
    stopped: list[float] = []

    def progress(message: str) -> None:
        if f"written up to page {STOP_AFTER_PAGES}:" in message and not stopped:
            cluster.stop()  # these pages are committed; the next ones will not be
            stopped.append(time.monotonic())

    with pytest.raises(sa.exc.OperationalError) as failure:
        sync_stream(pg, vault, connection_id, "job_postings", allow_loopback=True, progress=progress)
    assert stopped and time.monotonic() - stopped[0] < 30  # failed promptly, no hang
    assert "connection" in str(failure.value).lower() or "server" in str(failure.value).lower()

    cluster.start()
    pg.dispose()  # the pool's connections died with the server
    found = counts(pg, tenant, connection_id)
    rows = assert_consistent(found)
    assert STOP_AFTER_PAGES * PAGE <= rows < RECORDS and rows % PAGE == 0, found
    cursor, checkpoint, _ = found["state"]
    assert cursor is None and checkpoint, found  # not finished, resumable

    report = sync_stream(pg, vault, connection_id, "job_postings", allow_loopback=True)
    assert report.status == "succeeded" and report.resumed
    assert report.counts.inserted == RECORDS - rows, (report, rows)
    found = counts(pg, tenant, connection_id)
    assert_consistent(found, RECORDS)
    cursor, checkpoint, last_error = found["state"]
    assert cursor and checkpoint is None and last_error is None, found
    # the run the outage cut short is not left "running"
    assert found["runs"] == ["interrupted", "succeeded"], found


def test_dagster_run_and_receiver_across_postgres_restart(
    cluster: Cluster, pg: sa.Engine, sandbox, tenant, monkeypatch
) -> None:
    key = CredentialVault.generate_key()
    store = ConnectionStore(pg, CredentialVault([key]))
    connection_id, secrets = connect(store, sandbox, get_connector("beeline"), tenant)
    monkeypatch.setenv("INTEGRATION_DATABASE_URL", cluster.url)
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", key)
    monkeypatch.setenv("INTEGRATION_SANDBOX", "1")

    # stop the database just before the third page is fetched (two are committed by then)
    original = partner_client.PartnerClient.request
    pages: list[str] = []

    def request(self, method, url, **kwargs):
        if "job-postings" in str(url) and (kwargs.get("params") or {}).get("offset") is not None:
            pages.append(str(url))
            if len(pages) == STOP_AFTER_PAGES + 1:
                cluster.stop()
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(partner_client.PartnerClient, "request", request)
    defs = build_definitions(list(load_connectors().values()), resources=default_resources())
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("beeline_connections", [connection_id])
    job = defs.resolve_job_def(sync_job_name("beeline"))
    result = job.execute_in_process(partition_key=connection_id, instance=instance, raise_on_error=False)
    assert not result.success and len(pages) == STOP_AFTER_PAGES + 1
    errors = [e.event_specific_data.error for e in result.get_step_failure_events()]
    assert errors and "OperationalError" in str(errors) and "Connection refused" in str(errors), errors
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE

    # the receiver while the database is down: 503 and nothing stored; then stored once
    from fastapi.testclient import TestClient

    from integration_pipelines.webhooks.receiver import create_app
    from integration_pipelines.webhooks.signatures import sign

    spec = get_connector("beeline").spec.webhooks.signature
    body = b'{"eventId": "evt-restart-1", "event": "jobPosting.updated", "jobPostingUid": "x"}'
    app = create_app(database_url=cluster.url, vault=CredentialVault([key]), cache_ttl_seconds=0.0)

    def post(client: TestClient):
        signature = sign(spec, secrets=secrets, body=body, url="", timestamp=time.time())
        return client.post(
            f"/webhooks/{connection_id}",
            content=body,
            headers={"Content-Type": "application/json", **signature.headers},
        )

    with TestClient(app) as client:
        down = post(client)
        assert down.status_code == 503 and down.headers.get("Retry-After"), down.text
        cluster.start()
        pg.dispose()
        answers = [post(client).status_code for _ in range(3)]  # a stale pooled connection may cost one
        assert 202 in answers and answers[answers.index(202) + 1 :] == [200] * (2 - answers.index(202)), (
            answers
        )
    with pg.connect() as conn:
        assert (
            conn.execute(
                sa.text("select count(*) from inbox where connection_id = :c"), {"c": connection_id}
            ).scalar_one()
            == 1
        )

    found = counts(pg, tenant, connection_id)
    assert 0 < assert_consistent(found) <= STOP_AFTER_PAGES * PAGE, found
    monkeypatch.setattr(partner_client.PartnerClient, "request", original)
    rerun = job.execute_in_process(partition_key=connection_id, instance=instance, raise_on_error=False)
    assert rerun.success
    found = counts(pg, tenant, connection_id)
    assert_consistent(found, RECORDS)
    assert found["state"][1] is None and found["runs"] == ["interrupted", "succeeded"], found
