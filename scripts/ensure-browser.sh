#!/usr/bin/env bash
# Installs what the status page's browser tests (tests/ui.rs) need, when
# missing: Debian's chromium and chromium-driver (apt-get, as root), the
# Python selenium package, pinned, into target/selenium (not the system's
# Python; target/py belongs to scripts/ensure-qbittorrent-api.sh), and
# axe-core, pinned, from the npm registry (npm pack checks the tarball's
# integrity) into target/axe-core (its axe.min.js is injected into the
# page by tests/support/ui_browser.py).
# Usage: scripts/ensure-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.50.0
DEST=target/selenium
AXE_VERSION=4.14.1
AXE=target/axe-core

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

if ! grep -qs "\"version\": \"$AXE_VERSION\"" "$AXE/package.json" || [ ! -f "$AXE/axe.min.js" ]; then
    if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing npm (needed to fetch axe-core for the browser tests)" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >&2; then
            apt-get update -q >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >&2 || true
        fi
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: the browser tests need axe-core $AXE_VERSION from the npm registry, and npm" \
             "to fetch it (Debian/Ubuntu, as root: apt-get install npm)" >&2
        exit 1
    fi
    echo "installing axe-core@$AXE_VERSION into $AXE (needed by the browser tests)" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    if ! (cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null) \
            || ! tar -xzf "$tmp/axe-core-$AXE_VERSION.tgz" -C "$tmp"; then
        echo "error: cannot fetch axe-core@$AXE_VERSION from the npm registry; run" \
             "'npm pack axe-core@$AXE_VERSION' and unpack it into $AXE, then run again" >&2
        exit 1
    fi
    rm -rf "$AXE"
    mkdir -p target
    mv "$tmp/package" "$AXE"
fi

[ -d "$DEST/selenium-$VERSION.dist-info" ] && exit 0
. scripts/pip-target.sh
pip_target "$DEST" selenium "$VERSION"
