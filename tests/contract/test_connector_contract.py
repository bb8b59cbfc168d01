"""The contract every connector keeps, checked against its simulator.

Connectors are discovered from the connectors folder: a new connector is tested by this
file without writing a test. Each inbound stream must survive a full sync, an incremental
sync that fetches only changes, a 429 burst, a token expiring mid-pagination, a malformed
record (quarantined, the rest written) and a SIGKILL mid-stream followed by a rerun.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from integration_pipelines.assets.sync_assets import lookup_deps
from integration_pipelines.canonical.tables import ENTITY_TABLES, candidate_document, quarantine, record_links
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.sync.runner import SyncReport
from integration_pipelines.sync.service import sync_stream
from tests.helpers import connect, seed_documents

DOCUMENTS = 12  # CVs seeded for for-each (parser) streams

STREAMS = [
    pytest.param((connector, name), id=f"{connector.name}.{name}")
    for connector in load_connectors().values()
    for name in connector.spec.inbound_streams()
]


@dataclass
class Contract:
    """One connector stream wired to its simulator for one fresh tenant."""

    connector: LoadedConnector
    stream: str
    store: ConnectionStore
    sandbox: object
    tenant: str
    vault_key: str
    connection_id: str = ""

    def __post_init__(self) -> None:
        self.connection_id, self.secrets = connect(self.store, self.sandbox, self.connector, self.tenant)
        if self.for_each:
            seed_documents(self.store.engine, self.tenant, DOCUMENTS)
        for key in lookup_deps(self.connector, self.spec):  # e.g. jobs before the submissions naming them
            sync_stream(
                self.store.engine,
                self.store.vault,
                self.connection_id,
                key.path[-1],
                connector=self.connector,
                allow_loopback=True,
            )

    @property
    def spec(self):
        return self.connector.spec.streams[self.stream]

    @property
    def for_each(self) -> bool:
        return self.spec.for_each is not None

    @property
    def sim(self):
        return self.sandbox.simulators[self.connector.name]

    @property
    def uses_tokens(self) -> bool:
        return self.connector.spec.auth.kind.startswith("oauth2")

    @property
    def paginated(self) -> bool:
        """More than one page for this tenant's data."""
        pagination = self.spec.pagination or self.connector.spec.pagination
        return pagination.kind != "none" and self.expected() >= getattr(pagination, "page_size", 1)

    def expected(self) -> int:
        """How many records the partner has for this tenant (for parsers: documents in the ATS)."""
        if self.for_each:
            with self.store.engine.connect() as conn:
                return conn.execute(
                    sa.select(sa.func.count())
                    .select_from(candidate_document)
                    .where(candidate_document.c.tenant_id == self.tenant)
                ).scalar_one()
        return len(self.sim.collection(self.tenant, self.spec.request.path))

    def sync(self, progress=None) -> SyncReport:
        return sync_stream(
            self.store.engine,
            self.store.vault,
            self.connection_id,
            self.stream,
            connector=self.connector,
            allow_loopback=True,
            progress=progress,
        )

    def rows(self) -> int:
        table = ENTITY_TABLES[self.spec.entity]
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == self.tenant)
            ).scalar_one()

    def links(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(record_links)
                .where(
                    record_links.c.connection_id == self.connection_id,
                    record_links.c.entity == self.spec.entity,
                )
            ).scalar_one()

    def quarantined(self) -> list[str]:
        with self.store.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(quarantine.c.reason).where(quarantine.c.connection_id == self.connection_id)
                ).scalars()
            )

    def change(self, n: int) -> None:
        """Change n records at their source: the partner's, or the ATS's documents."""
        if not self.for_each:
            assert len(self.sim.change(self.tenant, self.spec.request.path, n)) == n
            return
        later = datetime.now(UTC) + timedelta(seconds=1)
        with self.store.engine.begin() as conn:
            ids = list(
                conn.execute(
                    sa.select(candidate_document.c.id)
                    .where(candidate_document.c.tenant_id == self.tenant)
                    .order_by(candidate_document.c.id)
                    .limit(n)
                ).scalars()
            )
            conn.execute(
                candidate_document.update().where(candidate_document.c.id.in_(ids)).values(updated_at=later)
            )
        time.sleep(1.05)  # record links written from now on are later than the new versions

    def data_requests(self) -> int:
        return self.sim.stats.request_count(template_contains=self.spec.request.path.rsplit("/", 1)[-1])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request) -> sa.Engine:
    """The contract holds on both databases the framework supports."""
    return request.getfixturevalue("engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture(params=STREAMS)
def contract(request, database, vault, sandbox, tenant, vault_key) -> Contract:
    store = ConnectionStore(database, vault)
    connector, stream = request.param
    yield Contract(connector, stream, store, sandbox, tenant, vault_key)
    sandbox.simulators[connector.name].faults.clear()


def test_full_sync(contract: Contract) -> None:
    report = contract.sync()
    assert report.status == "succeeded"
    assert report.counts.inserted == contract.expected() == contract.rows() == contract.links()
    assert contract.quarantined() == []
    again = contract.sync()
    assert again.counts.inserted == 0 and contract.rows() == contract.expected()


def test_incremental_sync_fetches_only_changes(contract: Contract) -> None:
    contract.sync()
    contract.change(3)
    before = contract.data_requests()
    report = contract.sync()
    assert report.counts.updated + report.counts.unchanged <= 4  # 3 changed (+1 inclusive boundary)
    assert report.counts.inserted == 0
    assert 3 <= report.records <= 4
    if contract.for_each:
        assert contract.data_requests() - before == 3  # only the changed documents were sent
    assert contract.rows() == contract.expected()


def test_429_burst_is_ridden_out(contract: Contract) -> None:
    contract.sim.faults.inject("rate_limit", count=3, tenant=contract.tenant, retry_after=0.2)
    report = contract.sync()
    assert report.status == "succeeded"
    assert contract.rows() == contract.expected()
    assert contract.sim.stats.faults_applied["rate_limit"] >= 3


def test_token_expiring_mid_pagination(contract: Contract) -> None:
    if not contract.uses_tokens:
        pytest.skip(f"{contract.connector.name} authenticates without tokens")
    expired = []

    def expire_after_first_page(message: str) -> None:
        if not expired:
            expired.append(contract.sim.expire_tokens(contract.tenant))

    if contract.paginated:
        report = contract.sync(progress=expire_after_first_page)
    else:  # one page only: the token expires just before that page is fetched
        contract.sim.faults.inject("expire_token", count=1, tenant=contract.tenant)
        report = contract.sync()
        expired.append(1)
    assert expired and report.status == "succeeded"
    assert contract.rows() == contract.expected()


def test_malformed_record_is_quarantined_and_the_rest_written(contract: Contract) -> None:
    contract.sim.faults.inject("malformed_record", count=1, tenant=contract.tenant)
    report = contract.sync()
    reasons = contract.quarantined()
    assert report.status == "succeeded" and report.rejected == len(reasons) >= 1
    assert contract.rows() + len(reasons) == contract.expected()
    assert all(reason for reason in reasons)


@pytest.mark.slow
def test_kill_mid_stream_then_resume_loses_and_doubles_nothing(contract: Contract, tmp_path) -> None:
    url = contract.store.engine.url.render_as_string(hide_password=False)
    if contract.for_each:  # more documents than one batch, so a batch is committed before the kill
        seed_documents(contract.store.engine, contract.tenant, contract.spec.for_each.batch_size)
    contract.sim.faults.inject("slow", count=1000, tenant=contract.tenant, seconds=0.1)
    in_flight = 2 if contract.uses_tokens else 1  # requests before the one page is being served
    baseline = contract.sim.stats.request_count()
    env = {**os.environ, "INTEGRATION_VAULT_KEYS": contract.vault_key}
    command = [
        sys.executable,
        "-m",
        "integration_pipelines.cli.main",
        "sync",
        contract.connection_id,
        "--stream",
        contract.stream,
        "--sandbox",
        "--database-url",
        url,
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    # kill once something is committed (or, for one-page streams, while the page is in flight)
    while time.monotonic() < deadline and process.poll() is None:
        one_page = not contract.paginated and not contract.for_each
        if contract.links() > 0 or (one_page and contract.sim.stats.request_count() - baseline >= in_flight):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == -signal.SIGKILL, f"the sync finished before it could be killed:\n{output}"
    assert contract.links() < contract.expected()
    contract.sim.faults.clear()
    report = contract.sync()
    assert report.status == "succeeded"
    assert contract.rows() == contract.links() == contract.expected()
