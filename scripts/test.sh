#!/usr/bin/env bash
# The README's test command: set up, start what the tests need, run ruff and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the status page is tested in a real headless browser: Debian's Chromium (no browser download)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; the browser test will report it" >&2
fi
bash scripts/ensure_redis.sh || { [ "${CI:-}" = "true" ] && { echo "CI needs Redis (Celery tests)" >&2; exit 1; }; }
if url=$(bash scripts/ensure_postgres.sh); then
  export INTEGRATION_TEST_POSTGRES_URL="$url"
elif [ "${CI:-}" = "true" ]; then
  echo "CI needs PostgreSQL and it could not be started" >&2
  exit 1
fi
if [ "${CI:-}" = "true" ]; then
  export INTEGRATION_REQUIRE_POSTGRES=1   # PostgreSQL tests fail instead of skipping
fi
export DAGSTER_HOME="${DAGSTER_HOME:-$(mktemp -d)}"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
.venv/bin/ruff check integration_pipelines tests
.venv/bin/dagster definitions validate -w workspace.yaml
.venv/bin/pytest -q "$@"
