"""Test helpers shared by the contract and end-to-end suites."""

import sqlalchemy as sa

from integration_pipelines.cli.demo import sandbox_config, seed_ats
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector


def connect(store: ConnectionStore, sandbox, connector: LoadedConnector, tenant: str) -> tuple[str, dict]:
    """A connection of `tenant` to `connector`'s simulator, with the simulator's credentials stored."""
    secrets = sandbox.simulators[connector.name].add_tenant(tenant)
    store.ensure_tenant(tenant)
    connection = store.add(
        tenant, connector.spec, sandbox_config(connector, sandbox.base_url(connector.name))
    )
    for name, value in secrets.items():
        store.set_credential(connection.id, name, value)
    return connection.id, secrets


def seed_documents(engine: sa.Engine, tenant: str, count: int, unreadable: int = 0) -> int:
    return seed_ats(engine, tenant, count, unreadable)


def scalar(engine: sa.Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()
