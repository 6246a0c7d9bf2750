"""Shared by the Python parts of the bench-*.sh scripts (imported, not run):
a free port on 127.0.0.1, a jack process whose log lines are collected, the
search of a serving node, a stub for one of its items, and two bind mounts
of one filesystem (which cannot be linked across: the copy hand-off)."""
import json, os, re, socket, subprocess, threading, time, urllib.request


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
