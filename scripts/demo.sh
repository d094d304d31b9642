#!/usr/bin/env bash
# Fresh machine to running demo: set up .venv, then run `fraudstream demo` (extra
# arguments are passed on, e.g. --duration 60). Embedded broker and Redis are started
# unless FRAUDSTREAM_KAFKA_BOOTSTRAP / FRAUDSTREAM_REDIS_URL point at real ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fraudstream demo "$@"
