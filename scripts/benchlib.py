"""Shared by the Python parts of the bench-*.sh scripts (imported, not run):
a free port on 127.0.0.1, a jack process whose log lines are collected, the
search of a serving node, a stub for one of its items, and two bind mounts
of one filesystem (which cannot be linked across: the copy hand-off)."""
import json, os, re, socket, sqlite3, subprocess, threading, time, urllib.request, uuid


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class Node:
    """`jack --config CFG`, its stderr lines kept with their arrival time."""

    def __init__(self, binary, cfg):
        self.lines = []
        self.p = subprocess.Popen([binary, "--config", cfg], stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "JACK_LOG": ""})
        self.t0 = time.monotonic()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for l in self.p.stderr: self.lines.append((time.monotonic(), l))

    def wait_line(self, pat, timeout=30):
        """The arrival time and match of the first line matching `pat`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, l in list(self.lines):
                m = re.search(pat, l)
                if m: return t, m
            time.sleep(0.002)
        raise SystemExit(f"no log line {pat!r}:\n" + "".join(l for _, l in self.lines))


def write_node_config(d, port, key, library, extra=""):
    """A node's jack.toml in `d` (registry and download folders there,
    one movie library at `library`), with `extra` TOML after it; its path."""
    cfg = os.path.join(d, "jack.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
api_key = "{key}"
[database]
path = "{d}/jack.db"
[[library]]
name = "movies"
path = "{library}"
category = "movies"
[downloads]
watch_dir = "{d}/watch"
incomplete_dir = "{d}/incomplete"
completed_dir = "{d}/completed"
""" + extra)
    return cfg


def first_item(port, key="bench"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/peer/search", headers={"X-Api-Key": key})
    return json.load(urllib.request.urlopen(req))["items"][0]


def stub(peer, item, size):
    """The stub .torrent bytes (PROTOCOL.md §3) for `item` of `peer`."""
    c = (f"jack:{peer}:" + item["id"]).encode(); t = item["title"].encode(); n = -(-size // 16777216)
    return (b"d7:comment%d:" % len(c)) + c + (b"4:infod6:lengthi%de4:name%d:" % (size, len(t))) + t + \
           (b"12:piece lengthi16777216e6:pieces%d:" % (20 * n)) + b"\0" * (20 * n) + b"ee"


def drop_stub(watch, data):
    os.makedirs(watch, exist_ok=True)
    tmp = os.path.join(watch, ".s.tmp"); open(tmp, "wb").write(data); os.rename(tmp, os.path.join(watch, "s.torrent"))


def bind_mounts(root):
    """root/data/{incomplete,completed} as bind mounts of root/volume/...:
    link(2) and rename(2) across them fail with EXDEV although st_dev is
    equal. Call inside a private mount namespace (unshare -m)."""
    for sub in ("incomplete", "completed"):
        real, seen = os.path.join(root, "volume", sub), os.path.join(root, "data", sub)
        os.makedirs(real); os.makedirs(seen)
        subprocess.run(["mount", "--bind", real, seen], check=True)


def unmount(root):
    for sub in ("incomplete", "completed"):
        subprocess.run(["umount", os.path.join(root, "data", sub)], check=True)


def fill_registry(d, rows, stub_prefix="", category=False):
    """`rows` downloads in the registry of the stopped node in `d`: nine in
    ten completed, the rest failed halfway (`peer answered 404`); with
    `category`, alternately radarr and sonarr."""
    db = sqlite3.connect(os.path.join(d, "data/jack.db"))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = []
    for i in range(rows):
        h = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        done = i % 10 != 0
        title = f"Some.Movie.Title.{i}.2024.1080p.BluRay.x264-GRP"
        data.append((f"{stub_prefix}{title}.torrent", h, "alice", f"movies:movie:{i:08x}", title, title + ".mkv",
                     os.path.join(d, f"data/incomplete/{h}.part"), os.path.join(d, f"data/completed/{title}.mkv"),
                     8_000_000_000 + i, 8_000_000_000 + i if done else 4_000_000_000,
                     "completed" if done else "failed", None if done else "peer answered 404",
                     now, now, now if done else None) + (("radarr" if i % 2 else "sonarr",) if category else ()))
    cols = ("stub_name, info_hash, peer, item_id, title, file_name, part_path, dest_path, expected_bytes, "
            "downloaded_bytes, status, error, created_at, updated_at, completed_at" + (", category" if category else ""))
    db.executemany(f"INSERT INTO downloads ({cols}) VALUES ({', '.join('?' * len(data[0]))})", data)
    db.commit(); db.close()
