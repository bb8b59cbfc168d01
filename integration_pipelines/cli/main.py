"""`integration-pipelines`: the command line for engineers running integrations."""

import os
import sys
from pathlib import Path

import click

from integration_pipelines.cli.common import DATABASE_OPTION, open_store, table
from integration_pipelines.connections import ConnectionConfigError
from integration_pipelines.connectors.registry import ConnectorFileError, connector_paths, load_connector_file


@click.group()
def cli() -> None:
    """Declarative partner integrations for a staffing ATS, run on Dagster."""


# ---------------------------------------------------------------------------- connectors
@cli.group()
def connectors() -> None:
    """Connector files: list and validate."""


@connectors.command("list")
def connectors_list() -> None:
    """List every connector with its category, auth kind and streams."""
    rows = []
    for path in connector_paths():
        try:
            c = load_connector_file(path).spec
        except ConnectorFileError as exc:
            rows.append([path.parent.name, "INVALID", "-", str(exc.problems[0])])
            continue
        streams = ", ".join(f"{n} ({s.direction} -> {s.entity})" for n, s in c.streams.items())
        rows.append([c.name, c.category, c.auth.kind, streams])
    click.echo(table(["connector", "category", "auth", "streams"], rows))


@connectors.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def connectors_validate(paths: tuple[Path, ...]) -> None:
    """Validate connector files (default: every connector). Exits 1 on any problem."""
    targets = list(paths) or connector_paths()
    failed = 0
    for path in targets:
        try:
            loaded = load_connector_file(path)
            click.echo(f"ok       {loaded.path} ({len(loaded.spec.streams)} streams)")
        except ConnectorFileError as exc:
            failed += 1
            for problem in exc.problems:
                click.echo(f"invalid  {problem}", err=True)
    if failed:
        raise SystemExit(1)


# ---------------------------------------------------------------------------- connections
@cli.group()
def connections() -> None:
    """Tenants' connections: add, list, remove."""


@connections.command("add")
@click.argument("tenant")
@click.argument("connector")
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE", help="Connection config value.")
@click.option("--sandbox", is_flag=True, help="Allow a loopback base_url (the local simulators).")
@DATABASE_OPTION
def connections_add(
    tenant: str, connector: str, config_items: tuple[str, ...], sandbox: bool, database_url: str | None
) -> None:
    """Connect TENANT to CONNECTOR; then set its credentials with `credentials set`.

    A `base_url` outside the connector's allowed hosts, over plain http or at an internal address
    is refused (loopback only with --sandbox)."""
    from integration_pipelines.connectors.registry import get_connector

    try:
        spec = get_connector(connector).spec
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    config = {}
    for item in config_items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.ClickException(f"--config takes KEY=VALUE, got {item!r}")
        config[key] = value
    try:
        connection = open_store(database_url).add(tenant, spec, config, allow_loopback=sandbox)
    except ConnectionConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {connection.id}; credentials needed: {', '.join(spec.credential_names) or 'none'}")


@connections.command("list")
@click.option("--tenant", default=None)
@DATABASE_OPTION
def connections_list(tenant: str | None, database_url: str | None) -> None:
    """List connections and which credentials they have (names only, never values)."""
    store = open_store(database_url)
    rows = [
        [c.id, c.tenant_id, c.connector, c.status, ", ".join(store.credential_names(c.id)) or "-"]
        for c in store.all(tenant_id=tenant)
    ]
    click.echo(table(["connection", "tenant", "connector", "status", "credentials"], rows))


@connections.command("remove")
@click.argument("connection_id")
@DATABASE_OPTION
def connections_remove(connection_id: str, database_url: str | None) -> None:
    """Remove a connection and its credentials (synced ATS data stays)."""
    try:
        open_store(database_url).remove(connection_id)
    except ConnectionConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed {connection_id}")


# ---------------------------------------------------------------------------- credentials
@cli.group()
def credentials() -> None:
    """Connection secrets, stored encrypted with the vault key (INTEGRATION_VAULT_KEYS)."""


@credentials.command("set")
@click.argument("connection_id")
@click.argument("name")
@click.option("--from-env", "from_env", metavar="VAR", help="Read the secret from this environment variable.")
@DATABASE_OPTION
def credentials_set(connection_id: str, name: str, from_env: str | None, database_url: str | None) -> None:
    """Set secret NAME of CONNECTION_ID from stdin (or --from-env VAR); never from the command line."""
    if from_env:
        secret = os.environ.get(from_env)
        if not secret:
            raise click.ClickException(f"environment variable {from_env} is not set or empty")
    else:
        if sys.stdin.isatty():
            secret = click.prompt(f"{name}", hide_input=True)
        else:
            secret = sys.stdin.readline().rstrip("\r\n")
    try:
        open_store(database_url, need_vault=True).set_credential(connection_id, name, secret)
    except ConnectionConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"stored {name} for {connection_id} (encrypted)")


@credentials.command("rotate")
@DATABASE_OPTION
def credentials_rotate(database_url: str | None) -> None:
    """Re-encrypt every secret under the first key of INTEGRATION_VAULT_KEYS."""
    count = open_store(database_url, need_vault=True).rotate_credentials()
    click.echo(f"re-encrypted {count} credential(s)")


# ---------------------------------------------------------------------------- sync, demo, sandbox
@cli.command()
@click.argument("connection_id")
@click.option("--stream", "streams", multiple=True, help="Stream to sync (default: every inbound stream).")
@click.option("--sandbox", is_flag=True, help="Allow loopback base URLs (the local simulators).")
@DATABASE_OPTION
def sync(connection_id: str, streams: tuple[str, ...], sandbox: bool, database_url: str | None) -> None:
    """Sync one connection now, outside Dagster (for debugging a connection)."""
    from integration_pipelines.connectors.registry import get_connector
    from integration_pipelines.resources.errors import PartnerError
    from integration_pipelines.sync.service import sync_stream

    store = open_store(database_url, need_vault=True)
    try:
        connection = store.get(connection_id)
    except ConnectionConfigError as exc:
        raise click.ClickException(str(exc)) from None
    connector = get_connector(connection.connector)
    for stream in streams or connector.spec.inbound_streams():
        try:
            report = sync_stream(
                store.engine,
                store.vault,
                connection_id,
                stream,
                connector=connector,
                allow_loopback=sandbox,
                progress=click.echo,
            )
        except PartnerError as exc:  # refused host, credentials, partner down: the message says what to do
            raise click.ClickException(f"{connection_id} {stream}: {exc}") from None
        click.echo(
            f"{connection_id} {stream}: {report.status}, {report.records} records, "
            f"{report.written} written, {report.rejected} rejected in {report.duration_seconds}s"
        )


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path(".integration/demo"),
    show_default=True,
    help="Where the demo keeps its SQLite database and Dagster home.",
)
@click.option(
    "--faults",
    is_flag=True,
    envvar="INTEGRATION_DEMO_FAULTS",
    help="Misbehaving partners: 429 storms, 503s, expired tokens and one revoked credential "
    "(the syncs must ride them out; the revoked connection must fail, then succeed once restored).",
)
@DATABASE_OPTION
def demo(workdir: Path, faults: bool, database_url: str | None) -> None:
    """Run every inbound stream of every connector for two demo tenants against the sandbox."""
    from integration_pipelines.cli.demo import run_demo

    raise SystemExit(run_demo(workdir=workdir, database_url=database_url, faults=faults))


@cli.command()
@click.option("--port-base", type=int, default=None, help="First port (the simulators take 4 in a row).")
def sandbox(port_base: int | None) -> None:
    """Run the partner simulators in the foreground and print their URLs."""
    from integration_pipelines.sandbox.server import run_forever

    run_forever(port_base=port_base)


def _register_more_commands() -> None:
    from integration_pipelines.cli.health import health
    from integration_pipelines.cli.outbox import outbox
    from integration_pipelines.cli.serve import serve
    from integration_pipelines.cli.serve_all import serve_all
    from integration_pipelines.cli.tenants import tenants

    for command in (serve, serve_all, outbox, health, tenants):
        cli.add_command(command)


_register_more_commands()

if __name__ == "__main__":
    cli()
