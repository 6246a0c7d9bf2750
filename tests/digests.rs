//! Content digests on the serving side (`PROTOCOL.md` §2.6, "Serving"),
//! against the real binary: `Release.sha256`, `Repr-Digest` and
//! `/peer/items/{id}/pieces` equal to Python's `hashlib` over the file,
//! offered only for the exact version served (none before the hasher read
//! it, none of an old version after a same-size, same-mtime replacement),
//! kept across a restart without reading again, the hasher waiting while a
//! friend is sent a file, its rate cap, its idle priority, and a bad
//! `hash_rate` named by `check-config`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{KEY, Site, emulated, enc, item_id, pattern, request, serving_site, wait_for};

const MIB: usize = 1 << 20;

fn auth() -> Vec<(&'static str, &'static str)> {
    vec![("X-Api-Key", KEY)]
}

/// What Python's hashlib says of `path`: whole-file hex, its base64, and
/// each 16 MiB piece's hex.
struct Hashlib {
    hex: String,
    base64: String,
    pieces: Vec<String>,
}

fn hashlib(path: &Path) -> Hashlib {
    let script = "import hashlib, base64, sys\n\
        d = open(sys.argv[1], 'rb').read()\n\
        h = hashlib.sha256(d)\n\
        print(h.hexdigest())\n\
        print(base64.b64encode(h.digest()).decode())\n\
        P = 16 * 1024 * 1024\n\
        print(' '.join(hashlib.sha256(d[i:i + P]).hexdigest() for i in range(0, len(d), P)))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    Hashlib {
        hex: lines.next().unwrap().to_string(),
        base64: lines.next().unwrap().to_string(),
        pieces: lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    }
}

fn json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let r = request(addr, "GET", path, &auth());
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

/// `Release.sha256` of `id` from `/peer/items/{id}`.
fn item_sha256(addr: SocketAddr, id: &str) -> Option<String> {
    let (status, v) = json(addr, &format!("/peer/items/{}", enc(id)));
    assert_eq!(status, 200, "{v}");
    v["sha256"].as_str().map(str::to_string)
}

/// `Release.sha256` of `id` in the whole `/peer/search` listing, and the
/// ETag listed with it.
fn search_sha256(addr: SocketAddr, id: &str) -> (Option<String>, String) {
    let (_, v) = json(addr, "/peer/search");
    let item = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap();
    let etag = item["etag"].as_str().unwrap().to_string();
    (item["sha256"].as_str().map(str::to_string), etag)
}

/// The `Repr-Digest` of a file answer, and its status.
fn repr_digest(
    addr: SocketAddr,
    id: &str,
    method: &str,
    range: Option<&str>,
) -> (u16, Option<String>) {
    let mut h = auth();
    if let Some(r) = range {
        h.push(("Range", r));
    }
    let r = request(addr, method, &format!("/peer/items/{}/file", enc(id)), &h);
    (r.status, r.header("Repr-Digest"))
}

/// A `/metrics` counter of the node.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let r = request(addr, "GET", "/metrics", &auth());
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// How long the hasher may take to get to a small file: a scan, its look
/// at the catalogue (once a second) and a debug build's read.
fn soon() -> Duration {
    Duration::from_secs(if emulated() { 120 } else { 30 })
}

fn wait_digest(addr: SocketAddr, id: &str) -> String {
    let mut got = None;
    wait_for("the file's digest", soon(), || {
        got = item_sha256(addr, id);
        got.is_some()
    });
    got.unwrap()
}

#[test]
fn digests_equal_hashlib_on_every_answer_and_in_the_pieces_document() {
    let name = "Big.Buck.2008.1080p.mkv";
    let data = pattern(33 * MIB + 5);
    let (site, node) = serving_site("hash_rate = 0", &[(name, &data)]);
    let path = site.path().join("media/movies").join(name);
    let want = hashlib(&path);
    assert_eq!(want.pieces.len(), 3);
    let id = item_id(node.addr, name);
    assert_eq!(wait_digest(node.addr, &id), want.hex);
    assert_eq!(search_sha256(node.addr, &id).0.as_deref(), Some(&*want.hex));
    let field = format!("sha-256=:{}:", want.base64);
    for (method, range, status) in [
        ("GET", None, 200),
        ("GET", Some("bytes=16777000-16778000"), 206),
        ("GET", Some("bytes=-5"), 206),
        ("HEAD", None, 200),
    ] {
        let (got_status, digest) = repr_digest(node.addr, &id, method, range);
        assert_eq!(got_status, status, "{method} {range:?}");
        assert_eq!(digest.as_deref(), Some(&*field), "{method} {range:?}");
    }
    // Not on answers without the representation.
    let (s, digest) = repr_digest(node.addr, &id, "GET", Some("bytes=99999999-"));
    assert_eq!((s, digest), (416, None));
    let (status, v) = json(node.addr, &format!("/peer/items/{}/pieces", enc(&id)));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["size"], data.len());
    assert_eq!(v["pieceSize"], 16 * MIB);
    assert_eq!(v["sha256"], want.hex);
    assert_eq!(v["pieces"], serde_json::json!(want.pieces));
    let (_, item) = json(node.addr, &format!("/peer/items/{}", enc(&id)));
    assert_eq!(
        v["etag"], item["etag"],
        "the version the file endpoint serves"
    );
    let r = request(
        node.addr,
        "GET",
        &format!("/peer/items/{}/pieces", enc(&id)),
        &auth(),
    );
    assert_eq!(r.header("Cache-Control").as_deref(), Some("private"));
    // The peer key, as every /peer route; an unknown item is 404.
    let r = request(
        node.addr,
        "GET",
        &format!("/peer/items/{}/pieces", enc(&id)),
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        json(
            node.addr,
            "/peer/items/movies%3Amovie%3A0000000000000000/pieces"
        )
        .0,
        404
    );
    let (_, hs) = json(node.addr, "/handshake");
    assert!(
        hs["features"]
            .as_array()
            .unwrap()
            .contains(&"sha256".into()),
        "{hs}"
    );
    assert_eq!(metric(node.addr, "jack_hashed_files_total"), 1);
    assert_eq!(
        metric(node.addr, "jack_hashed_bytes_total"),
        data.len() as u64
    );
}

/// No digest of a version before the hasher read it, at `hash_rate` 1 MiB/s
/// (a 4 MiB file takes four seconds), and never an old version's after the
/// file is replaced at the same size and modification time: rewritten in
/// place (`cp -p` over it: same inode) or by a new file renamed over it.
#[test]
fn a_digest_is_offered_only_for_the_version_it_was_made_of() {
    let name = "Replaced.2011.720p.mkv";
    let first = pattern(4 * MIB);
    let started = Instant::now();
    let (site, node) = serving_site(
        "hash_rate = 1048576\nlibrary_rescan_secs = 1",
        &[(name, &first)],
    );
    let path = site.path().join("media/movies").join(name);
    let id = item_id(node.addr, name);
    let pieces_url = format!("/peer/items/{}/pieces", enc(&id));
    let none_yet = |why: &str| {
        assert_eq!(item_sha256(node.addr, &id), None, "{why}");
        // The search lists the last scan's version: a digest there is
        // that version's, never the current one's before it is read.
        let (_, item) = json(node.addr, &format!("/peer/items/{}", enc(&id)));
        let (listed, listed_etag) = search_sha256(node.addr, &id);
        if listed_etag == item["etag"] {
            assert_eq!(listed, None, "{why}");
        }
        assert_eq!(
            repr_digest(node.addr, &id, "GET", None),
            (200, None),
            "{why}"
        );
        assert_eq!(
            repr_digest(node.addr, &id, "HEAD", None),
            (200, None),
            "{why}"
        );
        let (status, v) = json(node.addr, &pieces_url);
        assert_eq!(status, 404, "{why}: {v}");
        assert_eq!(v["error"]["code"], "NOT_FOUND");
    };
    none_yet("before the hasher read it");
    let digest = wait_digest(node.addr, &id);
    assert_eq!(digest, hashlib(&path).hex);
    // The rate cap holds, roughly: 4 MiB at 1 MiB/s is not read in 3 s.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let mut data = pattern(4 * MIB);
    for (round, how) in ["in place", "renamed over"].iter().enumerate() {
        let before = std::fs::metadata(&path).unwrap();
        data[round * 1000] ^= 0xff;
        match *how {
            "in place" => {
                let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all(&data).unwrap();
            }
            _ => {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &data).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
        }
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (after.len(), after.modified().unwrap()),
            (before.len(), before.modified().unwrap())
        );
        none_yet(how);
        let new = wait_digest(node.addr, &id);
        assert_eq!(new, hashlib(&path).hex, "{how}");
        assert_ne!(new, digest, "{how}");
        let (_, field) = repr_digest(node.addr, &id, "GET", None);
        assert!(field.is_some(), "{how}");
    }
}

#[test]
fn digests_survive_a_restart_without_reading_the_files_again() {
    let name = "Kept.2012.1080p.mkv";
    let data = pattern(3 * MIB + 7);
    let (site, mut node) = serving_site("hash_rate = 0", &[(name, &data)]);
    let id = item_id(node.addr, name);
    let digest = wait_digest(node.addr, &id);
    assert_eq!(metric(node.addr, "jack_hashed_files_total"), 1);
    node.stop_gracefully("SIGTERM");
    let again = site.start();
    again.wait_log("catalogue scanned", Duration::from_secs(10));
    assert_eq!(wait_digest(again.addr, &id), digest);
    let (_, field) = repr_digest(again.addr, &id, "GET", Some("bytes=0-0"));
    assert!(field.is_some());
    assert_eq!(metric(again.addr, "jack_hashed_files_total"), 0);
    assert_eq!(metric(again.addr, "jack_hashed_bytes_total"), 0);
}

/// Opens a file body and reads only its head: the stream stays in flight
/// (its socket buffers full) until dropped.
fn hold_a_stream(addr: SocketAddr, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /peer/items/{}/file HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n\r\n",
        enc(id)
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = s.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    s
}

#[test]
fn hashing_waits_while_a_friend_is_sent_a_file() {
    let served = "Served.2013.1080p.mkv";
    let (site, node) = serving_site(
        "hash_rate = 0\nlibrary_rescan_secs = 1\nmin_send_rate = 0",
        &[(served, &pattern(64 * MIB))],
    );
    let id = item_id(node.addr, served);
    wait_digest(node.addr, &id);
    let hashed = metric(node.addr, "jack_hashed_bytes_total");
    let stream = hold_a_stream(node.addr, &id);
    let fresh = "Fresh.2014.1080p.mkv";
    let data = pattern(2 * MIB + 3);
    std::fs::write(site.path().join("media/movies").join(fresh), &data).unwrap();
    let mut fresh_id = None;
    wait_for("the new file in the catalogue", soon(), || {
        let (_, v) = json(node.addr, "/peer/search");
        fresh_id = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["filename"] == fresh)
            .map(|i| i["id"].as_str().unwrap().to_string());
        fresh_id.is_some()
    });
    let fresh_id = fresh_id.unwrap();
    // Two more passes' worth of time: not one byte read meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(node.addr, "jack_hashed_bytes_total"), hashed);
    assert_eq!(item_sha256(node.addr, &fresh_id), None);
    drop(stream);
    let digest = wait_digest(node.addr, &fresh_id);
    assert_eq!(
        digest,
        hashlib(&site.path().join("media/movies").join(fresh)).hex
    );
    assert_eq!(
        metric(node.addr, "jack_hashed_bytes_total"),
        hashed + data.len() as u64
    );
}

#[test]
fn the_hasher_thread_runs_at_idle_priority_and_stops_at_once() {
    let data = pattern(40 * MIB);
    let (_site, mut node) = serving_site("hash_rate = 1048576", &[("Slow.2015.mkv", &data)]);
    let id = item_id(node.addr, "Slow.2015.mkv");
    wait_for("the hasher reading", soon(), || {
        metric(node.addr, "jack_hashed_bytes_total") > 0
    });
    let tasks = format!("/proc/{}/task", node.pid());
    let policy = std::fs::read_dir(&tasks).unwrap().flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        (comm.trim() == "hasher").then(|| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
            // Field 41 (policy), counted after the parenthesized name.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(38).unwrap().to_string()
        })
    });
    if !emulated() {
        assert_eq!(policy.as_deref(), Some("5"), "SCHED_IDLE");
    }
    assert_eq!(item_sha256(node.addr, &id), None, "40 s of reading to go");
    // A stop is looked at between two reads, whatever the rate cap.
    let took = node.stop_gracefully("SIGTERM");
    let limit = Duration::from_secs(if emulated() { 4 } else { 2 });
    assert!(took < limit, "{took:?}");
}

#[test]
fn check_config_names_a_bad_hash_rate() {
    for (value, says) in [
        ("1000", "at least 1048576"),
        ("-1", "server.hash_rate"),
        ("\"fast\"", "server.hash_rate"),
    ] {
        let site = Site::new(&format!("hash_rate = {value}\n"));
        let out = site.run_cli(&["check-config"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {err}");
        assert!(err.contains("server.hash_rate"), "{value}: {err}");
        assert!(err.contains(says), "{value}: {err}");
    }
    let site = Site::new("hash_rate = 0\n");
    let out = site.run_cli(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hash_rate = 0"));
}
