#!/usr/bin/env bash
# mypy on the package as a wheel lays it out: fraudstream/ with stream/, features/,
# models/ and bench/ inside (pyproject.toml maps those folders with package-dir, which
# mypy cannot follow), as a tree of links under build/typecheck.
set -euo pipefail
cd "$(dirname "$0")/.."
view=build/typecheck
rm -rf "$view"
mkdir -p "$view/fraudstream"
for entry in fraudstream/*; do
  [ "$(basename "$entry")" = __pycache__ ] || ln -s "$PWD/$entry" "$view/fraudstream/"
done
for package in stream features models bench; do
  ln -s "$PWD/$package" "$view/fraudstream/$package"
done
exec .venv/bin/mypy --config-file pyproject.toml "$view/fraudstream" "$@"
