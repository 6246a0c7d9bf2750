#!/usr/bin/env bash
# make image: jack's container image for linux/amd64, linux/arm64 and
# linux/arm/v7 in one OCI archive, dist/jack-<version>-image.oci.tar
# (an image index over the three; `podman load -i` it, or `skopeo copy
# --all oci-archive:<file> ...`), and one archive per architecture for
# `docker load -i`, dist/jack-<version>-image-<arch>.docker.tar (Docker's
# classic store reads only `docker save`'s manifest.json); tagged jack:latest.
# The binaries are make dist's (scripts/dist.sh builds what is missing).
# Each architecture's filesystem is laid out in target/image/<arch>/: /jack
# and an empty /tmp (mode 1777, for SQLite's temporary files); the armv7
# binary is linked against glibc, so its folder also holds the loader and
# the libraries it names (from Debian's libc6-armhf-cross), nothing more.
# target/image/volumes/ holds /config and /data (owned 1000:1000). The
# Containerfile says the rest; scripts/oci-image.py writes the archive.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
export JACK_COMMIT=${JACK_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
./scripts/ensure-tools.sh python3 readelf

declare -A triple=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl [armv7]=armv7-unknown-linux-gnueabihf)
for arch in amd64 arm64 armv7; do
    bin=target/${triple[$arch]}/release/jack
    if [ ! -x "$bin" ] || ! strings "$bin" | grep -q "$JACK_COMMIT"; then
        ./scripts/dist.sh "${triple[$arch]}"
    fi
done

rm -rf target/image
mkdir -p target/image/volumes/config target/image/volumes/data
chmod 0755 target/image/volumes/config target/image/volumes/data
for arch in amd64 arm64 armv7; do
    root=target/image/$arch
    mkdir -p "$root/tmp"
    chmod 1777 "$root/tmp"
    install -m 0755 "target/${triple[$arch]}/release/jack" "$root/jack"
done

# armv7: the loader and each library the binary (and those libraries) name.
sysroot=/usr/arm-linux-gnueabihf/lib
mkdir -p target/image/armv7/lib
interp=$(readelf -l target/image/armv7/jack | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ "$interp" = /lib/ld-linux-armhf.so.3 ] || { echo "error: unexpected armv7 loader: $interp" >&2; exit 1; }
cp -L "$sysroot/ld-linux-armhf.so.3" target/image/armv7/lib/
queue=(target/image/armv7/jack)
while [ ${#queue[@]} -gt 0 ]; do
    elf=${queue[0]}; queue=("${queue[@]:1}")
    for lib in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -e "target/image/armv7/lib/$lib" ] && continue
        [ -e "$sysroot/$lib" ] || { echo "error: $lib (needed by $elf) is not in $sysroot" >&2; exit 1; }
        cp -L "$sysroot/$lib" target/image/armv7/lib/
        queue+=("target/image/armv7/lib/$lib")
    done
done
chmod 0755 target/image/armv7/lib/*

mkdir -p dist
python3 scripts/oci-image.py "dist/jack-$version-image.oci.tar" "$version" "$JACK_COMMIT" "$epoch" \
    amd64=target/image/amd64 arm64=target/image/arm64 arm/v7=target/image/armv7
