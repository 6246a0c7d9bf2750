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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::config::{Config, DownloadsConfig, Peer};
use crate::db::{Download, EventKind, NewDownload, Registry, Status};
use crate::error::{Error, Result};
use crate::peer::{PeerClient, PeerError};
use crate::retry::{self, Policy, Rng};
use crate::stub;
use crate::transfer::{self, Context, Live, Outcome};

/// What became of a stub handed to [`Downloads::add_stub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new download, queued.
    Queued(i64),
    /// The info-hash is already queued, running or completed: nothing new.
    Duplicate(i64),
    /// A failed download of the same info-hash was queued again.
    Requeued(i64),
    /// The stub itself is broken; it starts nothing.
    Invalid(String),
    /// Recorded as a failed download (unknown peer, item gone, unsafe name...).
    Failed(i64, String),
    /// The peer could not be asked right now; try the stub again later.
    Later(String),
}

/// Where a download id is.
#[derive(Debug, Clone)]
enum Slot {
    /// In the job channel or the delay queue.
    Waiting,
    /// In a worker, with its live byte count.
    Running(Live),
}

pub struct Downloads {
    registry: Arc<Registry>,
    config: DownloadsConfig,
    peers: Vec<Peer>,
    client: PeerClient,
    policy: Policy,
    rng: Mutex<Box<dyn Rng>>,
    clock: Arc<dyn Clock>,
    jobs: Sender<i64>,
    timer: Sender<(Instant, i64)>,
    /// Every id in the job channel, the delay queue or a worker, under one
    /// lock so no download is ever worked on by two threads.
    slots: Mutex<HashMap<i64, Slot>>,
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
}

impl Downloads {
    /// Starts the worker pool and the retry timer, and queues every live
    /// row of the registry in its original order.
    /// `rng` (backoff jitter) and `clock` (retry delays, `Retry-After`
    /// dates) are the system's in the daemon and a test's in tests.
    pub fn start(
        registry: Arc<Registry>,
        config: &Config,
        rng: Box<dyn Rng>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Downloads>, Pool)> {
        let d = &config.downloads;
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
            stopping: stopping.clone(),
        });
        let (done_tx, done) = unbounded();
        let mut threads = Vec::new();
        for i in 1..=d.max_concurrent_downloads {
            let (me, rx, done_tx) = (downloads.clone(), job_rx.clone(), done_tx.clone());
            threads.push(spawn(&format!("dl-{i}"), move || {
                me.work(&rx);
                let _ = done_tx.send(());
            })?);
        }
        let me = downloads.clone();
        threads.push(spawn("retry-timer", move || {
            me.run_timer(&timer_rx);
            let _ = done_tx.send(());
        })?);
        // Every live row, in its original order.
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
            },
        ))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Live bytes of a running download (between checkpoints), if running.
    pub fn live_bytes(&self, id: i64) -> Option<u64> {
        match self.slots.lock().get(&id) {
            Some(Slot::Running(live)) => Some(live.load(Ordering::Relaxed)),
            _ => None,
        }
    }

    /// The one way a stub becomes a download (watch folder today, an HTTP
    /// API tomorrow). Talks to the peer, so call it off the request path.
    pub fn add_stub(&self, stub_name: &str, bytes: &[u8]) -> Result<Added> {
        let stub = match stub::parse(bytes, self.config.max_file_size) {
            Ok(s) => s,
            Err(e) => return Ok(Added::Invalid(e.to_string())),
        };
        let existing = self.registry.by_info_hash(&stub.info_hash)?;
        if let Some(d) = existing.iter().find(|d| d.status != Status::Failed) {
            return Ok(Added::Duplicate(d.id));
        }
        if let Some(d) = existing.last() {
            // A failed download grabbed again: resume it, with fresh attempts.
            self.registry.retry(d.id)?;
            self.registry
                .add_event(d.id, EventKind::Queued, &format!("again from {stub_name}"))?;
            self.enqueue(d.id);
            return Ok(Added::Requeued(d.id));
        }
        let mut row = NewDownload {
            stub_name: stub_name.to_string(),
            info_hash: stub.info_hash.clone(),
            peer: stub.peer.clone(),
            item_id: stub.item_id.clone(),
            title: stub.title.clone(),
            file_name: String::new(),
            part_path: transfer::part_path(&self.config.incomplete_dir, &stub.info_hash),
            dest_path: PathBuf::new(),
            etag: None,
            expected_bytes: stub.length,
        };
        let Some(peer) = self.peers.iter().find(|p| p.name == stub.peer) else {
            return self.insert_failed(
                row,
                &format!(
                    "unknown peer {:?}: no [[peers]] entry has that name",
                    stub.peer
                ),
            );
        };
        let release = match self
            .client
            .handshake(peer)
            .and_then(|()| self.client.release(peer, &stub.item_id))
        {
            Ok(r) => r,
            Err(PeerError::Transient(e)) => return Ok(Added::Later(e)),
            Err(PeerError::Permanent(e)) => return self.insert_failed(row, &e),
        };
        row.title = release.title.clone();
        if !safe_file_name(&release.filename) {
            return self.insert_failed(
                row,
                &format!("unsafe file name {:?} from the peer", release.filename),
            );
        }
        row.file_name = release.filename.clone();
        row.dest_path = self.config.completed_dir.join(&release.filename);
        if release.size == 0 || release.size > self.config.max_file_size {
            return self.insert_failed(
                row,
                &format!(
                    "size {} is outside 1..={} (downloads.max_file_size)",
                    release.size, self.config.max_file_size
                ),
            );
        }
        row.expected_bytes = release.size;
        row.etag = release.etag;
        let id = self.registry.insert(&row)?;
        if release.size != stub.length {
            let detail = format!(
                "the peer's file is {} bytes, the stub said {}",
                release.size, stub.length
            );
            self.registry.add_event(id, EventKind::Queued, &detail)?;
        }
        log::info!(
            "download queued id={id} peer={} item={} bytes={}",
            peer.name,
            stub.item_id,
            release.size
        );
        self.enqueue(id);
        Ok(Added::Queued(id))
    }

    fn insert_failed(&self, mut row: NewDownload, error: &str) -> Result<Added> {
        if row.file_name.is_empty() {
            row.dest_path = PathBuf::new();
        }
        row.expected_bytes = row.expected_bytes.min(self.config.max_file_size);
        let id = self.registry.insert(&row)?;
        self.registry
            .transition(id, Status::Failed, Some(error), EventKind::Failed, error)?;
        log::warn!(
            "download failed id={id} stub={} error={error}",
            row.stub_name
        );
        Ok(Added::Failed(id, error.to_string()))
    }

    /// Puts `id` in the job channel unless it is already waiting or running.
    pub fn enqueue(&self, id: i64) {
        let mut slots = self.slots.lock();
        if slots.contains_key(&id) {
            return;
        }
        slots.insert(id, Slot::Waiting);
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

    fn work(&self, jobs: &Receiver<i64>) {
        while !self.stopping.load(Ordering::Relaxed) {
            let Ok(id) = jobs.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let live: Live = Arc::new(AtomicU64::new(0));
            {
                let mut slots = self.slots.lock();
                if !matches!(slots.get(&id), Some(Slot::Waiting)) {
                    continue; // a stale message: the id is elsewhere
                }
                slots.insert(id, Slot::Running(live.clone()));
            }
            let result = self.process(id, &live);
            {
                let mut slots = self.slots.lock();
                if matches!(slots.get(&id), Some(Slot::Running(_))) {
                    slots.remove(&id);
                }
            }
            if let Err(e) = result {
                // The registry could not record the outcome (a full disk, a
                // locked database): keep the download in hand and look again.
                log::error!("download error id={id} error={}", e.chain());
                self.schedule(id, self.config.disk_full_retry);
            }
        }
    }

    fn process(&self, id: i64, live: &Live) -> Result<()> {
        let Some(row) = self.registry.get(id)? else {
            return Ok(());
        };
        if !row.status.is_live() {
            return Ok(());
        }
        let Some(peer) = self.peers.iter().find(|p| p.name == row.peer) else {
            let error = format!("unknown peer {:?}", row.peer);
            return self.registry.transition(
                id,
                Status::Failed,
                Some(&error),
                EventKind::Failed,
                &error,
            );
        };
        let on_disk = std::fs::metadata(&row.part_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let offset = on_disk.min(row.downloaded_bytes);
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
        let cx = Context {
            registry: &self.registry,
            client: &self.client,
            peer,
            max_file_size: self.config.max_file_size,
            live,
            clock: self.clock.as_ref(),
            stopping: &self.stopping,
        };
        let outcome = transfer::run(&cx, &row);
        self.record(&row, outcome)
    }

    fn record(&self, row: &Download, outcome: Outcome) -> Result<()> {
        let id = row.id;
        let reg = &self.registry;
        match outcome {
            Outcome::Completed { fetched } => {
                let detail = format!(
                    "{} bytes, {fetched} fetched in this attempt",
                    row.expected_bytes
                );
                reg.end_attempt(id, Status::Completed, None, EventKind::Completed, &detail)?;
                log::info!(
                    "download completed id={id} bytes={} dest={}",
                    row.expected_bytes,
                    row.dest_path.display()
                );
                remove_stub(&self.config.watch_dir, &row.stub_name);
            }
            Outcome::Retry { error, retry_after } => {
                let attempts = row.attempts + 1;
                let delay = retry::next_delay(
                    &self.policy,
                    attempts + 1,
                    retry_after,
                    self.rng.lock().as_mut(),
                );
                match delay {
                    Some(delay) => {
                        let detail = format!("in {} ms after {error}", delay.as_millis());
                        reg.end_attempt(
                            id,
                            Status::Retrying,
                            Some(&error),
                            EventKind::RetryScheduled,
                            &detail,
                        )?;
                        log::info!(
                            "download retry id={id} attempt={attempts} delay_ms={} error={error}",
                            delay.as_millis()
                        );
                        self.schedule(id, delay);
                    }
                    None => {
                        let error = format!("gave up after {attempts} attempts: {error}");
                        reg.end_attempt(
                            id,
                            Status::Failed,
                            Some(&error),
                            EventKind::Failed,
                            &error,
                        )?;
                        log::warn!("download failed id={id} error={error}");
                    }
                }
            }
            Outcome::Fatal { error } => {
                reg.end_attempt(id, Status::Failed, Some(&error), EventKind::Failed, &error)?;
                log::warn!("download failed id={id} error={error}");
            }
            Outcome::Paused { error } => {
                reg.transition(id, Status::Paused, Some(&error), EventKind::Paused, &error)?;
                log::warn!("download paused id={id} error={error}");
                self.schedule(id, self.config.disk_full_retry);
            }
            Outcome::Interrupted => {
                let detail = "interrupted by shutdown; progress checkpointed";
                reg.transition(id, Status::Queued, None, EventKind::Paused, detail)?;
            }
        }
        Ok(())
    }

    /// Hands `id` to the delay queue (the worker running it is done with it).
    fn schedule(&self, id: i64, delay: Duration) {
        self.slots.lock().insert(id, Slot::Waiting);
        let _ = self.timer.send((self.clock.now() + delay, id));
    }

    /// The delay queue: holds (due, id) and hands ids to the workers when due.
    fn run_timer(&self, incoming: &Receiver<(Instant, i64)>) {
        let mut heap: BinaryHeap<Reverse<(Instant, i64)>> = BinaryHeap::new();
        while !self.stopping.load(Ordering::Relaxed) {
            // The clock may be a test's: wake at least every 100 ms to look.
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
            if let Ok(item) = incoming.recv_timeout(wait) {
                heap.push(Reverse(item));
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

/// A bare file name: no separators, not `.`/`..`, no control characters,
/// at most 255 bytes.
pub fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Removes a completed download's stub from the watch folder.
fn remove_stub(watch_dir: &Path, stub_name: &str) {
    if !safe_file_name(stub_name) {
        return;
    }
    match std::fs::remove_file(watch_dir.join(stub_name)) {
        Ok(()) => log::info!("stub removed stub={stub_name}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove stub stub={stub_name} error={e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        for ok in [
            "a.mkv",
            "The Matrix (1999).mkv",
            "日本語.mkv",
            ".hidden.mkv",
        ] {
            assert!(safe_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b.mkv",
            "..\\x",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(!safe_file_name(bad), "{bad:?}");
        }
    }
}
