"""A burst with duplicates, over real HTTP, against two receivers sharing one database."""

import random
import threading
from collections import Counter

import httpx
import sqlalchemy as sa

from integration_pipelines.webhooks.receiver import create_app
from tests.webhooks.conftest import LiveServer, WebhookEnv, event_body, new_id, signed

EVENTS = 500
DUPLICATE_SHARE = 0.3
CLIENTS = 20


def test_burst_with_duplicates_stores_each_event_once(webhook_env: WebhookEnv) -> None:
    name = "hook_hmac"
    rng = random.Random(20260101)
    unique = [new_id() for _ in range(round(EVENTS * (1 - DUPLICATE_SHARE)))]
    sends = unique + [rng.choice(unique) for _ in range(EVENTS - len(unique))]
    rng.shuffle(sends)
    requests = []
    for event_id in sends:
        body, _ = event_body(name, event_id)
        path, signature = signed(webhook_env, name, body)
        requests.append((path, body, signature.headers))

    # a second, independent app instance (its own caches and pool) on the same database
    other = create_app(
        database_url=webhook_env.database_url, vault=webhook_env.vault, connectors=webhook_env.connectors
    )
    statuses: Counter[int] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    with LiveServer(other) as second:
        servers = [webhook_env.url, second.url]

        def client(index: int) -> None:
            try:
                with httpx.Client(base_url=servers[index % 2], timeout=30) as http:
                    for path, body, headers in requests[index::CLIENTS]:
                        status = http.post(path, content=body, headers=headers).status_code
                        with lock:
                            statuses[status] += 1
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    assert not errors
    assert statuses == {202: len(unique), 200: EVENTS - len(unique)}
    with webhook_env.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT event_id FROM inbox WHERE connection_id = :c AND event_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"c": webhook_env.connection_id(name), "ids": unique},
        ).scalars()
        stored = list(stored)
    assert sorted(stored) == sorted(unique)
