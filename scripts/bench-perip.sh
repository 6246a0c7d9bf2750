#!/usr/bin/env bash
# One address cannot take every connection, measured (BENCHMARKS.md, "One
# address cannot take every connection (issue 11)"), release binary,
# 127.0.0.0/8 only, default caps (max_connections 256, and on a jack that
# has it max_connections_per_ip 32):
#  1. SLOW (default 600) connections from 127.0.0.2, each sending half a
#     request head and then nothing (a slowloris, a scanner);
#  2. how many of them the node holds and how many it answers 503 and
#     closes, and the threads of the node meanwhile;
#  3. REQUESTS (default 50) requests from 127.0.0.1 to /ping, one connection
#     each: their statuses, median and max latency (connect to the end of
#     the answer).
# RUNS (default 3) fresh nodes per binary. BEFORE=<another jack binary>
# (e.g. one built from main) measures that one first, the same way.
# Usage: [BEFORE=/tmp/jack-main] scripts/bench-perip.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "${SLOW:-600}" "${REQUESTS:-50}" "${RUNS:-3}" ${BEFORE:+"$BEFORE"} "$BIN" <<'PY'
import os, signal, socket, statistics, sys, tempfile, time
sys.path.insert(0, "scripts")
from benchlib import Node, free_port
slow_n, requests, runs = map(int, sys.argv[1:4])
binaries = [os.path.abspath(b) for b in sys.argv[4:]]

def slow_connections(port, n):
    """n connections from 127.0.0.2 that never finish their request head."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append(s)
    return socks

def refused(socks, wait=3.0):
    """How many were answered 503 and closed (within `wait` seconds)."""
    answered, pending, end = 0, list(socks), time.monotonic() + wait
    seen = {}
    while pending and time.monotonic() < end:
        still = []
        for s in pending:
            try:
                b = s.recv(4096)
            except BlockingIOError:
                still.append(s); continue
            except ConnectionResetError:
                b = b""
            if b:
                seen[s] = seen.get(s, b"") + b; still.append(s)
            elif seen.get(s, b"").startswith(b"HTTP/1.1 503"):
                answered += 1
        if len(still) == len(pending): time.sleep(0.05)
        pending = still
    return answered

def ping(port):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = b""
    while True:  # the whole answer: the node closes the connection after it
        b = s.recv(4096)
        if not b: break
        answer += b
    ms = (time.perf_counter() - t) * 1000
    s.close()
    return int(answer.split()[1]) if answer else 0, ms

def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))

for binary in binaries:
    all_ms, statuses = [], {}
    for run in range(runs):
        with tempfile.TemporaryDirectory() as d:
            port = free_port()
            cfg = os.path.join(d, "jack.toml")
            open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "bench"\n')
            node = Node(binary, cfg); node.wait_line("listening")
            idle_threads = threads(node.p.pid)
            socks = slow_connections(port, slow_n)
            n_refused = refused(socks)
            busy_threads = threads(node.p.pid)
            ms, st = [], {}
            for _ in range(requests):
                status, t = ping(port)
                ms.append(t); st[status] = st.get(status, 0) + 1
            for s in socks: s.close()
            node.p.send_signal(signal.SIGTERM); node.p.wait()
        all_ms += ms
        for k, v in st.items(): statuses[k] = statuses.get(k, 0) + v
        print(f"{binary} run {run + 1}: {slow_n} slow from 127.0.0.2: {slow_n - n_refused} held, "
              f"{n_refused} answered 503; node threads {idle_threads} -> {busy_threads}; "
              f"/ping from 127.0.0.1: {dict(sorted(st.items()))}, "
              f"median {statistics.median(ms):.2f} ms, max {max(ms):.2f} ms")
    print(f"{binary}: {runs} runs, {len(all_ms)} requests from 127.0.0.1: statuses "
          f"{dict(sorted(statuses.items()))}, median {statistics.median(all_ms):.2f} ms, "
          f"max {max(all_ms):.2f} ms")
PY
