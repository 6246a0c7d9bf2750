//! A full disk pauses a download without counting a network retry, renames
//! nothing, and the download resumes by itself once space returns. Its own
//! test binary: the injected disk limit is process-wide.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jack::config::Config;
use jack::db::{Registry, Status};
use jack::download::downloads::{Added, Downloads, Start};
use jack::download::retry::SeededRng;
use support::fake_peer::FakePeer;
use support::pattern;

#[test]
fn a_full_disk_pauses_and_the_download_resumes_when_space_returns() {
    let data = pattern(300_000);
    let peer = FakePeer::one("m", &data);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\napi_key = \"k\"\n[downloads]\ndisk_full_retry_ms = 200\nretry_base_delay_ms = 1\nretry_max_delay_ms = 10\n[[peers]]\nname = \"alice\"\nurl = \"http://{}\"\napi_key = \"k\"\n",
        peer.addr
    );
    let config = Config::parse(&text, &dir.path().join("jack.toml"), &|_| None).unwrap();
    config.create_dirs().unwrap();
    let registry = Arc::new(Registry::open(&config.database.path).unwrap());
    jack::fault::set_disk_limit(Some(100_000));
    let clock = Arc::new(jack::clock::SystemClock);
    let rng = Box::new(SeededRng::new(1));
    let (downloads, pool) = Downloads::start(registry.clone(), &config, rng, clock).unwrap();
    let stub = jack::stub::build("alice", "m", "m", data.len() as u64);
    let Added::Queued(id) = downloads.add_stub("m.torrent", &stub, Start::Now).unwrap() else {
        panic!("not queued")
    };
    let wait = |want: Status| {
        let start = Instant::now();
        loop {
            let row = registry.get(id).unwrap().unwrap();
            if row.status == want {
                return row;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "still {:?}",
                row.status
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let row = wait(Status::Retrying);
    assert_eq!(row.error.as_deref(), Some("disk full"));
    assert_eq!(row.attempts, 0, "a full disk is not a network retry");
    assert!(row.downloaded_bytes <= 100_000);
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/completed"))
            .unwrap()
            .count(),
        0,
        "nothing renamed"
    );
    // It keeps waiting (and trying) while the disk is full...
    std::thread::sleep(Duration::from_millis(600));
    let row = registry.get(id).unwrap().unwrap();
    assert!(
        matches!(row.status, Status::Retrying | Status::Downloading),
        "{:?}",
        row.status
    );
    assert_eq!(row.attempts, 0);
    // ...and completes by itself once space returns.
    jack::fault::set_disk_limit(None);
    let row = wait(Status::Completed);
    assert!(std::fs::read(dir.path().join("data/completed/m.mkv")).unwrap() == data);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.restarts, 0);
    let kinds: Vec<String> = registry
        .events(id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"retry_scheduled".to_string()), "{kinds:?}");
    assert!(
        !kinds.contains(&"paused".to_string()),
        "not the owner's pause: {kinds:?}"
    );
    pool.shutdown(Duration::from_secs(2));
}
