#!/usr/bin/env bash
# Makes tests/fixtures/registry-v0.1.0/jack.db: a download registry written
# by the previous release of jack, for tests/upgrade.rs (the registry must
# migrate forward from it).
#
#   scripts/make-old-registry.sh [COMMIT]
#
# COMMIT (default 80b863a, the release to be tagged v0.1.0: issue 19's close,
# before issue 20's migrations 6-8) is built in a temporary git worktree,
# removed afterwards. Its binary runs one node against a small fake peer
# (Python, below) and ends with four downloads, one in each state that
# release had for them:
#
#   done    completed (200 KiB, its file in completed_dir)
#   gone    failed (the peer answers 404 to its file)
#   part    retrying, 256 KiB of 1 MiB durable in its .part (the peer cut
#           the connection, then answers 503)
#   cancel  cancelled by its owner (POST /api/v1/downloads/<id>/cancel)
#           while 128 KiB or more of 1 MiB were in its .part
#
# Every file's byte i is (i * 31 + k) % 256, k the item's seed below, and
# every ETag is "fake-etag-1": what tests/support/fake_peer.rs serves, so
# the test recreates the files and serves the same versions. The registry
# names its files under ROOT (below); the test moves them into its own
# temporary folder. Only the registry is kept; README.md beside it says
# which commit made it.
set -euo pipefail

commit=${1:-80b863a}
repo=$(git rev-parse --show-toplevel)
out="$repo/tests/fixtures/registry-v0.1.0"
root=/tmp/jack-old-registry
if [ -e "$root" ]; then
    echo "$root exists: remove it first" >&2
    exit 1
fi
full=$(git -C "$repo" rev-parse "$commit")
work=$(mktemp -d)
cleanup() {
    git -C "$repo" worktree remove --force "$work/src" 2>/dev/null || true
    rm -rf "$work" "$root"
}
trap cleanup EXIT

if [ -n "${JACK_OLD_BINARY:-}" ]; then
    # Already built from $commit (a debug build of that commit).
    binary=$JACK_OLD_BINARY
else
    git -C "$repo" worktree add --detach "$work/src" "$full" >/dev/null
    echo "building $full" >&2
    (cd "$work/src" && CARGO_TARGET_DIR="$work/target" nice cargo build --locked --bin jack)
    binary="$work/target/debug/jack"
fi

mkdir -p "$root" "$out"
python3 - "$binary" "$root" <<'PY'
import http.server, json, os, signal, socket, subprocess, sys, threading, time, urllib.request

binary, root = sys.argv[1], sys.argv[2]
KEY = "old-owner-key-0123456789"
ITEMS = {  # id: (size, seed)
    "done": (200 * 1024, 1),
    "gone": (300 * 1024, 2),
    "part": (1 << 20, 3),
    "cancel": (1 << 20, 4),
}
ETAG = '"fake-etag-1"'

def data(item):
    size, k = ITEMS[item]
    return bytes((i * 31 + k) % 256 for i in range(size))

requests = {name: 0 for name in ITEMS}

class Peer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def json(self, v):
        body = json.dumps(v).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def status(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["handshake"]:
            return self.json({"name": "jack", "version": "0.1.0", "implementation": "fake", "features": ["ranges", "etag", "bearer"]})
        if len(parts) >= 3 and parts[:2] == ["peer", "items"] and parts[2] in ITEMS:
            item = parts[2]
            size = ITEMS[item][0]
            if len(parts) == 3:
                return self.json({"id": item, "title": f"{item.title()} Movie 2001", "filename": f"{item}.mkv",
                                  "size": size, "category": 2000, "etag": ETAG})
            requests[item] += 1
            if item == "gone":
                return self.status(404)
            start = 0
            rng = self.headers.get("Range")
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
            if item == "part" and requests[item] > 1:
                return self.status(503)
            body = data(item)[start:]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", ETAG)
            self.send_header("Accept-Ranges", "bytes")
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            if item == "done":
                self.wfile.write(body)
            elif item == "part":
                self.wfile.write(body[:256 * 1024])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            else:  # cancel: 128 KiB, then a trickle until the client goes
                try:
                    self.wfile.write(body[:128 * 1024])
                    for i in range(128 * 1024, len(body), 4096):
                        self.wfile.flush()
                        time.sleep(0.2)
                        self.wfile.write(body[i:i + 4096])
                except OSError:
                    pass
            return
        self.status(404)

peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Peer)
peer.daemon_threads = True
threading.Thread(target=peer.serve_forever, daemon=True).start()

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
with open(os.path.join(root, "jack.toml"), "w") as f:
    f.write(f"""[server]
listen = "127.0.0.1:{port}"
api_key = "{KEY}"
[downloads]
max_concurrent_downloads = 1
min_free_bytes = 0
retry_base_delay_ms = 100
retry_max_delay_ms = 200
max_attempts = 1000
[[peers]]
name = "alice"
url = "http://127.0.0.1:{peer.server_address[1]}"
api_key = "alice-key-0123456789"
""")
node = subprocess.Popen([binary, "--config", os.path.join(root, "jack.toml"), "run"],
                        stderr=open(os.path.join(root, "jack.log"), "w"))
base = f"http://127.0.0.1:{port}"

def call(path, method="GET"):
    req = urllib.request.Request(base + path, method=method, headers={"X-Api-Key": KEY})
    return urllib.request.urlopen(req, timeout=10).read()

def rows():
    return {d["item_id"]: d for d in json.loads(call("/api/v1/downloads"))["downloads"]}

def wait(what, test, limit=60):
    end = time.time() + limit
    while time.time() < end:
        try:
            r = rows()
            if test(r):
                return r
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}; log in {root}/jack.log")

def grab(item):
    stub = call(f"/torznab/download/alice:{item}.torrent?apikey={KEY}")
    watch = os.path.join(root, "data/watch")
    with open(os.path.join(watch, f".{item}.tmp"), "wb") as f:
        f.write(stub)
    os.rename(os.path.join(watch, f".{item}.tmp"), os.path.join(watch, f"{item}.torrent"))

wait("the node", lambda r: True)
grab("done")
wait("done completed", lambda r: r.get("done", {}).get("status") == "completed")
grab("gone")
wait("gone failed", lambda r: r.get("gone", {}).get("status") == "failed")
grab("part")
wait("part retrying with bytes", lambda r: r.get("part", {}).get("status") == "retrying"
     and r["part"]["downloaded_bytes"] == 256 * 1024 and r["part"]["attempts"] >= 2)
grab("cancel")
wait("cancel running", lambda r: r.get("cancel", {}).get("status") == "downloading"
     and r["cancel"]["done_bytes"] >= 128 * 1024)
call(f"/api/v1/downloads/{rows()['cancel']['id']}/cancel", "POST")
final = wait("cancel cancelled", lambda r: r["cancel"]["status"] == "cancelled"
             and r["cancel"]["downloaded_bytes"] > 0)
node.send_signal(signal.SIGTERM)
node.wait(timeout=10)
for item, d in sorted(final.items()):
    print(f"{item}: id={d['id']} {d['status']} {d['downloaded_bytes']}/{d['expected_bytes']}", file=sys.stderr)
PY

# One self-contained file (no -wal beside it), as small as it gets.
python3 - "$root/data/jack.db" "$out/jack.db" <<'PY'
import os, sqlite3, sys
src, dst = sys.argv[1], sys.argv[2]
if os.path.exists(dst):
    os.remove(dst)
a = sqlite3.connect(src); b = sqlite3.connect(dst)
a.backup(b); a.close()
b.execute("PRAGMA journal_mode = DELETE"); b.execute("VACUUM"); b.close()
PY
cat >"$out/README.md" <<EOF
# A registry made by the previous release

\`jack.db\` was written by jack at commit $full (to be tagged v0.1.0:
\`git log -1 $full\`), by \`scripts/make-old-registry.sh\`, which says what
is in it and makes it again. Its paths are under \`$root\`, which
\`tests/upgrade.rs\` replaces with its own temporary folder.
EOF
echo "wrote $out/jack.db from $full" >&2
