#!/usr/bin/env bash
# Makes sure this machine can build jack for ARM (and the static x86_64
# release of make dist) and run the result:
#   * the Rust targets x86_64-unknown-linux-musl and aarch64-unknown-linux-musl
#     (static) and armv7-unknown-linux-gnueabihf (linked against glibc 2.17
#     by zig);
#   * zig and cargo-zigbuild (PyPI's ziglang and cargo-zigbuild wheels,
#     pinned, into target/zig: seconds, no compile), which compile the bundled SQLite and
#     ring's C and assembly for each target and link it: no Debian cross gcc
#     is needed (Debian's gcc-*-linux-gnu* cannot sit beside gcc-multilib,
#     which the 32-bit run needs);
#   * qemu-user (qemu-aarch64, qemu-arm) and the armhf glibc
#     (libc6-armhf-cross, /usr/arm-linux-gnueabihf) to run the binaries,
#     through an explicit runner since binfmt_misc is often not mounted.
# Installs what is missing where it can; otherwise exits 1 saying what to
# install. Usage: scripts/ensure-cross.sh, then
# PYTHONPATH=target/zig target/zig/bin/cargo-zigbuild ...
set -euo pipefail
cd "$(dirname "$0")/.."
ZIG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
fail() { echo "error: $*" >&2; exit 1; }

for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        rustup target add "$target" >/dev/null 2>&1 \
            || fail "cannot install the Rust target $target (rustup target add $target)"
    fi
done

if [ ! -d "target/zig/ziglang-$ZIG_VERSION.dist-info" ] \
        || [ ! -d "target/zig/cargo_zigbuild-$ZIGBUILD_VERSION.dist-info" ]; then
    echo "installing ziglang==$ZIG_VERSION and cargo-zigbuild==$ZIGBUILD_VERSION into target/zig (PyPI)" >&2
    rm -rf target/zig
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
        --target target/zig "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" >&2 \
        || { rm -rf target/zig; fail "cannot install them from PyPI (python3 -m pip install --target target/zig ziglang==$ZIG_VERSION cargo-zigbuild==$ZIGBUILD_VERSION)"; }
fi

./scripts/ensure-tools.sh qemu-aarch64 qemu-arm
if [ ! -e /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing libc6-armhf-cross (runs the armv7 build under qemu-arm)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq libc6-armhf-cross >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libc6-armhf-cross >/dev/null; }
    fi
    [ -e /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 ] \
        || fail "running the armv7 build needs the armhf glibc (apt-get install libc6-armhf-cross)"
fi
