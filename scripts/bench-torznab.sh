#!/usr/bin/env bash
# Measures a Torznab search across three peers for BENCHMARKS.md: one
# healthy jack node (a library of ITEMS empty video files), one slow peer
# (answers /peer/search only after sleeping 60 s), one dead peer (a
# listening socket that never accepts: the connection is made by the
# kernel, no byte ever comes back). All on 127.0.0.1.
#
# For each configured [torznab] peer_timeout_ms in TIMEOUTS, an indexer
# node is started and `GET /torznab/api?t=search` is timed RUNS times
# (wall clock, in the client, over a new connection each time): the
# median, min and max, and the median's ratio to the timeout. Every answer
# is checked: an RSS feed holding exactly the healthy peer's items. The
# same search with only the healthy peer configured gives the cost of the
# search itself.
#
# Prints a Markdown table on stdout; the nodes and the temp dir are
# removed on exit.
#
# Usage: scripts/bench-torznab.sh   (env: BIN=target/release/jack RUNS=11
#        TIMEOUTS="500 1000 2000 10000" ITEMS=50)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
RUNS=${RUNS:-11}
TIMEOUTS=${TIMEOUTS:-500 1000 2000 10000}
ITEMS=${ITEMS:-50}
[ -x "$BIN" ] || { echo "error: $BIN missing; build first: make build" >&2; exit 1; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "error: RUNS must be a positive integer" >&2; exit 2; }
exec python3 - "$BIN" "$RUNS" "$ITEMS" $TIMEOUTS <<'PY'
import os, socket, statistics, sys, tempfile, threading, time, urllib.request
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, "scripts")
from benchlib import Node, free_port

binary, runs, items = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
timeouts = [int(t) for t in sys.argv[4:]]
KEY = "bench"

class Slow(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(60)
        body = b'{"items":[]}'
        try:  # jack hung up long ago
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass
    def log_message(self, *a): pass

def node(d, name, extra):
    port = free_port()
    cfg = os.path.join(d, name + ".toml")
    open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "{KEY}"\n'
                         f'[database]\npath = "{d}/{name}.db"\n'
                         f'[downloads]\nwatch_dir = "{d}/{name}-watch"\n'
                         f'incomplete_dir = "{d}/{name}-inc"\ncompleted_dir = "{d}/{name}-done"\n{extra}')
    return Node(binary, cfg), port

def peers(entries):
    return "".join(f'[[peers]]\nname = "{n}"\nurl = "{u}"\napi_key = "{KEY}"\n' for n, u in entries)

def search_ms(port):
    t = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/torznab/api?t=search&apikey={KEY}",
                                  timeout=120).read()
    ms = (time.perf_counter() - t) * 1000
    ns = "{http://torznab.com/schemas/2015/feed}"
    found = ET.fromstring(body).findall("./channel/item")
    assert len(found) == min(items, 100), f"{len(found)} items"
    assert all(i.find("guid").text.startswith("healthy:") for i in found)
    assert all(i.find(ns + "attr") is not None for i in found)
    return ms

def measure(port):
    search_ms(port)  # warm-up: first connections, page cache
    return [search_ms(port) for _ in range(runs)]

with tempfile.TemporaryDirectory() as d:
    lib = os.path.join(d, "lib")
    for i in range(items):
        folder = os.path.join(lib, f"Bench Movie {i} ({1950 + i % 70}) {{tmdb-{10000 + i}}}")
        os.makedirs(folder)
        open(os.path.join(folder, f"Bench.Movie.{i}.{1950 + i % 70}.1080p.BluRay.x264-GRP.mkv"), "wb").write(b"x")
    healthy, hport = node(d, "healthy", f'[[library]]\nname = "m"\npath = "{lib}"\ncategory = "movies"\n')
    healthy.wait_line("catalogue scanned")
    slow = ThreadingHTTPServer(("127.0.0.1", 0), Slow); slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    dead = socket.socket(); dead.bind(("127.0.0.1", 0)); dead.listen(1024)  # never accepts
    three = [("healthy", f"http://127.0.0.1:{hport}"),
             ("slow", f"http://127.0.0.1:{slow.server_address[1]}"),
             ("dead", f"http://127.0.0.1:{dead.getsockname()[1]}")]
    nodes = [healthy]
    try:
        rows = []
        alone, aport = node(d, "alone", "[torznab]\npeer_timeout_ms = 2000\n" + peers(three[:1]))
        nodes.append(alone); alone.wait_line("listening")
        base = measure(aport)
        rows.append(("healthy peer only", "2000", base))
        for t in timeouts:
            idx, port = node(d, f"idx{t}", f"[torznab]\npeer_timeout_ms = {t}\n" + peers(three))
            nodes.append(idx); idx.wait_line("listening")
            rows.append(("healthy + slow + dead", str(t), measure(port)))
        print(f"{items} releases on the healthy peer, {runs} searches per row (after one warm-up), "
              f"wall time in the client\n")
        print("| peers | peer_timeout_ms | median ms | min ms | max ms | median / timeout |")
        print("|---|---:|---:|---:|---:|---:|")
        for what, t, ms in rows:
            med = statistics.median(ms)
            print(f"| {what} | {t} | {med:.1f} | {min(ms):.1f} | {max(ms):.1f} | {med / int(t):.3f} |")
    finally:
        for n in nodes:
            n.p.terminate()
        for n in nodes:
            n.p.wait()
PY
