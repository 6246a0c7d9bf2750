//! The watch folder with the real binary against a fake peer: a stub
//! renamed into place or closed after writing starts at once (inotify),
//! long before the next poll; without inotify polling still finds it; a
//! stub written slowly in place is read only once closed; a replaced watch
//! folder is watched again.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::fake_peer::FakePeer;
use support::{Node, Site, downloader_polling, drop_stub, emulated, pattern, wait_for};

/// At once: far below two polls of `SLOW_POLL_MS`, generous for a busy
/// machine (the benchmark measures the real figure: BENCHMARKS.md).
fn at_once() -> Duration {
    // Under qemu-user (`make test-arm`) everything is slower, still far
    // below two polls.
    Duration::from_millis(if emulated() { 3000 } else { 1000 })
}

/// A poll interval no stub in these tests waits out twice by chance.
const SLOW_POLL_MS: u64 = 5000;

/// A fake peer serving `<id>.mkv` and a downloader of it whose watch
/// folder is polled every `poll_ms`.
fn scene(id: &str, poll_ms: u64) -> (Vec<u8>, FakePeer, Site) {
    let data = pattern(100_000);
    let peer = FakePeer::one(id, &data);
    let site = downloader_polling(peer.addr, poll_ms, "");
    (data, peer, site)
}

/// How long after `t0` the peer saw its first file request (waiting for
/// it, at most 20 s).
fn first_request_after(peer: &FakePeer, t0: Instant) -> Duration {
    wait_for("a file request", Duration::from_secs(20), || {
        !peer.file_requests().is_empty()
    });
    peer.file_requests()[0].2.duration_since(t0)
}

/// Asserts the peer was asked for the file at once after `t0`.
fn asked_at_once(peer: &FakePeer, t0: Instant, node: &Node) {
    let waited = first_request_after(peer, t0);
    assert!(
        waited < at_once(),
        "first request {waited:?} after the stub came; log:\n{}",
        node.log_text()
    );
}

/// Waits for the download to complete and checks its bytes.
fn completes(site: &Site, file: &str, data: &[u8]) {
    let dest = site.path().join("data/completed").join(file);
    wait_for("the completed file", Duration::from_secs(20), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
}

fn watch_dir(site: &Site) -> std::path::PathBuf {
    site.path().join("data/watch")
}

fn stub(id: &str, data: &[u8]) -> Vec<u8> {
    jack::stub::build("alice", id, id, data.len() as u64)
}

#[test]
fn a_stub_renamed_into_place_starts_at_once_and_the_node_still_stops_at_once() {
    let (data, peer, b) = scene("r", SLOW_POLL_MS);
    let mut node = b.start();
    let t0 = Instant::now();
    drop_stub(&b, "r.torrent", &stub("r", &data));
    asked_at_once(&peer, t0, &node);
    completes(&b, "r.mkv", &data);
    // The watch thread sleeps until its next poll, up to 5 s away: the
    // stop wakes it, so it is joined, not left behind.
    node.stop_gracefully("TERM");
    assert!(
        !node
            .log_text()
            .contains("the watch thread is still waiting"),
        "{}",
        node.log_text()
    );
}

#[test]
fn a_stub_written_in_place_and_closed_starts_at_once() {
    let (data, peer, b) = scene("w", SLOW_POLL_MS);
    let node = b.start();
    let t0 = Instant::now();
    std::fs::write(watch_dir(&b).join("w.torrent"), stub("w", &data)).unwrap();
    asked_at_once(&peer, t0, &node);
    completes(&b, "w.mkv", &data);
}

/// Where inotify cannot be used (`JACK_FAULT_NO_INOTIFY=1` makes its init
/// fail) the folder is polled as before: a stub is read on the second poll
/// that finds it unchanged, so never sooner than one interval after it came.
#[test]
fn without_inotify_the_watch_folder_is_polled() {
    let (data, peer, b) = scene("p", 1000);
    let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
    cmd.env("JACK_FAULT_NO_INOTIFY", "1");
    let node = Node::spawn(cmd);
    node.wait_log(
        "cannot watch the watch folder with inotify, polling it every 1000 ms",
        Duration::from_secs(10),
    );
    let t0 = Instant::now();
    drop_stub(&b, "p.torrent", &stub("p", &data));
    let waited = first_request_after(&peer, t0);
    assert!(
        waited >= Duration::from_millis(1000),
        "read after {waited:?}: not by polling"
    );
    completes(&b, "p.mkv", &data);
}

/// A writer that writes in place, stops far longer than the stable-file
/// window of two polls, then writes the rest and closes: the stub is read
/// after the close only, whole (never set aside `.invalid` half-written).
#[test]
fn a_stub_written_slowly_in_place_starts_only_once_closed() {
    let (data, peer, b) = scene("s", 100);
    let node = b.start();
    let bytes = stub("s", &data);
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    let mut f = std::fs::File::create(watch_dir(&b).join("s.torrent")).unwrap();
    f.write_all(first).unwrap();
    // 15 polls, half a stub unchanged.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(peer.file_requests().is_empty(), "read half-written");
    let closed = Instant::now();
    f.write_all(rest).unwrap();
    drop(f);
    completes(&b, "s.mkv", &data);
    assert!(peer.file_requests()[0].2 > closed);
    let log = node.log_text();
    assert!(!log.contains("invalid stub"), "{log}");
    let set_aside = std::fs::read_dir(watch_dir(&b))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".invalid"))
        .count();
    assert_eq!(set_aside, 0);
}

/// The watch folder moved away and made anew: the watch on the old one
/// ends, the new one is watched at the next poll, and a stub dropped there
/// starts at once again.
#[test]
fn a_replaced_watch_folder_is_watched_again() {
    let (data, peer, b) = scene("n", SLOW_POLL_MS);
    let node = b.start();
    let watch = watch_dir(&b);
    std::fs::rename(&watch, b.path().join("data/watch.old")).unwrap();
    std::fs::create_dir(&watch).unwrap();
    node.wait_log(
        "watch folder watched with inotify again",
        Duration::from_secs(10),
    );
    let t0 = Instant::now();
    drop_stub(&b, "n.torrent", &stub("n", &data));
    // Polling alone takes two polls: 5 s at least.
    asked_at_once(&peer, t0, &node);
    completes(&b, "n.mkv", &data);
}
