#!/usr/bin/env bash
# make dist: release archives for NAS boxes and servers, one per target:
#   dist/jack-<version>-<target>.tar.gz, each a folder jack-<version>-<target>/
#   with the binary, README.md, jack.toml and jack.service, and dist/SHA256SUMS.
# Targets: x86_64 and aarch64 as static musl binaries, armv7 hard-float
# linked against glibc 2.17 (old NAS firmware; Rust's armv7 musl library is
# not installable on these machines). All three are built with
# cargo-zigbuild (scripts/ensure-cross.sh), stamped with JACK_COMMIT, and
# each is started once (`--version`, natively or under qemu-user) and
# checked with `file`. The archives are reproducible: names sorted, owner
# 0, every time the commit's time, gzip without a name or date.
# Usage: scripts/dist.sh [TARGET...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-cross.sh
./scripts/ensure-tools.sh file

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
export JACK_COMMIT=${JACK_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export PYTHONPATH=$PWD/target/zig
zigbuild=$PWD/target/zig/bin/cargo-zigbuild

# target triple -> what zigbuild is given, how to run it, what `file` must say
declare -A build=([x86_64-unknown-linux-musl]=x86_64-unknown-linux-musl
                  [aarch64-unknown-linux-musl]=aarch64-unknown-linux-musl
                  [armv7-unknown-linux-gnueabihf]=armv7-unknown-linux-gnueabihf.2.17)
declare -A runner=([x86_64-unknown-linux-musl]=""
                   [aarch64-unknown-linux-musl]="qemu-aarch64"
                   [armv7-unknown-linux-gnueabihf]="qemu-arm -L /usr/arm-linux-gnueabihf")
declare -A kind=([x86_64-unknown-linux-musl]="x86-64.*statically linked"
                 [aarch64-unknown-linux-musl]="ARM aarch64.*statically linked"
                 [armv7-unknown-linux-gnueabihf]="ARM, EABI5.*dynamically linked, interpreter /lib/ld-linux-armhf.so.3")
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)

mkdir -p dist
for t in "${targets[@]}"; do
    [ -n "${build[$t]:-}" ] || { echo "error: unknown target $t (one of: ${!build[*]})" >&2; exit 2; }
    echo "== $t (jack $version, commit $JACK_COMMIT)" >&2
    nice "$zigbuild" zigbuild --release --locked --target "${build[$t]}"
    bin=target/$t/release/jack
    described=$(file -b "$bin")
    echo "$described" | grep -Eq "${kind[$t]}" \
        || { echo "error: $bin is not what a $t release must be: $described" >&2; exit 1; }
    said=$(${runner[$t]} "$bin" --version)
    [ "$said" = "jack $version (commit $JACK_COMMIT, $t)" ] \
        || { echo "error: $bin --version says: $said" >&2; exit 1; }
    echo "$said" >&2
    name=jack-$version-$t
    stage=$(mktemp -d)
    mkdir "$stage/$name"
    install -m 0755 "$bin" "$stage/$name/jack"
    install -m 0644 README.md jack.toml contrib/jack.service "$stage/$name/"
    [ ! -e LICENSE ] || install -m 0644 LICENSE "$stage/$name/"
    tar -C "$stage" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
        --format=gnu -cf - "$name" | gzip -n -9 >"dist/$name.tar.gz.tmp"
    mv "dist/$name.tar.gz.tmp" "dist/$name.tar.gz"
    rm -rf "$stage"
done

(cd dist && sha256sum jack-"$version"-*.tar.gz >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
cat dist/SHA256SUMS
