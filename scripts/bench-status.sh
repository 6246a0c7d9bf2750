#!/usr/bin/env bash
# Status and metrics, measured (BENCHMARKS.md, "Status and metrics (issue
# 10)"), release binary, 127.0.0.1 only, on a registry of ROWS (default
# 10000) downloads (completed and failed rows written into a stopped node's
# registry):
#  1. GET /metrics and GET /api/v1/downloads, REQUESTS (default 50) times
#     each on one keep-alive connection: median, p95, max, answer size.
#  2. `jack status` and `jack status --json` as a process, RUNS (default 20)
#     times each, with the daemon running (through its status API) and
#     stopped (the registry read directly): median and max wall time.
# Each line also gives the CPU time (user + system) per run of the process
# that did the work (the daemon for requests, the CLI for `jack status`),
# which a busy shared machine inflates far less than wall time.
# Usage: scripts/bench-status.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "$BIN" "${ROWS:-10000}" "${REQUESTS:-50}" "${RUNS:-20}" <<'PY'
import http.client, os, resource, signal, sqlite3, statistics, subprocess, sys, tempfile, time, uuid
sys.path.insert(0, "scripts")
from benchlib import Node, fill_registry, free_port
binary, rows, requests, runs = os.path.abspath(sys.argv[1]), *map(int, sys.argv[2:5])

def stop(node):
    node.p.send_signal(signal.SIGTERM); node.p.wait()

def summary(label, times, extra=""):
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    print(f"{label}: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, "
          f"max {times[-1]:.1f} ms ({len(times)} runs){extra}")

with tempfile.TemporaryDirectory() as d:
    port = free_port()
    cfg = os.path.join(d, "jack.toml")
    open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "bench"\n')
    node = Node(binary, cfg); node.wait_line("listening"); stop(node)
    fill_registry(d, rows)

    def cpu_ms(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def children_cpu_ms():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (r.ru_utime + r.ru_stime) * 1000

    def cli(args, expect):
        times = []
        cpu0 = children_cpu_ms()
        for _ in range(runs):
            t = time.perf_counter()
            out = subprocess.run([binary, "status", *args, "--config", cfg], capture_output=True, check=True).stdout
            times.append((time.perf_counter() - t) * 1000)
            assert out.startswith(expect), out[:200]
        return times, len(out), (children_cpu_ms() - cpu0) / runs

    node = Node(binary, cfg); node.wait_line("listening")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in ["/metrics", "/api/v1/downloads"]:
        times, size = [], 0
        cpu0 = cpu_ms(node.p.pid)
        for _ in range(requests):
            t = time.perf_counter()
            c.request("GET", path, headers={"X-Api-Key": "bench"})
            r = c.getresponse(); body = r.read()
            times.append((time.perf_counter() - t) * 1000)
            assert r.status == 200, r.status; size = len(body)
        cpu = (cpu_ms(node.p.pid) - cpu0) / requests
        summary(f"GET {path} on {rows} rows", times, f", {size / 1024:.1f} KiB, daemon CPU {cpu:.1f} ms/request")
    for args, expect, label in [([], b"source: daemon", "jack status (daemon running)"),
                                (["--json"], b'{"source":"daemon"', "jack status --json (daemon running)")]:
        times, size, cpu = cli(args, expect)
        summary(f"{label} on {rows} rows", times, f", {size / 1024:.1f} KiB out, CLI CPU {cpu:.1f} ms/run")
    stop(node)
    for args, expect, label in [([], b"source: registry", "jack status (daemon stopped)"),
                                (["--json"], b'{"source":"registry"', "jack status --json (daemon stopped)")]:
        times, size, cpu = cli(args, expect)
        summary(f"{label} on {rows} rows", times, f", {size / 1024:.1f} KiB out, CLI CPU {cpu:.1f} ms/run")
PY
