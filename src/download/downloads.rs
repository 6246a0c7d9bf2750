//! Downloads: the one entry point that turns a stub into a queued
//! download ([`Downloads::add_stub`]), the bounded worker pool that runs
//! them, and the retry timer.
//!
//! The registry is the source of truth; channels carry row ids only. A row
//! is inserted (`queued`) before its id enters the job channel, so a crash
//! loses nothing a channel held. Exactly `max_concurrent_downloads` worker
//! threads (`dl-1`..) pull ids: the pool size is the concurrency limit. A
//! download waiting out a retry delay sits in the `retry-timer` thread's
//! delay queue, never in a worker, so it cannot hold up a healthy one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::config::{Config, DownloadsConfig, Peers};
use crate::db::{Download, EventKind, NewDownload, PAUSED, RESUMED, Registry, Status};
use crate::download::handoff;
use crate::download::peer::{PeerClient, PeerError};
use crate::download::retry::{self, Policy, Rng};
use crate::download::space;
use crate::download::transfer::{self, Began, Context, Live, Outcome};
use crate::download::watch;
use crate::error::{Error, Result};
use crate::naming::bare_file_name;
use crate::naming::file_name_problem;
use crate::stub;

/// What became of a stub handed to [`Downloads::add_stub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new download, queued.
    Queued(i64),
    /// The release is completed, or being transferred right now: nothing new.
    Duplicate(i64),
    /// The release already had a download (queued, retrying, paused or
    /// failed): it took this stub's source; a failed one starts over with
    /// fresh attempts (§2.4 **Identity**).
    Regrabbed(i64),
    /// The stub itself is broken; it starts nothing.
    Invalid(String),
    /// The stub failed a check (unknown peer, item gone, unsafe name...):
    /// recorded on its download, which transfers nothing for it.
    Failed(i64, String),
    /// The peer could not be asked right now; try the stub again later.
    Later(String),
}

/// What looking a stub's release up on its peer found, after every check.
enum Lookup {
    /// The row is filled in from the release.
    Found,
    /// A check failed for good.
    Failed(String),
    /// The peer could not be asked right now.
    Later(String),
}

/// How a new stub's download starts ([`Downloads::add_stub`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Queued for a worker.
    Now,
    /// Paused (`torrents/add` with `paused=true`): no worker until a resume.
    Paused,
}

/// Where a download id is.
#[derive(Debug, Clone)]
enum Slot {
    /// In the job channel (`None`), or in the delay queue until its
    /// next try (`Some`: the status page's "next try in 6 s").
    Waiting(Option<Instant>),
    /// In a worker, with its live byte count and cancel switch.
    Running(Run),
}

/// One attempt in a worker: its live byte count, and the switch that stops
/// it between two reads when its download is removed.
#[derive(Debug, Clone, Default)]
struct Run {
    live: Live,
    /// When and where its transfer began.
    began: Began,
    /// Stop between two reads (a removal or a pause).
    cancel: Arc<AtomicBool>,
    /// The stop is a pause: the row ends [`Status::Paused`] and stays.
    paused: Arc<AtomicBool>,
    /// A resume came while the pause was under way: queued again once the
    /// worker has recorded the pause and let go.
    resume_after: Arc<AtomicBool>,
    /// The sources of its attempt (§2.6), with their rates.
    sources: transfer::multi::Sources,
}

/// A running download: its live bytes ([`Downloads::live_bytes`]), and
/// when and at what byte its transfer began (`None` until it has: the
/// release is being looked up, or the disk checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub began: Option<(Instant, u64)>,
    /// Its sources (§2.6): empty until the attempt has found them.
    pub sources: Vec<SourceNow>,
}

/// One source of a running download, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNow {
    pub peer: String,
    /// Bytes it sent in this attempt, and per second lately.
    pub bytes: u64,
    pub rate: u64,
    /// Pieces it sent that failed their check.
    pub bad_pieces: u32,
    /// `active`, `idle`, `failed: ...`, `dropped: ...`.
    pub state: String,
}

/// Changes of the peer's file one attempt follows (looking the release up
/// again each time) before it ends as a failure without progress.
pub const MAX_CHANGES: usize = 3;

/// How long a new stub waits for the worker of a download of its release
/// being removed to let go, before it is tried again later.
const REMOVAL_PATIENCE: Duration = Duration::from_secs(10);

pub struct Downloads {
    registry: Arc<Registry>,
    config: DownloadsConfig,
    peers: Peers,
    client: PeerClient,
    policy: Policy,
    rng: Mutex<Box<dyn Rng>>,
    clock: Arc<dyn Clock>,
    jobs: Sender<i64>,
    timer: Sender<(Instant, i64)>,
    /// Every id in the job channel, the delay queue or a worker, under one
    /// lock so no download is ever worked on by two threads.
    slots: Mutex<HashMap<i64, Slot>>,
    /// Outcomes the registry could not record (a full disk, a locked
    /// database): recorded again when their id comes round, never re-run.
    unrecorded: Mutex<HashMap<i64, (Download, Outcome)>>,
    /// How finished files reach `completed_dir` (probed at start).
    handoff: handoff::Mode,
    /// Written records are kept and trusted (`incomplete_dir` is local).
    written: bool,
    /// Told the id of every download once its completion is recorded.
    completions: Mutex<Vec<Sender<i64>>>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("config", &self.config)
            .finish()
    }
}

/// The threads of the pool, joined by [`Pool::shutdown`].
pub struct Pool {
    threads: Vec<JoinHandle<()>>,
    done: Receiver<()>,
    stopping: Arc<AtomicBool>,
    /// Dropped at shutdown: its receivers wake the idle workers and the
    /// timer at once (they block, they do not poll).
    stop: Sender<()>,
}

impl Downloads {
    /// Starts the worker pool and the retry timer, and queues every live
    /// row of the registry in its original order.
    /// `rng` (backoff jitter) and `clock` (retry delays, `Retry-After`
    /// dates) are the system's in the daemon and a test's in tests.
    /// The hand-off is probed here (see [`handoff::probe`]).
    pub fn start(
        registry: Arc<Registry>,
        config: &Config,
        rng: Box<dyn Rng>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Downloads>, Pool)> {
        let d = &config.downloads;
        let mode = handoff::probe(&d.incomplete_dir, &d.completed_dir)?;
        Self::start_with(registry, config, rng, clock, mode)
    }

    /// [`Downloads::start`] with the hand-off decided by the caller (tests
    /// that run the copy hand-off on one filesystem).
    pub fn start_with(
        registry: Arc<Registry>,
        config: &Config,
        rng: Box<dyn Rng>,
        clock: Arc<dyn Clock>,
        mode: handoff::Mode,
    ) -> Result<(Arc<Downloads>, Pool)> {
        let d = &config.downloads;
        log_handoff(mode, d);
        let written = crate::download::written::local_fs(&d.incomplete_dir);
        if !written {
            log::info!(
                "incomplete_dir is not on a local filesystem: a stopped download resumes from its last checkpoint only"
            );
        }
        let (jobs, job_rx) = unbounded();
        let (timer, timer_rx) = unbounded();
        let stopping = Arc::new(AtomicBool::new(false));
        let downloads = Arc::new(Downloads {
            registry,
            config: d.clone(),
            peers: config.peers.clone(),
            client: PeerClient::new(d.idle_timeout),
            policy: Policy {
                max_attempts: d.max_attempts,
                base_delay: d.retry_base_delay,
                max_delay: d.retry_max_delay,
            },
            rng: Mutex::new(rng),
            clock,
            jobs,
            timer,
            slots: Mutex::new(HashMap::new()),
            unrecorded: Mutex::new(HashMap::new()),
            handoff: mode,
            written,
            completions: Mutex::new(Vec::new()),
            stopping: stopping.clone(),
        });
        let (done_tx, done) = unbounded();
        let (stop, stop_rx) = bounded::<()>(0);
        let mut threads = Vec::new();
        for i in 1..=d.max_concurrent_downloads {
            let (me, rx, done_tx) = (downloads.clone(), job_rx.clone(), done_tx.clone());
            let stop_rx = stop_rx.clone();
            threads.push(spawn(&format!("dl-{i}"), move || {
                me.work(&rx, &stop_rx);
                let _ = done_tx.send(());
            })?);
        }
        let me = downloads.clone();
        threads.push(spawn("retry-timer", move || {
            me.run_timer(&timer_rx, &stop_rx);
            let _ = done_tx.send(());
        })?);
        // Removals asked for before the last stop, then every live row,
        // in its original order.
        for id in downloads.registry.removals()? {
            if let Err(e) = downloads.finish_removal(id) {
                log::error!("cannot remove download id={id} error={}", e.chain());
            }
        }
        for row in downloads.registry.list()? {
            if row.status.is_live() {
                downloads.enqueue(row.id);
            }
        }
        Ok((
            downloads,
            Pool {
                threads,
                done,
                stopping,
                stop,
            },
        ))
    }

    /// The `[downloads]` table the pool was started with.
    pub fn config(&self) -> &DownloadsConfig {
        &self.config
    }

    /// The clock transfers are timed by ([`Progress::began`]).
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The `[[peers]]` list this pool downloads from.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A channel that receives the id of every download whose completion
    /// is recorded from now on (the final file is in place and durable).
    pub fn completions(&self) -> Receiver<i64> {
        let (tx, rx) = unbounded();
        self.completions.lock().push(tx);
        rx
    }

    /// Live bytes of a running download (between checkpoints), if running.
    pub fn live_bytes(&self, id: i64) -> Option<u64> {
        match self.slots.lock().get(&id) {
            Some(Slot::Running(run)) => Some(run.live.load(Ordering::Relaxed)),
            _ => None,
        }
    }

    /// When each download waiting in the delay queue is tried next (by
    /// [`Downloads::clock`]), under one lock.
    pub fn next_tries(&self) -> HashMap<i64, Instant> {
        let slots = self.slots.lock();
        slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Waiting(Some(due)) => Some((*id, *due)),
                _ => None,
            })
            .collect()
    }

    /// Every running download's [`Progress`], under one lock.
    pub fn running(&self) -> HashMap<i64, Progress> {
        let slots = self.slots.lock();
        slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Running(run) => Some((
                    *id,
                    Progress {
                        bytes: run.live.load(Ordering::Relaxed),
                        began: *run.began.lock(),
                        sources: run
                            .sources
                            .lock()
                            .iter()
                            .map(|s| SourceNow {
                                peer: s.peer.clone(),
                                bytes: s.bytes.load(Ordering::Relaxed),
                                rate: s.rate.load(Ordering::Relaxed),
                                bad_pieces: s.bad_pieces.load(Ordering::Relaxed),
                                state: s.state.lock().clone(),
                            })
                            .collect(),
                    },
                )),
                Slot::Waiting(_) => None,
            })
            .collect()
    }

    /// Removes download `id` (the qBittorrent API's delete). The request
    /// is recorded first (a restart finishes it). A download no worker
    /// holds is removed now: `Ok(true)`. A running one is told to stop
    /// between two reads and its worker removes it when the attempt ends
    /// (`Ok(false)`); a hand-off under way finishes first. With
    /// `delete_files` its `.part` goes, and the final file only when jack
    /// put it there (rule 13's evidence); otherwise no file is touched.
    pub fn remove(&self, id: i64, delete_files: bool) -> Result<bool> {
        self.registry.request_removal(id, delete_files)?;
        let mut slots = self.slots.lock();
        if let Some(Slot::Running(run)) = slots.get(&id) {
            run.cancel.store(true, Ordering::SeqCst);
            log::info!("download removal asked id={id}: stopping its transfer");
            return Ok(false);
        }
        // A waiting id: the worker that takes it finds no slot and skips it.
        slots.remove(&id);
        self.unrecorded.lock().remove(&id);
        // Still under the slot lock: no worker starts on it meanwhile.
        self.finish_removal(id)?;
        Ok(true)
    }

    /// The end of a removal: the files it asked for, then the row and its
    /// events. Called only while no worker holds `id`.
    fn finish_removal(&self, id: i64) -> Result<()> {
        let Some(row) = self.registry.get(id)? else {
            return Ok(());
        };
        let delete_files = self.registry.removal(id)?.unwrap_or(false);
        let mut removed = Vec::new();
        if delete_files {
            // A `.part` is the row's own (one named by the info-hash alone,
            // from before schema 5, is kept if another row names it).
            let shared = self
                .registry
                .by_info_hash(&row.info_hash)?
                .iter()
                .any(|d| d.id != id && d.part_path == row.part_path);
            let ours = row.part_path.starts_with(&self.config.incomplete_dir) && !shared;
            if ours && row.downloaded_bytes > 0 {
                // The registry lets go of the bytes before the file does
                // (a stop in between finishes the removal at the next start).
                self.registry.record_restart(id, "removed")?;
            }
            if ours && remove_if_there(&row.part_path)? {
                crate::download::written::forget(&row.part_path);
                removed.push(&row.part_path);
            }
            let jacks =
                |m: &std::fs::Metadata| crate::download::reconcile::put_there_by_jack(&row, m);
            if row.dest_path.starts_with(&self.config.completed_dir)
                && std::fs::symlink_metadata(&row.dest_path).is_ok_and(|m| jacks(&m))
                && remove_if_there(&row.dest_path)?
            {
                removed.push(&row.dest_path);
            }
        }
        crate::fault::crash_point("removal:after_files");
        self.registry.delete_download(id)?;
        log::info!(
            "download removed id={id} info_hash={} files_removed={}",
            row.info_hash,
            removed.len()
        );
        Ok(())
    }

    /// Whether a removal of `id` was asked for (a running attempt is told
    /// through `run.cancel`; a waiting one is found in the registry).
    fn removal_asked(&self, id: i64, run: &Run) -> bool {
        (run.cancel.load(Ordering::SeqCst) && !run.paused.load(Ordering::SeqCst))
            || matches!(self.registry.removal(id), Ok(Some(_)))
    }

    /// Pauses download `id` (the status API, `jack pause`,
    /// `torrents/pause`): a live row ends [`Status::Paused`], no error, and
    /// keeps its files and its stub; it holds no worker until [`resume`]
    /// (or a retry, or a new stub) queues it again, where it stopped. A
    /// running transfer is told to stop between two reads and its worker
    /// records the pause (a hand-off under way finishes first, and a
    /// completion stands). `Ok(false)`: nothing to pause (not live).
    ///
    /// [`resume`]: Downloads::resume
    pub fn pause(&self, id: i64) -> Result<bool> {
        // Under the slot lock from the start: a worker's run, a resume
        // waiting on it and the row are read as one.
        let mut slots = self.slots.lock();
        let Some(row) = self.registry.get(id)? else {
            return Err(Error::Runtime(format!("no download with id {id}")));
        };
        if let Some(Slot::Running(run)) = slots.get(&id) {
            // Whatever the row says now (its attempt may be ending, a
            // pause may be recorded with a resume waiting on it), the last
            // word is this pause: the worker records it as it lets go.
            run.resume_after.store(false, Ordering::SeqCst);
            run.paused.store(true, Ordering::SeqCst);
            run.cancel.store(true, Ordering::SeqCst);
            log::info!("download pause asked id={id}: stopping its transfer");
            return Ok(true);
        }
        if !row.status.is_live() || self.unrecorded.lock().contains_key(&id) {
            // Not live; or an outcome waits to be recorded: it stands.
            return Ok(false);
        }
        // A waiting id: the worker that takes it finds no slot and skips it.
        slots.remove(&id);
        // Still under the slot lock: no worker starts on it meanwhile.
        self.record_pause(&row)?;
        Ok(true)
    }

    /// Resumes download `id` (the status API, `jack resume`,
    /// `torrents/resume`): a paused or failed row is queued again with
    /// fresh attempts and resumes where it stopped. `Ok(None)`: nothing to
    /// resume (the row is live or completed); else the status it had.
    pub fn resume(&self, id: i64) -> Result<Option<Status>> {
        let mut slots = self.slots.lock();
        let Some(row) = self.registry.get(id)? else {
            return Err(Error::Runtime(format!("no download with id {id}")));
        };
        if let Some(Slot::Running(run)) = slots.get(&id)
            && run.paused.load(Ordering::SeqCst)
        {
            // Its pause is still being recorded: the worker queues it
            // again once it has let go.
            run.resume_after.store(true, Ordering::SeqCst);
            return Ok(Some(Status::Paused));
        }
        if !row.status.is_retryable() || slots.contains_key(&id) {
            return Ok(None);
        }
        let was = self.registry.retry(id, RESUMED)?;
        // Queued under the same lock: no pause comes in between.
        self.enqueue_locked(&mut slots, id);
        log::info!("download resumed id={id} was={was}");
        Ok(Some(was))
    }

    /// The one way a stub becomes a download (watch folder today, an HTTP
    /// API tomorrow). Talks to the peer, so call it off the request path.
    ///
    /// One release is one download (§2.4 **Identity**): a stub for a
    /// completed release starts nothing; one for a release whose download
    /// is queued, retrying, paused, failed or cancelled gives that row its
    /// source (looked up again with every check a new stub gets), and a
    /// failed or paused row starts over with fresh attempts. A download
    /// being transferred right now keeps its source. With
    /// [`Start::Paused`] (`torrents/add` with `paused=true`) a new row
    /// starts paused and an existing one (not being transferred) ends
    /// paused with the new source: no worker takes it until a resume.
    pub fn add_stub(&self, stub_name: &str, bytes: &[u8], start: Start) -> Result<Added> {
        let paused = start == Start::Paused;
        let stub = match stub::parse(bytes, self.config.max_file_size) {
            Ok(s) => s,
            Err(e) => return Ok(Added::Invalid(e.to_string())),
        };
        // A download of this release being removed is still the release's
        // until its worker has let go (its last read may still be on the
        // way to its `.part`, its hand-off may be under way).
        if !self.removals_let_go(&stub.info_hash, REMOVAL_PATIENCE)? {
            return Ok(Added::Later(
                "the release's previous download is still being removed".into(),
            ));
        }
        let deadline = Instant::now() + REMOVAL_PATIENCE;
        let current = loop {
            let existing = self.registry.by_info_hash(&stub.info_hash)?;
            if let Some(done) = existing.iter().find(|d| d.status == Status::Completed) {
                return Ok(Added::Duplicate(done.id));
            }
            // One row per release; should there be more (older versions),
            // the newest live one, else the newest.
            let current = existing
                .iter()
                .rev()
                .find(|d| d.status.is_live())
                .or(existing.last())
                .cloned();
            let Some(row) = current.as_ref().filter(|r| self.is_running(r.id)) else {
                break current;
            };
            // Its status read again after the worker was seen running: a
            // worker records how an attempt ended before it lets go, so a
            // status still queued or downloading now means a transfer that
            // was running all along (the first read may predate the end).
            let status = self.registry.get(row.id)?.map(|r| r.status);
            // Being transferred: the stub is a copy of the one it runs on.
            if matches!(status, Some(Status::Queued | Status::Downloading)) {
                return Ok(Added::Duplicate(row.id));
            }
            // The attempt has ended (failed, retrying, paused, cancelled)
            // and its worker is letting go: the stub is for what comes
            // next, so it waits for the worker rather than being taken
            // for a copy (a re-grab of a failed download was lost so).
            if Instant::now() >= deadline || self.stopping.load(Ordering::Relaxed) {
                return Ok(Added::Later(
                    "the release's previous attempt is still ending".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let current = current.as_ref();
        let mut new = NewDownload {
            stub_name: stub_name.to_string(),
            info_hash: stub.info_hash.clone(),
            peer: stub.peer.clone(),
            item_id: stub.item_id.clone(),
            title: stub.title.clone(),
            file_name: String::new(),
            // Named by the row once it has an id (`insert`).
            part_path: PathBuf::new(),
            dest_path: PathBuf::new(),
            etag: None,
            expected_bytes: stub.length.min(self.config.max_file_size),
            sha256: None,
            search: None,
        };
        match (self.lookup(&mut new), current) {
            (Lookup::Later(e), _) => Ok(Added::Later(e)),
            (Lookup::Failed(e), None) => self.insert_failed(new, &e),
            (Lookup::Failed(e), Some(row)) => self.keep_source(row, stub_name, e),
            (Lookup::Found, None) => {
                let id = self.insert(&new, paused)?;
                if new.expected_bytes != stub.length {
                    let detail = format!(
                        "the peer's file is {} bytes, the stub said {}",
                        new.expected_bytes, stub.length
                    );
                    self.registry.add_event(id, EventKind::Queued, &detail)?;
                }
                log::info!(
                    "download {} id={id} peer={} item={} bytes={}",
                    if paused { "added paused" } else { "queued" },
                    new.peer,
                    new.item_id,
                    new.expected_bytes
                );
                if !paused {
                    self.enqueue(id);
                }
                Ok(Added::Queued(id))
            }
            (Lookup::Found, Some(row)) => self.regrab(row, &new, paused),
        }
    }

    /// Looks `row`'s release up on its peer and applies every check a new
    /// stub gets: a known peer, a compatible handshake, a release, a bare
    /// safe file name, a size within the guard. Fills `row` in from it.
    fn lookup(&self, row: &mut NewDownload) -> Lookup {
        let Some(peer) = self.peers.get(&row.peer) else {
            return Lookup::Failed(format!(
                "unknown peer {:?}: no [[peers]] entry has that name",
                row.peer
            ));
        };
        let release = match self
            .client
            .handshake(&peer)
            .and_then(|_version| self.client.release(&peer, &row.item_id))
        {
            Ok(r) => r,
            Err(PeerError::Transient(e)) => return Lookup::Later(e),
            Err(PeerError::Permanent(e)) => return Lookup::Failed(e),
        };
        row.title = release.title.clone();
        if let Some(problem) = file_name_problem(&release.filename) {
            return Lookup::Failed(format!(
                "unsafe file name {:?} from peer {}: {problem}",
                release.filename, peer.name
            ));
        }
        if release.size == 0 || release.size > self.config.max_file_size {
            return Lookup::Failed(format!(
                "size {} is outside 1..={} (downloads.max_file_size)",
                release.size, self.config.max_file_size
            ));
        }
        row.file_name = release.filename.clone();
        row.dest_path = self.config.completed_dir.join(&release.filename);
        row.expected_bytes = release.size;
        row.etag = release.etag;
        row.sha256 = release.sha256;
        row.search = (!release.ids.is_empty()).then(|| {
            let pairs: Vec<String> = release
                .ids
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            pairs.join("&")
        });
        Lookup::Found
    }

    /// A new row for `new` (`paused`: it starts paused), its `.part`
    /// named by its id.
    fn insert(&self, new: &NewDownload, paused: bool) -> Result<i64> {
        let dir = &self.config.incomplete_dir;
        let hash = &new.info_hash;
        self.registry
            .insert_with_part(new, paused, |id| transfer::part_path(dir, hash, id))
    }

    /// Whether every download of release `info_hash` being removed has
    /// been let go by its worker, waiting up to `patience` for it (a
    /// removal tells a running transfer to stop between two reads, so
    /// this is short).
    fn removals_let_go(&self, info_hash: &str, patience: Duration) -> Result<bool> {
        let deadline = Instant::now() + patience;
        loop {
            let removing = self.registry.being_removed(info_hash)?;
            if !removing.iter().any(|&id| self.is_running(id)) {
                return Ok(true);
            }
            if Instant::now() >= deadline || self.stopping.load(Ordering::Relaxed) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new stub whose release already has a row that is not completed:
    /// the row takes the new source. Its `.part` is kept only when it is a
    /// prefix of the same version ([`same_version`]); otherwise the row's
    /// bytes get a new generation in the same transaction that takes the
    /// source, and the `.part` starts from 0. An ETag the row learned for
    /// the same version stays when the new look-up has none.
    fn regrab(&self, row: &Download, new: &NewDownload, paused: bool) -> Result<Added> {
        // Under the slot lock, so no worker starts on the row meanwhile;
        // and decided on the row as it is now, not as it was before the
        // look-up (a worker may have completed it, or learned its ETag,
        // while the peer was asked).
        let mut slots = self.slots.lock();
        if matches!(slots.get(&row.id), Some(Slot::Running(_))) {
            // A worker took the row while the peer was asked: a copy when
            // it is transferring, else (its attempt ending) read again
            // later so the new source is not dropped.
            let status = self.registry.get(row.id)?.map(|r| r.status);
            if matches!(status, Some(Status::Queued | Status::Downloading)) {
                return Ok(Added::Duplicate(row.id));
            }
            return Ok(Added::Later(
                "the release's previous attempt is still ending".into(),
            ));
        }
        let row = match self.registry.get(row.id)? {
            Some(now) if now.status == Status::Completed => return Ok(Added::Duplicate(now.id)),
            Some(now) if self.registry.removal(now.id)?.is_none() => now,
            _ => {
                return Ok(Added::Later(
                    "the release's download changed meanwhile".into(),
                ));
            }
        };
        let mut new = new.clone();
        let part_fits = same_version(&row, &mut new);
        let new = &new;
        let restart = (!part_fits).then_some("source_changed");
        let mut detail = format!(
            "{}: source {}/{} -> {}/{} ({} bytes)",
            new.stub_name, row.peer, row.item_id, new.peer, new.item_id, new.expected_bytes
        );
        if paused {
            detail.push_str(", added paused");
        } else if matches!(row.status, Status::Failed | Status::Paused) {
            detail.push_str(", starting over with fresh attempts");
        }
        self.registry
            .replace_source(row.id, new, restart, paused, &detail)?;
        if restart.is_some() {
            discard_part(&row)?;
        }
        if paused {
            // A waiting id is skipped by the worker or timer that finds it.
            slots.remove(&row.id);
        }
        drop(slots);
        log::info!("download grabbed again id={} {detail}", row.id);
        if !paused {
            self.enqueue(row.id);
        }
        Ok(Added::Regrabbed(row.id))
    }

    /// A new stub for a release with a row, whose own checks failed: the
    /// row keeps its source (a failed row stays failed, with this error).
    fn keep_source(&self, row: &Download, stub_name: &str, error: String) -> Result<Added> {
        let detail = format!("{stub_name}: {error}");
        if row.status == Status::Failed {
            self.registry.transition(
                row.id,
                Status::Failed,
                Some(&error),
                EventKind::Failed,
                &detail,
            )?;
        } else {
            self.registry.add_event(
                row.id,
                EventKind::Regrabbed,
                &format!("{detail}; the current source is kept"),
            )?;
        }
        Ok(Added::Failed(row.id, error))
    }

    fn insert_failed(&self, row: NewDownload, error: &str) -> Result<Added> {
        let id = self.insert(&row, false)?;
        self.registry
            .transition(id, Status::Failed, Some(error), EventKind::Failed, error)?;
        log::warn!(
            "download failed id={id} stub={} error={error}",
            row.stub_name
        );
        Ok(Added::Failed(id, error.to_string()))
    }

    fn is_running(&self, id: i64) -> bool {
        matches!(self.slots.lock().get(&id), Some(Slot::Running(_)))
    }

    /// Puts `id` in the job channel unless it is already waiting or running.
    pub fn enqueue(&self, id: i64) {
        self.enqueue_locked(&mut self.slots.lock(), id);
    }

    /// [`Downloads::enqueue`] with the slot lock held (the job channel is
    /// unbounded: the send never waits).
    fn enqueue_locked(&self, slots: &mut HashMap<i64, Slot>, id: i64) {
        if slots.contains_key(&id) {
            return;
        }
        slots.insert(id, Slot::Waiting(None));
        let _ = self.jobs.send(id);
    }

    /// Queues `queued` rows that no thread knows about (`jack retry`, or
    /// rows added by another process).
    pub fn pick_up_queued_rows(&self) -> Result<()> {
        for id in self.registry.ids_with_status(Status::Queued)? {
            self.enqueue(id);
        }
        Ok(())
    }

    /// A worker: takes ids from `jobs` until `stop` is closed. Idle, it
    /// sleeps in the channel (no timed wake-ups: a NAS's idle node costs
    /// nothing).
    fn work(&self, jobs: &Receiver<i64>, stop: &Receiver<()>) {
        while !self.stopping.load(Ordering::Relaxed) {
            let id = crossbeam_channel::select! {
                recv(jobs) -> id => id,
                recv(stop) -> _ => break,
            };
            let Ok(id) = id else { break };
            let run = Run::default();
            let live = &run.live;
            {
                let mut slots = self.slots.lock();
                if !matches!(slots.get(&id), Some(Slot::Waiting(_))) {
                    continue; // a stale message: the id is elsewhere
                }
                slots.insert(id, Slot::Running(run.clone()));
            }
            // An outcome that could not be recorded is recorded, not re-run:
            // a hand-off that happened is never repeated.
            let pending = self.unrecorded.lock().remove(&id);
            let step = match pending {
                _ if self.removal_asked(id, &run) => Ok(None),
                Some(p) => Ok(Some(p)),
                None => self.process(id, &run),
            };
            if self.removal_asked(id, &run) {
                // Removed: how the attempt ended is not recorded; the row goes.
                let mut slots = self.slots.lock();
                release_slot(&mut slots, id, live);
                if !slots.contains_key(&id)
                    && let Err(e) = self.finish_removal(id)
                {
                    log::error!("cannot remove download id={id} error={}", e.chain());
                }
                continue;
            }
            let step = match step {
                Ok(Some((row, outcome)))
                    if run.paused.load(Ordering::SeqCst)
                        && !matches!(outcome, Outcome::Completed { .. }) =>
                {
                    Ok(Some((row, Outcome::Paused)))
                }
                other => other,
            };
            crate::fault::pause("worker:before_record");
            // An outcome that is neither the pause nor a completion: a
            // pause may still come while it is recorded.
            let late_pause = matches!(
                &step,
                Ok(Some((_, o))) if !matches!(o, Outcome::Paused | Outcome::Completed { .. })
            );
            let failed = match step {
                Ok(Some((row, outcome))) => self
                    .record(&row, outcome.clone())
                    .err()
                    .map(|e| (e, Some((row, outcome)))),
                Ok(None) => None,
                Err(e) => Some((e, None)),
            };
            crate::fault::pause("worker:before_release");
            {
                let mut slots = self.slots.lock();
                release_slot(&mut slots, id, live);
                // A removal asked after the look above (while the outcome
                // was being recorded) saw this worker running and left the
                // removal to it: finished here, under the slot lock that
                // `remove` takes too, so one of the two always does it.
                let asked = matches!(self.registry.removal(id), Ok(Some(_)));
                if asked && !slots.contains_key(&id) {
                    self.unrecorded.lock().remove(&id);
                    if let Err(e) = self.finish_removal(id) {
                        log::error!("cannot remove download id={id} error={}", e.chain());
                    }
                    continue;
                }
                // A pause asked after the outcome was decided (while it
                // was being recorded) saw this worker running: applied
                // here, under the slot lock `pause` takes too.
                if late_pause && failed.is_none() && run.paused.load(Ordering::SeqCst) {
                    self.pause_after(&mut slots, id, &run);
                }
                // A resume that came while the pause was being recorded.
                let resume = run.resume_after.load(Ordering::SeqCst) && !slots.contains_key(&id);
                if resume {
                    match self.registry.retry(id, RESUMED) {
                        Ok(_) => self.enqueue_locked(&mut slots, id),
                        Err(e) => log::warn!("cannot resume id={id}: {}", e.chain()),
                    }
                }
            }
            if let Some((e, unrecorded)) = failed {
                // The registry could not record (a full disk, a locked
                // database): keep the download in hand and look again.
                log::error!("download error id={id} error={}", e.chain());
                if let Some(p) = unrecorded {
                    self.unrecorded.lock().insert(id, p);
                }
                self.schedule(id, self.config.disk_full_retry);
            }
        }
    }

    /// Runs one attempt of `id`; the outcome is for the caller to record.
    /// `Ok(None)`: nothing to record (the row is gone or not live, or its
    /// outcome is already recorded).
    fn process(&self, id: i64, run: &Run) -> Result<Option<(Download, Outcome)>> {
        let live = &run.live;
        let Some(mut row) = self.registry.get(id)? else {
            return Ok(None);
        };
        if !row.status.is_live() {
            return Ok(None);
        }
        if row.file_name.is_empty() || row.dest_path.as_os_str().is_empty() {
            // Its stub failed a check (and it was retried): every check
            // again before a byte moves.
            let mut new = to_look_up(&row);
            let error = match self.lookup(&mut new) {
                Lookup::Found => None,
                Lookup::Failed(error) => Some(Outcome::Fatal { error }),
                Lookup::Later(error) => Some(Outcome::Retry {
                    error,
                    retry_after: None,
                    progressed: false,
                }),
            };
            if let Some(outcome) = error {
                return Ok(Some((row, outcome)));
            }
            let restart = (!same_version(&row, &mut new)).then_some("size_changed");
            self.registry
                .replace_source(id, &new, restart, false, "release checked again")?;
            row = self
                .registry
                .get(id)?
                .ok_or_else(|| Error::Runtime(format!("no download with id {id}")))?;
        }
        let Some(peer) = self.peers.get(&row.peer) else {
            let error = format!("unknown peer {:?}", row.peer);
            return Ok(Some((row, Outcome::Fatal { error })));
        };
        // Rule 13 at run time: a final name already taken is never
        // replaced, and is found out before anything is fetched.
        if let Ok(meta) = std::fs::symlink_metadata(&row.dest_path) {
            let outcome = if crate::download::reconcile::put_there_by_jack(&row, &meta) {
                // The hand-off happened; a `.part` name left is jack's.
                if let Err(e) = std::fs::remove_file(&row.part_path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    log::warn!("cannot remove {}: {e}", row.part_path.display());
                }
                Outcome::Completed { fetched: 0 }
            } else {
                Outcome::Fatal {
                    error: transfer::DESTINATION_EXISTS.into(),
                }
            };
            return Ok(Some((row, outcome)));
        }
        let offset = std::fs::metadata(&row.part_path)
            .map(|m| transfer::resume_point(&row, &m, self.written))
            .unwrap_or(0);
        // Room on the disk before bytes on the wire: the disk is asked, not
        // the peer, and a paused download is asked again later.
        let copy_to =
            (self.handoff == handoff::Mode::Copy).then_some(self.config.completed_dir.as_path());
        let folder = row
            .part_path
            .parent()
            .unwrap_or(&self.config.incomplete_dir);
        let (part, expected) = (&row.part_path, row.expected_bytes);
        let reserve = self.config.min_free_bytes;
        if let Some(short) = space::check(part, folder, offset, expected, copy_to, reserve) {
            let error = short.message();
            return Ok(Some((row, Outcome::NoRoom { error })));
        }
        let (kind, detail) = if offset == 0 {
            (EventKind::Started, "at byte 0".to_string())
        } else {
            (EventKind::Resumed, format!("at byte {offset}"))
        };
        self.registry
            .transition(id, Status::Downloading, None, kind, &detail)?;
        log::info!(
            "download {} id={id} offset={offset} of={}",
            kind.as_str(),
            row.expected_bytes
        );
        live.store(offset, Ordering::Relaxed);
        let checkpointed = AtomicBool::new(false);
        let others: Vec<crate::config::Peer> = self
            .peers
            .current()
            .iter()
            .filter(|p| p.name != peer.name)
            .cloned()
            .collect();
        let cx = Context {
            registry: &self.registry,
            client: &self.client,
            peer: &peer,
            max_file_size: self.config.max_file_size,
            live,
            began: &run.began,
            clock: self.clock.as_ref(),
            stopping: &self.stopping,
            cancel: &run.cancel,
            handoff: self.handoff,
            written: self.written,
            checkpointed: &checkpointed,
            others: &others,
            max_sources: self.config.max_sources,
            sources: &run.sources,
        };
        // Progress is passing the highest offset ever made durable for
        // the version (fetching discarded bytes again is not).
        let mut began = row.high_water;
        let mut outcome = transfer::run(&cx, &row);
        // The peer's file changed: look the release up again and fetch the
        // new version from byte 0, a bounded number of times per attempt.
        let mut sizes = vec![row.expected_bytes];
        // The attempt ended on the change limit: never progress, whatever
        // its last run fetched (a peer whose answers keep changing, or
        // keep lying, would otherwise never give up).
        let mut too_many_changes = false;
        while let Outcome::Changed { reason } = &outcome {
            if sizes.len() > MAX_CHANGES {
                too_many_changes = true;
                let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
                let error = format!(
                    "the peer's file changed more than {MAX_CHANGES} times in one attempt \
                     ({} bytes): it may still be being written",
                    sizes.join(" → ")
                );
                outcome = Outcome::Retry {
                    error,
                    retry_after: None,
                    progressed: false,
                };
                break;
            }
            match self.look_up_again(&row, reason)? {
                Ok(changed) => {
                    sizes.push(changed.expected_bytes);
                    began = changed.high_water;
                    row = changed;
                    live.store(0, Ordering::Relaxed);
                    outcome = transfer::run(&cx, &row);
                }
                Err(ended) => outcome = ended,
            }
        }
        if let Outcome::Retry { progressed, .. } = &mut outcome
            && !too_many_changes
        {
            let now = self.registry.get(id)?.map_or(0, |r| r.high_water);
            *progressed = now > began
                && (now - began >= self.config.progress_bytes
                    || checkpointed.load(Ordering::Relaxed));
        }
        Ok(Some((row, outcome)))
    }

    /// The peer's file changed (`reason`) under `row`, whose `.part` is
    /// back to 0: its release is looked up again with every check a stub
    /// gets. `Ok(Ok(row))`: the row now expects the new version (size,
    /// ETag, name; an event names both sizes). `Ok(Err(outcome))`: how the
    /// attempt ends instead (the item is gone, a check failed: at once;
    /// the peer cannot be asked: retried).
    fn look_up_again(
        &self,
        row: &Download,
        reason: &str,
    ) -> Result<std::result::Result<Download, Outcome>> {
        let mut new = to_look_up(row);
        match self.lookup(&mut new) {
            Lookup::Found => {}
            Lookup::Failed(e) => {
                let error = format!("the peer's file changed ({reason}) and {e}");
                return Ok(Err(Outcome::Fatal { error }));
            }
            Lookup::Later(e) => {
                let error =
                    format!("the peer's file changed ({reason}); cannot look it up again: {e}");
                return Ok(Err(Outcome::Retry {
                    error,
                    retry_after: None,
                    progressed: false,
                }));
            }
        }
        let detail = format!(
            "the peer's file changed: {} → {} bytes ({reason}); fetching the new version from byte 0",
            row.expected_bytes, new.expected_bytes
        );
        // Another version when the peer's own answers carried another
        // strong ETag, or its release now differs; otherwise its answers
        // disagreed with a release that did not change (a longer body, a
        // wrong total): the same version, whose high-water mark stays, so
        // fetching it again from 0 is not progress.
        let other_etag = matches!((&row.etag, &new.etag), (Some(a), Some(b)) if a != b);
        let other_digest = matches!((&row.sha256, &new.sha256), (Some(a), Some(b)) if a != b);
        let new_version = reason.starts_with("etag_changed")
            || reason.starts_with("digest_changed")
            || new.expected_bytes != row.expected_bytes
            || other_etag
            || other_digest;
        self.registry
            .remote_changed(row.id, &new, new_version, &detail)?;
        log::info!(
            "download source changed id={} old_bytes={} new_bytes={} reason={reason}",
            row.id,
            row.expected_bytes,
            new.expected_bytes
        );
        let changed = self
            .registry
            .get(row.id)?
            .ok_or_else(|| Error::Runtime(format!("no download with id {}", row.id)))?;
        Ok(Ok(changed))
    }

    /// Records how an attempt ended. Fails only before anything of it is
    /// recorded (its first registry write), so it can simply be called again.
    fn record(&self, row: &Download, outcome: Outcome) -> Result<()> {
        let id = row.id;
        let reg = &self.registry;
        match outcome {
            Outcome::Completed { fetched } => {
                let detail = format!(
                    "{} bytes, {fetched} fetched in this attempt",
                    row.expected_bytes
                );
                reg.end_attempt(
                    id,
                    Status::Completed,
                    None,
                    EventKind::Completed,
                    &detail,
                    false,
                )?;
                log::info!(
                    "download completed id={id} bytes={} dest={}",
                    row.expected_bytes,
                    row.dest_path.display()
                );
                remove_stub(&self.config.watch_dir, row);
                crate::metrics::METRICS.completed();
                self.completions.lock().retain(|tx| tx.send(id).is_ok());
            }
            Outcome::Retry {
                error,
                retry_after,
                progressed,
            } => {
                // `attempts` counts attempts without progress (what
                // `max_attempts` bounds); progress starts the count and the
                // backoff again.
                let (attempts, policy) = match progressed {
                    true => (
                        0,
                        Policy {
                            max_attempts: self.policy.max_attempts.max(2),
                            ..self.policy
                        },
                    ),
                    false => (row.attempts + 1, self.policy),
                };
                let delay =
                    retry::next_delay(&policy, attempts + 1, retry_after, self.rng.lock().as_mut());
                match delay {
                    Some(delay) => {
                        let mut detail = format!("in {} ms after {error}", delay.as_millis());
                        let (kind, status) = (EventKind::RetryScheduled, Status::Retrying);
                        if progressed {
                            detail.push_str(" (the attempt made progress: attempts start again)");
                        }
                        reg.end_attempt(id, status, Some(&error), kind, &detail, progressed)?;
                        log::info!(
                            "download retry id={id} attempts_without_progress={attempts} progressed={progressed} delay_ms={} error={error}",
                            delay.as_millis()
                        );
                        crate::metrics::METRICS.retried(&error);
                        self.schedule(id, delay);
                    }
                    None => {
                        let error =
                            format!("gave up after {attempts} attempts without progress: {error}");
                        self.fail(row, &error)?;
                    }
                }
            }
            Outcome::Changed { reason } => {
                // `process` looks the release up again; should one reach
                // here, the next attempt finds the change again.
                let outcome = Outcome::Retry {
                    error: format!("restarted from byte 0: {reason}"),
                    retry_after: None,
                    progressed: false,
                };
                return self.record(row, outcome);
            }
            Outcome::Fatal { error } => self.fail(row, &error)?,
            Outcome::Paused => self.record_pause(row)?,
            Outcome::NoRoom { error } => {
                // Still waiting for room: one event, not one per look.
                let waiting = |e: &str| e.starts_with(space::WAITING);
                let still = row.status == Status::Retrying
                    && row.error.as_deref().is_some_and(waiting)
                    && waiting(&error);
                if !still {
                    let kind = EventKind::RetryScheduled;
                    reg.transition(id, Status::Retrying, Some(&error), kind, &error)?;
                    log::warn!("download waiting for room id={id} error={error}");
                }
                self.schedule(id, self.config.disk_full_retry);
            }
            Outcome::Interrupted => {
                let detail = "interrupted by shutdown; progress checkpointed";
                reg.transition(id, Status::Queued, None, EventKind::Queued, detail)?;
            }
        }
        Ok(())
    }

    /// The download fails for good: the row says why, and its stub is set
    /// aside as `<name>.failed` (never read again; a re-grab writes a new one).
    fn fail(&self, row: &Download, error: &str) -> Result<()> {
        let (id, failed, kind) = (row.id, Status::Failed, EventKind::Failed);
        self.registry
            .end_attempt(id, failed, Some(error), kind, error, false)?;
        crate::metrics::METRICS.failed(error);
        log::warn!("download failed id={} error={error}", row.id);
        watch::set_aside(&self.config.watch_dir, &row.stub_name, "failed");
        Ok(())
    }

    /// A pause that reached `run` after its outcome was decided: the next
    /// run of `id` (a worker took it again at once) is told, or the row,
    /// still live (retrying, queued), is paused now and its waiting id
    /// leaves the slots. Called under the slot lock.
    fn pause_after(&self, slots: &mut HashMap<i64, Slot>, id: i64, run: &Run) {
        if let Some(Slot::Running(next)) = slots.get(&id) {
            let resume = run.resume_after.load(Ordering::SeqCst);
            next.resume_after.store(resume, Ordering::SeqCst);
            next.paused.store(true, Ordering::SeqCst);
            next.cancel.store(true, Ordering::SeqCst);
            return;
        }
        slots.remove(&id);
        match self.registry.get(id) {
            Ok(Some(row)) if row.status.is_live() => {
                if let Err(e) = self.record_pause(&row) {
                    log::error!("cannot pause download id={id} error={}", e.chain());
                }
            }
            Ok(_) => {}
            Err(e) => log::error!("cannot pause download id={id} error={}", e.chain()),
        }
    }

    /// The owner paused `row`: [`Status::Paused`] with no error and an
    /// event saying so, no attempt counted, not a failure; its `.part` and
    /// its stub stay where they are (a resume, a retry or a new stub
    /// resumes it where it stopped).
    fn record_pause(&self, row: &Download) -> Result<()> {
        let (id, kind) = (row.id, EventKind::Paused);
        self.registry
            .transition(id, Status::Paused, None, kind, PAUSED)?;
        crate::metrics::METRICS.paused();
        log::info!("download paused id={id}");
        Ok(())
    }

    /// Hands `id` to the delay queue (the worker running it is done with it).
    fn schedule(&self, id: i64, delay: Duration) {
        let due = self.clock.now() + delay;
        self.slots.lock().insert(id, Slot::Waiting(Some(due)));
        let _ = self.timer.send((due, id));
    }

    /// The delay queue: holds (due, id) and hands ids to the workers when due.
    fn run_timer(&self, incoming: &Receiver<(Instant, i64)>, stop: &Receiver<()>) {
        let mut heap: BinaryHeap<Reverse<(Instant, i64)>> = BinaryHeap::new();
        while !self.stopping.load(Ordering::Relaxed) {
            // Nothing due: sleep until something comes or the pool stops.
            if heap.is_empty() {
                crossbeam_channel::select! {
                    recv(incoming) -> item => match item {
                        Ok(item) => heap.push(Reverse(item)),
                        Err(_) => break,
                    },
                    recv(stop) -> _ => break,
                }
            }
            // The clock may be a test's: while something is due, wake at
            // least every 100 ms to look.
            let now = self.clock.now();
            while let Some(Reverse((due, id))) = heap.peek().copied() {
                if due > now {
                    break;
                }
                heap.pop();
                let _ = self.jobs.send(id);
            }
            let wait = heap
                .peek()
                .map_or(Duration::from_millis(100), |Reverse((due, _))| {
                    due.saturating_duration_since(now)
                })
                .min(Duration::from_millis(100));
            crossbeam_channel::select! {
                recv(incoming) -> item => {
                    if let Ok(item) = item {
                        heap.push(Reverse(item));
                    }
                }
                recv(stop) -> _ => break,
                default(wait) => {}
            }
        }
    }
}

impl Pool {
    /// Stops the workers (each checkpoints its transfer) and the timer, and
    /// joins them; gives up waiting after `limit` (a worker blocked on a
    /// stalled peer is left behind: its progress up to the last checkpoint
    /// is durable).
    pub fn shutdown(self, limit: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        drop(self.stop);
        let deadline = Instant::now() + limit;
        let mut finished = 0;
        while finished < self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                log::warn!("download threads still busy at shutdown: leaving them behind");
                return;
            }
            finished += 1;
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::io(format!("cannot start thread {name}"), e))
}

/// A worker is done with `id`: it frees the slot only if the slot is still
/// its own run (`live`). By then the retry timer may have handed the id to
/// another worker (a short jitter), whose slot and live bytes stay.
fn release_slot(slots: &mut HashMap<i64, Slot>, id: i64, live: &Live) {
    if matches!(slots.get(&id), Some(Slot::Running(r)) if Arc::ptr_eq(&r.live, live)) {
        slots.remove(&id);
    }
}

/// Whether `new` (a release as looked up for `row`'s info-hash) is the
/// version `row`'s `.part` is a prefix of: the same size, and an equal
/// strong ETag, or the same peer and item when either side has none. When
/// it is, and the look-up gave no ETag, `new` keeps the one the row
/// learned: an ETag once learned for a version is never forgotten.
fn same_version(row: &Download, new: &mut NewDownload) -> bool {
    let same_source = row.peer == new.peer && row.item_id == new.item_id;
    let same_etag = match (&row.etag, &new.etag) {
        (Some(a), Some(b)) => a == b,
        (None, _) | (_, None) => same_source,
    };
    let other_digest = matches!((&row.sha256, &new.sha256), (Some(a), Some(b)) if a != b);
    let same = row.expected_bytes == new.expected_bytes && same_etag && !other_digest;
    if same && new.etag.is_none() {
        new.etag.clone_from(&row.etag);
    }
    if same && new.sha256.is_none() {
        new.sha256.clone_from(&row.sha256);
    }
    same
}

/// `row`'s release as [`Downloads::lookup`] fills it in: its source and
/// `.part` kept, what the peer says (name, destination, ETag, size) blank.
fn to_look_up(row: &Download) -> NewDownload {
    NewDownload {
        stub_name: row.stub_name.clone(),
        info_hash: row.info_hash.clone(),
        peer: row.peer.clone(),
        item_id: row.item_id.clone(),
        title: row.title.clone(),
        file_name: String::new(),
        part_path: row.part_path.clone(),
        dest_path: PathBuf::new(),
        etag: None,
        expected_bytes: row.expected_bytes,
        sha256: None,
        search: None,
    }
}

/// Removes a file; `Ok(false)` when it was not there.
fn remove_if_there(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

/// `row`'s `.part` no longer holds its version: its record goes and it is
/// truncated to 0 (one that does not exist is fine). A `.part` name that
/// is still the file a hand-off gave the final name to (a link hand-off
/// whose unlink failed) is only unlinked: that file is handed off and is
/// never written again.
fn discard_part(row: &Download) -> Result<()> {
    let path = &row.part_path;
    crate::download::written::forget(path);
    let handed_off = std::fs::metadata(path).is_ok_and(|m| {
        row.handoff_file.as_deref() == Some(crate::download::handoff::file_id(&m).as_str())
    });
    let done = match handed_off {
        true => std::fs::remove_file(path),
        false => crate::download::reconcile::truncate(path, 0),
    };
    match done {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("cannot truncate {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Says at start-up how finished files will reach `completed_dir`.
fn log_handoff(mode: handoff::Mode, d: &DownloadsConfig) {
    log::info!(
        "hand-off mode={} incomplete_dir={} completed_dir={}",
        mode.as_str(),
        d.incomplete_dir.display(),
        d.completed_dir.display()
    );
    if mode == handoff::Mode::Copy {
        log::warn!(
            "incomplete_dir and completed_dir cannot be linked across (two filesystems, or two \
             bind mounts of one): every finished file is copied, which takes time and twice its \
             space for a while; mount one folder that holds both for instant hand-offs"
        );
    }
}

/// Removes a completed download's stub from the watch folder, and the
/// `.failed` form a failure before a retry left of it (`<name>.failed`,
/// `<name>.<n>.failed`: [`watch::aside_names`]). Only a stub of this
/// release goes: a file of that name for another release is another
/// download's, or a grab not read yet.
fn remove_stub(watch_dir: &Path, row: &Download) {
    let name = &row.stub_name;
    if !bare_file_name(name) {
        return;
    }
    let names = std::iter::once(name.clone()).chain(watch::aside_names(name, "failed"));
    for file in names {
        let path = watch_dir.join(&file);
        if !stub_of(&path, &row.info_hash) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => log::info!("stub removed stub={file} id={}", row.id),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove stub stub={file} error={e}"),
        }
    }
}

/// Whether `path` is a regular file holding a stub of the release `info_hash`.
fn stub_of(path: &Path, info_hash: &str) -> bool {
    let small = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && m.len() <= stub::MAX_STUB_BYTES as u64);
    small
        && std::fs::read(path)
            .ok()
            .and_then(|bytes| stub::parse(&bytes, u64::MAX).ok())
            .is_some_and(|s| s.info_hash == info_hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn a_worker_frees_only_its_own_slot() {
        let (mine, theirs): (Live, Live) = (Arc::default(), Arc::new(AtomicU64::new(77)));
        let mut slots = HashMap::new();
        // Still running here: freed.
        let run = |live: &Live| {
            Slot::Running(Run {
                live: live.clone(),
                began: Arc::default(),
                cancel: Arc::default(),
                paused: Arc::default(),
                resume_after: Arc::default(),
                sources: Arc::default(),
            })
        };
        slots.insert(1, run(&mine));
        release_slot(&mut slots, 1, &mine);
        assert!(slots.is_empty());
        // Rescheduled (waiting in the delay queue): kept.
        slots.insert(1, Slot::Waiting(None));
        release_slot(&mut slots, 1, &mine);
        assert!(matches!(slots.get(&1), Some(Slot::Waiting(None))));
        // Already taken by another worker: kept, with its live bytes.
        slots.insert(1, run(&theirs));
        release_slot(&mut slots, 1, &mine);
        assert!(
            matches!(slots.get(&1), Some(Slot::Running(r)) if r.live.load(Ordering::Relaxed) == 77)
        );
    }
}
