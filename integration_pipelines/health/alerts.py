"""Alerts: tell on-call when a connection goes down and when it recovers, on Slack and by email.

Channels are configured by environment variables, so secrets (the webhook URL, the SMTP
password) never sit in code or in Dagster run config:

- ``INTEGRATION_ALERT_SLACK_WEBHOOK_URL``: a Slack incoming-webhook URL (POST JSON).
- ``INTEGRATION_ALERT_SMTP_HOST``, ``_PORT`` (default 25), ``_FROM``, ``_TO`` (comma-separated),
  optional ``_USER`` / ``_PASSWORD`` and ``_STARTTLS=1``.
- ``INTEGRATION_DAGSTER_UI_URL`` (e.g. ``http://127.0.0.1:3000``) to link the failing run.

Every attempt on every channel is recorded in ``alerts_sent`` (ok or the redacted error);
a channel that is down never stops the others, and sending never raises.
"""

import os
import smtplib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from integration_pipelines.canonical.tables import alerts_sent
from integration_pipelines.resources.redaction import redact

AlertKind = Literal["incident", "recovery"]

SLACK_TIMEOUT_SECONDS = 10.0
SMTP_TIMEOUT_SECONDS = 10.0
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class AlertMessage:
    """What an alert says: one incident opening (or escalating), or its recovery."""

    kind: AlertKind
    tenant_id: str
    connector: str
    connection_id: str
    severity: str  # degraded | down
    what_failed: str  # the incident's reason, in plain words
    since: datetime  # when the incident opened
    last_error: str | None  # redacted
    run_url: str | None  # link to the failing run in the Dagster UI
    connector_title: str | None = None
    recovered_at: datetime | None = None  # recovery notices: when the connection recovered


@dataclass(frozen=True)
class ChannelResult:
    """The outcome of sending one alert on one channel."""

    channel: str  # slack | email
    ok: bool
    error: str | None = None


class Channel(Protocol):
    """A way to reach on-call."""

    name: str

    def send(self, message: AlertMessage) -> None:
        """Deliver `message`; raise on failure."""
        ...

    def secrets(self) -> list[str]:
        """Strings that must never appear in a recorded error."""
        ...


# ---------------------------------------------------------------- text


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _format_time(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: float) -> str:
    """A short, human duration: ``42 min``, ``3 h 5 min``, ``2 d 4 h``."""
    minutes = max(0, int(round(seconds / 60)))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _who(message: AlertMessage) -> str:
    title = message.connector_title or message.connector
    return f"{message.connection_id} ({title})"


def headline(message: AlertMessage) -> str:
    """The first words of the alert, also the email subject."""
    if message.kind == "recovery":
        return f"[RECOVERED] {message.connection_id}"
    return f"[{message.severity.upper()}] {message.connection_id}: {' '.join(message.what_failed.split())}"


def format_text(message: AlertMessage) -> str:
    """One readable paragraph for a person on call.

    ``[DOWN] acme/beeline (Beeline Supplier and Talent API) since 2026-12-04 10:12 UTC: 3 runs in
    a row failed. Last error: ... Run: <url>``; recoveries read ``[RECOVERED] ... after 42 min``.
    """
    since = _format_time(message.since)
    if message.kind == "recovery":
        recovered = _utc(message.recovered_at or datetime.now(UTC))
        after = format_duration((recovered - _utc(message.since)).total_seconds())
        parts = [
            f"[RECOVERED] {_who(message)} after {after}",
            f"({message.severity} since {since}): syncs succeed again.",
            f"It was: {_sentence(message.what_failed)}",
        ]
    else:
        parts = [
            f"[{message.severity.upper()}] {_who(message)} since {since}: {_sentence(message.what_failed)}"
        ]
        if message.last_error and " ".join(message.last_error.split()) not in " ".join(
            message.what_failed.split()
        ):
            parts.append(f"Last error: {_sentence(message.last_error)}")
    if message.run_url:
        parts.append(f"Run: {message.run_url}")
    return " ".join(parts)


def run_url(dagster_ui_url: str | None, run_id: str | None) -> str | None:
    """``{ui}/runs/{run_id}``, or None without a UI URL or a run."""
    if not dagster_ui_url or not run_id:
        return None
    return f"{dagster_ui_url.rstrip('/')}/runs/{run_id}"


# ---------------------------------------------------------------- channels


@dataclass(frozen=True)
class SlackChannel:
    """A Slack incoming webhook: POST ``{"text": ..., "blocks": [...]}``, one retry."""

    webhook_url: str
    timeout: float = SLACK_TIMEOUT_SECONDS
    name: str = "slack"

    def payload(self, message: AlertMessage) -> dict[str, Any]:
        """The JSON body: plain text (notifications) plus blocks (what the channel shows)."""
        text = format_text(message)
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        context = f"tenant `{message.tenant_id}` · connector `{message.connector}` · {message.kind}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        return {"text": text, "blocks": blocks}

    def send(self, message: AlertMessage) -> None:
        """POST the alert; retry once on a network error, a 429 or a 5xx answer."""
        body = self.payload(message)
        last: Exception | None = None
        with httpx.Client(timeout=self.timeout) as client:
            for _ in range(2):
                try:
                    response = client.post(self.webhook_url, json=body)
                except httpx.HTTPError as exc:
                    last = RuntimeError(f"{type(exc).__name__}: {exc}")
                    continue
                if response.is_success:
                    return
                last = RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                if response.status_code != 429 and response.status_code < 500:
                    break
        raise last or RuntimeError("not sent")

    def secrets(self) -> list[str]:
        """The URL and its path token (whoever has the path can post into the channel)."""
        parts = urlsplit(self.webhook_url)
        segments = [s for s in parts.path.split("/") if len(s) >= 6 and s not in {"services", "hooks"}]
        return [self.webhook_url, parts.path, *segments]


@dataclass(frozen=True)
class EmailChannel:
    """Plain-text email over SMTP, optionally with STARTTLS and login."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = SMTP_TIMEOUT_SECONDS
    name: str = "email"

    def email(self, message: AlertMessage) -> EmailMessage:
        """The email: the headline as subject, the paragraph as body."""
        email = EmailMessage()
        email["Subject"] = headline(message)
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        email.set_content(format_text(message) + "\n")
        return email

    def send(self, message: AlertMessage) -> None:
        """Connect, optionally STARTTLS and log in, send, quit."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user and self.password:
                smtp.login(self.user, self.password)
            smtp.send_message(self.email(message))

    def secrets(self) -> list[str]:
        """The password, alone and in the forms AUTH PLAIN / LOGIN put on the wire."""
        if not self.password:
            return []
        user = self.user or ""
        return [self.password, f"{user}:{self.password}", f"\0{user}\0{self.password}"]


def channels_from_env(environ: Mapping[str, str] | None = None) -> list[Channel]:
    """The channels configured in the environment (none configured: an empty list)."""
    env = os.environ if environ is None else environ
    channels: list[Channel] = []
    webhook = env.get("INTEGRATION_ALERT_SLACK_WEBHOOK_URL", "").strip()
    if webhook:
        channels.append(SlackChannel(webhook))
    host = env.get("INTEGRATION_ALERT_SMTP_HOST", "").strip()
    recipients = tuple(r.strip() for r in env.get("INTEGRATION_ALERT_SMTP_TO", "").split(",") if r.strip())
    if host and recipients:
        channels.append(
            EmailChannel(
                host=host,
                port=int(env.get("INTEGRATION_ALERT_SMTP_PORT", "") or 25),
                sender=env.get("INTEGRATION_ALERT_SMTP_FROM", "").strip() or "integration-alerts@localhost",
                recipients=recipients,
                user=env.get("INTEGRATION_ALERT_SMTP_USER") or None,
                password=env.get("INTEGRATION_ALERT_SMTP_PASSWORD") or None,
                starttls=env.get("INTEGRATION_ALERT_SMTP_STARTTLS", "") == "1",
            )
        )
    return channels


# ---------------------------------------------------------------- sending


def _error_text(exc: BaseException, secrets: Iterable[str]) -> str:
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc)
    return redact(text, [s for s in secrets if s])[:MAX_ERROR_CHARS]


def send_alert(
    engine: sa.Engine,
    message: AlertMessage,
    incident_id: int,
    *,
    channels: Sequence[Channel] | None = None,
) -> list[ChannelResult]:
    """Send `message` on every channel (default: those in the environment); never raises.

    Each attempt is recorded in ``alerts_sent`` with ``ok`` and, on failure, an error text
    from which the channels' secrets have been removed.
    """
    channels = channels_from_env() if channels is None else channels
    secrets = [s for channel in channels for s in channel.secrets()]
    results: list[ChannelResult] = []
    for channel in channels:
        try:
            channel.send(message)
        except Exception as exc:  # one channel down must not block the others
            results.append(ChannelResult(channel.name, False, _error_text(exc, secrets)))
        else:
            results.append(ChannelResult(channel.name, True))
    if results:
        now = datetime.now(UTC)
        rows = [
            {
                "incident_id": incident_id,
                "kind": message.kind,
                "channel": r.channel,
                "sent_at": now,
                "ok": r.ok,
                "error": r.error,
            }
            for r in results
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(alerts_sent), rows)
    return results


def _titles() -> dict[str, str]:
    from integration_pipelines.connectors.registry import load_connectors

    try:
        return {name: c.spec.title for name, c in load_connectors().items()}
    except Exception:  # a broken connector file must not stop alerts: fall back to names
        return {}


def message_for(change: Any, *, title: str | None = None, dagster_ui_url: str | None = None) -> AlertMessage:
    """The alert for one ``IncidentChange`` (opened / escalated: incident; resolved: recovery)."""
    kind: AlertKind = "recovery" if change.kind == "resolved" else "incident"
    return AlertMessage(
        kind=kind,
        tenant_id=change.tenant_id,
        connector=change.connector,
        connection_id=change.connection_id,
        severity=change.severity,
        what_failed=change.reason,
        since=change.since,
        last_error=change.last_error,
        run_url=run_url(dagster_ui_url, change.dagster_run_id),
        connector_title=title,
        recovered_at=datetime.now(UTC) if kind == "recovery" else None,
    )


def notify_changes(
    engine: sa.Engine,
    changes: Iterable[Any],
    *,
    dagster_ui_url: str | None = None,
    channels: Sequence[Channel] | None = None,
) -> int:
    """Alert on every ``IncidentChange`` with ``notify=True``; returns how many alerts went out.

    An alert counts as gone out when at least one channel delivered it. The incident is then
    marked alerted (``mark_alerted``); it is also marked when no channel is configured, so
    configuring one later does not replay old incidents. When every configured channel failed
    it is left unmarked (the failures are in ``alerts_sent``); the incident logic does not offer
    the same change again, so such an alert is not retried.
    """
    from integration_pipelines.health.incidents import mark_alerted

    wanted = [c for c in changes if c.notify]
    if not wanted:
        return 0
    channels = channels_from_env() if channels is None else channels
    ui = dagster_ui_url or os.environ.get("INTEGRATION_DAGSTER_UI_URL") or None
    titles = _titles()
    sent = 0
    for change in wanted:
        message = message_for(change, title=titles.get(change.connector), dagster_ui_url=ui)
        results = send_alert(engine, message, change.incident_id, channels=channels)
        delivered = any(r.ok for r in results)
        sent += delivered
        if delivered or not results:
            mark_alerted(engine, change.incident_id, message.kind, datetime.now(UTC))
    return sent


__all__ = [
    "AlertMessage",
    "Channel",
    "ChannelResult",
    "EmailChannel",
    "SlackChannel",
    "channels_from_env",
    "format_text",
    "headline",
    "message_for",
    "notify_changes",
    "run_url",
    "send_alert",
]
