"""`integration-pipelines outbox`: look at, retry, replay and deliver outbound changes.

`deliver` is the delivery process: it loops `deliver_due`, sleeping until the next item is due
(or `--poll-seconds`, whichever is sooner, so new changes go out promptly). Any number of them
may run at once: items are claimed before they are sent. A killed process loses nothing: the
item it was sending is picked up again when its lease runs out (`--lease-seconds`).
"""

import time
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa

from integration_pipelines.canonical.tables import outbox as outbox_table
from integration_pipelines.cli.common import DATABASE_OPTION, open_store, table

STATUSES = ("pending", "sending", "delivered", "dead", "superseded")


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    seconds = (value - now).total_seconds()
    stamp = value.strftime("%Y-%m-%d %H:%M:%S")
    if abs(seconds) < 3600:
        return f"{stamp} ({'in ' if seconds >= 0 else ''}{abs(seconds):.0f}s{'' if seconds >= 0 else ' ago'})"
    return stamp


def _short(text: str | None, width: int = 80) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _without_where(error: str | None, connection_id: str) -> str | None:
    """The error without its "beeline (connection acme/beeline): " prefix: the row says that already."""
    marker = f" (connection {connection_id}): "
    if error and marker in error[:200]:
        return error.split(marker, 1)[1]
    return error


@click.group()
def outbox() -> None:
    """Outbound changes waiting for partners: list, retry, replay, deliver."""


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only items in this state.")
@click.option("--connection", "connection_id", default=None, help="Only this connection's items.")
@click.option("--limit", type=int, default=50, show_default=True)
@DATABASE_OPTION
def list_items(status: str | None, connection_id: str | None, limit: int, database_url: str | None) -> None:
    """List items, newest first. A pending item shows "blocked by #id" while an older item of the same
    record is not delivered: items of one record go out in order, and a dead one holds the rest
    back until it is retried."""
    from integration_pipelines.outbox.delivery import outbox_rows

    engine = open_store(database_url).engine
    with engine.connect() as conn:
        rows = outbox_rows(conn, status=status, connection_id=connection_id, limit=limit)
    now = datetime.now(UTC)
    listed = []
    for r in rows:
        state = r["status"] + (f" (blocked by #{r['blocked_by']})" if r["blocked_by"] else "")
        due = r["next_attempt_at"] if r["status"] in ("pending", "sending") else None
        listed.append(
            [
                r["id"],
                r["connection_id"],
                r["stream"],
                f"{r['entity']} {r['record_id']}",
                r["operation"],
                state,
                r["attempts"],
                _when(due, now),
                _short(_without_where(r["last_error"], r["connection_id"]), 100),
            ]
        )
    click.echo(
        table(
            [
                "id",
                "connection",
                "stream",
                "record",
                "operation",
                "status",
                "attempts",
                "next attempt",
                "last error",
            ],
            listed,
        )
    )
    counts = _counts(engine, connection_id)
    click.echo(", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))


def _counts(engine: sa.Engine, connection_id: str | None) -> dict[str, int]:
    query = sa.select(outbox_table.c.status, sa.func.count()).group_by(outbox_table.c.status)
    if connection_id:
        query = query.where(outbox_table.c.connection_id == connection_id)
    with engine.connect() as conn:
        return {status: n for status, n in conn.execute(query)}


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead item (of --connection, if given).")
@click.option("--connection", "connection_id", default=None)
@DATABASE_OPTION
def retry(ids: tuple[int, ...], all_dead: bool, connection_id: str | None, database_url: str | None) -> None:
    """Give dead items another chance: pending again, attempts 0, due now."""
    if bool(ids) == all_dead:
        raise click.UsageError("give item IDs or --all-dead (not both)")
    engine = open_store(database_url).engine
    where = [outbox_table.c.status == "dead"]
    if ids:
        where.append(outbox_table.c.id.in_(ids))
    if connection_id:
        where.append(outbox_table.c.connection_id == connection_id)
    with engine.begin() as conn:
        found = list(
            conn.execute(sa.select(outbox_table.c.id).where(*where).order_by(outbox_table.c.id)).scalars()
        )
        if found:
            conn.execute(
                outbox_table.update()
                .where(outbox_table.c.id.in_(found))
                .values(status="pending", attempts=0, next_attempt_at=datetime.now(UTC))
            )
    missing = sorted(set(ids) - set(found))
    click.echo(f"{len(found)} item(s) pending again" + (f": {', '.join(map(str, found))}" if found else ""))
    if missing:
        raise click.ClickException(f"not dead (or unknown): {', '.join(map(str, missing))}")


@outbox.command("replay")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--connection", "connection_id", default=None, help="Only items of this connection.")
@DATABASE_OPTION
def replay(ids: tuple[int, ...], connection_id: str | None, database_url: str | None) -> None:
    """Send delivered items again: each gets a new pending copy (same change, same change time),
    queued after the record's other items. A create whose record is linked by now goes as an update.
    With --connection, items of other connections count as unknown."""
    engine = open_store(database_url).engine
    made: list[str] = []
    where = [outbox_table.c.id.in_(ids)]
    if connection_id:
        where.append(outbox_table.c.connection_id == connection_id)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(outbox_table).where(*where)).mappings().all()
        by_id = {r["id"]: r for r in rows}
        problems = [
            f"#{i} " + ("is unknown" if i not in by_id else f"is {by_id[i]['status']}, not delivered")
            for i in ids
            if i not in by_id or by_id[i]["status"] != "delivered"
        ]
        if problems:
            raise click.ClickException("cannot replay: " + "; ".join(problems))
        now = datetime.now(UTC)
        for i in ids:
            r = by_id[i]
            new_id = conn.execute(
                outbox_table.insert().values(
                    connection_id=r["connection_id"],
                    stream=r["stream"],
                    entity=r["entity"],
                    record_id=r["record_id"],
                    operation=r["operation"],
                    payload=r["payload"],
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=r["created_at"],
                )
            ).inserted_primary_key[0]
            made.append(f"#{i} -> #{new_id}")
    click.echo(f"{len(made)} item(s) queued again: {', '.join(made)}")


@outbox.command("deliver")
@click.option("--connection", "connection_id", default=None, help="Only this connection's items.")
@click.option("--until-empty", is_flag=True, help="Exit (0) once nothing is left to deliver.")
@click.option(
    "--max-seconds",
    type=float,
    default=None,
    help="Stop after this long (with --until-empty: exit 1 if items are left).",
)
@click.option("--sandbox", is_flag=True, help="Allow loopback base URLs (the local simulators).")
@click.option("--batch", "limit", type=int, default=100, show_default=True, help="Items per batch.")
@click.option(
    "--poll-seconds", type=float, default=2.0, show_default=True, help="Longest sleep between batches."
)
@click.option(
    "--lease-seconds",
    type=float,
    default=None,
    help="How long a claimed item is ours before another process may send it (default 300).",
)
@click.option(
    "--backoff-base", type=float, default=2.0, show_default=True, help="Retry after base * 2**attempts s."
)
@click.option(
    "--backoff-cap", type=float, default=600.0, show_default=True, help="Longest wait between attempts."
)
@DATABASE_OPTION
def deliver(
    connection_id: str | None,
    until_empty: bool,
    max_seconds: float | None,
    sandbox: bool,
    limit: int,
    poll_seconds: float,
    lease_seconds: float | None,
    backoff_base: float,
    backoff_cap: float,
    database_url: str | None,
) -> None:
    """Run the delivery process: send due items, sleep until the next one is due, repeat."""
    from integration_pipelines.outbox.delivery import LEASE_SECONDS, PartnerClients, deliver_due

    store = open_store(database_url, need_vault=True)
    started = time.monotonic()
    totals = {"delivered": 0, "retried": 0, "dead": 0}
    with PartnerClients(store.engine, store.vault, allow_loopback=sandbox) as clients:
        while True:
            report = deliver_due(
                store.engine,
                store.vault,
                connection_id=connection_id,
                limit=limit,
                allow_loopback=sandbox,
                backoff_base=backoff_base,
                backoff_cap=backoff_cap,
                lease_seconds=lease_seconds or LEASE_SECONDS,
                clients=clients,
            )
            for key in totals:
                totals[key] += getattr(report, key)
            if report.results or report.released:
                stamp = datetime.now(UTC).strftime("%H:%M:%S")
                click.echo(f"{stamp} {report.summary()}", nl=True)
                for result in report.results:
                    if result.outcome == "dead":
                        click.echo(
                            f"  dead #{result.item_id} {result.connection_id}: {_short(result.error, 200)}"
                        )
            if until_empty and report.empty:
                click.echo(
                    f"outbox empty: {totals['delivered']} delivered, {totals['retried']} retried, "
                    f"{totals['dead']} dead"
                    + (f"; {report.behind_dead} item(s) wait behind dead items" if report.behind_dead else "")
                )
                return
            elapsed = time.monotonic() - started
            if max_seconds is not None and elapsed >= max_seconds:
                click.echo(f"stopping after {elapsed:.0f}s: {report.remaining} item(s) left")
                raise SystemExit(1 if until_empty and not report.empty else 0)
            wait = poll_seconds
            if report.next_due_at is not None:
                wait = min(wait, (report.next_due_at - datetime.now(UTC)) / timedelta(seconds=1))
            if max_seconds is not None:
                wait = min(wait, max_seconds - elapsed)
            if not report.results or wait > 0:
                time.sleep(max(0.05, wait))


if __name__ == "__main__":
    outbox()
