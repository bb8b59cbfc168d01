"""The command line: connectors, connections, credentials (values never on the command line)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from integration_pipelines.cli.main import cli
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.db.engine import create_db_engine
from integration_pipelines.resources.vault import CredentialVault


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    key = CredentialVault.generate_key()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("INTEGRATION_DATABASE_URL", url)
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", key)
    return {"url": url, "key": key}


def run(*args: str, stdin: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def test_connectors_list_and_validate(tmp_path: Path) -> None:
    listing = run("connectors", "list")
    for name in ("beeline", "daxtra", "sap_fieldglass", "textkernel"):
        assert name in listing
    assert "oauth2_client_credentials" in listing and "job_postings (inbound -> job)" in listing
    assert "ok" in run("connectors", "validate")
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "connector.yaml").write_text("name: broken\ntitle: B\ncategory: nope\nbase_url: x\n")
    output = run("connectors", "validate", str(bad), code=1)
    assert "connector.yaml:3: category:" in output and "streams" in output


def test_connection_lifecycle_keeps_secrets_encrypted(env: dict[str, str]) -> None:
    assert "credentials needed: client_id, client_secret" in run("connections", "add", "acme", "beeline")
    run("credentials", "set", "acme/beeline", "client_secret", stdin="top-secret-value\n")
    listing = run("connections", "list")
    assert "acme/beeline" in listing and "client_secret" in listing and "top-secret-value" not in listing
    store = ConnectionStore(create_db_engine(env["url"]), CredentialVault([env["key"]]))
    assert store.credentials("acme/beeline") == {"client_secret": "top-secret-value"}
    assert "already exists" in run("connections", "add", "acme", "beeline", code=1)
    assert "unknown connector" in run("connections", "add", "acme", "nope", code=1)
    assert "is required" in run("connections", "add", "acme", "sap_fieldglass", code=1)
    assert "not one of" in run(
        "connections", "add", "acme", "textkernel", "--config", "data_center=mars", code=1
    )
    run("connections", "remove", "acme/beeline")
    assert "acme/beeline" not in run("connections", "list")
    assert "no connection" in run("connections", "remove", "acme/beeline", code=1)


def test_credentials_set_needs_a_vault_key(env: dict[str, str], monkeypatch) -> None:
    run("connections", "add", "acme", "beeline")
    monkeypatch.delenv("INTEGRATION_VAULT_KEYS")
    monkeypatch.delenv("INTEGRATION_VAULT_KEY_FILE", raising=False)
    output = run("credentials", "set", "acme/beeline", "client_id", stdin="x\n", code=1)
    assert "INTEGRATION_VAULT_KEYS" in output


def test_rotating_the_vault_key_reencrypts_every_secret(env: dict[str, str], monkeypatch) -> None:
    run("connections", "add", "acme", "beeline")
    run("credentials", "set", "acme/beeline", "client_id", stdin="id-1\n")
    run("credentials", "set", "acme/beeline", "client_secret", stdin="secret-1\n")
    new_key = CredentialVault.generate_key()
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", f"{new_key},{env['key']}")
    assert "re-encrypted 2 credential(s)" in run("credentials", "rotate")
    store = ConnectionStore(create_db_engine(env["url"]), CredentialVault([new_key]))  # old key retired
    assert store.credentials("acme/beeline") == {"client_id": "id-1", "client_secret": "secret-1"}
