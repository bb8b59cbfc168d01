"""Dagster resources: the integration database, the credential vault and partner API clients.

Secrets reach these only through environment variables (`dg.EnvVar`), so they never sit
in run config or in Dagster's event log.
"""

import os
import threading
from collections.abc import Callable

import dagster as dg
import sqlalchemy as sa

from integration_pipelines.connections import Connection
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.db.engine import create_db_engine, default_database_url, migrate
from integration_pipelines.resources.clients import build_partner_client
from integration_pipelines.resources.partner_client import PartnerClient
from integration_pipelines.resources.vault import CredentialVault

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def shared_engine(url: str) -> sa.Engine:
    """One migrated engine per URL per process (migrations run once, on first use)."""
    with _engines_lock:
        if url not in _engines:
            engine = create_db_engine(url)
            migrate(engine)
            _engines[url] = engine
        return _engines[url]


class IntegrationDatabase(dg.ConfigurableResource):
    """The ATS and integration database: SQLite by default, PostgreSQL by URL."""

    url: str | None = None

    def engine(self) -> sa.Engine:
        return shared_engine(self.url or default_database_url())


class CredentialVaultResource(dg.ConfigurableResource):
    """Decrypts connections' secrets; keys come from INTEGRATION_VAULT_KEYS (or a local key file)."""

    encryption_keys: str | None = None  # comma-separated Fernet keys, newest first
    key_file: str | None = None

    def vault(self) -> CredentialVault:
        if self.encryption_keys:
            return CredentialVault([k.strip() for k in self.encryption_keys.split(",") if k.strip()])
        from pathlib import Path

        key_file = self.key_file or os.environ.get("INTEGRATION_VAULT_KEY_FILE")
        return CredentialVault.from_env(key_file=Path(key_file) if key_file else None)


class PartnerApi(dg.ConfigurableResource):
    """Builds one rate-limited, retrying HTTP client per connection.

    `sandbox` lets connections point at the local simulators (loopback hosts); outside the
    sandbox a connection may only call the hosts its connector allows.
    """

    sandbox: bool = False

    def client_for(
        self,
        connector: LoadedConnector,
        connection: Connection,
        credentials: dict[str, str],
        on_token: Callable[[dict], None] | None = None,
    ) -> PartnerClient:
        return build_partner_client(
            connector, connection, credentials, allow_loopback=self.sandbox, on_token=on_token
        )


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources wired to the environment: EnvVar for anything secret, defaults otherwise."""
    database = (
        IntegrationDatabase(url=dg.EnvVar("INTEGRATION_DATABASE_URL"))
        if os.environ.get("INTEGRATION_DATABASE_URL")
        else IntegrationDatabase()
    )
    vault = (
        CredentialVaultResource(encryption_keys=dg.EnvVar("INTEGRATION_VAULT_KEYS"))
        if os.environ.get("INTEGRATION_VAULT_KEYS")
        else CredentialVaultResource()
    )
    return {
        "database": database,
        "vault": vault,
        "partner_api": PartnerApi(sandbox=os.environ.get("INTEGRATION_SANDBOX") == "1"),
    }
