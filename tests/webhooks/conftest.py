"""Webhook fixtures: one test connector per signature scheme, a migrated SQLite file with a
connection (and its secrets in the vault) for each, and the receiver served by uvicorn on
127.0.0.1 in a thread."""

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
import xmltodict

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Connector
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.webhooks.receiver import create_app
from integration_pipelines.webhooks.signatures import SignedRequest, sign

TENANT = "acme"
ROUTES = {"job.created": {"stream": "jobs"}, "job.updated": {"stream": "jobs"}}
# routes must name an inbound stream of the connector
STREAMS = {
    "jobs": {
        "direction": "inbound",
        "entity": "job",
        "request": {"path": "/jobs"},
        "primary_key": "id",
        "mapping": {"external_id": "id", "title": "title"},
    }
}


def _connector(name: str, webhooks: dict[str, Any]) -> Connector:
    return Connector.model_validate(
        {
            "name": name,
            "title": name.replace("_", " ").title(),
            "category": "vms",
            "base_url": "https://partner.example",
            "auth": {"kind": "none"},
            "streams": STREAMS,
            "webhooks": webhooks,
        }
    )


JSON_EVENT = {"event_id": "id", "event_type": "type", "occurred_at": "created_at", "routes": ROUTES}

# connector name -> (webhooks block, secrets to store)
SCHEMES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "hook_hmac": (
        {
            "signature": {"scheme": "hmac", "header": "X-Hub-Signature-256", "prefix": "sha256="},
            "max_body_bytes": 4096,
            **JSON_EVENT,
        },
        {"webhook_secret": "hmac-secret-0123456789"},
    ),
    "hook_timestamped": (
        {
            "signature": {
                "scheme": "timestamped_hmac",
                "header": "X-Slack-Signature",
                "prefix": "v0=",
                "timestamp_header": "X-Slack-Request-Timestamp",
                "signed_payload": "v0:{timestamp}:{body}",
                "tolerance_seconds": 300,
            },
            "handshake": {"method": "POST", "param": "challenge", "location": "body", "respond": "json"},
            **JSON_EVENT,
        },
        {"webhook_secret": "slack-signing-secret"},
    ),
    "hook_twilio": (
        {
            "signature": {
                "scheme": "url_params_hmac",
                "header": "X-Twilio-Signature",
                "algorithm": "sha1",
                "encoding": "base64",
                "secret": "auth_token",
            },
            "format": "form",
            "event_id": "MessageSid",
            "event_type": "SmsStatus",
            "routes": {"delivered": {"stream": "jobs"}},
        },
        {"auth_token": "twilio-auth-token"},
    ),
    "hook_token": (
        {
            "signature": {"scheme": "token", "header": "X-Verify-Token"},
            "handshake": {"method": "GET", "param": "hub.challenge"},
            **JSON_EVENT,
        },
        {"webhook_secret": "shared-token-abc"},
    ),
    "hook_token_query": (
        {
            "signature": {"scheme": "token", "query_param": "token"},
            "handshake": {"method": "GET", "param": "crc_token", "respond": "json", "json_key": "response"},
            **JSON_EVENT,
        },
        {"webhook_secret": "query-token-xyz"},
    ),
    "hook_basic": (
        {
            "signature": {"scheme": "basic", "username": "webhook_user", "secret": "webhook_password"},
            "format": "xml",
            "event_id": "Event.Id",
            "event_type": "Event.Type",
            "occurred_at": "Event.OccurredAt",
            "routes": ROUTES,
        },
        {"webhook_user": "fieldglass", "webhook_password": "p@ss:word"},
    ),
    "hook_none": ({"signature": {"scheme": "none"}, **JSON_EVENT}, {}),
}
HMAC_SCHEMES = ("hook_hmac", "hook_timestamped", "hook_twilio")


def make_connectors() -> dict[str, LoadedConnector]:
    return {
        name: LoadedConnector(spec=_connector(name, block), path=Path(f"<test>/{name}/connector.yaml"))
        for name, (block, _) in SCHEMES.items()
    }


def register_connections(store: ConnectionStore, connectors: Mapping[str, LoadedConnector]) -> None:
    store.ensure_tenant(TENANT)
    for name, loaded in connectors.items():
        connection = store.add(TENANT, loaded.spec)
        for key, value in SCHEMES[name][1].items():
            store.set_credential(connection.id, key, value)


class LiveServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@dataclass
class WebhookEnv:
    """A running receiver with one connection per scheme."""

    engine: sa.Engine
    store: ConnectionStore
    database_url: str
    vault: CredentialVault
    connectors: dict[str, LoadedConnector]
    server: LiveServer
    client: httpx.Client
    app: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def connection_id(self, name: str) -> str:
        return f"{TENANT}/{name}"

    def path(self, name: str) -> str:
        return f"/webhooks/{self.connection_id(name)}"

    def secrets(self, name: str) -> dict[str, str]:
        return dict(SCHEMES[name][1])

    def rows(self, name: str, event_id: str | None = None) -> int:
        query = "SELECT count(*) FROM inbox WHERE connection_id = :c"
        params = {"c": self.connection_id(name)}
        if event_id is not None:
            query += " AND event_id = :e"
            params["e"] = event_id
        with self.engine.connect() as conn:
            return conn.execute(sa.text(query), params).scalar_one()

    def total_rows(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one()


def event_body(name: str, event_id: str, event_type: str = "job.created", **extra: Any) -> tuple[bytes, dict]:
    """A body in the scheme's connector format, and the form fields (for form connectors)."""
    block = SCHEMES[name][0]
    fmt = block.get("format", "json")
    if fmt == "form":
        fields = {"MessageSid": event_id, "SmsStatus": event_type, "To": "+15550001111", **extra}
        return urlencode(fields).encode(), fields
    if fmt == "xml":
        event = {"Event": {"Id": event_id, "Type": event_type, "OccurredAt": "2026-01-02T03:04:05Z", **extra}}
        return xmltodict.unparse(event).encode(), {}
    event = {
        "id": event_id,
        "type": event_type,
        "created_at": "2026-01-02T03:04:05Z",
        "data": {"n": 1},
        **extra,
    }
    return json.dumps(event).encode(), {}


def signed(
    env: WebhookEnv,
    name: str,
    body: bytes,
    form: dict | None = None,
    secrets: dict[str, str] | None = None,
    timestamp: float | None = None,
    query: str = "",
) -> tuple[str, SignedRequest]:
    """The URL to POST to and the signature for it."""
    spec = env.connectors[name].spec.webhooks.signature
    path = env.path(name) + (f"?{query}" if query else "")
    signature = sign(
        spec,
        secrets=secrets if secrets is not None else env.secrets(name),
        body=body,
        url=env.url + path,
        form=form or None,
        timestamp=timestamp,
    )
    return path, signature


def post_event(
    env: WebhookEnv, name: str, body: bytes, form: dict | None = None, **kw: Any
) -> httpx.Response:
    path, signature = signed(env, name, body, form, **kw)
    fmt = SCHEMES[name][0].get("format", "json")
    content_type = {
        "json": "application/json",
        "form": "application/x-www-form-urlencoded",
        "xml": "application/xml",
    }[fmt]
    return env.client.post(
        path,
        content=body,
        headers={"Content-Type": content_type, **signature.headers},
        params=signature.params or None,
    )


def new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def webhook_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookEnv]:
    db = tmp_path_factory.mktemp("webhooks") / "ats.db"
    url = f"sqlite:///{db}"
    engine = create_db_engine(url)
    migrate(engine)
    vault = CredentialVault([CredentialVault.generate_key()])
    store = ConnectionStore(engine, vault)
    connectors = make_connectors()
    register_connections(store, connectors)
    app = create_app(database_url=url, vault=vault, connectors=connectors)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield WebhookEnv(engine, store, url, vault, connectors, server, client, app=app)
    engine.dispose()
