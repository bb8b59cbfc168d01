"""`serve`: migrate, then uvicorn with several worker processes on one database."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connector_file
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.webhooks.inbox import counts
from integration_pipelines.webhooks.signatures import sign
from tests.webhooks.conftest import SCHEMES, STREAMS, event_body, new_id

SERVE = "from integration_pipelines.cli.serve import serve; serve()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path) -> None:
    # a connector file outside the package, found through INTEGRATION_CONNECTORS_DIR
    block, secrets = SCHEMES["hook_timestamped"]
    folder = tmp_path / "connectors" / "hook_timestamped"
    folder.mkdir(parents=True)
    (folder / "connector.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "hook_timestamped",
                "title": "Timestamped hook",
                "category": "vms",
                "base_url": "https://partner.example",
                "auth": {"kind": "none"},
                "streams": STREAMS,
                "webhooks": block,
            }
        )
    )
    loaded = load_connector_file(folder)
    url = f"sqlite:///{tmp_path / 'ats.db'}"
    key = CredentialVault.generate_key()
    engine = create_db_engine(url)
    migrate(engine)
    store = ConnectionStore(engine, CredentialVault([key]))
    connection = store.add("acme", loaded.spec)
    store.set_credential(connection.id, "webhook_secret", secrets["webhook_secret"])

    port = _free_port()
    env = {
        **os.environ,
        "INTEGRATION_VAULT_KEYS": key,
        "INTEGRATION_CONNECTORS_DIR": str(tmp_path / "connectors"),
        "INTEGRATION_DATABASE_URL": url,
    }
    args = [sys.executable, "-c", SERVE, "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port} (2 workers)" in banner
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "receiver did not come up"
            time.sleep(0.1)

        spec = loaded.spec.webhooks.signature
        ids = [new_id() for _ in range(40)]

        def send(event_id: str) -> int:
            body, _ = event_body("hook_timestamped", event_id)
            headers = sign(spec, secrets=secrets, body=body).headers
            with httpx.Client(base_url=base) as client:  # new connections: spread over the workers
                return client.post(f"/webhooks/{connection.id}", content=body, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(send, ids))
            again = list(pool.map(send, ids))
        assert first == [202] * len(ids)
        assert again == [200] * len(ids)
        assert httpx.post(f"{base}/webhooks/{connection.id}", content=b"{}").status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with engine.connect() as conn:
        assert counts(conn, connection.id) == {"pending": len(ids)}
    engine.dispose()
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr
    # one line per refused request, from each worker's own handler
    assert (
        "webhook rejected connection='acme/hook_timestamped' status=401 reason=missing timestamp header"
        in stderr
    )
    assert secrets["webhook_secret"] not in stderr
