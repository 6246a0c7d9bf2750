#!/usr/bin/env bash
# Runs contrib/nginx/jack.conf for real in front of a jack node on
# 127.0.0.1, with a throwaway self-signed certificate, and checks through it
# what docs/REVERSE-PROXY.md promises: a byte range past 4 GiB arrives
# byte-exact (206, Content-Range), If-Range is honoured, nothing is
# compressed, keys are still required, and only /ping, /handshake and
# /peer/ are exposed. The openssl CLI only makes the test certificate.
# Usage: scripts/check-proxy.sh [path/to/jack]   (default target/release/jack)
set -euo pipefail
cd "$(dirname "$0")/.."
jack=$(realpath "${1:-target/release/jack}")
[ -x "$jack" ] || { echo "error: no jack binary at $jack (make build)" >&2; exit 1; }
./scripts/ensure-tools.sh nginx curl openssl python3
nginx=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d /tmp/jack-proxy.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*" >&2; [ -s "$tmp/nginx-error.log" ] && tail -3 "$tmp/nginx-error.log" >&2; exit 1; }
ok() { echo "ok: $*"; }

# A 5 GiB sparse file with 1 MiB of random bytes at 4 GiB.
movie="$tmp/media/Proxy Test (2020)/Proxy.Test.2020.1080p.WEB-DL.x264-JACK.mkv"
mkdir -p "$(dirname "$movie")"
truncate -s 5G "$movie"
head -c 1048576 /dev/urandom > "$tmp/chunk"
dd if="$tmp/chunk" of="$movie" bs=1M seek=4096 conv=notrunc status=none

jack_port=$(port); tls_port=$(port); key=proxy-check-key
cat > "$tmp/jack.toml" <<TOML
[server]
listen = "127.0.0.1:$jack_port"
api_key = "$key"
handler_threads = 4
[database]
path = "data/jack.db"
[[library]]
name = "movies"
path = "media"
[downloads]
watch_dir = "data/watch"
incomplete_dir = "data/incomplete"
completed_dir = "data/completed"
TOML
"$jack" --config "$tmp/jack.toml" run 2> "$tmp/jack.log" &
pids+=($!)

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

# The shipped snippet, pointed at this node, port and certificate.
sed -e "s#listen 443 ssl;#listen 127.0.0.1:$tls_port ssl;#" \
    -e "/listen \[::\]:443 ssl;/d" \
    -e "s#server_name jack.example.org;#server_name localhost;#" \
    -e "s#/etc/letsencrypt/live/jack.example.org/fullchain.pem#$tmp/cert.pem#" \
    -e "s#/etc/letsencrypt/live/jack.example.org/privkey.pem#$tmp/key.pem#" \
    -e "s#127.0.0.1:5225#127.0.0.1:$jack_port#" \
    contrib/nginx/jack.conf > "$tmp/jack.conf"
cat > "$tmp/nginx.conf" <<CONF
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
daemon off;
events { worker_connections 256; }
http {
    access_log $tmp/nginx-access.log;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    include $tmp/jack.conf;
}
CONF
# As root, nginx's workers run as nobody: let them write their temporary
# files, so a buffering configuration would buffer (and be caught below).
chmod 0755 "$tmp"
mkdir -p "$tmp/body" "$tmp/proxy"
[ "$(id -u)" -eq 0 ] && chown nobody "$tmp/body" "$tmp/proxy"
"$nginx" -t -q -c "$tmp/nginx.conf" -p "$tmp" || fail "nginx -t rejects contrib/nginx/jack.conf"
ok "nginx -t accepts contrib/nginx/jack.conf ($("$nginx" -v 2>&1 | sed 's/.*: //'))"
"$nginx" -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)

base="https://localhost:$tls_port"
c() { curl -sS --cacert "$tmp/cert.pem" --max-time 30 "$@"; }
for _ in $(seq 100); do
    c -o /dev/null "$base/ping" 2>/dev/null && break
    sleep 0.1
done
[ "$(c "$base/ping")" = '{"status":"OK"}' ] || fail "/ping through the proxy"
ok "/ping answers through TLS"

# The file's id, from a search, waiting for the first catalogue scan.
id=""
for _ in $(seq 100); do
    id=$(c -H "Authorization: Bearer $key" "$base/peer/search" | python3 -c '
import json, sys
items = json.load(sys.stdin).get("items", [])
print(items[0]["id"] if items else "")' 2>/dev/null || true)
    [ -n "$id" ] && break
    sleep 0.1
done
[ -n "$id" ] || fail "no item in /peer/search through the proxy"
file="$base/peer/items/$id/file"

# A range at 4 GiB + 10, byte-exact, with its Content-Range.
start=$((4 * 1024 * 1024 * 1024 + 10)); end=$((start + 65535))
c -D "$tmp/h1" -H "Authorization: Bearer $key" -H "Accept-Encoding: gzip" \
    -r "$start-$end" -o "$tmp/got" "$file"
head -c 65546 "$tmp/chunk" | tail -c 65536 > "$tmp/want"
grep -q '^HTTP/1.1 206' "$tmp/h1" || fail "range: $(head -1 "$tmp/h1")"
grep -qi "^content-range: bytes $start-$end/5368709120" "$tmp/h1" || fail "Content-Range: $(grep -i content-range "$tmp/h1")"
grep -qi '^content-encoding' "$tmp/h1" && fail "the range came compressed"
cmp -s "$tmp/got" "$tmp/want" || fail "range bytes differ"
ok "range $start-$end of a 5 GiB file: 206, Content-Range, 65536 bytes byte-exact, not compressed"

# If-Range: the current ETag keeps the range, another one gets the whole file (HEAD).
etag=$(grep -i '^etag:' "$tmp/h1" | sed 's/^[^:]*: *//; s/\r$//')
[ -n "$etag" ] || fail "no ETag"
status=$(c -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H "If-Range: $etag" -r "$start-$end" "$file")
[ "$status" = 206 ] || fail "If-Range with the current ETag: $status"
c -I -H "Authorization: Bearer $key" -H 'If-Range: "stale"' -r "$start-$end" "$file" > "$tmp/h2"
grep -q '^HTTP/1.1 200' "$tmp/h2" || fail "If-Range with a stale ETag: $(head -1 "$tmp/h2")"
grep -qi '^content-length: 5368709120' "$tmp/h2" || fail "stale If-Range length: $(grep -i content-length "$tmp/h2")"
ok "If-Range reaches jack: current ETag 206, stale ETag 200 with the whole length"

# Keys still required; the owner's routes are not exposed.
[ "$(c -o /dev/null -w '%{http_code}' "$file")" = 401 ] || fail "no key should be 401"
[ "$(c -o /dev/null -w '%{http_code}' "$base/handshake")" = 401 ] || fail "handshake without key"
[ "$(c -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base/handshake")" = 200 ] || fail "handshake with key"
for path in /metrics /api/v1/downloads /api/v2/app/version "/torznab/api?t=caps&apikey=$key"; do
    [ "$(c -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base$path")" = 404 ] \
        || fail "$path is exposed"
done
ok "without a key 401; /metrics, /api/v1, /api/v2, /torznab: 404 at the proxy"

# A slow client (2 MB/s for 3 s): a buffering nginx would read ahead from
# jack into a temporary file, and log it (error_log at warn).
c -H "Authorization: Bearer $key" -o /dev/null --limit-rate 2M --max-time 3 "$file" 2>/dev/null || true
grep -q 'buffered to a temporary file' "$tmp/nginx-error.log" \
    && fail "nginx buffered the stream to a temporary file: $(grep -m1 'temporary file' "$tmp/nginx-error.log")"
ok "a slow client's stream is not buffered to a temporary file at the proxy"

# A whole 5 GiB stream through the proxy.
c -H "Authorization: Bearer $key" -o /dev/null -w '%{size_download} %{time_total}\n' "$file" > "$tmp/full"
read -r size secs < "$tmp/full"
[ "$size" = 5368709120 ] || fail "whole file: $size bytes"
ok "whole 5 GiB file streamed through TLS in ${secs}s"
echo "all proxy checks passed"
