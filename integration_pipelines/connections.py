"""Tenants and their connections: one tenant's use of one connector, with its secrets.

Secrets go through the credential vault on the way in and out; the database only ever
holds ciphertext.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from integration_pipelines.canonical.tables import connections, credentials, tenants
from integration_pipelines.connectors.spec import Connector
from integration_pipelines.resources.vault import CredentialVault

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConnectionConfigError(Exception):
    """A connection request that cannot be carried out (unknown id, bad config...)."""


@dataclass(frozen=True)
class Connection:
    """One tenant's use of one connector; its id is the connector's Dagster partition key."""

    id: str
    tenant_id: str
    connector: str
    config: dict[str, Any]
    status: str = "active"


def _now() -> datetime:
    return datetime.now(UTC)


def resolve_config(connector: Connector, given: dict[str, Any]) -> dict[str, Any]:
    """Check a connection's config against the connector's declared fields; apply defaults."""
    allowed = set(connector.config) | {"base_url"}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConnectionConfigError(
            f"{connector.name}: unknown config field(s) {', '.join(unknown)}; "
            f"declared: {', '.join(sorted(allowed))}"
        )
    resolved: dict[str, Any] = {}
    for name, spec in connector.config.items():
        value = given.get(name, spec.default)
        if value is None and spec.required:
            raise ConnectionConfigError(
                f"{connector.name}: config field {name!r} is required ({spec.description})"
            )
        if value is not None and spec.choices and str(value) not in spec.choices:
            raise ConnectionConfigError(
                f"{connector.name}: config {name}={value!r} is not one of {', '.join(spec.choices)}"
            )
        if value is not None:
            resolved[name] = value
    if "base_url" in given:
        resolved["base_url"] = given["base_url"]
    return resolved


class ConnectionStore:
    """CRUD for tenants, connections and their encrypted credentials."""

    def __init__(self, engine: sa.Engine, vault: CredentialVault | None = None):
        self.engine = engine
        self.vault = vault

    # ---------------------------------------------------------------- tenants
    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        if not TENANT_ID.match(tenant_id):
            raise ConnectionConfigError(
                f"tenant id {tenant_id!r} must be lowercase letters, digits, '-' or '_' (max 63)"
            )
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).first()
            if not exists:
                conn.execute(tenants.insert().values(id=tenant_id, name=name or tenant_id, created_at=_now()))

    def tenant_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(tenants.c.id).order_by(tenants.c.id)).scalars())

    # ---------------------------------------------------------------- connections
    def add(
        self,
        tenant_id: str,
        connector: Connector,
        config: dict[str, Any] | None = None,
        suffix: str = "",
        *,
        allow_loopback: bool = True,
    ) -> Connection:
        """Add a connection; its base URL must pass the SSRF guard (`resources.clients.check_url`).

        Loopback base URLs (the sandbox's simulators) are accepted here by default and refused
        when a client is built outside sandbox mode; `allow_loopback=False` (the CLI without
        `--sandbox`) refuses them at once. Every other host outside the connector's
        `allowed_hosts`, plain http and internal addresses are always refused.
        """
        from integration_pipelines.resources.clients import check_base_url
        from integration_pipelines.resources.errors import RequestRejected

        connection_id = f"{tenant_id}/{connector.name}" + (f"-{suffix}" if suffix else "")
        resolved = resolve_config(connector, config or {})
        try:
            check_base_url(connector, resolved, connection_id=connection_id, allow_loopback=allow_loopback)
        except RequestRejected as exc:
            raise ConnectionConfigError(str(exc)) from None
        self.ensure_tenant(tenant_id)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(connections.c.id).where(connections.c.id == connection_id)).first():
                raise ConnectionConfigError(f"connection {connection_id} already exists")
            conn.execute(
                connections.insert().values(
                    id=connection_id,
                    tenant_id=tenant_id,
                    connector=connector.name,
                    config=resolved,
                    status="active",
                    created_at=_now(),
                )
            )
        return Connection(connection_id, tenant_id, connector.name, resolved)

    def get(self, connection_id: str) -> Connection:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(connections).where(connections.c.id == connection_id)).first()
        if row is None:
            raise ConnectionConfigError(
                f"no connection {connection_id!r}; list them with `integration-pipelines connections list`"
            )
        return Connection(row.id, row.tenant_id, row.connector, dict(row.config), row.status)

    def all(self, tenant_id: str | None = None, connector: str | None = None) -> list[Connection]:
        query = sa.select(connections).order_by(connections.c.id)
        if tenant_id:
            query = query.where(connections.c.tenant_id == tenant_id)
        if connector:
            query = query.where(connections.c.connector == connector)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Connection(r.id, r.tenant_id, r.connector, dict(r.config), r.status) for r in rows]

    def remove(self, connection_id: str) -> None:
        self.get(connection_id)
        with self.engine.begin() as conn:
            conn.execute(credentials.delete().where(credentials.c.connection_id == connection_id))
            conn.execute(connections.delete().where(connections.c.id == connection_id))

    # ---------------------------------------------------------------- credentials
    def _require_vault(self) -> CredentialVault:
        if self.vault is None:
            raise ConnectionConfigError("no credential vault configured (set INTEGRATION_VAULT_KEYS)")
        return self.vault

    def set_credential(self, connection_id: str, name: str, secret: str) -> None:
        vault = self._require_vault()
        self.get(connection_id)
        if not secret:
            raise ConnectionConfigError(f"credential {name!r} for {connection_id} is empty")
        values = {
            "ciphertext": vault.encrypt(secret),
            "key_fingerprint": vault.fingerprint,
            "updated_at": _now(),
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                credentials.update()
                .where(credentials.c.connection_id == connection_id, credentials.c.name == name)
                .values(**values)
            ).rowcount
            if not updated:
                conn.execute(credentials.insert().values(connection_id=connection_id, name=name, **values))

    def credential_names(self, connection_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(credentials.c.name).where(credentials.c.connection_id == connection_id)
                ).scalars()
            )

    def credentials(self, connection_id: str) -> dict[str, str]:
        """The connection's decrypted secrets. Keep them in memory only."""
        vault = self._require_vault()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(credentials.c.name, credentials.c.ciphertext).where(
                    credentials.c.connection_id == connection_id
                )
            ).all()
        return {r.name: vault.decrypt(r.ciphertext) for r in rows}

    def rotate_credentials(self) -> int:
        """Re-encrypt every stored secret under the vault's primary key; returns how many."""
        vault = self._require_vault()
        count = 0
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(credentials)).all()
            for r in rows:
                if r.key_fingerprint == vault.fingerprint:
                    continue
                conn.execute(
                    credentials.update()
                    .where(credentials.c.connection_id == r.connection_id, credentials.c.name == r.name)
                    .values(
                        ciphertext=vault.rotate(r.ciphertext),
                        key_fingerprint=vault.fingerprint,
                        updated_at=_now(),
                    )
                )
                count += 1
        return count
