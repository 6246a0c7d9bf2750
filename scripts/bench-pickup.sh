#!/usr/bin/env bash
# Stubs start at once, measured (BENCHMARKS.md, "Stubs start at once (issue
# 11)"), release binary, 127.0.0.1 only: the time from a stub's rename into
# the watch folder to the first file request (`GET /peer/items/.../file`)
# arriving at the peer, for STUBS (default 20) stubs dropped one after the
# other, with scan_interval_ms = INTERVAL (default 2000, jack's default).
# The peer is a small Python HTTP server in this process that answers as a
# jack node does and notes when each item's first file request arrives
# (the same monotonic clock as the rename's). Before each stub a seeded
# random pause of 0 to INTERVAL ms, so a polling watcher is met at every
# phase of its polls. Prints median, min and max, and every figure.
# Usage: scripts/bench-pickup.sh [path/to/jack]   (default target/release/jack)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${BIN:-target/release/jack}}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "$BIN" "${STUBS:-20}" "${INTERVAL:-2000}" <<'PY'
import http.server, json, os, random, signal, statistics, sys, tempfile, threading, time
sys.path.insert(0, "scripts")
from benchlib import Node, free_port, stub
binary, stubs, interval = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

SIZE = 65536
BODY = os.urandom(SIZE)
first_request = {}  # item id -> monotonic time of its first file request
arrived = threading.Condition()

class Peer(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args): pass

    def answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers: self.send_header(k, v)
        self.end_headers(); self.wfile.write(body)

    def do_GET(self):
        now = time.monotonic()
        path = self.path.replace("%3A", ":")
        if path == "/handshake":
            return self.answer(200, b'{"name":"bench","version":"0.1.0"}', [("Content-Type", "application/json")])
        if not path.startswith("/peer/items/"):
            return self.answer(404, b"")
        item = path[len("/peer/items/"):]
        if item.endswith("/file"):
            item = item[:-len("/file")]
            with arrived:
                first_request.setdefault(item, now); arrived.notify_all()
            return self.answer(206, BODY, [("Content-Range", f"bytes 0-{SIZE - 1}/{SIZE}"), ("ETag", '"bench"')])
        release = {"id": item, "title": item.replace(":", "."), "filename": item.replace(":", ".") + ".mkv",
                   "size": SIZE, "category": 2000, "etag": '"bench"'}
        self.answer(200, json.dumps(release).encode(), [("Content-Type", "application/json")])

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Peer)
threading.Thread(target=server.serve_forever, daemon=True).start()

with tempfile.TemporaryDirectory() as d:
    port = free_port()
    cfg = os.path.join(d, "jack.toml")
    open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "bench"\n'
                         f'[downloads]\nscan_interval_ms = {interval}\n'
                         f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{server.server_port}"\napi_key = "x"\n')
    node = Node(binary, cfg); node.wait_line("listening")
    watch = os.path.join(d, "data/watch")
    rng = random.Random(11)
    delays = []
    for i in range(stubs):
        item = f"bench:{i}"
        time.sleep(rng.uniform(0, interval / 1000))
        tmp = os.path.join(watch, f".{i}.torrent.tmp")
        open(tmp, "wb").write(stub("alice", {"id": item, "title": f"Bench.{i}"}, SIZE))
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(watch, f"Bench.{i}.torrent"))
        with arrived:
            if not arrived.wait_for(lambda: item in first_request, timeout=30):
                raise SystemExit(f"no file request for {item}:\n" + "".join(l for _, l in node.lines))
        delays.append((first_request[item] - t0) * 1000)
    node.p.send_signal(signal.SIGTERM); node.p.wait()
    server.shutdown()
    how = "inotify" if any("watched with inotify" in l for _, l in node.lines) else "polling"
    print(f"rename -> first file request, {stubs} stubs, scan_interval_ms = {interval} ({how}): "
          f"median {statistics.median(delays):.1f} ms, min {min(delays):.1f} ms, max {max(delays):.1f} ms")
    print("every stub (ms): " + " ".join(f"{x:.1f}" for x in delays))
PY
