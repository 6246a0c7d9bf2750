"""What an idle node costs (BENCHMARKS.md, "A node no one can knock
over"): each binary given on the command line runs on its own throw-away
configuration (an empty library, no downloads); after 5 s to settle, its
CPU (all threads' run time from /proc/<pid>/task/*/schedstat) and its
context switches (voluntary and not) are read over SECONDS (default 30),
and each thread that woke is listed. Binaries run one after the other.
Usage: python3 scripts/bench_idle.py [--seconds N] BINARY..."""
import os, sys, tempfile, time

sys.path.insert(0, "scripts")
from benchlib import Node, free_port, write_node_config

args = sys.argv[1:]
seconds = 30
if args[:1] == ["--seconds"]:
    seconds, args = int(args[1]), args[2:]


def sample(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            ns = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            sw = sum(int(l.split()[1]) for l in open(f"/proc/{pid}/task/{tid}/status")
                     if "ctxt_switches" in l)
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        except FileNotFoundError:
            continue
        out[tid] = (name, ns, sw)
    return out


print(f"| Binary | CPU ms a minute | wake-ups a second | threads that woke (a second) |")
print("|---|---|---|---|")
for binary in args:
    d = tempfile.mkdtemp(prefix="jack-idle-")
    os.makedirs(f"{d}/lib")
    cfg = write_node_config(d, free_port(), "bench-idle-key-0123456789abcdef", f"{d}/lib")
    node = Node(os.path.abspath(binary), cfg)
    try:
        time.sleep(5)
        a = sample(node.p.pid)
        time.sleep(seconds)
        b = sample(node.p.pid)
    finally:
        node.p.terminate()
        node.p.wait(timeout=15)
    ns = sum(v[1] - a.get(t, (0, 0, 0))[1] for t, v in b.items())
    sw = sum(v[2] - a.get(t, (0, 0, 0))[2] for t, v in b.items())
    woke = {}
    for t, v in b.items():
        n = v[2] - a.get(t, (0, 0, 0))[2]
        if n:
            woke[v[0]] = woke.get(v[0], 0) + n
    who = ", ".join(f"{k} {n / seconds:.1f}" for k, n in sorted(woke.items(), key=lambda x: -x[1]))
    print(f"| {binary} | {ns / 1e6 * 60 / seconds:.1f} | {sw / seconds:.1f} | {who} |", flush=True)
