"""What the CLI's command modules share: the database option, the connection store, tables.

Its own module so that every command group can import it at the top (importing `cli.main`
from a group that `cli.main` registers would be circular).
"""

import os
from pathlib import Path

import click

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault, VaultError

DATABASE_OPTION = click.option(
    "--database-url",
    envvar="INTEGRATION_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL of the integration database (default: SQLite under .integration/).",
)


def open_store(database_url: str | None, need_vault: bool = False) -> ConnectionStore:
    """The migrated integration database, with the vault from the environment when asked for."""
    engine = create_db_engine(database_url)
    migrate(engine)
    vault = None
    if need_vault:
        key_file = os.environ.get("INTEGRATION_VAULT_KEY_FILE")
        try:
            vault = CredentialVault.from_env(key_file=Path(key_file) if key_file else None)
        except VaultError as exc:
            raise click.ClickException(str(exc)) from None
    return ConnectionStore(engine, vault)


def table(headers: list[str], rows: list[list[object]]) -> str:
    """Rows as an aligned plain-text table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)
