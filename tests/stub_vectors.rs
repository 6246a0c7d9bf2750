//! `stub::build` against an independent implementation of PROTOCOL.md §3:
//! a dozen-line bencoder and `hashlib.sha1` in Python, written here from
//! the spec (dictionaries sorted by the keys' bytes, 20 zero bytes per
//! started 16 MiB piece), run as `python3`. The bytes and the info-hash
//! Radarr/Sonarr compute must match exactly.

use std::io::Write;
use std::process::{Command, Stdio};

const MIB: u64 = 1024 * 1024;

const PYTHON: &str = r#"
import hashlib, json, sys

def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode("utf-8")
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    assert isinstance(v, dict)
    keys = sorted(v, key=lambda k: k.encode("utf-8"))
    return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in keys) + b"e"

piece = 16 * 1024 * 1024
for peer, item, title, size in json.load(sys.stdin):
    info = {"name": title, "pieces": b"\0" * (20 * -(-size // piece)),
            "piece length": piece, "length": size}
    stub = bencode({"info": info, "comment": "jack:" + peer + ":" + item})
    print(stub.hex(), hashlib.sha1(bencode(info)).hexdigest())
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (stub hex, info-hash) of each case, from Python.
fn python_vectors(cases: &[(&str, &str, &str, u64)]) -> Vec<(String, String)> {
    let mut child = Command::new("python3")
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (stub, hash) = l.split_once(' ').unwrap();
            (stub.to_string(), hash.to_string())
        })
        .collect()
}

#[test]
fn stubs_match_an_independent_encoder_byte_for_byte() {
    let cases: &[(&str, &str, &str, u64)] = &[
        // The example of PROTOCOL.md §2.2.
        (
            "alice",
            "lib1:movie:4f2a9c0d1e",
            "The.Matrix.1999.1080p.BluRay.x264-GRP",
            8_547_483_648,
        ),
        ("a", "x", "Zero", 0),
        ("a", "x", "One", 1),
        ("bob", "id", "T", 16 * MIB - 1),
        ("bob", "id", "T", 16 * MIB),
        ("bob", "id", "T", 16 * MIB + 1),
        (
            "carol_1",
            "tv:show:s01e01",
            "Amélie – 日本語 🎬",
            123_456_789,
        ),
        ("D-4", "a:b::c:", "Colons: in: the title", 42),
        ("p", "é/ü 1", "x", 5 * 1024 * MIB),
    ];
    let vectors = python_vectors(cases);
    assert_eq!(vectors.len(), cases.len());
    for (&(peer, item, title, size), (want_stub, want_hash)) in cases.iter().zip(&vectors) {
        let bytes = jack::stub::build(peer, item, title, size);
        assert_eq!(&hex(&bytes), want_stub, "{peer} {item} {title} {size}");
        assert_eq!(
            &jack::stub::info_hash(title, size),
            want_hash,
            "{title} {size}"
        );
        match jack::stub::parse(&bytes, u64::MAX) {
            Ok(stub) => {
                assert_eq!(&stub.info_hash, want_hash);
                assert_eq!(
                    (
                        stub.peer.as_str(),
                        stub.item_id.as_str(),
                        stub.title.as_str(),
                        stub.length
                    ),
                    (peer, item, title, size)
                );
            }
            // §3: pieces are empty at size 0, and a reader rejects length 0.
            Err(e) => {
                assert_eq!(size, 0, "{e}");
                assert!(bytes.ends_with(b"6:pieces0:ee"));
            }
        }
    }
}

#[test]
fn piece_boundaries_by_hand() {
    // Hand-checked: the stub's tail is `6:pieces<20*n>:` and n zero runs.
    for (size, pieces) in [
        (0, 0),
        (1, 1),
        (16 * MIB, 1),
        (16 * MIB + 1, 2),
        (5 * 1024 * MIB, 320),
    ] {
        let bytes = jack::stub::build("p", "i", "t", size);
        let tail = [
            format!("6:pieces{}:", pieces * 20).into_bytes(),
            vec![0; pieces * 20],
            b"ee".to_vec(),
        ]
        .concat();
        assert!(bytes.ends_with(&tail), "{size}");
        let head = format!(
            "d7:comment8:jack:p:i4:infod6:lengthi{size}e4:name1:t12:piece lengthi16777216e"
        );
        assert_eq!(bytes.len(), head.len() + tail.len(), "{size}");
        assert!(bytes.starts_with(head.as_bytes()), "{size}");
    }
}
