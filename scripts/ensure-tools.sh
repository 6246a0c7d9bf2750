#!/usr/bin/env bash
# Makes sure the outside programs the tests (or benchmarks) run are present:
# installs the missing ones with apt-get when it can (as root, or with
# password-less sudo), otherwise fails saying what to install.
# Usage: scripts/ensure-tools.sh curl wget aria2c [nginx ...]
set -euo pipefail
declare -A package=([readelf]=binutils [strings]=binutils [unshare]=util-linux [nsenter]=util-linux [ip]=iproute2 [curl]=curl [wget]=wget [aria2c]=aria2 [nginx]=nginx-light [python3]=python3 [qemu-aarch64]=qemu-user [qemu-arm]=qemu-user)
missing=()
for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=()
for tool in "${missing[@]}"; do pkgs+=("${package[$tool]:-$tool}"); done
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi
if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${pkgs[*]} (needed by the tests)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null; }
    exit 0
fi
echo "error: the tests need ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${pkgs[*]}) and run again" >&2
exit 1
