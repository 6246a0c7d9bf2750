#!/usr/bin/env bash
# The kill -9 loop, measured: node B downloads a SIZE_MIB (default 256) MiB
# file from jack node A through its watch folder and is killed with SIGKILL
# KILLS times (default 10) at random moments (10-80 ms after each start, plus 200 ms before the first kill for the watch folder),
# restarting each time. Reports the bytes A sent in total (from A's debug
# log: every file body's byte count), the bytes re-fetched per kill, and the
# time from each restart to B resuming the transfer (B's "download resumed"
# log line). Release binary; 127.0.0.1 only. Usage: scripts/bench-crash.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "$BIN" "${SIZE_MIB:-256}" "${KILLS:-10}" <<'PY'
import hashlib, json, os, random, re, signal, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request
binary, size_mib, kills_wanted = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
size = size_mib * 1024 * 1024
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
class Node:
    def __init__(self, cfg):
        self.lines = []
        self.p = subprocess.Popen([binary, "--config", cfg], stderr=subprocess.PIPE, text=True, env={**os.environ, "JACK_LOG": ""})
        self.t0 = time.monotonic()
        threading.Thread(target=self.read, daemon=True).start()
    def read(self):
        for l in self.p.stderr: self.lines.append((time.monotonic(), l))
    def wait_line(self, pat, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, l in list(self.lines):
                if re.search(pat, l): return t
            time.sleep(0.002)
        raise SystemExit(f"no log line {pat!r}")
with tempfile.TemporaryDirectory() as d:
    lib = os.path.join(d, "a/lib"); os.makedirs(lib)
    name = "Crash.Bench.2024.1080p.mkv"
    with open(os.path.join(lib, name), "wb") as f:
        for _ in range(size_mib): f.write(os.urandom(1024 * 1024))
    src_sha = hashlib.sha256(open(os.path.join(lib, name), "rb").read()).hexdigest()
    pa, pb = free_port(), free_port()
    ca = os.path.join(d, "a/jack.toml")
    open(ca, "w").write(f'[server]\nlisten = "127.0.0.1:{pa}"\napi_key = "bench"\n[log]\nlevel = "debug"\n'
                        f'[[library]]\nname = "bench"\npath = "{lib}"\ncategory = "movies"\n')
    os.makedirs(os.path.join(d, "b"))
    cb = os.path.join(d, "b/jack.toml")
    open(cb, "w").write(f'[server]\nlisten = "127.0.0.1:{pb}"\napi_key = "b"\n[downloads]\nscan_interval_ms = 100\n'
                        f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{pa}"\napi_key = "bench"\n')
    a = Node(ca); a.wait_line("catalogue scanned")
    req = urllib.request.Request(f"http://127.0.0.1:{pa}/peer/search", headers={"X-Api-Key": "bench"})
    item = json.load(urllib.request.urlopen(req))["items"][0]
    c = ("jack:alice:" + item["id"]).encode(); t = item["title"].encode(); n = -(-size // 16777216)
    stub = (b"d7:comment%d:" % len(c)) + c + (b"4:infod6:lengthi%de4:name%d:" % (size, len(t))) + t + \
           (b"12:piece lengthi16777216e6:pieces%d:" % (20 * n)) + b"\0" * (20 * n) + b"ee"
    b = Node(cb)
    watch = os.path.join(d, "b/data/watch"); os.makedirs(watch, exist_ok=True)
    open(os.path.join(watch, ".s.tmp"), "wb").write(stub); os.rename(os.path.join(watch, ".s.tmp"), os.path.join(watch, "s.torrent"))
    dest = os.path.join(d, "b/data/completed", name)
    rng = random.Random(int(time.time()))
    kills, resumes = 0, []
    start = time.monotonic()
    while kills < kills_wanted and not os.path.exists(dest):
        time.sleep(rng.uniform(0.01, 0.08) + (0.2 if kills == 0 else 0))
        if os.path.exists(dest): break
        b.p.send_signal(signal.SIGKILL); b.p.wait(); kills += 1
        b = Node(cb)
        try:
            resumes.append((b.wait_line(r"download (resumed|started) id=", 10) - b.t0) * 1000)
        except SystemExit:
            pass
    while not os.path.exists(dest): time.sleep(0.01)
    wall = time.monotonic() - start
    ok = hashlib.sha256(open(dest, "rb").read()).hexdigest() == src_sha
    time.sleep(0.3)
    sent = sum(int(m.group(1)) for _, l in a.lines for m in [re.search(r"file body sent .* bytes=(\d+)", l)] if m)
    b.p.terminate(); a.p.terminate(); b.p.wait(); a.p.wait()
    refetched = sent - size
    print(f"file: {size_mib} MiB, kills: {kills}, final SHA-256 equal: {ok}, wall: {wall:.1f} s")
    print(f"bytes sent by the peer: {sent} (file {size}); re-fetched: {refetched} bytes = {refetched/1048576:.1f} MiB")
    if kills:
        print(f"re-fetched per kill: {refetched/kills/1048576:.1f} MiB (bound: one checkpoint interval = 64 MiB)")
    if resumes:
        print(f"restart to transfer running again: median {statistics.median(resumes):.0f} ms, max {max(resumes):.0f} ms over {len(resumes)} restarts")
PY
