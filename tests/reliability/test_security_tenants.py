"""Tenant isolation: asked about tenant A with tenant B's token or ids, nothing of A comes back.

Two tenants, A and B, each with connections (synced against the sandbox), sync runs, inbox
events, outbox items (dead, pending, delivered) and a status page token. Then:

* every route of the ASGI app (webhook receiver and status pages) is enumerated from
  `app.routes`; each must be classified here, or the test fails. Tenant-scoped routes are
  called for A with B's token or B's webhook secret (404/401/405, A's inbox unchanged) and for
  B with B's token (only B's data); routes without tenant data must show nothing of A.
* every CLI command is enumerated from the click group; each must be classified here, or the
  test fails. Tenant-scoped commands are run scoped to B (B's tenant or connection id), also
  with A's object ids where a command takes ids: A's data must be untouched and absent from
  the output.

"Nothing of A" is checked against A's identifiers (tenant id and name, connection ids, event
and record markers, outbox item ids, secrets, status token); a positive control shows each
check can see A's data when asked with A's own credentials.
"""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from integration_pipelines.canonical.tables import inbox, job, outbox, sync_state
from integration_pipelines.cli.main import cli
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import get_connector, load_connectors
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.health.tokens import issue_token
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.sync.service import sync_stream
from integration_pipelines.webhooks.receiver import create_app
from integration_pipelines.webhooks.signatures import sign
from tests.helpers import connect

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex


@dataclass
class Tenant:
    id: str
    name: str
    token: str = ""
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # connection id -> secrets
    outbox_ids: dict[str, int] = field(default_factory=dict)  # status -> id
    marker: str = ""

    def connection(self, connector: str) -> str:
        return f"{self.id}/{connector}"

    def identifiers(self) -> list[str]:
        """What must never show up when another tenant asks."""
        values = [self.id, self.name, self.marker, self.token, *self.secrets]
        values += [v for s in self.secrets.values() for v in s.values() if len(v) >= 8]
        return values


@dataclass
class World:
    db_url: str
    engine: sa.Engine
    vault_key: str
    a: Tenant
    b: Tenant
    client: TestClient
    sandbox: Any

    def absent(self, text: str, where: str) -> None:
        found = [value for value in self.a.identifiers() if value and value in text]
        assert not found, f"{where}: tenant A's {found} in {text[:500]!r}"

    def a_state(self) -> dict[str, Any]:
        """A's rows that B's commands must not touch."""
        store = ConnectionStore(self.engine, CredentialVault(self.vault_key.split(",")))
        with self.engine.connect() as conn:
            jobs = conn.execute(
                sa.select(sa.func.count()).select_from(job).where(job.c.tenant_id == self.a.id)
            ).scalar_one()
            state = [
                tuple(r)
                for r in conn.execute(
                    sa.select(sync_state.c.connection_id, sync_state.c.stream, sync_state.c.cursor)
                    .where(sync_state.c.connection_id.like(f"{self.a.id}/%"))
                    .order_by(sync_state.c.connection_id, sync_state.c.stream)
                )
            ]
            items = [
                tuple(r)
                for r in conn.execute(
                    sa.select(outbox.c.id, outbox.c.status, outbox.c.attempts)
                    .where(outbox.c.connection_id.like(f"{self.a.id}/%"))
                    .order_by(outbox.c.id)
                )
            ]
            events = conn.execute(
                sa.select(sa.func.count())
                .select_from(inbox)
                .where(inbox.c.connection_id.like(f"{self.a.id}/%"))
            ).scalar_one()
        connections = {c.id: store.credentials(c.id) for c in store.all(tenant_id=self.a.id)}
        return {"jobs": jobs, "state": state, "outbox": items, "inbox": events, "connections": connections}


def _tenant(prefix: str, title: str) -> Tenant:
    suffix = uuid.uuid4().hex[:6]
    return Tenant(id=f"{prefix}{suffix}", name=f"{title} {suffix}", marker=f"marker-{prefix}-{suffix}")


@pytest.fixture(scope="module")
def world(tmp_path_factory, sandbox) -> World:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('tenants') / 'ats.db'}"
    engine = create_db_engine(db_url)
    migrate(engine)
    key = CredentialVault.generate_key()
    store = ConnectionStore(engine, CredentialVault([key]))
    a, b = _tenant("alpha", "Alpha Staffing"), _tenant("bravo", "Bravo Talent")
    now = datetime.now(UTC)
    for t in (a, b):
        store.ensure_tenant(t.id, t.name)
        for name in ("beeline", "textkernel"):
            connection_id, secrets = connect(store, sandbox, get_connector(name), t.id)
            t.secrets[connection_id] = secrets
        sync_stream(engine, store.vault, t.connection("beeline"), "job_postings", allow_loopback=True)
        t.token = issue_token(engine, t.id)
        with engine.begin() as conn:
            # only A has a pending item, due now: `outbox deliver` for B must leave it alone
            for status in ("dead", "pending", "delivered") if t is a else ("dead", "delivered"):
                t.outbox_ids[status] = conn.execute(
                    outbox.insert().values(
                        connection_id=t.connection("beeline"),
                        stream="submissions",
                        entity="submission",
                        record_id=str(uuid.uuid4()),
                        operation="create",
                        payload={"note": t.marker},
                        status=status,
                        attempts=8 if status == "dead" else 0,
                        next_attempt_at=now,
                        last_error=f"{t.marker} refused" if status == "dead" else None,
                        created_at=now,
                    )
                ).inserted_primary_key[0]
    app = create_app(database_url=db_url, vault=CredentialVault([key]), connectors=load_connectors())
    with TestClient(app) as client:
        world = World(db_url, engine, key, a, b, client, sandbox)
        # A's own webhook event, through the receiver, with A's secret (positive control)
        response = post_webhook(world, a.connection("beeline"), a.secrets[a.connection("beeline")], a.marker)
        assert response.status_code == 202, response.text
        yield world
    engine.dispose()


def post_webhook(world: World, connection_id: str, secrets: dict[str, str], marker: str):
    spec = get_connector("beeline").spec.webhooks
    body = json.dumps(
        {"eventId": f"evt-{marker}-{uuid.uuid4().hex[:6]}", "event": "jobPosting.updated", "note": marker}
    ).encode()
    path = f"/webhooks/{connection_id}"
    signature = sign(
        spec.signature, secrets=secrets, body=body, url=f"http://testserver{path}", timestamp=time.time()
    )
    return world.client.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", **signature.headers},
        params=signature.params or None,
    )


# ---------------------------------------------------------------- ASGI routes


def check_webhook_post(world: World) -> None:
    a, b = world.a, world.b
    before = world.a_state()["inbox"]
    b_secrets = world.b.secrets[b.connection("beeline")]
    unsigned = world.client.post(f"/webhooks/{a.connection('beeline')}", json={"eventId": "e1", "event": "x"})
    assert unsigned.status_code == 401
    for secrets in (b_secrets, {k: v + "x" for k, v in a.secrets[a.connection("beeline")].items()}):
        response = post_webhook(world, a.connection("beeline"), secrets, b.marker)
        assert response.status_code == 401, response.text
        world.absent(response.text + str(response.headers), "POST /webhooks/<A's connection> with B's secret")
    assert world.a_state()["inbox"] == before
    # B's own connection with B's secret works, and stores nothing for A
    assert post_webhook(world, b.connection("beeline"), b_secrets, b.marker).status_code == 202
    assert world.a_state()["inbox"] == before


def check_webhook_get(world: World) -> None:
    a, b = world.a, world.b
    for connection_id in (a.connection("beeline"), a.connection("textkernel")):
        response = world.client.get(f"/webhooks/{connection_id}", params={"token": b.token, "challenge": "x"})
        assert response.status_code in (401, 404, 405), response.text
        world.absent(response.text, f"GET /webhooks/{connection_id}")


def check_status_page(world: World, suffix: str) -> None:
    a, b = world.a, world.b
    url = f"/status/{a.id}{suffix}"
    for how in ({"params": {"token": b.token}}, {"headers": {"Authorization": f"Bearer {b.token}"}}):
        response = world.client.get(url, **how)
        assert response.status_code == 404, response.text
        world.absent(response.text, f"GET {url} with B's token")
    response = world.client.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code in (401, 404)  # the admin token is not a tenant token
    # B's own page: only B
    response = world.client.get(f"/status/{b.id}{suffix}", headers={"Authorization": f"Bearer {b.token}"})
    assert response.status_code == 200 and b.connection("beeline") in response.text
    world.absent(response.text, f"GET /status/{b.id}{suffix} with B's token")
    # positive control: A's own token shows A
    response = world.client.get(url, headers={"Authorization": f"Bearer {a.token}"})
    assert response.status_code == 200 and a.connection("beeline") in response.text


def check_overview(world: World) -> None:
    for token in (world.b.token, world.a.token, None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = world.client.get("/status", headers=headers)
        assert response.status_code == 401, response.text
        world.absent(response.text, "GET /status with a tenant token")
    response = world.client.get("/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200 and world.a.id in response.text  # Customer Success sees all


def no_tenant_data(path: str) -> Callable[[World], None]:
    def check(world: World) -> None:
        response = world.client.get(path, params={"token": world.b.token})
        assert response.status_code < 500
        world.absent(response.text, f"GET {path}")

    return check


ROUTES: dict[tuple[str, str], Callable[[World], None]] = {
    ("/webhooks/{connection_id:path}", "POST"): check_webhook_post,
    ("/webhooks/{connection_id:path}", "GET"): check_webhook_get,
    ("/status/{tenant}", "GET"): lambda world: check_status_page(world, ""),
    ("/status/{tenant}.json", "GET"): lambda world: check_status_page(world, ".json"),
    ("/status", "GET"): check_overview,
    ("/health", "GET"): no_tenant_data("/health"),
    ("/openapi.json", "GET"): no_tenant_data("/openapi.json"),
    ("/docs", "GET"): no_tenant_data("/docs"),
    ("/docs/oauth2-redirect", "GET"): no_tenant_data("/docs/oauth2-redirect"),
    ("/redoc", "GET"): no_tenant_data("/redoc"),
}


def app_routes(routes: list, prefix: str = "") -> list[tuple[str, str]]:
    """(path, method) of every route, included routers and mounts opened up."""
    found = []
    for route in routes:
        if isinstance(route, Route):
            found += [(prefix + route.path, m) for m in sorted(route.methods or ()) if m != "HEAD"]
        elif hasattr(route, "original_router"):  # FastAPI's include_router
            found += app_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            found += app_routes(route.routes, prefix + route.path)
        else:
            raise AssertionError(f"unexpected route type {route!r}: classify it in this test")
    return found


def test_every_route_is_classified_and_isolates_tenants(world: World, monkeypatch) -> None:
    monkeypatch.setenv("INTEGRATION_STATUS_ADMIN_TOKEN", ADMIN_TOKEN)
    found = app_routes(world.client.app.routes)
    unclassified = sorted(set(found) - set(ROUTES))
    assert not unclassified, f"routes not classified for tenant isolation: {unclassified}"
    assert ("/status/{tenant}", "GET") in found and ("/webhooks/{connection_id:path}", "POST") in found
    for key in found:
        ROUTES[key](world)


# ---------------------------------------------------------------- CLI commands


def run_cli(world: World, *args: str, input: str | None = None, code: int = 0) -> str:
    env = {"INTEGRATION_DATABASE_URL": world.db_url, "INTEGRATION_VAULT_KEYS": world.vault_key}
    result = CliRunner().invoke(cli, list(args), env=env, input=input)
    output = result.output + (f"\n{result.exception!r}" if result.exception and code == 0 else "")
    assert result.exit_code == code, (args, output)
    return output


def untouched(check: Callable[[World], str]) -> Callable[[World], None]:
    """Run `check` (commands for B); A's rows must be as before and absent from the output."""

    def run(world: World) -> None:
        before = world.a_state()
        output = check(world)
        world.absent(output, check.__name__)
        assert world.a_state() == before, check.__name__

    run.__name__ = check.__name__
    return run


@untouched
def connections_list(world: World) -> str:
    out = run_cli(world, "connections", "list", "--tenant", world.b.id)
    assert world.b.connection("beeline") in out
    return out


@untouched
def connections_add(world: World) -> str:
    url = f"base_url={world.sandbox.base_url('daxtra')}"
    out = run_cli(world, "connections", "add", world.b.id, "daxtra", "--sandbox", "--config", url)
    return out + run_cli(world, "connections", "add", world.b.id, "beeline", "--sandbox", code=1)


@untouched
def connections_remove(world: World) -> str:
    return run_cli(world, "connections", "remove", world.b.connection("daxtra"))


@untouched
def credentials_set(world: World) -> str:
    b = world.b.connection("textkernel")
    value = world.b.secrets[b]["service_key"]
    return run_cli(world, "credentials", "set", b, "service_key", input=value + "\n")


@untouched
def credentials_rotate(world: World) -> str:
    # operator-wide (no tenant argument): A's secrets must decrypt to the same values afterwards
    old = world.vault_key
    new = CredentialVault.generate_key()
    env = {"INTEGRATION_DATABASE_URL": world.db_url, "INTEGRATION_VAULT_KEYS": f"{new},{old}"}
    result = CliRunner().invoke(cli, ["credentials", "rotate"], env=env)
    assert result.exit_code == 0 and "re-encrypted" in result.output, result.output
    world.vault_key = f"{new},{old}"
    return result.output


@untouched
def sync(world: World) -> str:
    out = run_cli(world, "sync", world.b.connection("beeline"), "--sandbox", "--stream", "job_postings")
    assert "succeeded" in out
    return out


@untouched
def outbox_list(world: World) -> str:
    out = ""
    b = world.b.connection("beeline")
    for status in ("dead", "pending", "delivered", None):
        listed = run_cli(
            world, "outbox", "list", "--connection", b, *(("--status", status) if status else ())
        )
        ids = {line.split()[0] for line in listed.splitlines()[2:-1] if line.strip()}
        assert not ids & {str(i) for i in world.a.outbox_ids.values()}, listed
        assert status == "pending" or str(world.b.outbox_ids[status or "dead"]) in ids, listed
        out += listed
    return out


@untouched
def outbox_retry(world: World) -> str:
    b = world.b.connection("beeline")
    out = run_cli(world, "outbox", "retry", str(world.a.outbox_ids["dead"]), "--connection", b, code=1)
    return out + run_cli(world, "outbox", "retry", "--all-dead", "--connection", b)


@untouched
def outbox_replay(world: World) -> str:
    b = world.b.connection("beeline")
    out = run_cli(world, "outbox", "replay", str(world.a.outbox_ids["delivered"]), "--connection", b, code=1)
    assert "unknown" in out
    return out


@untouched
def outbox_deliver(world: World) -> str:
    b = world.b.connection("beeline")
    args = ("outbox", "deliver", "--connection", b, "--until-empty", "--sandbox", "--max-seconds", "20")
    return run_cli(world, *args)


@untouched
def health(world: World) -> str:
    out = run_cli(world, "health", "--tenant", world.b.id)
    assert world.b.connection("beeline") in out
    return out


def tenants_token(world: World) -> None:
    before = world.a_state()
    out = run_cli(world, "tenants", "token", world.b.id)
    world.absent(out, "tenants token")
    new_b = out.split("status token for ")[1].split(": ")[1].split()[0]
    old_b, world.b.token = world.b.token, new_b
    assert world.client.get(f"/status/{world.a.id}", params={"token": new_b}).status_code == 404
    assert world.client.get(f"/status/{world.a.id}", params={"token": world.a.token}).status_code == 200
    assert world.client.get(f"/status/{world.b.id}", params={"token": old_b}).status_code == 404  # revoked
    assert world.a_state() == before


NOT_TENANT_SCOPED = {
    "connectors list": "connector files only",
    "connectors validate": "connector files only",
    "demo": "its own demo tenants on its own database",
    "sandbox": "the partner simulators",
    "serve": "a server: its routes are checked above",
    "serve-all": "servers: their routes are checked above",
}
# in this order: later checks see B after the earlier ones changed it
COMMANDS: dict[str, Callable[[World], None]] = {
    "connections list": connections_list,
    "connections add": connections_add,
    "connections remove": connections_remove,
    "credentials set": credentials_set,
    "credentials rotate": credentials_rotate,
    "sync": sync,
    "outbox list": outbox_list,
    "outbox retry": outbox_retry,
    "outbox replay": outbox_replay,
    "outbox deliver": outbox_deliver,
    "health": health,
    "tenants token": tenants_token,
}


def cli_commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += cli_commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return sorted(names)


def test_every_cli_command_is_classified_and_isolates_tenants(world: World) -> None:
    commands = cli_commands(cli)
    unclassified = sorted(set(commands) - set(COMMANDS) - set(NOT_TENANT_SCOPED))
    assert not unclassified, f"CLI commands not classified for tenant isolation: {unclassified}"
    assert len(commands) >= len(COMMANDS)
    for name, check in COMMANDS.items():
        if name in commands:
            check(world)
