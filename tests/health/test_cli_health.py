"""`health` command: the table of every connection's health, migrated database, tenant filter."""

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from integration_pipelines.cli.health import health
from integration_pipelines.db.engine import create_db_engine, migrate
from tests.health import test_derive
from tests.health.test_derive import History


def test_health_table(tmp_path, tenant, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    real_now = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(test_derive, "NOW", real_now)  # History writes relative to the wall clock
    ok = History(engine, tenant)
    ok.run("succeeded", 12, records=40, rejected=2)
    broken = History(engine, tenant, connector="textkernel")
    for minutes in (30, 20, 10):
        broken.run("failed", minutes)
    broken.outbox(2, status="dead")
    History(engine, f"{tenant}x").run("succeeded", 5)
    engine.dispose()

    result = CliRunner().invoke(health, ["--tenant", tenant], env={"INTEGRATION_DATABASE_URL": url})

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["connection", "status", "last"]
    body = {line.split()[0]: line for line in lines[2:]}
    assert set(body) == {ok.id, broken.id}
    assert "healthy" in body[ok.id] and "12 min ago" in body[ok.id] and "0% / 0%" in body[ok.id]
    assert " 40 " in body[ok.id]
    assert "down" in body[broken.id] and "never" in body[broken.id] and "100% / 100%" in body[broken.id]
    assert "3 runs in a row failed" not in body[broken.id]  # no incident opened yet: the column says "-"

    from integration_pipelines.health.incidents import evaluate_incidents

    engine = create_db_engine(url)
    evaluate_incidents(engine, now=real_now + timedelta(seconds=1))
    engine.dispose()
    result = CliRunner().invoke(health, ["--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"{tenant}x/beeline" in result.output
    [line] = [x for x in result.output.splitlines() if x.startswith(broken.id)]
    assert "down since 0 min ago: 3 runs in a row failed" in line


def test_health_on_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(health, ["--database-url", url, "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "no connections for tenant acme"
