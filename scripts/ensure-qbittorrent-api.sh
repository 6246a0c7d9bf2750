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
if ! command -v python3 >/dev/null 2>&1; then
    echo "error: the tests need python3 with pip (Debian/Ubuntu: apt-get install python3 python3-pip)" >&2
    exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m ensurepip --user >/dev/null 2>&1 || true
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "error: the tests need pip for python3 to install qbittorrent-api (Debian/Ubuntu: apt-get install python3-pip)" >&2
    exit 1
fi
echo "installing qbittorrent-api==$VERSION into $DEST (needed by the tests)" >&2
rm -rf "$DEST"
if ! python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$DEST" "qbittorrent-api==$VERSION" >&2; then
    rm -rf "$DEST"
    echo "error: cannot install qbittorrent-api==$VERSION from PyPI; install it with" \
         "'python3 -m pip install --target $DEST qbittorrent-api==$VERSION' and run again" >&2
    exit 1
fi
