"""`integration-pipelines serve-all`: run the production stack on one host.

Starts the Dagster webserver, the Dagster daemon (schedules, sensors, the run queue) and the
webhook receiver as three child processes, each in its own process group so that signals
reach them (a child sharing a non-interactive parent's group can have SIGINT ignored, and
Dagster maps SIGTERM onto its SIGINT handler). Stops all three on Ctrl-C or SIGTERM, and
stops the others and exits non-zero when one of them dies.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import sqlalchemy as sa
import yaml

from integration_pipelines.db.engine import create_db_engine, migrate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"
READY_TIMEOUT_SECONDS = 180.0


@dataclass
class Child:
    """One part of the stack: its command, where it answers when ready, and its process."""

    name: str
    command: list[str]
    ready_url: str
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        # own session = own process group: signals go to the part and everything it spawned
        self.process = subprocess.Popen(self.command, env=env, start_new_session=True)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass


class _Stop(Exception):
    """Raised from the signal handler to leave the wait loop."""


def _executable(name: str) -> str:
    """A console script of this environment (next to the interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise click.ClickException(f"`{name}` is not installed in this environment (pip install -e .)")
    return found


def _env_names(node: object) -> set[str]:
    """Environment variables a dagster.yaml reads through `{env: NAME}`."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        return set().union(*(_env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node)) if node else set()
    return set()


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def prepare_dagster_home(home: Path, instance_config: Path) -> Path:
    """`home/dagster.yaml`, copied from `instance_config` when the home has none; checks its env vars."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        if not instance_config.exists():
            raise click.ClickException(
                f"{target} does not exist and there is no instance config to copy ({instance_config}); "
                "pass --instance-config deploy/dagster.yaml"
            )
        shutil.copyfile(instance_config, target)
        click.echo(f"wrote {target} from {instance_config}")
    try:
        config = yaml.safe_load(target.read_text()) or {}
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{target} is not valid YAML: {exc}") from None
    missing = sorted(name for name in _env_names(config) if not os.environ.get(name))
    if missing:
        raise click.ClickException(f"{target} reads environment variables that are not set: {missing}")
    return target


def check_dagster_instance(home: Path) -> None:
    """Load the Dagster instance once: validates dagster.yaml and reaches its storage."""
    from dagster import DagsterInstance

    try:
        instance = DagsterInstance.from_config(str(home))
    except Exception as exc:  # noqa: BLE001 - any failure here means the same thing to the operator
        raise click.ClickException(
            f"the Dagster instance in {home} could not be loaded: {type(exc).__name__}: {exc}"
        ) from None
    instance.dispose()


def prepare_integration_database(url: str | None) -> str:
    """Check `url` is a reachable PostgreSQL database and bring it to the newest migration."""
    if not url:
        raise click.ClickException(
            "INTEGRATION_DATABASE_URL is not set: serve-all runs on PostgreSQL "
            "(postgresql+psycopg2://user:password@host:5432/db)"
        )
    if not url.startswith(("postgresql", "postgres://")):
        raise click.ClickException(
            f"INTEGRATION_DATABASE_URL must be a PostgreSQL URL for serve-all, got {_redact(url)!r} "
            "(SQLite is for the demo and tests)"
        )
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise click.ClickException(
            f"cannot reach the integration database at {_redact(url)}: {reason}. "
            "Is PostgreSQL running, and are the host, port, user and password right?"
        ) from None
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


def _probe_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def wait_until_ready(children: list[Child], timeout: float) -> None:
    """Poll every child's ready URL until each answers 200; fail if one exits or time runs out."""
    pending = {c.name: c for c in children}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for child in list(pending.values()):
                code = child.exit_code()
                if code is not None:
                    raise click.ClickException(f"{child.name} exited with code {code} while starting")
                try:
                    if client.get(child.ready_url).status_code == 200:
                        del pending[child.name]
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise click.ClickException(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.5)


def stop_all(children: list[Child], timeout: float) -> None:
    """SIGTERM every child's process group, then SIGKILL the groups still alive after `timeout`."""
    for child in children:
        if child.exit_code() is None:
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{child.name} did not stop within {timeout:.0f}s; killing it", err=True)
            child.signal_group(signal.SIGKILL)
            child.process.wait()
        # the group may still hold grandchildren (code servers, uvicorn workers)
        child.signal_group(signal.SIGKILL)


def build_children(
    workspace: Path, host: str, webserver_port: int, receiver_port: int, receiver_workers: int
) -> list[Child]:
    probe = _probe_host(host)
    return [
        Child(
            "dagster-webserver",
            [_executable("dagster-webserver"), "-w", str(workspace), "-h", host, "-p", str(webserver_port)],
            f"http://{probe}:{webserver_port}/server_info",
        ),
        Child(
            "dagster-daemon",
            [_executable("dagster-daemon"), "run", "-w", str(workspace)],
            "",
        ),
        Child(
            "webhook receiver",
            [
                sys.executable,
                "-m",
                "integration_pipelines.cli.main",
                "serve",
                "--host",
                host,
                "--port",
                str(receiver_port),
                "--workers",
                str(receiver_workers),
            ],
            f"http://{probe}:{receiver_port}/health",
        ),
    ]


def _default_workspace() -> Path:
    here = Path.cwd() / "workspace.yaml"
    return here if here.exists() else PROJECT_ROOT / "workspace.yaml"


@click.command("serve-all")
@click.option(
    "--dagster-home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DAGSTER_HOME",
    required=True,
    help="Dagster home (default: $DAGSTER_HOME); gets deploy/dagster.yaml when it has no dagster.yaml.",
)
@click.option("--webserver-port", default=3000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--receiver-port", default=8800, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface both servers listen on.")
@click.option("--receiver-workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--workspace",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Dagster workspace file (default: ./workspace.yaml, else the project's).",
)
@click.option(
    "--instance-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_INSTANCE_CONFIG,
    show_default=True,
    help="dagster.yaml copied into the Dagster home when it has none.",
)
@click.option("--stop-timeout", default=20.0, show_default=True, help="Seconds to wait before SIGKILL.")
def serve_all(
    dagster_home: Path,
    webserver_port: int,
    receiver_port: int,
    host: str,
    receiver_workers: int,
    workspace: Path | None,
    instance_config: Path,
    stop_timeout: float,
) -> None:
    """Run the Dagster webserver, the Dagster daemon and the webhook receiver until stopped."""
    dagster_home = dagster_home.resolve()
    workspace = (workspace or _default_workspace()).resolve()
    if not workspace.exists():
        raise click.ClickException(f"no workspace file at {workspace}; pass --workspace")
    url = prepare_integration_database(os.environ.get("INTEGRATION_DATABASE_URL"))
    prepare_dagster_home(dagster_home, instance_config)
    check_dagster_instance(dagster_home)
    if not os.environ.get("INTEGRATION_VAULT_KEYS") and not os.environ.get("INTEGRATION_VAULT_KEY_FILE"):
        click.echo(
            "warning: neither INTEGRATION_VAULT_KEYS nor INTEGRATION_VAULT_KEY_FILE is set; "
            "runs will not be able to decrypt connections' credentials",
            err=True,
        )

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "INTEGRATION_DATABASE_URL": url}
    children = build_children(workspace, host, webserver_port, receiver_port, receiver_workers)

    def _on_signal(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    died: Child | None = None
    try:
        for child in children:
            child.start(env)
        wait_until_ready([c for c in children if c.ready_url], READY_TIMEOUT_SECONDS)
        shown = _probe_host(host)
        click.echo(f"dagster webserver  http://{shown}:{webserver_port}  (DAGSTER_HOME={dagster_home})")
        click.echo(f"dagster daemon     pid {children[1].process.pid}  (schedules, sensors, run queue)")
        click.echo(
            f"webhook receiver   http://{shown}:{receiver_port}  ({receiver_workers} workers: "
            "POST /webhooks/<connection_id>, GET /health, GET /status/<tenant>)"
        )
        click.echo("serve-all: ready; Ctrl-C or SIGTERM stops everything")
        while died is None:
            died = next((c for c in children if c.exit_code() is not None), None)
            if died is None:
                time.sleep(0.5)
    except _Stop as stop:
        click.echo(f"serve-all: {stop.args[0]} received, stopping")
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        stop_all(children, stop_timeout)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if died is not None:
        raise click.ClickException(f"{died.name} exited with code {died.exit_code()}; stopped the others")
    click.echo("serve-all: stopped")


if __name__ == "__main__":
    serve_all()
