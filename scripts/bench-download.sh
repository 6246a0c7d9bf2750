#!/usr/bin/env bash
# Measures downloads for BENCHMARKS.md: jack downloading from another jack
# node, against curl and aria2c (-x1) downloading from nginx, all in one run,
# on the same 1 GiB file of random bytes, over loopback (127.0.0.1 only).
#
# 1. jack -> jack: node A serves the file from its library; a fresh node B
#    (new temp dirs and registry every run) downloads it through its watch
#    folder: a stub .torrent is written under a temp name and renamed to
#    bench.torrent, and the run ends when <B completed>/<file> appears (jack
#    puts it there only complete, by rename). Wall time runs from the rename
#    to the file's appearance, polled every 5 ms, so it includes the watch
#    folder's detection delay (scan_interval_ms = 100: up to about 2 x 100
#    ms); the transfer alone (B's log, "download queued" to "download
#    completed") is reported too. Client CPU = B's utime+stime delta
#    (/proc/PID/stat); client peak RSS = B's VmHWM.
# 2. curl -s -o FILE from nginx to disk.  3. aria2c -x1 -s1 from nginx to
#    disk. CPU (user+sys) and peak RSS of the client process from wait4().
# 4. 3 concurrent downloads in jack: a fresh node B with
#    max_concurrent_downloads = 3 gets three stubs at once for three
#    different 1 GiB random files on A; B's VmRSS is sampled every 20 ms.
#
# The tools alternate run by run (the order rotates) so drift on a noisy
# machine hits all alike; `sync` runs (untimed) before every timed run so
# one run's dirty pages are not written back during the next. jack's
# download fdatasyncs every 64 MiB or 10 s and fsyncs at the end; curl never
# syncs (the time of a `sync` right after it is reported apart, not in its
# wall time); aria2c 1.36 fsyncs its file once, at the end (strace shows it).
# Every download is checked for its size; the first one of each tool (and
# the first concurrent batch) for the SHA-256 of its source.
#
# Prints a Markdown table and the raw per-run numbers on stdout; progress
# goes to stderr. Servers, jack nodes, clients and the temp dir are removed
# on exit, also on failure or Ctrl-C.
#
# BEFORE=<another jack binary> adds it as a fourth client in the rotation
# (node B only; node A is BIN), so two builds are compared in one run.
# WARMUP rounds (default 1) run each tool once, untimed, before the timed
# runs: on the development VM the first page-cache writes after the test
# files are made cost up to 3x more system time, whoever makes them.
#
# Usage: scripts/bench-download.sh   (env: BIN=target/release/jack RUNS=3
#        WARMUP=1 NGINX=/usr/sbin/nginx TMPDIR=/tmp DEADLINE=540 seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
DEADLINE=${DEADLINE:-540}
SIZE=1073741824 # 1 GiB
NAMES=(Bench.Download.One.2024.1080p.WEB-DL.mkv
    Bench.Download.Two.2024.1080p.WEB-DL.mkv
    Bench.Download.Three.2024.1080p.WEB-DL.mkv)

if [ -z "${BIN:-}" ]; then
    BIN=target/release/jack
    [ -x "$BIN" ] || cargo build --release --locked
fi
[ -x "$BIN" ] || { echo "error: $BIN missing; build first: make build" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if [ -z "${NGINX:-}" ]; then
    if [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; else NGINX=$(command -v nginx || true); fi
fi
[ -n "$NGINX" ] && [ -x "$NGINX" ] || { echo "error: nginx not found (scripts/ensure-tools.sh nginx)" >&2; exit 1; }
for tool in curl aria2c python3 sha256sum timeout; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (scripts/ensure-tools.sh $tool)" >&2; exit 1; }
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "error: RUNS must be a positive integer" >&2; exit 2; }
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "error: WARMUP must be a whole number" >&2; exit 2; }
if [ -n "${BEFORE:-}" ]; then
    [ -x "$BEFORE" ] || { echo "error: BEFORE=$BEFORE is not an executable" >&2; exit 2; }
    BEFORE=$(cd "$(dirname "$BEFORE")" && pwd)/$(basename "$BEFORE")
    export BEFORE
fi
[[ "$DEADLINE" =~ ^[1-9][0-9]*$ ]] || { echo "error: DEADLINE must be a positive integer" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jack-bench-download.XXXXXX")
A_PID=""
NGINX_PID=""
MEASURE_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$MEASURE_PID" ]; then # timeout passes the TERM on to python
        kill -TERM "$MEASURE_PID" 2>/dev/null || true
        wait "$MEASURE_PID" 2>/dev/null || true
    fi
    # Children python started (node B, curl, aria2c) that it could not stop:
    # only pids still running a command line that names our temp dir.
    if [ -f "$TMP/children" ]; then
        while read -r pid; do
            if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$TMP"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$TMP/children"
    fi
    stop_pids $A_PID $NGINX_PID
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "bench-download: $*" >&2; }

mkdir -p "$TMP"/lib
SHAS=()
for name in "${NAMES[@]}"; do
    log "writing $SIZE random bytes to $TMP/lib/$name"
    head -c "$SIZE" /dev/urandom >"$TMP/lib/$name"
    [ "$(stat -c %s "$TMP/lib/$name")" -eq "$SIZE" ] || { echo "error: short test file" >&2; exit 1; }
    SHAS+=("$(sha256sum "$TMP/lib/$name" | cut -d' ' -f1)")
done
FILE=$TMP/lib/${NAMES[0]}
sync

# Node A serves the library; nginx serves the first file.
start_jack_node "$TMP/a" "$TMP/lib"
A_PORT=$NODE_PORT A_PID=$NODE_PID
start_nginx "$FILE"
wait_jack_node "$TMP/a"
log "node A pid $A_PID on 127.0.0.1:$A_PORT; nginx master pid $NGINX_PID on 127.0.0.1:$NGINX_PORT"

MACHINE="$(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
VERSIONS="$("$BIN" --version 2>&1 | head -1); $("$NGINX" -v 2>&1 | head -1 | sed 's/^nginx version: //'); $(curl --version | head -1 | cut -d' ' -f1-2); $(aria2c --version | head -1)"
FS="$(df -T "$TMP" | awk 'NR==2 {print $2 " (" $1 ", mounted on " $7 ")"}')"

timeout --signal=TERM "$DEADLINE" python3 - "$BIN" "$TMP" "$A_PORT" "http://127.0.0.1:$NGINX_PORT/file" \
    "$SIZE" "$RUNS:$WARMUP" "$MACHINE" "$VERSIONS" "$FS" "$A_PID" "$NGINX_PID" "${NAMES[@]}" "${SHAS[@]}" <<'PY' &
import datetime, json, math, os, shutil, signal, socket, statistics, subprocess, sys, time
import urllib.request

binary, tmp, a_port, nginx_url = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
size = int(sys.argv[5])
runs, warmup = (int(x) for x in sys.argv[6].split(":"))
machine, versions, fs = sys.argv[7], sys.argv[8], sys.argv[9]
a_pid, nginx_pid = int(sys.argv[10]), int(sys.argv[11])
names, shas = sys.argv[12:15], sys.argv[15:18]
TICK = os.sysconf("SC_CLK_TCK")
MIB, GIB = 1 << 20, 1 << 30
PIECE = 16777216
LIMIT = 180  # seconds any one download may take
live = []  # child processes to stop on the way out

def log(*a):
    print("bench-download:", *a, file=sys.stderr, flush=True)

def on_term(signum, frame):
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, on_term)

def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    live.append(p)
    with open(os.path.join(tmp, "children"), "a") as f:
        f.write(f"{p.pid}\n")
    return p

def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in live:
        live.remove(p)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def cpu_split(pid):
    """(user, system) CPU seconds so far: /proc/PID/stat fields 14, 15."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK

def cpu_seconds(pid):
    return sum(cpu_split(pid))

def nginx_cpu():  # master and workers
    out = subprocess.run(["pgrep", "-P", str(nginx_pid)], capture_output=True, text=True).stdout
    return cpu_seconds(nginx_pid) + sum(cpu_seconds(int(w)) for w in out.split())

def write_calls(pid):
    """write()-family syscalls so far (/proc/PID/io syscw; socket recv() is not counted)."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("syscw:"))

def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)

def sha256(path):
    return subprocess.run(["sha256sum", path], check=True, capture_output=True,
                          text=True).stdout.split()[0]

def check(path, expect_sha=None):
    n = os.path.getsize(path)
    if n != size:
        sys.exit(f"error: {path} is {n} bytes, expected {size}")
    if expect_sha is not None:
        got = sha256(path)
        if got != expect_sha:
            sys.exit(f"error: {path} has sha256 {got}, expected {expect_sha}")
        log(f"sha256 of {os.path.basename(path)} matches its source")

def log_ts(line):
    ts = line.split(" ", 1)[0]
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

# The three releases on A.
req = urllib.request.Request(f"http://127.0.0.1:{a_port}/peer/search",
                             headers={"X-Api-Key": "bench"})
with urllib.request.urlopen(req, timeout=60) as r:
    items = json.load(r)["items"]
by_name = {}
for it in items:
    fname = it.get("filename") or ""
    by_name[fname] = it
releases = []
for name in names:
    it = by_name.get(name)
    if it is None:
        sys.exit(f"error: {name} not among A's items: {[i.get('filename') for i in items]}")
    if int(it["size"]) != size:
        sys.exit(f"error: A lists {name} with size {it['size']}")
    releases.append((name, it["id"], it["title"]))
log("items on A: " + ", ".join(f"{n} -> {i!r} ({t!r})" for n, i, t in releases))

def stub(item_id, title):
    c = ("jack:alice:" + item_id).encode()
    t = title.encode()
    n = math.ceil(size / PIECE)
    return (b"d7:comment" + str(len(c)).encode() + b":" + c + b"4:infod6:lengthi"
            + str(size).encode() + b"e4:name" + str(len(t)).encode() + b":" + t
            + b"12:piece lengthi16777216e6:pieces" + str(20 * n).encode() + b":"
            + b"\0" * (20 * n) + b"ee")

node_no = 0
def start_b(concurrent, exe=None):
    """A fresh node B (new dirs, new registry), answering /ping."""
    global node_no
    node_no += 1
    d = os.path.join(tmp, f"b{node_no}")
    for sub in ("watch", "incomplete", "completed"):
        os.makedirs(os.path.join(d, sub))
    port = free_port()
    while port == a_port:
        port = free_port()
    cfg = os.path.join(d, "jack.toml")
    with open(cfg, "w") as f:
        f.write(f'''[server]
listen = "127.0.0.1:{port}"
api_key = "bench-b"

[database]
path = "{d}/jack.db"

[downloads]
watch_dir = "{d}/watch"
incomplete_dir = "{d}/incomplete"
completed_dir = "{d}/completed"
scan_interval_ms = 100
max_concurrent_downloads = {concurrent}

[[peers]]
name = "alice"
url = "http://127.0.0.1:{a_port}"
api_key = "bench"
''')
    logf = open(os.path.join(d, "jack.log"), "w")
    p = spawn([exe or binary, "--config", cfg, "run"], stderr=logf, stdout=subprocess.DEVNULL)
    logf.close()
    t0 = time.monotonic()
    while True:
        if p.poll() is not None:
            sys.exit(f"error: node B exited {p.returncode}:\n" + open(os.path.join(d, "jack.log")).read())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        if time.monotonic() - t0 > 30:
            sys.exit("error: node B never answered /ping")
        time.sleep(0.01)
    time.sleep(0.3)  # let start-up settle (first watch scan, registry)
    return p, d

def drop(d, stubs):
    """Writes every stub under a temp name, then renames them all (atomic)."""
    watch = os.path.join(d, "watch")
    tmps = []
    for name, data in stubs:
        t = os.path.join(watch, f".{name}.tmp")
        with open(t, "wb") as f:
            f.write(data)
        tmps.append((t, os.path.join(watch, name)))
    t0, w0 = time.perf_counter(), time.time()
    for t, final in tmps:
        os.rename(t, final)
    return t0, w0

def b_log_lines(d):
    with open(os.path.join(d, "jack.log")) as f:
        return f.read().splitlines()

def wait_log(d, needle, count, limit=10):
    t0 = time.monotonic()
    while True:
        lines = [l for l in b_log_lines(d) if needle in l]
        if len(lines) >= count:
            return lines
        if time.monotonic() - t0 > limit:
            sys.exit(f"error: node B never logged {count} x {needle!r}:\n" + "\n".join(b_log_lines(d)))
        time.sleep(0.02)

notes = []  # warn/error lines seen in B's logs
def harvest(d, label):
    for l in b_log_lines(d):
        if " WARN " in l or " ERROR " in l or "download retry" in l:
            notes.append(f"{label}: {l}")

def b_metric(d, name):
    """One counter from node B's /metrics (its port is in its jack.toml), or None."""
    with open(os.path.join(d, "jack.toml")) as f:
        port = next(l.split(":")[-1].strip().strip('"') for l in f if l.startswith("listen"))
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"X-Api-Key": "bench-b"})
    with urllib.request.urlopen(req, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    return None  # an older jack without this counter

def jack_one(r, verify, exe=None):
    p, d = start_b(3, exe)
    name, item_id, title = releases[0]
    dest = os.path.join(d, "completed", name)
    os.sync()
    c0, s0, w0_calls = cpu_split(p.pid), cpu_seconds(a_pid), write_calls(p.pid)
    rss = [status_kib(p.pid, "VmRSS")]
    t0, w0 = drop(d, [("bench.torrent", stub(item_id, title))])
    last_sample = t0
    while not os.path.exists(dest):
        now = time.perf_counter()
        if now - t0 > LIMIT:
            sys.exit(f"error: jack run {r + 1}: no {dest} after {LIMIT} s:\n" + "\n".join(b_log_lines(d)))
        if p.poll() is not None:
            sys.exit("error: node B died:\n" + "\n".join(b_log_lines(d)))
        if now - last_sample >= 0.02:
            rss.append(status_kib(p.pid, "VmRSS"))
            last_sample = now
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    c1 = cpu_split(p.pid)
    user, system = c1[0] - c0[0], c1[1] - c0[1]
    server = cpu_seconds(a_pid) - s0
    writes = write_calls(p.pid) - w0_calls
    hwm = status_kib(p.pid, "VmHWM")
    rss.append(status_kib(p.pid, "VmRSS"))
    direct = b_metric(d, "jack_downloaded_direct_bytes_total")
    queued = wait_log(d, "download queued", 1)[0]
    done = wait_log(d, "download completed", 1)[0]
    detect = log_ts(queued) - w0
    transfer = log_ts(done) - log_ts(queued)
    stop(p)
    check(dest, shas[0] if verify else None)
    harvest(d, f"jack run {r + 1}")
    shutil.rmtree(d)
    return {"wall": wall, "cpu": user + system, "user": user, "sys": system, "rss": hwm,
            "rss_max": max(rss), "detect": detect, "transfer": transfer, "server": server,
            "writes": writes, "direct": direct}

def client_one(tool, r, verify):
    out_dir = os.path.join(tmp, "client")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "out.bin")
    if tool == "curl":
        cmd = ["curl", "-s", "-f", "--max-time", str(LIMIT), "-o", out, nginx_url]
    else:
        cmd = ["aria2c", "-q", "-x1", "-s1", "--file-allocation=none", "--allow-overwrite=true",
               "-d", out_dir, "-o", "out.bin", nginx_url]
    os.sync()
    s0 = nginx_cpu()
    t0 = time.perf_counter()
    p = spawn(cmd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    live.remove(p)
    server = nginx_cpu() - s0
    t1 = time.perf_counter()
    os.sync()  # what making the download durable would have cost (not in wall)
    synced = time.perf_counter() - t1
    if p.returncode != 0:
        sys.exit(f"error: {tool} run {r + 1} exited {p.returncode}")
    check(out, shas[0] if verify else None)
    shutil.rmtree(out_dir)
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime,
            "sys": ru.ru_stime, "rss": ru.ru_maxrss, "server": server, "sync": synced}

def concurrent_one(r, verify):
    p, d = start_b(3)
    dests = [os.path.join(d, "completed", n) for n, _, _ in releases]
    stubs = [(f"bench{i + 1}.torrent", stub(item_id, title))
             for i, (_, item_id, title) in enumerate(releases)]
    os.sync()
    idle = status_kib(p.pid, "VmRSS")
    c0, s0 = cpu_seconds(p.pid), cpu_seconds(a_pid)
    rss = [idle]
    t0, _ = drop(d, stubs)
    finished = {}
    while len(finished) < len(dests):
        now = time.perf_counter()
        for i, dest in enumerate(dests):
            if i not in finished and os.path.exists(dest):
                finished[i] = now - t0
        if now - t0 > 2 * LIMIT:
            sys.exit(f"error: concurrent run {r + 1}: not done after {2 * LIMIT} s:\n"
                     + "\n".join(b_log_lines(d)))
        if p.poll() is not None:
            sys.exit("error: node B died:\n" + "\n".join(b_log_lines(d)))
        rss.append(status_kib(p.pid, "VmRSS"))
        time.sleep(0.02)
    wall = max(finished.values())
    cpu = cpu_seconds(p.pid) - c0
    server = cpu_seconds(a_pid) - s0
    rss.append(status_kib(p.pid, "VmRSS"))
    hwm = status_kib(p.pid, "VmHWM")
    threads = len(os.listdir(f"/proc/{p.pid}/task"))
    wait_log(d, "download completed", 3)
    stop(p)
    for i, dest in enumerate(dests):
        check(dest, shas[i] if verify else None)
    harvest(d, f"concurrent run {r + 1}")
    shutil.rmtree(d)
    return {"wall": wall, "cpu": cpu, "rss": hwm, "rss_max": max(rss), "idle": idle, "server": server,
            "each": sorted(finished.values()), "samples": len(rss), "threads": threads}

try:
    before = os.environ.get("BEFORE")
    tools = ["jack", "curl", "aria2c"] + (["before"] if before else [])
    res = {t: [] for t in tools}

    def one(t, r, verify):
        if t == "jack":
            return jack_one(r, verify)
        if t == "before":
            return jack_one(r, verify, before)
        return client_one(t, r, verify)

    for w in range(warmup):
        for t in tools:
            one(t, -1 - w, False)
        log(f"warm-up round {w + 1}/{warmup} done (not counted)")
    for r in range(runs):
        k = r % len(tools)
        for t in tools[k:] + tools[:k]:
            res[t].append(one(t, r, r == 0))
        log(f"run {r + 1}/{runs}: " + ", ".join(
            f"{t} {size / MIB / res[t][-1]['wall']:.0f} MiB/s" for t in tools))
    conc = []
    for r in range(runs):
        conc.append(concurrent_one(r, r == 0))
        c = conc[-1]
        log(f"concurrent run {r + 1}/{runs}: {3 * size / MIB / c['wall']:.0f} MiB/s aggregate, "
            f"max RSS {c['rss_max'] / 1024:.2f} MiB, VmHWM {c['rss'] / 1024:.2f} MiB")
finally:
    for p in list(live):
        stop(p)

med = statistics.median
def mibs(x, n=1):
    return n * size / MIB / x["wall"]

summary = {}
for t in tools:
    summary[t] = {
        "wall": med(x["wall"] for x in res[t]),
        "mibs": med(mibs(x) for x in res[t]),
        "cpu": med(x["cpu"] * GIB / size for x in res[t]),
        "rss": med(x["rss"] for x in res[t]) / 1024,
    }
summary["conc"] = {
    "wall": med(x["wall"] for x in conc),
    "mibs": med(mibs(x, 3) for x in conc),
    "cpu": med(x["cpu"] * GIB / (3 * size) for x in conc),
    "rss": max(x["rss"] for x in conc) / 1024,
}
transfer_mibs = med(size / MIB / x["transfer"] for x in res["jack"])
curl = summary["curl"]["mibs"]
labels = {"jack": "jack → jack (1 GiB, watch folder)",
          "curl": "curl ← nginx (1 GiB)",
          "aria2c": "aria2c -x1 ← nginx (1 GiB)",
          "before": "jack before (BEFORE) → jack (1 GiB, watch folder)",
          "conc": "jack, 3 concurrent downloads (3 × 1 GiB, aggregate)"}

print(f"Machine: {machine}")
print(f"Versions: {versions}")
print(f"Temp dir filesystem: {fs}")
print(f"Runs: {runs} per tool (order rotated run by run) after {warmup} untimed warm-up "
      "round(s); 1 GiB random file; loopback; `sync` before each timed run")
print()
print("| Client | Median wall s | Median MiB/s | Client CPU s per GiB (user+sys) | "
      "Client peak RSS, MiB | Throughput vs curl |")
print("|---|---|---|---|---|---|")
for t in [t for t in ["jack", "before", "curl", "aria2c", "conc"] if t in summary]:
    s = summary[t]
    rss_note = " (max of runs)" if t == "conc" else ""
    print(f"| {labels[t]} | {s['wall']:.2f} | {s['mibs']:,.0f} | {s['cpu']:.3f} | "
          f"{s['rss']:.2f}{rss_note} | {s['mibs'] / curl:.2f}x |")
print(f"| jack → jack, transfer only (B's log: queued → completed) | "
      f"{med(x['transfer'] for x in res['jack']):.2f} | {transfer_mibs:,.0f} | | | "
      f"{transfer_mibs / curl:.2f}x |")
curl_synced = med(size / MIB / (x["wall"] + x["sync"]) for x in res["curl"])
print(f"| curl ← nginx, then `sync` (durable, like jack) | "
      f"{med(x['wall'] + x['sync'] for x in res['curl']):.2f} | {curl_synced:,.0f} | | | "
      f"{curl_synced / curl:.2f}x |")
print()
ratio = summary["jack"]["mibs"] / curl
peak3 = max(max(x["rss_max"], x["rss"]) for x in conc) / 1024
print(f"Goal: jack >= 0.8x curl's throughput: {ratio:.2f}x, {'met' if ratio >= 0.8 else 'MISSED'}")
print(f"Goal: jack under 20 MiB RSS with 3 downloads in flight: {peak3:.2f} MiB, "
      f"{'met' if peak3 < 20 else 'MISSED'}")
print()
print("Raw numbers, run by run:")
for t in tools:
    print(f"  {t:6} wall s:  " + " ".join(f"{x['wall']:.2f}" for x in res[t]))
    print(f"  {t:6} MiB/s:   " + " ".join(f"{mibs(x):.0f}" for x in res[t]))
    print(f"  {t:6} CPU s (user+sys): " + " ".join(
        f"{x['cpu']:.2f} ({x['user']:.2f}+{x['sys']:.2f})" for x in res[t]))
    print(f"  {t:6} peak RSS MiB: " + " ".join(f"{x['rss'] / 1024:.2f}" for x in res[t]))
    print(f"  {t:6} server CPU s ({'node A' if t == 'jack' else 'nginx master+worker'}): "
          + " ".join(f"{x['server']:.2f}" for x in res[t]))
print("  jack   detection delay s (rename of the stub → 'download queued' in B's log): "
      + " ".join(f"{x['detect']:.3f}" for x in res["jack"]))
print("  jack   transfer s (B's log, queued → completed): "
      + " ".join(f"{x['transfer']:.2f}" for x in res["jack"]))
print("  jack   node B write() calls per GiB (/proc/PID/io syscw): "
      + " ".join(f"{x['writes'] * GIB / size:,.0f}" for x in res["jack"]))
print("  jack   bytes node B took straight from the socket (splice; /metrics): "
      + " ".join("n/a" if x["direct"] is None else f"{x['direct']:,}" for x in res["jack"]))
for t in ("curl", "aria2c"):
    print(f"  {t:6} `sync` right after the download, s (not in wall): "
          + " ".join(f"{x['sync']:.2f}" for x in res[t]))
paired = [c["wall"] / j["wall"] for j, c in zip(res["jack"], res["curl"])]
print("  jack/curl throughput, paired run by run: " + " ".join(f"{x:.2f}" for x in paired)
      + f" (median {med(paired):.2f})")
if "before" in res:
    for other in ("curl", "jack"):
        pb = [o["wall"] / b["wall"] for b, o in zip(res["before"], res[other])]
        print(f"  before/{other} throughput, paired run by run: "
              + " ".join(f"{x:.2f}" for x in pb) + f" (median {med(pb):.2f})")
print("  jack   max VmRSS sample during the download, MiB: "
      + " ".join(f"{x['rss_max'] / 1024:.2f}" for x in res["jack"]))
print("  3x     total wall s: " + " ".join(f"{x['wall']:.2f}" for x in conc))
print("  3x     aggregate MiB/s: " + " ".join(f"{mibs(x, 3):.0f}" for x in conc))
print("  3x     each file done at s: " + " | ".join(
    " ".join(f"{e:.2f}" for e in x["each"]) for x in conc))
print("  3x     CPU s: " + " ".join(f"{x['cpu']:.2f}" for x in conc))
print("  3x     server CPU s (node A): " + " ".join(f"{x['server']:.2f}" for x in conc))
print("  3x     idle RSS before, MiB: " + " ".join(f"{x['idle'] / 1024:.2f}" for x in conc))
print("  3x     max VmRSS sample (every 20 ms), MiB: "
      + " ".join(f"{x['rss_max'] / 1024:.2f}" for x in conc)
      + f" ({', '.join(str(x['samples']) for x in conc)} samples)")
print("  3x     VmHWM, MiB: " + " ".join(f"{x['rss'] / 1024:.2f}" for x in conc))
print("  3x     threads at the end: " + " ".join(str(x["threads"]) for x in conc))
print()
if notes:
    print(f"Warnings, errors and retries in node B's logs ({len(notes)}):")
    for n in notes[:20]:
        print("  " + n)
else:
    print("Node B's logs: no warnings, errors or retries.")
PY
# In the background and waited for, so that a signal to this script is
# handled at once (the trap stops the measurement, then the servers).
MEASURE_PID=$!
wait "$MEASURE_PID"
