#!/usr/bin/env bash
# mypy on the package as a wheel lays it out: fraudstream/ with stream/, features/,
# models/ and bench/ inside (pyproject.toml maps those folders with package-dir, which
# mypy cannot follow), as a tree of links under build/typecheck (fraudstream.package_view).
set -euo pipefail
cd "$(dirname "$0")/.."
view=build/typecheck
.venv/bin/python -m fraudstream.package_view "$view"
exec .venv/bin/mypy --config-file pyproject.toml "$view/fraudstream" "$@"
