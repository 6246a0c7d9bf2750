#!/usr/bin/env bash
# Installs what the status page's browser tests (tests/ui.rs) need, when
# missing: Debian's chromium and chromium-driver (apt-get, as root) and the
# Python selenium package, pinned, into target/selenium (not the system's
# Python; target/py belongs to scripts/ensure-qbittorrent-api.sh).
# Usage: scripts/ensure-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.50.0
DEST=target/selenium

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium and chromium-driver (needed by the browser tests)" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2; then
            apt-get update -q >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2 || true
        fi
    fi
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        echo "error: the browser tests need /usr/bin/chromium and /usr/bin/chromedriver" \
             "(Debian/Ubuntu, as root: apt-get install chromium chromium-driver)" >&2
        exit 1
    fi
fi

[ -d "$DEST/selenium-$VERSION.dist-info" ] && exit 0
. scripts/pip-target.sh
pip_target "$DEST" selenium "$VERSION"
