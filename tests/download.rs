//! Peer downloads end to end with the real binary: one jack node downloads
//! from another through a dropped stub.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    downloader, drop_grab, drop_stub, item_id, pattern, serving_site, status_json, wait_for,
};

#[test]
fn one_node_downloads_from_another_through_a_dropped_stub() {
    let data = pattern(20 * 1024 * 1024 + 17);
    let name = "Some.Movie.2024.1080p.WEB-DL.x264-GRP.mkv";
    let (_a, alice) = serving_site("", &[(name, &data)]);
    let id = item_id(alice.addr, name);

    let b = downloader(alice.addr, "");
    let bob = b.start();
    let title = "Some.Movie.2024.1080p.WEB-DL.x264-GRP";
    drop_grab(&b, "Some.Movie.torrent", "alice", &id, title, data.len());

    let dest = b.path().join("data/completed").join(name);
    wait_for("the completed file", Duration::from_secs(30), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
    // The stub is removed once the download completes, and no .part is left.
    wait_for("the stub to go", Duration::from_secs(15), || {
        !b.path().join("data/watch/Some.Movie.torrent").exists()
    });
    assert_eq!(
        std::fs::read_dir(b.path().join("data/incomplete"))
            .unwrap()
            .count(),
        0
    );
    let v = status_json(&b);
    let row = &v["downloads"][0];
    assert_eq!(row["status"], "completed");
    assert_eq!(row["downloaded_bytes"], data.len() as u64);
    assert_eq!(row["attempts"], 1);
    // The same stub dropped again starts nothing new.
    drop_grab(&b, "Again.torrent", "alice", &id, title, data.len());
    bob.wait_log(
        "stub already known stub=Again.torrent",
        Duration::from_secs(15),
    );
    assert_eq!(status_json(&b)["downloads"].as_array().unwrap().len(), 1);
}

#[test]
fn an_invalid_stub_is_renamed_and_shown_by_status() {
    let b = downloader("127.0.0.1:9".parse().unwrap(), "stub_settle_ms = 200");
    let node = b.start();
    drop_stub(&b, "Broken.torrent", b"this is not bencode");
    let renamed = b.path().join("data/watch/Broken.torrent.invalid");
    wait_for("the .invalid rename", Duration::from_secs(15), || {
        renamed.exists()
    });
    assert_eq!(
        std::fs::read(&renamed).unwrap(),
        b"this is not bencode",
        "never deleted or changed"
    );
    node.wait_log("invalid stub stub=Broken.torrent", Duration::from_secs(15));
    let v = status_json(&b);
    assert_eq!(v["invalid_stubs"][0]["stub_name"], "Broken.torrent");
    assert!(
        v["invalid_stubs"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not bencode")
    );
    assert!(v["downloads"].as_array().unwrap().is_empty());
}

#[test]
fn a_stub_for_an_unknown_peer_fails_its_row_with_a_clear_error() {
    let b = downloader("127.0.0.1:9".parse().unwrap(), "");
    let _node = b.start();
    let stub = jack::stub::build("mallory", "lib:movie:1", "X.2020.mkv", 10);
    drop_stub(&b, "X.torrent", &stub);
    wait_for("a failed row", Duration::from_secs(15), || {
        status_json(&b)["downloads"][0]["status"] == "failed"
    });
    let v = status_json(&b);
    assert!(
        v["downloads"][0]["error"]
            .as_str()
            .unwrap()
            .contains("unknown peer \"mallory\"")
    );
    assert!(!Path::new(&b.path().join("data/completed/X.2020.mkv")).exists());
}

/// A download past 4 GiB resumes with u64 offsets (32-bit `usize` on armv7
/// and i686): an earlier run's `.part` holds 4 GiB + 1 MiB (sparse), the
/// restarted node asks for the rest from byte 4,295,016,448 and the final
/// file has the peer's length and bytes. Nothing near 4 GiB crosses the wire.
#[test]
fn a_download_past_4_gib_resumes_with_u64_offsets() {
    use std::io::{Read, Seek, SeekFrom, Write};
    const GIB4: u64 = 4 * 1024 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;
    let len = GIB4 + 3 * MIB + 7;
    let tail = pattern((len - GIB4) as usize);
    let name = "Huge.2024.2160p.mkv";
    let (a, alice) = serving_site("", &[]);
    let sparse = |path: &Path, upto: u64| {
        let mut f = std::fs::File::create(path).unwrap();
        f.set_len(upto).unwrap();
        f.seek(SeekFrom::Start(GIB4)).unwrap();
        f.write_all(&tail[..(upto - GIB4) as usize]).unwrap();
        f.sync_all().unwrap();
    };
    sparse(&a.path().join("media/movies").join(name), len);
    // The file was made after the first scan: a restart sees it.
    drop(alice);
    let alice = a.start();
    alice.wait_log("catalogue scanned", Duration::from_secs(30));
    let id = item_id(alice.addr, name);

    // First run, through a slow link: the row exists, a few bytes arrive.
    let slow = support::throttle(alice.addr, 32 * 1024);
    let b = downloader(slow, "");
    let mut bob = b.start();
    let stub = jack::stub::build("alice", &id, "Huge.2024.2160p", len);
    drop_stub(&b, "Huge.torrent", &stub);
    bob.wait_log("download started", Duration::from_secs(30));
    bob.stop_gracefully("TERM");
    // As if that run had got to 4 GiB + 1 MiB: the .part and its record.
    let reg = jack::db::Registry::open(&b.path().join("data/jack.db")).unwrap();
    let row = reg.list().unwrap().pop().unwrap();
    assert_eq!(row.expected_bytes, len);
    sparse(&row.part_path, GIB4 + MIB);
    reg.set_progress(row.id, GIB4 + MIB).unwrap();
    drop(reg);

    // Second run, straight to alice: the rest, from past 4 GiB.
    let config = std::fs::read_to_string(b.config()).unwrap();
    let direct = config.replace(&slow.to_string(), &alice.addr.to_string());
    std::fs::write(b.config(), direct).unwrap();
    let bob = b.start();
    bob.wait_log(
        &format!("download resumed id={} offset={}", row.id, GIB4 + MIB),
        Duration::from_secs(30),
    );
    let dest = b.path().join("data/completed").join(name);
    wait_for("the completed file", Duration::from_secs(120), || {
        dest.exists()
    });
    let mut f = std::fs::File::open(&dest).unwrap();
    assert_eq!(f.metadata().unwrap().len(), len);
    f.seek(SeekFrom::Start(GIB4)).unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert!(got == tail, "the bytes past 4 GiB differ");
    // The row is marked completed just after the file gets its name.
    wait_for("the row to be completed", Duration::from_secs(10), || {
        status_json(&b)["downloads"][0]["status"] == "completed"
    });
    let v = status_json(&b);
    assert_eq!(v["downloads"][0]["downloaded_bytes"], len);
}
