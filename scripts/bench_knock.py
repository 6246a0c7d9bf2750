"""The scenarios of scripts/bench-knock.sh (read its header): argv is
PROBES GUESS_SECONDS RUNS BINARY... Prints one block per binary, then the
side-by-side table."""
import http.client, os, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.parse

sys.path.insert(0, "scripts")
from benchlib import Node, free_port, first_item, write_node_config

KEY = "bench-owner-key-0123456789abcdef"
# Eight friends, each with its own key (the 8 streams are theirs).
FRIENDS = [f"friend-key-{i}-0123456789abcdef" for i in range(8)]
USER, PASS = "admin", "bench-password-0123456789"
SIZE = 256 * 1024 * 1024
probes, guess_seconds, runs = map(int, sys.argv[1:4])
# A probe not answered within this many seconds counts as timed out.
PROBE_TIMEOUT = float(os.environ.get("PROBE_TIMEOUT", "2"))
binaries = [os.path.abspath(b) for b in sys.argv[4:]]
root = tempfile.mkdtemp(prefix="jack-knock-")
library = os.path.join(root, "library")
os.makedirs(library)
movie = os.path.join(library, "Bench.Movie.2020.1080p.BluRay.x264-GRP.mkv")
with open(movie, "wb") as f:
    block = os.urandom(1 << 20)
    for _ in range(SIZE >> 20):
        f.write(block)


def start(binary):
    d = tempfile.mkdtemp(dir=root)
    port = free_port()
    cfg = write_node_config(d, port, KEY, library, f"""min_free_bytes = 0
[qbittorrent]
username = "{USER}"
password = "{PASS}"
[log]
level = "error"
""" + "".join(f'[[server.peer_keys]]\nname = "friend{i}"\nkey = "{k}"\n'
              for i, k in enumerate(FRIENDS)))
    node = Node(binary, cfg)
    end = time.monotonic() + 30
    while True:
        try:
            get(port, "/ping", timeout=1)
            break
        except OSError:
            if time.monotonic() > end:
                raise SystemExit("the node did not start")
            time.sleep(0.05)
    while True:  # the first scan runs in the background
        try:
            return node, port, first_item(port, KEY)["id"]
        except (IndexError, OSError):
            if time.monotonic() > end:
                raise SystemExit("the catalogue stayed empty")
            time.sleep(0.1)


def stop(node):
    node.p.terminate()
    try:
        node.p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        node.p.kill()
        node.p.wait()


def get(port, path, headers=None, timeout=10, source="127.0.0.1", method="GET", body=None):
    """(status, seconds, response headers) on a fresh connection."""
    t = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        r.read()
        return r.status, time.monotonic() - t, dict(r.getheaders())
    finally:
        c.close()


def sid(port):
    body = urllib.parse.urlencode({"username": USER, "password": PASS})
    _, _, h = get(port, "/api/v2/auth/login", {"Content-Type": "application/x-www-form-urlencoded"},
                  method="POST", body=body)
    cookie = h.get("Set-Cookie") or h.get("set-cookie") or ""
    return cookie.split(";")[0]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def probe_all(port, cookie):
    """p50/p99 ms and timeouts of /ping, torrents/info and caps."""
    routes = {"/ping": {}, "/api/v2/torrents/info": {"Cookie": cookie},
              "/torznab/api?t=caps": {}}
    out = {}
    for path, h in routes.items():
        # A probe not answered 200 (timed out, refused, cut) counts as
        # infinitely slow, so p50/p99 show how many were answered at all.
        lat, timeouts = [], 0
        for _ in range(probes):
            try:
                status, s, _ = get(port, path, h, timeout=PROBE_TIMEOUT)
                lat.append(s * 1000 if status == 200 else float("inf"))
            except OSError:
                timeouts += 1
                lat.append(float("inf"))
        out[path.split("?")[0].rsplit("/", 1)[-1] or path] = (pct(lat, 50), pct(lat, 99), timeouts)
    return out


class Trickle:
    """Connections that read one byte a second until stopped."""

    def __init__(self):
        self.socks, self.stopped = [], threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def add(self, s):
        s.setblocking(False)
        self.socks.append(s)

    def run(self):
        while not self.stopped.wait(1.0):
            for s in list(self.socks):
                try:
                    s.recv(1)
                except (BlockingIOError, OSError):
                    pass

    def close(self):
        self.stopped.set()
        for s in self.socks:
            s.close()


def slow_readers(binary, n):
    node, port, item = start(binary)
    cookie = sid(port)
    trickle = Trickle()
    try:
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((f"127.0.3.{1 + i % 200}", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /peer/items/{urllib.parse.quote(item, safe='')}/file HTTP/1.1\r\n"
                      f"Host: x\r\nX-Api-Key: {KEY}\r\n\r\n".encode())
            trickle.add(s)
        time.sleep(2)  # every body under way, every send buffer full
        return probe_all(port, cookie)
    finally:
        trickle.close()
        stop(node)


def crowd(binary):
    node, port, _ = start(binary)
    idle, loris, stopped = [], [], threading.Event()
    try:
        for a in range(40):
            for _ in range(25):
                s = socket.socket()
                s.bind((f"127.0.1.{a + 1}", 0))
                try:
                    s.connect(("127.0.0.1", port))
                except OSError:
                    pass
                idle.append(s)
        for a in range(100):
            s = socket.socket()
            s.bind((f"127.0.2.{a % 10 + 1}", 0))
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(b"G")
            except OSError:
                pass
            loris.append(s)

        def drip():
            while not stopped.wait(1.0):
                for s in loris:
                    try:
                        s.send(b"E")
                    except OSError:
                        pass
        threading.Thread(target=drip, daemon=True).start()
        time.sleep(2)
        statuses, lat = {}, []
        for _ in range(20):
            try:
                status, s, _ = get(port, "/ping", timeout=10)
            except OSError as e:
                status, s = type(e).__name__, 10.0
            statuses[status] = statuses.get(status, 0) + 1
            lat.append(s * 1000)
        return statuses, pct(lat, 50), max(lat)
    finally:
        stopped.set()
        for s in idle + loris:
            s.close()
        stop(node)


def guesses(binary):
    node, port, _ = start(binary)
    try:
        counts, end = {}, time.monotonic() + guess_seconds
        c, spent, after = None, None, 0
        while time.monotonic() < end:
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                                   source_address=("127.0.0.9", 0))
                c.request("GET", "/peer/search", headers={"X-Api-Key": "wrong-guess"})
                r = c.getresponse()
                r.read()
                counts[r.status] = counts.get(r.status, 0) + 1
                if r.status == 429 and spent is None:
                    spent = time.monotonic()
                elif r.status != 429 and spent is not None:
                    after += 1
                if r.getheader("Connection", "").lower() == "close":
                    c.close(); c = None
            except OSError:
                c = None
        # Once the budget is spent: wrong keys still judged, a minute.
        rate = after * 60 / (end - spent) if spent is not None else float("nan")
        return counts, rate
    finally:
        stop(node)


def streams(binary):
    node, port, item = start(binary)
    url = f"http://127.0.0.1:{port}/peer/items/{urllib.parse.quote(item, safe='')}/file"
    try:
        rates = []
        for _ in range(runs):
            t = time.monotonic()
            ps = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", "-H", f"X-Api-Key: {k}", url])
                  for k in FRIENDS]
            ok = all(p.wait() == 0 for p in ps)
            rates.append(8 * SIZE / (1 << 20) / (time.monotonic() - t) if ok else 0.0)
        return statistics.median(rates)
    finally:
        stop(node)


results = {}
for b in binaries:
    name = os.path.basename(b) if b != binaries[-1] else "this"
    r = {}
    for n in (8, 64):
        r[f"slow{n}"] = slow_readers(b, n)
        print(name, f"{n} slow readers:", r[f"slow{n}"], flush=True)
    r["crowd"] = crowd(b)
    print(name, "1000 idle + 100 slowloris, then /ping:", r["crowd"], flush=True)
    r["guess"] = guesses(b)
    print(name, "guesses:", r["guess"], flush=True)
    r["streams"] = streams(b)
    print(name, "8 streams MiB/s:", round(r["streams"]), flush=True)
    results[name] = r

print()
names = list(results)
print("| Measure | " + " | ".join(names) + " |")
print("|---|" + "---|" * len(names))
for n in (8, 64):
    for route in ("ping", "info", "api"):
        cells = []
        for k in names:
            p50, p99, to = results[k][f"slow{n}"][route]
            ms = lambda v: "no 200" if v == float("inf") else f"{v:.1f}"
            cells.append(f"{ms(p50)} / {ms(p99)} ms" + (f" ({to} of {probes} timed out)" if to else ""))
        label = {"ping": "/ping", "info": "torrents/info", "api": "Torznab caps"}[route]
        print(f"| {n} slow readers: {label} p50 / p99 | " + " | ".join(cells) + " |")
print("| 1,000 idle + 100 slowloris: /ping statuses | " +
      " | ".join(str(results[k]["crowd"][0]) for k in names) + " |")
print("| 1,000 idle + 100 slowloris: /ping p50 / max | " +
      " | ".join(f"{results[k]['crowd'][1]:.1f} / {results[k]['crowd'][2]:.1f} ms" for k in names) + " |")
print(f"| Wrong keys from one address in {guess_seconds} s: answers by status | " +
      " | ".join(str(results[k]["guess"][0]) for k in names) + " |")
print("| Wrong keys judged a minute once over budget, one address | " +
      " | ".join(f"{results[k]['guess'][1]:.1f}" if results[k]['guess'][1] == results[k]['guess'][1]
                 else "never over budget" for k in names) + " |")
print("| 8 streams at once, MiB/s (median) | " + " | ".join(f"{results[k]['streams']:.0f}" for k in names) + " |")
