#!/usr/bin/env bash
# `make run`: your node on ./jack.toml in the foreground, and beside it the
# demo friend "alice" (contrib/demo/alice.toml, 127.0.0.1:5226), whom the
# shipped jack.toml already names in [[peers]], so a search finds her files.
# `make demo` (this script with --demo) also does what Radarr would: search
# your friends through Torznab and grab the first release (the two curl
# lines it prints), then shows the download until it is complete.
#
# Ctrl-C stops both nodes. Environment: JACK_BIN (the binary, default
# target/release/jack), JACK_DEMO_ROOT (the folder holding jack.toml and
# contrib/demo/alice.toml, default the clone), JACK_DEMO_QUERY (default
# sintel), JACK_TEST_RUNNER (an emulator the binary runs under, as in
# `make test-arm`); --exit-when-done (tests) stops both nodes once the download is
# complete, exit 0, or after JACK_DEMO_LIMIT seconds (default 60), exit 1.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${JACK_BIN:-$here/target/release/jack}
root=${JACK_DEMO_ROOT:-$here}
query=${JACK_DEMO_QUERY:-sintel}
limit=${JACK_DEMO_LIMIT:-60}
demo=false
exit_when_done=false
for arg in "$@"; do
    case $arg in
        --demo) demo=true ;;
        --exit-when-done) exit_when_done=true ;;
        *) echo "usage: $0 [--demo] [--exit-when-done]" >&2; exit 2 ;;
    esac
done
cd "$root"
# The binary, under the test runner's emulator when one is set (started
# in the background without this function, so that $! is the node).
jack() { ${JACK_TEST_RUNNER:-} "$bin" "$@"; }
say() { printf '\033[1m%s\033[0m\n' "$*"; }

# A key of jack.toml's [server] table, when it is written inline.
setting() { sed -n "s/^$2 = \"\(.*\)\"\$/\1/p" "$1" | head -1; }
listen=$(setting jack.toml listen)
url=http://${listen/0.0.0.0/127.0.0.1}
key=$(setting jack.toml api_key)
watch=$(setting jack.toml watch_dir)
completed=$(setting jack.toml completed_dir)
alice_url=http://$(setting contrib/demo/alice.toml listen)

"$here/scripts/sample-library.sh" media
"$here/scripts/sample-library.sh" data/alice/media alice

pids=()
stop() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

# alice's log lines start with "alice | ".
${JACK_TEST_RUNNER:-} "$bin" --config contrib/demo/alice.toml run > >(sed -u 's/^/alice | /') 2>&1 &
pids+=($!)

if ! $demo; then
    ${JACK_TEST_RUNNER:-} "$bin" --config jack.toml run &
    pids+=($!)
    wait "${pids[1]}"
    exit $?
fi

${JACK_TEST_RUNNER:-} "$bin" --config jack.toml run &
pids+=($!)
ready() { curl -fsS -m 2 "$1/ping" > /dev/null 2>&1; }
for _ in $(seq 50); do ready "$url" && ready "$alice_url" && break; sleep 0.2; done
if ! ready "$url"; then echo "demo: your node did not answer at $url/ping" >&2; exit 1; fi
if [ -z "$key" ] || [ -z "$watch" ]; then
    echo "demo: jack.toml's api_key or watch_dir is not written inline; search and grab by hand (README)" >&2
    wait "${pids[1]}"; exit $?
fi

search="$url/torznab/api?t=search&q=$query&apikey=$key"
say "demo: 1. search your friends through Torznab, as Radarr does:"
echo "  curl '$search'"
feed=$(curl -fsS -m 30 "$search")
link=$(printf '%s\n' "$feed" | sed -n 's:.*<link>\(.*/torznab/download/.*\)</link>.*:\1:p' | head -1)
title=$(printf '%s\n' "$feed" | sed -n 's:.*<title>\(.*\)</title>.*:\1:p' | sed -n 2p)
if [ -z "$link" ]; then
    echo "demo: no release for '$query' (is alice up at $alice_url?)" >&2
    exit 1
fi
link=${link//&amp;/&}
say "demo: found $title; 2. grab it: its stub into the watch folder, as Radarr's blackhole client does:"
echo "  curl -o '$watch/$title.torrent' '$link'"
# The status of this release's download, from the node: "ID STATUS", or nothing.
state() {
    jack --config jack.toml status --json 2>/dev/null |
        grep -o "{\"id\":[0-9]*,\"status\":\"[a-z]*\",\"title\":\"$title\"" |
        sed 's/{"id":\([0-9]*\),"status":"\([a-z]*\)".*/\1 \2/' | tail -1 || true
}
previous=$(state)
if [ -n "$previous" ]; then
    say "demo: removing the download of an earlier demo (id ${previous%% *}, and its file) to show it again"
    curl -fsS -m 10 -X DELETE -H "X-Api-Key: $key" "$url/api/v1/downloads/${previous%% *}" > /dev/null
    for _ in $(seq 50); do [ -z "$(state)" ] && break; sleep 0.2; done
fi
mkdir -p "$watch"
curl -fsS -m 30 -o "$watch/$title.torrent.part" "$link"
mv "$watch/$title.torrent.part" "$watch/$title.torrent"
say "demo: watch it on the status page: $url/ui/ (log in with the key '$key'), or: $bin status --watch"

deadline=$((SECONDS + limit))
last=
while [ $SECONDS -lt $deadline ]; do
    now=$(state)
    if [ -n "$now" ]; then
        line=$(jack --config jack.toml status 2>/dev/null | grep -E "^ *${now%% *} " | head -1 || true)
        if [ "$line" != "$last" ]; then echo "$line"; last=$line; fi
    fi
    if [ "${now#* }" = completed ]; then
        say "demo: downloaded: $completed/$title.mkv. Ctrl-C stops both nodes."
        if $exit_when_done; then exit 0; fi
        wait "${pids[1]}"; exit $?
    fi
    sleep 0.5
done
echo "demo: the download did not complete within ${limit} s" >&2
$exit_when_done && exit 1
wait "${pids[1]}"
