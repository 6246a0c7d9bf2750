#!/usr/bin/env python3
"""Builds jack's container image as an OCI archive: one image index (a
manifest list) over linux/amd64, linux/arm64 and linux/arm/v7.

Usage: scripts/oci-image.py OUT.oci.tar VERSION COMMIT EPOCH ARCH=ROOT...
  ARCH is amd64, arm64 or arm/v7; ROOT a folder laid out as the image's
  filesystem for that architecture (the binary at ROOT/jack). EPOCH is the
  commit's time: every date and file time, so the same inputs give the
  same bytes.

Every setting comes from the Containerfile beside this folder (FROM
scratch; COPY of a folder with ${TARGETARCH}${TARGETVARIANT}; USER, ENV,
VOLUME, EXPOSE, HEALTHCHECK, ENTRYPOINT, CMD, WORKDIR, LABEL, STOPSIGNAL),
so the Containerfile stays the one description of the image, and buildah
or docker build the same image from it by hand. This builder exists
because buildah writing an OCI image drops the HEALTHCHECK (it keeps it
only in Docker's format, which has no multi-architecture archive); here
the health check is kept in the config as BuildKit writes it, and read by
Docker. One layer per architecture, files owned by root unless the COPY
says --chown, modes as in ROOT.
"""
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PLATFORMS = {
    "amd64": {"architecture": "amd64", "os": "linux"},
    "arm64": {"architecture": "arm64", "os": "linux"},
    "arm/v7": {"architecture": "arm", "os": "linux", "variant": "v7"},
}
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def die(msg):
    sys.exit(f"oci-image: error: {msg}")


def duration_ns(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    if not m:
        die(f"duration {text!r}: want a number and ms, s, m or h")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}[unit]


def exec_form(text, what):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        die(f"{what} must be in exec form, a JSON list of strings: {text}")
    return value


def parse_containerfile(path):
    """The Containerfile's instructions this builder supports, as a dict."""
    spec = {"copies": [], "env": [], "labels": {}, "volumes": [], "ports": [], "history": []}
    lines, buf = [], ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append((buf + line).strip())
        buf = ""
    for line in lines:
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        spec["history"].append(line)
        if word == "FROM":
            if rest != "scratch":
                die("only FROM scratch is supported")
        elif word == "ARG":
            pass
        elif word == "COPY":
            parts = shlex.split(rest)
            opts = {}
            while parts and parts[0].startswith("--"):
                k, _, v = parts.pop(0)[2:].partition("=")
                opts[k] = v
            if len(parts) != 2:
                die(f"COPY takes one source folder and one destination: {line}")
            spec["copies"].append({"src": parts[0], "dst": parts[1], **opts})
        elif word == "USER":
            spec["user"] = rest
        elif word == "ENV":
            for pair in shlex.split(rest):
                k, _, v = pair.partition("=")
                spec["env"].append(f"{k}={v}")
        elif word == "VOLUME":
            spec["volumes"] += exec_form(rest, "VOLUME")
        elif word == "EXPOSE":
            for p in rest.split():
                spec["ports"].append(p if "/" in p else f"{p}/tcp")
        elif word == "HEALTHCHECK":
            hc = {}
            parts = rest.split(" ")
            while parts and parts[0].startswith("--"):
                k, _, v = parts.pop(0)[2:].partition("=")
                key = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                       "start-interval": "StartInterval", "retries": "Retries"}.get(k)
                if not key:
                    die(f"HEALTHCHECK option --{k} is not supported")
                hc[key] = int(v) if key == "Retries" else duration_ns(v)
            if not parts or parts[0] != "CMD":
                die("HEALTHCHECK needs CMD [...]")
            hc["Test"] = ["CMD"] + exec_form(" ".join(parts[1:]), "HEALTHCHECK CMD")
            spec["healthcheck"] = hc
        elif word == "ENTRYPOINT":
            spec["entrypoint"] = exec_form(rest, "ENTRYPOINT")
        elif word == "CMD":
            spec["cmd"] = exec_form(rest, "CMD")
        elif word == "WORKDIR":
            spec["workdir"] = rest
        elif word == "STOPSIGNAL":
            spec["stopsignal"] = rest
        elif word == "LABEL":
            for pair in shlex.split(rest):
                k, _, v = pair.partition("=")
                spec["labels"][k] = v
        else:
            die(f"instruction {word} is not supported by this builder")
    return spec


def layer_tar(spec, platform_key, rootfs, epoch):
    """The layer: every COPY's folder, sorted, with fixed times and owners."""
    arch = PLATFORMS[platform_key]
    subst = {"TARGETARCH": arch["architecture"], "TARGETVARIANT": arch.get("variant", ""),
             "TARGETOS": "linux", "TARGETPLATFORM": "linux/" + platform_key}
    entries = {}
    for copy in spec["copies"]:
        src = re.sub(r"\$\{(\w+)\}", lambda m: subst[m.group(1)], copy["src"])
        # The architecture's own folder is ROOT given on the command line;
        # any other source is a path in the repository.
        src_dir = rootfs if "${TARGET" in copy["src"] else os.path.join(ROOT, src)
        if not os.path.isdir(src_dir):
            die(f"COPY source {src_dir} is not a folder")
        uid, gid = (int(x) for x in copy.get("chown", "0:0").split(":"))
        dst = copy["dst"].strip("/")
        for dirpath, dirnames, filenames in os.walk(src_dir):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src_dir)
            for name in [None] + sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                full = dirpath if name is None else os.path.join(dirpath, name)
                path = os.path.normpath(os.path.join("/", dst, rel, name or "")).lstrip("/")
                if not path:
                    continue
                entries[path] = (full, uid, gid)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            full, uid, gid = entries[path]
            st = os.lstat(full)
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, uid, gid, "", ""
            info.mode = st.st_mode & 0o7777
            if os.path.islink(full):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
                tar.addfile(info)
            elif os.path.isdir(full):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = st.st_size
                with open(full, "rb") as f:
                    tar.addfile(info, f)
    return buf.getvalue()


def main():
    if len(sys.argv) < 6:
        die(__doc__.split("\n\n")[1])
    out, version, commit, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    roots = {}
    for arg in sys.argv[5:]:
        key, _, root = arg.partition("=")
        if key not in PLATFORMS:
            die(f"architecture {key!r}: want one of {', '.join(PLATFORMS)}")
        roots[key] = root
    spec = parse_containerfile(os.path.join(ROOT, "Containerfile"))
    created = __import__("datetime").datetime.fromtimestamp(epoch, __import__("datetime").timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    blobs = {}

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest, len(data)

    labels = dict(spec["labels"])
    labels.update({"org.opencontainers.image.version": version,
                   "org.opencontainers.image.revision": commit,
                   "org.opencontainers.image.created": created})
    manifests = []
    last_copy = max(i for i, line in enumerate(spec["history"]) if line.startswith("COPY"))
    singles = []
    for key, rootfs in roots.items():
        tar = layer_tar(spec, key, rootfs, epoch)
        gz = io.BytesIO()
        with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=9, mtime=0, filename="") as g:
            g.write(tar)
        layer_digest, layer_size = blob(gz.getvalue())
        config = {"Env": spec["env"], "Labels": labels}
        for field, name in [("user", "User"), ("entrypoint", "Entrypoint"), ("cmd", "Cmd"),
                            ("workdir", "WorkingDir"), ("stopsignal", "StopSignal"),
                            ("healthcheck", "Healthcheck")]:
            if field in spec:
                config[name] = spec[field]
        if spec["ports"]:
            config["ExposedPorts"] = {p: {} for p in spec["ports"]}
        if spec["volumes"]:
            config["Volumes"] = {v: {} for v in spec["volumes"]}
        image = {
            "created": created,
            **PLATFORMS[key],
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
            # One layer holds every COPY: the last COPY is its history
            # entry, every other line is empty (Docker's store refuses an
            # image whose non-empty history entries outnumber its layers).
            "history": [{"created": created, "created_by": line,
                         **({} if i == last_copy else {"empty_layer": True})}
                        for i, line in enumerate(spec["history"])],
        }
        config_digest, config_size = blob(json.dumps(image, sort_keys=True, separators=(",", ":")).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": layer_size}],
            "annotations": {"org.opencontainers.image.created": created},
        }
        m_digest, m_size = blob(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
        manifests.append({"mediaType": MT_MANIFEST, "digest": m_digest, "size": m_size,
                          "platform": PLATFORMS[key]})
        singles.append((key, config_digest, layer_digest, m_digest, m_size))
        print(f"{key}: layer {layer_size} bytes compressed, {len(tar)} unpacked", file=sys.stderr)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    i_digest, i_size = blob(json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
    top = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_INDEX, "digest": i_digest, "size": i_size,
        "annotations": {
            # podman load / skopeo: the name; docker load: its own key.
            "org.opencontainers.image.ref.name": "jack:latest",
            "io.containerd.image.name": "docker.io/library/jack:latest",
        }}]}
    write_archive(out, top, blobs, epoch)
    print(f"wrote {out} (index {i_digest})", file=sys.stderr)
    # One archive per architecture for `docker load` (Docker's classic image
    # store reads manifest.json, as `docker save` writes it; it cannot load a
    # multi-architecture index): the same blobs, its own index and the
    # manifest.json naming the config, the layer and the tag.
    for key, config_digest, layer_digest, m_digest, m_size in singles:
        name = key.replace("/", "")
        own = {d: blobs[d] for d in (config_digest, layer_digest, m_digest)}
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
            "mediaType": MT_MANIFEST, "digest": m_digest, "size": m_size, "platform": PLATFORMS[key],
            "annotations": {"org.opencontainers.image.ref.name": "latest",
                            "io.containerd.image.name": "docker.io/library/jack:latest"}}]}
        docker = [{"Config": "blobs/sha256/" + config_digest.split(":", 1)[1],
                   "RepoTags": ["jack:latest"],
                   "Layers": ["blobs/sha256/" + layer_digest.split(":", 1)[1]]}]
        path = out.replace("-image.oci.tar", f"-image-{name}.docker.tar")
        write_archive(path, index, own, epoch, docker)
        print(f"wrote {path} (docker load, {key})", file=sys.stderr)


def write_archive(out, index, blobs, epoch, docker=None):
    """An OCI image layout as a tar (and Docker's manifest.json when given),
    every time `epoch`, entries sorted: the same inputs, the same bytes."""
    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             ("index.json", json.dumps(index, sort_keys=True, separators=(",", ":")).encode())]
    if docker is not None:
        files.append(("manifest.json", json.dumps(docker, sort_keys=True, separators=(",", ":")).encode()))
    dirs = ["blobs", "blobs/sha256"]
    files += [("blobs/sha256/" + d.split(":", 1)[1], data) for d, data in sorted(blobs.items())]
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, epoch
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
