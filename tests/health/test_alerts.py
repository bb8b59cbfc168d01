"""Alerts against a local Slack webhook (Starlette on LocalServer) and a local SMTP server (aiosmtpd)."""

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from integration_pipelines.canonical.tables import alerts_sent, incidents
from integration_pipelines.health.alerts import (
    AlertMessage,
    EmailChannel,
    SlackChannel,
    channels_from_env,
    format_text,
    notify_changes,
    send_alert,
)
from integration_pipelines.local_server import LocalServer

SLACK_TOKEN = "T0001/B0002/s3cr3tW3bh00kT0k3n"
SMTP_PASSWORD = "hunter2-Sm7p-Pa55"
SINCE = datetime(2026, 12, 4, 10, 12, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlackSink:
    """Records POSTed JSON; `fail` makes it answer 500 echoing the path (a leaky proxy would)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail = False
        self.app = Starlette(routes=[Route("/services/{rest:path}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> PlainTextResponse | JSONResponse:
        self.posts.append(await request.json())
        if self.fail:
            return PlainTextResponse(f"upstream error for {request.url.path}", status_code=500)
        return PlainTextResponse("ok")


@dataclass
class SmtpSink:
    """Keeps every message aiosmtpd receives; `password_ok` decides AUTH (echoing what it got)."""

    messages: list[Any] = field(default_factory=list)
    password_ok: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        password = auth_data.password.decode()
        if password == self.password_ok:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {password}")


@pytest.fixture
def slack() -> Iterator[tuple[SlackSink, str]]:
    sink = SlackSink()
    with LocalServer(sink.app, name="slack sink") as server:
        yield sink, f"{server.url}/services/{SLACK_TOKEN}"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(
        sink, hostname="127.0.0.1", port=port, authenticator=sink.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def message(kind: str = "incident", **overrides: Any) -> AlertMessage:
    values: dict[str, Any] = dict(
        kind=kind,
        tenant_id="acme",
        connector="beeline",
        connection_id="acme/beeline",
        severity="down",
        what_failed="3 runs in a row failed",
        since=SINCE,
        last_error="beeline GET /jobs: 503 Service Unavailable after 5 attempts",
        run_url="http://127.0.0.1:3000/runs/abc-123",
        connector_title="Beeline Supplier and Talent API",
    )
    values.update(overrides)
    return AlertMessage(**values)


def email_channel(port: int, **overrides: Any) -> EmailChannel:
    values: dict[str, Any] = dict(
        host="127.0.0.1",
        port=port,
        sender="alerts@agency.test",
        recipients=("oncall@agency.test",),
        timeout=5,
    )
    values.update(overrides)
    return EmailChannel(**values)


def recorded(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(alerts_sent).order_by(alerts_sent.c.id)).all()


# ---------------------------------------------------------------- text and configuration


def test_incident_text_reads_as_one_paragraph() -> None:
    assert format_text(message()) == (
        "[DOWN] acme/beeline (Beeline Supplier and Talent API) since 2026-12-04 10:12 UTC: "
        "3 runs in a row failed. Last error: beeline GET /jobs: 503 Service Unavailable after 5 attempts. "
        "Run: http://127.0.0.1:3000/runs/abc-123"
    )
    degraded = format_text(message(severity="degraded", last_error=None, run_url=None, connector_title=None))
    assert degraded == "[DEGRADED] acme/beeline (beeline) since 2026-12-04 10:12 UTC: 3 runs in a row failed."


def test_recovery_text_says_how_long_it_was_down() -> None:
    text = format_text(message("recovery", recovered_at=SINCE + timedelta(minutes=42), run_url=None))
    assert text.startswith("[RECOVERED] acme/beeline (Beeline Supplier and Talent API) after 42 min")
    assert "down since 2026-12-04 10:12 UTC" in text
    assert "3 runs in a row failed" in text
    assert "503" not in text  # the old error is no news on recovery
    long = format_text(message("recovery", recovered_at=SINCE + timedelta(hours=3, minutes=5)))
    assert "after 3 h 5 min" in long


def test_channels_come_from_the_environment() -> None:
    assert channels_from_env({}) == []
    slack, email = channels_from_env(
        {
            "INTEGRATION_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/T/B/x",
            "INTEGRATION_ALERT_SMTP_HOST": "smtp.agency.test",
            "INTEGRATION_ALERT_SMTP_FROM": "alerts@agency.test",
            "INTEGRATION_ALERT_SMTP_TO": "a@agency.test, b@agency.test",
            "INTEGRATION_ALERT_SMTP_USER": "alerts",
            "INTEGRATION_ALERT_SMTP_PASSWORD": "pw",
            "INTEGRATION_ALERT_SMTP_STARTTLS": "1",
        }
    )
    assert isinstance(slack, SlackChannel) and slack.webhook_url.endswith("/T/B/x")
    assert isinstance(email, EmailChannel)
    assert (email.port, email.recipients, email.user, email.starttls) == (
        25,
        ("a@agency.test", "b@agency.test"),
        "alerts",
        True,
    )


# ---------------------------------------------------------------- delivery


def test_one_message_per_channel_with_the_alert_text(engine, slack, smtp) -> None:
    (slack_sink, webhook), (smtp_sink, port) = slack, smtp
    alert = message()
    results = send_alert(engine, alert, 7, channels=[SlackChannel(webhook), email_channel(port)])

    assert [(r.channel, r.ok) for r in results] == [("slack", True), ("email", True)]
    assert len(slack_sink.posts) == 1
    assert slack_sink.posts[0]["text"] == format_text(alert)
    assert slack_sink.posts[0]["blocks"][0]["text"]["text"] == format_text(alert)
    assert len(smtp_sink.messages) == 1
    email = smtp_sink.messages[0]
    assert email["Subject"] == "[DOWN] acme/beeline: 3 runs in a row failed"
    assert email["To"] == "oncall@agency.test"
    assert email.get_content().strip() == format_text(alert)
    rows = recorded(engine)
    assert [(r.incident_id, r.kind, r.channel, r.ok, r.error) for r in rows] == [
        (7, "incident", "slack", True, None),
        (7, "incident", "email", True, None),
    ]


def test_failing_webhook_is_recorded_redacted_and_email_still_goes_out(engine, slack, smtp) -> None:
    (slack_sink, webhook), (smtp_sink, port) = slack, smtp
    slack_sink.fail = True
    results = send_alert(engine, message(), 1, channels=[SlackChannel(webhook), email_channel(port)])

    assert [(r.channel, r.ok) for r in results] == [("slack", False), ("email", True)]
    assert len(slack_sink.posts) == 2  # one retry on a 5xx, then given up
    assert len(smtp_sink.messages) == 1
    slack_row = recorded(engine)[0]
    assert (slack_row.channel, slack_row.ok) == ("slack", False)
    assert "HTTP 500" in slack_row.error
    assert "s3cr3tW3bh00kT0k3n" not in slack_row.error and SLACK_TOKEN not in slack_row.error
    assert "***" in slack_row.error


def test_smtp_down_is_recorded_and_slack_still_goes_out(engine, slack) -> None:
    slack_sink, webhook = slack
    dead = email_channel(free_port(), timeout=2)  # nothing listens there
    results = send_alert(engine, message(), 2, channels=[dead, SlackChannel(webhook)])

    assert [(r.channel, r.ok) for r in results] == [("email", False), ("slack", True)]
    assert len(slack_sink.posts) == 1
    email_row = recorded(engine)[0]
    assert (email_row.channel, email_row.ok) == ("email", False)
    assert "refused" in email_row.error.lower()


def test_smtp_login_failure_never_records_the_password(engine, smtp) -> None:
    smtp_sink, port = smtp
    smtp_sink.password_ok = "the-right-one"
    channel = email_channel(port, user="alerts", password=SMTP_PASSWORD)
    [result] = send_alert(engine, message(), 3, channels=[channel])

    assert not result.ok and smtp_sink.messages == []
    row = recorded(engine)[0]
    assert "535" in row.error and "***" in row.error  # the server echoed the password back
    assert SMTP_PASSWORD not in row.error


def test_smtp_login_succeeds_with_the_right_password(engine, smtp) -> None:
    smtp_sink, port = smtp
    smtp_sink.password_ok = SMTP_PASSWORD
    [result] = send_alert(
        engine, message(), 4, channels=[email_channel(port, user="a", password=SMTP_PASSWORD)]
    )
    assert result.ok and len(smtp_sink.messages) == 1


def test_no_channel_configured_sends_and_records_nothing(engine, monkeypatch) -> None:
    for name in ("INTEGRATION_ALERT_SLACK_WEBHOOK_URL", "INTEGRATION_ALERT_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert send_alert(engine, message(), 5) == []
    assert recorded(engine) == []


# ---------------------------------------------------------------- from incident changes


@dataclass(frozen=True)
class Change:
    """Shaped like incidents.IncidentChange."""

    kind: str
    incident_id: int
    notify: bool
    connection_id: str = "acme/beeline"
    tenant_id: str = "acme"
    connector: str = "beeline"
    severity: str = "down"
    reason: str = "3 runs in a row failed"
    last_error: str | None = "503 Service Unavailable"
    since: datetime = SINCE
    dagster_run_id: str | None = "run-9"


def open_incident(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        return conn.execute(
            incidents.insert().values(
                connection_id="acme/beeline",
                status="open",
                severity="down",
                reason="3 runs in a row failed",
                opened_at=SINCE,
                updated_at=SINCE,
            )
        ).inserted_primary_key[0]


def test_notify_changes_sends_only_what_asks_for_it_and_marks_it_alerted(engine, slack, monkeypatch) -> None:
    slack_sink, webhook = slack
    monkeypatch.setenv("INTEGRATION_ALERT_SLACK_WEBHOOK_URL", webhook)
    monkeypatch.delenv("INTEGRATION_ALERT_SMTP_HOST", raising=False)
    first, second = open_incident(engine), open_incident(engine)
    changes = [Change("opened", first, notify=True), Change("opened", second, notify=False)]

    assert notify_changes(engine, changes, dagster_ui_url="http://127.0.0.1:3000/") == 1
    assert len(slack_sink.posts) == 1
    text = slack_sink.posts[0]["text"]
    assert text.startswith("[DOWN] acme/beeline (Beeline") and text.endswith(
        "Run: http://127.0.0.1:3000/runs/run-9"
    )
    with engine.connect() as conn:
        alerted = dict(conn.execute(sa.select(incidents.c.id, incidents.c.alerted_at)).all())
    assert alerted[first] is not None and alerted[second] is None

    assert notify_changes(engine, [Change("resolved", first, notify=True)]) == 1
    assert slack_sink.posts[1]["text"].startswith("[RECOVERED] acme/beeline")
    with engine.connect() as conn:
        row = conn.execute(sa.select(incidents.c.recovery_alerted_at).where(incidents.c.id == first)).one()
    assert row.recovery_alerted_at is not None
    assert [(r.incident_id, r.kind) for r in recorded(engine)] == [(first, "incident"), (first, "recovery")]


def test_notify_changes_leaves_an_undelivered_alert_unmarked(engine, slack, monkeypatch) -> None:
    slack_sink, webhook = slack
    slack_sink.fail = True
    monkeypatch.setenv("INTEGRATION_ALERT_SLACK_WEBHOOK_URL", webhook)
    monkeypatch.delenv("INTEGRATION_ALERT_SMTP_HOST", raising=False)
    incident = open_incident(engine)

    assert notify_changes(engine, [Change("opened", incident, notify=True)]) == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.select(incidents.c.alerted_at).where(incidents.c.id == incident)) is None
    assert [r.ok for r in recorded(engine)] == [False]
