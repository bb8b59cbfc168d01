"""Scale-out: the project's sync jobs on real Celery workers (Redis broker, PostgreSQL everywhere).

Two phases over fresh tenants: one worker process, then two. Each phase runs one partitioned
sync run per connection (Beeline and SAP Fieldglass for every tenant) at the same time, every
step going through Redis to the workers, and checks the ATS rows. Wall times are printed.
"""

import os
import re
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
from integration_pipelines.db.engine import create_db_engine
from integration_pipelines.definitions import defs, sync_job_name
from integration_pipelines.scale.celery import (
    instance_yaml,
    worker_command,
    write_worker_config,
)
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES
from tests.helpers import connect, scalar

pytestmark = pytest.mark.postgres

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/13"  # databases of their own: other users of this Redis
BACKEND = f"redis://{REDIS_HOST}:{REDIS_PORT}/14"
ROOT = Path(__file__).resolve().parents[2]
# one run per process, as a run launcher would: the run's own process plans it and hands every
# step to Celery through the broker, then waits for the workers' results
RUN_ONE = """
import sys
import dagster as dg
from integration_pipelines.scale.celery import reconstructable_job
job_name, partition = sys.argv[1], sys.argv[2]
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(
        reconstructable_job(job_name), instance=instance, tags={"dagster/partition": partition}
    )
sys.exit(0 if result.success else 1)
"""
KEY_PREFIX = f"it-{uuid.uuid4().hex[:8]}:"  # this run's keys only: other runs may share this Redis
TENANTS_PER_PHASE = 3
CONNECTORS = ("beeline", "sap_fieldglass")
JOBS_PER_TENANT = 300 + 250  # the Beeline and Fieldglass simulators' postings


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def dagster_storage_db():
    """A throwaway PostgreSQL database for the Dagster instance (runs, events, partitions)."""
    admin = create_db_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"dg_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(POSTGRES_URL).set(database=name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Workers:
    """Celery worker subprocesses, each in its own process group, stopped with SIGTERM."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.procs = env, logs, []
        self.steps_run: dict[str, int] = {}  # steps each stopped worker ran (from its log)

    def start(self, count: int) -> None:
        from celery import Celery

        for i in range(count):
            name = f"it{i}-{uuid.uuid4().hex[:6]}"
            log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
            proc = subprocess.Popen(
                worker_command(name, concurrency=1, loglevel="INFO"),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs.append((proc, log, name))
        app = Celery(broker=BROKER, backend=BACKEND)
        app.conf.broker_transport_options = {"global_keyprefix": KEY_PREFIX}
        deadline = time.monotonic() + 60
        expected = {f"{name}@" for _, _, name in self.procs}
        while time.monotonic() < deadline:
            for proc, _, name in self.procs:
                assert proc.poll() is None, f"worker {name} exited: {self.tail(name)}"
            replies = app.control.ping(timeout=1.0) or []
            seen = {w.split("@")[0] + "@" for reply in replies for w in reply}
            if expected <= seen:
                app.close()
                return
        app.close()
        raise AssertionError(f"workers did not answer a ping within 60 s: {self.tail(self.procs[0][2])}")

    def tail(self, name: str, chars: int | None = 3000) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-chars:] if chars else text

    def stop(self) -> None:
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown of the worker and its children
        for proc, log, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            log.close()
        self.steps_run = {
            name: len(re.findall(r"Task execute_plan\[[^\]]+\] succeeded", self.tail(name, None)))
            for _, _, name in self.procs
        }
        self.procs = []


@pytest.mark.timeout(900)
def test_sync_runs_on_celery_workers(
    pg_engine, vault, vault_key, sandbox, dagster_storage_db, tmp_path, monkeypatch
) -> None:
    if not _redis_up():
        message = f"Celery test needs Redis on {REDIS_HOST}:{REDIS_PORT} (the broker); it is not answering"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    storage = dagster_storage_db
    (home / "dagster.yaml").write_text(
        instance_yaml(
            username=storage.username,
            password_env="DAGSTER_PG_PASSWORD",
            hostname=storage.host,
            port=storage.port or 5432,
            db_name=storage.database,
        )
    )
    config_dir = tmp_path / "celery_config"
    write_worker_config(config_dir, BROKER, BACKEND, KEY_PREFIX)
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_PASSWORD": storage.password or "",
        "INTEGRATION_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False),
        "INTEGRATION_VAULT_KEYS": vault_key,
        "INTEGRATION_SANDBOX": "1",
        "INTEGRATION_CELERY_BROKER_URL": BROKER,
        "INTEGRATION_CELERY_BACKEND_URL": BACKEND,
        "INTEGRATION_CELERY_KEY_PREFIX": KEY_PREFIX,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    worker_env = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(config_dir), str(ROOT)]),
    }

    store = ConnectionStore(pg_engine, vault)
    connectors = load_connectors()
    workers = Workers(worker_env, tmp_path)
    times: dict[int, float] = {}
    try:
        with dg.DagsterInstance.get() as instance:
            for count in (1, 2):
                tenants = [f"c{count}{uuid.uuid4().hex[:8]}" for _ in range(TENANTS_PER_PHASE)]
                runs = []
                for tenant in tenants:
                    for name in CONNECTORS:
                        connection_id, _ = connect(store, sandbox, connectors[name], tenant)
                        instance.add_dynamic_partitions(f"{name}_connections", [connection_id])
                        runs.append((name, connection_id))
                workers.start(count)

                started = time.monotonic()
                launches = []
                for name, connection_id in runs:
                    out = tmp_path / f"run-{connection_id.replace('/', '_')}.log"
                    with out.open("wb") as log:
                        proc = subprocess.Popen(
                            [sys.executable, "-c", RUN_ONE, sync_job_name(name), connection_id],
                            cwd=ROOT,
                            env=worker_env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    launches.append((connection_id, proc, out))
                outcomes = []
                for connection_id, proc, out in launches:
                    try:
                        proc.wait(timeout=600)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                    outcomes.append((connection_id, proc.returncode == 0, out.read_text(errors="replace")))
                times[count] = time.monotonic() - started
                workers.stop()
                failed = [f"{c}: {out[-2000:]}" for c, ok, out in outcomes if not ok]
                assert not failed, "runs failed:\n" + "\n".join(failed)
                for tenant in tenants:
                    assert scalar(pg_engine, "select count(*) from job where tenant_id = :t", t=tenant) == (
                        JOBS_PER_TENANT
                    )
                    placements = scalar(
                        pg_engine, "select count(*) from placement where tenant_id = :t", t=tenant
                    )
                    expected = len(sandbox.simulators["beeline"].assignments(tenant)) + len(
                        sandbox.simulators["sap_fieldglass"].work_orders(tenant)
                    )
                    assert placements == expected > 0
                for name, connection_id in runs:
                    links = scalar(
                        pg_engine,
                        "select count(*) from record_links where connection_id = :c and entity = 'job'",
                        c=connection_id,
                    )
                    assert links == (300 if name == "beeline" else 250)
                for _, connection_id in runs:
                    (record,) = instance.get_runs(
                        filters=dg.RunsFilter(tags={"dagster/partition": connection_id})
                    )
                    assert record.status == dg.DagsterRunStatus.SUCCESS
                # every step (sync assets and their checks) ran on a worker, and each worker took some
                steps = sum(
                    len(defs.resolve_job_def(sync_job_name(name)).graph.node_names()) for name, _ in runs
                )
                assert sum(workers.steps_run.values()) == steps, workers.steps_run
                assert len(workers.steps_run) == count and all(workers.steps_run.values()), workers.steps_run
    finally:
        workers.stop()
    print(
        f"\ncelery wall time for {len(CONNECTORS) * TENANTS_PER_PHASE} sync runs: "
        f"1 worker {times.get(1, float('nan')):.1f} s, 2 workers {times.get(2, float('nan')):.1f} s",
        file=sys.stderr,
    )
