//! The downloading side against a fake peer with switches: every resume
//! rule of PROTOCOL.md §2.4, the retry matrix of §2.5, concurrency limits,
//! cleanup of failed downloads and stale partial files. Real HTTP on
//! loopback, real files, a real registry; `Downloads` runs in process with
//! a seeded RNG.

mod support;

use std::time::{Duration, Instant};

use jack::db::{NewDownload, Registry, Status};
use jack::download::downloads::{Added, Start};
use jack::download::handoff::Mode as HandOffMode;
use support::bed::{Bed, file};
use support::fake_peer::{self, FakePeer, Mode};
use support::{OffsetClock, pattern};

const SIZE: usize = 3 * 1024 * 1024 + 123;

/// Every rule of §2.4: a first response cut mid-way leaves a durable
/// prefix, then the resume request meets the fault under test.
#[test]
fn client_resume_rules() {
    let data = pattern(SIZE);
    let half = (SIZE / 2) as u64;
    // (fault on the resume request, restart reason expected or None)
    let cases: Vec<(Mode, Option<&str>)> = vec![
        (Mode::Honest, None),
        (Mode::IgnoreRange, Some("range_ignored")),
        (Mode::WrongStart, Some("content_range_mismatch")),
        (Mode::WrongTotal, Some("size_changed")),
        (Mode::Changed416, Some("changed")),
        (Mode::Subset(100_000), None),
        (Mode::Cut(50_000), None),
        (Mode::Stall(10_000, Duration::from_millis(1500)), None),
        (Mode::ChangedEtag, Some("etag_changed")),
        (Mode::Multipart, Some("multipart")),
        (Mode::Gzip, Some("content_encoding")),
    ];
    for (mode, reason) in cases {
        let peer = FakePeer::start(
            vec![file("m", &data)],
            vec![Mode::Cut(half), mode.clone()],
            None,
        );
        let bed = Bed::start(&peer, "");
        let id = bed.add("m", SIZE);
        let row = bed.wait_done(id);
        assert_eq!(row.status, Status::Completed, "{mode:?}: {:?}", row.error);
        assert!(
            std::fs::read(bed.completed("m.mkv")).unwrap() == data,
            "{mode:?}: bytes differ"
        );
        let reasons = bed.reasons(id);
        let requests = peer.file_requests();
        assert_eq!(requests[0].1.as_deref(), Some("bytes=0-"), "{mode:?}");
        assert_eq!(
            requests[1].1.as_deref(),
            Some(format!("bytes={half}-").as_str()),
            "{mode:?}: resumed at the durable offset"
        );
        match reason {
            None => {
                assert!(
                    reasons.is_empty(),
                    "{mode:?}: unexpected restart {reasons:?}"
                );
                assert_eq!(row.restarts, 0);
                // Nothing was fetched twice.
                let sent = peer
                    .record
                    .body_bytes
                    .load(std::sync::atomic::Ordering::SeqCst);
                assert_eq!(sent, SIZE as u64, "{mode:?}: bytes sent");
            }
            Some(r) => {
                assert_eq!(row.restarts, 1, "{mode:?}");
                assert!(reasons[0].contains(r), "{mode:?}: reasons {reasons:?}");
            }
        }
        assert!(!row.part_path.exists(), "{mode:?}: .part left behind");
    }
}

/// A plain-HTTP body is taken straight from the socket once ureq's buffer
/// is drained (`download::direct`): the bytes ureq read with the head and
/// those after them land in order; a chunked body (with a `Content-Length`
/// that must be ignored) stays with ureq, so no chunk framing reaches the
/// file; a stall or a cut after the hand-over is retried like any other.
#[test]
fn bodies_are_exact_across_the_hand_over_to_the_socket() {
    let data = pattern(SIZE);
    let direct_before = jack::metrics::METRICS.direct_total();
    let cases = [
        vec![Mode::Glued(100_000)],
        vec![Mode::Glued(0)],
        vec![Mode::ChunkedWithLength],
        vec![Mode::Glued(SIZE as u64)],
        vec![Mode::Cut(SIZE as u64 / 2), Mode::Glued(10_000)],
        vec![
            Mode::Stall(SIZE as u64 / 3, Duration::from_millis(1500)),
            Mode::Honest,
        ],
    ];
    for script in cases {
        let peer = FakePeer::start(vec![file("m", &data)], script.clone(), None);
        let bed = Bed::start(&peer, "");
        let id = bed.add("m", SIZE);
        let row = bed.wait_done(id);
        assert_eq!(row.status, Status::Completed, "{script:?}: {:?}", row.error);
        assert!(
            std::fs::read(bed.completed("m.mkv")).unwrap() == data,
            "{script:?}: bytes differ"
        );
        assert_eq!(row.restarts, 0, "{script:?}");
        let sent = peer
            .record
            .body_bytes
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(sent, SIZE as u64, "{script:?}: nothing fetched twice");
    }
    // The glued cases moved most of their bytes from the socket (other
    // tests of this binary may add to the count; none takes from it).
    let direct = jack::metrics::METRICS.direct_total() - direct_before;
    assert!(
        direct >= SIZE as u64,
        "only {direct} bytes came from the socket"
    );
}

#[test]
fn concurrency_is_limited_by_the_pool() {
    // Each transfer takes about 0.5 s, longer than adding the next stub
    // even under emulation (make test-arm), so the pool is used fully.
    let data = pattern(512 * 1024);
    let files: Vec<_> = (0..10).map(|i| file(&format!("f{i}"), &data)).collect();
    let peer = FakePeer::start(files, vec![], Some(1024 * 1024));
    let bed = Bed::start(&peer, "max_concurrent_downloads = 2");
    let ids: Vec<i64> = (0..10)
        .map(|i| bed.add(&format!("f{i}"), data.len()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(bed.wait_done(*id).status, Status::Completed);
        assert!(std::fs::read(bed.completed(&format!("f{i}.mkv"))).unwrap() == data);
    }
    let max = peer
        .record
        .max_active
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        max, 2,
        "at most 2 transfers at once, and the pool was used fully"
    );
}

#[test]
fn retry_matrix() {
    let data = pattern(10_000);
    // Retried: the next request succeeds.
    for code in [500, 502, 503, 504, 429] {
        let peer = FakePeer::start(vec![file("m", &data)], vec![Mode::Status(code, None)], None);
        let bed = Bed::start(&peer, "");
        let id = bed.add("m", data.len());
        let row = bed.wait_done(id);
        assert_eq!(row.status, Status::Completed, "{code}");
        assert_eq!(peer.file_requests().len(), 2, "{code}: one retry");
        assert_eq!(row.attempts, 2, "{code}");
    }
    // Not retried: exactly one request, the status in the error.
    for code in [400, 401, 403, 404, 408, 410, 301, 302] {
        let peer = FakePeer::start(vec![file("m", &data)], vec![Mode::Status(code, None)], None);
        let bed = Bed::start(&peer, "");
        let id = bed.add("m", data.len());
        let row = bed.wait_done(id);
        assert_eq!(row.status, Status::Failed, "{code}");
        assert_eq!(peer.file_requests().len(), 1, "{code}: exactly one request");
        assert!(
            row.error.as_deref().unwrap().contains(&code.to_string()),
            "{code}: {:?}",
            row.error
        );
        assert!(!bed.completed("m.mkv").exists());
    }
}

/// `Retry-After` in both forms holds the next request back exactly that
/// long on the injected clock (moved forward by the test, not waited for).
#[test]
fn retry_after_delays_the_next_request() {
    let data = pattern(1000);
    for form in ["seconds", "date"] {
        let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
        let dir = tempfile::tempdir().unwrap();
        let bed = Bed::start_with(
            dir,
            &peer,
            "retry_max_delay_ms = 60000",
            OffsetClock::frozen(),
        );
        // The clock stands still but for `advance`: `before` stays short of
        // the delay, `before + after` passes it. HTTP dates have whole
        // seconds: wall + 4 s is 3 to 4 s away.
        let (value, before, after) = match form {
            "seconds" => (
                "2".to_string(),
                Duration::from_millis(1990),
                Duration::from_millis(20),
            ),
            _ => (
                httpdate::fmt_http_date(
                    jack::clock::Clock::wall(&*bed.clock) + Duration::from_secs(4),
                ),
                Duration::from_millis(2990),
                Duration::from_millis(1020),
            ),
        };
        peer.push(Mode::Status(503, Some(value.clone())));
        let id = bed.add("m", data.len());
        wait_until(|| peer.file_requests().len() == 1);
        std::thread::sleep(Duration::from_millis(300));
        bed.clock.advance(before);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            peer.file_requests().len(),
            1,
            "Retry-After {value}: asked again too early"
        );
        bed.clock.advance(after);
        assert_eq!(bed.wait_done(id).status, Status::Completed);
        assert_eq!(peer.file_requests().len(), 2, "Retry-After {value}");
    }
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn gives_up_after_max_attempts_and_keeps_the_part() {
    let data = pattern(50_000);
    let script = vec![
        Mode::Cut(20_000),
        Mode::Status(503, None),
        Mode::Status(503, None),
        Mode::Status(503, None),
    ];
    let peer = FakePeer::start(vec![file("m", &data)], script, None);
    let bed = Bed::start(&peer, "max_attempts = 3");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Failed);
    assert_eq!(
        peer.file_requests().len(),
        3,
        "exactly max_attempts requests"
    );
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{:?}",
        row.error
    );
    // Failed-download cleanup: the .part keeps what arrived, nothing importable.
    assert_eq!(std::fs::read(&row.part_path).unwrap(), &data[..20_000]);
    assert_eq!(row.downloaded_bytes, 20_000);
    assert_eq!(
        std::fs::read_dir(bed.dir.path().join("data/completed"))
            .unwrap()
            .count(),
        0
    );
    // Grabbing the same release again (same source) resumes it from the
    // .part, with fresh attempts (`jack retry` does the same through the
    // registry).
    let stub = jack::stub::build("alice", "m", "m", data.len() as u64);
    assert_eq!(
        bed.downloads
            .add_stub("m.torrent", &stub, Start::Now)
            .unwrap(),
        Added::Regrabbed(id)
    );
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed);
    assert_eq!(
        peer.file_requests().last().unwrap().1.as_deref(),
        Some("bytes=20000-")
    );
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
}

#[test]
fn an_existing_destination_is_never_overwritten() {
    let data = pattern(5000);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/completed")).unwrap();
    std::fs::write(dir.path().join("data/completed/m.mkv"), b"mine").unwrap();
    let bed = Bed::start_in(dir, &peer, "");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(
        (row.status, row.error.as_deref()),
        (Status::Failed, Some("destination exists"))
    );
    assert_eq!(std::fs::read(bed.completed("m.mkv")).unwrap(), b"mine");
    assert!(
        peer.file_requests().is_empty(),
        "found out before a byte was fetched"
    );
}

/// Rows and `.part` files as a crash left them, then a start.
fn stale(part: &[u8], durable: u64) -> (Bed, FakePeer, i64, Vec<u8>) {
    let data = pattern(40_000);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    let dir = tempfile::tempdir().unwrap();
    let (reg, id) = stale_row(&dir, part, durable);
    drop(reg);
    let bed = Bed::start_in(dir, &peer, "");
    (bed, peer, id, data)
}

/// A registry with one row for item `m` (40,000 bytes) and its `.part`.
fn stale_row(dir: &tempfile::TempDir, part: &[u8], durable: u64) -> (Registry, i64) {
    let data_len = 40_000u64;
    std::fs::create_dir_all(dir.path().join("data/incomplete")).unwrap();
    let reg = Registry::open(&{
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        dir.path().join("data/jack.db")
    })
    .unwrap();
    let part_path = dir.path().join("data/incomplete/m.part");
    std::fs::write(&part_path, part).unwrap();
    let id = reg
        .insert(&NewDownload {
            stub_name: "m.torrent".into(),
            info_hash: "0".repeat(40),
            peer: "alice".into(),
            item_id: "m".into(),
            title: "m".into(),
            file_name: "m.mkv".into(),
            part_path,
            dest_path: dir.path().join("data/completed/m.mkv"),
            etag: Some(fake_peer::ETAG.into()),
            expected_bytes: data_len,
            sha256: None,
            search: None,
        })
        .unwrap();
    reg.set_progress(id, durable).unwrap();
    (reg, id)
}

#[test]
fn a_part_longer_than_durable_progress_is_truncated_to_it() {
    let data = pattern(40_000);
    let mut part = data[..10_000].to_vec();
    part.extend_from_slice(&[0xEE; 5_000]); // written but never synced: garbage
    let (bed, peer, id, data) = stale(&part, 10_000);
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed);
    assert_eq!(peer.file_requests()[0].1.as_deref(), Some("bytes=10000-"));
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
    assert_eq!(row.restarts, 0);
}

#[test]
fn a_part_longer_than_the_expected_size_restarts_from_zero() {
    let (bed, peer, id, data) = stale(&[7u8; 50_000], 0);
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed);
    assert_eq!(peer.file_requests()[0].1.as_deref(), Some("bytes=0-"));
    assert_eq!(row.restarts, 1);
    assert!(bed.reasons(id)[0].contains("part_too_long"));
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
}

#[test]
fn a_part_complete_and_durable_is_finalized_without_a_request() {
    let data = pattern(40_000);
    let (bed, peer, id, _) = stale(&data, 40_000);
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed);
    assert!(peer.file_requests().is_empty(), "no bytes fetched");
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
}

#[test]
fn sizes_above_the_guard_are_refused_wherever_they_enter() {
    let data = pattern(5000);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    let bed = Bed::start(&peer, "max_file_size = 1000");
    // The stub itself says too much: invalid, nothing asked of the peer.
    let big = jack::stub::build("alice", "m", "m", 5000);
    assert!(
        matches!(bed.downloads.add_stub("big.torrent", &big, Start::Now).unwrap(), Added::Invalid(r) if r.contains("5000"))
    );
    // The stub says little, the peer's release says too much: failed row.
    let small = jack::stub::build("alice", "m", "m", 500);
    match bed
        .downloads
        .add_stub("small.torrent", &small, Start::Now)
        .unwrap()
    {
        Added::Failed(id, error) => {
            assert!(error.contains("size 5000"), "{error}");
            assert_eq!(
                bed.registry.get(id).unwrap().unwrap().status,
                Status::Failed
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(peer.file_requests().is_empty(), "not a byte requested");
}

#[test]
fn two_stubs_for_one_destination_never_share_a_part() {
    let (a, b) = (pattern(7000), pattern(9000));
    let files = vec![
        fake_peer::File {
            id: "a".into(),
            filename: "same.mkv".into(),
            data: a.clone(),
        },
        fake_peer::File {
            id: "b".into(),
            filename: "same.mkv".into(),
            data: b,
        },
    ];
    let peer = FakePeer::start(files, vec![], None);
    let bed = Bed::start(&peer, "max_concurrent_downloads = 1");
    let first = bed.add("a", a.len());
    let second = bed.add("b", 9000);
    let (r1, r2) = (bed.wait_done(first), bed.wait_done(second));
    assert_ne!(r1.part_path, r2.part_path);
    assert_eq!(r1.dest_path, r2.dest_path);
    assert_eq!(r1.status, Status::Completed);
    assert_eq!(
        (r2.status, r2.error.as_deref()),
        (Status::Failed, Some("destination exists"))
    );
    assert!(
        std::fs::read(bed.completed("same.mkv")).unwrap() == a,
        "the first file is untouched"
    );
}

/// Rule 12: a 200 without `Content-Length` whose body runs past the
/// expected size is a size change (restart from 0), never a copy cut to
/// size; one that ends exactly there completes.
#[test]
fn an_unsized_body_must_end_where_it_promised() {
    let data = pattern(40_000);
    let newer = pattern(45_000).into_iter().rev().collect::<Vec<u8>>();
    let peer = FakePeer::start(
        vec![file("m", &data)],
        vec![Mode::Cut(10_000), Mode::Unsized(newer)],
        None,
    );
    let bed = Bed::start(&peer, "");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(
        std::fs::read(bed.completed("m.mkv")).unwrap() == data,
        "never bytes of a version the peer does not hold"
    );
    let reasons = bed.reasons(id);
    assert!(
        reasons.iter().any(|r| r.contains("size_changed")),
        "{reasons:?}"
    );
    assert_eq!(
        peer.file_requests().last().unwrap().1.as_deref(),
        Some("bytes=0-")
    );

    // An unsized body of exactly the expected length is proven by its end.
    let peer = FakePeer::start(
        vec![file("m", &data)],
        vec![Mode::Unsized(data.clone())],
        None,
    );
    let bed = Bed::start(&peer, "");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!((row.status, row.restarts), (Status::Completed, 0));
    assert_eq!(peer.file_requests().len(), 1);
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
}

/// §2.4 Identity: a second stub for the same release (same info-hash)
/// naming another item gives the failed download that source, looked up
/// again, with fresh attempts, and it completes from the item that exists.
#[test]
fn a_second_stub_for_one_release_takes_the_new_source() {
    let data = pattern(30_000);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    let bed = Bed::start(&peer, "");
    let gone = jack::stub::build("alice", "gone", "Title", data.len() as u64);
    let here = jack::stub::build("alice", "m", "Title", data.len() as u64);
    assert_eq!(
        jack::stub::parse(&gone, u64::MAX).unwrap().info_hash,
        jack::stub::parse(&here, u64::MAX).unwrap().info_hash,
        "one release"
    );
    let Added::Failed(id, error) = bed
        .downloads
        .add_stub("a.torrent", &gone, Start::Now)
        .unwrap()
    else {
        panic!("the missing item fails")
    };
    assert!(error.contains("404"), "{error}");
    assert_eq!(
        bed.downloads
            .add_stub("b.torrent", &here, Start::Now)
            .unwrap(),
        Added::Regrabbed(id)
    );
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert_eq!(
        (row.item_id.as_str(), row.stub_name.as_str()),
        ("m", "a.torrent"),
        "the row keeps its own stub: b.torrent is set aside as a duplicate"
    );
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
    let regrabbed = bed.events(id, "regrabbed");
    assert!(
        regrabbed[0].contains("alice/gone -> alice/m"),
        "{regrabbed:?}"
    );
    assert_eq!(
        bed.registry.list().unwrap().len(),
        1,
        "one release, one row"
    );
    // A third stub for the completed release starts nothing.
    assert_eq!(
        bed.downloads
            .add_stub("c.torrent", &here, Start::Now)
            .unwrap(),
        Added::Duplicate(id)
    );
    assert_eq!(peer.file_requests().len(), 1);
}

/// A new source keeps the `.part` only when it serves the same
/// representation (same size and ETag); another one restarts it from 0.
#[test]
fn a_new_source_keeps_the_part_only_for_the_same_representation() {
    let data = pattern(30_000);
    let bigger = pattern(35_000);
    for (item, bytes, resumed) in [("same", &data, true), ("bigger", &bigger, false)] {
        let files = vec![
            file("m", &data),
            fake_peer::File {
                id: item.into(),
                filename: "m.mkv".into(),
                data: bytes.clone(),
            },
        ];
        let peer = FakePeer::start(
            files,
            vec![Mode::Cut(10_000), Mode::Status(404, None)],
            None,
        );
        let bed = Bed::start(&peer, "");
        let id = bed.add("m", data.len());
        assert_eq!(bed.wait_done(id).status, Status::Failed);
        assert_eq!(
            bed.registry.get(id).unwrap().unwrap().downloaded_bytes,
            10_000
        );
        // Same title and length in the stub: the same release.
        let stub = jack::stub::build("alice", item, "m", data.len() as u64);
        assert_eq!(
            bed.downloads
                .add_stub("again.torrent", &stub, Start::Now)
                .unwrap(),
            Added::Regrabbed(id)
        );
        let row = bed.wait_done(id);
        assert_eq!(row.status, Status::Completed, "{item}: {:?}", row.error);
        assert!(
            std::fs::read(bed.completed("m.mkv")).unwrap() == *bytes,
            "{item}"
        );
        let last = peer.file_requests().last().unwrap().clone();
        let range = if resumed { "bytes=10000-" } else { "bytes=0-" };
        assert_eq!((last.0.as_str(), last.1.as_deref()), (item, Some(range)));
        assert_eq!(row.restarts, u32::from(!resumed), "{item}");
        assert_eq!(row.expected_bytes, bytes.len() as u64);
    }
}

/// A row whose stub failed a check never transfers a byte: neither a
/// re-grab nor `jack retry` skips the checks.
#[test]
fn a_stub_that_failed_a_check_never_transfers_a_byte() {
    let data = pattern(5000);
    let evil = fake_peer::File {
        id: "evil".into(),
        filename: "../evil.mkv".into(),
        data: data.clone(),
    };
    let peer = FakePeer::start(vec![evil], vec![], None);
    let bed = Bed::start(&peer, "");
    let stub = jack::stub::build("alice", "evil", "evil", data.len() as u64);
    let Added::Failed(id, error) = bed
        .downloads
        .add_stub("e.torrent", &stub, Start::Now)
        .unwrap()
    else {
        panic!("unsafe name accepted")
    };
    assert!(error.contains("unsafe file name"), "{error}");
    // Grabbed again: every check again, still failed.
    assert!(matches!(
        bed.downloads.add_stub("e2.torrent", &stub, Start::Now).unwrap(),
        Added::Failed(i, _) if i == id
    ));
    // Retried through the registry (`jack retry`): checked again by the worker.
    bed.registry.retry(id, jack::db::RESUMED).unwrap();
    bed.downloads.pick_up_queued_rows().unwrap();
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Failed);
    assert!(row.error.unwrap().contains("unsafe file name"));
    assert!(peer.file_requests().is_empty(), "no file request at all");
    assert!(!row.part_path.exists(), "no .part was ever created");
}

/// PROTOCOL.md §2.2: a release named like jack's own temporary files, a
/// hidden file, or with spaces at either end is refused with an error
/// that names it; nothing is asked of the file and nothing lands in
/// `completed_dir` (where such a name would be removed at the next start,
/// or break SMB shares and *arr imports).
#[test]
fn a_release_with_a_bad_file_name_fails_and_names_it() {
    let data = pattern(5000);
    let names = [".jack-x.partial~", ".hidden.mkv", "  spaced.mkv  "];
    let files = names
        .iter()
        .enumerate()
        .map(|(i, name)| fake_peer::File {
            id: format!("bad{i}"),
            filename: name.to_string(),
            data: data.clone(),
        })
        .collect();
    let peer = FakePeer::start(files, vec![], None);
    let bed = Bed::start(&peer, "");
    for (i, name) in names.iter().enumerate() {
        let item = format!("bad{i}");
        let stub = jack::stub::build("alice", &item, &item, data.len() as u64);
        let Added::Failed(id, error) = bed
            .downloads
            .add_stub(&format!("{item}.torrent"), &stub, Start::Now)
            .unwrap()
        else {
            panic!("{name:?} accepted")
        };
        let quoted = format!("{name:?}");
        assert!(error.contains(&quoted), "{name:?}: {error}");
        let row = bed.registry.get(id).unwrap().unwrap();
        assert_eq!(row.status, Status::Failed, "{name:?}");
        assert!(row.error.unwrap().contains(&quoted), "{name:?}");
    }
    assert!(peer.file_requests().is_empty(), "no file request at all");
    let completed: Vec<_> = std::fs::read_dir(bed.dir.path().join("data/completed"))
        .unwrap()
        .collect();
    assert!(completed.is_empty(), "{completed:?}");
}

/// A `.part` shorter than the recorded progress lowers the progress before
/// anything new is written (the registry never claims missing bytes).
#[test]
fn a_part_shorter_than_recorded_progress_lowers_it_first() {
    let data = pattern(40_000);
    let peer = FakePeer::start(vec![file("m", &data)], vec![Mode::Status(404, None)], None);
    let dir = tempfile::tempdir().unwrap();
    let (reg, id) = stale_row(&dir, &data[..10_000], 20_000);
    drop(reg);
    let bed = Bed::start_in(dir, &peer, "");
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Failed);
    assert_eq!(peer.file_requests()[0].1.as_deref(), Some("bytes=10000-"));
    assert_eq!(row.downloaded_bytes, 10_000, "no claim beyond the .part");
}

/// The copy hand-off (two mounts): the file arrives whole under its final
/// name through a hidden temporary copy, which is gone afterwards, and the
/// copy shows in the events.
#[test]
fn the_copy_hand_off_delivers_whole_files_only() {
    let data = pattern(SIZE);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    let bed = Bed::start_copying(&peer, "");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
    let names: Vec<String> = std::fs::read_dir(bed.dir.path().join("data/completed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["m.mkv"], "no temporary copy left");
    assert!(!row.part_path.exists());
    let copy = bed.events(id, "hand_off");
    assert!(copy[0].starts_with("copying"), "{copy:?}");
    assert!(copy.last().unwrap().starts_with("copied"), "{copy:?}");
    // The registry named the copy before it got the final name (rule 13).
    let meta = std::fs::metadata(bed.completed("m.mkv")).unwrap();
    assert_eq!(
        row.handoff_file,
        Some(jack::download::handoff::file_id(&meta))
    );

    // A file that takes the final name first is never replaced; the copy
    // is removed.
    a_taken_final_name_is_left_alone(HandOffMode::Copy);
}

/// A file that takes the final name while the download runs is never
/// replaced by the hand-off `mode`: the row fails `destination exists`,
/// nothing else is left in the folder, and the `.part` is kept.
fn a_taken_final_name_is_left_alone(mode: HandOffMode) {
    let data = pattern(50_000);
    let peer = FakePeer::start(
        vec![file("m", &data)],
        vec![Mode::Stall(10_000, Duration::from_millis(300))],
        None,
    );
    let bed = Bed::start_handing_off(&peer, "", mode);
    let id = bed.add("m", data.len());
    wait_until(|| !peer.file_requests().is_empty());
    std::fs::write(bed.completed("m.mkv"), b"mine").unwrap();
    let row = bed.wait_done(id);
    assert_eq!(row.error.as_deref(), Some("destination exists"), "{mode:?}");
    assert_eq!(std::fs::read(bed.completed("m.mkv")).unwrap(), b"mine");
    let in_folder = std::fs::read_dir(bed.dir.path().join("data/completed"))
        .unwrap()
        .count();
    assert_eq!(in_folder, 1, "{mode:?}: only the file that was there");
    assert!(row.part_path.exists(), "{mode:?}: the .part is kept");
}

/// Where the filesystem has no hard links, the hand-off is a rename that
/// refuses to replace: the file arrives, and a taken name stays untouched.
#[test]
fn the_rename_hand_off_never_replaces() {
    let data = pattern(50_000);
    let peer = FakePeer::one("m", &data);
    let bed = Bed::start_handing_off(&peer, "", HandOffMode::Rename);
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
    assert!(!row.part_path.exists());
    let meta = std::fs::metadata(bed.completed("m.mkv")).unwrap();
    assert_eq!(
        row.handoff_file,
        Some(jack::download::handoff::file_id(&meta))
    );

    a_taken_final_name_is_left_alone(HandOffMode::Rename);
}

/// Completions are announced once recorded (the *arr plane's import scan
/// listens), and only for downloads that completed.
#[test]
fn completions_are_announced_once_recorded() {
    let data = pattern(20_000);
    let peer = FakePeer::one("m", &data);
    let bed = Bed::start(&peer, "");
    let done = bed.downloads.completions();
    let id = bed.add("m", data.len());
    assert_eq!(done.recv_timeout(Duration::from_secs(10)), Ok(id));
    assert_eq!(
        bed.registry.get(id).unwrap().unwrap().status,
        Status::Completed
    );
    let gone = jack::stub::build("alice", "gone", "gone", 10);
    assert!(matches!(
        bed.downloads
            .add_stub("g.torrent", &gone, Start::Now)
            .unwrap(),
        Added::Failed(..)
    ));
    assert!(done.recv_timeout(Duration::from_millis(300)).is_err());
}

/// Issue 13, 1: an uplink that drops every connection after 100 KB still
/// delivers a 1 MiB file with `max_attempts = 3`: each attempt made
/// durable progress, so none counts against the bound, and every
/// interruption is still an event.
#[test]
fn progress_is_not_failure() {
    let data = pattern(1024 * 1024);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    peer.set_fallback(Mode::Cut(100_000));
    let bed = Bed::start(&peer, "max_attempts = 3");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == data);
    let requests = peer.file_requests().len();
    assert_eq!(requests, 11, "100,000 bytes a request, each resumed");
    assert_eq!(row.restarts, 0);
    assert_eq!(row.attempts, 1, "attempts count those without progress");
    let retries = bed.events(id, "retry_scheduled");
    assert_eq!(retries.len(), 10, "every interruption is an event");
    assert!(
        retries.iter().all(|d| d.contains("made progress")),
        "{retries:?}"
    );
}

/// ...while attempts that make no progress still give up after
/// `max_attempts`: a connection dropped before any body byte, a 503, and
/// bytes below `progress_bytes`.
#[test]
fn failures_without_progress_still_give_up() {
    let data = pattern(1024 * 1024);
    for (mode, extra) in [
        (Mode::Cut(0), ""),
        (Mode::Status(503, None), ""),
        (Mode::Cut(1000), "progress_bytes = 2000"),
    ] {
        let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
        peer.set_fallback(mode.clone());
        let bed = Bed::start(&peer, &format!("max_attempts = 3\n{extra}"));
        let id = bed.add("m", data.len());
        let row = bed.wait_done(id);
        assert_eq!(row.status, Status::Failed, "{mode:?}");
        assert!(
            row.error
                .as_deref()
                .unwrap()
                .starts_with("gave up after 3 attempts without progress"),
            "{mode:?}: {:?}",
            row.error
        );
        assert_eq!(peer.file_requests().len(), 3, "{mode:?}");
    }
}

/// Issue 13, 2: a friend replaces the file mid-download by a larger one.
/// The release is looked up again, the row takes the new size and ETag
/// (an event names both sizes), and the new version completes byte-exact.
#[test]
fn a_replaced_file_is_looked_up_again_and_fetched_anew() {
    let old = pattern(1024 * 1024);
    let new: Vec<u8> = pattern(1536 * 1024).iter().map(|b| b ^ 0x5a).collect();
    let script = vec![Mode::CutAndReplace(300_000, new.clone())];
    let peer = FakePeer::start(vec![file("m", &old)], script, None);
    let bed = Bed::start(&peer, "max_attempts = 3");
    let id = bed.add("m", old.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == new);
    assert_eq!(row.expected_bytes, new.len() as u64);
    assert_eq!(row.downloaded_bytes, new.len() as u64);
    assert_eq!(row.etag.as_deref(), Some("\"fake-etag-2\""));
    let changed = bed.events(id, "changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].contains("the peer's file changed: 1048576 → 1572864 bytes"),
        "{changed:?}"
    );
    let requests = peer.file_requests();
    assert_eq!(requests.len(), 3, "cut, changed, the new version");
    assert_eq!(requests[2].1.as_deref(), Some("bytes=0-"));
}

/// The item is gone when the release is looked up again: the download
/// fails at once with that reason.
#[test]
fn a_changed_file_whose_item_is_gone_fails_at_once() {
    let data = pattern(1024 * 1024);
    let script = vec![Mode::Cut(300_000), Mode::Vanish];
    let peer = FakePeer::start(vec![file("m", &data)], script, None);
    let bed = Bed::start(&peer, "max_attempts = 5");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Failed);
    let error = row.error.unwrap();
    assert!(
        error.starts_with("the peer's file changed (size_changed) and") && error.contains("404"),
        "{error}"
    );
    assert_eq!(peer.file_requests().len(), 2, "no retry");
}

/// A peer whose file changes on every request: at most `MAX_CHANGES`
/// lookups per attempt, each such attempt counts without progress, and the
/// download fails after `max_attempts`, not never.
#[test]
fn a_file_that_changes_on_every_request_is_not_followed_forever() {
    let data = pattern(200_000);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    let bed = Bed::start(&peer, "max_attempts = 3");
    peer.change_on_every_request();
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Failed);
    let error = row.error.unwrap();
    assert!(
        error.starts_with("gave up after 3 attempts without progress: the peer's file changed more than 3 times in one attempt"),
        "{error}"
    );
    let per_attempt = jack::download::downloads::MAX_CHANGES + 1;
    assert_eq!(peer.file_requests().len(), 3 * per_attempt);
    assert_eq!(bed.events(id, "changed").len(), 3 * (per_attempt - 1));
}

// Issue 18: who owns the bytes on disk (PROTOCOL.md §2.4, top paragraph).

/// A row cut at 10,000 bytes and then failed for good (the peer answers
/// 404), so a re-grab finds it idle.
fn cut_then_failed(peer: &FakePeer, bed: &Bed, data: &[u8]) -> i64 {
    peer.push(Mode::Cut(10_000));
    peer.set_fallback(Mode::Status(404, None));
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!((row.status, row.downloaded_bytes), (Status::Failed, 10_000));
    peer.set_fallback(Mode::Honest);
    id
}

/// Item 1: the peer's Release has no `etag` (an old node). The row learned
/// the ETag from the file answers; a re-grab of the same stub must not
/// forget it, or a same-size replacement is appended to the old prefix.
#[test]
fn a_regrab_never_forgets_a_learned_etag() {
    let old = pattern(40_000);
    let new: Vec<u8> = old.iter().map(|b| b ^ 0xA5).collect();
    let peer = FakePeer::start(vec![file("m", &old)], vec![], None);
    peer.hide_etag_in_release(true);
    let bed = Bed::start(&peer, "");
    let id = cut_then_failed(&peer, &bed, &old);
    assert_eq!(
        bed.registry.get(id).unwrap().unwrap().etag.as_deref(),
        Some(fake_peer::ETAG),
        "learned from the file answer"
    );
    let stub = jack::stub::build("alice", "m", "m", old.len() as u64);
    assert_eq!(
        bed.downloads
            .add_stub("m.torrent", &stub, Start::Now)
            .unwrap(),
        Added::Regrabbed(id)
    );
    let row = bed.registry.get(id).unwrap().unwrap();
    assert_eq!(row.etag.as_deref(), Some(fake_peer::ETAG), "kept");
    peer.replace("m", new.clone());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(
        std::fs::read(bed.completed("m.mkv")).unwrap() == new,
        "the new version whole, never the old prefix and the new rest"
    );
    assert!(
        bed.reasons(id).iter().any(|r| r.contains("etag_changed")),
        "{:?}",
        bed.reasons(id)
    );
}

/// Item 2a: a download deleted keeping its files, then the release grabbed
/// again: the new row never inherits the old `.part` (nor its written
/// record), and the kept `.part` is left as it was.
#[test]
fn a_new_row_never_inherits_the_bytes_of_a_removed_one() {
    let old = pattern(40_000);
    let new: Vec<u8> = old.iter().map(|b| b ^ 0x3C).collect();
    let peer = FakePeer::start(vec![file("m", &old)], vec![], None);
    let bed = Bed::start(&peer, "");
    let first = cut_then_failed(&peer, &bed, &old);
    let kept = bed.registry.get(first).unwrap().unwrap().part_path;
    assert!(bed.downloads.remove(first, false).unwrap());
    assert!(bed.registry.get(first).unwrap().is_none());
    peer.replace("m", new.clone());
    let second = bed.add("m", old.len());
    let row = bed.wait_done(second);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(std::fs::read(bed.completed("m.mkv")).unwrap() == new);
    assert_ne!(row.part_path, kept, "a .part per row");
    assert_eq!(
        peer.file_requests().last().unwrap().1.as_deref(),
        Some("bytes=0-"),
        "nothing resumed from another row's bytes"
    );
    assert!(
        std::fs::read(&kept).unwrap() == old[..10_000],
        "the kept .part is untouched"
    );
}

/// Item 3: a running download removed, and its release grabbed again
/// before its transfer has stopped. The new row waits until the old
/// worker has let go, writes its own `.part`, and the completed file is
/// the peer's and stays so.
#[test]
fn a_release_being_removed_stays_busy_until_its_worker_lets_go() {
    let data = pattern(SIZE);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    // The first transfer sends 100,000 bytes, then nothing: the worker is
    // in a read when the removal comes (idle_timeout is 400 ms).
    peer.push(Mode::Stall(100_000, Duration::from_secs(2)));
    let bed = Bed::start(&peer, "");
    let first = bed.add("m", data.len());
    wait_until(|| {
        bed.downloads
            .live_bytes(first)
            .is_some_and(|n| n >= 100_000)
    });
    let old_part = bed.registry.get(first).unwrap().unwrap().part_path;
    assert!(!bed.downloads.remove(first, true).unwrap(), "running");
    let stub = jack::stub::build("alice", "m", "m", data.len() as u64);
    let Added::Queued(second) = bed
        .downloads
        .add_stub("again.torrent", &stub, Start::Now)
        .unwrap()
    else {
        panic!("a new download once the old one is gone")
    };
    assert!(
        bed.registry.get(first).unwrap().is_none(),
        "queued only after the removed row's worker let go"
    );
    let row = bed.wait_done(second);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert_ne!(row.part_path, old_part);
    let done = bed.completed("m.mkv");
    assert!(std::fs::read(&done).unwrap() == data);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        std::fs::read(&done).unwrap() == data,
        "never written after its hand-off"
    );
}

/// Item 6: a peer that cuts every transfer at 200 KB and answers each
/// resume with an earlier, block-aligned start. Fetching the discarded
/// prefix again is not progress: the download fails after `max_attempts`
/// instead of looping, having fetched a small multiple of the file.
#[test]
fn refetching_discarded_bytes_is_not_progress() {
    let data = pattern(2 * 1024 * 1024);
    let peer = FakePeer::start(vec![file("m", &data)], vec![], None);
    peer.set_fallback(Mode::EarlierStart {
        cut_at: 200_000,
        block: 64 * 1024,
    });
    let bed = Bed::start(&peer, "max_attempts = 3");
    let id = bed.add("m", data.len());
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Failed);
    let error = row.error.unwrap();
    assert!(
        error.starts_with("gave up after 3 attempts without progress"),
        "{error}"
    );
    let sent = peer
        .record
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent <= 2 * data.len() as u64, "{sent} bytes sent");
    assert!(
        peer.file_requests().len() <= 8,
        "{:?}",
        peer.file_requests()
    );
    assert_eq!(row.high_water, 200_000);
}

/// The `.part` of row `id` holding `bytes`, and a written record that
/// vouches for all of them (as a process killed before its first
/// checkpoint leaves it).
fn written_part(path: &std::path::Path, id: i64, bytes: &[u8]) {
    use jack::download::written::{Owner, Record};
    std::fs::write(path, bytes).unwrap();
    let part = std::fs::File::open(path).unwrap();
    let owner = Owner {
        row: id,
        generation: 0,
    };
    Record::open(path, &part, owner, true).set(bytes.len() as u64);
}

/// Item 2b: killed before the first checkpoint (nothing durable, the
/// written record vouching for 10,000 bytes), the friend's file changes
/// and the release is grabbed again before the row resumes. The re-grab
/// must let go of the old bytes although none were durable.
#[test]
fn a_regrab_of_another_version_lets_go_of_unsynced_bytes() {
    let old = pattern(40_000);
    let new: Vec<u8> = old.iter().map(|b| b ^ 0x5A).collect();
    let blocker = pattern(5000);
    let files = vec![file("m", &old), file("blocker", &blocker)];
    let peer = FakePeer::start(files, vec![], None);
    // The one worker is busy with another download meanwhile.
    peer.push(Mode::Stall(1000, Duration::from_millis(1500)));
    let bed = Bed::start(&peer, "max_concurrent_downloads = 1");
    let busy = bed.add("blocker", blocker.len());
    wait_until(|| bed.downloads.live_bytes(busy).is_some());
    let stub = jack::stub::build("alice", "m", "m", old.len() as u64);
    let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
    let part = bed.dir.path().join("data/incomplete/killed.part");
    let id = bed
        .registry
        .insert(&NewDownload {
            stub_name: "m.torrent".into(),
            info_hash: hash,
            peer: "alice".into(),
            item_id: "m".into(),
            title: "m".into(),
            file_name: "m.mkv".into(),
            part_path: part.clone(),
            dest_path: bed.completed("m.mkv"),
            etag: Some(fake_peer::ETAG.into()),
            expected_bytes: old.len() as u64,
            sha256: None,
            search: None,
        })
        .unwrap();
    written_part(&part, id, &old[..10_000]);
    peer.replace("m", new.clone());
    assert_eq!(
        bed.downloads
            .add_stub("again.torrent", &stub, Start::Now)
            .unwrap(),
        Added::Regrabbed(id)
    );
    let row = bed.wait_done(id);
    assert_eq!(row.status, Status::Completed, "{:?}", row.error);
    assert!(
        std::fs::read(bed.completed("m.mkv")).unwrap() == new,
        "the new version whole"
    );
    let asked: Vec<_> = peer
        .file_requests()
        .into_iter()
        .filter(|r| r.0 == "m")
        .map(|r| r.1)
        .collect();
    assert_eq!(asked, [Some("bytes=0-".to_string())], "from byte 0 only");
}

/// Item 2c: a re-grab of another version commits the new source before it
/// truncates the `.part`; a crash in between must leave nothing that
/// vouches for the old bytes (the registry's commit gives them a new
/// generation in the same transaction).
#[test]
fn a_regrabs_commit_alone_already_disowns_the_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, id) = stale_row(&dir, &pattern(20_000), 10_000);
    let row = registry.get(id).unwrap().unwrap();
    written_part(&row.part_path, id, &pattern(20_000));
    let meta = std::fs::metadata(&row.part_path).unwrap();
    use jack::download::transfer::resume_point;
    assert_eq!(resume_point(&row, &meta, true), 20_000, "vouched for");
    let new = NewDownload {
        stub_name: "again.torrent".into(),
        info_hash: row.info_hash.clone(),
        peer: "alice".into(),
        item_id: "other".into(),
        title: row.title.clone(),
        file_name: row.file_name.clone(),
        part_path: row.part_path.clone(),
        dest_path: row.dest_path.clone(),
        etag: Some("\"v2\"".into()),
        expected_bytes: row.expected_bytes,
        sha256: None,
        search: None,
    };
    registry
        .replace_source(id, &new, Some("source_changed"), false, "another version")
        .unwrap();
    // ...and the process dies before the truncation.
    let row = registry.get(id).unwrap().unwrap();
    assert_eq!(
        resume_point(&row, &meta, true),
        0,
        "nothing vouches any more"
    );
}
