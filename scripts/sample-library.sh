#!/usr/bin/env bash
# Creates a small sample library under $1 (default: media) so a fresh node has
# something to serve. Idempotent: existing files are left alone. The bytes are
# random; the names follow the conventions the catalogue understands.
set -euo pipefail
root=${1:-media}
make_file() { # path size_in_MiB
    local path=$1 mib=$2
    [ -f "$path" ] && return 0
    mkdir -p "$(dirname "$path")"
    head -c $((mib * 1024 * 1024)) /dev/urandom > "$path.tmp"
    mv "$path.tmp" "$path"
    echo "sample: $path ($mib MiB)"
}
make_file "$root/movies/Big Buck Bunny (2008) {tmdb-10378}/Big.Buck.Bunny.2008.1080p.WEB-DL.x264-JACK.mkv" 8
make_file "$root/tv/Sample Show {tvdb-81189}/Season 01/Sample.Show.S01E01.720p.WEB-DL.x264-JACK.mkv" 4
