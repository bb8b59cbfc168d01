"""The receiver over real HTTP (uvicorn on 127.0.0.1): every scheme, every refusal, handshakes."""

import json
import logging
import time

import httpx
import pytest
import sqlalchemy as sa

from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Connector
from integration_pipelines.db.engine import create_db_engine
from integration_pipelines.webhooks.inbox import pending_events
from integration_pipelines.webhooks.receiver import create_app, parse_timestamp
from integration_pipelines.webhooks.signatures import sign
from tests.webhooks.conftest import (
    HMAC_SCHEMES,
    SCHEMES,
    TENANT,
    LiveServer,
    WebhookEnv,
    event_body,
    new_id,
    post_event,
    signed,
)

ALL = list(SCHEMES)
SIGNED = [n for n in ALL if n != "hook_none"]


# ---------------------------------------------------------------- every scheme


@pytest.mark.parametrize("name", ALL)
def test_valid_event_is_accepted_once_and_replays_are_duplicates(webhook_env: WebhookEnv, name: str) -> None:
    event_id = new_id()
    body, form = event_body(name, event_id)
    first = post_event(webhook_env, name, body, form)
    assert (first.status_code, first.json()) == (202, {"status": "accepted"})
    assert webhook_env.rows(name, event_id) == 1
    for _ in range(2):
        again = post_event(webhook_env, name, body, form)
        assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert webhook_env.rows(name, event_id) == 1


@pytest.mark.parametrize("name", HMAC_SCHEMES)
def test_tampered_body_is_refused(webhook_env: WebhookEnv, name: str) -> None:
    event_id = new_id()
    body, form = event_body(name, event_id)
    path, signature = signed(webhook_env, name, body, form)
    tampered_body, _ = event_body(name, event_id, event_type="job.updated")
    before = webhook_env.total_rows()
    content_type = "application/x-www-form-urlencoded" if name == "hook_twilio" else "application/json"
    response = webhook_env.client.post(
        path, content=tampered_body, headers={**signature.headers, "Content-Type": content_type}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "signature mismatch"}
    assert webhook_env.total_rows() == before


@pytest.mark.parametrize("name", SIGNED)
def test_wrong_secret_is_refused(webhook_env: WebhookEnv, name: str) -> None:
    event_id = new_id()
    body, form = event_body(name, event_id)
    wrong = {key: value + "-wrong" for key, value in webhook_env.secrets(name).items()}
    response = post_event(webhook_env, name, body, form, secrets=wrong)
    assert response.status_code == 401
    assert webhook_env.rows(name, event_id) == 0


@pytest.mark.parametrize("name", SIGNED)
def test_unsigned_request_is_refused(webhook_env: WebhookEnv, name: str) -> None:
    event_id = new_id()
    body, _ = event_body(name, event_id)
    response = webhook_env.client.post(webhook_env.path(name), content=body)
    assert response.status_code == 401
    assert webhook_env.rows(name, event_id) == 0


@pytest.mark.parametrize("age", [3600, -3600])
def test_stale_timestamp_is_refused(webhook_env: WebhookEnv, age: int) -> None:
    event_id = new_id()
    body, _ = event_body("hook_timestamped", event_id)
    response = post_event(webhook_env, "hook_timestamped", body, timestamp=time.time() - age)
    assert (response.status_code, response.json()) == (401, {"error": "stale timestamp"})
    assert webhook_env.rows("hook_timestamped", event_id) == 0


def test_url_signature_covers_the_query_string(webhook_env: WebhookEnv) -> None:
    event_id = new_id()
    body, form = event_body("hook_twilio", event_id)
    path, signature = signed(webhook_env, "hook_twilio", body, form, query="region=eu")
    headers = {**signature.headers, "Content-Type": "application/x-www-form-urlencoded"}
    assert webhook_env.client.post(path.replace("eu", "us"), content=body, headers=headers).status_code == 401
    assert webhook_env.client.post(path, content=body, headers=headers).status_code == 202


def test_public_base_url_is_what_url_signatures_cover(webhook_env: WebhookEnv) -> None:
    app = create_app(
        database_url=webhook_env.database_url,
        vault=webhook_env.vault,
        connectors=webhook_env.connectors,
        public_base_url="https://hooks.example.com/",
    )
    event_id = new_id()
    body, form = event_body("hook_twilio", event_id)
    spec = webhook_env.connectors["hook_twilio"].spec.webhooks.signature
    path = webhook_env.path("hook_twilio")
    signature = sign(
        spec, secrets=webhook_env.secrets("hook_twilio"), url=f"https://hooks.example.com{path}", form=form
    )
    with LiveServer(app) as server:
        response = httpx.post(
            server.url + path,
            content=body,
            headers={**signature.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 202


# ---------------------------------------------------------------- refusals


def test_unknown_connection(webhook_env: WebhookEnv) -> None:
    before = webhook_env.total_rows()
    for path in ["/webhooks/acme/nope", "/webhooks/nobody/hook_hmac", "/webhooks/", "/webhooks/a%00b/c"]:
        response = webhook_env.client.post(path, content=b"{}")
        assert (response.status_code, response.json()) == (404, {"error": "unknown connection"}), path
    assert webhook_env.total_rows() == before


def test_connection_whose_connector_has_no_webhooks(webhook_env: WebhookEnv) -> None:
    plain = Connector.model_validate(
        {
            "name": "no_hooks",
            "title": "No hooks",
            "category": "other",
            "base_url": "https://x.example",
            "auth": {"kind": "none"},
            "streams": {},
        }
    )
    webhook_env.store.add(TENANT, plain)
    webhook_env.connectors["no_hooks"] = LoadedConnector(
        spec=plain, path=webhook_env.connectors["hook_none"].path
    )
    try:
        response = webhook_env.client.post("/webhooks/acme/no_hooks", content=b"{}")
        assert (response.status_code, response.json()) == (404, {"error": "unknown connection"})
    finally:
        del webhook_env.connectors["no_hooks"]


def test_body_too_large_by_content_length(webhook_env: WebhookEnv) -> None:
    event_id = new_id()
    body, _ = event_body("hook_hmac", event_id, padding="x" * 5000)  # max_body_bytes is 4096
    response = post_event(webhook_env, "hook_hmac", body)
    assert response.status_code == 413
    assert webhook_env.rows("hook_hmac", event_id) == 0


def test_body_too_large_while_streaming(webhook_env: WebhookEnv) -> None:
    """Chunked upload (no Content-Length): refused once the count passes the limit."""
    event_id = new_id()
    body, _ = event_body("hook_hmac", event_id, padding="x" * 5000)
    path, signature = signed(webhook_env, "hook_hmac", body)

    def chunks():
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    response = webhook_env.client.post(path, content=chunks(), headers=signature.headers)
    assert response.status_code == 413
    assert webhook_env.rows("hook_hmac", event_id) == 0


def test_small_chunked_body_is_fine(webhook_env: WebhookEnv) -> None:
    event_id = new_id()
    body, _ = event_body("hook_hmac", event_id)
    path, signature = signed(webhook_env, "hook_hmac", body)
    response = webhook_env.client.post(path, content=iter([body[:10], body[10:]]), headers=signature.headers)
    assert response.status_code == 202


@pytest.mark.parametrize(
    "name, body, error",
    [
        ("hook_none", b'{"id": "x", "type": ', "malformed json body"),
        ("hook_none", b"\xff\xfe\x00garbage", "malformed json body"),
        ("hook_none", b"", "malformed json body"),
        ("hook_none", b'["a list"]', "event is not a json object"),
        ("hook_none", b'{"id": "nan-1", "type": "job.created", "v": NaN}', "malformed json body"),
        ("hook_none", b'{"type": "job.created"}', "missing event id"),
        ("hook_none", b'{"id": "", "type": "job.created"}', "missing event id"),
        ("hook_none", b'{"id": "e-1"}', "missing event type"),
        ("hook_none", b'{"id": {"nested": 1}, "type": "job.created"}', "event id is not a single value"),
        ("hook_none", b'{"id": true, "type": "job.created"}', "event id is not a single value"),
        (
            "hook_none",
            json.dumps({"id": "x" * 201, "type": "t"}).encode(),
            "event id is longer than 200 characters",
        ),
        ("hook_none", b'{"id": "a\\u0000b", "type": "t"}', "event id contains control characters"),
        ("hook_none", b'{"id": "\\ud800", "type": "t"}', "event id is not valid text"),
        (
            "hook_none",
            b'{"id": "d", "type": "t", "x": ' + b"[" * 100 + b"]" * 100 + b"}",
            "event nested too deeply",
        ),
        ("hook_none", b"[" * 100_000, "malformed json body"),
    ],
)
def test_malformed_json_events(webhook_env: WebhookEnv, name: str, body: bytes, error: str) -> None:
    before = webhook_env.total_rows()
    response = webhook_env.client.post(webhook_env.path(name), content=body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert webhook_env.total_rows() == before


@pytest.mark.parametrize(
    "body, error",
    [
        (b"<Event><Id>1</Id>", "malformed xml body"),
        (b"not xml at all", "malformed xml body"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Event><Id>&a;</Id><Type>t</Type></Event>', "malformed xml body"),
        (b"<Event><Type>job.created</Type></Event>", "missing event id"),
    ],
)
def test_malformed_xml_events(webhook_env: WebhookEnv, body: bytes, error: str) -> None:
    before = webhook_env.total_rows()
    response = post_event(webhook_env, "hook_basic", body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert webhook_env.total_rows() == before


@pytest.mark.parametrize("body", [b"MessageSid=1&&&=&", b"\xff=\xfe", b"no-equals-sign"])
def test_malformed_form_events(webhook_env: WebhookEnv, body: bytes) -> None:
    before = webhook_env.total_rows()
    path, signature = signed(webhook_env, "hook_twilio", body)
    response = webhook_env.client.post(path, content=body, headers=signature.headers)
    assert (response.status_code, response.json()) == (400, {"error": "malformed form body"})
    assert webhook_env.total_rows() == before


def test_form_event_missing_id(webhook_env: WebhookEnv) -> None:
    form = {"SmsStatus": "delivered"}
    body = b"SmsStatus=delivered"
    response = post_event(webhook_env, "hook_twilio", body, form)
    assert (response.status_code, response.json()) == (400, {"error": "missing event id"})


# ---------------------------------------------------------------- what is stored


def test_unknown_event_type_is_accepted_and_ignored(webhook_env: WebhookEnv) -> None:
    event_id = new_id()
    body, _ = event_body("hook_hmac", event_id, event_type="brand.new.type")
    response = post_event(webhook_env, "hook_hmac", body)
    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    with webhook_env.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, event_type FROM inbox WHERE event_id = :e"), {"e": event_id}
        ).one()
    assert tuple(row) == ("ignored", "brand.new.type")


def test_stored_row_has_the_event(webhook_env: WebhookEnv) -> None:
    event_id = new_id()
    body, _ = event_body("hook_basic", event_id)  # XML
    assert post_event(webhook_env, "hook_basic", body).status_code == 202
    with webhook_env.engine.connect() as conn:
        (event,) = [
            e for e in pending_events(conn, webhook_env.connection_id("hook_basic")) if e.event_id == event_id
        ]
    assert event.event_type == "job.created"
    assert event.payload == {
        "Event": {"Id": event_id, "Type": "job.created", "OccurredAt": "2026-01-02T03:04:05Z"}
    }
    assert event.occurred_at.isoformat() == "2026-01-02T03:04:05+00:00"


def test_numeric_ids_and_epoch_timestamps(webhook_env: WebhookEnv) -> None:
    event_id = int(time.time() * 1e6)
    body = json.dumps({"id": event_id, "type": "job.created", "created_at": 1767225600}).encode()
    assert webhook_env.client.post(webhook_env.path("hook_none"), content=body).status_code == 202
    assert webhook_env.rows("hook_none", str(event_id)) == 1


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T04:04:05+01:00", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02 03:04:05", "2026-01-02T03:04:05+00:00"),
        (1767225600, "2026-01-01T00:00:00+00:00"),
        (1767225600000, "2026-01-01T00:00:00+00:00"),
        ("1767225600", "2026-01-01T00:00:00+00:00"),
        ("soon", None),
        (1e300, None),
        (None, None),
        ({"nested": 1}, None),
    ],
)
def test_parse_timestamp(value, expected) -> None:
    parsed = parse_timestamp(value)
    assert (parsed.isoformat() if parsed else None) == expected


# ---------------------------------------------------------------- handshakes


def test_get_handshake_echoes_text_after_the_token(webhook_env: WebhookEnv) -> None:
    path = webhook_env.path("hook_token")
    token = {"X-Verify-Token": "shared-token-abc"}
    response = webhook_env.client.get(path, params={"hub.challenge": "c-123"}, headers=token)
    assert (response.status_code, response.text) == (200, "c-123")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    refused = webhook_env.client.get(
        path, params={"hub.challenge": "c-123"}, headers={"X-Verify-Token": "no"}
    )
    assert refused.status_code == 401
    assert webhook_env.client.get(path, headers=token).status_code == 400  # no challenge


def test_get_handshake_json_with_query_token(webhook_env: WebhookEnv) -> None:
    path = webhook_env.path("hook_token_query")
    ok = webhook_env.client.get(path, params={"crc_token": "xyz", "token": "query-token-xyz"})
    assert (ok.status_code, ok.json()) == (200, {"response": "xyz"})
    assert webhook_env.client.get(path, params={"crc_token": "xyz"}).status_code == 401


def test_post_handshake_in_the_body_is_signed_and_stores_nothing(webhook_env: WebhookEnv) -> None:
    before = webhook_env.total_rows()
    body = json.dumps(
        {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    ).encode()
    response = post_event(webhook_env, "hook_timestamped", body)
    assert (response.status_code, response.json()) == (
        200,
        {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"},
    )
    unsigned = webhook_env.client.post(webhook_env.path("hook_timestamped"), content=body)
    assert unsigned.status_code == 401
    assert webhook_env.total_rows() == before


def test_post_handshake_challenge_that_cannot_be_echoed(webhook_env: WebhookEnv) -> None:
    body = b'{"type": "url_verification", "challenge": "\\ud800"}'
    response = post_event(webhook_env, "hook_timestamped", body)
    assert (response.status_code, response.json()) == (400, {"error": "missing event id"})


def test_get_without_a_get_handshake_is_not_allowed(webhook_env: WebhookEnv) -> None:
    response = webhook_env.client.get(webhook_env.path("hook_hmac"), params={"challenge": "x"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert webhook_env.client.get("/webhooks/acme/unknown").status_code == 404


# ---------------------------------------------------------------- health, outage, logs, cache, OpenAPI


def test_health(webhook_env: WebhookEnv) -> None:
    response = webhook_env.client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})


def test_database_outage_is_503(webhook_env: WebhookEnv, tmp_path) -> None:
    app = create_app(
        database_url=f"sqlite:///{tmp_path}/missing/dir/ats.db",
        vault=webhook_env.vault,
        connectors=webhook_env.connectors,
    )
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        health = client.get("/health")
        assert (health.status_code, health.json()) == (503, {"status": "error", "database": "unavailable"})
        body, _ = event_body("hook_none", new_id())
        response = client.post(webhook_env.path("hook_none"), content=body)
        assert (response.status_code, response.json()) == (503, {"error": "database unavailable"})
        assert response.headers["retry-after"] == "5"


def test_insert_failure_after_lookup_is_503(webhook_env: WebhookEnv, tmp_path) -> None:
    """The connection is cached, then the database goes away: the event is refused with 503."""
    app = create_app(
        database_url=webhook_env.database_url, vault=webhook_env.vault, connectors=webhook_env.connectors
    )
    receiver = app.state.receiver
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        body, _ = event_body("hook_none", new_id())
        assert client.post(webhook_env.path("hook_none"), content=body).status_code == 202
        receiver.engine = create_db_engine(f"sqlite:///{tmp_path}/gone/ats.db")
        body, _ = event_body("hook_none", new_id())
        assert client.post(webhook_env.path("hook_none"), content=body).status_code == 503


def test_rejections_are_logged_without_secrets_or_bodies(webhook_env: WebhookEnv, caplog) -> None:
    caplog.set_level(logging.INFO, logger="integration_pipelines.webhooks")
    body, _ = event_body("hook_token", "secret-looking-event-id")
    webhook_env.client.post(webhook_env.path("hook_token"), content=body, headers={"X-Verify-Token": "guess"})
    webhook_env.client.post("/webhooks/evil%09tab", content=b"{}")
    assert webhook_env.client.post("/webhooks/evil%0Aline", content=b"{}").json() == {"error": "not found"}
    lines = [r.getMessage() for r in caplog.records if r.name == "integration_pipelines.webhooks"]
    assert "webhook rejected connection='acme/hook_token' status=401 reason=token mismatch" in lines
    assert "webhook rejected connection='evil\\ttab' status=404 reason=unknown connection" in lines
    text = "\n".join(lines)
    for secrets in (webhook_env.secrets(n) for n in SCHEMES):
        for secret in secrets.values():
            assert secret not in text
    assert "secret-looking-event-id" not in text and "guess" not in text


def test_connections_and_secrets_are_cached(webhook_env: WebhookEnv, monkeypatch) -> None:
    app = create_app(
        database_url=webhook_env.database_url, vault=webhook_env.vault, connectors=webhook_env.connectors
    )
    store = app.state.receiver.store
    calls = {"get": 0, "credentials": 0}
    for method in calls:
        original = getattr(store, method)

        def counting(*args, _original=original, _method=method):
            calls[_method] += 1
            return _original(*args)

        monkeypatch.setattr(store, method, counting)
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        env = WebhookEnv(
            webhook_env.engine,
            store,
            webhook_env.database_url,
            webhook_env.vault,
            webhook_env.connectors,
            server,
            client,
        )
        for _ in range(20):
            body, _ = event_body("hook_hmac", new_id())
            assert post_event(env, "hook_hmac", body).status_code == 202
    assert calls == {"get": 1, "credentials": 1}


def test_openapi_describes_the_endpoints(webhook_env: WebhookEnv) -> None:
    spec = webhook_env.client.get("/openapi.json").json()
    post = spec["paths"]["/webhooks/{connection_id}"]["post"]
    assert set(post["responses"]) == {"200", "202", "400", "401", "404", "405", "413", "503"}
    assert set(post["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "application/xml",
    }
    assert "get" in spec["paths"]["/webhooks/{connection_id}"]
    assert set(spec["paths"]["/health"]["get"]["responses"]) >= {"200", "503"}
