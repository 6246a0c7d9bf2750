#!/usr/bin/env bash
# Content digests and several sources (PROTOCOL.md §2.6) for BENCHMARKS.md:
# two friends each limited to RATE against one, and a download checked
# against its digest against one that is not (scripts/bench_sources.py).
#
# Usage: scripts/bench-sources.sh  (env: BIN=target/release/jack RUNS=3
#        RATE=16777216 SIZE_SOURCES=268435456 SIZE_VERIFY=1073741824
#        VERIFY_RATE=115343360 ONLY_VERIFY=1
#        RUNNER="qemu-aarch64" to run the downloader under an emulator
#        with BIN an ARM build; TMPDIR=/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
export BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "error: $BIN missing; build first: make build" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }
exec python3 scripts/bench_sources.py
