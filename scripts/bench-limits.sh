#!/usr/bin/env bash
# Measures the speed limits for BENCHMARKS.md, over loopback (127.0.0.1):
#
# * upload: a node with [server] max_upload_rate = CAP serves two friends
#   at once (two curl readers of a sparse 8 GiB file, as fast as they can)
#   for SECONDS; the rate is both readers' bytes over the window, after a
#   2 s warm-up (the bucket's one-chunk burst and the connections' start
#   left out);
# * download: a node with [downloads] max_rate = CAP downloads two files
#   from an unlimited node; the rate is the two downloads' live bytes
#   (the status API's done_bytes) over the window, after the same warm-up;
# * hot path: one 1 GiB body with no limit (curl, warm cache), median of
#   RUNS, from this binary and, with BEFORE=<a jack built without the
#   limits>, from that one in turn.
#
# Each cap (CAPS, bytes per second) is run RUNS times; the median rate and
# its difference from the cap are printed as a Markdown table on stdout.
# Progress goes to stderr; the nodes and the temp dir are removed on exit.
#
# Usage: scripts/bench-limits.sh  (env: BIN=target/release/jack RUNS=3
#        SECONDS_=30 CAPS="1048576 4194304" DIRECTIONS="upload download"
#        BEFORE= TMPDIR=/tmp). A run's folder is removed as it ends: a
#        downloader reserves its files' whole size on the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
RUNS=${RUNS:-3}
WINDOW=${SECONDS_:-30}
CAPS=${CAPS:-"1048576 4194304"}
DIRECTIONS=${DIRECTIONS:-"upload download"}
BEFORE=${BEFORE:-}
KEY=bench-key-0123456789abcdef
[ -x "$BIN" ] || { echo "error: $BIN missing; build first: make build" >&2; exit 1; }
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jack-bench-limits.XXXXXX")
PIDS=()
MAIN=$BASHPID
cleanup() {
    # Command substitutions are subshells: only the script itself cleans up.
    [ "$BASHPID" = "$MAIN" ] || return 0
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node DIR BINARY EXTRA-TOML: starts a node; its port in PORT.
start_node() {
    local dir=$1 bin=$2 extra=$3 port
    port=$(free_port)
    mkdir -p "$dir/media"
    cat >"$dir/jack.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
api_key = "$KEY"
$extra
[[library]]
name = "media"
path = "media"
category = "movies"
EOF
    (cd "$dir" && exec "$bin" --config jack.toml run 2>"$dir/log") &
    PIDS+=($!)
    for _ in $(seq 200); do
        grep -q "catalogue scanned" "$dir/log" 2>/dev/null && { PORT=$port; return; }
        sleep 0.05
    done
    echo "error: node in $dir did not start" >&2; cat "$dir/log" >&2; exit 1
}

stop_last() { local p=${PIDS[-1]}; kill "$p"; wait "$p" 2>/dev/null || true; unset 'PIDS[-1]'; }

item() { # PORT NAME: the item id of NAME
    curl -s -H "X-Api-Key: $KEY" "http://127.0.0.1:$1/peer/search" |
        python3 -c 'import json,sys; print(next(i["id"] for i in json.load(sys.stdin)["items"] if i["filename"]==sys.argv[1]))' "$2"
}
urlenc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

median() { python3 -c 'import statistics,sys; print(int(statistics.median(int(x) for x in sys.argv[1:])))' "$@"; }

# upload CAP: bytes/s two readers get together over the window.
upload() {
    local dir=$TMP/up-$1-$RANDOM port id
    mkdir -p "$dir/media"
    for f in a b; do truncate -s 8G "$dir/media/$f.mkv"; done
    start_node "$dir" "$BIN" "max_upload_rate = $1"; port=$PORT
    python3 - "$port" "$KEY" "$(item "$port" a.mkv)" "$(item "$port" b.mkv)" "$WINDOW" <<'EOF'
import socket, sys, threading, time
port, key, ids, window = int(sys.argv[1]), sys.argv[2], sys.argv[3:5], int(sys.argv[5])
import urllib.parse
counts, stop = [0, 0], False
def read(i):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /peer/items/{urllib.parse.quote(ids[i], safe='')}/file HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    counts[i] += len(head.split(b"\r\n\r\n", 1)[1])
    while not stop:
        n = len(s.recv(1 << 20))
        if n == 0:
            break
        counts[i] += n
ts = [threading.Thread(target=read, args=(i,), daemon=True) for i in (0, 1)]
for t in ts: t.start()
time.sleep(2)
t0, b0 = time.monotonic(), sum(counts)
time.sleep(window)
print(int((sum(counts) - b0) / (time.monotonic() - t0)))
stop = True
EOF
    stop_last
    rm -rf "$dir"
}

# download CAP: bytes/s two downloads take together over the window.
download() {
    local dir=$TMP/down-$1-$RANDOM peer port
    mkdir -p "$dir/peer/media" "$dir/node"
    # Enough for the window at the highest cap: the downloader reserves it.
    for f in a b; do truncate -s 512M "$dir/peer/media/$f.mkv"; done
    start_node "$dir/peer" "$BIN" ""; peer=$PORT
    start_node "$dir/node" "$BIN" "[downloads]
max_rate = $1
scan_interval_ms = 100
[torznab]
[[peers]]
name = \"alice\"
url = \"http://127.0.0.1:$peer\"
api_key = \"$KEY\""; port=$PORT
    mkdir -p "$dir/node/data/watch"
    for f in a b; do
        curl -sf -o "$dir/node/data/watch/$f.torrent" \
            "http://127.0.0.1:$port/torznab/download/$(urlenc "alice:$(item "$peer" $f.mkv)").torrent?apikey=$KEY"
    done
    python3 - "$port" "$KEY" "$WINDOW" <<'EOF'
import json, sys, time, urllib.request
port, key, window = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def done():
    r = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/downloads", headers={"X-Api-Key": key})
    return sum(d["done_bytes"] for d in json.load(urllib.request.urlopen(r))["downloads"])
time.sleep(2)
t0, b0 = time.monotonic(), done()
time.sleep(window)
print(int((done() - b0) / (time.monotonic() - t0)))
EOF
    stop_last
    stop_last
    rm -rf "$dir"
}

# serve BINARY: seconds for one 1 GiB body without a limit.
serve() {
    local dir=$TMP/serve-$RANDOM port id
    mkdir -p "$dir/media"
    head -c 1073741824 /dev/urandom >"$dir/media/a.mkv"
    start_node "$dir" "$1" ""; port=$PORT
    id=$(urlenc "$(item "$port" a.mkv)")
    curl -s -o /dev/null -H "X-Api-Key: $KEY" "http://127.0.0.1:$port/peer/items/$id/file" # warm
    for _ in $(seq "$RUNS"); do
        curl -s -o /dev/null -w '%{time_total}\n' -H "X-Api-Key: $KEY" "http://127.0.0.1:$port/peer/items/$id/file"
    done | python3 -c 'import statistics,sys; print("%.3f" % statistics.median(float(x) for x in sys.stdin))'
    stop_last
    rm -rf "$dir"
}

echo "| direction | cap (B/s) | runs (B/s) | median (B/s) | median vs cap |"
echo "|---|---|---|---|---|"
for dirn in $DIRECTIONS; do
    for cap in $CAPS; do
        runs=()
        for r in $(seq "$RUNS"); do
            echo "$dirn cap=$cap run $r/$RUNS (${WINDOW}s)" >&2
            runs+=("$($dirn "$cap")")
        done
        m=$(median "${runs[@]}")
        pct=$(python3 -c "print('%+.2f %%' % (100 * ($m - $cap) / $cap))")
        echo "| $dirn | $cap | ${runs[*]} | $m | $pct |"
    done
done
echo
echo "| 1 GiB body, no limit | seconds (median of $RUNS) |"
echo "|---|---|"
echo "| this build | $(serve "$BIN") |"
[ -n "$BEFORE" ] && echo "| before (BEFORE=$BEFORE) | $(serve "$BEFORE") |"
exit 0
