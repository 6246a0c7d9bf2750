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
    let b = downloader("127.0.0.1:9".parse().unwrap(), "");
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
