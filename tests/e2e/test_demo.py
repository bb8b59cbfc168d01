"""The README's demo command, end to end, as a new user runs it."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_every_stream_and_both_directions(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEGRATION_")}
    result = subprocess.run(
        [sys.executable, "-m", "integration_pipelines.cli.main", "demo", "--workdir", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "14 streams, 14 succeeded, 0 failed" in out
    for connection in ("acme/beeline", "globex/sap_fieldglass", "acme/textkernel", "globex/daxtra"):
        assert connection in out
    assert "outbox left" in out and "FAILED" not in out
    assert (tmp_path / "demo" / "vault.key").stat().st_mode & 0o077 == 0  # the demo key is private
