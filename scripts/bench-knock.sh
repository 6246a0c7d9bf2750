#!/usr/bin/env bash
# A node no one can knock over, measured (BENCHMARKS.md, "A node no one can
# knock over (issue 19)"): the release binary with default settings, every
# socket on 127.0.0.0/8, side by side with BEFORE=<another jack binary>
# (e.g. one built from the previous main) in the same run.
#  1. SLOW readers (8, then 64) reading a 256 MiB file at ~1 byte/s (a
#     4 KiB receive buffer, one byte read a second): the latency of /ping,
#     qBittorrent torrents/info (with its session) and Torznab caps, p50
#     and p99 of PROBES (default 40) each, one connection per probe;
#  2. 1,000 idle connections (from 127.0.1.1..127.0.1.40, 25 each) plus 100
#     slowloris clients (127.0.2.1..127.0.2.10, a header byte a second),
#     then 20 legitimate /ping from 127.0.0.1: their statuses and latency;
#  3. guesses one address (127.0.0.9) makes with wrong keys on
#     X-Api-Key /peer/search in GUESS_SECONDS (default 10) once past the
#     budget, as guesses per minute that got an answer other than 429;
#  4. 8 streams of the 256 MiB file at once by curl: aggregate MiB/s,
#     median of RUNS (default 3).
# Every client stops by itself; each scenario runs on a fresh node.
# Usage: [BEFORE=/tmp/jack-before] scripts/bench-knock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 8192 || true
exec python3 scripts/bench_knock.py "${PROBES:-40}" "${GUESS_SECONDS:-10}" "${RUNS:-3}" ${BEFORE:+"$BEFORE"} "$BIN"
