#!/usr/bin/env bash
# Makes sure the machine can build and run jack as a 32-bit program
# (i686: usize is 32 bits, as on armv7): the Rust target and a C compiler
# that builds 32-bit code (for the bundled SQLite). Exits 1 with what is
# missing when it cannot install it.
set -euo pipefail
target=i686-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target" >/dev/null 2>&1 || {
        echo "error: cannot install the Rust target $target (rustup target add $target)" >&2
        exit 1
    }
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int main(void){return 0;}' >"$probe/t.c"
if ! gcc -m32 "$probe/t.c" -o "$probe/t" 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq gcc-multilib >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq gcc-multilib >/dev/null; }
    fi
    gcc -m32 "$probe/t.c" -o "$probe/t" || {
        echo "error: gcc cannot build 32-bit programs; install gcc-multilib" >&2
        exit 1
    }
fi
"$probe/t" || { echo "error: this kernel does not run 32-bit programs" >&2; exit 1; }
