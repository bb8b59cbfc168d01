"""Running a connection's work now: the entry point for Dagster assets, tests and the CLI."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector, get_connector
from integration_pipelines.resources.clients import build_partner_client
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.sync.locks import DEFAULT_TIMEOUT, stream_lock
from integration_pipelines.sync.runner import StreamSync, SyncReport


@contextmanager
def open_sync(
    engine: sa.Engine,
    vault: CredentialVault,
    connection_id: str,
    *,
    connector: LoadedConnector | None = None,
    allow_loopback: bool = False,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> Iterator[StreamSync]:
    """A StreamSync for the connection, with its partner client open for the duration."""
    store = ConnectionStore(engine, vault)
    connection = store.get(connection_id)
    connector = connector or get_connector(connection.connector)
    credentials = store.credentials(connection_id)
    missing = [n for n in connector.spec.credential_names if n not in credentials]
    if missing:
        raise ValueError(
            f"connection {connection_id} is missing credential(s) {', '.join(missing)}; set them with "
            f"`integration-pipelines credentials set {connection_id} NAME` (the value is read from stdin)"
        )

    def write_back(token: dict) -> None:
        """A partner rotated the refresh token: keep the new one, encrypted."""
        refresh = token.get("refresh_token")
        auth = connector.spec.auth
        if refresh and hasattr(auth, "refresh_token"):
            store.set_credential(connection_id, auth.refresh_token, refresh)

    with build_partner_client(
        connector, connection, credentials, allow_loopback=allow_loopback, on_token=write_back
    ) as client:
        yield StreamSync(
            engine=engine,
            connection=connection,
            connector=connector,
            client=client,
            secrets=credentials.values(),
            progress=progress,
            run_id=run_id,
        )


def sync_stream(
    engine: sa.Engine,
    vault: CredentialVault,
    connection_id: str,
    stream: str,
    *,
    lock_timeout: float = DEFAULT_TIMEOUT,
    **options,
) -> SyncReport:
    """Sync `stream` for `connection_id` now; raises on failure after recording it.

    The stream runs inside its (connection, stream) lock (`sync.locks.stream_lock`): a second
    caller waits up to `lock_timeout` seconds, then gets `StreamBusy`.
    """
    with open_sync(engine, vault, connection_id, **options) as sync:
        streams = sync.connector.spec.streams
        if stream not in streams:
            raise KeyError(f"{sync.connector.name} has no stream {stream!r}; streams: {', '.join(streams)}")
        with stream_lock(engine, connection_id, stream, timeout=lock_timeout):
            return sync.run(stream)


def apply_webhook_events(
    engine: sa.Engine, vault: CredentialVault, connection_id: str, **options
) -> SyncReport:
    """Apply the connection's pending inbox events now."""
    from integration_pipelines.sync.webhook_events import EventApplier

    with open_sync(engine, vault, connection_id, **options) as sync:
        return EventApplier(sync).run()
