"""No configured secret ever shows up where text ends up, after a full demo run with faults.

The whole demo (`integration-pipelines demo --faults`: every connector for two tenants
through Dagster, then webhooks in, the outbox out and conflicts) runs against misbehaving
partners: a 503 and a 429 storm per connection of the first tenant, an expired OAuth token,
and one connection whose credentials the partner revoked (its run must fail with a clear
error, then succeed once they are restored). Then the operator's CLI runs against the demo's
database: credentials are entered again through stdin and an environment variable, the
vault key is rotated, connections, health and the outbox are listed, a status page token is
issued, and the status pages (tenant and admin) are fetched.

Every secret in play is then searched for: every credential stored for any connection
(client secrets, client ids, API keys, passwords, webhook signing secrets, decrypted from the
database), both vault keys, every status page token and the admin token; each in plain text,
base64 (standard and URL-safe, at every byte alignment, so `user:secret` in a Basic header is
caught too) and URL-encoded. Places searched: the demo's and the CLI's stdout/stderr, every
Python log record at DEBUG (with exception texts), every Dagster run's event log and run
config, the status pages' responses and the server's access log (uvicorn, access log on; the
pages are fetched with http.client, which logs nothing itself), and every file the demo left
(the integration database with its WAL, Dagster's home). A status page token may appear
exactly where it is handed out once (the demo's link lines and `tenants token`'s output),
nowhere else.
"""

import base64
import logging
import os
import re
import socket
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
import sqlalchemy as sa
import uvicorn
from click.testing import CliRunner
from dagster._serdes import serialize_value

from integration_pipelines.canonical.tables import credentials, tenants
from integration_pipelines.cli.demo import run_demo
from integration_pipelines.cli.main import cli
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.db.engine import create_db_engine
from integration_pipelines.health.tokens import hash_token
from integration_pipelines.resources.vault import CredentialVault
from integration_pipelines.sandbox import server as sandbox_server
from integration_pipelines.webhooks.receiver import create_app

TOKEN = re.compile(r"st_[A-Za-z0-9_-]{43}")
ENV = (
    "DAGSTER_HOME",
    "INTEGRATION_DATABASE_URL",
    "INTEGRATION_SANDBOX",
    "INTEGRATION_VAULT_KEY_FILE",
    "INTEGRATION_VAULT_KEYS",
    "INTEGRATION_STATUS_ADMIN_TOKEN",
)


def forms(secret: str) -> set[str]:
    """The secret as it could leak: plain, URL-encoded and base64 at each byte alignment."""
    raw = secret.encode()
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            encoded = encode(b"\0" * shift + raw).decode()
            # characters that depend on bytes around the secret are dropped at both ends
            stable = encoded[4 if shift else 0 : -4 if len(encoded) > 4 else None]
            if len(stable) >= 8:
                found.add(stable)
        found.add(encode(raw).decode().rstrip("="))
    return {f for f in found if len(f) >= 6}


def leaks_in(secrets: dict[str, str], texts: dict[str, str], blobs: dict[str, bytes]) -> list[str]:
    leaks = []
    for label, secret in secrets.items():
        for form in forms(secret):
            leaks += [f"{label} in {where}" for where, text in texts.items() if form in text]
            leaks += [f"{label} in file {where}" for where, blob in blobs.items() if form.encode() in blob]
    return sorted(set(leaks))


def test_forms_catch_what_they_should() -> None:
    """The scan itself: a secret inside a Basic header, a query string or a JSON blob is found."""
    secret = "s3cr3t-Value/with+chars"
    basic = base64.b64encode(f"client-1:{secret}".encode()).decode()
    texts = {
        "basic": f"Authorization: Basic {basic}",
        "query": f"GET /x?api_key={quote(secret, safe='')}",
        "json": '{"password": "' + secret + '"}',
        "clean": "nothing here",
    }
    assert leaks_in({"s": secret}, texts, {}) == ["s in basic", "s in json", "s in query"]


@pytest.mark.slow
def test_demo_with_faults_leaks_no_secret(tmp_path: Path, monkeypatch, caplog, capfd) -> None:
    for name in ENV:  # run_demo sets some of these for its process: put them all back afterwards
        monkeypatch.delenv(name, raising=False)
    old_key, new_key = CredentialVault.generate_key(), CredentialVault.generate_key()
    admin_token = "adm_" + base64.urlsafe_b64encode(os.urandom(24)).decode()
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", old_key)
    monkeypatch.setenv("INTEGRATION_STATUS_ADMIN_TOKEN", admin_token)
    started: list = []
    original_start = sandbox_server.Sandbox.start

    def start(self):  # keep hold of the demo's simulators, to see the faults were served
        started.append(self)
        return original_start(self)

    monkeypatch.setattr(sandbox_server.Sandbox, "start", start)
    caplog.set_level(logging.DEBUG)

    workdir = tmp_path / "demo"
    code = run_demo(workdir=workdir, faults=True)
    demo = capfd.readouterr()
    assert code == 0, demo.out[-4000:] + demo.err[-4000:]
    assert "14 streams, 14 succeeded, 0 failed" in demo.out
    assert re.search(r"failed as expected .*the partner refused the credentials \(HTTP 401\)", demo.out)
    faults = {name: dict(sim.stats.faults_applied) for name, sim in started[0].simulators.items()}
    for applied in faults.values():
        assert applied.get("server_error", 0) >= 1 and applied.get("rate_limit", 0) >= 2, faults
    assert faults["beeline"].get("expire_token") and faults["sap_fieldglass"].get("expire_token"), faults

    # --- the operator's CLI against the demo's database
    db_url = f"sqlite:///{workdir / 'ats.db'}"
    engine = create_db_engine(db_url)
    vault = CredentialVault([old_key])
    with engine.connect() as conn:
        stored = {
            (r.connection_id, r.name): vault.decrypt(r.ciphertext)
            for r in conn.execute(sa.select(credentials))
        }
    connectors = load_connectors()
    expected = {
        (f"{t}/{c}", n)
        for t in ("acme", "globex")
        for c, lc in connectors.items()
        for n in lc.spec.credential_names
    }
    assert expected <= set(stored), expected - set(stored)

    runner = CliRunner()
    env = {"INTEGRATION_DATABASE_URL": db_url, "INTEGRATION_VAULT_KEYS": old_key}
    outputs: dict[str, str] = {}

    def run(label: str, args: list[str], input: str | None = None, **extra: str) -> str:
        result = runner.invoke(cli, args, input=input, env={**env, **extra}, catch_exceptions=False)
        assert result.exit_code == 0, (label, result.output)
        outputs[label] = result.output
        return result.output

    (connection, name), value = next(iter(sorted(stored.items())))
    run("credentials set (stdin)", ["credentials", "set", connection, name], input=value + "\n")
    (connection, name), value = sorted(stored.items())[-1]
    run("credentials set (env)", ["credentials", "set", connection, name, "--from-env", "S"], S=value)
    run("connections list", ["connections", "list"])
    run("health", ["health"])
    run("outbox list", ["outbox", "list"])
    run("rotate", ["credentials", "rotate"], INTEGRATION_VAULT_KEYS=f"{new_key},{old_key}")
    env["INTEGRATION_VAULT_KEYS"] = new_key
    run("connections list after rotation", ["connections", "list"])
    issued = run("tenants token", ["tenants", "token", "acme"])
    acme_token = TOKEN.findall(issued)[0]

    demo_tokens = TOKEN.findall(demo.out)
    assert len(set(demo_tokens)) == 2, demo_tokens
    with engine.connect() as conn:
        hashes = dict(conn.execute(sa.select(tenants.c.id, tenants.c.status_token_hash)).all())
        fingerprints = set(conn.execute(sa.select(credentials.c.key_fingerprint)).scalars())
    assert hashes["acme"] == hash_token(acme_token)  # only the hash is kept
    assert fingerprints == {CredentialVault([new_key]).fingerprint}  # everything re-encrypted

    # --- the status pages, served by uvicorn with its access log on (fetched with http.client,
    # which logs nothing itself: every log line about these requests is the server's)
    app = create_app(database_url=db_url, vault=CredentialVault([new_key]))
    for name in ("uvicorn", "uvicorn.access"):  # the demo's servers stopped them reaching the root logger
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    config = uvicorn.Config(app, log_config=None, log_level="info", access_log=True, lifespan="off")
    server = uvicorn.Server(config)
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    pages: dict[str, str] = {}
    try:
        for label, url, headers, status in (
            ("acme status page (token in the link)", f"/status/acme?token={acme_token}", {}, 200),
            ("acme status json", "/status/acme.json", {"Authorization": f"Bearer {acme_token}"}, 200),
            ("admin overview", "/status", {"Authorization": f"Bearer {admin_token}"}, 200),
            ("globex page with acme's token", f"/status/globex?token={acme_token}", {}, 404),
        ):
            http = HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=30)
            http.request("GET", url, headers=headers)
            response = http.getresponse()
            body = response.read().decode()
            http.close()
            assert response.status == status, (label, body[:300])
            pages[label] = body + "\n" + "\n".join(f"{k}: {v}" for k, v in response.getheaders())
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) == 4 and "token=***" in access[0].getMessage(), [r.getMessage() for r in access]
    engine.dispose()

    later = capfd.readouterr()

    # --- everything that was written
    texts: dict[str, str] = {
        # the demo hands each tenant's status page link out once: that line may carry it
        "demo stdout": "\n".join(line for line in demo.out.splitlines() if "/status/" not in line),
        "demo stderr": demo.err,
        "stdout/stderr after the demo": later.out + later.err,
        "python logs": caplog.text,
        **{
            f"log record {i} ({r.name})": f"{r.getMessage()}\n{r.exc_text or ''}\n{r.stack_info or ''}"
            for i, r in enumerate(caplog.records)
        },
        **{f"cli {k}": v for k, v in outputs.items() if k != "tenants token"},
        "cli tenants token (without the token line)": "\n".join(
            line for line in outputs["tenants token"].splitlines() if acme_token not in line
        ),
        **pages,
    }
    home = workdir / "dagster_home"
    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    assert len(runs) >= 9  # a run per connection, the failed one, the two-way act's runs
    for run_ in runs:
        texts[f"run {run_.run_id[:8]} config"] = serialize_value(run_.run_config) + serialize_value(run_.tags)
        texts[f"run {run_.run_id[:8]} event log"] = "\n".join(
            serialize_value(e) for e in instance.all_logs(run_.run_id)
        )
    instance.dispose()
    blobs = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert any(p.endswith("ats.db") for p in blobs) and any("dagster_home" in p for p in blobs)
    assert not (workdir / "vault.key").exists()  # the key came from the environment

    secrets = {f"{cid} {name}": value for (cid, name), value in stored.items()}
    secrets |= {"vault key (old)": old_key, "vault key (new)": new_key, "admin token": admin_token}
    secrets |= {f"status token {i}": t for i, t in enumerate({*demo_tokens, acme_token})}
    assert len(secrets) >= len(expected) + 5
    leaks = leaks_in(secrets, texts, blobs)
    assert leaks == [], f"secrets found: {leaks}"
