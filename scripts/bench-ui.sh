#!/usr/bin/env bash
# The status page, measured (BENCHMARKS.md, "Status page (issue 12)"),
# release binary, headless Chromium (scripts/ensure-browser.sh), 127.0.0.1:
#  1. The page's size.
#  2. The downloading node's memory with PAGES (default 5) pages open while
#     three transfers run (3 files of SIZE_MIB MiB, each sent at RATE_MIB
#     MiB/s through a throttling proxy): the largest VmRSS, and the same run
#     with no page open.
#  3. The cost of the live updates: the node's CPU (user + system, from
#     /proc/<pid>/stat) over SECONDS with 0, 1 and PAGES pages open, on a
#     registry of 10 and of 1,000 rows (nothing transferring).
# Usage: scripts/bench-ui.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
./scripts/ensure-browser.sh
PYTHONPATH=target/selenium python3 - "$BIN" "${PAGES:-5}" "${SIZE_MIB:-48}" "${RATE_MIB:-3}" "${SECONDS_EACH:-20}" <<'PY'
import json, os, signal, socket, sys, tempfile, threading, time, urllib.request
sys.path.insert(0, "scripts")
from benchlib import Node, fill_registry, free_port, stub, drop_stub
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
binary, pages, size_mib, rate_mib, seconds = os.path.abspath(sys.argv[1]), *map(int, sys.argv[2:6])
KEY = "bench"
page = open("src/owner/ui.html", "rb").read()
print(f"page: {len(page)} bytes ({len(page) / 1024:.1f} KiB), one request")

def cpu_ms(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000 / os.sysconf("SC_CLK_TCK")

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024

def config(d, port, extra=""):
    path = os.path.join(d, "jack.toml")
    open(path, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\napi_key = "{KEY}"\n{extra}')
    return path

def throttle(target, rate):
    """A proxy to `target` sending answers at `rate` bytes/s per connection."""
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(16)
    def pipe(a, b, limit):
        try:
            while True:
                data = a.recv(65536)
                if not data: break
                b.sendall(data)
                if limit: time.sleep(len(data) / limit)
        except OSError: pass
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
    def serve():
        while True:
            c, _ = ls.accept(); s = socket.create_connection(target)
            threading.Thread(target=pipe, args=(c, s, 0), daemon=True).start()
            threading.Thread(target=pipe, args=(s, c, rate), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]

def browser(n, base, profile):
    o = webdriver.ChromeOptions(); o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--disable-renderer-backgrounding",
              "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
              "--user-data-dir=" + profile]:
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.get(base + "/ui/")
    d.find_element(By.ID, "key").send_keys(KEY + "\n")
    while not d.find_element(By.ID, "downloads").is_displayed(): time.sleep(0.05)
    for _ in range(n - 1):
        d.switch_to.new_window("window"); d.get(base + "/ui/")
        while not d.find_element(By.ID, "downloads").is_displayed(): time.sleep(0.05)
    hidden = []
    for h in d.window_handles:
        d.switch_to.window(h); hidden.append(d.execute_script("return document.hidden"))
    assert not any(hidden), f"a page is hidden (it would not poll): {hidden}"
    return d

def stop(node):
    node.p.send_signal(signal.SIGTERM); node.p.wait()

# 2. Memory during three transfers, with and without pages.
size = size_mib * 1024 * 1024
with tempfile.TemporaryDirectory() as d:
    lib = os.path.join(d, "a/media"); os.makedirs(lib)
    for i in range(3):
        with open(os.path.join(lib, f"Film.Number.{i}.2020.1080p.mkv"), "wb") as f:
            f.write(os.urandom(1024 * 1024) * size_mib)
    aport = free_port()
    acfg = config(os.path.join(d, "a"), aport,
                  f'[[library]]\nname = "movies"\npath = "{lib}"\ncategory = "movies"\n')
    alice = Node(binary, acfg); alice.wait_line("catalogue scanned")
    req = urllib.request.Request(f"http://127.0.0.1:{aport}/peer/search", headers={"X-Api-Key": KEY})
    items = json.load(urllib.request.urlopen(req))["items"]
    proxy = throttle(("127.0.0.1", aport), rate_mib * 1024 * 1024)
    for run, n in [("no page", 0), (f"{pages} pages", pages)]:
        b = os.path.join(d, f"b{n}"); os.makedirs(b)
        bport = free_port()
        bcfg = config(b, bport, f'[downloads]\nscan_interval_ms = 200\n'
                      f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{proxy}"\napi_key = "{KEY}"\n')
        node = Node(binary, bcfg); node.wait_line("listening")
        drv = browser(n, f"http://127.0.0.1:{bport}", os.path.join(b, "profile")) if n else None
        idle = rss(node.p.pid)
        for i, it in enumerate(items):
            w = os.path.join(b, "data/watch"); os.makedirs(w, exist_ok=True)
            tmp = os.path.join(w, f".{i}.tmp"); open(tmp, "wb").write(stub("alice", it, it["size"]))
            os.rename(tmp, os.path.join(w, f"{i}.torrent"))
        peak, t0, c0 = idle, time.monotonic(), cpu_ms(node.p.pid)
        while sum("download completed" in l for _, l in node.lines) < 3:
            peak = max(peak, rss(node.p.pid)); time.sleep(0.5)
            assert time.monotonic() - t0 < 300, "transfers did not finish"
        took, cpu = time.monotonic() - t0, cpu_ms(node.p.pid) - c0
        print(f"three transfers of {size_mib} MiB at {rate_mib} MiB/s, {run}: largest VmRSS {peak:.1f} MiB "
              f"(idle {idle:.1f} MiB), node CPU {cpu:.0f} ms over {took:.1f} s")
        if drv: drv.quit()
        stop(node)
    stop(alice)

# 3. CPU per open page, idle node, 10 and 1,000 rows.
for rows in (10, 1000):
    with tempfile.TemporaryDirectory() as d:
        port = free_port(); cfg = config(d, port)
        node = Node(binary, cfg); node.wait_line("listening"); stop(node)
        fill_registry(d, rows)
        node = Node(binary, cfg); node.wait_line("listening")
        base = f"http://127.0.0.1:{port}"
        res = {}
        for n in (0, 1, pages):
            drv = browser(n, base, os.path.join(d, f"profile{n}")) if n else None
            time.sleep(2)
            c0 = cpu_ms(node.p.pid); time.sleep(seconds); res[n] = (cpu_ms(node.p.pid) - c0) / seconds
            if drv: drv.quit()
        per = (res[pages] - res[0]) / pages
        print(f"node CPU, {rows} rows, ms per second: 0 pages {res[0]:.1f}, 1 page {res[1]:.1f}, "
              f"{pages} pages {res[pages]:.1f}: {per:.1f} ms/s per page ({per / 10:.2f} % of a core)")
        stop(node)
PY
