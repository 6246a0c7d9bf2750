#!/usr/bin/env bash
# Creates a small sample library under $1 (default: media) so a fresh node has
# something to serve; `$2 = alice` makes the demo friend's library instead
# (contrib/demo/alice.toml: other titles, so a search finds hers). Idempotent: existing files are left alone. The bytes are
# random; the names follow the conventions the catalogue understands.
set -euo pipefail
root=${1:-media}
who=${2:-you}
make_file() { # path size_in_MiB
    local path=$1 mib=$2
    [ -f "$path" ] && return 0
    mkdir -p "$(dirname "$path")"
    head -c $((mib * 1024 * 1024)) /dev/urandom > "$path.tmp"
    mv "$path.tmp" "$path"
    echo "sample: $path ($mib MiB)"
}
if [ "$who" = alice ]; then
    make_file "$root/movies/Sintel (2010) {tmdb-45745}/Sintel.2010.1080p.WEB-DL.x264-ALICE.mkv" 24
    make_file "$root/tv/Sample Show {tvdb-81189}/Season 01/Sample.Show.S01E02.720p.WEB-DL.x264-ALICE.mkv" 4
    exit 0
fi
make_file "$root/movies/Big Buck Bunny (2008) {tmdb-10378}/Big.Buck.Bunny.2008.1080p.WEB-DL.x264-JACK.mkv" 8
make_file "$root/tv/Sample Show {tvdb-81189}/Season 01/Sample.Show.S01E01.720p.WEB-DL.x264-JACK.mkv" 4
