"""Partner clients for delivery: one per connection, reused across batches."""

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from integration_pipelines.connections import Connection, ConnectionConfigError, ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.resources.clients import build_partner_client
from integration_pipelines.resources.partner_client import PartnerClient
from integration_pipelines.resources.vault import CredentialVault


@dataclass
class Target:
    """What sending to one connection needs: the connection, its connector, secrets and client."""

    connection: Connection
    connector: LoadedConnector
    credentials: dict[str, str]
    client: PartnerClient


class PartnerClients:
    """One partner client per connection, kept across delivery batches so that a delivery process
    reuses its OAuth token, keeps one rate-limit budget and one circuit breaker per connection.

    Clients make a single attempt per call: retrying is the outbox's job (with its durable
    schedule), so a partner that is down never holds a delivery process in a retry loop.
    """

    def __init__(
        self,
        engine: sa.Engine,
        vault: CredentialVault | None,
        *,
        allow_loopback: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        connectors: Mapping[str, LoadedConnector] | None = None,
    ) -> None:
        self.store = ConnectionStore(engine, vault)
        self.allow_loopback = allow_loopback
        self.sleep = sleep
        self._connectors = connectors
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()

    def connector(self, name: str) -> LoadedConnector:
        known = self._connectors if self._connectors is not None else load_connectors()
        if name not in known:
            raise ConnectionConfigError(f"unknown connector {name!r}; known: {', '.join(sorted(known))}")
        return known[name]

    def get(self, connection_id: str) -> Target:
        with self._lock:
            target = self._targets.get(connection_id)
            if target is None:
                target = self._targets[connection_id] = self._build(connection_id)
            return target

    def _build(self, connection_id: str) -> Target:
        connection = self.store.get(connection_id)
        connector = self.connector(connection.connector)
        credentials = self.store.credentials(connection_id)
        spec = connector.spec
        single_try = dataclasses.replace(
            connector,
            spec=spec.model_copy(update={"retry": spec.retry.model_copy(update={"max_attempts": 1})}),
        )

        def write_back(token: dict) -> None:
            refresh = token.get("refresh_token")
            if refresh and hasattr(spec.auth, "refresh_token"):
                self.store.set_credential(connection_id, spec.auth.refresh_token, refresh)

        client = build_partner_client(
            single_try,
            connection,
            credentials,
            allow_loopback=self.allow_loopback,
            on_token=write_back,
            sleep=self.sleep,
        )
        return Target(connection, connector, credentials, client)

    def discard(self, connection_id: str) -> None:
        """Forget a connection's client (its credentials are read again next time)."""
        with self._lock:
            target = self._targets.pop(connection_id, None)
        if target is not None:
            target.client.close()

    def close(self) -> None:
        with self._lock:
            targets, self._targets = list(self._targets.values()), {}
        for target in targets:
            target.client.close()

    def __enter__(self) -> "PartnerClients":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
