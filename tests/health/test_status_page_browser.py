"""The status page in a real headless browser: Playwright driving Debian's Chromium.

Needs `/usr/bin/chromium` (`apt-get install -y chromium`; no browser download: Playwright is
pointed at that executable). Without it the tests skip, except under `CI=true`, where they
fail. Screenshots go to `test-output/status_page/` at the repo root.
"""

import os
import shutil
from collections.abc import Iterator
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
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    message = f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def served(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV_ADMIN_TOKEN, ADMIN_TOKEN)
    seed_status_data(engine)
    tokens = {TENANT_A: issue_token(engine, TENANT_A), TENANT_B: issue_token(engine, TENANT_B)}
    with LocalServer(status_app(engine), name="status page") as server:
        yield server, tokens


def _shot(page, name: str) -> None:
    target = OUTPUT / name
    target.unlink(missing_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > MIN_PNG_BYTES, f"{target} is only {target.stat().st_size} bytes"
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_status_page_renders_in_chromium(served, browser) -> None:
    server, tokens = served
    OUTPUT.mkdir(parents=True, exist_ok=True)
    url = f"{server.url}/status/{TENANT_A}?token={tokens[TENANT_A]}"
    for name, viewport in {"status_mobile.png": (390, 900), "status_desktop.png": (1280, 900)}.items():
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        response = page.goto(url)
        assert response is not None and response.status == 200
        cards = page.locator(".card")
        assert cards.count() == len(A_CONNECTIONS)
        text = page.locator("body").inner_text()
        assert "Acme Staffing" in text
        for cid, title in A_CONNECTIONS.items():
            assert cid in text and title in text
        for cid, title in B_CONNECTIONS.items():
            assert cid not in text and title not in text
        assert "Globex" not in page.content() and tokens[TENANT_A] not in page.content()
        # readable on a phone: nothing wider than the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
        _shot(page, name)
        page.close()

    # another tenant's token on this tenant's URL: no data in the browser either
    page = browser.new_page()
    response = page.goto(f"{server.url}/status/{TENANT_A}?token={tokens[TENANT_B]}")
    assert response is not None and response.status == 404
    text = page.locator("body").inner_text()
    for cid, title in A_CONNECTIONS.items():
        assert cid not in text and title not in text
    page.close()


def test_admin_overview_renders_in_chromium(served, browser) -> None:
    server, _ = served
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    response = page.goto(f"{server.url}/status?token={ADMIN_TOKEN}")
    assert response is not None and response.status == 200
    text = page.locator("body").inner_text()
    for cid in [*A_CONNECTIONS, *B_CONNECTIONS]:
        assert cid in text
    _shot(page, "status_overview_desktop.png")
    assert browser.new_page().goto(f"{server.url}/status?token=wrong").status == 401
