#!/usr/bin/env bash
# Makes a Debian bookworm + Python 3.11 base image with no registry at hand: debootstrap from
# Debian's archive, then `docker import`. Used where `python:3.11-slim-bookworm` cannot be pulled
# (CI, air-gapped hosts); pass the tag to the images as BASE_IMAGE.
set -euo pipefail

tag=${1:-arenastack/base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already present"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
# apt's lists are stale by the time an image is built on top; drop them to keep the base small.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag"
echo "built base image $tag"
