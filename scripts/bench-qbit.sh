#!/usr/bin/env bash
# The qBittorrent-compatible API, measured (BENCHMARKS.md, "qBittorrent API
# (issue 9)"), release binary, 127.0.0.1 only:
#  1. GET /api/v2/torrents/info on a registry of ROWS (default 10000)
#     downloads (completed and failed rows written into a stopped node's
#     registry), REQUESTS (default 50) times on one keep-alive connection:
#     median, p95 and max latency, and the answer's size.
#  2. The RSS of the jack process while three downloads run (added through
#     torrents/add as stub files, from a rate-limited peer: 3 files of
#     SIZE_MIB MiB at RATE_MIB MiB/s each), with torrents/info polled every
#     second: the largest VmRSS seen, and VmHWM at the end.
# Usage: scripts/bench-qbit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
python3 - "$BIN" "${ROWS:-10000}" "${REQUESTS:-50}" "${SIZE_MIB:-48}" "${RATE_MIB:-3}" <<'PY'
import http.client, http.server, json, os, re, signal, socketserver, sqlite3, statistics, sys, tempfile, threading, time, uuid
sys.path.insert(0, "scripts")
from benchlib import Node, fill_registry, free_port, stub
binary, rows, requests, size_mib, rate_mib = os.path.abspath(sys.argv[1]), *map(int, sys.argv[2:6])
USER, PASS = "admin", "bench-pass"

def config(d, port, peer_port=None):
    peers = (f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{peer_port}"\napi_key = "k"\n'
             if peer_port else "")
    path = os.path.join(d, "jack.toml")
    open(path, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "bench"\n'
                          f'[qbittorrent]\nusername = "{USER}"\npassword = "{PASS}"\n{peers}')
    return path

def login(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/api/v2/auth/login", f"username={USER}&password={PASS}",
              {"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); assert r.read() == b"Ok.", r.status
    return c, r.getheader("Set-Cookie").split(";")[0]

def rss(pid, key="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

def stop(node):
    node.p.send_signal(signal.SIGTERM); node.p.wait()

# 1. torrents/info on a large registry.
with tempfile.TemporaryDirectory() as d:
    port = free_port(); cfg = config(d, port)
    node = Node(binary, cfg); node.wait_line("listening"); stop(node)
    fill_registry(d, rows, "api/", category=True)
    node = Node(binary, cfg); node.wait_line("listening")
    c, cookie = login(port)
    for path, label in [("/api/v2/torrents/info", "all"), ("/api/v2/torrents/info?category=radarr", "category=radarr")]:
        times, size = [], 0
        for _ in range(requests):
            t = time.perf_counter()
            c.request("GET", path, headers={"Cookie": cookie})
            r = c.getresponse(); body = r.read()
            times.append((time.perf_counter() - t) * 1000)
            assert r.status == 200; size = len(body)
        times.sort(); count = len(json.loads(body))
        print(f"torrents/info ({label}) on {rows} rows: {count} torrents, {size / 1048576:.1f} MiB, "
              f"median {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, "
              f"max {times[-1]:.1f} ms ({requests} requests)")
    print(f"RSS after the info requests: {rss(node.p.pid):.1f} MiB (VmHWM {rss(node.p.pid, 'VmHWM'):.1f} MiB)")
    stop(node)

# 2. RSS during three transfers, the API polled every second.
size = size_mib * 1024 * 1024
blob = os.urandom(1024 * 1024)
class Peer(http.server.BaseHTTPRequestHandler):
    """A peer serving three files of `size` bytes at `rate_mib` MiB/s each."""
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body, extra=()):
        self.send_response(code)
        for k, v in extra: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        m = re.fullmatch(r"/peer/items/(m[0-9])(/file)?", self.path)
        if self.path == "/handshake":
            return self.send(200, b'{"name":"jack","version":"0.1.0"}')
        if not m:
            return self.send(404, b"")
        if not m.group(2):
            body = f'{{"id":"{m.group(1)}","title":"Bench.{m.group(1)}","filename":"Bench.{m.group(1)}.mkv","category":2000,"size":{size}}}'
            return self.send(200, body.encode())
        first = int(re.match(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-")).group(1))
        self.send_response(206 if first else 200)
        if first: self.send_header("Content-Range", f"bytes {first}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - first)); self.end_headers()
        pos, chunk = first, 256 * 1024
        try:
            while pos < size:
                n = min(chunk, size - pos)
                self.wfile.write(blob[:n])
                pos += n; time.sleep(n / (rate_mib * 1024 * 1024))
        except OSError:
            pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
with tempfile.TemporaryDirectory() as d:
    peer_port, port = free_port(), free_port()
    peer = Server(("127.0.0.1", peer_port), Peer)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    node = Node(binary, config(d, port, peer_port)); node.wait_line("listening")
    idle = rss(node.p.pid)
    c, cookie = login(port)
    b = "jackbench"
    body = b"".join(
        f'--{b}\r\nContent-Disposition: form-data; name="torrents"; filename="m{i}.torrent"\r\n\r\n'.encode()
        + stub("alice", {"id": f"m{i}", "title": f"Bench.m{i}"}, size) + b"\r\n" for i in range(3)
    ) + f'--{b}\r\nContent-Disposition: form-data; name="category"\r\n\r\nradarr\r\n--{b}--\r\n'.encode()
    c.request("POST", "/api/v2/torrents/add", body, {"Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={b}"})
    r = c.getresponse(); assert r.read() == b"Ok.", r.status
    peak, polls, start = idle, 0, time.monotonic()
    while True:
        c.request("GET", "/api/v2/torrents/info?category=radarr", headers={"Cookie": cookie})
        r = c.getresponse(); ts = json.loads(r.read()); polls += 1
        peak = max(peak, rss(node.p.pid))
        if len(ts) == 3 and all(t["state"] == "pausedUP" for t in ts): break
        if time.monotonic() - start > 600: raise SystemExit("transfers did not finish")
        time.sleep(1)
    took = time.monotonic() - start
    print(f"three transfers of {size_mib} MiB at {rate_mib} MiB/s each: {took:.0f} s, {polls} torrents/info polls (1/s)")
    print(f"RSS idle {idle:.1f} MiB, largest during the transfers {peak:.1f} MiB, "
          f"VmHWM {rss(node.p.pid, 'VmHWM'):.1f} MiB")
    stop(node); peer.shutdown()
PY
