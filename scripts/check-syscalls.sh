#!/usr/bin/env bash
# Checks contrib/jack.service's SystemCallFilter against what jack really
# calls: two nodes run under strace, one serves a file, the other fetches
# its stub through Torznab, downloads it (ranges, fdatasync, the link
# hand-off, the registry's WAL) and both stop on SIGTERM. Every system call
# seen must be allowed by @system-service minus @privileged @resources
# (systemd-analyze syscall-filter gives the lists).
# Usage: scripts/check-syscalls.sh [path/to/jack]   (default target/release/jack)
set -euo pipefail
cd "$(dirname "$0")/.."
jack=$(realpath "${1:-target/release/jack}")
command -v strace >/dev/null || { echo "error: needs strace (apt-get install strace)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "error: needs systemd-analyze (apt-get install systemd)" >&2; exit 1; }
grep -q '^SystemCallFilter=@system-service$' contrib/jack.service
grep -q '^SystemCallFilter=~@privileged @resources$' contrib/jack.service

tmp=$(mktemp -d /tmp/jack-syscalls.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*" >&2; exit 1; }

a=$(port); b=$(port)
mkdir -p "$tmp/a/media/Sys Call (2021)" "$tmp/b"
head -c 8388608 /dev/urandom > "$tmp/a/media/Sys Call (2021)/Sys.Call.2021.1080p.WEB-DL.x264-JACK.mkv"
cat > "$tmp/a/jack.toml" <<TOML
[server]
listen = "127.0.0.1:$a"
api_key = "key-a"
[[library]]
name = "movies"
path = "media"
TOML
cat > "$tmp/b/jack.toml" <<TOML
[server]
listen = "127.0.0.1:$b"
api_key = "key-b"
[downloads]
scan_interval_ms = 200
[[peers]]
name = "a"
url = "http://127.0.0.1:$a"
api_key = "key-a"
TOML
# As the service does, run jack unprivileged (as root, SQLite would also
# fchown its journal files, a call @privileged denies).
as=()
if [ "$(id -u)" -eq 0 ]; then
    chmod 0755 "$tmp"; chown -R nobody: "$tmp/a" "$tmp/b"
    as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
for n in a b; do
    strace -f -qq -o "$tmp/$n.strace" "${as[@]}" "$jack" --config "$tmp/$n/jack.toml" run 2> "$tmp/$n.log" &
    pids+=($!)
done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$b/ping" >/dev/null && curl -sf "http://127.0.0.1:$a/ping" >/dev/null && break; sleep 0.1; done
id=""
for _ in $(seq 100); do
    id=$(curl -s -H "Authorization: Bearer key-a" "http://127.0.0.1:$a/peer/search" \
        | python3 -c 'import json,sys; i=json.load(sys.stdin).get("items",[]); print(i[0]["id"] if i else "")' 2>/dev/null || true)
    [ -n "$id" ] && break; sleep 0.1
done
[ -n "$id" ] || fail "node a lists nothing"
curl -sf -o "$tmp/b/stub.torrent" "http://127.0.0.1:$b/torznab/download/a%3A$id.torrent?apikey=key-b" || fail "no stub from torznab"
watch=$(ls -d "$tmp"/b/data/watch); mv "$tmp/b/stub.torrent" "$watch/x.torrent"
for _ in $(seq 300); do
    [ -n "$(find "$tmp/b/data/completed" -name '*.mkv' 2>/dev/null)" ] && break; sleep 0.1
done
got=$(find "$tmp/b/data/completed" -name '*.mkv')
[ -n "$got" ] || { cat "$tmp/b.log" >&2; fail "the download did not complete"; }
cmp -s "$got" "$tmp/a/media/Sys Call (2021)/Sys.Call.2021.1080p.WEB-DL.x264-JACK.mkv" || fail "downloaded bytes differ"
grep -o 'hand-off mode=[a-z]*' "$tmp/b.log" | head -1
sleep 0.5
# SIGTERM to each jack (strace's child): strace ends with it.
for pid in "${pids[@]}"; do kill -TERM "$(pgrep -P "$pid")" 2>/dev/null || kill -TERM "$pid"; done
for pid in "${pids[@]}"; do wait "$pid" || fail "a node did not stop cleanly"; done
pids=()

python3 - "$jack" "$tmp/a.strace" "$tmp/b.strace" <<'PY'
import re, subprocess, sys
out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
groups, cur = {}, None
for line in out.splitlines():
    if line.startswith("@"):
        cur = line.split()[0]; groups[cur] = []
    elif cur and line.strip() and not line.strip().startswith("#"):
        groups[cur].append(line.strip())
def expand(g):
    s = set()
    for x in groups.get(g, []):
        s |= expand(x) if x.startswith("@") else {x}
    return s
allowed = expand("@system-service") - expand("@privileged") - expand("@resources")
seen = set()
jack = sys.argv[1]
for path in sys.argv[2:]:
    started = False  # calls before jack's own execve are setpriv's
    for line in open(path):
        if not started:
            started = f'execve("{jack}"' in line and line.rstrip().endswith("= 0")
            continue
        m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
        if m:
            seen.add(m.group(1))
denied = sorted(seen - allowed)
print(f"{len(seen)} distinct system calls seen: {' '.join(sorted(seen))}")
if denied:
    print(f"FAIL: not allowed by the unit's SystemCallFilter: {' '.join(denied)}")
    sys.exit(1)
print("ok: every one is allowed by SystemCallFilter=@system-service ~@privileged @resources")
PY
