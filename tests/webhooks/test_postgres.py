"""The receiver on PostgreSQL: concurrent duplicates, and values PostgreSQL refuses are 400s."""

import json
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.webhooks.receiver import create_app
from tests.webhooks.conftest import (
    LiveServer,
    WebhookEnv,
    event_body,
    make_connectors,
    new_id,
    post_event,
    register_connections,
)


@pytest.mark.postgres
def test_receiver_on_postgres(pg_engine: sa.Engine) -> None:
    vault = CredentialVault([CredentialVault.generate_key()])
    store = ConnectionStore(pg_engine, vault)
    connectors = make_connectors()
    with pg_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM inbox WHERE connection_id LIKE 'acme/%'"))
    if "acme" not in store.tenant_ids():
        register_connections(store, connectors)
    url = pg_engine.url.render_as_string(hide_password=False)
    app = create_app(database_url=url, vault=vault, connectors=connectors)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        env = WebhookEnv(pg_engine, store, url, vault, connectors, server, client)
        rng = random.Random(7)
        unique = [new_id() for _ in range(140)]
        sends = unique + [rng.choice(unique) for _ in range(60)]
        rng.shuffle(sends)

        def send(event_id: str) -> int:
            body, _ = event_body("hook_hmac", event_id)
            return post_event(env, "hook_hmac", body).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(send, sends))
        assert statuses.count(202) == len(unique) and statuses.count(200) == len(sends) - len(unique)
        assert env.rows("hook_hmac") == len(unique)

        for body in (
            b'{"id": "a\\u0000b", "type": "job.created"}',
            json.dumps({"id": "x" * 201, "type": "job.created"}).encode(),
            json.dumps({"id": "ok-1", "type": "t" * 101}).encode(),
        ):
            assert client.post(env.path("hook_none"), content=body).status_code == 400
        body = json.dumps({"id": new_id(), "type": "job.created", "data": "nul \u0000 inside"}).encode()
        assert client.post(env.path("hook_none"), content=body).status_code == 202
        xml, _ = event_body("hook_basic", new_id())
        assert post_event(env, "hook_basic", xml).status_code == 202
