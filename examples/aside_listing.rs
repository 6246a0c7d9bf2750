//! The cost of listing the stubs set aside (BENCHMARKS.md, "Stubs set
//! aside (issue 21)"): 1,000 `.failed` stubs over a registry of 10,000
//! downloads, listed with `download::aside::list` without the
//! `downloads(stub_name)` index (as before migration 9), with it, and a
//! poll answered by `aside::Listing` (the folder unchanged).
//! `cargo run --release --example aside_listing` (ROUNDS=20 by default).

use std::time::{Duration, Instant};

use jack::db::{NewDownload, Registry};
use jack::download::aside::{Listing, list};

fn median(mut f: impl FnMut(), rounds: usize) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("watch");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("jack.db");
    let reg = Registry::open(&db).unwrap();
    let t = Instant::now();
    for n in 0..10_000u32 {
        reg.insert(&NewDownload {
            stub_name: format!("Movie.{n}.torrent"),
            info_hash: format!("{n:040x}"),
            peer: "alice".into(),
            item_id: format!("lib1:movie:{n}"),
            title: format!("Movie.{n}.2024.1080p"),
            file_name: format!("Movie.{n}.2024.1080p.mkv"),
            part_path: format!("/data/incomplete/{n}.part").into(),
            dest_path: format!("/data/completed/Movie.{n}.mkv").into(),
            etag: None,
            expected_bytes: 1 << 30,
            sha256: None,
            search: None,
        })
        .unwrap();
        if n < 1000 {
            std::fs::write(dir.join(format!("Movie.{n}.torrent.failed")), b"d").unwrap();
        }
    }
    eprintln!("setup {:?}", t.elapsed());
    assert_eq!(list(&dir, &reg).unwrap().len(), 1000);
    let indexed = median(|| drop(list(&dir, &reg).unwrap()), rounds);
    let listing = Listing::default();
    listing.list(&dir, &reg).unwrap();
    let polled = median(|| drop(listing.list(&dir, &reg).unwrap()), rounds);
    drop(reg);
    // As before migration 9: the same registry without the index (its
    // user_version stays 9, so opening it does not make it again).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP INDEX downloads_stub_name;")
        .unwrap();
    drop(conn);
    let reg = Registry::open(&db).unwrap();
    let scanned = median(|| drop(list(&dir, &reg).unwrap()), rounds);
    println!("1,000 .failed stubs, 10,000 downloads, median of {rounds}:");
    println!("  aside::list, no index (before):  {scanned:?}");
    println!("  aside::list, index on stub_name: {indexed:?}");
    println!("  Listing, folder unchanged (a page poll): {polled:?}");
}
