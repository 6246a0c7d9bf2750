#!/usr/bin/env bash
# The copy hand-off's cost against `cp` + `sync` of the same file, side by
# side in one run. Node B (release binary) downloads a SIZE_MIB (default
# 1024) MiB random file from jack node A, with B's incomplete and completed
# folders as two bind mounts of one filesystem (EXDEV: the copy hand-off),
# and logs how long the copy took (`hand-off copy done ... ms=`: copy,
# fsync, no-replace rename, folder fsync). Then, between the same two bind
# mounts, `cp SRC DST && sync DST` copies a file of the same size that was
# written and synced just before (as the .part is). RUNS (default 5) of
# each, alternately; medians. Needs root and util-linux's unshare (a
# private mount namespace). 127.0.0.1 only. Usage: scripts/bench-handoff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
unshare -m true 2>/dev/null || { echo "error: needs a private mount namespace (root, unshare from util-linux)" >&2; exit 1; }
exec unshare -m python3 - "$BIN" "${SIZE_MIB:-1024}" "${RUNS:-5}" <<'PY'
import os, shutil, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, "scripts")
from benchlib import Node, bind_mounts, drop_stub, first_item, free_port, stub, unmount
binary, size_mib, runs = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
size = size_mib * 1024 * 1024
with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix=".bench-handoff-") as d:
    lib = os.path.join(d, "a/lib"); os.makedirs(lib)
    name = "Handoff.Bench.2024.1080p.mkv"
    src = os.path.join(lib, name)
    with open(src, "wb") as f:
        for _ in range(size_mib): f.write(os.urandom(1024 * 1024))
    pa = free_port()
    ca = os.path.join(d, "a/jack.toml")
    open(ca, "w").write(f'[server]\nlisten = "127.0.0.1:{pa}"\napi_key = "bench"\n'
                        f'[[library]]\nname = "bench"\npath = "{lib}"\ncategory = "movies"\n')
    a = Node(binary, ca); a.wait_line("catalogue scanned")
    s = stub("alice", first_item(pa), size)
    jack_ms, cp_ms = [], []
    for run in range(runs):
        # jack: a download, then the copy hand-off it logs.
        b = os.path.join(d, f"b{run}"); bind_mounts(b)
        cb = os.path.join(b, "jack.toml")
        open(cb, "w").write(f'[server]\nlisten = "127.0.0.1:{free_port()}"\napi_key = "b"\n[downloads]\nscan_interval_ms = 100\n'
                            f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{pa}"\napi_key = "bench"\n')
        node = Node(binary, cb); node.wait_line("hand-off mode=copy")
        drop_stub(os.path.join(b, "data/watch"), s)
        _, m = node.wait_line(r"hand-off copy done id=\d+ bytes=(\d+) ms=(\d+)", 120)
        assert int(m.group(1)) == size
        node.wait_line("download completed", 30)
        final = os.path.join(b, "volume/completed", name)
        assert os.path.getsize(final) == size and os.listdir(os.path.join(b, "volume/incomplete")) == []
        jack_ms.append(int(m.group(2)))
        node.p.terminate(); node.p.wait(); unmount(b); shutil.rmtree(b)
        # cp + sync between the same kind of mounts, from a synced source.
        c = os.path.join(d, f"c{run}"); bind_mounts(c)
        part = os.path.join(c, "data/incomplete/x.part"); dst = os.path.join(c, "data/completed", name)
        subprocess.run(["cp", src, part], check=True); subprocess.run(["sync", part], check=True)
        t0 = time.monotonic()
        subprocess.run(["cp", part, dst], check=True); subprocess.run(["sync", dst], check=True)
        cp_ms.append((time.monotonic() - t0) * 1000)
        assert os.path.getsize(dst) == size
        unmount(c); shutil.rmtree(c)
        print(f"run {run + 1}: jack copy hand-off {jack_ms[-1]} ms, cp + sync {cp_ms[-1]:.0f} ms", flush=True)
    a.p.terminate(); a.p.wait()
    jm, cm = statistics.median(jack_ms), statistics.median(cp_ms)
    print(f"file: {size_mib} MiB, {runs} runs each, alternating")
    print(f"jack copy hand-off: median {jm:.0f} ms ({size / jm / 1048.576:.0f} MiB/s), min {min(jack_ms)}, max {max(jack_ms)}")
    print(f"cp + sync:          median {cm:.0f} ms ({size / cm / 1048.576:.0f} MiB/s), min {min(cp_ms):.0f}, max {max(cp_ms):.0f}")
    print(f"ratio jack / cp+sync (median): {jm / cm:.2f}")
PY
