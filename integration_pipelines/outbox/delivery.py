"""Delivering the outbox: claim due items, send them with the connection's client, record the outcome.

Rules (the same for the CLI's `outbox deliver` loop, the Dagster job and tests):

* **Due**: `status = pending` and `next_attempt_at <= now`, on a connection that is not paused.
* **Order per record**: an item is only sent when every OLDER item of the same
  (connection, entity, record) is settled (`delivered`, or `superseded` by a conflict the partner
  won). An older item still pending, being sent or **dead blocks the newer ones**: a dead create
  blocks the record's updates until it is retried (`outbox retry`, after fixing the data or the
  connection); `outbox list` shows them as "blocked by #id". Different records never wait for
  each other.
* **Claiming**: an item is claimed just before it is sent with
  `UPDATE outbox SET status='sending', next_attempt_at=<lease expiry> WHERE id=? AND status='pending'
  AND next_attempt_at <= now AND <no older undelivered item>`; only the process whose UPDATE changed
  the row sends it, so any number of delivery processes can run at once. The outcome is recorded
  only while the claim is still ours (`status='sending' AND next_attempt_at=<our lease>`). An item
  left `sending` past its lease (the process died mid-send) is made pending again and re-sent.
* **Exactly once**: the create request carries `Idempotency-Key: outbox-<item id>` (a step
  `outbox-<item id>-<step>`, an update `outbox-<item id>` too), so a re-send after a crash or a lost
  response returns the record the first attempt made instead of a second one, at partners that
  honour the header: Beeline does on `POST /workers` and `POST /candidates`. Everything else can
  reach the partner twice when a delivery process dies between the partner's answer and the
  commit that marks the item delivered (a window of milliseconds): Beeline's PATCHes (a repeated
  status or date is harmless, a second RESCINDED is refused with 409 and the item goes dead), and
  file uploads, which honour no header -- SAP Fieldglass's Job Seeker Upload turns a repeated row
  into a "Duplicate Supplier Reference" failure in its audit trail (no second job seeker), its Work
  Order Update Upload applies the same values again.
* **Outcome**: success marks the item `delivered` (with `delivered_at`, `external_id`) and creates
  the record link in the same transaction. A transient failure (partner down or refusing
  connections, 5xx, 429, circuit breaker open) adds an attempt and schedules the next one at
  `now + min(cap, base * 2**attempts) * jitter(0.8..1.2)` (at least the partner's Retry-After);
  at `outbound.max_attempts` attempts, or at once for a 4xx, a configuration error or a body the
  mapping rejects, the item is `dead` with its last error (redacted: no secrets).

What is sent: a `create` runs the stream's `steps` (each skipped when its `link` already exists,
its record link saved as soon as it succeeds), then the create request; the response's
`response_id` becomes the record's link. A create for a record that is already linked is sent as
an update (the partner has it: use `outbox replay` to re-send an update, remove the link to
create again). An `update` renders the path with `link.external_id` and sends `update_body` (or
`body`) restricted to the partner fields computed from the fields this item changed (plus fields
that do not come from the record): partner-owned fields are never overwritten with stale ATS
values, and a change to nothing this partner receives is marked delivered without a call. The
values sent are the item's own where a later item changes the field again (queued updates replay
in order), the record's current ones otherwise (see `context`).
"""

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from integration_pipelines.canonical.tables import outbox
from integration_pipelines.connections import ConnectionConfigError
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Outbound
from integration_pipelines.mapping import MappingConfigError
from integration_pipelines.outbox.clients import PartnerClients
from integration_pipelines.outbox.errors import OutboundError
from integration_pipelines.outbox.queue import (
    ACTIVE,
    claim,
    due_items,
    ensure_link,
    older_dead,
    older_undelivered,
    outbox_rows,
    owned,
    release_expired_leases,
    scoped,
)
from integration_pipelines.outbox.sending import Sender, changed_only
from integration_pipelines.outbox.values import as_utc
from integration_pipelines.resources.errors import PartnerError
from integration_pipelines.resources.redaction import redact
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.templates import TemplateError

log = logging.getLogger("integration_pipelines.outbox")

LEASE_SECONDS = 300.0  # must exceed the longest time one item's requests can take
DEFAULT_MAX_ATTEMPTS = Outbound.model_fields["max_attempts"].default
MAX_ERROR_CHARS = 1000


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------- reports


@dataclass
class ItemResult:
    """What one delivery attempt of one outbox item did."""

    item_id: int
    connection_id: str
    stream: str
    entity: str
    record_id: str
    operation: str
    outcome: str  # delivered | retried | dead | lease_lost (another process took the item over)
    attempts: int
    external_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    note: str | None = None


@dataclass
class DeliveryReport:
    """What one `deliver_due` call did, and what is left.

    `skipped_blocked`: due items left waiting behind an older undelivered item of their record;
    `remaining`: items still to deliver (pending or being sent) that are not stuck behind a dead
    item; `behind_dead`: items stuck behind a dead item until it is retried;
    `next_due_at`: when the earliest of the remaining items can go (None when there are none);
    `released`: items found mid-send from a process that stopped (lease over), made pending again.
    """

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    skipped_blocked: int = 0
    results: list[ItemResult] = field(default_factory=list)
    remaining: int = 0
    behind_dead: int = 0
    next_due_at: datetime | None = None
    released: int = 0

    def add(self, result: ItemResult) -> None:
        self.results.append(result)
        if result.outcome in ("delivered", "retried", "dead"):
            setattr(self, result.outcome, getattr(self, result.outcome) + 1)

    @property
    def empty(self) -> bool:
        """Nothing left that delivery can do (items behind dead ones wait for an operator)."""
        return self.remaining == 0

    def summary(self) -> str:
        return (
            f"delivered {self.delivered}, retried {self.retried}, dead {self.dead}, "
            f"blocked {self.skipped_blocked}, remaining {self.remaining}"
            + (f", behind dead items {self.behind_dead}" if self.behind_dead else "")
            + (f", resent after an interrupted send {self.released}" if self.released else "")
        )


def _permanent(exc: BaseException) -> bool:
    """True when sending again cannot succeed: dead-letter the item now."""
    if isinstance(exc, OutboundError | TemplateError | MappingConfigError | ConnectionConfigError):
        return True
    if isinstance(exc, PartnerError):
        return not exc.is_transient  # 4xx, refused credentials, unreadable bodies
    if isinstance(exc, httpx.TransportError | httpx.InvalidURL):
        return True  # the client retries network trouble itself; what is left is configuration
    return False  # unexpected (a database hiccup, a bug): retried, within max_attempts


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, OutboundError | PartnerError):
        text = f"{type(exc).__name__}: {text}"
    return text


# ---------------------------------------------------------------------------- the loop


def deliver_due(
    engine: sa.Engine,
    vault: CredentialVault | None,
    *,
    connection_id: str | None = None,
    now: datetime | None = None,
    limit: int = 100,
    allow_loopback: bool = False,
    backoff_base: float = 2.0,
    backoff_cap: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
    lease_seconds: float = LEASE_SECONDS,
    clients: PartnerClients | None = None,
    connectors: Mapping[str, LoadedConnector] | None = None,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Send up to `limit` due outbox items (of one connection, or all), oldest first, one at a time.

    `now` fixes the clock (tests step through backoff schedules with it). Pass a long-lived
    `clients` pool when calling in a loop; otherwise one is made and closed for this call.
    An item that fails is not tried again in the same call. See the module docstring for the rules.
    """
    if vault is None and clients is None:
        raise ValueError(
            "deliver_due needs the credential vault (INTEGRATION_VAULT_KEYS) to read credentials"
        )
    clock: Callable[[], datetime] = (lambda: as_utc(now)) if now is not None else _now
    rng = rng or random.Random()
    pool = clients or PartnerClients(
        engine, vault, allow_loopback=allow_loopback, sleep=sleep, connectors=connectors
    )
    report = DeliveryReport()
    tried: set[int] = set()
    try:
        report.released = release_expired_leases(engine, clock())
        if report.released:
            log.warning(
                "outbox: %d item(s) left mid-send by a stopped process are due again", report.released
            )
        while len(report.results) < limit:
            with engine.connect() as conn:
                query = scoped(sa.select(outbox.c.id), connection_id).where(
                    outbox.c.status == "pending", outbox.c.next_attempt_at <= clock(), ~older_undelivered()
                )
                if tried:
                    query = query.where(outbox.c.id.not_in(tried))
                ids = list(conn.execute(query.order_by(outbox.c.id).limit(limit)).scalars())
            if not ids:
                break
            for item_id in ids:
                if len(report.results) >= limit:
                    break
                tried.add(item_id)
                claimed = claim(engine, item_id, clock(), lease_seconds)
                if claimed is None:
                    continue  # another process took it, or it is no longer due
                row, lease = claimed
                report.add(_deliver_one(engine, pool, row, lease, clock, backoff_base, backoff_cap, rng))
    finally:
        if clients is None:
            pool.close()
    _finish(engine, report, clock(), connection_id)
    return report


def _deliver_one(
    engine: sa.Engine,
    pool: PartnerClients,
    item: Any,
    lease: datetime,
    clock: Callable[[], datetime],
    backoff_base: float,
    backoff_cap: float,
    rng: random.Random,
) -> ItemResult:
    result = ItemResult(
        item_id=item.id,
        connection_id=item.connection_id,
        stream=item.stream,
        entity=item.entity,
        record_id=item.record_id,
        operation=item.operation,
        outcome="delivered",
        attempts=item.attempts + 1,
    )
    secrets: list[str] = []
    max_attempts = DEFAULT_MAX_ATTEMPTS
    try:
        target = pool.get(item.connection_id)
        secrets = [s for s in target.credentials.values() if s]
        stream = target.connector.spec.streams.get(item.stream)
        if stream is None or stream.outbound is None or stream.entity != item.entity:
            raise OutboundError(
                f"connector {target.connector.name} has no outbound stream {item.stream!r} for "
                f"{item.entity} (any more); nothing can send this item"
            )
        max_attempts = stream.outbound.max_attempts
        sent = Sender(engine, target, item, stream.outbound, item.stream).send()
    except Exception as exc:
        if (
            isinstance(exc, PartnerError)
            and exc.failure_type == "config_error"
            and exc.status_code in (401, 403)
        ):
            pool.discard(item.connection_id)  # read the credentials again next time
        return _record_failure(
            engine, item, lease, exc, secrets, max_attempts, clock(), backoff_base, backoff_cap, rng, result
        )
    now = clock()
    with engine.begin() as conn:
        mine = conn.execute(
            outbox.update()
            .where(owned(item.id, lease))
            .values(
                status="delivered",
                delivered_at=now,
                external_id=sent.external_id,
                last_error=None,
                attempts=outbox.c.attempts + 1,
            )
        ).rowcount
        if sent.link and sent.external_id:
            ensure_link(
                conn,
                connection_id=item.connection_id,
                entity=item.entity,
                external_id=sent.external_id,
                internal_id=item.record_id,
                synced_at=as_utc(item.created_at),  # the ATS state that was sent
            )
    result.external_id, result.note = sent.external_id, sent.note
    if mine != 1:
        result.outcome = "lease_lost"
        result.note = "sent, but another process had taken the item over (lease ran out)"
    log.info(
        "outbox item %s (%s %s %s) %s",
        item.id,
        item.connection_id,
        item.stream,
        item.operation,
        result.outcome,
    )
    return result


def _record_failure(
    engine: sa.Engine,
    item: Any,
    lease: datetime,
    exc: BaseException,
    secrets: list[str],
    max_attempts: int,
    now: datetime,
    backoff_base: float,
    backoff_cap: float,
    rng: random.Random,
    result: ItemResult,
) -> ItemResult:
    attempts = item.attempts + 1
    message = redact(_describe(exc), secrets)
    permanent = _permanent(exc)
    if permanent or attempts >= max_attempts:
        status, next_at = "dead", now
        if not permanent:
            message = f"gave up after {attempts} attempts: {message}"
    else:
        delay = min(backoff_cap, backoff_base * 2.0 ** min(attempts, 60)) * rng.uniform(0.8, 1.2)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        status, next_at = "pending", now + timedelta(seconds=delay)
    message = message[:MAX_ERROR_CHARS]
    with engine.begin() as conn:
        mine = conn.execute(
            outbox.update()
            .where(owned(item.id, lease))
            .values(status=status, attempts=attempts, next_attempt_at=next_at, last_error=message)
        ).rowcount
    result.outcome = "dead" if status == "dead" else "retried"
    if mine != 1:
        result.outcome = "lease_lost"
    result.error, result.next_attempt_at = message, next_at if status == "pending" else None
    (log.warning if status == "dead" else log.info)(
        "outbox item %s (%s %s %s) %s: %s",
        item.id,
        item.connection_id,
        item.stream,
        item.operation,
        result.outcome,
        message,
    )
    return result


def _finish(engine: sa.Engine, report: DeliveryReport, now: datetime, connection_id: str | None) -> None:
    with engine.connect() as conn:
        report.skipped_blocked = conn.execute(
            scoped(sa.select(sa.func.count()), connection_id).where(
                outbox.c.status == "pending", outbox.c.next_attempt_at <= now, older_undelivered()
            )
        ).scalar_one()
        report.behind_dead = conn.execute(
            scoped(sa.select(sa.func.count()), connection_id).where(outbox.c.status.in_(ACTIVE), older_dead())
        ).scalar_one()
        report.remaining = (
            conn.execute(
                scoped(sa.select(sa.func.count()), connection_id).where(outbox.c.status.in_(ACTIVE))
            ).scalar_one()
            - report.behind_dead
        )
        next_due = conn.execute(
            scoped(sa.select(sa.func.min(outbox.c.next_attempt_at)), connection_id).where(
                outbox.c.status.in_(ACTIVE), ~older_undelivered()
            )
        ).scalar()
    report.next_due_at = as_utc(next_due) if next_due is not None else None


__all__ = [
    "DeliveryReport",
    "ItemResult",
    "LEASE_SECONDS",
    "PartnerClients",
    "changed_only",
    "deliver_due",
    "due_items",
    "ensure_link",
    "outbox_rows",
    "release_expired_leases",
]
