#!/usr/bin/env bash
# Make a Python base image without a registry: Debian bookworm by debootstrap (minbase,
# python3, python3-venv, ca-certificates), imported into podman. Reuses the image when it
# exists. Needs root, debootstrap and podman. Usage: base-image.sh [IMAGE] [MIRROR]
set -euo pipefail
image="${1:-localhost/fraudstream-base:bookworm}"
mirror="${2:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}"

if podman image exists "$image"; then
  echo "$image exists"
  exit 0
fi
root="$(mktemp -d /var/tmp/fraudstream-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# What an image does not need: downloaded packages and package lists (apt-get update
# brings the lists back), documentation, translations.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/*
tar -C "$root" --numeric-owner -c . \
  | podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image imported"
