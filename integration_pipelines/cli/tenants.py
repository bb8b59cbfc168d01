"""`integration-pipelines tenants`: tenant-level commands (the status page token)."""

import click

from integration_pipelines.cli.common import DATABASE_OPTION, open_store


@click.group()
def tenants() -> None:
    """Tenants: status page tokens."""


@tenants.command("token")
@click.argument("tenant")
@DATABASE_OPTION
def tenants_token(tenant: str, database_url: str | None) -> None:
    """Issue TENANT's status page token, replacing (and revoking) any earlier one.

    The token is printed once: only its SHA-256 is stored, so it cannot be shown again.
    """
    from integration_pipelines.health.tokens import UnknownTenantError, issue_token

    store = open_store(database_url)
    try:
        token = issue_token(store.engine, tenant)
    except UnknownTenantError:
        raise click.ClickException(
            f"no tenant {tenant!r}; tenants are created with `integration-pipelines connections add`"
        ) from None
    click.echo(f"status token for {tenant}: {token}")
    click.echo(f"status page: /status/{tenant}?token={token}")
    click.echo(
        "Shown once: only its hash is stored, so it cannot be shown again. Any earlier token for "
        f"{tenant} no longer works; run this command again to replace a lost token."
    )
