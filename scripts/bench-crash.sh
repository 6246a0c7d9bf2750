#!/usr/bin/env bash
# The kill -9 loop, measured: node B downloads a SIZE_MIB (default 256) MiB
# file from jack node A through its watch folder and is killed with SIGKILL
# KILLS times (default 10) at random moments (10-80 ms after each start, plus 200 ms before the first kill for the watch folder),
# restarting each time. Reports the bytes A sent in total (from A's debug
# log: every file body's byte count), the bytes re-fetched per kill, and the
# time from each restart to B resuming the transfer (B's "download resumed"
# log line).
#
# HANDOFF (default "link copy") runs the loop once per hand-off: "link" with
# B's incomplete and completed folders on one mount, "copy" with them as two
# bind mounts of one filesystem (EXDEV: the copy hand-off), in a private
# mount namespace (root and util-linux's unshare). In the copy run every
# other kill waits for the copy to start, so kills land inside it too.
# LOSS (default "crash power") runs each loop as a crash of the process
# (the written records stand: the resume starts where B had written) and
# as a power cut (before each restart the boot id in B's written records is
# replaced, as a new boot would: the resume starts at the last checkpoint).
# Besides what A sent, it reports the bytes B had written to its .part but
# did not keep (the .part length at the kill minus the resume offset).
# Release binary; 127.0.0.1 only. Usage: scripts/bench-crash.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/jack}
HANDOFF=${HANDOFF:-link copy}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
NS=()
if [[ " $HANDOFF " == *" copy "* ]]; then
    if ! unshare -m true 2>/dev/null; then
        echo "error: the copy run needs a private mount namespace (root, unshare from util-linux); run HANDOFF=link $0" >&2
        exit 1
    fi
    NS=(unshare -m)
fi
"${NS[@]}" python3 - "$BIN" "${SIZE_MIB:-256}" "${KILLS:-10}" "$HANDOFF" "${LOSS:-crash power}" <<'PY'
import glob, hashlib, os, random, re, signal, statistics, sys, tempfile, time
sys.path.insert(0, "scripts")
from benchlib import Node, bind_mounts, drop_stub, first_item, free_port, stub, unmount
binary, size_mib, kills_wanted, modes, losses = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5].split()
size = size_mib * 1024 * 1024
def new_boot(incomplete):
    """A power cut: every written record now names another boot."""
    for side in glob.glob(os.path.join(incomplete, "*.part.written")):
        with open(side, "r+b") as f:
            f.write(b"00000000-0000-4000-8000-000000000000")
def part_len(incomplete):
    parts = glob.glob(os.path.join(incomplete, "*.part"))
    return os.path.getsize(parts[0]) if parts else None
def run(mode, loss):
  with tempfile.TemporaryDirectory() as d:
      lib = os.path.join(d, "a/lib"); os.makedirs(lib)
      name = "Crash.Bench.2024.1080p.mkv"
      with open(os.path.join(lib, name), "wb") as f:
          for _ in range(size_mib): f.write(os.urandom(1024 * 1024))
      src_sha = hashlib.sha256(open(os.path.join(lib, name), "rb").read()).hexdigest()
      pa, pb = free_port(), free_port()
      ca = os.path.join(d, "a/jack.toml")
      open(ca, "w").write(f'[server]\nlisten = "127.0.0.1:{pa}"\napi_key = "bench"\n[log]\nlevel = "debug"\n'
                          f'[[library]]\nname = "bench"\npath = "{lib}"\ncategory = "movies"\n')
      os.makedirs(os.path.join(d, "b"))
      if mode == "copy":
          bind_mounts(os.path.join(d, "b"))
      cb = os.path.join(d, "b/jack.toml")
      open(cb, "w").write(f'[server]\nlisten = "127.0.0.1:{pb}"\napi_key = "b"\n[downloads]\nscan_interval_ms = 100\n'
                          f'[[peers]]\nname = "alice"\nurl = "http://127.0.0.1:{pa}"\napi_key = "bench"\n')
      a = Node(binary, ca); a.wait_line("catalogue scanned")
      s = stub("alice", first_item(pa), size)
      b = Node(binary, cb)
      b.wait_line(f"hand-off mode={mode}")
      drop_stub(os.path.join(d, "b/data/watch"), s)
      dest = os.path.join(d, "b/data/completed", name)
      rng = random.Random(int(time.time()))
      kills, resumes, in_copy, dropped = 0, [], 0, []
      incomplete = os.path.join(d, "b/data/incomplete")
      start = time.monotonic()
      while kills < kills_wanted and not os.path.exists(dest):
          if mode == "copy" and kills % 2 == 1:
              try:
                  b.wait_line("hand-off copy started", 20)
              except SystemExit:
                  break
              time.sleep(rng.uniform(0, 0.1))
          else:
              time.sleep(rng.uniform(0.01, 0.08) + (0.2 if kills == 0 else 0))
          if os.path.exists(dest): break
          started = any("hand-off copy started" in l for _, l in b.lines)
          done = any("hand-off copy done" in l for _, l in b.lines)
          in_copy += started and not done
          b.p.send_signal(signal.SIGKILL); b.p.wait(); kills += 1
          had = part_len(incomplete)
          if loss == "power":
              new_boot(incomplete)
          b = Node(binary, cb)
          try:
              t, m = b.wait_line(r"download (resumed|started) id=\d+ offset=(\d+)", 10)
              resumes.append((t - b.t0) * 1000)
              offset = int(m.group(2))
              if had is not None:
                  dropped.append(max(0, had - offset))
          except SystemExit:
              pass
      while not os.path.exists(dest): time.sleep(0.01)
      wall = time.monotonic() - start
      ok = hashlib.sha256(open(dest, "rb").read()).hexdigest() == src_sha
      time.sleep(0.3)
      sent = sum(int(m.group(1)) for _, l in a.lines for m in [re.search(r"file body sent .* bytes=(\d+)", l)] if m)
      b.p.terminate(); a.p.terminate(); b.p.wait(); a.p.wait()
      completed = sorted(os.listdir(os.path.join(d, "b/data/completed")))
      parts = [f for f in os.listdir(os.path.join(d, "b/data/incomplete")) if os.path.isfile(os.path.join(d, "b/data/incomplete", f))]
      if mode == "copy":
          unmount(os.path.join(d, "b"))
      refetched = sent - size
      print(f"hand-off: {mode}, each kill as: {'a power cut (new boot id)' if loss == 'power' else 'a process crash'}")
      print(f"file: {size_mib} MiB, kills: {kills}, final SHA-256 equal: {ok}, wall: {wall:.1f} s")
      print(f"completed folder: {completed}; .part files left: {parts}")
      if mode == "copy":
          print(f"kills that landed during the copy hand-off: {in_copy}")
      print(f"bytes sent by the peer: {sent} (file {size}); re-fetched: {refetched} bytes = {refetched/1048576:.1f} MiB")
      if kills:
          print(f"re-fetched per kill: {refetched/kills/1048576:.1f} MiB (bound: one checkpoint interval = 64 MiB)")
      if dropped:
          print(f"written by B but not kept, per kill: median {statistics.median(dropped)/1048576:.2f} MiB, max {max(dropped)/1048576:.2f} MiB")
      if resumes:
          print(f"restart to transfer running again: median {statistics.median(resumes):.0f} ms, max {max(resumes):.0f} ms over {len(resumes)} restarts")
for mode in modes:
    for loss in losses:
        run(mode, loss)
        print()
PY
