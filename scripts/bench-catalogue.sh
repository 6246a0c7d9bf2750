#!/usr/bin/env bash
# Catalogue scale: a library of FILES (default 100000) empty video files in
# 1000 folders with realistic names. Measures the first scan's time, the
# daemon's RSS before and after it (VmRSS and peak VmHWM), and /ping latency
# while the scan runs. Usage: scripts/bench-catalogue.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
FILES=${FILES:-100000}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "$BIN" "$FILES" <<'PY'
import os, re, socket, statistics, subprocess, sys, tempfile, threading, time
binary, files = os.path.abspath(sys.argv[1]), int(sys.argv[2])
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def ping_ms(port):
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.recv(64).startswith(b"HTTP/1.1 200")
    return (time.perf_counter() - t) * 1000
def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
with tempfile.TemporaryDirectory() as d:
    lib = os.path.join(d, "lib")
    per = max(1, files // 1000)
    n = 0
    for i in range(1000):
        if n >= files: break
        folder = os.path.join(lib, f"Some Movie Title {i} ({1950 + i % 70}) {{tmdb-{10000 + i}}}")
        os.makedirs(folder)
        for j in range(per):
            if n >= files: break
            open(os.path.join(folder, f"Some.Movie.Title.{i}.Part.{j}.{1950 + i % 70}.1080p.BluRay.x264-GRP.mkv"), "w").close()
            n += 1
    port = free_port()
    cfg = os.path.join(d, "jack.toml")
    open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "bench"\n'
                         f'[[library]]\nname = "big"\npath = "{lib}"\ncategory = "movies"\n')
    os.system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null")
    p = subprocess.Popen([binary, "--config", cfg], stderr=subprocess.PIPE, text=True)
    lines = []
    def reader():
        for l in p.stderr: lines.append(l)
    threading.Thread(target=reader, daemon=True).start()
    while not any("listening" in l for l in lines): time.sleep(0.005)
    rss_before = status(p.pid, "VmRSS")
    pings = []
    while not any("catalogue scanned" in l for l in lines):
        pings.append(ping_ms(port)); time.sleep(0.05)
    scanned = [l for l in lines if "catalogue scanned" in l][0]
    rss_after = status(p.pid, "VmRSS"); hwm = status(p.pid, "VmHWM")
    p.terminate(); p.wait()
    items = re.search(r"items=(\d+)", scanned).group(1)
    ms = re.search(r"elapsed_ms=(\d+)", scanned).group(1)
    print(f"files: {n}, catalogued items: {items}")
    print(f"first scan: {ms} ms ({int(ms) * 1000 / max(1, int(items)):.1f} us per file)")
    print(f"RSS before scan: {rss_before:.1f} MiB, after: {rss_after:.1f} MiB, peak (VmHWM): {hwm:.1f} MiB")
    print(f"RSS per catalogued file: {(rss_after - rss_before) * 1048576 / max(1, int(items)):.0f} bytes")
    if pings:
        print(f"/ping during the scan: {len(pings)} requests, median {statistics.median(pings):.2f} ms, max {max(pings):.2f} ms")
PY
