#!/usr/bin/env bash
# A node no one can knock over, measured (BENCHMARKS.md, "A node no one can
# knock over (issue 19)"): the release binary with default settings, every
# socket on 127.0.0.0/8, side by side with BEFORE=<another jack binary>
# (e.g. one built from the previous main) in the same run.
#  1. SLOW readers (8, then 64) reading a 256 MiB file at ~1 byte/s (a
#     4 KiB receive buffer, one byte read a second): the latency of /ping,
#     qBittorrent torrents/info (with its session) and Torznab caps, p50
#     and p99 of PROBES (default 40) each, one connection per probe (one
#     not answered within PROBE_TIMEOUT seconds, default 2, timed out);
#  2. 1,000 idle connections (from 127.0.1.1..127.0.1.40, 25 each) plus 100
#     slowloris clients (127.0.2.1..127.0.2.10, a header byte a second),
#     then 20 legitimate /ping from 127.0.0.1: their statuses and latency;
#  3. wrong keys one address (127.0.0.9) sends on X-Api-Key /peer/search
#     for GUESS_SECONDS (default 30): the answers by status, and how many a
#     minute are still judged (an answer other than 429) once the first 429
#     came;
#  4. 8 streams of the 256 MiB file at once by curl, one per friend's key
#     ([[server.peer_keys]]): aggregate MiB/s, median of RUNS (default 3).
#  5. the idle node: CPU a minute and wake-ups a second over 30 s
#     (scripts/bench_idle.py).
# Every client stops by itself; each scenario runs on a fresh node.
# Usage: [BEFORE=/tmp/jack-before] scripts/bench-knock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 8192 || true
python3 scripts/bench_knock.py "${PROBES:-40}" "${GUESS_SECONDS:-30}" "${RUNS:-3}" ${BEFORE:+"$BEFORE"} "$BIN"
# 5. What the node costs idle (scripts/bench_idle.py).
echo
python3 scripts/bench_idle.py ${BEFORE:+"$BEFORE"} "$BIN"
