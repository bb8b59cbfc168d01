"""The real queue: a run submitted to the QueuedRunCoordinator is launched by a `dagster-daemon`
subprocess on PostgreSQL storage, writes the ATS, and leaves its events in PostgreSQL."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault
from tests.helpers import connect, scalar
from tests.production.test_deploy_config import DEPLOY, throwaway_database

pytestmark = pytest.mark.postgres

ROOT = DEPLOY.parent
BIN = Path(sys.executable).parent
RUN_TIMEOUT = 90.0


def dagster_pg_env(url: sa.URL) -> dict[str, str]:
    return {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGTERM the process group, SIGKILL it if it is still there after `timeout`; the exit code."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"{process.args[0]} did not stop within {timeout}s of SIGTERM") from None
    finally:
        try:  # anything the group spawned (code servers, run workers)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_queued_run_is_launched_by_the_daemon(sandbox, tenant, tmp_path, monkeypatch) -> None:
    from dagster import DagsterInstance, DagsterRunStatus

    admin_url = os.environ["INTEGRATION_TEST_POSTGRES_URL"]
    with throwaway_database(admin_url) as dagster_db, throwaway_database(admin_url) as ats_db:
        ats_url = ats_db.render_as_string(hide_password=False)
        engine = create_db_engine(ats_url)
        migrate(engine)
        key = CredentialVault.generate_key()
        connection_id, _ = connect(
            ConnectionStore(engine, CredentialVault([key])), sandbox, load_connectors()["beeline"], tenant
        )

        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
        env = {
            **os.environ,
            **dagster_pg_env(dagster_db),
            "DAGSTER_HOME": str(home),
            "INTEGRATION_SANDBOX": "1",
            "INTEGRATION_DATABASE_URL": ats_url,
            "INTEGRATION_VAULT_KEYS": key,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        instance = DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions("beeline_connections", [connection_id])
        daemon_log = tmp_path / "daemon.log"
        with daemon_log.open("wb") as log:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            run_id = str(uuid.uuid4())
            # `dagster job launch` submits through the instance's run coordinator: the run is queued
            launch = subprocess.run(
                [
                    str(BIN / "dagster"),
                    "job",
                    "launch",
                    "-w",
                    str(ROOT / "workspace.yaml"),
                    "-j",
                    "beeline_sync",
                    "--run-id",
                    run_id,
                    "--tags",
                    json.dumps({"dagster/partition": connection_id}),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert launch.returncode == 0, launch.stdout + launch.stderr

            deadline = time.monotonic() + RUN_TIMEOUT
            run = instance.get_run_by_id(run_id)
            while run.status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE):
                assert daemon.poll() is None, f"the daemon exited:\n{daemon_log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, (
                    f"run still {run.status} after {RUN_TIMEOUT}s:\n{daemon_log.read_text()[-3000:]}"
                )
                time.sleep(1)
                run = instance.get_run_by_id(run_id)
            assert run.status == DagsterRunStatus.SUCCESS, daemon_log.read_text()[-3000:]
            assert run.tags["connector"] == "beeline" and run.tags["dagster/partition"] == connection_id
        finally:
            code = stop_group(daemon)
            instance.dispose()
        assert code == 0, daemon_log.read_text()[-3000:]

        dagster_engine = create_db_engine(dagster_db.render_as_string(hide_password=False))
        with dagster_engine.connect() as conn:
            events = conn.execute(
                sa.text("select dagster_event_type from event_logs where run_id = :r order by id"),
                {"r": run_id},
            ).scalars()
            kinds = [k for k in events if k]
        dagster_engine.dispose()
        # queued by the coordinator (ENQUEUED), launched by the daemon's queue (STARTING), run to the end
        lifecycle = [k for k in kinds if k.startswith("PIPELINE_")]
        expected = ["PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS"]
        assert lifecycle == expected, kinds
        assert kinds.count("ASSET_MATERIALIZATION") == 3
        assert scalar(engine, "select count(*) from job where tenant_id = :t", t=tenant) == 300
        engine.dispose()
