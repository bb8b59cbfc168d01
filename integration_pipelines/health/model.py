"""The health model: what each connection's state is, derived from data, never typed in.

This module holds the shapes shared by the health layer's parts (derivation, incidents and
alerts, the status page, the CLI). `derive.py` computes them from sync runs, sync state,
the inbox, the outbox and incidents.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Status = Literal["healthy", "degraded", "down", "paused"]


@dataclass(frozen=True)
class StreamHealth:
    """One stream of one connection."""

    stream: str
    last_success_at: datetime | None
    last_run_at: datetime | None
    last_run_status: str | None  # succeeded | failed | interrupted | running
    last_error: str | None  # redacted
    records_24h: int
    rejects_24h: int
    fresh: bool  # last success within the connector's freshness SLA


@dataclass(frozen=True)
class Incident:
    """An open problem of a connection: one per incident, not per failed run."""

    id: int
    severity: Literal["degraded", "down"]
    reason: str
    opened_at: datetime
    last_error: str | None
    dagster_run_id: str | None


@dataclass(frozen=True)
class DayHealth:
    """One day of the 7-day history strip."""

    day: str  # YYYY-MM-DD (UTC)
    runs: int
    failed: int
    status: Status | Literal["no_runs"]


@dataclass(frozen=True)
class ConnectionHealth:
    """Everything the status page, the CLI and the alerts say about one connection."""

    connection_id: str
    tenant_id: str
    connector: str
    connector_title: str
    status: Status
    reasons: list[str]  # why it is not healthy, in plain words (empty when healthy)
    last_success_at: datetime | None
    error_rate_1h: float | None  # failed runs / runs; None without runs
    error_rate_24h: float | None
    records_24h: int
    rejects_24h: int
    inbox_backlog: int
    outbox_backlog: int
    dead_letters: int
    consecutive_failures: int
    breaker_open: bool
    incident: Incident | None
    streams: list[StreamHealth] = field(default_factory=list)
    history: list[DayHealth] = field(default_factory=list)
