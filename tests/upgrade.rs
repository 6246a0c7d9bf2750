//! The registry migrates forward from the previous release's
//! (`tests/fixtures/registry-v0.1.0/jack.db`, written by commit 80b863a,
//! to be tagged v0.1.0, through `scripts/make-old-registry.sh`): the
//! current binary started on a copy of it migrates it, every download
//! keeps its state, bytes and names, the one in progress resumes where it
//! stood and completes against a peer serving the same versions, the
//! status API and the qBittorrent view list them all, and a second start
//! migrates nothing.

mod support;

use std::path::Path;
use std::time::Duration;

use support::fake_peer::{FakePeer, File};
use support::{KEY, Site, request, request_with_body, wait_for};

/// Where `scripts/make-old-registry.sh` put the registry's folders.
const OLD_ROOT: &str = "/tmp/jack-old-registry";

/// The registry's downloads: item, size, the bytes the registry holds
/// durable, the release's seed (byte `i` is `(i * 31 + seed) % 256`).
const ITEMS: [(&str, u64, u64, u8); 4] = [
    ("done", 200 * 1024, 200 * 1024, 1),
    ("gone", 300 * 1024, 0, 2),
    ("part", 1 << 20, 256 * 1024, 3),
    ("cancel", 1 << 20, 135_168, 4),
];

fn bytes(size: u64, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| ((i * 31 + u64::from(seed)) % 256) as u8)
        .collect()
}

fn downloads(addr: std::net::SocketAddr) -> Vec<serde_json::Value> {
    let r = request(addr, "GET", "/api/v1/downloads", &[("X-Api-Key", KEY)]);
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["downloads"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [serde_json::Value], item: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|d| d["item_id"] == item)
        .unwrap_or_else(|| panic!("{item} not in {rows:?}"))
}

/// The copy of the old registry in `site`, its folders moved from where
/// the script made them to the site's (the one change to the copy: the
/// paths it names, as an owner moving a node's folders would).
fn old_registry_in(site: &Site) {
    let data = site.path().join("data");
    std::fs::create_dir_all(data.join("incomplete")).unwrap();
    std::fs::create_dir_all(data.join("completed")).unwrap();
    let db = data.join("jack.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registry-v0.1.0/jack.db"),
        &db,
    )
    .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5, "the fixture is the previous release's schema");
    let root = site.path().to_str().unwrap();
    conn.execute(
        "UPDATE downloads SET part_path = replace(part_path, ?1, ?2), \
         dest_path = replace(dest_path, ?1, ?2)",
        [OLD_ROOT, root],
    )
    .unwrap();
    // The files the old node left: the completed one, and each .part with
    // the bytes the registry holds durable.
    let mut files = conn
        .prepare("SELECT item_id, status, part_path, dest_path FROM downloads")
        .unwrap();
    let rows = files
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    for r in rows {
        let (item, status, part, dest) = r.unwrap();
        let (_, size, durable, seed) = ITEMS.iter().find(|i| i.0 == item).unwrap();
        let content = bytes(*size, *seed);
        match status.as_str() {
            "completed" => std::fs::write(dest, &content).unwrap(),
            "retrying" | "cancelled" => {
                std::fs::write(part, &content[..*durable as usize]).unwrap()
            }
            _ => {}
        }
    }
}

#[test]
fn a_registry_of_the_previous_release_migrates_and_its_downloads_go_on() {
    let peer = FakePeer::start(
        ITEMS
            .iter()
            .filter(|i| i.0 != "gone")
            .map(|(id, size, _, seed)| File::mkv(id, &bytes(*size, *seed)))
            .collect(),
        vec![],
        None,
    );
    let site = support::downloader(
        peer.addr,
        "min_free_bytes = 0\n[qbittorrent]\nusername = \"admin\"\npassword = \"a-long-enough-password\"\n",
    );
    old_registry_in(&site);
    let mut node = site.start();
    let log = node.log_text();
    let current = jack::db::SCHEMA_VERSION;
    for v in 6..=current {
        assert!(
            log.contains(&format!("registry migrated to schema version {v}")),
            "{log}"
        );
    }
    assert!(log.contains(&format!("schema={current}")), "{log}");

    // The one in progress resumes where it stood and completes.
    wait_for("part completed", Duration::from_secs(30), || {
        row(&downloads(node.addr), "part")["status"] == "completed"
    });
    let asked: Vec<Option<String>> = peer
        .file_requests()
        .into_iter()
        .filter(|r| r.0 == "part")
        .map(|r| r.1)
        .collect();
    assert_eq!(
        asked.first().cloned().flatten().as_deref(),
        Some("bytes=262144-"),
        "resumed from the durable bytes: {asked:?}"
    );
    assert_eq!(peer.bytes_sent("part"), (1 << 20) - 256 * 1024);
    let completed = site.path().join("data/completed");
    assert_eq!(
        std::fs::read(completed.join("part.mkv")).unwrap(),
        bytes(1 << 20, 3)
    );

    // Every download keeps its state, bytes and names.
    let rows = downloads(node.addr);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (item, size, durable, _) in ITEMS {
        let d = row(&rows, item);
        assert_eq!(d["file_name"], format!("{item}.mkv"), "{d}");
        assert_eq!(d["stub_name"], format!("{item}.torrent"), "{d}");
        assert_eq!(d["peer"], "alice", "{d}");
        assert_eq!(d["expected_bytes"], size, "{d}");
        let (status, bytes_now) = match item {
            "done" | "part" => ("completed", size),
            "gone" => ("failed", 0),
            // The old release's `cancelled` is today's pause.
            _ => ("paused", durable),
        };
        assert_eq!(d["status"], status, "{d}");
        assert_eq!(d["downloaded_bytes"], bytes_now, "{d}");
    }
    assert!(
        row(&rows, "gone")["error"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{rows:?}"
    );
    assert_eq!(
        std::fs::read(completed.join("done.mkv")).unwrap(),
        bytes(200 * 1024, 1)
    );

    // The qBittorrent view lists them all.
    let bearer = format!("Bearer {KEY}");
    let info = request(
        node.addr,
        "GET",
        "/api/v2/torrents/info",
        &[("Authorization", &bearer)],
    );
    assert_eq!(info.status, 200);
    let torrents: Vec<serde_json::Value> = serde_json::from_slice(&info.body).unwrap();
    let mut names: Vec<&str> = torrents
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names.len(), 4, "{torrents:?}");
    let state = |hash_of: &str| {
        let d = row(&rows, hash_of);
        torrents
            .iter()
            .find(|t| t["hash"] == d["info_hash"])
            .unwrap_or_else(|| panic!("{hash_of} not in {torrents:?}"))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("cancel"), "pausedDL");
    assert_eq!(state("gone"), "error");

    // The paused one resumes where it stood too.
    let id = row(&rows, "cancel")["id"].as_i64().unwrap();
    let r = request_with_body(
        node.addr,
        "POST",
        &format!("/api/v1/downloads/{id}/resume"),
        &[("X-Api-Key", KEY)],
        b"",
    );
    assert!(r.status < 300, "{}", r.status);
    wait_for("cancel completed", Duration::from_secs(30), || {
        row(&downloads(node.addr), "cancel")["status"] == "completed"
    });
    assert_eq!(
        std::fs::read(completed.join("cancel.mkv")).unwrap(),
        bytes(1 << 20, 4)
    );
    assert_eq!(peer.bytes_sent("cancel"), (1 << 20) - 135_168);
    node.stop_gracefully("TERM");

    // A second start migrates nothing and changes nothing.
    let before = downloads_of(&site);
    let node = site.start();
    assert!(
        !node.log_text().contains("registry migrated"),
        "{}",
        node.log_text()
    );
    assert_eq!(downloads_of(&site), before);
    drop(node);
}

/// Every download's status and bytes as `jack status --json` shows them.
fn downloads_of(site: &Site) -> Vec<(String, String, u64)> {
    let v = support::status_json(site);
    let mut out: Vec<(String, String, u64)> = v["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["item_id"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["downloaded_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}
