"""`serve-all` as a real process: webserver, daemon and receiver come up, and SIGTERM stops all three."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from integration_pipelines.db.engine import create_db_engine, migrate
from integration_pipelines.resources.vault import CredentialVault
from tests.production.test_daemon_postgres import ROOT, dagster_pg_env
from tests.production.test_deploy_config import throwaway_database

pytestmark = pytest.mark.postgres

READY_TIMEOUT = 150.0

# `integration-pipelines serve-all` once the command is registered in cli/main.py; the module until then
SERVE_ALL = [sys.executable, "-m", "integration_pipelines.cli.main", "serve-all"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> dict[int, str]:
    """Every living process below `pid`, with its command line."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] != "Z":
            parents.setdefault(stat[1], []).append(int(entry.name))
    found, todo = {}, list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            continue
        todo.extend(parents.get(child, []))
    return found


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if (stat := _stat(pid)) and stat[0] != "Z"]


def wait_for(url: str, process: subprocess.Popen, deadline: float) -> httpx.Response:
    while True:
        assert process.poll() is None, f"serve-all exited with {process.returncode} before {url} answered"
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {READY_TIMEOUT}s"
        time.sleep(0.5)


def test_serve_all_starts_everything_and_stops_on_sigterm(tmp_path) -> None:
    admin_url = os.environ["INTEGRATION_TEST_POSTGRES_URL"]
    with throwaway_database(admin_url) as dagster_db, throwaway_database(admin_url) as ats_db:
        ats_url = ats_db.render_as_string(hide_password=False)
        home = tmp_path / "dagster_home"  # empty: serve-all writes deploy/dagster.yaml into it
        web_port, receiver_port = free_port(), free_port()
        env = {
            **os.environ,
            **dagster_pg_env(dagster_db),
            "DAGSTER_HOME": str(home),
            "INTEGRATION_DATABASE_URL": ats_url,
            "INTEGRATION_VAULT_KEYS": CredentialVault.generate_key(),
        }
        log_path = tmp_path / "serve_all.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    *SERVE_ALL,
                    "--webserver-port",
                    str(web_port),
                    "--receiver-port",
                    str(receiver_port),
                    "--receiver-workers",
                    "2",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        children: dict[int, str] = {}
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            info = wait_for(f"http://127.0.0.1:{web_port}/server_info", process, deadline).json()
            assert "dagster_webserver_version" in info
            assert wait_for(f"http://127.0.0.1:{receiver_port}/health", process, deadline).status_code == 200
            while "ready" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert (home / "dagster.yaml").exists()
            engine = create_db_engine(ats_url)
            migrate(engine)  # already at head: serve-all migrated it
            engine.dispose()

            children = descendants(process.pid)
            commands = list(children.values())
            assert any("dagster-webserver" in c for c in commands), commands
            assert any("dagster-daemon" in c for c in commands), commands
            assert any("integration_pipelines.cli.main serve" in c for c in commands), commands

            os.kill(process.pid, signal.SIGTERM)
            code = process.wait(timeout=30)
            output = log_path.read_text()
            assert code == 0, output[-3000:]
            stop_by = time.monotonic() + 20
            while alive(list(children)) and time.monotonic() < stop_by:
                time.sleep(0.2)
            assert not alive(list(children)), [children[p] for p in alive(list(children))]
            assert "serve-all: stopped" in output
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for pid in alive(list(children)):
                os.kill(pid, signal.SIGKILL)
