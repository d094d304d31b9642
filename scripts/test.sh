#!/usr/bin/env bash
# Fresh machine to test report: set up .venv, lint, then run the whole suite
# (unit, integration on a real broker and Redis, end-to-end processes). CI runs this.
# --quick: a developer's run that leaves out the tests marked slow (long fault scenarios,
# the container image, the benchmarks); everything else runs as in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
select=()
if [ "${1:-}" = "--quick" ]; then
  shift
  select=(-m "not slow")
fi
bash scripts/setup.sh
.venv/bin/ruff check .
# The compiled kernels into the cache while the type check runs (one core each), so the
# first test processes load them rather than all compiling them at once.
.venv/bin/python -m fraudstream.warm_kernels >/dev/null &
warming=$!
# Types: strict on features/ and models/, checked everywhere else (pyproject.toml).
bash scripts/typecheck.sh
wait "$warming"
# The documentation site: a broken link or a missing page fails the run.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
# Four test processes, each with its own broker, Redis and model, a test file at a time:
# most tests wait on the broker and on the processes they start, so four files at once
# finish the suite in about 10 minutes on two cores (three: 11; two: 17; -n 0: one process).
exec .venv/bin/python -m pytest -q -n 4 --dist loadfile "${select[@]}" "$@"
