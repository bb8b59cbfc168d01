"""Running the project's jobs on Celery workers (dagster-celery), with Redis as the broker.

Install: `pip install "dagster-celery>=0.29.27,<0.30" "celery[redis]"` (tested: dagster-celery
0.29.27, celery 5.7.0, kombu 5.7.0, redis 8.2.0).

**Why Redis.** It is one small service that is both the broker (`redis://host:6379/0`) and the
result backend (`redis://host:6379/1`); RabbitMQ (`pyamqp://guest@host//`, dagster-celery's
default) works as well, with `rpc://` or Redis for results. Keep the broker private: its messages
name jobs and carry run ids, never credentials (those stay in the vault, in the database).

**What has to be shared.** The Celery executor sends every step of a run to the `dagster` queue;
a worker rebuilds the job from its code pointer, opens the Dagster instance named in the message
and runs the step. So every worker and the process that launches runs need

* the same Dagster instance on persistent storage: `DAGSTER_HOME` whose `dagster.yaml` uses
  dagster-postgres (`scheme: postgresql+psycopg2`, see `instance_yaml`); SQLite storage in a
  local directory does not work across machines;
* this package importable (same code version), and the same environment: `INTEGRATION_DATABASE_URL`
  (PostgreSQL: stream locks and inbox claims are only cross-process there, see `sync.locks`),
  `INTEGRATION_VAULT_KEYS`, and `INTEGRATION_CELERY_BROKER_URL` / `INTEGRATION_CELERY_BACKEND_URL`
  (optionally `INTEGRATION_CELERY_KEY_PREFIX` to share a Redis with other deployments).

**Starting workers** (each is one Celery worker; add machines or processes to scale out):

    # dagster-celery's wrapper: reads the executor config block from YAML (see `worker_yaml`),
    # writes it as a `dagster_celery_config` module and runs `celery -A dagster_celery.app worker`
    dagster-celery worker start -A dagster_celery.app -y celery.yaml -n worker1 -- --concurrency=2

    # or Celery directly, with `dagster_celery_config.py` (see `worker_config_module`) on PYTHONPATH
    celery -A dagster_celery.app worker -Q dagster --prefetch-multiplier=1 --concurrency=2 -n worker1@%h

`worker_command` builds the second form. Stop a worker with SIGTERM (warm shutdown: it finishes
its current step); `dagster-celery worker terminate` / `celery ... control shutdown` also work.
`--prefetch-multiplier=1` keeps a busy worker from hoarding steps another one could run.

**Using it.** `celery_definitions()` is the project's Definitions with the Celery executor as
every job's default; `integration_pipelines.scale.definitions` exposes it as a code location
(`-m integration_pipelines.scale.definitions`). `reconstructable_job(name)` gives a job to pass to
`dagster.execute_job` (jobs run by a daemon or `dagster job launch` are reconstructed the same way).
"""

import os
import sys
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster_celery import celery_executor

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
BROKER_ENV = "INTEGRATION_CELERY_BROKER_URL"
BACKEND_ENV = "INTEGRATION_CELERY_BACKEND_URL"
KEY_PREFIX_ENV = "INTEGRATION_CELERY_KEY_PREFIX"
DEFINITIONS_MODULE = "integration_pipelines.scale.definitions"
QUEUE = "dagster"  # dagster-celery routes every step to this queue unless a step is tagged otherwise


def broker_url() -> str:
    return os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL


def backend_url() -> str | None:
    return os.environ.get(BACKEND_ENV) or None


def key_prefix() -> str | None:
    return os.environ.get(KEY_PREFIX_ENV) or None


def executor_config(
    broker_url: str, backend_url: str | None = None, key_prefix: str | None = None
) -> dict[str, Any]:
    """The `celery` executor's config block; the same block goes into a worker's YAML.

    `key_prefix` (Redis only) puts every broker and result key under that prefix, so several
    deployments (or test runs) can share one Redis without taking each other's steps.
    """
    source: dict[str, Any] = {
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,  # a step whose worker died is redelivered, not lost
        "broker_connection_retry_on_startup": True,
    }
    if key_prefix:
        source["broker_transport_options"] = {"global_keyprefix": key_prefix}
        source["result_backend_transport_options"] = {"global_keyprefix": key_prefix}
    return {
        "broker": broker_url,
        "backend": backend_url or broker_url,
        "include": ["integration_pipelines.definitions"],
        "config_source": source,
    }


def celery_executor_for(
    broker_url: str, backend_url: str | None = None, key_prefix: str | None = None
) -> dg.ExecutorDefinition:
    """dagster-celery's executor for this project: steps go to workers through `broker_url`.

    Results go to `backend_url` (default: the broker, which is right for Redis). Retries follow
    the run's retry settings; transient partner failures are retried by the assets themselves.
    """
    return celery_executor.configured(executor_config(broker_url, backend_url, key_prefix), name="celery")


def celery_definitions(
    broker: str | None = None, backend: str | None = None, connectors: list | None = None
) -> dg.Definitions:
    """The project's Definitions with the Celery executor as the default of every job."""
    from integration_pipelines.connectors.registry import load_connectors
    from integration_pipelines.definitions import build_definitions

    base = build_definitions(connectors if connectors is not None else list(load_connectors().values()))
    executor = celery_executor_for(broker or broker_url(), backend or backend_url(), key_prefix())
    return dg.Definitions.merge(base, dg.Definitions(executor=executor))


def reconstructable_job(job_name: str, working_directory: str | None = None) -> ReconstructableJob:
    """`job_name` from `integration_pipelines.scale.definitions`, as workers will rebuild it."""
    repository = ReconstructableRepository.for_module(
        DEFINITIONS_MODULE, "defs", working_directory=working_directory or os.getcwd()
    )
    return repository.get_reconstructable_job(job_name)


def instance_yaml(*, username: str, password_env: str, hostname: str, port: int, db_name: str) -> str:
    """A `dagster.yaml` on PostgreSQL storage (shared by the launcher and every worker)."""
    return (
        "storage:\n"
        "  postgres:\n"
        "    postgres_db:\n"
        f"      username: {username}\n"
        f"      password: {{env: {password_env}}}\n"
        f"      hostname: {hostname}\n"
        f"      port: {port}\n"
        f"      db_name: {db_name}\n"
        "      scheme: postgresql+psycopg2\n"
        "telemetry:\n"
        "  enabled: false\n"
    )


def worker_yaml(broker_url: str, backend_url: str | None = None, key_prefix: str | None = None) -> str:
    """The YAML for `dagster-celery worker start -y`: the executor's config block."""
    import yaml

    return yaml.safe_dump({"execution": {"config": executor_config(broker_url, backend_url, key_prefix)}})


def worker_config_module(
    broker_url: str, backend_url: str | None = None, key_prefix: str | None = None
) -> str:
    """`dagster_celery_config.py`: what `dagster_celery.app` reads for its broker and settings."""
    config = executor_config(broker_url, backend_url, key_prefix)
    lines = [f"broker_url = {config['broker']!r}", f"result_backend = {config['backend']!r}"]
    lines += [f"{key} = {value!r}" for key, value in config["config_source"].items()]
    return "\n".join(lines) + "\n"


def write_worker_config(
    directory: Path, broker_url: str, backend_url: str | None = None, key_prefix: str | None = None
) -> Path:
    """Write `dagster_celery_config.py` into `directory` (put it on the worker's PYTHONPATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dagster_celery_config.py"
    path.write_text(worker_config_module(broker_url, backend_url, key_prefix))
    return path


def worker_command(name: str, *, concurrency: int = 1, loglevel: str = "INFO") -> list[str]:
    """`celery -A dagster_celery.app worker` for one worker on the project's queue."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "dagster_celery.app",
        "worker",
        "-Q",
        QUEUE,
        "--prefetch-multiplier=1",
        f"--concurrency={concurrency}",
        "--loglevel",
        loglevel,
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
