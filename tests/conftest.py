"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when asked), a vault, the sandbox."""

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault

POSTGRES_URL = os.environ.get("INTEGRATION_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("INTEGRATION_REQUIRE_POSTGRES") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if POSTGRES_URL:
        return
    for item in items:
        if "postgres" in item.keywords:
            if REQUIRE_POSTGRES:
                item.add_marker(
                    pytest.mark.xfail(
                        reason="PostgreSQL required but INTEGRATION_TEST_POSTGRES_URL is not set",
                        strict=True,
                        run=False,
                    )
                )
            else:
                item.add_marker(
                    pytest.mark.skip(
                        reason="no PostgreSQL: set INTEGRATION_TEST_POSTGRES_URL "
                        "(scripts/ensure_postgres.sh prints one)"
                    )
                )


@pytest.fixture(autouse=True)
def _isolated_dagster_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))


@pytest.fixture
def engine(tmp_path) -> Iterator[sa.Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'ats.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[sa.Engine]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.fail("PostgreSQL tests need INTEGRATION_TEST_POSTGRES_URL")
    admin = create_db_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"it_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_db_engine(str(sa.make_url(POSTGRES_URL).set(database=name).render_as_string(False)))
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def vault_key() -> str:
    return CredentialVault.generate_key()


@pytest.fixture
def vault(vault_key: str) -> CredentialVault:
    return CredentialVault([vault_key])


@pytest.fixture
def store(engine: sa.Engine, vault: CredentialVault) -> ConnectionStore:
    return ConnectionStore(engine, vault)


@pytest.fixture(scope="session")
def sandbox():
    from integration_pipelines.sandbox.server import Sandbox

    with Sandbox().start() as running:
        yield running


@pytest.fixture
def tenant() -> str:
    """A fresh tenant id: each test gets its own data and its own partner rate budget."""
    return f"t{uuid.uuid4().hex[:10]}"
