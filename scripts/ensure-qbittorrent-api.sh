#!/usr/bin/env bash
# Installs the Python qBittorrent client library the tests drive jack's
# qBittorrent-compatible API with (tests/qbit.rs), pinned, into target/py
# (not the system's Python), when that exact version is not there yet.
# Needs python3 with pip. Usage: scripts/ensure-qbittorrent-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2026.10.1
DEST=target/py
[ -d "$DEST/qbittorrent_api-$VERSION.dist-info" ] && exit 0
. scripts/pip-target.sh
pip_target "$DEST" qbittorrent-api "$VERSION"
