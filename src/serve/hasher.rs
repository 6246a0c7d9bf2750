//! The background hasher (`PROTOCOL.md` §2.6, "Serving"): the SHA-256 of
//! every file the catalogue serves, and of each of its 16 MiB pieces, for
//! `Release.sha256`, `Repr-Digest` and `/peer/items/{id}/pieces`.
//!
//! One named thread (`hasher`) at idle CPU and I/O priority reads each file
//! once, front to back through one fixed 1 MiB buffer, feeding the
//! whole-file digest and the current piece's from the same bytes, and drops
//! what it read from the page cache behind itself (`POSIX_FADV_DONTNEED`),
//! so a NAS's cache keeps what people watch. It reads at most
//! `server.hash_rate` bytes a second and waits while a friend is being sent
//! a library file (`http::lane::library_bodies`), going on when the last
//! body ends; it looks at its stop between two reads.
//!
//! A digest belongs to one version of a file: it is kept in memory under
//! the version's [`Tag`] (the ETag's device, inode, size, modification and
//! change times), which is what a request reads ([`Digests`]: no SQL on a
//! request's path), and in the registry under the file's identity
//! ([`FileId`]), where it survives restarts, rescans and renames. A
//! registry digest is taken without reading the file again only when
//! nothing changed the file since it was recorded (its change time is not
//! later than the recording's second, and this process has not seen the same
//! identity under another tag): a file rewritten in place with its old
//! size and modification time put back keeps its identity, not its change
//! time. That is also how a file a download handed off gets the digest
//! the download recorded. A file that changed while it was read is
//! dropped and read again later; until a version is hashed, nothing is
//! offered for it. Digests of files the catalogue no longer has are
//! forgotten after [`FORGET_AFTER`] of absence.
//!
//! Must not: hold the registry's mutex across a read, size a buffer by a
//! file, or offer a digest for any version but the one it was made of.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use parking_lot::RwLock;

use crate::db::{FileId, Registry};
use crate::digest::{PIECE_SIZE, Pieces, Sha256};
use crate::error::Result;
use crate::metrics::METRICS;
use crate::serve::catalogue::{Catalogue, Snapshot, Tag, tag};
use crate::worker::Background;

/// The one read buffer: 1 MiB, whatever the file.
const READ_BUFFER: usize = 1 << 20;

/// How often the thread looks for a new catalogue (each rescan is a pass).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How often a paused hasher looks whether the friends' bodies ended.
const PAUSE_LOOK: Duration = Duration::from_millis(100);

/// When a file that changed while it was read (or could not be read) is
/// tried again, if no rescan comes first.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long a digest stays in the registry after its file left the
/// catalogue (a disk that was away is not read again when it returns).
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// The digests of the versions the catalogue serves, by [`Tag`]: what
/// requests read. Filled by the hasher.
#[derive(Debug, Default)]
pub struct Digests {
    known: RwLock<HashMap<Tag, Arc<Pieces>>>,
    files: AtomicU64,
    digested: AtomicU64,
    bytes_left: AtomicU64,
    paused: AtomicBool,
}

/// How far the hasher is ([`Digests::progress`]): for the status API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashProgress {
    /// Files of the catalogue at the last pass.
    pub files: u64,
    /// Of those, files whose current version has its digests.
    pub digested: u64,
    /// Bytes still to read in this pass.
    pub bytes_left: u64,
    /// Waiting while friends are sent files.
    pub paused: bool,
}

impl Digests {
    /// The digests of exactly the version `tag` names.
    pub fn get(&self, tag: &Tag) -> Option<Arc<Pieces>> {
        self.known.read().get(tag).cloned()
    }

    /// The whole-file digest of the version `tag` names, of `size` bytes.
    pub fn sha256(&self, tag: &Tag, size: u64) -> Option<Sha256> {
        self.get(tag).filter(|p| p.size == size).map(|p| p.sha256)
    }

    pub fn progress(&self) -> HashProgress {
        HashProgress {
            files: self.files.load(Ordering::Relaxed),
            digested: self.digested.load(Ordering::Relaxed),
            bytes_left: self.bytes_left.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
        }
    }

    fn insert(&self, tag: Tag, pieces: Arc<Pieces>) {
        self.known.write().insert(tag, pieces);
    }
}

/// The `hasher` thread.
pub struct Hasher {
    thread: Background,
}

impl Hasher {
    /// Starts hashing the files of `catalogue` (each new snapshot is a
    /// pass) at `rate` bytes a second (0: no cap), keeping digests in
    /// `registry` and in `catalogue.digests()`.
    pub fn start(catalogue: Arc<Catalogue>, registry: Arc<Registry>, rate: u64) -> Result<Hasher> {
        let thread = Background::spawn("hasher", move |stop, stopping| {
            lower_priority();
            let mut run = Run {
                digests: catalogue.digests().clone(),
                catalogue,
                registry,
                rate,
                stop,
                stopping,
                by_file: HashMap::new(),
                left_after: 0,
                absent_since: HashMap::new(),
                buf: vec![0; READ_BUFFER],
            };
            run.main();
        })?;
        Ok(Hasher { thread })
    }

    /// Stops the thread between two reads, waiting at most `limit`.
    pub fn stop(self, limit: Duration) {
        self.thread.stop(limit);
    }
}

/// Idle CPU scheduling for this thread (`SCHED_IDLE`), which also puts
/// its reads in the idle I/O class: Linux gives a thread without an I/O
/// priority of its own the class of its CPU policy (`task_nice_ioclass`).
/// Best effort: a refusal is logged and hashing goes on.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        log::warn!("hasher: cannot lower its priority to idle, hashing anyway error={e:?}");
    }
}

/// Why a pass or a file ended.
enum End {
    Stopped,
    /// Done; something is to be tried again later.
    Done {
        retry: bool,
    },
}

/// What reading one file came to.
enum Read1 {
    Hashed,
    /// No longer in the catalogue or its library.
    Gone,
    /// Changed while read, or could not be read: try again later.
    Again,
    Stopped,
}

struct Run {
    catalogue: Arc<Catalogue>,
    digests: Arc<Digests>,
    registry: Arc<Registry>,
    rate: u64,
    stop: Receiver<()>,
    stopping: Arc<AtomicBool>,
    /// The tag this process last saw each identity under.
    by_file: HashMap<FileId, Tag>,
    /// Bytes of this pass's files after the one being read.
    left_after: u64,
    /// Recorded files the catalogue no longer has, since when.
    absent_since: HashMap<(u64, u64), Instant>,
    buf: Vec<u8>,
}

impl Run {
    fn main(&mut self) {
        // A pass over the catalogue as it is (empty, when its first scan
        // has not ended yet), then one per scan.
        let mut last: Option<Arc<Snapshot>> = None;
        let mut retry_at: Option<Instant> = None;
        loop {
            let snap = self.catalogue.snapshot();
            let due = retry_at.is_some_and(|at| Instant::now() >= at);
            if last.as_ref().is_none_or(|l| !Arc::ptr_eq(&snap, l)) || due {
                match self.pass(&snap) {
                    End::Stopped => return,
                    End::Done { retry } => {
                        retry_at = retry.then(|| Instant::now() + RETRY_AFTER);
                    }
                }
                last = Some(snap);
            }
            if self.stop.recv_timeout(LOOK_EVERY) != Err(RecvTimeoutError::Timeout) {
                return;
            }
        }
    }

    /// Every file of `snap`: its digests from memory or the registry, else
    /// read; then the registry's digests of files long gone forgotten.
    fn pass(&mut self, snap: &Snapshot) -> End {
        let started = Instant::now();
        let ids = self.catalogue.item_ids(snap);
        let mut seen: HashSet<Tag> = HashSet::with_capacity(ids.len());
        let mut present: HashSet<(u64, u64)> = HashSet::with_capacity(ids.len());
        let mut by_file = HashMap::with_capacity(ids.len());
        let mut todo = Vec::new();
        for id in ids {
            if self.stopping.load(Ordering::Relaxed) {
                return End::Stopped;
            }
            let Ok(Some(meta)) = self.catalogue.stat(&id) else {
                continue;
            };
            let (t, file) = (tag(&meta), FileId::of(&meta));
            present.insert((file.dev, file.ino));
            seen.insert(t);
            let moved = self.by_file.get(&file).is_some_and(|old| *old != t);
            by_file.insert(file, t);
            if self.digests.get(&t).is_some() {
                continue;
            }
            if !moved && let Some(p) = self.recorded(&file, &meta) {
                self.digests.insert(t, Arc::new(p));
                continue;
            }
            todo.push((id, file.size));
        }
        self.by_file = by_file;
        // Versions no longer served are dropped from memory.
        self.digests.known.write().retain(|t, _| seen.contains(t));
        let files = seen.len() as u64;
        let left: u64 = todo.iter().map(|(_, size)| size).sum();
        self.digests.files.store(files, Ordering::Relaxed);
        self.digests
            .digested
            .store(files - todo.len() as u64, Ordering::Relaxed);
        self.digests.bytes_left.store(left, Ordering::Relaxed);
        self.forget(&present);
        if !todo.is_empty() {
            log::info!(
                "hasher pass files={files} to_hash={} bytes={left} rate={}",
                todo.len(),
                self.rate
            );
        }
        let mut pace = Pace::new(self.rate);
        let mut retry = false;
        self.left_after = left;
        for (id, size) in todo {
            self.left_after = self.left_after.saturating_sub(size);
            match self.hash(&id, &mut pace) {
                Read1::Stopped => return End::Stopped,
                Read1::Again => retry = true,
                Read1::Gone => {}
                Read1::Hashed => {
                    self.digests.digested.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.digests
                .bytes_left
                .store(self.left_after, Ordering::Relaxed);
        }
        log::debug!(
            "hasher pass done files={files} elapsed_ms={}",
            started.elapsed().as_millis()
        );
        End::Done { retry }
    }

    /// The registry's digests of `file`, when nothing changed it since they
    /// were recorded (its change time not past the recording's second).
    fn recorded(&self, file: &FileId, meta: &std::fs::Metadata) -> Option<Pieces> {
        match self.registry.digest_recorded(file) {
            Ok(Some((p, at))) => trusted(meta.ctime(), at).then_some(p),
            Ok(None) => None,
            Err(e) => {
                log::warn!("hasher: cannot read a digest from the registry error={e}");
                None
            }
        }
    }

    /// Reads the file of `id` once and records its digests.
    fn hash(&mut self, id: &str, pace: &mut Pace) -> Read1 {
        let opened = match self.catalogue.open(id) {
            Ok(Some(f)) => f,
            Ok(None) => return Read1::Gone,
            Err(e) => {
                log::warn!("hasher: cannot open a library file id={id} error={e}");
                return Read1::Again;
            }
        };
        let mut file = opened.file;
        let Ok(before) = file.metadata() else {
            return Read1::Again;
        };
        let t = tag(&before);
        if self.digests.get(&t).is_some() {
            return Read1::Hashed;
        }
        let at = unix_now();
        let started = Instant::now();
        let mut pieces = PieceHasher::default();
        let mut pos = 0u64;
        loop {
            if !self.wait_for_friends(pace) || self.stopping.load(Ordering::Relaxed) {
                return Read1::Stopped;
            }
            let n = match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("hasher: cannot read a library file id={id} error={e}");
                    return Read1::Again;
                }
            };
            pieces.update(&self.buf[..n]);
            let len = n as u64;
            // Behind the read: what was read leaves the page cache.
            let _ = rustix::fs::fadvise(
                &file,
                pos,
                std::num::NonZeroU64::new(len),
                rustix::fs::Advice::DontNeed,
            );
            pos += len;
            METRICS.hashed(len);
            let unread = before.len().saturating_sub(pos);
            self.digests
                .bytes_left
                .store(self.left_after + unread, Ordering::Relaxed);
            if !self.sleep(pace.after(len, Instant::now())) {
                return Read1::Stopped;
            }
        }
        let same = file.metadata().is_ok_and(|after| tag(&after) == t);
        if !same || pos != before.len() {
            log::info!("hasher: a file changed while it was read, again later id={id}");
            return Read1::Again;
        }
        let pieces = pieces.finish();
        let file_id = FileId::of(&before);
        if let Err(e) = self.registry.put_digest(&file_id, &pieces, at) {
            // Offered until the process ends all the same: it is exact.
            log::warn!("hasher: cannot record a digest error={e}");
        }
        self.by_file.insert(file_id, t);
        self.digests.insert(t, Arc::new(pieces));
        METRICS.hashed_file();
        log::debug!(
            "hasher: hashed id={id} bytes={pos} elapsed_ms={}",
            started.elapsed().as_millis()
        );
        Read1::Hashed
    }

    /// Waits while a friend is being sent a library file; false when asked
    /// to stop meanwhile. The pace starts again after a wait.
    fn wait_for_friends(&self, pace: &mut Pace) -> bool {
        if crate::http::lane::library_bodies() == 0 {
            return true;
        }
        self.digests.paused.store(true, Ordering::Relaxed);
        log::debug!("hasher: paused while friends download");
        let mut go_on = true;
        while crate::http::lane::library_bodies() > 0 {
            if !self.sleep(PAUSE_LOOK) {
                go_on = false;
                break;
            }
        }
        self.digests.paused.store(false, Ordering::Relaxed);
        *pace = Pace::new(self.rate);
        go_on
    }

    /// Sleeps `d` unless asked to stop (false).
    fn sleep(&self, d: Duration) -> bool {
        if d.is_zero() {
            return !self.stopping.load(Ordering::Relaxed);
        }
        self.stop.recv_timeout(d) == Err(RecvTimeoutError::Timeout)
    }

    /// Forgets the registry's digests of files absent from the catalogue
    /// for [`FORGET_AFTER`].
    fn forget(&mut self, present: &HashSet<(u64, u64)>) {
        let recorded = match self.registry.digested_files() {
            Ok(r) => r,
            Err(e) => {
                log::warn!("hasher: cannot list the recorded digests error={e}");
                return;
            }
        };
        let gone = long_gone(
            &recorded,
            present,
            &mut self.absent_since,
            Instant::now(),
            FORGET_AFTER,
        );
        if gone.is_empty() {
            return;
        }
        match self.registry.forget_digests(&gone) {
            Ok(()) => log::info!("hasher: forgot the digests of {} gone files", gone.len()),
            Err(e) => log::warn!("hasher: cannot forget digests error={e}"),
        }
    }
}

/// How long the hasher's SHA-256 (whole file and pieces, one pass) takes
/// over `bytes` bytes in memory: `jack hash-speed`, `BENCHMARKS.md`.
pub fn speed(bytes: u64) -> Duration {
    let buf: Vec<u8> = (0..READ_BUFFER).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let mut h = PieceHasher::default();
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(READ_BUFFER, |l| l.min(READ_BUFFER));
        h.update(&buf[..n]);
        left -= n as u64;
    }
    std::hint::black_box(h.finish());
    started.elapsed()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a digest recorded in second `at` still holds for a file whose
/// change time is `ctime` (seconds): nothing changed it after that second.
fn trusted(ctime: i64, at: u64) -> bool {
    u64::try_from(ctime).is_ok_and(|c| c <= at)
}

/// The recorded files (device, inode) absent from `present` for `after`
/// as of `now`; `absent_since` keeps when each went missing (a file back
/// in the catalogue starts over).
fn long_gone(
    recorded: &[(u64, u64)],
    present: &HashSet<(u64, u64)>,
    absent_since: &mut HashMap<(u64, u64), Instant>,
    now: Instant,
    after: Duration,
) -> Vec<(u64, u64)> {
    let missing: HashSet<(u64, u64)> = recorded
        .iter()
        .filter(|f| !present.contains(f))
        .copied()
        .collect();
    absent_since.retain(|f, _| missing.contains(f));
    let mut gone = Vec::new();
    for f in missing {
        let since = *absent_since.entry(f).or_insert(now);
        if now.duration_since(since) >= after {
            gone.push(f);
        }
    }
    gone.sort_unstable();
    for f in &gone {
        absent_since.remove(f);
    }
    gone
}

/// The rate cap: reads are spaced so that, from `since`, at most `rate`
/// bytes a second were read (0: no cap). Pure: the time is passed in.
#[derive(Debug, Clone, Copy)]
struct Pace {
    rate: u64,
    since: Option<Instant>,
    bytes: u64,
}

impl Pace {
    fn new(rate: u64) -> Pace {
        Pace {
            rate,
            since: None,
            bytes: 0,
        }
    }

    /// `len` more bytes were read, at `now`: how long to wait before the
    /// next read.
    fn after(&mut self, len: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let since = *self.since.get_or_insert(now);
        self.bytes += len;
        let due = u128::from(self.bytes) * 1_000_000_000 / u128::from(self.rate);
        let due = Duration::from_nanos(u64::try_from(due).unwrap_or(u64::MAX));
        due.saturating_sub(now.duration_since(since))
    }
}

/// The whole-file SHA-256 and each 16 MiB piece's, fed once from the same
/// bytes in any slices. Pure.
#[derive(Debug, Default)]
struct PieceHasher {
    whole: crate::digest::Hasher,
    piece: crate::digest::Hasher,
    done: Vec<Sha256>,
}

impl PieceHasher {
    fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        while !data.is_empty() {
            let room = PIECE_SIZE - self.piece.len();
            let take = usize::try_from(room).map_or(data.len(), |r| r.min(data.len()));
            self.piece.update(&data[..take]);
            data = &data[take..];
            if self.piece.len() == PIECE_SIZE {
                let full = std::mem::take(&mut self.piece);
                self.done.push(full.finish());
            }
        }
    }

    fn finish(mut self) -> Pieces {
        if !self.piece.is_empty() {
            self.done.push(self.piece.finish());
        }
        Pieces {
            size: self.whole.len(),
            sha256: self.whole.finish(),
            pieces: self.done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_the_same_whatever_the_slices() {
        let size = 2 * PIECE_SIZE as usize + 5;
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let want = Pieces::of(&data);
        assert_eq!(want.pieces.len(), 3);
        for slice in [
            1 << 20,
            1000,
            PIECE_SIZE as usize,
            PIECE_SIZE as usize + 1,
            size,
        ] {
            let mut h = PieceHasher::default();
            for chunk in data.chunks(slice) {
                h.update(chunk);
            }
            assert_eq!(h.finish(), want, "slices of {slice}");
        }
        let empty = PieceHasher::default().finish();
        assert_eq!(empty, Pieces::of(&[]));
        assert!(empty.pieces.is_empty());
        let mut exact = PieceHasher::default();
        exact.update(&data[..PIECE_SIZE as usize]);
        assert_eq!(exact.finish().pieces.len(), 1, "no empty last piece");
    }

    #[test]
    fn the_pace_holds_the_rate_and_no_cap_never_waits() {
        let t0 = Instant::now();
        let mut free = Pace::new(0);
        assert_eq!(free.after(1 << 30, t0), Duration::ZERO);
        let mut p = Pace::new(1 << 20);
        // 1 MiB at 1 MiB/s read at once: wait a second.
        assert_eq!(p.after(1 << 20, t0), Duration::from_secs(1));
        // The next MiB read 1.5 s in: due at 2 s.
        let t = t0 + Duration::from_millis(1500);
        assert_eq!(p.after(1 << 20, t), Duration::from_millis(500));
        // A slow disk owes nothing.
        let t = t0 + Duration::from_secs(10);
        assert_eq!(p.after(1 << 20, t), Duration::ZERO);
    }

    #[test]
    fn a_record_holds_only_when_nothing_changed_the_file_after_it() {
        assert!(trusted(100, 100), "changed in the second it was recorded");
        assert!(trusted(99, 100));
        assert!(!trusted(101, 100), "changed after: read again");
        assert!(!trusted(-1, 100), "before 1970: never trusted");
    }

    #[test]
    fn files_gone_long_enough_are_forgotten() {
        let mut since = HashMap::new();
        let (a, b, c) = ((1, 1), (1, 2), (2, 1));
        let present: HashSet<_> = [a].into();
        let t0 = Instant::now();
        let day = Duration::from_secs(86_400);
        let recorded = [a, b, c];
        assert!(long_gone(&recorded, &present, &mut since, t0, day).is_empty());
        assert_eq!(since.len(), 2, "b and c missing since t0");
        // c comes back, then goes again: its absence starts over.
        let with_c: HashSet<_> = [a, c].into();
        let t1 = t0 + day / 2;
        assert!(long_gone(&recorded, &with_c, &mut since, t1, day).is_empty());
        let t2 = t0 + day;
        assert_eq!(long_gone(&recorded, &present, &mut since, t2, day), [b]);
        assert!(!since.contains_key(&b));
        let t3 = t2 + day;
        assert_eq!(long_gone(&[a, c], &present, &mut since, t3, day), [c]);
    }
}
