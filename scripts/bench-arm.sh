#!/usr/bin/env bash
# ARM figures for BENCHMARKS.md: the size of the two cross-built release
# binaries (make cross-arm64 cross-armv7), and the idle daemon under
# qemu-user (scripts/bench-foundation.sh with a RUNNER). The RSS of an
# emulated process is qemu's: jack plus the emulator and its translated
# code, so a do-nothing static program of the same target (built with
# zig cc) is measured the same way as the emulator's own share.
# Usage: scripts/bench-arm.sh   (after make cross-arm64 cross-armv7)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/target/zig  # zig from PyPI (scripts/ensure-cross.sh)
declare -A runner=([aarch64-unknown-linux-musl]="qemu-aarch64" [armv7-unknown-linux-gnueabihf]="qemu-arm -L /usr/arm-linux-gnueabihf")
declare -A zigtarget=([aarch64-unknown-linux-musl]="aarch64-linux-musl" [armv7-unknown-linux-gnueabihf]="arm-linux-musleabihf")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#include <unistd.h>\nint main(void){ pause(); return 0; }\n' >"$work/idle.c"
for triple in aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf; do
    bin=target/$triple/release/jack
    [ -x "$bin" ] || { echo "build first: make cross-arm64 cross-armv7" >&2; exit 1; }
    echo "== $triple"
    RUNNER="${runner[$triple]}" BIN=$bin RUNS=${RUNS:-5} ./scripts/bench-foundation.sh
    python3 -m ziglang cc -target "${zigtarget[$triple]}" -static -Os "$work/idle.c" -o "$work/idle-$triple"
    ${runner[$triple]} "$work/idle-$triple" &
    pid=$!
    sleep 2
    echo "qemu alone (a static program that only pause()s): $(awk '/VmRSS/ {printf "%.2f MiB", $2/1024}' /proc/$pid/status)"
    kill $pid; wait $pid 2>/dev/null || true
done
