"""Status tokens: issued once, stored as a hash only, replaced on reissue; the admin token; the CLI."""

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from integration_pipelines.canonical.tables import tenants
from integration_pipelines.cli.tenants import tenants as tenants_cli
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.health.tokens import (
    ENV_ADMIN_TOKEN,
    UnknownTenantError,
    is_admin_token,
    issue_token,
    tenant_for_token,
)


def _add_tenants(engine: sa.Engine, *ids: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            tenants.insert(), [{"id": i, "name": i.title(), "created_at": datetime.now(UTC)} for i in ids]
        )


def _stored_hash(engine: sa.Engine, tenant_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(tenants.c.status_token_hash).where(tenants.c.id == tenant_id)
        ).scalar_one()


def test_issue_verify_and_replace(engine: sa.Engine) -> None:
    _add_tenants(engine, "acme", "globex")
    first = issue_token(engine, "acme")
    assert re.fullmatch(r"st_[A-Za-z0-9_-]{43}", first)
    assert tenant_for_token(engine, first) == "acme"

    other = issue_token(engine, "globex")
    assert other != first
    assert tenant_for_token(engine, other) == "globex"

    second = issue_token(engine, "acme")
    assert second != first
    assert tenant_for_token(engine, second) == "acme"
    assert tenant_for_token(engine, first) is None  # replaced: the old token no longer works
    assert tenant_for_token(engine, other) == "globex"  # other tenants are untouched


@pytest.mark.parametrize("token", [None, "", "st_", "st_nope", "garbage", "st_" + "a" * 500])
def test_unknown_tokens(engine: sa.Engine, token: str | None) -> None:
    _add_tenants(engine, "acme")
    issue_token(engine, "acme")
    assert tenant_for_token(engine, token) is None


def test_tenant_without_a_token_matches_nothing(engine: sa.Engine) -> None:
    _add_tenants(engine, "acme")
    assert _stored_hash(engine, "acme") is None
    assert tenant_for_token(engine, "st_" + "A" * 43) is None


def test_unknown_tenant_gets_no_token(engine: sa.Engine) -> None:
    with pytest.raises(UnknownTenantError):
        issue_token(engine, "nobody")


def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "tokens.db"
    engine = create_db_engine(f"sqlite:///{db}")
    migrate(engine)
    _add_tenants(engine, "acme")
    token = issue_token(engine, "acme")
    engine.dispose()

    assert (
        _stored_hash(create_db_engine(f"sqlite:///{db}"), "acme")
        == hashlib.sha256(token.encode()).hexdigest()
    )
    files = [p for p in tmp_path.iterdir() if p.name.startswith("tokens.db")]  # the db and any -wal/-journal
    data = b"".join(p.read_bytes() for p in files)
    assert hashlib.sha256(token.encode()).hexdigest().encode() in data
    assert token.encode() not in data
    assert token[3:].encode() not in data  # nor the random part without its prefix


def test_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ADMIN_TOKEN, raising=False)
    assert not is_admin_token("anything")
    assert not is_admin_token("")
    assert not is_admin_token(None)

    monkeypatch.setenv(ENV_ADMIN_TOKEN, "")
    assert not is_admin_token("")

    monkeypatch.setenv(ENV_ADMIN_TOKEN, "cs-admin-4f1d")
    assert is_admin_token("cs-admin-4f1d")
    assert not is_admin_token("cs-admin-4f1")
    assert not is_admin_token("cs-admin-4f1dx")
    assert not is_admin_token(None)
    assert not is_admin_token("x" * 10_000)


def test_cli_prints_the_token_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    _add_tenants(engine, "acme")

    result = CliRunner().invoke(tenants_cli, ["token", "acme", "--database-url", url])
    assert result.exit_code == 0, result.output
    token = re.search(r"st_[A-Za-z0-9_-]{43}", result.output).group(0)
    assert f"/status/acme?token={token}" in result.output
    assert "cannot be shown again" in result.output
    assert tenant_for_token(engine, token) == "acme"

    again = CliRunner().invoke(tenants_cli, ["token", "acme", "--database-url", url])
    assert again.exit_code == 0
    assert token not in again.output
    assert tenant_for_token(engine, token) is None

    missing = CliRunner().invoke(tenants_cli, ["token", "nobody", "--database-url", url])
    assert missing.exit_code != 0
    assert "no tenant 'nobody'" in missing.output
    engine.dispose()
