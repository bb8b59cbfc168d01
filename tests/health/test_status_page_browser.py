"""The status page in a real headless browser (Debian's Chromium): mobile and desktop screenshots,
and the DOM as the browser built it.

Needs `/usr/bin/chromium` (`apt-get install -y chromium`). Without it the tests skip, except
under `CI=true`, where they fail. Screenshots go to `test-output/status_page/` at the repo root.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration_pipelines.health.tokens import ENV_ADMIN_TOKEN, issue_token
from integration_pipelines.local_server import LocalServer
from tests.health.test_status_page import (
    A_CONNECTIONS,
    ADMIN_TOKEN,
    B_CONNECTIONS,
    TENANT_A,
    TENANT_B,
    seed_status_data,
    status_app,
)

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "status_page"
MIN_PNG_BYTES = 5 * 1024
TIMEOUT = 60


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    message = f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    return result


@pytest.fixture
def served(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV_ADMIN_TOKEN, ADMIN_TOKEN)
    seed_status_data(engine)
    tokens = {TENANT_A: issue_token(engine, TENANT_A), TENANT_B: issue_token(engine, TENANT_B)}
    with LocalServer(status_app(engine), name="status page") as server:
        yield server, tokens


def test_status_page_renders_in_chromium(served, tmp_path: Path) -> None:
    chromium = _chromium()
    server, tokens = served
    OUTPUT.mkdir(parents=True, exist_ok=True)
    url = f"{server.url}/status/{TENANT_A}?token={tokens[TENANT_A]}"

    shots = {"status_mobile.png": "390,900", "status_desktop.png": "1280,900"}
    for name, size in shots.items():
        target = OUTPUT / name
        target.unlink(missing_ok=True)
        _run(chromium, tmp_path / f"profile-{name}", f"--window-size={size}", f"--screenshot={target}", url)
        assert target.exists(), f"no screenshot at {target}"
        assert target.stat().st_size > MIN_PNG_BYTES, f"{target} is only {target.stat().st_size} bytes"
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dom = _run(chromium, tmp_path / "profile-dom", "--window-size=390,900", "--dump-dom", url).stdout
    assert "All integrations" in dom or "Outage" in dom or "degraded" in dom
    assert "Acme Staffing" in dom
    for cid, title in A_CONNECTIONS.items():
        assert cid in dom and title in dom
    for cid, title in B_CONNECTIONS.items():
        assert cid not in dom and title not in dom
    assert "Globex" not in dom
    assert tokens[TENANT_A] not in dom and tokens[TENANT_B] not in dom
    assert dom.count('class="card"') == len(A_CONNECTIONS)

    # another tenant's token on this tenant's URL: no data in the browser either
    other = f"{server.url}/status/{TENANT_A}?token={tokens[TENANT_B]}"
    dom = _run(chromium, tmp_path / "profile-other", "--dump-dom", other).stdout
    for cid, title in A_CONNECTIONS.items():
        assert cid not in dom and title not in dom
    assert "not found" in dom


def test_admin_overview_renders_in_chromium(served, tmp_path: Path) -> None:
    chromium = _chromium()
    server, _ = served
    OUTPUT.mkdir(parents=True, exist_ok=True)
    target = OUTPUT / "status_overview_desktop.png"
    target.unlink(missing_ok=True)
    url = f"{server.url}/status?token={ADMIN_TOKEN}"
    _run(chromium, tmp_path / "profile", "--window-size=1280,900", f"--screenshot={target}", url)
    assert target.exists() and target.stat().st_size > MIN_PNG_BYTES
    dom = _run(chromium, tmp_path / "profile-dom", "--dump-dom", url).stdout
    for cid in [*A_CONNECTIONS, *B_CONNECTIONS]:
        assert cid in dom
