//! Peer downloads end to end with the real binary: one jack node downloads
//! from another through a dropped stub.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{KEY, Site, item_id, pattern, serving_site};

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_json(site: &Site) -> serde_json::Value {
    let out = site
        .command(&[
            "status",
            "--json",
            "--config",
            site.config().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn downloader(peer_addr: std::net::SocketAddr, extra: &str) -> Site {
    Site::new(&format!(
        "[downloads]\nscan_interval_ms = 100\nretry_base_delay_ms = 10\nretry_max_delay_ms = 100\n{extra}\n[[peers]]\nname = \"alice\"\nurl = \"http://{peer_addr}\"\napi_key = \"{KEY}\"\n"
    ))
}

fn drop_stub(site: &Site, name: &str, bytes: &[u8]) {
    let watch = site.path().join("data/watch");
    std::fs::create_dir_all(&watch).unwrap();
    let tmp = watch.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, watch.join(name)).unwrap();
}

#[test]
fn one_node_downloads_from_another_through_a_dropped_stub() {
    let data = pattern(20 * 1024 * 1024 + 17);
    let name = "Some.Movie.2024.1080p.WEB-DL.x264-GRP.mkv";
    let (_a, alice) = serving_site("", &[(name, &data)]);
    let id = item_id(alice.addr, name);

    let b = downloader(alice.addr, "");
    let bob = b.start();
    let stub = jack::stub::build(
        "alice",
        &id,
        "Some.Movie.2024.1080p.WEB-DL.x264-GRP",
        data.len() as u64,
    );
    drop_stub(&b, "Some.Movie.torrent", &stub);

    let dest = b.path().join("data/completed").join(name);
    wait_for("the completed file", Duration::from_secs(30), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
    // The stub is removed once the download completes, and no .part is left.
    wait_for("the stub to go", Duration::from_secs(5), || {
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
    drop_stub(&b, "Again.torrent", &stub);
    bob.wait_log(
        "stub already known stub=Again.torrent",
        Duration::from_secs(5),
    );
    assert_eq!(status_json(&b)["downloads"].as_array().unwrap().len(), 1);
}

#[test]
fn an_invalid_stub_is_renamed_and_shown_by_status() {
    let b = downloader("127.0.0.1:9".parse().unwrap(), "");
    let node = b.start();
    drop_stub(&b, "Broken.torrent", b"this is not bencode");
    let renamed = b.path().join("data/watch/Broken.torrent.invalid");
    wait_for("the .invalid rename", Duration::from_secs(5), || {
        renamed.exists()
    });
    assert_eq!(
        std::fs::read(&renamed).unwrap(),
        b"this is not bencode",
        "never deleted or changed"
    );
    node.wait_log("invalid stub stub=Broken.torrent", Duration::from_secs(5));
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
    wait_for("a failed row", Duration::from_secs(5), || {
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
