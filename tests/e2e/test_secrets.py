"""A secret given to `credentials set` never appears in plain text anywhere we write.

Secrets go in through the real CLI (stdin and an environment variable), then connections
sync through Dagster with a 429 storm, an expired token and revoked credentials (a failed
run with an exception). Afterwards every place text ends up is scanned: CLI output, Python
logs, captured stdout/stderr, Dagster's event log, run configs, every file under
DAGSTER_HOME and the integration database's files.
"""

import base64
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from dagster._serdes import serialize_value

from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.db.engine import create_db_engine
from integration_pipelines.definitions import build_definitions, sync_job_name
from integration_pipelines.resources.dagster_resources import default_resources
from tests.helpers import scalar, seed_documents


def cli(args: list[str], env: dict[str, str], stdin: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-m", "integration_pipelines.cli.main", *args],
        input=stdin.encode(),
        env=env,
        capture_output=True,
        timeout=120,
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    return output


def forms(secret: str) -> set[str]:
    """The secret as it could leak: plain, base64 and URL-encoded."""
    raw = secret.encode()
    return {
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def test_secrets_never_appear_in_plain_text(
    tmp_path: Path, sandbox, tenant, monkeypatch, caplog, capfd
) -> None:
    from integration_pipelines.resources.vault import CredentialVault

    key = CredentialVault.generate_key()
    db_url = f"sqlite:///{tmp_path / 'ats.db'}"
    env = {**os.environ, "INTEGRATION_VAULT_KEYS": key, "INTEGRATION_DATABASE_URL": db_url}
    outputs: list[str] = []
    secrets: list[str] = []
    for name in ("beeline", "textkernel"):
        creds = sandbox.simulators[name].add_tenant(tenant)
        outputs.append(
            cli(["connections", "add", tenant, name, "--config", f"base_url={sandbox.base_url(name)}"], env)
        )
        connection = f"{tenant}/{name}"
        for i, (cred, value) in enumerate(creds.items()):
            if i == 0:  # one through an environment variable, the rest through stdin
                outputs.append(
                    cli(
                        ["credentials", "set", connection, cred, "--from-env", "PARTNER_SECRET"],
                        {**env, "PARTNER_SECRET": value},
                    )
                )
            else:
                outputs.append(cli(["credentials", "set", connection, cred], env, stdin=value + "\n"))
            secrets.append(value)
    outputs.append(cli(["connections", "list"], env))

    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", key)
    monkeypatch.setenv("INTEGRATION_DATABASE_URL", db_url)
    monkeypatch.setenv("INTEGRATION_SANDBOX", "1")
    caplog.set_level(logging.DEBUG)
    connectors = load_connectors()
    defs = build_definitions(list(connectors.values()), resources=default_resources())
    beeline_sim, textkernel_sim = sandbox.simulators["beeline"], sandbox.simulators["textkernel"]
    beeline_sim.faults.inject("rate_limit", count=2, tenant=tenant, retry_after=0.1)
    beeline_sim.faults.inject("expire_token", count=1, tenant=tenant)
    textkernel_sim.revoke(tenant)
    try:
        instance = dg.DagsterInstance.get()
        runs = []
        for name in ("beeline", "textkernel"):
            partition = f"{tenant}/{name}"
            instance.add_dynamic_partitions(f"{name}_connections", [partition])
            if name == "textkernel":
                seed_documents(create_db_engine(db_url), tenant, 3)
            result = defs.resolve_job_def(sync_job_name(name)).execute_in_process(
                partition_key=partition, instance=instance, raise_on_error=False
            )
            runs.append((name, result))
    finally:
        textkernel_sim.unrevoke(tenant)

    results = dict(runs)
    assert results["beeline"].success  # 429s and an expired token were ridden out
    assert not results["textkernel"].success  # revoked credentials: a failed run with an error
    failure = results["textkernel"].get_step_failure_events()[0].event_specific_data.error
    assert "credentials stored for this connection" in failure.message
    assert scalar(create_db_engine(db_url), "select count(*) from job where tenant_id = :t", t=tenant) == 300

    texts: dict[str, str] = {"cli output": "\n".join(outputs), "python logs": caplog.text}
    texts["python log exceptions"] = "\n".join(r.exc_text or "" for r in caplog.records)
    captured = capfd.readouterr()
    texts["stdout/stderr"] = captured.out + captured.err
    for name, result in runs:
        run = instance.get_run_by_id(result.run_id)
        texts[f"{name} run config"] = serialize_value(run.run_config)
        texts[f"{name} event log"] = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    blobs: dict[str, bytes] = {}
    for root in (Path(os.environ["DAGSTER_HOME"]), tmp_path):
        for path in root.rglob("*"):
            if path.is_file():
                blobs[str(path)] = path.read_bytes()
    assert any(p.endswith("ats.db") for p in blobs) and texts["beeline event log"]

    leaks = []
    for secret in secrets:
        for form in forms(secret):
            leaks += [f"{where}: {form[:4]}…" for where, text in texts.items() if form in text]
            leaks += [f"{where}: {form[:4]}…" for where, blob in blobs.items() if form.encode() in blob]
    assert leaks == [], f"secrets found in plain text: {leaks}"
