//! Checking a download against its source's digests (`PROTOCOL.md` §2.6).
//!
//! A [`Verifier`] hashes the `.part` in order, from the last proven piece
//! boundary: each 16 MiB piece against the source's piece digest as soon
//! as it is whole, and the whole file against the release's SHA-256
//! before the hand-off. It reads what the transfer wrote (from the page
//! cache, a little behind the writer: [`Follow`]), so the transfer's
//! plain-HTTP path that moves bytes from the socket to the file without
//! seeing them is checked too, and on another core.
//!
//! What it has proven goes into the registry with the checkpoints
//! ([`Proofs`]): the offset of a piece boundary and the whole-file hash's
//! state there, never past the durable count. A resume takes the hash up
//! from that state and reads again only bytes it has not proven.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use sha2::Digest;

use crate::digest::{self, Hasher, Midstate, PIECE_SIZE, Pieces, Sha256};

/// The writer waits when it is this far ahead of the verifier (the bytes
/// between are still in the page cache).
pub const LAG: u64 = 32 * 1024 * 1024;
/// Bytes read per step.
const READ: u64 = 4 * 1024 * 1024;
/// A slice at least this long is hashed for the whole file and for its
/// piece on two threads at once, where there are two cores: each byte
/// goes through SHA-256 twice, and on one core that halves the rate a
/// download can be checked at (an armv7 NAS without SHA instructions
/// hashes a few tens of MB/s).
const TWO_THREADS: usize = 512 * 1024;

/// Whether this machine has more than one core to hash on.
fn cores() -> bool {
    static MANY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MANY.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// What a download is checked against: the release's whole-file digest
/// and, when the source gave them, its piece digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub size: u64,
    pub sha256: Sha256,
    pub pieces: Option<Arc<Vec<Sha256>>>,
}

/// A piece (or, `index` `None`, the whole file) that failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPiece {
    pub index: Option<u64>,
    /// Where the bad bytes begin: the `.part` goes back to here.
    pub start: u64,
}

impl BadPiece {
    /// The event's words: which piece, and who sent it.
    pub fn describe(&self, size: u64, source: &str) -> String {
        match self.index {
            Some(i) => format!(
                "piece {} of {} (bytes {}-{}) failed its SHA-256 check: sent by {source}; fetched again",
                i + 1,
                digest::piece_count(size),
                self.start,
                digest::piece_range(i, size).1 - 1
            ),
            None => format!(
                "the whole file failed its SHA-256 check against the release's: sent by {source}; \
                 fetched again from byte 0"
            ),
        }
    }
}

/// Hashes a download's bytes in order and checks them.
#[derive(Debug, Clone)]
pub struct Verifier {
    plan: Plan,
    whole: Hasher,
    piece: sha2::Sha256,
    /// Piece digests computed in this run, from piece `first` on.
    computed: Vec<Sha256>,
    first: u64,
    /// The last piece boundary passed (its whole-file state).
    proof: Midstate,
}

impl Verifier {
    /// A verifier that takes up `resume` (a state the registry kept) when
    /// it is at a piece boundary within the file, else starts at byte 0.
    pub fn new(plan: Plan, resume: Option<Midstate>) -> Verifier {
        let start = resume
            .filter(|m| m.bytes.is_multiple_of(PIECE_SIZE) && m.bytes <= plan.size)
            .unwrap_or(Midstate {
                bytes: 0,
                state: Hasher::new().midstate().map_or([0; 32], |m| m.state),
            });
        Verifier {
            whole: Hasher::resume(&start),
            piece: sha2::Sha256::new(),
            computed: Vec::new(),
            first: start.bytes / PIECE_SIZE,
            proof: start,
            plan,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Bytes hashed.
    pub fn at(&self) -> u64 {
        self.whole.len()
    }

    /// The last piece boundary passed, with the whole-file state there.
    pub fn proof(&self) -> Midstate {
        self.proof
    }

    /// After a [`BadPiece`]: back to the last proof (the bad piece's start).
    pub fn reset(&mut self) {
        *self = Verifier::new(self.plan.clone(), Some(self.proof));
    }

    /// Hashes `data`, the bytes at [`Verifier::at`]; a piece that becomes
    /// whole is checked. After an `Err` the verifier must be [`reset`].
    ///
    /// [`reset`]: Verifier::reset
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), BadPiece> {
        while !data.is_empty() {
            let at = self.at();
            let index = at / PIECE_SIZE;
            let (start, end) = digest::piece_range(index, self.plan.size);
            if at >= end {
                // Past the end: nothing of it is the file's.
                return Err(BadPiece {
                    index: None,
                    start: self.plan.size,
                });
            }
            let take = usize::try_from(end - at).map_or(data.len(), |n| n.min(data.len()));
            self.hash(&data[..take]);
            data = &data[take..];
            if self.at() == end {
                let got: Sha256 = self.piece.finalize_reset().into();
                let want = self
                    .plan
                    .pieces
                    .as_ref()
                    .and_then(|p| usize::try_from(index).ok().and_then(|i| p.get(i).copied()));
                if want.is_some_and(|w| w != got) {
                    return Err(BadPiece {
                        index: Some(index),
                        start,
                    });
                }
                self.computed.push(got);
                // A proof is a piece boundary whose piece was checked (the
                // file's short end is none: a resume starts from a piece).
                if want.is_some()
                    && end.is_multiple_of(PIECE_SIZE)
                    && let Some(m) = self.whole.midstate()
                {
                    self.proof = m;
                }
            }
        }
        Ok(())
    }

    /// `data` into the whole file's hash and its piece's: on two threads
    /// when it is long and there are cores for it (one, when a thread
    /// cannot be had).
    fn hash(&mut self, data: &[u8]) {
        let (whole, piece) = (&mut self.whole, &mut self.piece);
        if data.len() >= TWO_THREADS && cores() {
            let done = std::thread::scope(|s| {
                let side = std::thread::Builder::new()
                    .name("verify-whole".into())
                    .spawn_scoped(s, || whole.update(data));
                piece.update(data);
                side.is_ok()
            });
            if done {
                return;
            }
            // The thread was not made: `whole` is untouched.
            self.whole.update(data);
            return;
        }
        whole.update(data);
        piece.update(data);
    }

    /// The whole file is hashed: its digest, checked against the
    /// release's.
    pub fn finish(&self) -> Result<Sha256, BadPiece> {
        let whole = BadPiece {
            index: None,
            start: 0,
        };
        if self.at() != self.plan.size {
            return Err(whole);
        }
        let got = self.whole.clone().finish();
        if got == self.plan.sha256 {
            Ok(got)
        } else {
            Err(whole)
        }
    }

    /// Every piece digest of the file, once it is all hashed: the
    /// source's, or those computed in this run when it began at byte 0.
    pub fn pieces(&self) -> Option<Pieces> {
        let pieces = match &self.plan.pieces {
            Some(p) => p.to_vec(),
            None if self.first == 0 => self.computed.clone(),
            None => return None,
        };
        (self.finish().is_ok() && pieces.len() as u64 == digest::piece_count(self.plan.size))
            .then_some(Pieces {
                size: self.plan.size,
                sha256: self.plan.sha256,
                pieces,
            })
    }
}

/// Hashes the `.part` from the verifier's position up to `to`, reading it
/// (a resume's bytes that were durable but not yet proven).
pub fn catch_up(v: &mut Verifier, file: &File, to: u64) -> std::io::Result<Result<(), BadPiece>> {
    let mut buf = vec![0u8; READ as usize];
    while v.at() < to {
        let n = (to - v.at()).min(READ);
        let chunk = &mut buf[..usize::try_from(n).unwrap_or(0)];
        file.read_exact_at(chunk, v.at())?;
        if let Err(bad) = v.feed(chunk) {
            return Ok(Err(bad));
        }
    }
    Ok(Ok(()))
}

/// The piece boundaries a verifier passed during a body, with their
/// whole-file states, for the checkpoints to commit (the largest at or
/// below the durable count).
#[derive(Debug, Default)]
pub struct Proofs {
    list: Mutex<Vec<Midstate>>,
}

impl Proofs {
    fn add(&self, m: Midstate) {
        let mut list = self.list.lock();
        if m.bytes > 0 && list.last().is_none_or(|l| l.bytes < m.bytes) {
            list.push(m);
        }
        // The checkpoints follow closely: only recent ones matter.
        if list.len() > 64 {
            list.remove(0);
        }
    }

    /// The furthest proof at or below `durable`.
    pub fn at_or_below(&self, durable: u64) -> Option<Midstate> {
        self.list
            .lock()
            .iter()
            .rev()
            .find(|m| m.bytes <= durable)
            .copied()
    }
}

/// The writer and the verifier of one body: where the writer is, where
/// the verifier is, and how it ended.
#[derive(Debug, Default)]
pub struct Follow {
    state: Mutex<FollowState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct FollowState {
    written: u64,
    hashed: u64,
    closed: bool,
    failed: Option<Failed>,
}

/// Tells the verifier the writer is done when dropped (without waiting),
/// so its thread ends however the writer's scope is left.
#[derive(Debug)]
pub struct Closing<'a>(pub &'a Follow);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.closed = true;
        self.0.changed.notify_all();
    }
}

/// Why the verifier stopped before the writer.
#[derive(Debug)]
pub enum Failed {
    Bad(BadPiece),
    Read(std::io::Error),
}

impl Follow {
    pub fn new(at: u64) -> Follow {
        Follow {
            state: Mutex::new(FollowState {
                written: at,
                hashed: at,
                ..FollowState::default()
            }),
            changed: Condvar::new(),
        }
    }

    /// The writer wrote up to `pos`; waits while it is more than [`LAG`]
    /// ahead. `false`: the verifier failed, the writer stops.
    pub fn wrote(&self, pos: u64) -> bool {
        let mut s = self.state.lock();
        s.written = pos;
        self.changed.notify_all();
        while s.failed.is_none() && s.written.saturating_sub(s.hashed) > LAG {
            self.changed.wait(&mut s);
        }
        s.failed.is_none()
    }

    /// Moves the writer's position to `pos` without waiting (a writer
    /// that bounds the lag itself: several sources).
    pub fn advance(&self, pos: u64) {
        let mut s = self.state.lock();
        s.written = s.written.max(pos);
        self.changed.notify_all();
    }

    /// How far the verifier has hashed.
    pub fn hashed(&self) -> u64 {
        self.state.lock().hashed
    }

    /// Whether the verifier failed.
    pub fn failed(&self) -> bool {
        self.state.lock().failed.is_some()
    }

    /// The writer is done: the verifier hashes what was written, then
    /// ends. Returns how it ended.
    pub fn close(&self) -> Option<Failed> {
        let mut s = self.state.lock();
        s.closed = true;
        self.changed.notify_all();
        while s.failed.is_none() && s.hashed < s.written {
            self.changed.wait(&mut s);
        }
        s.failed.take()
    }

    /// The verifier's side: hashes what the writer writes into `file`
    /// until [`Follow::close`], publishing each proof.
    pub fn verify(&self, v: &mut Verifier, file: &File, proofs: &Proofs) {
        // Should this thread panic, the writer is not left waiting.
        struct Unwinding<'a>(&'a Follow);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut s = self.0.state.lock();
                    s.failed = Some(Failed::Read(std::io::Error::other("the verifier failed")));
                    self.0.changed.notify_all();
                }
            }
        }
        let _guard = Unwinding(self);
        let mut buf = vec![0u8; READ as usize];
        loop {
            let target = {
                let mut s = self.state.lock();
                while s.hashed >= s.written && !s.closed {
                    self.changed.wait(&mut s);
                }
                if s.hashed >= s.written {
                    return;
                }
                s.written
            };
            let at = v.at();
            let n = target.saturating_sub(at).min(READ);
            let chunk = &mut buf[..usize::try_from(n).unwrap_or(0)];
            let step = file
                .read_exact_at(chunk, at)
                .map_err(Failed::Read)
                .and_then(|()| v.feed(chunk).map_err(Failed::Bad));
            let mut s = self.state.lock();
            match step {
                Ok(()) => {
                    s.hashed = v.at();
                    proofs.add(v.proof());
                }
                Err(f) => {
                    s.failed = Some(f);
                    self.changed.notify_all();
                    return;
                }
            }
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn plan_of(bytes: &[u8], pieces: bool) -> Plan {
        let p = Pieces::of(bytes);
        Plan {
            size: p.size,
            sha256: p.sha256,
            pieces: pieces.then(|| Arc::new(p.pieces)),
        }
    }

    #[test]
    fn long_slices_hashed_on_two_threads_give_what_short_ones_give() {
        let bytes = data(PIECE_SIZE as usize + 3 * TWO_THREADS + 5);
        let plan = plan_of(&bytes, true);
        let mut short = Verifier::new(plan.clone(), None);
        for chunk in bytes.chunks(TWO_THREADS - 1) {
            short.feed(chunk).unwrap();
        }
        let mut long = Verifier::new(plan, None);
        for chunk in bytes.chunks(4 * TWO_THREADS) {
            long.feed(chunk).unwrap();
        }
        assert_eq!(long.finish().unwrap(), short.finish().unwrap());
        assert_eq!(long.pieces(), short.pieces());
        assert_eq!(long.proof(), short.proof());
        // A flipped byte in a long slice still fails its piece.
        let mut bad = bytes.clone();
        bad[PIECE_SIZE as usize + TWO_THREADS] ^= 1;
        let mut v = Verifier::new(plan_of(&bytes, true), None);
        let failed = bad.chunks(4 * TWO_THREADS).find_map(|c| v.feed(c).err());
        assert_eq!(failed.map(|b| b.index), Some(Some(1)));
    }

    #[test]
    fn checks_each_piece_and_the_whole_and_resumes_from_a_proof() {
        let bytes = data(2 * PIECE_SIZE as usize + 1000);
        let mut v = Verifier::new(plan_of(&bytes, true), None);
        for chunk in bytes[..PIECE_SIZE as usize + 7].chunks(100_003) {
            v.feed(chunk).unwrap();
        }
        assert_eq!(v.proof().bytes, PIECE_SIZE);
        // Taken up from the proof, it reads nothing before it.
        let mut r = Verifier::new(plan_of(&bytes, true), Some(v.proof()));
        assert_eq!(r.at(), PIECE_SIZE);
        r.feed(&bytes[PIECE_SIZE as usize..]).unwrap();
        assert_eq!(r.finish(), Ok(digest::sha256(&bytes)));
        assert_eq!(r.pieces().unwrap(), Pieces::of(&bytes));
        assert_eq!(
            r.proof().bytes,
            2 * PIECE_SIZE,
            "the short last piece is no proof"
        );
    }

    #[test]
    fn a_flipped_byte_fails_its_piece_and_a_reset_goes_back_to_its_start() {
        let bytes = data(2 * PIECE_SIZE as usize + 1000);
        let mut bad = bytes.clone();
        bad[PIECE_SIZE as usize + 5] ^= 1;
        let mut v = Verifier::new(plan_of(&bytes, true), None);
        v.feed(&bad[..PIECE_SIZE as usize]).unwrap();
        assert_eq!(
            v.feed(&bad[PIECE_SIZE as usize..]),
            Err(BadPiece {
                index: Some(1),
                start: PIECE_SIZE
            })
        );
        v.reset();
        assert_eq!(v.at(), PIECE_SIZE);
        v.feed(&bytes[PIECE_SIZE as usize..]).unwrap();
        assert!(v.finish().is_ok());
        // Without piece digests only the whole file tells.
        let mut w = Verifier::new(plan_of(&bytes, false), None);
        w.feed(&bad).unwrap();
        assert_eq!(
            w.finish(),
            Err(BadPiece {
                index: None,
                start: 0
            })
        );
        assert!(
            w.pieces().is_none(),
            "the computed pieces are not the release's"
        );
    }

    #[test]
    fn the_files_short_end_is_no_proof() {
        // A size that is a multiple of 64 but not of a piece: the end has
        // a midstate, yet a resume starts from a piece boundary.
        let bytes = data(PIECE_SIZE as usize + 64);
        let mut v = Verifier::new(plan_of(&bytes, true), None);
        v.feed(&bytes).unwrap();
        assert_eq!(v.proof().bytes, PIECE_SIZE);
        // Without piece digests nothing is proven piece by piece.
        let mut w = Verifier::new(plan_of(&bytes, false), None);
        w.feed(&bytes).unwrap();
        assert_eq!(w.proof().bytes, 0);
        assert!(w.finish().is_ok());
    }

    #[test]
    fn a_resume_state_off_a_boundary_starts_over() {
        let bytes = data(1000);
        let v = Verifier::new(
            plan_of(&bytes, true),
            Some(Midstate {
                bytes: 640,
                state: [0; 32],
            }),
        );
        assert_eq!(v.at(), 0);
    }

    #[test]
    fn the_follower_hashes_what_is_written_and_stops_the_writer_on_a_bad_piece() {
        let bytes = data(PIECE_SIZE as usize * 3);
        let mut bad = bytes.clone();
        bad[10] ^= 0x80;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part");
        std::fs::write(&path, &bad).unwrap();
        let file = File::open(&path).unwrap();
        let mut v = Verifier::new(plan_of(&bytes, true), None);
        let follow = Follow::new(0);
        let proofs = Proofs::default();
        std::thread::scope(|s| {
            s.spawn(|| follow.verify(&mut v, &file, &proofs));
            let mut pos = 0;
            let mut stopped = false;
            while pos < bad.len() as u64 {
                pos += 1 << 20;
                if !follow.wrote(pos) {
                    stopped = true;
                    break;
                }
            }
            assert!(stopped || follow.failed());
            assert!(matches!(
                follow.close(),
                Some(Failed::Bad(BadPiece { index: Some(0), .. }))
            ));
        });
        assert_eq!(proofs.at_or_below(u64::MAX), None);
    }
}
