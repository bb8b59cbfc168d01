"""The same code on PostgreSQL: migrations, syncs through the sandbox, idempotent reruns."""

import pytest

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.db.engine import migrate
from integration_pipelines.sync.service import sync_stream
from tests.helpers import connect, scalar, seed_documents

pytestmark = pytest.mark.postgres


def test_syncs_on_postgresql(pg_engine, vault, sandbox, tenant) -> None:
    migrate(pg_engine)  # a second run is a no-op
    store = ConnectionStore(pg_engine, vault)
    connectors = load_connectors()
    store.ensure_tenant(tenant)
    seed_documents(pg_engine, tenant, 5, unreadable=1)
    for name in ("beeline", "sap_fieldglass", "textkernel", "daxtra"):
        connection_id, _ = connect(store, sandbox, connectors[name], tenant)
        for stream in connectors[name].spec.inbound_streams():
            first = sync_stream(pg_engine, vault, connection_id, stream, allow_loopback=True)
            again = sync_stream(pg_engine, vault, connection_id, stream, allow_loopback=True)
            assert first.status == again.status == "succeeded"
            assert again.counts.inserted == 0
    assert scalar(pg_engine, "select count(*) from job where tenant_id = :t", t=tenant) == 300 + 250
    assert scalar(pg_engine, "select count(*) from parsed_resume where tenant_id = :t", t=tenant) == 8
    assert (
        scalar(pg_engine, "select count(*) from quarantine where connection_id like :t", t=f"{tenant}/%") == 2
    )
    filled = "select count(*) from candidate where tenant_id = :t and email is not null"
    assert scalar(pg_engine, filled, t=tenant) == 4
