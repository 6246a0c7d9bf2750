#!/usr/bin/env bash
# The long haul over a flaky uplink, measured (BENCHMARKS.md, "A flaky
# uplink (issue 13)"), release binary, 127.0.0.1 only: a 1 GiB file of
# random bytes downloaded by a fresh jack node B from a jack node A, three
# ways, RUNS times each (the order rotates run by run):
#
#   direct   B asks A.
#   proxy    B asks A through a small Python TCP proxy in this process that
#            forwards every byte (the proxy's own cost, for comparison).
#   flaky    the same proxy cuts every connection once CUT bytes (default
#            32 MiB) of A's answer have passed: 32 cuts for 1 GiB.
#
# B runs with jack's defaults (max_attempts = 13, progress_bytes = 64 KiB,
# retry_base_delay_ms = 1000): each cut attempt made progress, so none
# counts against max_attempts and each retry waits a full-jitter delay of
# at most the base delay. Wall time runs from the stub's rename into B's
# watch folder to B's "download completed" log line; the file is checked
# for its size and (first run of each way) its SHA-256. Also printed: the
# retries B logged, the connections the proxy cut and the bytes it passed
# (bytes fetched twice show there).
# Usage: scripts/bench-flaky.sh [path/to/jack]   (default target/release/jack;
#        env RUNS=3 CUT=33554432 TMPDIR=/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${BIN:-target/release/jack}}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "$BIN" "${RUNS:-3}" "${CUT:-33554432}" <<'PY'
import hashlib, os, shutil, signal, socket, statistics, sys, tempfile, threading, time
sys.path.insert(0, "scripts")
from benchlib import Node, first_item, free_port, stub
binary, runs, cut = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
SIZE = 1 << 30
NAME = "Bench.Flaky.2024.1080p.WEB-DL.mkv"


class Proxy:
    """127.0.0.1:port -> upstream; with `cut`, each connection is closed
    once `cut` bytes of the upstream's answer have passed."""

    def __init__(self, upstream):
        self.upstream, self.cut, self.cuts, self.passed = upstream, None, 0, 0
        self.lock = threading.Lock()
        self.s = socket.socket(); self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0)); self.s.listen(64); self.port = self.s.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.s.accept()
            threading.Thread(target=self.relay, args=(c,), daemon=True).start()

    def relay(self, c):
        u = socket.create_connection(("127.0.0.1", self.upstream))
        def up():
            try:
                while (b := c.recv(65536)): u.sendall(b)
            except OSError: pass
        threading.Thread(target=up, daemon=True).start()
        sent, limit = 0, self.cut
        try:
            while True:
                want = 1 << 20 if limit is None else min(1 << 20, limit - sent)
                if want == 0:
                    with self.lock: self.cuts += 1
                    break
                b = u.recv(want)
                if not b: break
                c.sendall(b); sent += len(b)
                with self.lock: self.passed += len(b)
        except OSError: pass
        finally:
            for s in (c, u):
                try: s.shutdown(socket.SHUT_RDWR)
                except OSError: pass
                s.close()


with tempfile.TemporaryDirectory() as d:
    lib = os.path.join(d, "library"); os.makedirs(lib)
    src = os.path.join(lib, NAME)
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(SIZE >> 24):
            b = os.urandom(1 << 24); h.update(b); f.write(b)
    digest = h.hexdigest()
    a_port = free_port()
    a_dir = os.path.join(d, "a"); os.makedirs(a_dir)
    open(os.path.join(a_dir, "jack.toml"), "w").write(
        f'[server]\nlisten = "127.0.0.1:{a_port}"\napi_key = "bench"\nhandler_threads = 8\n'
        f'[[library]]\nname = "bench"\npath = "{lib}"\ncategory = "movies"\n')
    a = Node(binary, os.path.join(a_dir, "jack.toml")); a.wait_line("listening")
    item = None
    for _ in range(200):
        try: item = first_item(a_port); break
        except Exception: time.sleep(0.1)
    if item is None: raise SystemExit("node A listed nothing")
    proxy = Proxy(a_port)

    def once(way, n):
        b_dir = os.path.join(d, f"b-{way}-{n}"); os.makedirs(b_dir)
        port = a_port if way == "direct" else proxy.port
        proxy.cut = cut if way == "flaky" else None
        with proxy.lock: proxy.cuts, proxy.passed = 0, 0
        cfg = os.path.join(b_dir, "jack.toml")
        open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{free_port()}"\napi_key = "b"\n'
                             f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{port}"\napi_key = "bench"\n')
        b = Node(binary, cfg); b.wait_line("listening")
        watch = os.path.join(b_dir, "data/watch"); os.makedirs(watch, exist_ok=True)
        tmp = os.path.join(watch, ".s.tmp"); open(tmp, "wb").write(stub("alice", item, SIZE))
        t0 = time.monotonic(); os.rename(tmp, os.path.join(watch, "s.torrent"))
        t1, _ = b.wait_line(r"download (completed|failed)", timeout=600)
        if any("download failed" in l for _, l in b.lines):
            raise SystemExit("".join(l for _, l in b.lines))
        out = os.path.join(b_dir, "data/completed", NAME)
        assert os.path.getsize(out) == SIZE, way
        if n == 0:
            with open(out, "rb") as f: assert hashlib.file_digest(f, "sha256").hexdigest() == digest, way
        retries = sum("download retry" in l for _, l in b.lines)
        b.p.send_signal(signal.SIGTERM); b.p.wait()
        with proxy.lock: cuts, passed = proxy.cuts, proxy.passed
        shutil.rmtree(b_dir)
        return t1 - t0, retries, cuts, passed

    ways = ["direct", "proxy", "flaky"]
    results = {w: [] for w in ways}
    for n in range(runs):
        for w in ways[n % 3:] + ways[:n % 3]:
            os.sync()
            r = once(w, n); results[w].append(r)
            print(f"run {n + 1} {w}: {r[0]:.2f} s, {r[1]} retries, {r[2]} cuts, {r[3]} bytes through the proxy",
                  file=sys.stderr)
    a.p.send_signal(signal.SIGTERM); a.p.wait()
    print(f"1 GiB, jack -> jack on 127.0.0.1, {runs} runs each, cut every {cut} bytes (median, min-max):")
    print("| way | wall time | retries | cuts | bytes through the proxy |")
    print("|---|---|---|---|---|")
    for w in ways:
        t = [r[0] for r in results[w]]
        print(f"| {w} | {statistics.median(t):.2f} s ({min(t):.2f}-{max(t):.2f}) | {results[w][0][1]} | "
              f"{results[w][0][2]} | {results[w][0][3] if w != 'direct' else '-'} |")
    print("every run (s): " + "; ".join(f"{w}: " + " ".join(f"{r[0]:.2f}" for r in results[w]) for w in ways))
PY
