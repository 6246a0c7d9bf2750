#!/usr/bin/env bash
# Measures serving for BENCHMARKS.md: jack against nginx, side by side in one
# run, on the same 1 GiB file of random bytes, over loopback (127.0.0.1 only).
#
# Per server: full-file throughput (curl, warm cache, median of RUNS), server
# CPU seconds per GiB sent, peak RSS (VmHWM), and 8 concurrent 128 MiB range
# requests (median aggregate throughput of RUNS batches, RSS sampled every
# ~20 ms during the batches), and the read()/sendfile() calls per GiB from
# /proc/<pid>/io (syscr: a few thousand per GiB for sendfile(), whose calls
# move up to 2 MiB each in nginx; 131,072 for a copy loop that read()s 8 KiB
# at a time). Every download is checked: full fetches are
# exactly 1 GiB, slices exactly 128 MiB, and one full download from each
# server has the SHA-256 of the source. The two servers are fetched
# alternately, run by run, so drift on a noisy machine hits both alike.
# Cold page cache: the same full download, with the file evicted from the
# page cache (posix_fadvise(POSIX_FADV_DONTNEED) on it) before every run,
# so each byte is read from the disk.
#
# Prints a Markdown table (jack, nginx, jack/nginx) and the raw per-run
# numbers on stdout; progress goes to stderr. Both servers and the temp dir
# are removed on exit, also on failure or Ctrl-C.
#
# Server CPU per GiB is measured warm and cold (user+sys of the process;
# for nginx master and worker). With BEFORE=<another jack binary> (e.g. one
# built from the previous main) a third server runs the same, fetched in
# turn with the other two, and the table gains its column and jack/before.
#
# Usage: scripts/bench-serve.sh   (env: BIN=target/release/jack RUNS=5
#        NGINX=/usr/sbin/nginx TMPDIR=/tmp DEADLINE=570 seconds BEFORE=
#        BEFORE_SERVER_EXTRA=, a [server] line for the BEFORE node, e.g.
#        "max_streams_per_key = 8" when it is a build that has the key)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
BIN=${BIN:-target/release/jack}
RUNS=${RUNS:-5}
DEADLINE=${DEADLINE:-570}
SIZE=1073741824 # 1 GiB
NAME=Bench.File.2024.1080p.WEB-DL.mkv

[ -x "$BIN" ] || { echo "error: $BIN missing; build first: make build" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if [ -z "${NGINX:-}" ]; then
    if [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; else NGINX=$(command -v nginx || true); fi
fi
[ -n "$NGINX" ] && [ -x "$NGINX" ] || { echo "error: nginx not found (scripts/ensure-tools.sh nginx)" >&2; exit 1; }
for tool in curl python3 sha256sum; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "error: RUNS must be a positive integer" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jack-bench-serve.XXXXXX")
JACK_PID=""
BEFORE_PID=""
BEFORE_URL=""
NGINX_PID=""
MEASURE_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$MEASURE_PID" ]; then # timeout passes the TERM on to python
        kill -TERM "$MEASURE_PID" 2>/dev/null || true
        wait "$MEASURE_PID" 2>/dev/null || true
    fi
    stop_pids $JACK_PID $NGINX_PID $BEFORE_PID
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "bench-serve: $*" >&2; }

mkdir -p "$TMP"/lib
FILE=$TMP/lib/$NAME
log "writing $SIZE random bytes to $FILE"
head -c "$SIZE" /dev/urandom >"$FILE"
[ "$(stat -c %s "$FILE")" -eq "$SIZE" ] || { echo "error: short test file" >&2; exit 1; }
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
log "source sha256 $SHA"

# jack and nginx, each on its own throw-away configuration.
# The 8 concurrent ranges come with one key: let it have 8 streams (the
# default, 4, answers the rest 503 Retry-After, as a friend's downloader
# that opens more than 4 connections would see).
NODE_SERVER_EXTRA="max_streams_per_key = 8" start_jack_node "$TMP/jack" "$TMP/lib"
JACK_PORT=$NODE_PORT JACK_PID=$NODE_PID
start_nginx "$FILE"
wait_jack_node "$TMP/jack"
ID=$(curl -sf --max-time 120 -H 'X-Api-Key: bench' "http://127.0.0.1:$JACK_PORT/peer/search" |
    python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; assert len(items)==1, items; print(items[0]["id"])')
ENC=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$ID")
JACK_URL="http://127.0.0.1:$JACK_PORT/peer/items/$ENC/file"
NGINX_URL="http://127.0.0.1:$NGINX_PORT/file"
log "jack pid $JACK_PID on $JACK_URL"
if [ -n "${BEFORE:-}" ]; then
    [ -x "$BEFORE" ] || { echo "error: BEFORE=$BEFORE is not an executable" >&2; exit 1; }
    NEW_BIN=$BIN
    BIN=$(cd "$(dirname "$BEFORE")" && pwd)/$(basename "$BEFORE")
    NODE_SERVER_EXTRA="${BEFORE_SERVER_EXTRA:-}" start_jack_node "$TMP/before" "$TMP/lib"
    BEFORE_PID=$NODE_PID
    wait_jack_node "$TMP/before"
    BEFORE_URL="http://127.0.0.1:$NODE_PORT/peer/items/$ENC/file"
    BIN=$NEW_BIN
    log "before ($BEFORE) pid $BEFORE_PID on $BEFORE_URL"
fi
log "nginx master pid $NGINX_PID on $NGINX_URL"

# One full download from each server must hash like the source (untimed).
for pair in "jack $JACK_URL" "nginx $NGINX_URL" ${BEFORE_URL:+"before $BEFORE_URL"}; do
    set -- $pair
    got=$(curl -sf --max-time 120 -H 'X-Api-Key: bench' "$2" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$SHA" ] || { echo "error: $1 sent a file with sha256 $got, expected $SHA" >&2; exit 1; }
    log "$1: full download sha256 matches the source"
done

MACHINE="$(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
VERSIONS="$("$BIN" --version 2>&1 | head -1); $("$NGINX" -v 2>&1 | head -1 | sed 's/^nginx version: //'); $(curl --version | head -1 | cut -d' ' -f1-2)"

timeout --signal=TERM "$DEADLINE" python3 - "$JACK_PID" "$NGINX_PID" "$JACK_URL" "$NGINX_URL" "$SIZE" "$RUNS" \
    "$MACHINE" "$VERSIONS" "$FILE" "${BEFORE_PID:-0}" "$BEFORE_URL" <<'PY' &
import os, statistics, subprocess, sys, threading, time

jack_pid, nginx_pid = int(sys.argv[1]), int(sys.argv[2])
urls = {"jack": sys.argv[3], "nginx": sys.argv[4]}
size, runs = int(sys.argv[5]), int(sys.argv[6])
machine, versions, path = sys.argv[7], sys.argv[8], sys.argv[9]
before_pid = int(sys.argv[10])
if before_pid:
    urls["before"] = sys.argv[11]
TICK = os.sysconf("SC_CLK_TCK")
MIB, GIB = 1 << 20, 1 << 30
SLICE = 128 * MIB
STREAMS = 8
assert STREAMS * SLICE == size
CURL = ["curl", "-s", "-o", "/dev/null", "--max-time", "120", "-H", "X-Api-Key: bench",
        "-w", "%{http_code} %{size_download} %{time_total}"]

def log(*a):
    print("bench-serve:", *a, file=sys.stderr, flush=True)

def nginx_workers():
    out = subprocess.run(["pgrep", "-P", str(nginx_pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]

workers = nginx_workers()
if len(workers) != 1:
    sys.exit(f"error: expected 1 nginx worker, found {workers}")
worker = workers[0]

def cpu_pids(server):
    if server == "before":
        return [before_pid]
    return [jack_pid] if server == "jack" else [nginx_pid] + nginx_workers()

def mem_pid(server):  # the process whose RSS is reported
    return {"jack": jack_pid, "before": before_pid}.get(server, worker)

def cpu_seconds(server):
    total = 0
    for pid in cpu_pids(server):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / TICK

def read_syscalls(server):
    """read()-family and sendfile() calls so far (/proc/<pid>/io syscr)."""
    total = 0
    for pid in cpu_pids(server):
        with open(f"/proc/{pid}/io") as f:
            total += next(int(l.split()[1]) for l in f if l.startswith("syscr:"))
    return total

def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)

def fetch(url, rng=None):
    cmd = CURL + ([] if rng is None else ["-r", rng]) + [url]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: curl {url} {rng or ''} exited {p.returncode}")
    code, n, t = p.stdout.split()
    return int(code), int(n), float(t)

def full(server):
    code, n, t = fetch(urls[server])
    if code != 200 or n != size:
        sys.exit(f"error: {server} full fetch: status {code}, {n} bytes (expected 200, {size})")
    return t

def batch(server):
    """8 concurrent 128 MiB range requests; (wall seconds, max VmRSS KiB)."""
    pid = mem_pid(server)
    peak = [status_kib(pid, "VmRSS")]
    t0 = time.perf_counter()
    procs = []
    for i in range(STREAMS):
        rng = f"{i * SLICE}-{(i + 1) * SLICE - 1}"
        procs.append(subprocess.Popen(CURL + ["-r", rng, urls[server]],
                                      stdout=subprocess.PIPE, text=True))
    while any(p.poll() is None for p in procs):
        peak.append(status_kib(pid, "VmRSS"))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    peak.append(status_kib(pid, "VmRSS"))
    for i, p in enumerate(procs):
        out = p.stdout.read().split()
        if p.returncode != 0 or len(out) != 3 or int(out[0]) != 206 or int(out[1]) != SLICE:
            sys.exit(f"error: {server} slice {i}: curl rc {p.returncode}, output {out} "
                     f"(expected 206, {SLICE} bytes)")
    return wall, max(peak)

servers = ["jack", "nginx"] + (["before"] if before_pid else [])
idle = {s: status_kib(mem_pid(s), "VmRSS") for s in servers}
for s in servers:  # untimed warm-up (the cache is already warm from the hash check)
    full(s)

thr = {s: [] for s in servers}
cpu = {s: 0.0 for s in servers}
syscr = {s: 0 for s in servers}
for r in range(runs):
    for s in (servers if r % 2 == 0 else servers[::-1]):
        c0, r0 = cpu_seconds(s), read_syscalls(s)
        t = full(s)
        cpu[s] += cpu_seconds(s) - c0
        syscr[s] += read_syscalls(s) - r0
        thr[s].append(size / MIB / t)
    log(f"full run {r + 1}/{runs}: " + ", ".join(f"{s} {thr[s][-1]:.0f} MiB/s" for s in servers))

def evict():
    """Drops the file's pages from the page cache (they are clean)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)

cold = {s: [] for s in servers}
cold_cpu = {s: 0.0 for s in servers}
for r in range(runs):
    for s in (servers if r % 2 == 0 else servers[::-1]):
        evict()
        c0 = cpu_seconds(s)
        cold[s].append(size / MIB / full(s))
        cold_cpu[s] += cpu_seconds(s) - c0
    log(f"cold run {r + 1}/{runs}: " + ", ".join(f"{s} {cold[s][-1]:.0f} MiB/s" for s in servers))

par = {s: [] for s in servers}
par_rss = {s: [] for s in servers}
par_cpu = {s: 0.0 for s in servers}
for r in range(runs):
    for s in (servers if r % 2 == 0 else servers[::-1]):
        c0 = cpu_seconds(s)
        wall, peak = batch(s)
        par_cpu[s] += cpu_seconds(s) - c0
        par[s].append(size / MIB / wall)
        par_rss[s].append(peak)
    log(f"parallel run {r + 1}/{runs}: " + ", ".join(
        f"{s} {par[s][-1]:.0f} MiB/s rss {par_rss[s][-1] / 1024:.1f} MiB" for s in servers))

hwm = {s: status_kib(mem_pid(s), "VmHWM") for s in servers}
threads = len(os.listdir(f"/proc/{jack_pid}/task"))
med = statistics.median
gib_full = runs * size / GIB

rows = [
    ("Full 1 GiB download, median MiB/s (higher is better)",
     {s: med(thr[s]) for s in servers}, "{:,.0f}"),
    ("Full 1 GiB download from a cold page cache, median MiB/s",
     {s: med(cold[s]) for s in servers}, "{:,.0f}"),
    ("8 concurrent 128 MiB ranges, median aggregate MiB/s",
     {s: med(par[s]) for s in servers}, "{:,.0f}"),
    ("Server CPU s per GiB, full downloads (user+sys)",
     {s: cpu[s] / gib_full for s in servers}, "{:.3f}"),
    ("Server CPU s per GiB, full downloads from a cold page cache (user+sys)",
     {s: cold_cpu[s] / gib_full for s in servers}, "{:.3f}"),
    ("Server CPU s per GiB, 8 concurrent ranges (user+sys)",
     {s: par_cpu[s] / gib_full for s in servers}, "{:.3f}"),
    ("Server read()/sendfile() calls per GiB, full downloads (/proc/PID/io syscr)",
     {s: syscr[s] / gib_full for s in servers}, "{:,.0f}"),
    ("RSS while serving 8 streams, max of ~20 ms samples, MiB",
     {s: max(par_rss[s]) / 1024 for s in servers}, "{:.2f}"),
    ("Peak RSS (VmHWM) after all tests, MiB",
     {s: hwm[s] / 1024 for s in servers}, "{:.2f}"),
    ("Idle RSS before the tests, MiB",
     {s: idle[s] / 1024 for s in servers}, "{:.2f}"),
]
print(f"Machine: {machine}")
print(f"Versions: {versions}")
print(f"Runs: {runs} per figure; file {size} bytes of random data; loopback; warm page cache except the cold row")
print("nginx: 1 worker, sendfile on, tcp_nopush on; its CPU is master+worker, its RSS the worker's")
print("jack: handler_threads = 8, max_streams_per_key = 8 (before: its own defaults); CPU and RSS of its one process "
      f"({threads} threads at the end)")
print()
def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"
if before_pid:
    print("| Figure | jack | nginx | jack/nginx | before | jack/before |")
    print("|---|---|---|---|---|---|")
else:
    print("| Figure | jack | nginx | jack/nginx |")
    print("|---|---|---|---|")
for name, v, fmt in rows:
    line = f"| {name} | {fmt.format(v['jack'])} | {fmt.format(v['nginx'])} | {ratio(v['jack'], v['nginx'])} |"
    if before_pid:
        line += f" {fmt.format(v['before'])} | {ratio(v['jack'], v['before'])} |"
    print(line)
print()
ratio = med(thr["jack"]) / med(thr["nginx"])
jack8 = max(par_rss["jack"]) / 1024
print(f"Goal: jack >= 0.8x nginx throughput: {ratio:.2f}x, "
      f"{'met' if ratio >= 0.8 else 'MISSED'}")
print(f"Goal: jack under 16 MiB RSS serving 8 streams: {jack8:.2f} MiB, "
      f"{'met' if jack8 < 16 else 'MISSED'}")
cold_ratio = med(cold["jack"]) / med(cold["nginx"])
print(f"Goal: jack >= 0.95x nginx from a cold page cache: {cold_ratio:.2f}x, "
      f"{'met' if cold_ratio >= 0.95 else 'MISSED'}")
for label, c in (("warm", cpu), ("cold", cold_cpu)):
    r = c["jack"] / c["nginx"] if c["nginx"] else float("inf")
    print(f"Goal: jack's CPU per GiB at most nginx's, {label}: {r:.2f}x, "
          f"{'met' if r <= 1.0 else 'MISSED'}")
paired_cold = [j / n for j, n in zip(cold["jack"], cold["nginx"])]
print("Paired cold-cache ratios: " + " ".join(f"{x:.2f}" for x in paired_cold)
      + f" (median {med(paired_cold):.2f})")
paired = [j / n for j, n in zip(thr["jack"], thr["nginx"])]
paired8 = [j / n for j, n in zip(par["jack"], par["nginx"])]
print("Paired jack/nginx ratios, run by run (each pair fetched back to back): full "
      + " ".join(f"{x:.2f}" for x in paired) + f" (median {med(paired):.2f}); 8x range "
      + " ".join(f"{x:.2f}" for x in paired8) + f" (median {med(paired8):.2f})")
print()
print("Raw numbers, run by run:")
for s in servers:
    print(f"  {s} full MiB/s:     " + " ".join(f"{x:.0f}" for x in thr[s]))
    print(f"  {s} cold full MiB/s: " + " ".join(f"{x:.0f}" for x in cold[s]))
    print(f"  {s} 8x range MiB/s: " + " ".join(f"{x:.0f}" for x in par[s]))
    print(f"  {s} 8x range max RSS MiB: " + " ".join(f"{x / 1024:.2f}" for x in par_rss[s]))
    print(f"  {s} CPU s total: full {cpu[s]:.2f} over {gib_full:.0f} GiB, "
          f"cold {cold_cpu[s]:.2f} over {gib_full:.0f} GiB, "
          f"ranges {par_cpu[s]:.2f} over {gib_full:.0f} GiB")
PY
# In the background and waited for, so that a signal to this script is
# handled at once (the trap stops the measurement, then the servers).
MEASURE_PID=$!
wait "$MEASURE_PID"
