#!/usr/bin/env bash
# Fresh machine to test report: set up .venv, lint, then run the whole suite
# (unit, integration on a real broker and Redis, end-to-end processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
