//! Several sources for one download (`PROTOCOL.md` §2.6).
//!
//! Friends whose release has the same size and SHA-256 hold the same file.
//! [`discover`] asks every other configured peer's `/peer/search` with the
//! release's ids and keeps those; [`round`] then fetches different parts
//! of the file from each at once, in the one worker the download holds:
//!
//! * the file is cut into tasks of one 16 MiB piece, handed out in order
//!   ([`Sched`]); each source asks for its task with a closed `Range`
//!   (every answer checked by rule 5, and by its `Repr-Digest`: a source
//!   other than the download's own must send the release's digest) and
//!   writes it at its offsets, sequentially: each source appends within
//!   its own part;
//! * no task starts more than a window (two pieces per source) past the
//!   point up to which every byte is written and hashed, so the bytes
//!   ahead of the durable prefix stay few;
//! * a source that fails or goes away gives its task's remainder back,
//!   and an idle source takes half of the largest remainder of another
//!   (a slow source's parts are split among the others);
//! * the durable progress is still a prefix: the checkpoints commit the
//!   end of the written range that starts at the round's offset, and the
//!   verifier follows it as in a single-source body. A piece that fails
//!   its check ends the round: the culprits (every source that wrote into
//!   the piece) are counted, the registry goes back to the piece's start,
//!   and the next round goes on without a source that failed twice,
//!   fetching only the holes: what was written past the piece is kept
//!   ([`Kept`]) and checked when the prefix reaches it.
//!
//! The worker pool still bounds the downloads; `downloads.max_sources`
//! bounds the connections of one download (threads of the round's scope).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{
    CHECKPOINT_BYTES, CHECKPOINT_INTERVAL, Context, Fields, Flusher, Job, Part, Stop, Verdict,
    judge, network_failure,
};
use crate::config::Peer;
use crate::db::Download;
use crate::digest::{PIECE_SIZE, Sha256};
use crate::download::verify::{self, BadPiece, Follow, Proofs, Verifier};
use crate::download::written::Record;

/// How long a search for other sources may take, per peer (they are asked
/// at once).
const SEARCH_DEADLINE: Duration = Duration::from_secs(10);
/// The smallest half of a remainder an idle source takes over (a slow
/// source keeps at most twice this of its task: a few requests more for
/// a remainder halved again and again).
const MIN_SPLIT: u64 = 128 * 1024;

/// One source of a download: a peer's item with the same size and digest.
#[derive(Debug, Clone)]
pub struct Src {
    pub peer: Peer,
    pub item_id: String,
    /// The download's own peer and item (the row's).
    pub primary: bool,
    /// The validator its answers carried, once seen.
    pub etag: Option<String>,
    pub stat: Arc<SourceStat>,
}

/// The sources of one attempt, the pieces one source must fetch alone
/// (one failed with several writers), and what a round that ended on a
/// piece left written ahead of it.
#[derive(Debug, Default)]
pub struct Crew {
    pub list: Vec<Src>,
    pub whole_only: HashSet<u64>,
    pub kept: Kept,
}

/// Bytes an earlier round of this attempt wrote past the piece it ended
/// on, kept for the next round instead of fetched again: the ranges
/// (merged, sorted, every one past the next round's start) and which
/// sources wrote into each of their pieces (a bit per index of
/// `Crew::list`). They are not durable and not proven: the next round
/// hands out only the holes between them, and the verifier reads them
/// back and checks each piece when the prefix reaches it, as any byte
/// written ahead. An attempt that ends, or goes on with the download's own
/// source alone, cuts them away.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kept {
    pub ranges: Vec<(u64, u64)>,
    writers: HashMap<u64, u32>,
}

impl Kept {
    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes kept.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }

    /// Says what download `id` keeps past the piece at `start`.
    pub fn log(&self, id: i64, start: u64) {
        if !self.is_empty() {
            log::info!(
                "download id={id} keeps {} bytes written past piece {}: not fetched again",
                self.bytes(),
                start / PIECE_SIZE + 1
            );
        }
    }

    /// The sources are now `after` (some were dropped from `before`, the
    /// same list earlier, by name and item): the bits follow each source
    /// to its new index, and a piece a dropped source wrote into goes
    /// (its bytes are fetched again: a failure could name no one).
    pub fn follow(&mut self, before: &[(String, String)], after: &[Src]) {
        let index = |i: usize| {
            let (peer, item) = before.get(i)?;
            after
                .iter()
                .position(|s| &s.peer.name == peer && &s.item_id == item)
        };
        let mut gone = Vec::new();
        for (&piece, bits) in self.writers.iter_mut() {
            let mut moved = 0u32;
            for i in (0..32).filter(|i| *bits & (1 << i) != 0) {
                match index(i) {
                    Some(j) => moved |= 1 << j,
                    None => gone.push(piece),
                }
            }
            *bits = moved;
        }
        for piece in gone {
            self.forget_piece(piece);
        }
    }

    /// Drops every kept byte of `piece`.
    fn forget_piece(&mut self, piece: u64) {
        let (start, end) = (piece * PIECE_SIZE, piece_end(piece * PIECE_SIZE));
        let mut left = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if a < start {
                left.push((a, b.min(start)));
            }
            if b > end {
                left.push((a.max(end), b));
            }
        }
        self.ranges = left;
        self.writers.remove(&piece);
    }
}

/// What the status shows of one source of a running download.
#[derive(Debug)]
pub struct SourceStat {
    pub peer: String,
    /// Bytes it sent in this attempt.
    pub bytes: AtomicU64,
    /// Bytes per second over its last second of sending.
    pub rate: AtomicU64,
    /// Pieces it sent that failed their check (this download, in all).
    pub bad_pieces: AtomicU32,
    /// `active`, `idle`, `failed: ...` or `dropped: ...`.
    pub state: Mutex<String>,
}

impl SourceStat {
    pub fn new(peer: &str) -> Arc<SourceStat> {
        Arc::new(SourceStat {
            peer: peer.to_string(),
            bytes: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            bad_pieces: AtomicU32::new(0),
            state: Mutex::new("idle".into()),
        })
    }

    fn set(&self, state: impl Into<String>) {
        *self.state.lock() = state.into();
    }
}

/// The sources of a running download, as the status reads them.
pub type Sources = Arc<Mutex<Vec<Arc<SourceStat>>>>;

/// The download's own source and every other configured peer whose
/// release has the same size and SHA-256 (at most `max_sources` in all).
/// Nothing is asked when the release has no ids to search by, or one
/// source is all that is allowed.
pub fn discover(cx: &Context<'_>, row: &Download, sha256: &Sha256) -> Vec<Src> {
    let primary = Src {
        peer: cx.peer.clone(),
        item_id: row.item_id.clone(),
        primary: true,
        etag: row.etag.clone(),
        stat: SourceStat::new(&cx.peer.name),
    };
    let bad = cx.registry.bad_pieces(row.id).unwrap_or_default();
    let bad_of = |peer: &str, item: &str| {
        bad.iter()
            .find(|(p, i, _)| p == peer && i == item)
            .map_or(0, |b| b.2)
    };
    let primary_bad = bad_of(&cx.peer.name, &row.item_id);
    primary
        .stat
        .bad_pieces
        .store(primary_bad, Ordering::Relaxed);
    // Dropped for this download stays dropped (until the owner's retry).
    let mut found = if primary_bad < super::MAX_BAD_PIECES {
        vec![primary]
    } else {
        Vec::new()
    };
    if cx.max_sources <= 1 || cx.others.is_empty() {
        return found;
    }
    let allowed = cx.max_sources;
    // The release's ids, kept with the row: found even when its own peer
    // is gone.
    let ids: Vec<(&str, String)> = row
        .search
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| ["tmdbId", "imdbId", "tvdbId", "season", "episode"].contains(k))
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    if ids.is_empty() {
        return found;
    }
    let hex = crate::digest::hex(sha256);
    let listings: Vec<(Peer, Vec<String>)> = std::thread::scope(|s| {
        let asks: Vec<_> = cx
            .others
            .iter()
            .map(|peer| {
                let ids = &ids;
                let hex = &hex;
                s.spawn(move || {
                    let items = match cx.client.search(peer, ids, SEARCH_DEADLINE) {
                        Ok(listing) => listing
                            .releases
                            .into_iter()
                            .filter(|r| r.size == row.expected_bytes)
                            .filter(|r| r.sha256.as_deref() == Some(hex.as_str()))
                            .map(|r| r.id)
                            .collect(),
                        Err(e) => {
                            log::info!("no source from {}: {e}", peer.name);
                            Vec::new()
                        }
                    };
                    (peer.clone(), items)
                })
            })
            .collect();
        asks.into_iter().filter_map(|a| a.join().ok()).collect()
    });
    for (peer, items) in listings {
        // One item per friend: a second copy on one uplink adds nothing.
        let Some(item) = items
            .into_iter()
            .find(|i| bad_of(&peer.name, i) < super::MAX_BAD_PIECES)
        else {
            continue;
        };
        if found.len() >= allowed {
            break;
        }
        let stat = SourceStat::new(&peer.name);
        stat.bad_pieces
            .store(bad_of(&peer.name, &item), Ordering::Relaxed);
        found.push(Src {
            peer,
            item_id: item,
            primary: false,
            etag: None,
            stat,
        });
    }
    found
}

/// A source's task: bytes up to `end` of the file, written up to `pos`.
/// `end` may come down while it runs (another source takes the rest), but
/// never below `writing`: a source writes only bytes it was permitted
/// ([`Sched::permit`]) after they arrived, so two sources never write
/// the same offsets and nothing is written below the prefix.
#[derive(Debug, Clone, Copy)]
struct Task {
    pos: u64,
    end: u64,
    /// The end of the write permitted and under way (`pos` when none).
    writing: u64,
    /// When the task last passed a [`STALL_BYTES`] mark, and that mark.
    mark: (Instant, u64),
}

/// A task that moves less than this in [`STALL`] while another source
/// waits for work is taken from its source (a trickle is not served).
const STALL_BYTES: u64 = 64 * 1024;
const STALL: Duration = Duration::from_secs(3);
/// Bytes one source reads (and then writes) at a time.
const STEP: usize = 128 * 1024;

/// Who fetches what in a round.
#[derive(Debug)]
struct Sched {
    expected: u64,
    /// The round's starting offset: every byte below is durable.
    base: u64,
    /// The next byte no task has covered yet.
    next: u64,
    /// Remainders given back, lowest first.
    queue: Vec<(u64, u64)>,
    tasks: Vec<Option<Task>>,
    /// Sources still in the round.
    alive: Vec<bool>,
    /// Why a source left the round.
    errors: Vec<Option<String>>,
    /// Written ranges at or above `base`, merged, sorted.
    written: Vec<(u64, u64)>,
    /// Which sources wrote into each piece (a bit per source).
    writers: HashMap<u64, u32>,
    /// How far the verifier has hashed (tasks start within a window of it).
    hashed: u64,
    /// Pieces one source fetches alone (one failed with several writers:
    /// fetched again by one, a failure names its culprit).
    whole_only: HashSet<u64>,
    /// A piece one source was to fetch alone lost that source mid-piece:
    /// the round ends, and the piece is fetched again from its start.
    redo: Option<u64>,
    window: u64,
    over: bool,
}

impl Sched {
    fn new(
        base: u64,
        expected: u64,
        sources: usize,
        whole_only: HashSet<u64>,
        kept: Kept,
    ) -> Sched {
        // What an earlier round wrote ahead stays written: the holes
        // below its end are handed out first, then from its end on.
        let mut queue = Vec::new();
        let mut next = base;
        for &(a, b) in &kept.ranges {
            insert_range(&mut queue, (next, a));
            next = next.max(b);
        }
        Sched {
            expected,
            base,
            next,
            queue,
            tasks: vec![None; sources],
            alive: vec![true; sources],
            errors: vec![None; sources],
            written: kept.ranges,
            writers: kept.writers,
            hashed: base,
            whole_only,
            redo: None,
            window: 2 * PIECE_SIZE * sources as u64,
            over: false,
        }
    }

    /// Every byte from `base` up to this is written.
    fn prefix(&self) -> u64 {
        match self.written.first() {
            Some(&(a, b)) if a <= self.base => b,
            _ => self.base,
        }
    }

    /// Bytes written in the round.
    fn written_bytes(&self) -> u64 {
        self.written.iter().map(|(a, b)| b - a).sum()
    }

    /// The next task for source `me`, if there is one now.
    fn take(&mut self, me: usize) -> Option<Task> {
        if self.over || !self.alive[me] {
            return None;
        }
        // What others gave back comes first (it holds the prefix back).
        if !self.queue.is_empty() {
            let (start, end) = self.queue.remove(0);
            let cut = piece_end(start).min(end);
            if cut < end {
                self.queue.insert(0, (cut, end));
            }
            return Some(self.assign(me, start, cut));
        }
        let limit = self.hashed.min(self.prefix()).saturating_add(self.window);
        if self.next < self.expected && self.next < limit {
            let start = self.next;
            let end = piece_end(start).min(self.expected);
            self.next = end;
            return Some(self.assign(me, start, end));
        }
        // Nothing new: take half of the largest remainder of another
        // source (a slow one holds the rest of the file back), above what
        // it may be writing now.
        let (victim, mid) = self
            .tasks
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .filter(|(_, t)| !self.whole_only.contains(&(t.pos / PIECE_SIZE)))
            .map(|(i, t)| (i, t.writing.max(t.pos + (t.end - t.pos) / 2), t.end))
            .filter(|&(_, mid, end)| end.saturating_sub(mid) >= MIN_SPLIT)
            .max_by_key(|&(_, mid, end)| end - mid)
            .map(|(i, mid, _)| (i, mid))?;
        let task = self.tasks[victim].as_mut()?;
        let end = task.end;
        task.end = mid;
        Some(self.assign(me, mid, end))
    }

    fn assign(&mut self, me: usize, start: u64, end: u64) -> Task {
        let task = Task {
            pos: start,
            end,
            writing: start,
            mark: (Instant::now(), start),
        };
        self.tasks[me] = Some(task);
        task
    }

    /// Source `me` received `n` bytes for its position `pos`: how many of
    /// them it may write (none when its task no longer covers `pos`).
    fn permit(&mut self, me: usize, pos: u64, n: u64) -> u64 {
        match self.tasks[me].as_mut() {
            Some(t) if t.pos == pos && pos < t.end => {
                let allowed = n.min(t.end - pos);
                t.writing = pos + allowed;
                allowed
            }
            _ => 0,
        }
    }

    /// The task of a source that moved less than [`STALL_BYTES`] in
    /// [`STALL`] while another source waits for work: its unwritten rest
    /// goes back, and the source leaves the round.
    fn cut_stalled(&mut self) -> Option<usize> {
        let waiting = (0..self.tasks.len()).any(|i| self.alive[i] && self.tasks[i].is_none());
        if !waiting || !self.queue.is_empty() {
            return None;
        }
        let stalled = (0..self.tasks.len()).find(|&i| {
            self.tasks[i].is_some_and(|t| t.mark.0.elapsed() >= STALL && t.pos < t.end)
        })?;
        if let Some(t) = self.tasks[stalled].as_mut() {
            let from = t.writing.max(t.pos);
            let end = t.end;
            t.end = from;
            self.put_back(from, end);
        }
        self.alive[stalled] = false;
        self.errors[stalled] = Some("too slow: its part went to the others".into());
        Some(stalled)
    }

    /// Source `me` wrote `from..to`.
    fn wrote(&mut self, me: usize, from: u64, to: u64) {
        if let Some(t) = self.tasks[me].as_mut() {
            t.pos = to;
            t.writing = to;
            if to - t.mark.1 >= STALL_BYTES {
                t.mark = (Instant::now(), to);
            }
        }
        let mut piece = from / PIECE_SIZE;
        while piece * PIECE_SIZE < to {
            *self.writers.entry(piece).or_default() |= 1 << me;
            piece += 1;
        }
        insert_range(&mut self.written, (from, to));
    }

    /// The end of source `me`'s task now (another may have taken a part).
    fn end_of(&self, me: usize) -> u64 {
        self.tasks[me].map_or(0, |t| t.end)
    }

    /// Source `me` leaves its task: the unwritten rest goes back (the rest
    /// of a piece it was to fetch alone is never shared: the round ends).
    fn give_back(&mut self, me: usize) {
        if let Some(t) = self.tasks[me].take()
            && t.pos < t.end
        {
            self.put_back(t.pos, t.end);
        }
    }

    fn put_back(&mut self, from: u64, end: u64) {
        let piece = from / PIECE_SIZE;
        if self.whole_only.contains(&piece) {
            let start = piece * PIECE_SIZE;
            self.redo = Some(self.redo.map_or(start, |r| r.min(start)));
        } else {
            insert_range(&mut self.queue, (from, end));
        }
    }

    /// Source `me` leaves the round (`why`).
    fn leave(&mut self, me: usize, why: String) {
        self.give_back(me);
        self.alive[me] = false;
        self.errors[me] = Some(why);
    }

    /// Whether nothing is left to hand out or under way.
    fn all_written(&self) -> bool {
        self.prefix() >= self.expected
    }

    /// Bytes below the end that no task covers and nothing hands out: a
    /// hole that would hold the round for ever (never expected).
    fn orphaned(&self) -> bool {
        self.prefix() < self.expected
            && self.queue.is_empty()
            && self.next >= self.expected
            && self.tasks.iter().all(Option::is_none)
    }

    fn culprits(&self, piece: u64) -> Vec<usize> {
        let bits = self.writers.get(&piece).copied().unwrap_or(0);
        (0..32).filter(|i| bits & (1 << i) != 0).collect()
    }

    /// What the round wrote from `from` on, for the next round: the
    /// ranges and their pieces' writers, without any part of a piece one
    /// source fetches alone that is not whole (the rest of it would be
    /// another's).
    fn keep(&self, from: u64) -> Kept {
        let mut kept = Kept::default();
        for &(a, b) in &self.written {
            insert_range(&mut kept.ranges, (a.max(from), b));
        }
        for &(a, b) in &kept.ranges.clone() {
            let mut piece = a / PIECE_SIZE;
            while piece * PIECE_SIZE < b {
                let whole = a <= piece * PIECE_SIZE
                    && piece_end(piece * PIECE_SIZE).min(self.expected) <= b;
                if self.whole_only.contains(&piece) && !whole {
                    kept.forget_piece(piece);
                } else if let Some(&bits) = self.writers.get(&piece) {
                    kept.writers.insert(piece, bits);
                }
                piece += 1;
            }
        }
        kept
    }
}

/// The end of the piece that `offset` is in.
fn piece_end(offset: u64) -> u64 {
    (offset / PIECE_SIZE + 1) * PIECE_SIZE
}

/// Adds `r` to sorted, merged ranges.
fn insert_range(list: &mut Vec<(u64, u64)>, r: (u64, u64)) {
    if r.0 >= r.1 {
        return;
    }
    list.push(r);
    list.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(list.len());
    for &(a, b) in list.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *list = merged;
}

/// What the sources of a round and its orchestrator share.
struct Shared {
    sched: Mutex<Sched>,
    changed: Condvar,
    disk: Mutex<Option<std::io::Error>>,
}

impl Shared {
    fn poke(&self) {
        self.changed.notify_all();
    }
}

/// How a round ended.
#[derive(Debug)]
pub(super) enum RoundEnd {
    /// Every byte is written and durable.
    Whole,
    /// A piece failed; these sources wrote into it (the culprit when it
    /// is one; several: the piece is fetched again by one source alone).
    Bad(BadPiece, Vec<usize>),
    /// Stopped (shutdown, pause, removal), or every source failed.
    Ended(super::Outcome),
    /// The piece starting here lost the one source fetching it alone
    /// mid-piece: it is fetched again from its start, no one blamed.
    Redo(u64),
}

/// One round from `offset` with `sources` (the first is the download's
/// own). Returns the durable prefix and how the round ended.
pub(super) fn round(
    cx: &Context<'_>,
    row: &Download,
    part: &File,
    record: &mut Record,
    verifier: &mut Verifier,
    offset: u64,
    crew: &mut Crew,
) -> Result<(u64, RoundEnd), Stop> {
    let Crew {
        list: sources,
        whole_only,
        kept,
    } = crew;
    let expected = row.expected_bytes;
    let sha256 = verifier.plan().sha256;
    let synced = part.try_clone().map_err(|e| Stop::Disk(e, "open"))?;
    let reader = part.try_clone().map_err(|e| Stop::Disk(e, "open"))?;
    let shared = Shared {
        sched: Mutex::new(Sched::new(
            offset,
            expected,
            sources.len(),
            std::mem::take(whole_only),
            std::mem::take(kept),
        )),
        changed: Condvar::new(),
        disk: Mutex::new(None),
    };
    let follow = Follow::new(offset);
    let proofs = Proofs::default();
    let at = Part {
        id: row.id,
        path: &row.part_path,
        file: part,
        proofs: Some(&proofs),
    };
    let mut failed: Option<verify::Failed> = None;
    let mut synced_to = offset;
    let mut prefix = offset;
    for src in sources.iter() {
        src.stat.bytes.store(0, Ordering::Relaxed);
        src.stat.set("idle");
    }
    let learned: Vec<Mutex<Option<String>>> =
        sources.iter().map(|s| Mutex::new(s.etag.clone())).collect();
    std::thread::scope(|s| -> Result<(), Stop> {
        let flushed = Part {
            file: &synced,
            ..at
        };
        let mut flusher = Flusher::start(s, cx, flushed, (offset, row.high_water));
        let _done = verify::Closing(&follow);
        {
            let (follow, proofs, reader) = (&follow, &proofs, &reader);
            let v = &mut *verifier;
            s.spawn(move || follow.verify(v, reader, proofs));
        }
        for (me, src) in sources.iter().enumerate() {
            let (shared, learned) = (&shared, &learned[me]);
            s.spawn(move || fetch(cx, me, src, shared, part, (expected, sha256), learned));
        }
        let mut last_sync = (offset, Instant::now());
        loop {
            {
                let mut sched = shared.sched.lock();
                shared
                    .changed
                    .wait_for(&mut sched, Duration::from_millis(100));
                prefix = sched.prefix();
                sched.hashed = follow.hashed();
                cx.live
                    .store(offset + sched.written_bytes(), Ordering::Relaxed);
                if let Some(slow) = sched.cut_stalled() {
                    // Its thread sees the cut when its read returns.
                    sources[slow]
                        .stat
                        .set("failed: too slow: its part went to the others");
                    log::info!(
                        "download id={} source {} is too slow: its part goes to the others",
                        row.id,
                        sources[slow].peer.name
                    );
                }
                let gone = !sched.alive.iter().any(|a| *a);
                if sched.all_written() || gone || sched.orphaned() || cx.should_stop() {
                    sched.over = true;
                }
                if shared.disk.lock().is_some() || follow.failed() || sched.redo.is_some() {
                    sched.over = true;
                }
                if sched.over {
                    break;
                }
            }
            follow.advance(prefix);
            record.advance(prefix);
            if prefix - flusher.durable >= CHECKPOINT_BYTES {
                flusher.wait()?;
            }
            let due = prefix - last_sync.0 >= CHECKPOINT_BYTES / 2
                || last_sync.1.elapsed() >= CHECKPOINT_INTERVAL;
            if due && prefix > last_sync.0 && flusher.offer(Job::Checkpoint(prefix))? {
                last_sync = (prefix, Instant::now());
            }
        }
        shared.poke();
        follow.advance(prefix);
        record.advance(prefix);
        flusher.wait()?;
        synced_to = flusher.durable;
        failed = follow.close();
        Ok(())
    })?;
    for (src, etag) in sources.iter_mut().zip(learned) {
        src.etag = etag.into_inner();
    }
    if let Some(e) = shared.disk.into_inner() {
        super::checkpoint(cx, at, synced_to, prefix.min(synced_to))?;
        return Err(Stop::Disk(e, "write"));
    }
    super::checkpoint(cx, at, synced_to, prefix)?;
    let mut sched = shared.sched.into_inner();
    let end = match failed {
        Some(verify::Failed::Bad(bad)) => {
            let culprits = match bad.index {
                Some(piece) => sched.culprits(piece),
                None => (0..sources.len()).collect(),
            };
            if let (Some(piece), true) = (bad.index, culprits.len() > 1) {
                sched.whole_only.insert(piece);
            }
            // What was written past a failed piece is kept (its own
            // pieces are checked when the prefix reaches them); past a
            // whole file that failed, nothing is.
            if bad.index.is_some() {
                *kept = sched.keep(piece_end(bad.start));
            }
            RoundEnd::Bad(bad, culprits)
        }
        Some(verify::Failed::Read(e)) => return Err(Stop::Disk(e, "read back")),
        None if prefix >= expected => RoundEnd::Whole,
        None if cx.should_stop() => RoundEnd::Ended(super::Outcome::Interrupted),
        None if sched.redo.is_some() => {
            let start = sched.redo.unwrap_or(0);
            // The piece's own bytes go (`keep` leaves out a piece one
            // source fetches alone that is not whole).
            *kept = sched.keep(start.min(prefix));
            RoundEnd::Redo(start)
        }
        None => {
            let why: Vec<String> = sources
                .iter()
                .zip(&sched.errors)
                .filter_map(|(s, e)| e.as_ref().map(|e| format!("{}: {e}", s.peer.name)))
                .collect();
            RoundEnd::Ended(network_failure(&format!(
                "every source failed ({})",
                why.join("; ")
            )))
        }
    };
    *whole_only = sched.whole_only;
    Ok((prefix, end))
}

/// One source's side of a round: takes tasks and fetches them until the
/// round is over or the source fails (it then leaves the round, and its
/// task's rest goes back). A body is read a [`STEP`] at a time into a
/// buffer, and each read written only as far as the task still reaches
/// ([`Sched::permit`]): a part another source took meanwhile is never
/// written. A `206` that ends before the task does is legal (rule 5): the
/// rest is asked for again.
fn fetch(
    cx: &Context<'_>,
    me: usize,
    src: &Src,
    shared: &Shared,
    part: &File,
    (expected, sha256): (u64, Sha256),
    etag: &Mutex<Option<String>>,
) {
    let leave = |why: String| {
        src.stat.set(format!("failed: {why}"));
        shared.sched.lock().leave(me, why);
        shared.poke();
    };
    let mut buf = vec![0u8; STEP];
    let mut window = (Instant::now(), 0u64);
    loop {
        {
            let mut sched = shared.sched.lock();
            loop {
                if sched.over || !sched.alive[me] {
                    return;
                }
                // A task with a rest (a short answer) goes on; else a new one.
                if sched.tasks[me].is_some_and(|t| t.pos < t.end) {
                    break;
                }
                sched.tasks[me] = None;
                if sched.take(me).is_some() {
                    break;
                }
                src.stat.set("idle");
                shared
                    .changed
                    .wait_for(&mut sched, Duration::from_millis(100));
            }
        }
        src.stat.set("active");
        let Some(task) = shared.sched.lock().tasks[me] else {
            continue;
        };
        let known = etag.lock().clone();
        let asked = (task.pos, Some(task.end - 1));
        let mut resp = match cx
            .client
            .file_range(&src.peer, &src.item_id, asked, known.as_deref())
        {
            Ok(r) => r,
            Err(e) => return leave(e.to_string()),
        };
        let fields = Fields::of(&resp);
        let head = fields.head();
        // Never a byte from a source whose digest is unknown or another:
        // the download's own source may leave it out (its release gave
        // it), every other must send it.
        match fields.repr_digest {
            Some(d) if d != sha256 => return leave("its Repr-Digest is another version's".into()),
            None if !src.primary => return leave("its answer carries no Repr-Digest".into()),
            _ => {}
        }
        let last = match judge(task.pos, expected, known.as_deref(), &head) {
            Verdict::Append { last } => last,
            Verdict::Status(status) => return leave(format!("answered {status}")),
            Verdict::Restart { reason } => return leave(reason),
            Verdict::TakeWhole { .. } => return leave("it ignored the range".into()),
            Verdict::Complete => return leave("it answered 416".into()),
        };
        if fields.etag.is_some() {
            *etag.lock() = fields.etag.clone();
        }
        let mut body = resp.body_mut().as_reader();
        let mut pos = task.pos;
        // A body cut after it moved bytes is asked again for the rest
        // (§2.5: progress is no failure); one that moved none ends the
        // source's round.
        let cut = |pos: u64, why: String| {
            if pos > task.pos {
                log::info!(
                    "source {} cut at byte {pos}: {why}; asking for the rest",
                    src.peer.name
                );
                false
            } else {
                leave(why);
                true
            }
        };
        // Up to the end of the answer or of the task, whichever is first
        // (the task's end may come down meanwhile).
        while pos <= last {
            let end = {
                let mut sched = shared.sched.lock();
                if cx.should_stop() || sched.over {
                    sched.give_back(me);
                    return;
                }
                sched.end_of(me).min(last + 1)
            };
            if pos >= end {
                break;
            }
            let mut want = (end - pos).min(STEP as u64);
            if crate::rate::DOWNLOAD.limited() {
                match crate::rate::DOWNLOAD.take(want, || cx.should_stop()) {
                    Some(granted) => want = granted,
                    None => continue,
                }
            }
            let chunk = &mut buf[..usize::try_from(want).unwrap_or(STEP)];
            let n = match body.read(chunk) {
                Ok(0) => {
                    crate::rate::DOWNLOAD.refund(want);
                    if cut(pos, format!("body ended at byte {pos}")) {
                        return;
                    }
                    break;
                }
                Ok(n) => n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    crate::rate::DOWNLOAD.refund(want);
                    continue;
                }
                Err(e) => {
                    crate::rate::DOWNLOAD.refund(want);
                    if cut(pos, e.to_string()) {
                        return;
                    }
                    break;
                }
            };
            crate::rate::DOWNLOAD.refund(want - n);
            let allowed = shared.sched.lock().permit(me, pos, n);
            if allowed > 0 {
                // `allowed` ≤ `n` ≤ the buffer's length.
                let bytes = &chunk[..usize::try_from(allowed).unwrap_or(0)];
                let written = crate::fault::check_write(pos + allowed)
                    .and_then(|()| part.write_all_at(bytes, pos));
                if let Err(e) = written {
                    *shared.disk.lock() = Some(e);
                    shared.sched.lock().give_back(me);
                    shared.poke();
                    return;
                }
                shared.sched.lock().wrote(me, pos, pos + allowed);
                pos += allowed;
                crate::metrics::METRICS.downloaded(allowed);
                src.stat.bytes.fetch_add(allowed, Ordering::Relaxed);
                window.1 += allowed;
                let elapsed = window.0.elapsed();
                if elapsed >= Duration::from_secs(1) {
                    let rate = window.1 as f64 / elapsed.as_secs_f64();
                    src.stat.rate.store(rate as u64, Ordering::Relaxed);
                    window = (Instant::now(), 0);
                }
                shared.poke();
            }
            if allowed < n {
                // The rest of the task went to another source.
                break;
            }
        }
        // The answer is done, or the task is (a body that goes on is
        // dropped with its connection); a task with a rest is asked again.
        shared.poke();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_go_out_in_piece_order_within_a_window_and_the_prefix_follows() {
        let size = 10 * PIECE_SIZE;
        let mut s = Sched::new(0, size, 2, HashSet::new(), Kept::default());
        let a = s.take(0).unwrap();
        let b = s.take(1).unwrap();
        assert_eq!(
            (a.pos, a.end, b.pos, b.end),
            (0, PIECE_SIZE, PIECE_SIZE, 2 * PIECE_SIZE)
        );
        s.wrote(1, PIECE_SIZE, 2 * PIECE_SIZE);
        assert_eq!(s.prefix(), 0, "a hole at the start");
        s.wrote(0, 0, 100);
        assert_eq!(s.prefix(), 100);
        s.wrote(0, 100, PIECE_SIZE);
        assert_eq!(s.prefix(), 2 * PIECE_SIZE);
        // The window (two pieces per source past what is written and
        // hashed) stops new tasks.
        s.tasks = vec![None, None];
        s.hashed = PIECE_SIZE;
        for _ in 0..3 {
            s.take(0).unwrap();
            s.tasks[0] = None;
        }
        assert_eq!(s.next, 5 * PIECE_SIZE);
        assert!(s.take(0).is_none(), "past the window");
        s.hashed = 2 * PIECE_SIZE;
        let t = s.take(0).unwrap();
        assert_eq!((t.pos, t.end), (5 * PIECE_SIZE, 6 * PIECE_SIZE));
    }

    #[test]
    fn an_idle_source_takes_half_of_a_slow_ones_rest_and_a_leaver_gives_back() {
        let size = PIECE_SIZE;
        let mut s = Sched::new(0, size, 2, HashSet::new(), Kept::default());
        let a = s.take(0).unwrap();
        assert_eq!((a.pos, a.end), (0, PIECE_SIZE));
        s.wrote(0, 0, 1 << 20);
        let b = s.take(1).unwrap();
        let mid = (1 << 20) + (PIECE_SIZE - (1 << 20)) / 2;
        assert_eq!((b.pos, b.end), (mid, PIECE_SIZE));
        assert_eq!(s.end_of(0), mid);
        s.wrote(1, mid, mid + 10);
        s.leave(1, "gone".into());
        assert_eq!(s.queue, [(mid + 10, PIECE_SIZE)]);
        s.tasks[0] = None;
        let again = s.take(0).unwrap();
        assert_eq!((again.pos, again.end), (mid + 10, PIECE_SIZE));
        assert!(s.take(1).is_none(), "a source that left takes nothing");
        assert_eq!(s.culprits(0), [0, 1]);
    }

    #[test]
    fn bytes_written_past_a_failed_piece_are_kept_and_only_the_holes_handed_out() {
        let size = 6 * PIECE_SIZE;
        let mut s = Sched::new(0, size, 2, HashSet::new(), Kept::default());
        // Source 1 wrote pieces 1 and 2 and half of 4; source 0 piece 0
        // (which fails) and a part of 3.
        s.wrote(0, 0, PIECE_SIZE);
        s.wrote(1, PIECE_SIZE, 3 * PIECE_SIZE);
        s.wrote(0, 3 * PIECE_SIZE, 3 * PIECE_SIZE + 10);
        s.wrote(1, 4 * PIECE_SIZE, 4 * PIECE_SIZE + PIECE_SIZE / 2);
        s.whole_only.insert(3);
        let kept = s.keep(PIECE_SIZE);
        // Piece 3 is fetched alone and is not whole: its part goes.
        assert_eq!(
            kept.ranges,
            [
                (PIECE_SIZE, 3 * PIECE_SIZE),
                (4 * PIECE_SIZE, 4 * PIECE_SIZE + PIECE_SIZE / 2)
            ]
        );
        assert_eq!(kept.bytes(), 2 * PIECE_SIZE + PIECE_SIZE / 2);
        let mut next = Sched::new(0, size, 2, s.whole_only.clone(), kept.clone());
        assert_eq!(next.culprits(1), [1], "the writers stay");
        assert_eq!(next.prefix(), 0);
        let a = next.take(0).unwrap();
        assert_eq!((a.pos, a.end), (0, PIECE_SIZE), "the failed piece first");
        let b = next.take(1).unwrap();
        assert_eq!((b.pos, b.end), (3 * PIECE_SIZE, 4 * PIECE_SIZE));
        next.wrote(0, 0, PIECE_SIZE);
        assert_eq!(
            next.prefix(),
            3 * PIECE_SIZE,
            "the kept bytes join the prefix"
        );
        next.hashed = 3 * PIECE_SIZE;
        next.tasks = vec![None, None];
        let c = next.take(1).unwrap();
        assert_eq!(
            (c.pos, c.end),
            (4 * PIECE_SIZE + PIECE_SIZE / 2, 5 * PIECE_SIZE),
            "then from the end of what was kept"
        );
    }

    #[test]
    fn a_dropped_sources_kept_pieces_go_and_the_others_follow_their_source() {
        let peer = |name: &str| crate::config::Peer {
            name: name.into(),
            url: format!("http://127.0.0.1:1/{name}"),
            api_key: crate::config::Secret::new("k", crate::config::SecretOrigin::Inline),
            ca_file: None,
            tls: None,
        };
        let src = |name: &str| Src {
            peer: peer(name),
            item_id: "i".into(),
            primary: false,
            etag: None,
            stat: SourceStat::new(name),
        };
        let mut s = Sched::new(0, 4 * PIECE_SIZE, 3, HashSet::new(), Kept::default());
        s.wrote(0, PIECE_SIZE, 2 * PIECE_SIZE);
        // Piece 2: alice and bob.
        s.wrote(0, 2 * PIECE_SIZE, 2 * PIECE_SIZE + 10);
        s.wrote(1, 2 * PIECE_SIZE + 10, 3 * PIECE_SIZE);
        s.wrote(2, 3 * PIECE_SIZE, 4 * PIECE_SIZE);
        let mut kept = s.keep(PIECE_SIZE);
        let before: Vec<(String, String)> = ["alice", "bob", "carol"]
            .iter()
            .map(|n| (n.to_string(), "i".to_string()))
            .collect();
        // Bob is dropped: carol moves from index 2 to 1, and piece 2 goes
        // though alice wrote into it too.
        kept.follow(&before, &[src("alice"), src("carol")]);
        assert_eq!(
            kept.ranges,
            [
                (PIECE_SIZE, 2 * PIECE_SIZE),
                (3 * PIECE_SIZE, 4 * PIECE_SIZE)
            ]
        );
        let next = Sched::new(PIECE_SIZE, 4 * PIECE_SIZE, 2, HashSet::new(), kept);
        assert_eq!(next.culprits(1), [0]);
        assert_eq!(next.culprits(3), [1]);
        assert_eq!(next.queue, [(2 * PIECE_SIZE, 3 * PIECE_SIZE)]);
    }

    #[test]
    fn ranges_merge() {
        let mut l = Vec::new();
        insert_range(&mut l, (10, 20));
        insert_range(&mut l, (0, 5));
        insert_range(&mut l, (5, 10));
        insert_range(&mut l, (30, 40));
        assert_eq!(l, [(0, 20), (30, 40)]);
    }
}
