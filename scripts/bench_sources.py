"""Content digests and several sources (PROTOCOL.md §2.6), for BENCHMARKS.md.

Run by scripts/bench-sources.sh. Real jack nodes over loopback:

* two sources: alice and carol serve the same file, each with
  `max_upload_rate = RATE`; bob downloads it through a stub naming alice,
  with `max_sources = 1` (alice alone) and `max_sources = 2` (alice and
  carol), alternately, RUNS times each. The ratio of the medians is the
  figure (goal: at most 0.55).
* verification: alice serves a SIZE_VERIFY file with its digest known;
  dave serves the same file without one yet (`hash_rate` at its floor, a
  fresh registry: an older node); bob downloads from each, alternately,
  RUNS times, with no rate limit. The ratio of the medians is what
  checking every byte costs.

Prints a Markdown report on stdout; progress on stderr."""
import json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Node, free_port, stub, drop_stub, write_node_config  # noqa: E402

BIN = os.path.abspath(os.environ.get("BIN", "target/release/jack"))
# The serving nodes' binary (native when the downloader runs emulated).
SERVE_BIN = os.path.abspath(os.environ.get("SERVE_BIN", BIN))
RUNNER = os.environ.get("RUNNER", "").split()
RUNS = int(os.environ.get("RUNS", "3"))
MIB = 1024 * 1024
RATE = int(os.environ.get("RATE", str(16 * MIB)))
SIZE_SOURCES = int(os.environ.get("SIZE_SOURCES", str(256 * MIB)))
SIZE_VERIFY = int(os.environ.get("SIZE_VERIFY", str(1024 * MIB)))
# The verification runs again with each peer's uplink at this rate (a
# gigabit LAN: 110 MiB/s); 0 skips them.
VERIFY_RATE = int(os.environ.get("VERIFY_RATE", str(110 * MIB)))
# Only the verification figures (the two-source runs take a while).
ONLY_VERIFY = os.environ.get("ONLY_VERIFY", "") == "1"
KEY = "bench-key-0123456789abcdef"
NAME = "Bench.Movie.2024 {tmdb-603}.mkv"


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def make_file(path, size):
    """`size` bytes that are not all alike (a real read of a real file)."""
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MIB)
            f.write(block[:n])
            left -= n


class Peer:
    """A serving node over `media` (a copy of one file), `server`:
    TOML keys of its [server] table."""

    def __init__(self, root, name, source, server):
        self.dir = os.path.join(root, name)
        media = os.path.join(self.dir, "media")
        os.makedirs(media)
        # A copy, not a hard link: a link changes the file's change time
        # under the other node's digest (it would hash it again).
        shutil.copyfile(source, os.path.join(media, NAME))
        self.port = free_port()
        cfg = write_node_config(self.dir, self.port, KEY, media)
        text = open(cfg).read().replace("[server]\n", "[server]\n" + server, 1)
        open(cfg, "w").write(text)
        self.node = Node(SERVE_BIN, cfg)
        self.node.wait_line("catalogue scanned", 60)

    def item(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/peer/search",
                                     headers={"X-Api-Key": KEY})
        return json.load(urllib.request.urlopen(req))["items"][0]

    def wait_digest(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.item().get("sha256"):
                return
            time.sleep(0.2)
        raise SystemExit(f"{self.dir}: no digest after {timeout} s")

    def stop(self):
        self.node.p.terminate()
        self.node.p.wait()


def download(root, peers, via, size, extra):
    """One download by a fresh node `bob` knowing `peers` (name → Peer),
    the stub naming `via`; its wall time from the stub to the completed
    file, and the status's sources."""
    d = tempfile.mkdtemp(dir=root)
    port = free_port()
    lines = "".join(f'[[peers]]\nname = "{n}"\nurl = "http://127.0.0.1:{p.port}"\napi_key = "{KEY}"\n'
                    for n, p in peers.items())
    os.makedirs(os.path.join(d, "lib"))
    cfg = write_node_config(d, port, KEY, os.path.join(d, "lib"))
    # write_node_config ends with [downloads]: its keys go right after.
    text = open(cfg).read().replace("[downloads]\n", "[downloads]\n" + extra, 1) + lines
    open(cfg, "w").write(text)
    argv = RUNNER + [BIN, "--config", cfg]
    p = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        item = peers[via].item()
        t0 = time.monotonic()
        drop_stub(os.path.join(d, "watch"), stub(via, item, size))
        dest = os.path.join(d, "completed", NAME)
        sources = []
        while not os.path.exists(dest):
            if time.monotonic() - t0 > 1800:
                raise SystemExit("download did not finish")
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/downloads",
                                         headers={"X-Api-Key": KEY})
            try:
                for row in json.load(urllib.request.urlopen(req, timeout=2)).get("downloads", []):
                    if row.get("sources"):
                        sources = [s["peer"] for s in row["sources"]]
            except OSError:
                pass
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert os.path.getsize(dest) == size
        return took, sources
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def median(xs):
    return statistics.median(xs)


def main():
    root = tempfile.mkdtemp(prefix="jack-bench-sources.", dir=os.environ.get("TMPDIR", "/tmp"))
    report = []
    try:
        # Two sources against one.
        src = os.path.join(root, "file")
        if ONLY_VERIFY:
            raise Skip()
        make_file(src, SIZE_SOURCES)
        limited = f"max_upload_rate = {RATE}\nhash_rate = 0\n"
        alice = Peer(root, "alice", src, limited)
        carol = Peer(root, "carol", src, limited)
        for p in (alice, carol):
            p.wait_digest(300)
        peers = {"alice": alice, "carol": carol}
        one, two, seen = [], [], set()
        for run in range(RUNS):
            t, _ = download(root, peers, "alice", SIZE_SOURCES, "max_sources = 1\n")
            one.append(t)
            t, s = download(root, peers, "alice", SIZE_SOURCES, "max_sources = 2\n")
            two.append(t)
            seen.update(s)
            say(f"run {run + 1}: one source {one[-1]:.2f} s, two sources {two[-1]:.2f} s ({s})")
        alice.stop(); carol.stop()
        ratio = median(two) / median(one)
        mb = SIZE_SOURCES / MIB
        report.append("| Download of a %d MiB file, each friend's `max_upload_rate` %d MiB/s | Median s | MiB/s | Runs (s) |" % (mb, RATE // MIB))
        report.append("|---|---|---|---|")
        report.append("| one source (`max_sources = 1`) | %.2f | %.1f | %s |" % (median(one), mb / median(one), " ".join("%.2f" % x for x in one)))
        report.append("| two sources (`max_sources = 2`: %s) | %.2f | %.1f | %s |" % (" and ".join(sorted(seen)) or "?", median(two), mb / median(two), " ".join("%.2f" % x for x in two)))
        report.append("")
        report.append("Two sources / one source, medians: **%.2f** (goal: at most 0.55)." % ratio)
        report.append("")
        os.remove(src)
    except Skip:
        pass
    try:
        # Verification's cost, unlimited and at a LAN's rate.
        for rate in [0] + ([VERIFY_RATE] if VERIFY_RATE else []):
            report.extend(verification(root, rate))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n".join(report))


class Skip(Exception):
    pass


def verification(root, rate):
    """The verification rows with each peer's uplink at `rate` (0: none)."""
    report = []
    src = os.path.join(root, "file")
    make_file(src, SIZE_VERIFY)
    limit = f"max_upload_rate = {rate}\n" if rate else ""
    alice = Peer(root, f"alice-{rate}", src, "hash_rate = 0\n" + limit)
    alice.wait_digest(600)
    # An older node, as far as digests go: hashing at its floor, it has
    # none for this file during the runs.
    dave = Peer(root, f"dave-{rate}", src, "hash_rate = 1048576\n" + limit)
    peers = {"alice": alice, "dave": dave}
    checked, trusted = [], []
    for run in range(RUNS):
        t, _ = download(root, peers, "alice", SIZE_VERIFY, "max_sources = 1\n")
        checked.append(t)
        if dave.item().get("sha256"):
            raise SystemExit("dave has a digest already: raise SIZE_VERIFY")
        t, _ = download(root, peers, "dave", SIZE_VERIFY, "max_sources = 1\n")
        trusted.append(t)
        say(f"run {run + 1}: verified {checked[-1]:.2f} s, not verified {trusted[-1]:.2f} s")
    alice.stop(); dave.stop()
    mb = SIZE_VERIFY / MIB
    uplink = "the peer's uplink %d MiB/s" % (rate // MIB) if rate else "no limit"
    report.append("| Download of a %d MiB file, %s%s | Median s | MiB/s | Runs (s) |" % (mb, uplink, " (downloader under " + RUNNER[0] + ")" if RUNNER else ""))
    report.append("|---|---|---|---|")
    report.append("| every piece and the file checked (the peer has the digest) | %.2f | %.1f | %s |" % (median(checked), mb / median(checked), " ".join("%.2f" % x for x in checked)))
    report.append("| not checked (the peer has no digest yet) | %.2f | %.1f | %s |" % (median(trusted), mb / median(trusted), " ".join("%.2f" % x for x in trusted)))
    report.append("")
    report.append("Throughput checked / not checked, medians: **%.2f**." % (median(trusted) / median(checked)))
    report.append("")
    os.remove(src)
    return report


if __name__ == "__main__":
    main()
