#!/usr/bin/env bash
# The README's demo command: set up, then run every sync end to end against the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/integration-pipelines demo "$@"
