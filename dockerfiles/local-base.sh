#!/usr/bin/env bash
# Make a Debian bookworm base image locally, for machines that cannot pull from any registry:
# debootstrap a minimal root file system (--variant=minbase) and `docker import` it.
#
#   sudo dockerfiles/local-base.sh [TAG] [MIRROR]
#   mltest docker build --base-image TAG ...
#
# TAG defaults to mltest-local/debian:bookworm-minbase, MIRROR to http://deb.debian.org/debian.
# Needs root, debootstrap and a running Docker engine. The apt package lists and caches are left
# out of the image (the Dockerfiles run `apt-get update` before installing anything).
set -euo pipefail
tag="${1:-mltest-local/debian:bookworm-minbase}"
mirror="${2:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "local-base: $tag exists already"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "local-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
rootfs="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$rootfs" "$log"' EXIT
echo "local-base: debootstrap --variant=minbase bookworm ($mirror)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$log" 2>&1 || {
  tail -20 "$log" >&2
  echo "local-base: debootstrap failed (log above)" >&2
  exit 1
}
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "local-base: imported $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
