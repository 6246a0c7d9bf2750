//! Crashes, restarts and power loss: start-up reconciliation on real files
//! and a real registry, every crash point of the durability sequences with
//! the real binary, a kill -9 loop, and SIGTERM during active downloads.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jack::config::Config;
use jack::db::{NewDownload, Registry, Status};
use jack::download::reconcile::{self, Decision};
use support::fake_peer::{self, FakePeer};
use support::{
    KEY, Node, Site, downloader, drop_stub, item_id, pattern, request, serving_site, status_json,
    wait_for,
};

const NAME: &str = "Crash.Test.2024.1080p.mkv";

fn completed_files(site: &support::Site) -> Vec<PathBuf> {
    std::fs::read_dir(site.path().join("data/completed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The length of a site's `.part` (0 while there is none).
fn part_len(site: &support::Site) -> u64 {
    part_files(site)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

fn part_files(site: &support::Site) -> Vec<PathBuf> {
    std::fs::read_dir(site.path().join("data/incomplete"))
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_crash_point_recovers_to_one_exact_file() {
    let data = pattern(3 * 1024 * 1024 + 5);
    let (_a, alice) = serving_site("", &[(NAME, &data)]);
    let id = item_id(alice.addr, NAME);
    let stub = jack::stub::build("alice", &id, "Crash.Test.2024.1080p", data.len() as u64);
    // (crash point, the folders cannot be linked across: the copy hand-off)
    let link = support::CRASH_POINTS;
    let copy = [
        "finalize:after_fsync",
        "copy:after_create",
        "copy:after_first_chunk",
        "copy:after_sync",
        "copy:after_place",
        "copy:after_dir_fsync",
        "copy:after_part_removed",
    ];
    let cases = link
        .iter()
        .map(|p| (*p, false))
        .chain(copy.iter().map(|p| (*p, true)));
    for (point, across) in cases {
        let b = downloader(alice.addr, "");
        let exdev = if across { "1" } else { "0" };
        let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
        cmd.env("JACK_CRASH_AT", point)
            .env("JACK_FAULT_EXDEV", exdev);
        let mut node = Node::spawn(cmd);
        drop_stub(&b, "c.torrent", &stub);
        let status = node
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{point}: never crashed"));
        assert!(!status.success(), "{point}: the process aborted");
        assert!(
            node.log_text()
                .contains(&format!("crash point {point} reached")),
            "{point}"
        );
        drop(node);

        let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
        cmd.env("JACK_FAULT_EXDEV", exdev);
        let again = Node::spawn(cmd);
        let mode = if across { "copy" } else { "link" };
        assert!(again.log_text().contains(&format!("hand-off mode={mode}")));
        let dest = b.path().join("data/completed").join(NAME);
        wait_for(point, Duration::from_secs(20), || {
            status_json(&b)["downloads"][0]["status"] == "completed"
        });
        assert!(
            std::fs::read(&dest).unwrap() == data,
            "{point}: final bytes differ"
        );
        assert_eq!(
            completed_files(&b),
            vec![dest],
            "{point} ({mode}): exactly one final file, no temporary copy"
        );
        assert!(
            part_files(&b).is_empty(),
            "{point}: .part left: {:?}",
            part_files(&b)
        );
        drop(again);
    }
}

/// The most common container set-up: `incomplete_dir` and `completed_dir`
/// are two bind mounts of one filesystem (equal `st_dev`, but `link(2)`
/// and `rename(2)` fail with `EXDEV`). In a private mount namespace where
/// the machine allows one (root with CAP_SYS_ADMIN), else with an injected
/// `EXDEV`: the start-up probe picks the copy hand-off and the file
/// arrives whole.
#[test]
fn two_bind_mounts_of_one_filesystem_hand_off_by_copy() {
    let data = pattern(5 * 1024 * 1024 + 3);
    let peer = FakePeer::one("f", &data);
    let b = downloader(peer.addr, "");
    let volume = b.path().join("volume");
    for dir in [
        "volume/incomplete",
        "volume/completed",
        "data/incomplete",
        "data/completed",
    ] {
        std::fs::create_dir_all(b.path().join(dir)).unwrap();
    }
    let bind = |from: &str, to: &str| {
        format!(
            "mount --bind {} {}",
            volume.join(from).display(),
            b.path().join(to).display()
        )
    };
    let mounts = format!(
        "{} && {}",
        bind("incomplete", "data/incomplete"),
        bind("completed", "data/completed")
    );
    // unshare -m: a private mount namespace that ends with the process.
    let can_mount = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &mounts])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd;
    if can_mount {
        cmd = std::process::Command::new("unshare");
        let run = format!(
            "{mounts} && exec {} --config {} run",
            support::jack_argv().join(" "),
            b.config().display()
        );
        cmd.args(["-m", "sh", "-c", &run])
            .current_dir(b.path())
            .env_remove("JACK_CONFIG")
            .env_remove("JACK_LOG");
    } else {
        eprintln!("no private mount namespace here: EXDEV is injected instead");
        cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
        cmd.env("JACK_FAULT_EXDEV", "1");
    }
    let node = Node::spawn(cmd);
    assert!(
        node.log_text().contains("hand-off mode=copy"),
        "{}",
        node.log_text()
    );
    drop_stub(
        &b,
        "f.torrent",
        &jack::stub::build("alice", "f", "f", data.len() as u64),
    );
    // What the node sees as data/completed is volume/completed.
    let completed = if can_mount {
        volume.join("completed")
    } else {
        b.path().join("data/completed")
    };
    let incomplete = completed.with_file_name("incomplete");
    wait_for("the final file", Duration::from_secs(20), || {
        status_json(&b)["downloads"][0]["status"] == "completed"
    });
    assert!(std::fs::read(completed.join("f.mkv")).unwrap() == data);
    let names: Vec<_> = std::fs::read_dir(&completed)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["f.mkv"], "no temporary copy left");
    assert_eq!(
        std::fs::read_dir(&incomplete).unwrap().count(),
        0,
        "no .part left"
    );
    let v = status_json(&b);
    assert_eq!(v["downloads"][0]["error"], serde_json::Value::Null);
    drop(node);
}

/// When the registry cannot record a completion (a full disk, a locked
/// database), the outcome is recorded again later: the file is not fetched
/// again and the hand-off is not repeated.
#[test]
fn a_completion_the_registry_could_not_record_is_recorded_not_refetched() {
    let data = pattern(3 * 1024 * 1024);
    let peer = FakePeer::one("f", &data);
    let b = downloader(peer.addr, "disk_full_retry_ms = 200");
    let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
    cmd.env("JACK_FAULT_RECORD_FAILS", "2");
    let node = Node::spawn(cmd);
    drop_stub(
        &b,
        "f.torrent",
        &jack::stub::build("alice", "f", "f", data.len() as u64),
    );
    wait_for("the completion", Duration::from_secs(20), || {
        status_json(&b)["downloads"][0]["status"] == "completed"
    });
    assert!(
        node.log_text().contains("JACK_FAULT_RECORD_FAILS"),
        "the fault happened"
    );
    let dest = b.path().join("data/completed/f.mkv");
    assert!(std::fs::read(&dest).unwrap() == data);
    assert_eq!(completed_files(&b), vec![dest]);
    assert!(part_files(&b).is_empty(), "no second .part");
    assert_eq!(peer.file_requests().len(), 1, "fetched once");
    assert_eq!(
        peer.record.body_bytes.load(Ordering::SeqCst),
        data.len() as u64
    );
    let reg = Registry::open(&b.path().join("data/jack.db")).unwrap();
    let kinds: Vec<String> = reg.events(1).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "completed").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "started").count(),
        1,
        "{kinds:?}"
    );
    drop(node);
}

/// §3: a stub is processed once, across restarts too. Failed and invalid
/// stubs are set aside (`.failed`, `.invalid`) and never read again; even
/// a stub left under its own name is not processed again by a restart
/// (the registry remembers it); a stub written anew is a new grab.
#[test]
fn a_restart_processes_no_stub_twice() {
    let data = pattern(20_000);
    let peer = FakePeer::one("m", &data);
    let b = downloader(peer.addr, "stub_settle_ms = 200");
    let watch = b.path().join("data/watch");
    let mut node = b.start();
    let gone = jack::stub::build("alice", "gone", "gone", 100);
    drop_stub(&b, "gone.torrent", &gone);
    drop_stub(&b, "broken.torrent", b"this is not bencode");
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", data.len() as u64),
    );
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&watch)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    wait_for("stubs set aside", Duration::from_secs(10), || {
        names() == ["broken.torrent.invalid", "gone.torrent.failed"]
    });
    wait_for("the download", Duration::from_secs(10), || {
        b.path().join("data/completed/m.mkv").exists()
    });
    node.stop_gracefully("TERM");
    drop(node);
    let events = || {
        let reg = Registry::open(&b.path().join("data/jack.db")).unwrap();
        let rows = reg.list().unwrap();
        let n: usize = rows.iter().map(|d| reg.events(d.id).unwrap().len()).sum();
        (rows.len(), n)
    };
    let before = (peer.record.all_requests.load(Ordering::SeqCst), events());
    // As if the rename had not happened: the same stub, same bytes and
    // modification time, under its own name.
    std::fs::rename(
        watch.join("gone.torrent.failed"),
        watch.join("gone.torrent"),
    )
    .unwrap();

    let node = b.start();
    // Several scans (every 100 ms).
    std::thread::sleep(Duration::from_millis(800));
    let after = (peer.record.all_requests.load(Ordering::SeqCst), events());
    assert_eq!(after, before, "no request, no new event, no new row");
    assert!(watch.join("gone.torrent").exists());

    // Written anew (a re-grab): a new grab, checked again.
    drop_stub(&b, "gone.torrent", &gone);
    wait_for("the re-grab", Duration::from_secs(10), || {
        watch.join("gone.torrent.failed").exists()
    });
    assert!(peer.record.all_requests.load(Ordering::SeqCst) > before.0);
    let (rows, n) = events();
    assert_eq!(rows, before.1.0, "still one row per release");
    assert!(n > before.1.1);
    drop(node);
}

/// A registry and folders as a crash left them.
struct Scene {
    /// Kept so the folders live as long as the scene.
    _dir: tempfile::TempDir,
    config: Config,
    registry: Registry,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(
            "[server]\napi_key = \"k\"\n[[peers]]\nname = \"alice\"\nurl = \"http://127.0.0.1:9\"\napi_key = \"k\"\n",
            &dir.path().join("jack.toml"),
            &|_| None,
        )
        .unwrap();
        config.create_dirs().unwrap();
        let registry = Registry::open(&config.database.path).unwrap();
        Scene {
            _dir: dir,
            config,
            registry,
        }
    }

    fn row(&self, name: &str, expected: u64, durable: u64, part: Option<&[u8]>) -> i64 {
        let part_path = self
            .config
            .downloads
            .incomplete_dir
            .join(format!("{name}.part"));
        if let Some(bytes) = part {
            std::fs::write(&part_path, bytes).unwrap();
        }
        let id = self
            .registry
            .insert(&NewDownload {
                stub_name: format!("{name}.torrent"),
                info_hash: format!("{name:0>40}"),
                peer: "alice".into(),
                item_id: name.into(),
                title: name.into(),
                file_name: format!("{name}.mkv"),
                part_path,
                dest_path: self.dest(name),
                etag: None,
                expected_bytes: expected,
                sha256: None,
                search: None,
            })
            .unwrap();
        self.registry.set_progress(id, durable).unwrap();
        id
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.config
            .downloads
            .completed_dir
            .join(format!("{name}.mkv"))
    }

    fn reconcile(&self) -> reconcile::Summary {
        reconcile::run(&self.registry, &self.config.downloads).unwrap()
    }

    fn get(&self, id: i64) -> jack::db::Download {
        self.registry.get(id).unwrap().unwrap()
    }

    fn reconciled(&self, id: i64) -> Vec<String> {
        self.registry
            .events(id)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "reconciled")
            .map(|e| e.detail)
            .collect()
    }
}

#[test]
fn start_up_reconciliation_table() {
    let s = Scene::new();
    let missing = s.row("missing", 100, 40, None);
    let longer = s.row("longer", 100, 40, Some(&[1; 60]));
    let shorter = s.row("shorter", 100, 40, Some(&[1; 30]));
    let too_long = s.row("toolong", 100, 0, Some(&[1; 150]));
    let exact = s.row("exact", 100, 100, Some(&[1; 100]));
    // The hand-off named the file in the registry, then placed it.
    let adopted = s.row("adopted", 100, 100, None);
    std::fs::write(s.dest("adopted"), [1; 100]).unwrap();
    let meta = std::fs::metadata(s.dest("adopted")).unwrap();
    s.registry
        .set_handoff_file(adopted, &jack::download::handoff::file_id(&meta))
        .unwrap();
    // The operator's own file of the same size at a row's destination.
    let foreign = s.row("foreign", 100, 0, None);
    std::fs::write(s.dest("foreign"), [2; 100]).unwrap();
    let linked = s.row("linked", 100, 100, Some(&[1; 100]));
    std::fs::hard_link(
        s.config.downloads.incomplete_dir.join("linked.part"),
        s.dest("linked"),
    )
    .unwrap();
    // Two live rows for one destination: the one with more progress stays.
    let dup_a = s.row("dup", 100, 10, Some(&[1; 10]));
    let dup_b = {
        let id = s
            .registry
            .insert(&NewDownload {
                stub_name: "dup2.torrent".into(),
                info_hash: "d".repeat(40),
                peer: "alice".into(),
                item_id: "dup2".into(),
                title: "dup2".into(),
                file_name: "dup.mkv".into(),
                part_path: s.config.downloads.incomplete_dir.join("dup2.part"),
                dest_path: s.dest("dup"),
                etag: None,
                expected_bytes: 100,
                sha256: None,
                search: None,
            })
            .unwrap();
        std::fs::write(s.config.downloads.incomplete_dir.join("dup2.part"), [1; 50]).unwrap();
        s.registry.set_progress(id, 50).unwrap();
        id
    };
    let waiting = s.row("waiting", 100, 20, Some(&[1; 20]));
    s.registry
        .transition(
            waiting,
            Status::Retrying,
            Some("disk full"),
            jack::db::EventKind::RetryScheduled,
            "disk full",
        )
        .unwrap();
    let paused = s.row("paused", 100, 20, Some(&[1; 20]));
    s.registry
        .transition(
            paused,
            Status::Paused,
            None,
            jack::db::EventKind::Paused,
            jack::db::PAUSED,
        )
        .unwrap();
    std::fs::write(
        s.config.downloads.incomplete_dir.join("stray.part"),
        b"nobody's",
    )
    .unwrap();
    // jack's own leftovers of a stop mid-hand-off: an unfinished copy of
    // the row `exact` and a probe file in each folder.
    let copy = jack::download::handoff::temp_path(
        &s.config.downloads.completed_dir,
        &format!("{:0>40}", "exact"),
    );
    std::fs::write(&copy, [1; 60]).unwrap();
    std::fs::write(s.config.downloads.incomplete_dir.join(".jack-probe-1"), b"").unwrap();
    std::fs::write(s.config.downloads.completed_dir.join(".jack-probe-1"), b"").unwrap();

    let summary = s.reconcile();
    let decision = |id| {
        summary
            .decisions
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| d.clone())
    };

    // .part missing: restart from 0.
    assert_eq!(decision(missing), Some(Decision::RestartMissingPart));
    assert_eq!(
        (s.get(missing).downloaded_bytes, s.get(missing).restarts),
        (0, 1)
    );
    // .part longer than durable: truncated to it.
    assert_eq!(
        std::fs::metadata(s.get(longer).part_path).unwrap().len(),
        40
    );
    assert_eq!(s.get(longer).downloaded_bytes, 40);
    // .part shorter (data lost): resume from the .part, warned.
    assert_eq!(s.get(shorter).downloaded_bytes, 30);
    assert!(s.reconciled(shorter)[0].contains("data lost"));
    // .part longer than the file: truncated to 0, restart.
    assert_eq!(
        std::fs::metadata(s.get(too_long).part_path).unwrap().len(),
        0
    );
    assert_eq!(s.get(too_long).restarts, 1);
    // Exactly the expected size and durable: finalized by the pool without a
    // request (tests/client.rs proves the no-request part).
    assert_eq!(decision(exact), Some(Decision::Finalize));
    // Final file present, .part absent: completed, no re-download.
    assert_eq!(s.get(adopted).status, Status::Completed);
    // Rule 13: a file jack never wrote is not adopted, and left untouched.
    assert_eq!(decision(foreign), Some(Decision::DestinationExists));
    assert_eq!(
        (s.get(foreign).status, s.get(foreign).error.as_deref()),
        (Status::Failed, Some("destination exists"))
    );
    assert_eq!(std::fs::read(s.dest("foreign")).unwrap(), [2; 100]);
    // Crash between link and unlink: the second name goes, the file stays.
    assert_eq!(s.get(linked).status, Status::Completed);
    assert!(!s.get(linked).part_path.exists() && s.dest("linked").exists());
    // Two live rows, one destination.
    assert_eq!(summary.superseded, vec![dup_a]);
    assert_eq!(
        (s.get(dup_a).status, s.get(dup_a).error.as_deref()),
        (Status::Failed, Some("superseded"))
    );
    assert!(s.get(dup_b).status.is_live());
    // Waiting for room stays live, to be resumed when space allows; a
    // download its owner paused stays paused, its bytes kept.
    assert_eq!(decision(waiting), Some(Decision::Resume));
    assert_eq!(s.get(paused).status, Status::Paused);
    assert_eq!(s.get(paused).downloaded_bytes, 20);
    // A .part no row owns: moved aside, never deleted, and shown by status.
    let orphan = s
        .config
        .downloads
        .incomplete_dir
        .join("orphaned/stray.part");
    assert_eq!(summary.orphans, vec![orphan.clone()]);
    assert_eq!(std::fs::read(&orphan).unwrap(), b"nobody's");
    assert_eq!(
        reconcile::orphans(&s.config.downloads.incomplete_dir),
        vec![orphan]
    );
    // jack's unfinished copy and probe files are gone, never exposed; the
    // row of the copy says so.
    assert!(!copy.exists());
    assert_eq!(
        summary.copies_removed.len(),
        2,
        "{:?}",
        summary.copies_removed
    );
    assert!(
        s.reconciled(exact)
            .iter()
            .any(|e| e.contains("unfinished copy"))
    );
    assert!(
        !s.config
            .downloads
            .incomplete_dir
            .join(".jack-probe-1")
            .exists()
    );
    // Every decision that changed something left a reconciled event.
    for id in [
        missing, longer, shorter, too_long, exact, adopted, foreign, linked, dup_a,
    ] {
        assert!(
            !s.reconciled(id).is_empty(),
            "row {id} has no reconciled event"
        );
    }
    // Reconciling again changes nothing more.
    let again = s.reconcile();
    assert!(again.orphans.is_empty() && again.superseded.is_empty());
}

#[test]
fn sigterm_during_three_downloads_exits_0_and_a_restart_finishes_them() {
    let size = 6 * 1024 * 1024;
    let files: Vec<fake_peer::File> = (0..3)
        .map(|i| fake_peer::File {
            id: format!("f{i}"),
            filename: format!("f{i}.mkv"),
            data: pattern(size + i),
        })
        .collect();
    let datas: Vec<Vec<u8>> = files.iter().map(|f| f.data.clone()).collect();
    let peer = Arc::new(FakePeer::start(files, vec![], Some(2 * 1024 * 1024)));
    let b = downloader(peer.addr, "max_concurrent_downloads = 3");
    let mut node = b.start();
    for (i, d) in datas.iter().enumerate() {
        let stub = jack::stub::build("alice", &format!("f{i}"), &format!("f{i}"), d.len() as u64);
        drop_stub(&b, &format!("f{i}.torrent"), &stub);
    }
    wait_for("3 active transfers", Duration::from_secs(10), || {
        peer.record.active.load(Ordering::SeqCst) == 3
    });
    std::thread::sleep(Duration::from_millis(700));
    node.stop_gracefully("TERM");
    // The peer's threads notice the closed connections at their next write;
    // count what they sent once they all have.
    wait_for(
        "the peer to see the connections close",
        Duration::from_secs(10),
        || peer.record.active.load(Ordering::SeqCst) == 0,
    );
    let sent_before = peer.record.body_bytes.load(Ordering::SeqCst);
    let v = status_json(&b);
    let durable: u64 = v["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["downloaded_bytes"].as_u64().unwrap())
        .sum();
    assert!(durable > 0, "progress was checkpointed at shutdown");
    drop(node);

    let _again = b.start();
    for (i, d) in datas.iter().enumerate() {
        let dest = b.path().join("data/completed").join(format!("f{i}.mkv"));
        wait_for("all three files", Duration::from_secs(30), || dest.exists());
        assert!(std::fs::read(&dest).unwrap() == *d, "file {i} differs");
    }
    // Nothing fetched twice beyond what was in flight at the signal: every
    // request after the restart starts at the durable offset.
    let total: u64 = datas.iter().map(|d| d.len() as u64).sum();
    let sent = peer.record.body_bytes.load(Ordering::SeqCst);
    let in_flight = sent_before - durable;
    assert!(
        in_flight <= 3 * jack::download::transfer::READ_BUFFER as u64,
        "{in_flight} bytes were sent but not checkpointed at shutdown"
    );
    assert_eq!(
        sent,
        total + in_flight,
        "re-fetched more than the bytes in flight"
    );
}

/// A disk slower than the network (every checkpoint's sync 150 ms late):
/// the `.part` never runs more than one checkpoint interval (and one read)
/// past what the registry holds durable, so a power cut costs at most that.
#[test]
fn a_download_never_runs_more_than_one_interval_past_its_checkpoint() {
    use jack::download::transfer::{CHECKPOINT_BYTES, READ_BUFFER};
    let size = 200 * 1024 * 1024;
    let data = pattern(size);
    let (_a, alice) = serving_site("", &[(NAME, &data)]);
    let id = item_id(alice.addr, NAME);
    let stub = jack::stub::build("alice", &id, "Crash.Test.2024.1080p", size as u64);
    let b = downloader(alice.addr, "");
    let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
    cmd.env("JACK_FAULT_SYNC_DELAY_MS", "150");
    let node = Node::spawn(cmd);
    drop_stub(&b, "s.torrent", &stub);
    let dest = b.path().join("data/completed").join(NAME);
    let durable = || {
        let r = request(node.addr, "GET", "/api/v1/downloads", &[("X-Api-Key", KEY)]);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["downloads"][0]["downloaded_bytes"].as_u64().unwrap_or(0)
    };
    let started = Instant::now();
    let (mut samples, mut ahead) = (0, 0u64);
    while !dest.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no final file"
        );
        // The length first: the durable count read after it can only be
        // higher than when the length was true.
        let len = part_len(&b);
        ahead = ahead.max(len.saturating_sub(durable()));
        samples += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let bound = CHECKPOINT_BYTES + READ_BUFFER as u64;
    assert!(samples >= 5, "only {samples} samples");
    assert!(
        ahead <= bound,
        "the .part ran {ahead} bytes past the checkpoint"
    );
    assert!(
        ahead >= CHECKPOINT_BYTES / 2,
        "the disk never fell behind ({ahead} bytes at most): nothing was tested"
    );
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
}

/// The kill -9 loop of the crash-recovery issue, with the real binary and a
/// jack peer whose debug log counts every body byte it sent. A kill loses
/// no written byte (the written record), only what was in flight: the
/// bytes since the record's last step, one read buffer, and what sat in
/// the two sockets' buffers.
#[test]
fn kill_9_loop_loses_only_bytes_in_flight_per_kill() {
    let size = 256 * 1024 * 1024;
    let data = pattern(size);
    let (_a, alice) = serving_site("[log]\nlevel = \"debug\"\n", &[(NAME, &data)]);
    let id = item_id(alice.addr, NAME);
    let stub = jack::stub::build("alice", &id, "Crash.Test.2024.1080p", size as u64);
    let b = downloader(alice.addr, "");
    let dest = b.path().join("data/completed").join(NAME);
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut kills = 0;
    let mut node = b.start();
    drop_stub(&b, "k.torrent", &stub);
    while kills < 10 && !dest.exists() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Each kill lands mid-transfer: once this run has written bytes,
        // within 40 ms (at 2 GB/s, three runs cannot finish the file).
        let before = part_len(&b);
        wait_for("the transfer to go on", Duration::from_secs(30), || {
            dest.exists() || part_len(&b) > before
        });
        std::thread::sleep(Duration::from_millis(seed % 40));
        if dest.exists() {
            break;
        }
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(5)).unwrap();
        kills += 1;
        node = b.start();
    }
    wait_for("the final file", Duration::from_secs(60), || dest.exists());
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "final bytes differ after {kills} kills"
    );
    let sent: u64 = alice
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("file body sent"))
        .map(|l| {
            l.split("bytes=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    // In flight at a kill: the written record's step, one read buffer, and
    // what the two sockets held (at most their buffers' maximum sizes).
    let sysctl_max = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .ok()
            .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(6 * 1024 * 1024)
    };
    let sockets = sysctl_max("tcp_rmem") + sysctl_max("tcp_wmem");
    let in_flight =
        jack::download::written::STEP + jack::download::transfer::READ_BUFFER as u64 + sockets;
    let bound = size as u64 + kills * in_flight.min(jack::download::transfer::CHECKPOINT_BYTES);
    eprintln!("re-fetched {} bytes in {kills} kills", sent - size as u64);
    assert!(kills >= 3, "only {kills} kills happened before completion");
    assert!(
        sent <= bound,
        "peer sent {sent} bytes for {size} with {kills} kills (bound {bound})"
    );
    assert!(part_files(&b).is_empty());
    drop(node);
}

/// A peer that stops sending mid-body: one SIGTERM still exits 0 within
/// 5 s (the stalled transfer is left behind after the pool's 3 s), and a
/// second signal exits at once.
#[test]
fn shutdown_with_a_stalled_peer_and_a_second_signal() {
    let data = pattern(4 * 1024 * 1024);
    for signals in [1, 2] {
        let stall = fake_peer::Mode::Stall(100_000, Duration::from_secs(30));
        let peer = FakePeer::start(
            vec![fake_peer::File {
                id: "s".into(),
                filename: "s.mkv".into(),
                data: data.clone(),
            }],
            vec![stall],
            None,
        );
        let b = downloader(peer.addr, "");
        let mut node = b.start();
        drop_stub(
            &b,
            "s.torrent",
            &jack::stub::build("alice", "s", "s", data.len() as u64),
        );
        wait_for("the stalled transfer", Duration::from_secs(10), || {
            peer.record.active.load(Ordering::SeqCst) == 1
        });
        std::thread::sleep(Duration::from_millis(200));
        if signals == 2 {
            node.signal("TERM");
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                node.child.try_wait().unwrap().is_none(),
                "still shutting down"
            );
            node.signal("TERM");
            let status = node
                .wait_exit(Duration::from_secs(1))
                .expect("the second signal exits at once");
            assert_eq!(status.code(), Some(1));
            assert!(node.log_text().contains("second signal"));
        } else {
            assert!(
                node.stop_gracefully("TERM") >= Duration::from_secs(2),
                "it did wait for the transfer first"
            );
        }
    }
}

/// A real full filesystem where the machine allows mounting one (root with
/// CAP_SYS_ADMIN): a small tmpfs holds `incomplete_dir` and
/// `completed_dir`. Elsewhere `tests/disk_full.rs` covers the same path with
/// an injected ENOSPC.
#[test]
fn a_real_full_filesystem_pauses_and_resumes_when_space_is_freed() {
    full_filesystem(false);
}

/// A small tmpfs mounted on a folder (root only), unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// `None` where this machine does not allow it.
    fn tmpfs(folder: &std::path::Path, size: &str) -> Option<Mount> {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(folder)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Mount(folder.to_path_buf()))
    }
}

impl Mount {
    /// A tmpfs of `size` on the site's `data/dl`, `filler` bytes of it
    /// taken by a file: the mount, the folder and the filler's path.
    fn filled(site: &Site, size: &str, filler: usize) -> Option<(Mount, PathBuf, PathBuf)> {
        let dl = site.path().join("data/dl");
        std::fs::create_dir_all(&dl).unwrap();
        let mount = Mount::tmpfs(&dl, size)?;
        let path = dl.join("filler");
        std::fs::write(&path, vec![1u8; filler]).unwrap();
        Some((mount, dl, path))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Room on the disk before bytes on the wire: a 3 MiB download into a
/// filesystem with 1 MiB free does not start. The row is retrying "waiting
/// for disk space", the peer is never asked for the file while the disk is
/// short (the disk is checked again, not the peer), and once space is
/// freed the download starts and completes by itself.
#[test]
fn a_download_waits_for_disk_space_before_asking_the_peer() {
    let data = pattern(3 * 1024 * 1024);
    let peer = FakePeer::one("w", &data);
    let b = downloader(
        peer.addr,
        "disk_full_retry_ms = 100\nmin_free_bytes = 4096\nincomplete_dir = \"data/dl/incomplete\"\ncompleted_dir = \"data/dl/completed\"",
    );
    let Some((_mount, dl, filler)) = Mount::filled(&b, "4m", 3 * 1024 * 1024) else {
        eprintln!("cannot mount a tmpfs here: space::shortfall's table covers the decision");
        return;
    };
    let node = b.start();
    drop_stub(
        &b,
        "w.torrent",
        &jack::stub::build("alice", "w", "w", data.len() as u64),
    );
    wait_for(
        "a download waiting for space",
        Duration::from_secs(15),
        || status_json(&b)["downloads"][0]["status"] == "retrying",
    );
    let v = status_json(&b);
    let error = v["downloads"][0]["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("waiting for disk space: need 3.0 MiB, have "),
        "{error}"
    );
    assert_eq!(v["downloads"][0]["attempts"], 0, "waiting is not a retry");
    // Several looks at the disk later, the peer was still never asked.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(status_json(&b)["downloads"][0]["status"], "retrying");
    assert_eq!(peer.file_requests().len(), 0, "no file request while short");
    let events = node.log_text().matches("download waiting for room").count();
    assert_eq!(
        events,
        1,
        "one wait, not one per look:\n{}",
        node.log_text()
    );
    std::fs::remove_file(&filler).unwrap();
    let dest = dl.join("completed/w.mkv");
    wait_for(
        "the download to start and finish once space is freed",
        Duration::from_secs(20),
        || dest.exists(),
    );
    assert!(std::fs::read(&dest).unwrap() == data);
    assert_eq!(status_json(&b)["downloads"][0]["status"], "completed");
    assert_eq!(peer.file_requests().len(), 1);
    drop(node);
}

/// The same with the registry on the full filesystem too: SQLite's "disk
/// full" pauses the download as well, and nothing is lost.
#[test]
fn a_full_filesystem_under_the_registry_too() {
    full_filesystem(true);
}

fn full_filesystem(registry_inside: bool) {
    let data = pattern(12 * 1024 * 1024);
    let peer = FakePeer::one("f", &data);
    let db = if registry_inside {
        "\n[database]\npath = \"data/dl/jack.db\""
    } else {
        ""
    };
    let b = downloader(
        peer.addr,
        &format!(
            "disk_full_retry_ms = 200\nmin_free_bytes = 0\nincomplete_dir = \"data/dl/incomplete\"\ncompleted_dir = \"data/dl/completed\"{db}"
        ),
    );
    let Some((_mount, dl, filler)) = Mount::filled(&b, "16m", 10 * 1024 * 1024) else {
        eprintln!("cannot mount a tmpfs here: the injected-ENOSPC test covers a full disk");
        return;
    };
    let node = b.start();
    drop_stub(
        &b,
        "f.torrent",
        &jack::stub::build("alice", "f", "f", data.len() as u64),
    );
    if registry_inside {
        // The registry cannot record much while the disk is full: wait for
        // the transfer to hit the wall.
        let start = Instant::now();
        let full = |log: String| {
            log.contains("disk full")
                || log.contains("disk is full")
                || log.contains("waiting for disk space")
        };
        while !full(node.log_text()) {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no full disk seen:\n{}",
                node.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        wait_for(
            "a download waiting for room",
            Duration::from_secs(15),
            || status_json(&b)["downloads"][0]["status"] == "retrying",
        );
        let v = status_json(&b);
        // The check before the transfer foresees what the write would
        // find: 12 MiB to come, about 6 free.
        let error = v["downloads"][0]["error"].as_str().unwrap().to_string();
        assert!(
            error.starts_with("waiting for disk space: need "),
            "{error}"
        );
        assert_eq!(
            v["downloads"][0]["attempts"], 0,
            "a full disk is not a network retry"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_dir(dl.join("completed")).unwrap().count(),
        0,
        "nothing renamed"
    );
    std::fs::remove_file(&filler).unwrap();
    let dest = dl.join("completed/f.mkv");
    wait_for(
        "the download to finish once space is back",
        Duration::from_secs(15),
        || dest.exists(),
    );
    assert!(std::fs::read(&dest).unwrap() == data);
    assert_eq!(status_json(&b)["downloads"][0]["status"], "completed");
    drop(node);
}

/// A peer that accepts connections and never answers: a stub being looked
/// up on it does not hold shutdown past 5 s.
#[test]
fn shutdown_while_a_stub_waits_on_a_silent_peer() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = downloader(silent.local_addr().unwrap(), "");
    let mut node = b.start();
    drop_stub(&b, "q.torrent", &jack::stub::build("alice", "q", "q", 10));
    // The watch thread is now inside the handshake with the silent peer.
    let (_conn, _) = silent.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let took = node.stop_gracefully("TERM");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The stub is still there for the next start.
    assert!(b.path().join("data/watch/q.torrent").exists());
}

/// The written record (`download::written`): a kill -9 mid-transfer
/// resumes where the process had written, not at the last checkpoint, with
/// identical bytes; garbage appended past that point is cut; after "a
/// reboot" (another boot id) the resume starts at the checkpoint, as a
/// power cut requires.
#[test]
fn a_killed_process_resumes_where_it_wrote_unless_the_machine_went_down() {
    let size = 8 * 1024 * 1024 + 11;
    let data = pattern(size);
    let file = || fake_peer::File {
        id: "w".into(),
        filename: "w.mkv".into(),
        data: data.clone(),
    };
    let stub = jack::stub::build("alice", "w", "w", size as u64);
    const OTHER_BOOT: &str = "00000000-0000-4000-8000-000000000000";
    for (garbage, other_boot) in [(false, false), (true, false), (false, true)] {
        let case = format!("garbage={garbage} other_boot={other_boot}");
        let peer = FakePeer::start(vec![file()], vec![], Some(3 * 1024 * 1024));
        let b = downloader(peer.addr, "");
        let mut node = b.start();
        drop_stub(&b, "w.torrent", &stub);
        let incomplete = b.path().join("data/incomplete");
        let record = || -> Option<(PathBuf, u64)> {
            let side = std::fs::read_dir(&incomplete)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".part.written"))?;
            let text = std::fs::read_to_string(&side).ok()?;
            let written = text.split_whitespace().nth(4)?.parse().ok()?;
            Some((side, written))
        };
        wait_for("3 MiB written", Duration::from_secs(20), || {
            record().is_some_and(|(_, w)| w >= 3 * 1024 * 1024)
        });
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(5)).unwrap();
        drop(node);
        let (side, written) = record().unwrap();
        let part = PathBuf::from(side.to_string_lossy().trim_end_matches(".written"));
        let part_len = std::fs::metadata(&part).unwrap().len();
        assert!(part_len >= written, "{case}: the record never runs ahead");
        let reg = Registry::open(&b.path().join("data/jack.db")).unwrap();
        let durable = reg.list().unwrap()[0].downloaded_bytes;
        drop(reg);
        assert!(durable < written, "{case}: no checkpoint in 3 MiB / 1 s");
        if garbage {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&part)
                .unwrap();
            f.write_all(&[0xAA; 100_000]).unwrap();
        }

        let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
        if other_boot {
            cmd.env("JACK_FAULT_BOOT_ID", OTHER_BOOT);
        }
        let again = Node::spawn(cmd);
        let expect = if other_boot { durable } else { written };
        let how = if expect == 0 { "started" } else { "resumed" };
        again.wait_log(
            &format!("download {how} id=1 offset={expect} "),
            Duration::from_secs(10),
        );
        let dest = b.path().join("data/completed/w.mkv");
        wait_for(&case, Duration::from_secs(30), || dest.exists());
        assert!(
            std::fs::read(&dest).unwrap() == data,
            "{case}: bytes differ"
        );
        // The peer was asked for the rest from the resume point only.
        let ranges = peer.record.requests.lock().unwrap().clone();
        let last = ranges.last().unwrap().1.clone().unwrap_or_default();
        assert_eq!(last, format!("bytes={expect}-"), "{case}");
        // The written record goes just after the hand-off.
        wait_for("no .part or record left", Duration::from_secs(10), || {
            part_files(&b).is_empty()
        });
    }
}

/// `jack run` on `site` with these fault knobs.
fn start_with_env(site: &Site, env: &[(&str, &str)]) -> Node {
    let mut cmd = site.command(&["--config", site.config().to_str().unwrap(), "run"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Node::spawn(cmd)
}

/// Issue 18, item 4 (rule 12) with the written record counting every
/// byte: an unsized body whose read one byte past the expected end fails
/// (a longer, changed body that stalls there) leaves the last byte
/// unvouched, so the next attempt asks the peer again instead of handing
/// off a truncated copy of the other version.
#[test]
fn an_unproven_end_is_never_vouched_for_by_the_written_record() {
    use support::fake_peer::Mode;
    let data = pattern(300_000);
    let longer: Vec<u8> = pattern(310_000).iter().map(|b| b ^ 0x77).collect();
    let file = fake_peer::File::mkv("m", &data);
    let stall = Mode::UnsizedStall(longer[..data.len()].to_vec(), Duration::from_secs(2));
    let peer = FakePeer::start(vec![file], vec![stall], None);
    let b = downloader(peer.addr, "idle_timeout_ms = 400");
    let _node = start_with_env(&b, &[("JACK_FAULT_RECORD_STEP", "1")]);
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", 300_000),
    );
    let dest = b.path().join("data/completed/m.mkv");
    wait_for("the hand-off", Duration::from_secs(30), || dest.exists());
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "never a truncated copy of another version"
    );
    let requests = peer.file_requests();
    assert_eq!(
        requests.get(1).and_then(|r| r.1.as_deref()),
        Some("bytes=299999-"),
        "the unproven last byte is asked for again: {requests:?}"
    );
}

/// Issue 18, item 5 ("fsyncgate"): a checkpoint's `fdatasync` fails with
/// EIO after the kernel dropped the pages it could not write back (zeroed
/// here). The row fails; `jack retry` in the same boot must resume from the
/// last successful checkpoint, never after the lost bytes on the written
/// record's word.
#[test]
fn a_failed_sync_is_never_trusted_by_a_retry() {
    let size = 3 * 1024 * 1024 + 7;
    let data = pattern(size);
    let file = fake_peer::File::mkv("m", &data);
    let peer = FakePeer::start(vec![file], vec![], Some(4 * 1024 * 1024));
    let b = downloader(peer.addr, "");
    let _node = start_with_env(
        &b,
        &[
            ("JACK_FAULT_CHECKPOINT_BYTES", "524288"),
            ("JACK_FAULT_RECORD_STEP", "65536"),
            ("JACK_FAULT_SYNC_EIO_AT", "3"),
        ],
    );
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", size as u64),
    );
    let row = || status_json(&b)["downloads"][0].clone();
    wait_for("the failed sync", Duration::from_secs(30), || {
        row()["status"] == "failed"
    });
    let error = row()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("cannot sync"), "{error}");
    let durable = row()["downloaded_bytes"].as_u64().unwrap();
    assert!(durable > 0 && durable < size as u64, "{durable}");
    let out = b.run_cli(&["retry", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = b.path().join("data/completed/m.mkv");
    wait_for("the retried download", Duration::from_secs(30), || {
        dest.exists()
    });
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "no byte of a failed write-back is handed off"
    );
    let ranges = peer.file_requests();
    assert_eq!(
        ranges.last().unwrap().1.as_deref(),
        Some(format!("bytes={durable}-").as_str()),
        "resumed from the last successful checkpoint: {ranges:?}"
    );
}

/// A checkpoint's sync fails on the flusher thread (the kernel dropped the
/// pages: zeroed here) while the body then stalls, and the process is
/// killed before the attempt ends. The failed sync itself disowned the
/// unsynced bytes, so the restart keeps none of them.
#[test]
fn a_kill_after_a_failed_sync_keeps_none_of_the_lost_bytes() {
    use support::fake_peer::Mode;
    let size = 1024 * 1024 + 3;
    let data = pattern(size);
    let file = fake_peer::File::mkv("m", &data);
    let stall = Mode::Stall(400_000, Duration::from_secs(20));
    let peer = FakePeer::start(vec![file], vec![stall], None);
    let b = downloader(peer.addr, "idle_timeout_ms = 30000");
    let mut node = start_with_env(
        &b,
        &[
            ("JACK_FAULT_CHECKPOINT_BYTES", "524288"),
            ("JACK_FAULT_RECORD_STEP", "65536"),
            ("JACK_FAULT_SYNC_EIO_AT", "1"),
        ],
    );
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", size as u64),
    );
    node.wait_log("checkpoint sync fails with EIO", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    node.signal("KILL");
    node.wait_exit(Duration::from_secs(5)).unwrap();
    drop(node);
    let _again = b.start();
    let dest = b.path().join("data/completed/m.mkv");
    wait_for("the hand-off", Duration::from_secs(30), || dest.exists());
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "no byte a failed sync lost is handed off"
    );
}

/// An unsized body that always runs one byte past its end: each is a
/// `size_changed` restart that looks the release up again, which comes
/// back the same. The version did not change, so fetching it again is not
/// progress and `max_attempts` ends the download.
#[test]
fn a_body_that_always_runs_long_is_given_up() {
    use support::fake_peer::Mode;
    let size = 2 * 1024 * 1024;
    let data = pattern(size);
    let mut longer = data.clone();
    longer.push(0);
    let file = fake_peer::File::mkv("m", &data);
    let script: Vec<Mode> = (0..24).map(|_| Mode::Unsized(longer.clone())).collect();
    let peer = FakePeer::start(vec![file], script, Some(16 * 1024 * 1024));
    let b = downloader(peer.addr, "max_attempts = 2");
    let _node = start_with_env(&b, &[("JACK_FAULT_CHECKPOINT_BYTES", "262144")]);
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", size as u64),
    );
    let row = || status_json(&b)["downloads"][0].clone();
    wait_for("failed or completed", Duration::from_secs(60), || {
        row()["status"] == "failed" || row()["status"] == "completed"
    });
    let n = peer.file_requests().len();
    assert_eq!(row()["status"], "failed", "{n} requests: {}", row());
    assert!(
        n <= 2 * (jack::download::downloads::MAX_CHANGES + 1),
        "{n} requests"
    );
}

/// A removal asked just as a download completes, while its worker records
/// the completion (it still holds the download, so the removal is left to
/// it): the worker finishes the removal then, without waiting for the next
/// start. Found by the simulation: the row stayed `completed` with its
/// removal pending, and a re-grab meanwhile failed `destination exists`.
#[test]
fn a_removal_asked_while_a_completion_is_recorded_is_finished_at_once() {
    let data = pattern(200_000);
    let file = fake_peer::File::mkv("m", &data);
    let peer = FakePeer::start(vec![file], vec![], None);
    let b = downloader(peer.addr, "");
    let node = start_with_env(&b, &[("JACK_FAULT_PAUSE", "worker:before_release:3000")]);
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", 200_000),
    );
    let dest = b.path().join("data/completed/m.mkv");
    wait_for("the hand-off", Duration::from_secs(20), || dest.exists());
    let r = request(
        node.addr,
        "DELETE",
        "/api/v1/downloads/1?delete_files=true",
        &[("X-Api-Key", KEY), ("Content-Length", "0")],
    );
    assert_eq!(r.status, 200);
    wait_for("the removal", Duration::from_secs(10), || {
        let reg = Registry::open(&b.path().join("data/jack.db")).unwrap();
        reg.get(1).unwrap().is_none() && !dest.exists()
    });
}

/// A removal with files stopped between the files and the row: the row
/// being removed never claims durable bytes its deleted `.part` no longer
/// holds (the registry lets go first; found by the simulation), and the
/// next start finishes the removal.
#[test]
fn a_removal_stopped_after_its_files_claims_no_bytes() {
    use support::fake_peer::Mode;
    let data = pattern(100_000);
    let file = fake_peer::File::mkv("m", &data);
    let peer = FakePeer::start(vec![file], vec![Mode::Cut(10_000)], None);
    peer.set_fallback(Mode::Status(404, None));
    let b = downloader(peer.addr, "");
    let mut node = start_with_env(&b, &[("JACK_CRASH_AT", "removal:after_files")]);
    drop_stub(
        &b,
        "m.torrent",
        &jack::stub::build("alice", "m", "m", 100_000),
    );
    let db = b.path().join("data/jack.db");
    let row = || Registry::open(&db).unwrap().get(1).unwrap();
    wait_for("the failure", Duration::from_secs(20), || {
        row().is_some_and(|r| r.status == Status::Failed)
    });
    let part = row().unwrap().part_path;
    assert_eq!(row().unwrap().downloaded_bytes, 10_000);
    // The node aborts at the crash point before it answers.
    let mut asked = std::net::TcpStream::connect(node.addr).unwrap();
    std::io::Write::write_all(
        &mut asked,
        format!(
            "DELETE /api/v1/downloads/1?delete_files=true HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    node.wait_exit(Duration::from_secs(10))
        .expect("the crash point");
    drop(node);
    assert!(!part.exists(), "the files went first");
    let left = row().expect("the row goes after its files");
    assert_eq!(left.downloaded_bytes, 0, "no claim on deleted bytes");
    let _again = b.start();
    wait_for("the removal finished", Duration::from_secs(10), || {
        row().is_none()
    });
}
