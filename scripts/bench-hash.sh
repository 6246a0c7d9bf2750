#!/usr/bin/env bash
# Measures the background hasher (serve/hasher) for BENCHMARKS.md, on
# 127.0.0.1:
#
# * a library of FILES sparse files of SIZE each (20 x 5 GiB: 100 GiB) plus
#   one real 1 GiB file, hashed by a node with [server] hash_rate = 0 (no
#   cap, so the figure is the hasher's own speed): wall time from the
#   node's start to the last file's digest (jack_hashed_files_total), the
#   node's CPU (user + sys, /proc/PID/stat) over it, and its peak RSS
#   (VmHWM). Reading a sparse file's holes costs no disk: the figure is
#   SHA-256 and the read path, an upper bound for real disks, which are
#   slower than that (a NAS disk reads 150-250 MB/s);
# * serving while hashing: the real 1 GiB file downloaded with curl from
#   the node RUNS times while the hasher works, then RUNS times once it is
#   done (the file warmed into the page cache before each run: the hasher
#   drops from the cache what it read), the medians and their ratio. The
#   hasher waits while a file body is being sent, so this measures what
#   is left: its read and hash in flight when a body starts, and the CPU;
# * with ARM=1, the hashing loop alone (`jack hash-speed`, 256 MiB in
#   memory) for x86_64 natively and for the aarch64 and armv7 release
#   builds under qemu-user (make cross-arm64 cross-armv7 first).
#
# Progress goes to stderr, the Markdown tables to stdout; the node and the
# temp dir are removed on exit.
#
# Usage: scripts/bench-hash.sh  (env: BIN=target/release/jack FILES=20
#        SIZE=5G RUNS=5 ARM=0 TMPDIR=/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
FILES=${FILES:-20}
SIZE=${SIZE:-5G}
RUNS=${RUNS:-5}
ARM=${ARM:-0}
KEY=bench-key-0123456789abcdef
[ -x "$BIN" ] || { echo "error: $BIN missing; build first: make build" >&2; exit 1; }
for tool in curl python3 truncate; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jack-bench-hash.XXXXXX")
NODE_PID=
cleanup() {
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

median() { python3 -c 'import statistics,sys; print("%.3f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
metric() { curl -s -H "X-Api-Key: $KEY" "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
# user + sys clock ticks of the node
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NODE_PID/stat"; }

mkdir -p "$TMP/media"
echo "library: $FILES sparse files of $SIZE and one real 1 GiB file" >&2
for i in $(seq -w 1 "$FILES"); do
    truncate -s "$SIZE" "$TMP/media/Sparse.Film.$i.2020.1080p.mkv"
done
head -c $((1 << 30)) /dev/urandom >"$TMP/media/Real.Film.2021.1080p.mkv"
REAL="$TMP/media/Real.Film.2021.1080p.mkv"
TOTAL=$(du -b --apparent-size -c "$TMP"/media/*.mkv | tail -1 | cut -f1)
COUNT=$((FILES + 1))

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/jack.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
api_key = "$KEY"
hash_rate = 0
min_send_rate = 0

[database]
path = "$TMP/jack.db"

[[library]]
name = "bench"
path = "$TMP/media"
category = "movies"

[downloads]
watch_dir = "$TMP/watch"
incomplete_dir = "$TMP/incomplete"
completed_dir = "$TMP/completed"
EOF
TICK=$(getconf CLK_TCK)
START=$(date +%s.%N)
"$BIN" --config "$TMP/jack.toml" run 2>"$TMP/jack.log" &
NODE_PID=$!
for _ in $(seq 300); do
    grep -q "catalogue scanned" "$TMP/jack.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "catalogue scanned" "$TMP/jack.log" || { cat "$TMP/jack.log" >&2; exit 1; }
CPU0=$(cpu_ticks)
ID=$(curl -s -H "X-Api-Key: $KEY" "http://127.0.0.1:$PORT/peer/search" \
    | python3 -c 'import json,sys; print(next(i["id"] for i in json.load(sys.stdin)["items"] if i["filename"].startswith("Real")))')
URL="http://127.0.0.1:$PORT/peer/items/$ID/file"

# one timed download of the real file, warm: seconds on stdout
fetch() {
    cat "$REAL" >/dev/null
    curl -s -o /dev/null -H "X-Api-Key: $KEY" -w '%{time_total}\n' "$URL"
}

echo "downloads while hashing" >&2
during=()
for _ in $(seq "$RUNS"); do
    during+=("$(fetch)")
    sleep 1 # the hasher goes on between two
done
hashed_then=$(metric jack_hashed_bytes_total)
[ "$hashed_then" -lt "$TOTAL" ] || echo "warning: hashing ended during the downloads: use more or larger files" >&2

echo "waiting for $COUNT digests ($TOTAL bytes)" >&2
while [ "$(metric jack_hashed_files_total)" != "$COUNT" ]; do
    kill -0 "$NODE_PID" || { cat "$TMP/jack.log" >&2; exit 1; }
    sleep 0.2
done
END=$(date +%s.%N)
CPU1=$(cpu_ticks)
HWM=$(awk '/VmHWM/ { print $2 }' "/proc/$NODE_PID/status")

echo "downloads with the hasher idle" >&2
after=()
for _ in $(seq "$RUNS"); do after+=("$(fetch)"); done

python3 - "$START" "$END" "$CPU0" "$CPU1" "$TICK" "$HWM" "$TOTAL" "$FILES" "$SIZE" <<'EOF'
import sys
start, end, c0, c1, tick, hwm, total = map(float, sys.argv[1:8])
files, size = sys.argv[8], sys.argv[9]
secs = end - start
cpu = (c1 - c0) / tick
print("| library | wall time | rate | CPU (user+sys) | CPU per GiB | peak RSS |")
print("|---|---|---|---|---|---|")
print(f"| {files} sparse x {size} + 1 GiB real ({total / 2**30:.0f} GiB) | {secs:.1f} s | "
      f"{total / secs / 1e6:.0f} MB/s | {cpu:.1f} s | {cpu / (total / 2**30):.2f} s | {hwm / 1024:.1f} MiB |")
EOF
d=$(median "${during[@]}")
a=$(median "${after[@]}")
echo
echo "| 1 GiB download (curl, warm, median of $RUNS) | seconds |"
echo "|---|---|"
echo "| while hashing | $d (runs: ${during[*]}) |"
echo "| hasher idle | $a (runs: ${after[*]}) |"
echo "| ratio | $(python3 -c "print('%.2f' % ($d / $a))") |"

if [ "$ARM" = 1 ]; then
    echo
    echo "| target | SHA-256, whole file and pieces (jack hash-speed, 256 MiB) |"
    echo "|---|---|"
    speed() { "$@" hash-speed | sed 's/.*mb_per_s=\([0-9.]*\).*/\1 MB\/s/'; }
    echo "| x86_64 (native) | $(speed "$BIN") |"
    for t in aarch64-unknown-linux-musl:qemu-aarch64 "armv7-unknown-linux-gnueabihf:qemu-arm -L /usr/arm-linux-gnueabihf"; do
        triple=${t%%:*}
        runner=${t#*:}
        bin=target/$triple/release/jack
        if [ -x "$bin" ]; then
            # shellcheck disable=SC2086
            echo "| $triple (qemu-user) | $(speed $runner "$bin") |"
        else
            echo "| $triple | not built (make cross-${triple%%-*}) |" >&2
        fi
    done
fi
