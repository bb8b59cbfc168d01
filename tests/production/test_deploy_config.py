"""deploy/dagster.yaml: valid for Dagster, limits runs per partner, and the jobs carry the tag it keys on."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from integration_pipelines.cli.serve_all import _env_names
from integration_pipelines.db.engine import create_db_engine

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PG_ENV = {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}


def _config() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[sa.URL]:
    """A new database owned by the test role of `admin_url`, dropped afterwards."""
    admin = create_db_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"it_deploy_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_storage_is_postgres_with_every_host_and_credential_from_the_environment() -> None:
    config = _config()
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert all(isinstance(db[k], dict) and set(db[k]) == {"env"} for k in ("hostname", "port", "username"))
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"} and db["db_name"] == {"env": "DAGSTER_PG_DB"}
    assert _env_names(config) == PG_ENV
    assert config["telemetry"] == {"enabled": False}


def test_runs_are_queued_and_limited_per_connector() -> None:
    config = _config()
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] > 0
    limits = {limit["key"]: limit for limit in runs["tag_concurrency_limits"]}
    assert limits["connector"]["value"] == {"applyLimitPerUniqueValue": True}
    assert 1 <= limits["connector"]["limit"] <= runs["max_concurrent_runs"]
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["run_retries"]["enabled"] is True


def test_every_sync_job_carries_the_connector_tag() -> None:
    from integration_pipelines.connectors.registry import load_connectors
    from integration_pipelines.definitions import defs, sync_job_name

    connectors = load_connectors()
    syncing = [c for c in connectors.values() if c.spec.inbound_streams()]
    assert syncing
    for connector in syncing:
        job = defs.resolve_job_def(sync_job_name(connector.name))
        assert job.tags.get("connector") == connector.name
    # and every job with a connector-partitioned asset does, so the queue can limit it
    for job in defs.resolve_all_job_defs():
        if job.name.endswith(("_sync", "_webhooks")):
            assert job.tags.get("connector") in connectors, job.name


@pytest.mark.postgres
def test_dagster_accepts_the_config_on_postgresql(tmp_path, monkeypatch) -> None:
    from dagster import DagsterInstance
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator

    with throwaway_database(os.environ["INTEGRATION_TEST_POSTGRES_URL"]) as url:
        monkeypatch.setenv("DAGSTER_PG_HOST", url.host)
        monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
        monkeypatch.setenv("DAGSTER_PG_USER", url.username)
        monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
        monkeypatch.setenv("DAGSTER_PG_DB", url.database)
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
        config, _custom_class = dagster_instance_config(str(home))
        assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "connector"

        instance = DagsterInstance.from_config(str(home))
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            queue = instance.get_concurrency_config().run_queue_config
            assert queue.max_concurrent_runs == config["concurrency"]["runs"]["max_concurrent_runs"]
            assert queue.tag_concurrency_limits[0]["value"] == {"applyLimitPerUniqueValue": True}
            assert instance.run_retries_enabled and not instance.telemetry_enabled
        finally:
            instance.dispose()
        engine = create_db_engine(url.render_as_string(hide_password=False))
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        engine.dispose()
        assert {"runs", "event_logs", "jobs", "instigators"} <= tables


def test_helm_values_carry_the_same_limits_and_driver() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    runs = _config()["concurrency"]["runs"]
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert "integration_pipelines.definitions" in location["dagsterApiGrpcArgs"]
    assert values["telemetry"]["enabled"] is False
