#!/usr/bin/env bash
# make check-image: the container image tested without a container runtime
# (crun cannot set rlimits on these machines), as a runtime would run it.
#  1. The archive: every blob's sha256 and size, one index over linux/amd64,
#     linux/arm64 and linux/arm/v7; skopeo (when it is installed or
#     installable) copies it whole, checking every digest again.
#  2. Each architecture's config: a user that is not root, VOLUME /config
#     and /data, port 5225, the health check ["/jack", "ping"], the
#     entrypoint and command, JACK_CONFIG.
#  3. Each architecture's layer unpacked into a root filesystem, and its
#     entrypoint + command run in it as uid 1234 gid 5678 (not the image's
#     1000: any --user must work) with chroot, in a private mount and
#     network namespace (so the default's 0.0.0.0:5225 is bound on that
#     namespace's own loopback only), temporary /config and /data
#     bind-mounted, /dev and /proc as a runtime gives them; arm64 and armv7
#     under qemu-user, bind-mounted into the root. It must: write the
#     default /config/jack.toml (mode 0600, that owner) on first start and
#     say so, listen, create the registry in /config, find /data's
#     incomplete and completed folders linkable (`hand-off mode=link`),
#     pass the image's own health check, and answer `jack ping --url`.
#     Then SIGTERM ends it within 10 s.
# Needs root (namespaces, chroot). Usage: scripts/check-image.sh [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
image=${1:-dist/jack-$version-image.oci.tar}
[ -f "$image" ] || { echo "error: no $image (make image)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: check-image needs root (namespaces and chroot)" >&2; exit 1; }
# By its path: the node starts under `env -i`, with no PATH.
chroot=$(command -v chroot) || { echo "error: check-image needs chroot (coreutils)" >&2; exit 1; }
./scripts/ensure-tools.sh python3 file qemu-aarch64 qemu-arm unshare nsenter ip
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    sleep 0.2
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-image: FAIL: $*" >&2; exit 1; }

# 1 and 2: the archive, its index and each configuration (python: digests).
mkdir "$work/oci"
tar -xf "$image" -C "$work/oci"
python3 - "$work/oci" "$work" <<'PY' || fail "archive or metadata (above)"
import hashlib, json, os, sys
oci, work = sys.argv[1], sys.argv[2]
def blob(d, size=None):
    path = os.path.join(oci, "blobs", *d.split(":"))
    data = open(path, "rb").read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == d, f"digest of {d}"
    assert size is None or len(data) == size, f"size of {d}"
    return data
top = json.load(open(os.path.join(oci, "index.json")))
assert json.load(open(os.path.join(oci, "oci-layout")))["imageLayoutVersion"] == "1.0.0"
[entry] = top["manifests"]
assert entry["mediaType"] == "application/vnd.oci.image.index.v1+json"
index = json.loads(blob(entry["digest"], entry["size"]))
plats = {}
for m in index["manifests"]:
    p = m["platform"]
    key = p["os"] + "/" + p["architecture"] + ("/" + p["variant"] if "variant" in p else "")
    manifest = json.loads(blob(m["digest"], m["size"]))
    config = json.loads(blob(manifest["config"]["digest"], manifest["config"]["size"]))
    assert (config["os"], config["architecture"], config.get("variant")) == (p["os"], p["architecture"], p.get("variant")), key
    [layer] = manifest["layers"]
    built = [h for h in config["history"] if not h.get("empty_layer")]
    assert len(built) == 1, f"{key}: {len(built)} non-empty history entries for one layer"
    blob(layer["digest"], layer["size"])
    plats[key] = (config, layer)
assert sorted(plats) == ["linux/amd64", "linux/arm/v7", "linux/arm64"], sorted(plats)
for key, (config, layer) in plats.items():
    c = config["config"]
    user = c.get("User", "")
    assert user and user.split(":")[0] not in ("", "0", "root"), f"{key}: user {user!r}"
    assert sorted(c["Volumes"]) == ["/config", "/data"], c["Volumes"]
    assert "5225/tcp" in c["ExposedPorts"], c["ExposedPorts"]
    assert c["Healthcheck"]["Test"] == ["CMD", "/jack", "ping"], c["Healthcheck"]
    assert c["Entrypoint"] == ["/jack"] and c["Cmd"] == ["run", "--init"], (c["Entrypoint"], c["Cmd"])
    assert "JACK_CONFIG=/config/jack.toml" in c["Env"], c["Env"]
    name = key.replace("linux/", "").replace("/", "")
    os.makedirs(os.path.join(work, name))
    os.symlink(os.path.join(oci, "blobs", *layer["digest"].split(":")), os.path.join(work, name, "layer.tar.gz"))
    json.dump({"argv": c["Entrypoint"] + c["Cmd"], "health": c["Healthcheck"]["Test"][1:],
               "env": c["Env"], "user": user}, open(os.path.join(work, name, "run.json"), "w"))
    print(f"ok: {key}: user {user}, volumes, port 5225, health check, entrypoint")
PY
# Docker's classic store (docker load): one archive per architecture with
# the manifest.json `docker save` writes, each blob by its digest, the layer
# decompressing to the config's diff_id, and as many non-empty history
# entries as layers (the store refuses an image otherwise).
python3 - "${image%.oci.tar}" <<'PY' || fail "docker load archives (above)"
import gzip, hashlib, io, json, sys, tarfile
stem = sys.argv[1]
want = {"amd64": ("amd64", None), "arm64": ("arm64", None), "armv7": ("arm", "v7")}
for name, (arch, variant) in want.items():
    path = f"{stem}-{name}.docker.tar"
    with tarfile.open(path) as tar:
        read = lambda member: tar.extractfile(member).read()
        [entry] = json.loads(read("manifest.json"))
        assert entry["RepoTags"] == ["jack:latest"], entry
        config_bytes = read(entry["Config"])
        assert hashlib.sha256(config_bytes).hexdigest() == entry["Config"].rsplit("/", 1)[1], "config digest"
        config = json.loads(config_bytes)
        assert (config["architecture"], config.get("variant")) == (arch, variant), (name, config["architecture"])
        layers = entry["Layers"]
        assert len(layers) == len(config["rootfs"]["diff_ids"]), "layers and diff_ids"
        built = [h for h in config["history"] if not h.get("empty_layer")]
        assert len(built) == len(layers), f"{len(built)} non-empty history entries for {len(layers)} layers"
        for layer, diff_id in zip(layers, config["rootfs"]["diff_ids"]):
            data = read(layer)
            assert hashlib.sha256(data).hexdigest() == layer.rsplit("/", 1)[1], "layer digest"
            assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == diff_id, "diff_id"
        index = json.loads(read("index.json"))
        [m] = index["manifests"]
        assert m["annotations"]["io.containerd.image.name"] == "docker.io/library/jack:latest"
    print(f"ok: {path}: docker load's manifest.json, digests, diff_id, history")
PY

if ./scripts/ensure-tools.sh skopeo 2>/dev/null; then
    skopeo copy --quiet --all "oci-archive:$image" "oci:$work/copied:jack" || fail "skopeo cannot copy $image"
    echo "ok: skopeo copies the archive, every architecture"
    for a in amd64 arm64 armv7; do
        skopeo copy --quiet "docker-archive:${image%.oci.tar}-$a.docker.tar" "oci:$work/copied:$a" \
            || fail "skopeo cannot read the docker archive of $a"
    done
    echo "ok: skopeo reads each docker load archive"
else
    echo "note: skopeo is not installable here; the digests were checked above" >&2
fi

declare -A emulator=([amd64]="" [arm64]=/usr/bin/qemu-aarch64 [armv7]=/usr/bin/qemu-arm)
for arch in amd64 arm64 armv7; do
    d=$work/$arch
    root=$d/rootfs
    mkdir -p "$root" "$d/config" "$d/data"
    tar --numeric-owner -xpzf "$d/layer.tar.gz" -C "$root"
    case $arch in
        armv7) file -b "$root/jack" | grep -q "ARM, EABI5.*interpreter /lib/ld-linux-armhf.so.3" \
                   && [ -e "$root/lib/ld-linux-armhf.so.3" ] || fail "armv7: /jack or its loader" ;;
        *) file -b "$root/jack" | grep -q "statically linked" || fail "$arch: /jack is not static: $(file -b "$root/jack")" ;;
    esac
    [ "$(stat -c %a "$root/tmp")" = 1777 ] || fail "$arch: /tmp is not 1777"
    chown 1234:5678 "$d/config" "$d/data"
    read -r -a argv < <(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["argv"]))' "$d/run.json")
    read -r -a health < <(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["health"]))' "$d/run.json")
    read -r -a env < <(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["env"]))' "$d/run.json")
    emu=${emulator[$arch]}
    inner=()
    [ -z "$emu" ] || inner=(/qemu)
    # The runtime's part: mounts in a private namespace (the root read-only,
    # as the shipped compose file asks), then the entrypoint
    # as uid 1234 gid 5678 in the root. Everything after `exec` keeps the
    # pid, so $! is the node.
    unshare -m -n --propagation private bash -c '
        set -e
        root=$1 d=$2 emu=$3; shift 3
        ip link set lo up
        mkdir -p "$root/dev" "$root/proc"
        libs=()
        if [ -n "$emu" ]; then
            touch "$root/qemu"
            for lib in /lib64 /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do
                [ -d "$lib" ] || continue
                mkdir -p "$root$lib"; libs+=("$lib")
            done
        fi
        # As contrib/docker-compose.yml runs it: a read-only root
        # (read_only: true) with a tmpfs on /tmp, the two volumes writable.
        mount --bind "$root" "$root"
        mount -o remount,bind,ro "$root"
        mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
        mount --bind "$d/config" "$root/config"
        mount --bind "$d/data" "$root/data"
        mount --rbind /dev "$root/dev"
        mount -t proc proc "$root/proc"
        if [ -n "$emu" ]; then
            mount --bind "$emu" "$root/qemu"
            for lib in "${libs[@]}"; do mount --bind "$lib" "$root$lib"; done
        fi
        exec env -i "$@"
    ' _ "$root" "$d" "$emu" "${env[@]}" "$chroot" --userspec=1234:5678 --groups=5678 "$root" \
        "${inner[@]}" "${argv[@]}" >"$d/log" 2>&1 &
    pid=$!
    pids+=("$pid")
    in_node() { nsenter -t "$pid" -m -n env -i "${env[@]}" "$chroot" --userspec=1234:5678 --groups=5678 "$root" "${inner[@]}" "$@"; }
    for _ in $(seq 1 300); do
        grep -q "listening addr=" "$d/log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$d/log" >&2; fail "$arch: the entrypoint ended"; }
        sleep 0.1
    done
    grep -q "listening addr=0.0.0.0:5225" "$d/log" || { cat "$d/log" >&2; fail "$arch: not listening within 30 s"; }
    grep -q "first start: no configuration was at /config/jack.toml, so jack wrote a default one" "$d/log" \
        || { cat "$d/log" >&2; fail "$arch: no first-start line"; }
    grep -q "first start: edit /config/jack.toml" "$d/log" || fail "$arch: no 'edit' line"
    [ "$(stat -c '%a %u:%g' "$d/config/jack.toml")" = "600 1234:5678" ] \
        || fail "$arch: jack.toml is $(stat -c '%a %u:%g' "$d/config/jack.toml")"
    [ -f "$d/config/jack.db" ] || fail "$arch: no registry in /config"
    [ -d "$d/data/media/movies" ] && [ -d "$d/data/jack/completed" ] || fail "$arch: no folders in /data"
    grep -q "hand-off mode=link" "$d/log" || { cat "$d/log" >&2; fail "$arch: /data's hand-off is not a hard link"; }
    ! grep -q "$(sed -n 's/^api_key = "\(.*\)"$/\1/p' "$d/config/jack.toml")" "$d/log" || fail "$arch: the key is in the log"
    out=$(in_node "${health[@]}") || fail "$arch: the health check failed: $out"
    echo "$out" | grep -q "^ok: the node answers at http://127.0.0.1:5225/ping" || fail "$arch: health check said: $out"
    out=$(in_node /jack ping --url http://127.0.0.1:5225) || fail "$arch: jack ping --url failed: $out"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null || fail "$arch: still running 10 s after SIGTERM"
    # Stopped: its own health check now fails, plainly (no shell in the image to ask).
    echo "ok: $arch: first start as 1234:5678 wrote /config/jack.toml (0600) and /config/jack.db, hand-off by hard link in /data, health check and jack ping answered, stopped on SIGTERM"
done
echo "check-image: all passed ($image)"
