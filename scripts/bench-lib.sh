# Shared by the bench-*.sh scripts (sourced, not run): a free port, a jack
# node serving a library, and nginx serving one file, all on 127.0.0.1.
# Expects BIN (the jack binary), NGINX and TMP to be set by the caller.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_jack_node DIR LIBDIR: a jack node with its registry and folders in
# DIR, serving LIBDIR with the key "bench"; sets NODE_PORT and NODE_PID,
# logs to DIR/jack.log. wait_jack_node DIR waits for its first scan.
start_jack_node() {
    local dir=$1 lib=$2
    mkdir -p "$dir"
    NODE_PORT=$(free_port)
    cat >"$dir/jack.toml" <<CONF
[server]
listen = "127.0.0.1:$NODE_PORT"
api_key = "bench"
handler_threads = 8
${NODE_SERVER_EXTRA:-}

[database]
path = "$dir/jack.db"

[[library]]
name = "bench"
path = "$lib"
category = "movies"

[downloads]
watch_dir = "$dir/watch"
incomplete_dir = "$dir/incomplete"
completed_dir = "$dir/completed"
CONF
    "$BIN" --config "$dir/jack.toml" run 2>"$dir/jack.log" &
    NODE_PID=$!
}

wait_jack_node() {
    local dir=$1 i
    for i in $(seq 300); do
        grep -q "catalogue scanned" "$dir/jack.log" 2>/dev/null && return 0
        kill -0 "$NODE_PID" 2>/dev/null || { cat "$dir/jack.log" >&2; echo "error: jack exited" >&2; exit 1; }
        sleep 0.1
    done
    cat "$dir/jack.log" >&2
    echo "error: jack never scanned its library" >&2
    exit 1
}

# start_nginx FILE: nginx with one worker and sendfile, everything under
# $TMP/nginx, serving FILE at /file; sets NGINX_PORT and NGINX_PID and
# waits until it answers.
start_nginx() {
    local file=$1 user_line="" i
    mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
    NGINX_PORT=$(free_port)
    [ "$(id -u)" -eq 0 ] && user_line="user root;" # the worker must read the 0700 temp dir
    cat >"$TMP/nginx/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /file {
            alias $file;
            default_type application/octet-stream;
        }
    }
}
CONF
    "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf" &
    NGINX_PID=$!
    for i in $(seq 300); do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$NGINX_PORT/file" -r 0-0 && return 0
        kill -0 "$NGINX_PID" 2>/dev/null || { cat "$TMP/nginx/logs/error.log" >&2; echo "error: nginx exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "error: nginx not answering" >&2
    exit 1
}

# stop_pids PID...: SIGTERM, up to 5 s each to exit, then SIGKILL.
stop_pids() {
    local pid
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
