"""`integration-pipelines health`: every connection's derived health as a table."""

from datetime import UTC, datetime

import click

from integration_pipelines.cli.common import DATABASE_OPTION, table
from integration_pipelines.health.derive import derive_health, format_duration
from integration_pipelines.health.model import ConnectionHealth

INCIDENT_WIDTH = 100  # the incident column is cut to this many characters


def _ago(moment: datetime | None, now: datetime) -> str:
    return f"{format_duration(now - moment)} ago" if moment is not None else "never"


def _rate(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "-"


def _row(h: ConnectionHealth, now: datetime) -> list[object]:
    incident = "-"
    if h.incident is not None:
        incident = f"{h.incident.severity} since {_ago(h.incident.opened_at, now)}: {h.incident.reason}"
        if len(incident) > INCIDENT_WIDTH:
            incident = incident[: INCIDENT_WIDTH - 1] + "…"
    return [
        h.connection_id,
        h.status,
        _ago(h.last_success_at, now),
        f"{_rate(h.error_rate_1h)} / {_rate(h.error_rate_24h)}",
        h.records_24h,
        h.rejects_24h,
        h.inbox_backlog,
        h.outbox_backlog,
        h.dead_letters,
        incident,
    ]


HEADERS = [
    "connection",
    "status",
    "last success",
    "errors 1h/24h",
    "records 24h",
    "rejects 24h",
    "inbox",
    "outbox",
    "dead",
    "incident",
]


def health_table(rows: list[ConnectionHealth], now: datetime) -> str:
    """The health of `rows` as the CLI and the demo print it."""
    return table(HEADERS, [_row(h, now) for h in rows])


@click.command("health")
@click.option("--tenant", default=None, help="Only this tenant's connections.")
@DATABASE_OPTION
def health(tenant: str | None, database_url: str | None) -> None:
    """Each connection's health, derived from its runs, sync state, inbox, outbox and incidents."""
    from integration_pipelines.db.engine import create_db_engine, migrate

    engine = create_db_engine(database_url)
    try:
        migrate(engine)
        now = datetime.now(UTC)
        rows = derive_health(engine, now=now, tenant_id=tenant)
    finally:
        engine.dispose()
    if not rows:
        click.echo(f"no connections{f' for tenant {tenant}' if tenant else ''}")
        return
    click.echo(health_table(rows, now))
