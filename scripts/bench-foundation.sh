#!/usr/bin/env bash
# Measures the foundation figures for BENCHMARKS.md: stripped release binary
# size, resident memory of the idle daemon, and start-up time to the first
# answered /ping. Runs the release binary RUNS times (default 7) on a
# throw-away config and prints medians. Usage: scripts/bench-foundation.sh
# BIN=... picks another binary; RUNNER="qemu-aarch64" runs it under an
# emulator (then the RSS is the emulator's process, jack included).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
RUNS=${RUNS:-7}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
ARCH=$(file -b "$BIN" | cut -d, -f2 | sed 's/^ //')

python3 - "$BIN" "$RUNS" "$ARCH" "${RUNNER:-}" <<'PY'
import os, socket, statistics, subprocess, sys, tempfile, time

binary, runs, arch = os.path.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
runner = sys.argv[4].split()

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
            c.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

starts, rss, threads = [], [], []
for _ in range(runs):
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        cfg = os.path.join(d, "jack.toml")
        with open(cfg, "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "bench"\n')
        t0 = time.perf_counter()
        p = subprocess.Popen(runner + [binary, "--config", cfg, "run"], stderr=subprocess.DEVNULL)
        while not ping(port):
            time.sleep(0.001)
        starts.append((time.perf_counter() - t0) * 1000)
        time.sleep(2)  # idle
        rss.append(rss_kib(p.pid))
        threads.append(len(os.listdir(f"/proc/{p.pid}/task")))
        p.terminate(); p.wait()

size = os.path.getsize(binary)
print(f"runs: {runs}")
print(f"binary size (stripped release, {arch}): {size} bytes ({size/1048576:.2f} MiB)")
if runner:
    print(f"run under: {' '.join(runner)} (RSS and threads are the emulator's process)")
print(f"idle RSS median: {statistics.median(rss)/1024:.2f} MiB (min {min(rss)/1024:.2f}, max {max(rss)/1024:.2f})")
print(f"idle threads median: {statistics.median(threads)}")
print(f"start to first /ping median: {statistics.median(starts):.1f} ms (min {min(starts):.1f}, max {max(starts):.1f})")
PY
