"""The status page over HTTP: tenant isolation, tokens, the admin overview and the JSON variant.

The data is synthetic `tenants`/`connections`/`sync_runs`/`sync_state`/`incidents` rows; the real
`derive_health` computes each connection's health from them.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from integration_pipelines.canonical.tables import connections, incidents, sync_runs, sync_state, tenants
from integration_pipelines.health.status_page import build_status_router, plain_reasons
from integration_pipelines.health.tokens import ENV_ADMIN_TOKEN, issue_token
from integration_pipelines.webhooks.receiver import create_app

ADMIN_TOKEN = "admin-0f9c2d7e4b1a"
TENANT_A, TENANT_B = "acme", "globex"
A_CONNECTIONS = {
    "acme/beeline": "Beeline Supplier and Talent API",
    "acme/daxtra": "Daxtra CVX parser",
    "acme/sap_fieldglass": "SAP Fieldglass (supplier)",
}
B_CONNECTIONS = {
    "globex/textkernel": "Textkernel Tx Platform",
    "globex/textkernel-eu": "Textkernel Tx Platform",
}
SECRET_ERROR = (
    'Traceback (most recent call last):\n  File "/srv/app/integration_pipelines/resources/partner.py", '
    "line 88, in request\nRuntimeError: password=hunter2 rejected"
)


def _runs(connection_id: str, now: datetime, pattern: list[tuple[float, str]]) -> list[dict]:
    """Runs `hours_ago` before `now`, each 2 minutes long, with the given status."""
    rows = []
    for hours_ago, status in pattern:
        started = now - timedelta(hours=hours_ago)
        rows.append(
            {
                "connection_id": connection_id,
                "stream": "jobs",
                "dagster_run_id": f"run-{connection_id}-{hours_ago}",
                "started_at": started,
                "finished_at": started + timedelta(minutes=2),
                "status": status,
                "records": 10,
                "error": SECRET_ERROR if status == "failed" else None,
            }
        )
    return rows


def seed_status_data(engine: sa.Engine, now: datetime | None = None) -> None:
    """Two tenants. acme: beeline healthy, daxtra degraded (incident), sap_fieldglass down
    (incident, failing for two days). globex: textkernel healthy, textkernel-eu paused."""
    now = now or datetime.now(UTC)
    every_6h = [(h + 0.5, "succeeded") for h in range(0, 7 * 24 - 6, 6)]
    daxtra = [(0.2, "failed"), (0.4, "succeeded"), (0.6, "failed")]
    daxtra += [(h + 1.5, "failed" if h in (30, 78) else "succeeded") for h in range(0, 7 * 24 - 6, 6)]
    sap = [(h + 0.3, "failed") for h in range(0, 48, 4)]
    sap += [(h + 0.3, "succeeded") for h in range(48, 7 * 24 - 24, 8)]
    with engine.begin() as conn:
        conn.execute(
            tenants.insert(),
            [
                {"id": TENANT_A, "name": "Acme Staffing", "created_at": now},
                {"id": TENANT_B, "name": "Globex Corporation", "created_at": now},
            ],
        )
        conn.execute(
            connections.insert(),
            [
                {
                    "id": cid,
                    "tenant_id": cid.split("/")[0],
                    "connector": cid.split("/")[1].split("-")[0],
                    "config": {},
                    "status": "paused" if cid.endswith("-eu") else "active",
                    "created_at": now,
                }
                for cid in [*A_CONNECTIONS, *B_CONNECTIONS]
            ],
        )
        runs = _runs("acme/beeline", now, every_6h)
        runs += _runs("acme/daxtra", now, daxtra)
        runs += _runs("acme/sap_fieldglass", now, sap)
        runs += _runs("globex/textkernel", now, every_6h)
        runs += _runs("globex/textkernel-eu", now, [(h + 30, "succeeded") for h in range(0, 96, 12)])
        conn.execute(sync_runs.insert(), runs)
        last_ok = {
            "acme/beeline": now - timedelta(minutes=30),
            "acme/daxtra": now - timedelta(minutes=24),
            "acme/sap_fieldglass": now - timedelta(hours=48.3),
            "globex/textkernel": now - timedelta(minutes=30),
            "globex/textkernel-eu": now - timedelta(hours=30),
        }
        conn.execute(
            sync_state.insert(),
            [
                {"connection_id": cid, "stream": "jobs", "last_success_at": ok, "updated_at": now}
                for cid, ok in last_ok.items()
            ],
        )
        conn.execute(
            incidents.insert(),
            [
                {
                    "connection_id": "acme/sap_fieldglass",
                    "status": "open",
                    "severity": "down",
                    "reason": "12 runs in a row failed: partner returned 503 at "
                    "https://api.fieldglass.example/v1/jobs?page=2; jobs last synced 48 h ago (SLA 2 h)",
                    "last_error": SECRET_ERROR,
                    "dagster_run_id": "dagster-run-secret-1",
                    "opened_at": now - timedelta(hours=47),
                    "updated_at": now,
                },
                {
                    "connection_id": "acme/daxtra",
                    "status": "open",
                    "severity": "degraded",
                    "reason": "2 of 3 runs failed in the last hour (67%, threshold 20%)",
                    "last_error": SECRET_ERROR,
                    "dagster_run_id": "dagster-run-secret-2",
                    "opened_at": now - timedelta(minutes=40),
                    "updated_at": now,
                },
            ],
        )


def status_app(engine: sa.Engine) -> FastAPI:
    """A bare app with the status router, the way the receiver app mounts it."""
    app = FastAPI()
    app.include_router(build_status_router(engine_provider=lambda: engine))
    return app


@pytest.fixture
def seeded(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str, str]]:
    monkeypatch.setenv(ENV_ADMIN_TOKEN, ADMIN_TOKEN)
    seed_status_data(engine)
    token_a, token_b = issue_token(engine, TENANT_A), issue_token(engine, TENANT_B)
    with TestClient(status_app(engine)) as client:
        yield client, token_a, token_b


def _assert_private(response, *tokens: str) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert "noindex" in response.headers["x-robots-tag"]
    for token in tokens:
        assert token not in response.text
    for secret in ("hunter2", "Traceback", "partner.py", "dagster-run-secret", "/srv/app"):
        assert secret not in response.text


def _assert_no_data(response) -> None:
    for name in [*A_CONNECTIONS, *B_CONNECTIONS, *A_CONNECTIONS.values(), *B_CONNECTIONS.values()]:
        assert name not in response.text
    assert "Acme" not in response.text and "Globex" not in response.text


def test_tenant_sees_its_own_connections_only(seeded) -> None:
    client, token_a, token_b = seeded
    page = client.get(f"/status/{TENANT_A}", params={"token": token_a})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    _assert_private(page, token_a, token_b)
    for cid, title in A_CONNECTIONS.items():
        assert cid in page.text and title in page.text
    for cid, title in B_CONNECTIONS.items():
        assert cid not in page.text and title not in page.text
    assert "Globex" not in page.text
    assert "Acme Staffing" in page.text
    assert "Outage" in page.text  # sap_fieldglass is down
    assert page.text.count('class="card"') == 3
    assert '<meta name="viewport"' in page.text
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    # incident: since + plain reason, URL cut to its host; never the raw error or run id
    assert "12 runs in a row failed: partner returned 503 at api.fieldglass.example" in page.text
    assert "page=2" not in page.text
    assert "<time datetime=" in page.text and "UTC" in page.text
    assert page.text.count('class="block b-') >= 3 * 7

    page_b = client.get(f"/status/{TENANT_B}", headers={"Authorization": f"Bearer {token_b}"})
    assert page_b.status_code == 200
    _assert_private(page_b, token_a, token_b)
    for cid, title in B_CONNECTIONS.items():
        assert cid in page_b.text and title in page_b.text
    for cid, title in A_CONNECTIONS.items():
        assert cid not in page_b.text and title not in page_b.text
    assert "All integrations operational" in page_b.text  # healthy + paused
    assert "Paused" in page_b.text


def test_json_variant_matches_the_page(seeded) -> None:
    client, token_a, _ = seeded
    response = client.get(f"/status/{TENANT_A}.json", headers={"Authorization": f"Bearer {token_a}"})
    assert response.status_code == 200
    _assert_private(response, token_a)
    body = response.json()
    assert body["tenant"] == TENANT_A
    assert body["overall"] == {"status": "outage", "text": "Outage"}
    by_id = {c["connection_id"]: c for c in body["connections"]}
    assert set(by_id) == set(A_CONNECTIONS)
    assert {c["partner"] for c in body["connections"]} == set(A_CONNECTIONS.values())
    assert by_id["acme/beeline"]["status"] == "healthy"
    assert by_id["acme/beeline"]["incident"] is None
    assert by_id["acme/daxtra"]["status"] == "degraded"
    assert by_id["acme/daxtra"]["incident"]["severity"] == "degraded"
    sap = by_id["acme/sap_fieldglass"]
    assert sap["status"] == "down"
    assert sap["incident"]["since"].endswith("Z")
    assert sap["incident"]["reasons"][0].startswith("12 runs in a row failed")
    assert [d["day"] for d in sap["history"]] == sorted(d["day"] for d in sap["history"])
    assert len(sap["history"]) == 7
    assert sap["history"][-1]["status"] == "down"
    assert 0 < sap["error_rate_24h"] <= 1
    for key in ("last_error", "dagster_run_id", "streams", "id"):
        assert key not in sap and key not in sap["incident"]


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_missing_token_is_401_without_data(seeded, suffix: str) -> None:
    client, _, _ = seeded
    for url in (f"/status/{TENANT_A}{suffix}", f"/status/nobody{suffix}"):
        response = client.get(url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        _assert_private(response)
        _assert_no_data(response)
    assert client.get(f"/status/{TENANT_A}{suffix}", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get(f"/status/{TENANT_A}{suffix}", params={"token": ""}).status_code == 401


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_wrong_token_is_404_whether_or_not_the_tenant_exists(seeded, suffix: str) -> None:
    client, token_a, _ = seeded
    wrong = "st_" + "x" * 43
    answers = []
    for url, token in (
        (f"/status/{TENANT_A}{suffix}", wrong),
        (f"/status/{TENANT_A}{suffix}", "garbage"),
        (f"/status/{TENANT_A}{suffix}", token_a + "x"),
        (f"/status/nobody{suffix}", wrong),
        (f"/status/nobody{suffix}", token_a),  # a valid token on a tenant that does not exist
    ):
        response = client.get(url, params={"token": token})
        assert response.status_code == 404
        _assert_private(response, token)
        _assert_no_data(response)
        answers.append(response.content)
    assert len(set(answers)) == 1  # the same body: nothing tells whether the tenant exists


def test_another_tenants_token_is_404_on_every_status_endpoint(seeded) -> None:
    client, token_a, token_b = seeded
    for url in (f"/status/{TENANT_A}", f"/status/{TENANT_A}.json"):
        for kwargs in ({"params": {"token": token_b}}, {"headers": {"Authorization": f"Bearer {token_b}"}}):
            response = client.get(url, **kwargs)
            assert response.status_code == 404, (url, kwargs)
            _assert_private(response, token_a, token_b)
            _assert_no_data(response)
    # and a tenant token never opens the internal overview
    for token in (token_a, token_b):
        response = client.get("/status", params={"token": token})
        assert response.status_code == 401
        _assert_no_data(response)


def test_reissued_token_revokes_the_old_one(seeded, engine: sa.Engine) -> None:
    client, token_a, _ = seeded
    new = issue_token(engine, TENANT_A)
    assert client.get(f"/status/{TENANT_A}", params={"token": token_a}).status_code == 404
    assert client.get(f"/status/{TENANT_A}", params={"token": new}).status_code == 200


def test_admin_overview_needs_the_admin_token(seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    client, token_a, token_b = seeded
    for kwargs in ({}, {"params": {"token": "nope"}}, {"headers": {"Authorization": "Bearer nope"}}):
        response = client.get("/status", **kwargs)
        assert response.status_code == 401
        _assert_private(response)
        _assert_no_data(response)

    response = client.get("/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200
    _assert_private(response, ADMIN_TOKEN, token_a, token_b)
    for cid in [*A_CONNECTIONS, *B_CONNECTIONS]:
        assert cid in response.text
    assert "Acme Staffing" in response.text and "Globex Corporation" in response.text
    assert response.text.count("<tr>") == 1 + len(A_CONNECTIONS) + len(B_CONNECTIONS)
    assert "12 runs in a row failed" in response.text
    assert client.get("/status", params={"token": ADMIN_TOKEN}).status_code == 200

    monkeypatch.delenv(ENV_ADMIN_TOKEN)
    assert client.get("/status", params={"token": ADMIN_TOKEN}).status_code == 401


def test_tenant_without_connections(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(tenants.insert().values(id="newco", name="NewCo", created_at=datetime.now(UTC)))
    token = issue_token(engine, "newco")
    with TestClient(status_app(engine)) as client:
        page = client.get("/status/newco", params={"token": token})
        assert page.status_code == 200
        assert "No integrations are connected" in page.text
        assert client.get("/status/newco.json", params={"token": token}).json()["connections"] == []


def test_plain_reasons_drop_internals() -> None:
    assert plain_reasons(SECRET_ERROR) == ["A sync did not complete"]
    assert plain_reasons("3 runs in a row failed: HTTP 500 at https://h.example/a/b?key=1\nmore") == [
        "3 runs in a row failed: HTTP 500 at h.example"
    ]
    assert plain_reasons(["jobs stale; 2 outbound changes dead-lettered", "jobs stale"]) == [
        "jobs stale",
        "2 outbound changes dead-lettered",
    ]
    assert plain_reasons("x" * 1000)[0].endswith("…")
    assert plain_reasons(None) == []


def test_tokens_never_reach_the_logs(seeded, caplog: pytest.LogCaptureFixture) -> None:
    client, token_a, token_b = seeded
    caplog.set_level(logging.DEBUG)
    client.get(f"/status/{TENANT_A}", params={"token": token_a})
    client.get(f"/status/{TENANT_A}.json", params={"token": token_b})
    client.get("/status", headers={"Authorization": f"Bearer {token_a}"})
    # the test client's own request log (httpx) is the caller's side, not the server's
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    for token in (token_a, token_b):
        assert not any(token in message for message in server_side)


def test_mounted_on_the_receiver_app(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The way the lead mounts the router: the receiver's own routes and the status page side by side."""
    monkeypatch.setenv(ENV_ADMIN_TOKEN, ADMIN_TOKEN)
    seed_status_data(engine)
    token = issue_token(engine, TENANT_A)
    app = create_app(database_url=engine.url.render_as_string(hide_password=False))
    app.include_router(build_status_router(engine_provider=lambda: app.state.receiver.engine))
    with TestClient(app) as client:
        assert client.get("/health").json()["status"] == "ok"
        page = client.get(f"/status/{TENANT_A}", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200 and "acme/beeline" in page.text
        assert client.get(f"/status/{TENANT_A}.json", params={"token": token}).json()["tenant"] == TENANT_A
        assert client.get(f"/status/{TENANT_B}", params={"token": token}).status_code == 404
        assert client.get("/status").status_code == 401
        assert client.get("/status", params={"token": ADMIN_TOKEN}).status_code == 200
        assert "/status" not in str(client.get("/openapi.json").json()["paths"])
