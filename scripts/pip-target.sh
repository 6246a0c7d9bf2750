#!/usr/bin/env bash
# Installs one pinned Python package into a folder of its own under target/
# (not the system's Python), for the tests' Python clients. Sourced by the
# ensure-*.sh scripts. Usage: pip_target DEST PACKAGE VERSION
pip_target() {
    local dest=$1 package=$2 version=$3
    if ! command -v python3 >/dev/null 2>&1; then
        echo "error: the tests need python3 with pip (Debian/Ubuntu: apt-get install python3 python3-pip)" >&2
        return 1
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        python3 -m ensurepip --user >/dev/null 2>&1 || true
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "error: the tests need pip for python3 to install $package (Debian/Ubuntu: apt-get install python3-pip)" >&2
        return 1
    fi
    echo "installing $package==$version into $dest (needed by the tests)" >&2
    rm -rf "$dest"
    if ! python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
            --target "$dest" "$package==$version" >&2; then
        rm -rf "$dest"
        echo "error: cannot install $package==$version from PyPI; install it with" \
             "'python3 -m pip install --target $dest $package==$version' and run again" >&2
        return 1
    fi
}
