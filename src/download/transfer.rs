//! One download attempt, rule by rule of `PROTOCOL.md` §2.4.
//!
//! [`judge`] is the pure part: given the resume offset, what we expect and
//! the response's status and headers, what do we do. [`run`] is the I/O
//! around it: the `.part` file, the request, appending, checkpoints
//! (`fdatasync`, then the registry), and the final no-replace hand-off.
//!
//! Invariants: the `.part` is always a byte-exact prefix of one remote
//! representation; nothing is written before a response passes every
//! check; nothing is written past the expected size; the registry never
//! claims bytes that are not synced.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::config::Peer;
use crate::db::{Download, Registry};
use crate::download::direct;
use crate::download::handoff::{self, Failure, HandOff};
use crate::download::peer::{PeerClient, PeerError};
use crate::download::retry::{self, Class};
use crate::download::space;
use crate::download::verify::{self, BadPiece, Follow, Proofs, Verifier};
use crate::download::written::{self, Owner, Record};
use crate::rate::DOWNLOAD;

pub mod multi;

/// Written bytes are never more than this beyond the durable checkpoint
/// (the most a power cut can cost); a checkpoint is started every half of
/// it...
pub const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// ...and at least this often.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Bytes asked of the body per read, and the size of ureq's input buffer.
pub const READ_BUFFER: usize = 512 * 1024;
/// Written bytes whose write-back is started together (`Job::WriteBack`).
const WRITE_BEHIND: u64 = 8 * 1024 * 1024;

/// The headers of a response that [`judge`] looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head<'a> {
    pub status: u16,
    pub content_range: Option<&'a str>,
    pub content_length: Option<u64>,
    pub content_encoding: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub etag: Option<&'a str>,
}

/// The header fields of an answer that a transfer reads, owned.
#[derive(Debug, Clone, Default)]
struct Fields {
    status: u16,
    content_range: Option<String>,
    content_encoding: Option<String>,
    content_type: Option<String>,
    etag: Option<String>,
    retry_after: Option<String>,
    content_length: Option<u64>,
    /// `Repr-Digest`'s SHA-256 (§2.6), when it has a well-formed one.
    repr_digest: Option<crate::digest::Sha256>,
    /// A `Transfer-Encoding` is present.
    coded: bool,
}

impl Fields {
    fn of(resp: &ureq::http::Response<ureq::Body>) -> Fields {
        let field = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Fields {
            status: resp.status().as_u16(),
            content_range: field("content-range"),
            content_encoding: field("content-encoding"),
            content_type: field("content-type"),
            etag: field("etag"),
            retry_after: field("retry-after"),
            content_length: field("content-length").and_then(|v| number(&v)),
            repr_digest: field("repr-digest").and_then(|v| crate::digest::parse_repr_digest(&v)),
            coded: resp.headers().contains_key("transfer-encoding"),
        }
    }

    fn head(&self) -> Head<'_> {
        Head {
            status: self.status,
            content_range: self.content_range.as_deref(),
            content_length: self.content_length,
            content_encoding: self.content_encoding.as_deref(),
            content_type: self.content_type.as_deref(),
            etag: self.etag.as_deref(),
        }
    }
}

/// What to do with a response to `Range: bytes=<offset>-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid 206: append `first..=last` at the offset.
    Append { last: u64 },
    /// A 200 to a range request: truncate to 0 and take this body from the
    /// start (`reason`: `range_ignored` or `changed`).
    TakeWhole { reason: &'static str },
    /// A 416 that proves every byte is here.
    Complete,
    /// The remote changed or lied: write nothing, truncate to 0, restart.
    Restart { reason: String },
    /// Not a transfer answer: classified by the retry policy.
    Status(u16),
}

/// Rules 5 to 8 of §2.4, for a request from `offset` of a file of
/// `expected` bytes whose validator is `known_etag`.
pub fn judge(offset: u64, expected: u64, known_etag: Option<&str>, h: &Head<'_>) -> Verdict {
    let encoded = h
        .content_encoding
        .is_some_and(|e| !crate::lexical::trim_ows(e).eq_ignore_ascii_case("identity"));
    let etag_changed = matches!((known_etag, h.etag), (Some(a), Some(b)) if a != b);
    match h.status {
        206 => {
            if h.content_type.is_some_and(|t| {
                crate::lexical::trim_ows(t)
                    .to_ascii_lowercase()
                    .starts_with("multipart/")
            }) {
                return restart("multipart");
            }
            if encoded {
                return restart("content_encoding");
            }
            if etag_changed {
                return restart("etag_changed");
            }
            let Some((first, last, total)) = h.content_range.and_then(parse_content_range) else {
                return restart("content_range_mismatch");
            };
            if total != expected {
                return restart("size_changed");
            }
            if first != offset || last < first || last >= total {
                return restart("content_range_mismatch");
            }
            if h.content_length.is_some_and(|n| n != last - first + 1) {
                return restart("content_length_mismatch");
            }
            Verdict::Append { last }
        }
        200 => {
            if encoded {
                return restart("content_encoding");
            }
            if h.content_length.is_some_and(|n| n != expected) {
                return restart("size_changed");
            }
            let reason = if etag_changed {
                "changed"
            } else {
                "range_ignored"
            };
            Verdict::TakeWhole { reason }
        }
        416 => match h.content_range.and_then(parse_unsatisfied) {
            Some(total) if total == offset && total == expected => Verdict::Complete,
            _ => restart("changed"),
        },
        other => Verdict::Status(other),
    }
}

fn restart(reason: &str) -> Verdict {
    Verdict::Restart {
        reason: reason.to_string(),
    }
}

/// `bytes F-L/T`, strictly (digits only, u64 with overflow checks).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = crate::lexical::trim_ows(v).strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((number(first)?, number(last)?, number(total)?))
}

/// `bytes */T`.
fn parse_unsatisfied(v: &str) -> Option<u64> {
    number(crate::lexical::trim_ows(v).strip_prefix("bytes */")?)
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The registry's restart (progress back to 0, a new generation, with its
/// event), counted; the written record takes the new generation at 0
/// before the `.part` is cut.
fn record_restart(
    cx: &Context<'_>,
    id: i64,
    record: &mut Record,
    reason: &str,
) -> crate::error::Result<()> {
    let generation = cx.registry.record_restart(id, reason)?;
    record.restart(generation);
    crate::metrics::METRICS.restarted(reason);
    Ok(())
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file is in `completed_dir`; `fetched` bytes came over the network.
    Completed { fetched: u64 },
    /// Try again later (`retry_after` from the peer, if it said).
    /// `progressed`: the attempt made durable progress (set by the caller,
    /// which knows where the attempt began; see `Downloads::process`), so
    /// it does not count against `max_attempts`.
    Retry {
        error: String,
        retry_after: Option<Duration>,
        progressed: bool,
    },
    /// The peer's file changed (`reason`: `size_changed`, `etag_changed`,
    /// `changed`): the `.part` is back to 0 and the release must be looked
    /// up again before the next request (the caller does).
    Changed { reason: String },
    /// Give up: the row fails with this error.
    Fatal { error: String },
    /// Paused by its owner (`Downloads::pause`): not an error.
    Paused,
    /// Disk full or quota: wait for room, then try again.
    NoRoom { error: String },
    /// The node is shutting down; progress is checkpointed.
    Interrupted,
}

/// Everything an attempt needs besides the row.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub client: &'a PeerClient,
    pub peer: &'a Peer,
    pub max_file_size: u64,
    /// Live byte count for status between checkpoints.
    pub live: &'a AtomicU64,
    /// When, and at what byte, this transfer began (speeds and ETAs are
    /// measured from there until there is a window of samples).
    pub began: &'a Began,
    pub stopping: &'a AtomicBool,
    /// Set when this download is removed: the attempt stops like at
    /// shutdown (between two reads), checkpointing what it has.
    pub cancel: &'a AtomicBool,
    /// Wall-clock time for `Retry-After` dates.
    pub clock: &'a dyn Clock,
    /// How finished files reach `completed_dir` (decided at start-up).
    pub handoff: handoff::Mode,
    /// Whether written records are kept and trusted (`incomplete_dir` is
    /// on a local filesystem; see `download::written`).
    pub written: bool,
    /// Set once a checkpoint committed while a body streams passes the
    /// row's `high_water` (progress, whatever the byte count: see
    /// `downloads.progress_bytes`).
    pub checkpointed: &'a AtomicBool,
    /// The other configured peers (§2.6: sources of the same file).
    pub others: &'a [Peer],
    /// `downloads.max_sources`.
    pub max_sources: usize,
    /// The sources of this attempt, for the status.
    pub sources: &'a multi::Sources,
}

impl Context<'_> {
    /// The node is shutting down, or this download is being removed.
    fn should_stop(&self) -> bool {
        self.stopping.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed)
    }
}

/// Failures inside an attempt, before they are classified.
enum Stop {
    Outcome(Outcome),
    Disk(std::io::Error, &'static str),
    Db(crate::error::Error),
}

impl From<crate::error::Error> for Stop {
    fn from(e: crate::error::Error) -> Stop {
        Stop::Db(e)
    }
}

/// Runs one attempt for `row`: resume or restart, transfer, finalize.
pub fn run(cx: &Context<'_>, row: &Download) -> Outcome {
    match attempt(cx, row) {
        Ok(outcome) | Err(Stop::Outcome(outcome)) => outcome,
        Err(Stop::Disk(e, what)) => {
            distrust_unsynced(cx, row);
            disk_outcome(row, &e, what)
        }
        Err(Stop::Db(e)) if e.is_disk_full() => Outcome::NoRoom {
            error: "disk full".into(),
        },
        Err(Stop::Db(e)) => Outcome::Retry {
            error: format!("registry: {e}"),
            retry_after: None,
            progressed: false,
        },
    }
}

/// The `.part` of `row`, open as `file`.
fn part_at<'a>(row: &'a Download, file: &'a File) -> Part<'a> {
    Part {
        id: row.id,
        path: &row.part_path,
        file,
        proofs: None,
    }
}

/// Which `.part` a checkpoint syncs: its row, path and open file, and
/// the proofs of its verifier, committed with the progress.
#[derive(Clone, Copy)]
struct Part<'a> {
    id: i64,
    path: &'a Path,
    file: &'a File,
    proofs: Option<&'a Proofs>,
}

/// Nothing vouches for more than the durable count of `id`'s `.part` any
/// more: the written record goes and the bytes get a new generation
/// (either is enough; the second holds should the first fail). A record
/// still being advanced by the reads writes to the removed file.
fn disown_unsynced(cx: &Context<'_>, id: i64, path: &Path) {
    written::forget(path);
    if let Err(e) = cx.registry.distrust_unsynced(id) {
        log::warn!(
            "cannot record that unsynced bytes are unknown id={id} error={}",
            e.chain()
        );
    }
}

/// A write or sync of the `.part` failed: what was written since the last
/// checkpoint is unknown (a failed write-back may have dropped it, and a
/// later sync would not say so), so nothing vouches for more than the
/// durable count any more ([`disown_unsynced`]), and the `.part` is cut
/// back to the durable count where it can be (else the next attempt cuts
/// it: rule 1).
fn distrust_unsynced(cx: &Context<'_>, row: &Download) {
    disown_unsynced(cx, row.id, &row.part_path);
    let durable = match cx.registry.get(row.id) {
        Ok(Some(now)) => now.downloaded_bytes,
        _ => return,
    };
    let longer = std::fs::metadata(&row.part_path).is_ok_and(|m| m.len() > durable);
    if longer && let Err(e) = crate::download::reconcile::truncate(&row.part_path, durable) {
        log::warn!(
            "cannot cut {} back to its checkpoint ({durable} bytes): {e}",
            row.part_path.display()
        );
    }
}

fn disk_outcome(row: &Download, e: &std::io::Error, what: &str) -> Outcome {
    {
        match retry::classify_io(e) {
            Class::Pause => Outcome::NoRoom {
                error: "disk full".into(),
            },
            _ => Outcome::Fatal {
                error: format!("cannot {what} {}: {e}", row.part_path.display()),
            },
        }
    }
}

fn attempt(cx: &Context<'_>, row: &Download) -> Result<Outcome, Stop> {
    let expected = row.expected_bytes;
    if expected > cx.max_file_size {
        return Ok(Outcome::Fatal {
            error: format!(
                "size {expected} is above the size guard {}",
                cx.max_file_size
            ),
        });
    }
    let mut part = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&row.part_path)
        .map_err(|e| Stop::Disk(e, "open"))?;
    let meta = part.metadata().map_err(|e| Stop::Disk(e, "stat"))?;
    let on_disk = meta.len();
    let mut etag = row.etag.clone();
    let mut record = Record::open(&row.part_path, &part, Owner::of(row), cx.written);
    // Rules 1 and 2: resume from what is both on disk and durable, or
    // written by this row in this boot for this generation (the record).
    let mut offset = if on_disk > expected {
        let reason = format!("part_too_long: {on_disk} bytes, expected {expected}");
        record_restart(cx, row.id, &mut record, &reason)?;
        0
    } else {
        resume_point(row, &meta, cx.written)
    };
    if on_disk != offset {
        record.set(offset);
        part.set_len(offset)
            .map_err(|e| Stop::Disk(e, "truncate"))?;
    }
    if on_disk < row.downloaded_bytes {
        // The `.part` lost bytes the registry counted: claim only what is
        // there before anything new is written.
        log::warn!(
            "data lost id={} part_bytes={on_disk} recorded_bytes={}: resuming from the .part",
            row.id,
            row.downloaded_bytes
        );
        checkpoint(cx, part_at(row, &part), offset, offset)?;
    } else if offset > row.downloaded_bytes {
        // Bytes a stopped process wrote in this boot: made durable before
        // anything new is asked for.
        log::info!(
            "kept bytes written before the stop id={} durable={} kept={offset}",
            row.id,
            row.downloaded_bytes
        );
        checkpoint(cx, part_at(row, &part), row.downloaded_bytes, offset)?;
    }
    // The rest of the file set aside where the filesystem can (the length
    // still means bytes received), so another writer cannot take it.
    space::reserve(&part, offset, expected).map_err(|e| Stop::Disk(e, "reserve space for"))?;
    // §2.6: with the release's digest, every byte is checked; the bytes
    // durable but not yet proven are read and checked before anything
    // new is asked for.
    let mut verifier = verifier_for(cx, row, &part, &mut record, &mut offset)?;
    // §2.6: with piece digests, other friends holding the same file.
    let mut crew = multi::Crew {
        list: match &verifier {
            Some(v) if v.plan().pieces.is_some() && offset < expected => {
                multi::discover(cx, row, &v.plan().sha256)
            }
            _ => Vec::new(),
        },
        whole_only: std::collections::HashSet::new(),
        kept: multi::Kept::default(),
    };
    if crew.list.is_empty()
        && verifier.as_ref().is_some_and(|v| v.plan().pieces.is_some())
        && offset < expected
    {
        let bad = cx.registry.bad_pieces(row.id)?;
        if let Some((_, _, n)) = bad
            .iter()
            .find(|(p, i, n)| *p == cx.peer.name && *i == row.item_id && *n >= MAX_BAD_PIECES)
        {
            return Ok(Outcome::Fatal {
                error: format!(
                    "{} sent {n} pieces that failed their SHA-256 check against the release's \
                     digests, and no other friend has the file: not used again for this download",
                    cx.peer.name
                ),
            });
        }
    }
    *cx.sources.lock() = crew.list.iter().map(|s| s.stat.clone()).collect();
    // Bytes from here on are fetched by this attempt (a piece that starts
    // below names no culprit when it fails).
    let mut fresh = offset;
    // Rounds that ended because a piece's one source left mid-piece.
    let mut redos = 0u32;
    let mut fetched = 0u64;
    cx.live.store(offset, Ordering::Relaxed);
    *cx.began.lock() = Some((cx.clock.now(), offset));
    loop {
        cx.live.store(offset, Ordering::Relaxed);
        if offset == expected {
            // Rule 3: every byte is durable and was validated on arrival.
            if complete(cx, row, &mut part, &mut record, &mut verifier, &mut offset)? {
                return Ok(Outcome::Completed { fetched });
            }
            continue;
        }
        if cx.should_stop() {
            cut_kept(&mut crew, &part, offset)?;
            return Ok(Outcome::Interrupted);
        }
        // Several sources, or one that is not the download's own (its own
        // failed twice): a round; the download's own alone: below.
        if let Some(v) = verifier.as_mut()
            && (crew.list.len() > 1 || crew.list.first().is_some_and(|s| !s.primary))
        {
            let base = offset;
            let (prefix, end) = multi::round(cx, row, &part, &mut record, v, offset, &mut crew)?;
            fetched += crew
                .list
                .iter()
                .map(|s| s.stat.bytes.load(Ordering::Relaxed))
                .sum::<u64>();
            offset = prefix;
            match end {
                multi::RoundEnd::Whole => {}
                multi::RoundEnd::Bad(bad, culprits) => {
                    let before: Vec<(String, String)> = crew
                        .list
                        .iter()
                        .map(|s| (s.peer.name.clone(), s.item_id.clone()))
                        .collect();
                    // What the round kept past the piece stays.
                    let cut = crew.kept.is_empty().then_some(&part);
                    let back = bad_piece_of(
                        cx,
                        row,
                        cut,
                        &mut record,
                        (bad, base),
                        &mut crew.list,
                        &culprits,
                    );
                    if back.is_ok() {
                        crew.kept.follow(&before, &crew.list);
                    }
                    // Nothing is kept after all (its writer was dropped, or
                    // no source is left): cut as above, the registry having
                    // gone back first (not after a registry error: it may
                    // still count bytes past the piece's start).
                    let ends = matches!(back, Err(Stop::Outcome(_)));
                    if cut.is_none() && (ends || (back.is_ok() && crew.kept.is_empty())) {
                        crew.kept = multi::Kept::default();
                        part.set_len(bad.start)
                            .map_err(|e| Stop::Disk(e, "truncate"))?;
                    }
                    offset = back?;
                    crew.kept.log(row.id, bad.start);
                    fresh = fresh.min(offset);
                    if bad.start == 0 {
                        *v = Verifier::new(v.plan().clone(), None);
                    } else {
                        v.reset();
                    }
                }
                multi::RoundEnd::Redo(start) => {
                    redos += 1;
                    if redos > MAX_REDOS {
                        part.set_len(offset)
                            .map_err(|e| Stop::Disk(e, "truncate"))?;
                        return Ok(network_failure(
                            "the sources fetching a piece alone kept leaving mid-piece",
                        ));
                    }
                    let detail = format!(
                        "piece {} is fetched again from its start by one source alone: its source \
                         left mid-piece",
                        start / crate::digest::PIECE_SIZE + 1
                    );
                    let (generation, _) = cx.registry.piece_failed(row.id, start, &[], &detail)?;
                    record.restart(generation);
                    // From the piece's start, or from the prefix when a
                    // hole lies below the piece (a round from 0 after the
                    // whole file failed).
                    offset = start.min(offset);
                    if crew.kept.is_empty() {
                        part.set_len(offset)
                            .map_err(|e| Stop::Disk(e, "truncate"))?;
                    }
                    crew.kept.log(row.id, start);
                    fresh = fresh.min(offset);
                    v.reset();
                }
                multi::RoundEnd::Ended(outcome) => {
                    // The parts ahead of the prefix go: nothing vouches
                    // for them (the registry holds the prefix).
                    part.set_len(offset)
                        .map_err(|e| Stop::Disk(e, "truncate"))?;
                    return Ok(outcome);
                }
            }
            continue;
        }
        // The download's own source alone goes on from the prefix: what
        // rounds kept ahead goes (it appends from here).
        cut_kept(&mut crew, &part, offset)?;
        let mut resp = match cx
            .client
            .file(cx.peer, &row.item_id, offset, etag.as_deref())
        {
            Ok(r) => r,
            Err(e) => {
                return Ok(match crate::download::peer::certificate_error(&e) {
                    Some(why) => Outcome::Fatal {
                        error: format!("peer {}: {why}", cx.peer.name),
                    },
                    None => network_failure(&e.to_string()),
                });
            }
        };
        let fields = Fields::of(&resp);
        let (content_length, resp_etag) = (fields.content_length, fields.etag.clone());
        let retry_after = fields.retry_after.clone();
        // A digest of another version than the one being checked against
        // is a change of version (§2.6, rule 8).
        if let (Some(v), Some(got), 200 | 206) = (&verifier, fields.repr_digest, fields.status)
            && got != v.plan().sha256
        {
            return restart_from_zero(
                cx,
                row,
                &part,
                &mut record,
                "digest_changed: the answer's Repr-Digest is another version's",
            );
        }
        let head = fields.head();
        if let Some(len) = content_length.filter(|&n| n > cx.max_file_size) {
            return Ok(Outcome::Fatal {
                error: format!("peer announced {len} bytes, above the size guard"),
            });
        }
        let verdict = judge(offset, expected, etag.as_deref(), &head);
        let (end, reason) = match verdict {
            Verdict::Append { last } => (last + 1, None),
            Verdict::TakeWhole { reason } => (expected, Some(reason)),
            Verdict::Complete => {
                if complete(cx, row, &mut part, &mut record, &mut verifier, &mut offset)? {
                    return Ok(Outcome::Completed { fetched });
                }
                continue;
            }
            Verdict::Restart { reason } => {
                return restart_from_zero(cx, row, &part, &mut record, &reason);
            }
            Verdict::Status(status) => {
                let after = retry_after
                    .as_deref()
                    .and_then(|v| retry::parse_retry_after(v, cx.clock.wall()));
                return Ok(match retry::classify_status(status) {
                    Class::Retry => Outcome::Retry {
                        error: format!("peer answered {status}"),
                        retry_after: after,
                        progressed: false,
                    },
                    _ => Outcome::Fatal {
                        error: format!("peer answered {status}"),
                    },
                });
            }
        };
        if let Some(reason) = reason {
            // The registry lets go of the bytes before the file does.
            if offset > 0 {
                record_restart(cx, row.id, &mut record, reason)?;
            }
            record.set(0);
            part.set_len(0).map_err(|e| Stop::Disk(e, "truncate"))?;
            offset = 0;
            fresh = 0;
            if let Some(v) = &mut verifier {
                *v = Verifier::new(v.plan().clone(), None);
            }
        }
        if resp_etag != etag && resp_etag.is_some() {
            etag = resp_etag;
            cx.registry.set_etag(row.id, etag.as_deref())?;
        }
        let sized = content_length.is_some();
        // A plain-HTTP body framed by its length alone can be taken
        // straight from the socket once ureq's buffer is drained.
        let direct = (cx.peer.url.starts_with("http://")
            && content_length == Some(end - offset)
            && !fields.coded)
            .then(direct::arm);
        let mut body = resp.body_mut().as_reader();
        let mut to = Target {
            path: &row.part_path,
            part: &mut part,
            record: &mut record,
        };
        let source = Source::Body(&mut body, direct);
        let span = Span {
            offset,
            end,
            sized,
            high_water: row.high_water,
        };
        let got = append(cx, row.id, &mut to, source, span, verifier.as_mut())?;
        fetched += got.bytes;
        offset += got.bytes;
        match got.end {
            End::Whole => {}
            End::Early(outcome) => return Ok(outcome),
            End::Bad(bad) => {
                offset = bad_piece(cx, row, &part, &mut record, (bad, fresh))?;
                fresh = fresh.min(offset);
                if let Some(v) = &mut verifier {
                    v.reset();
                }
            }
            End::Longer => {
                return restart_from_zero(
                    cx,
                    row,
                    &part,
                    &mut record,
                    "size_changed: the body ran past its end",
                );
            }
        }
    }
}

/// What rounds kept past a failed piece goes: the `.part` is cut to
/// `offset` (the attempt ends, or the download's own source goes on alone
/// from there). Nothing else ever leaves bytes past the prefix between
/// rounds.
fn cut_kept(crew: &mut multi::Crew, part: &File, offset: u64) -> Result<(), Stop> {
    if !crew.kept.is_empty() {
        crew.kept = multi::Kept::default();
        part.set_len(offset)
            .map_err(|e| Stop::Disk(e, "truncate"))?;
    }
    Ok(())
}

/// Pieces a source may send that fail their check before it is dropped
/// for the download (§2.6).
pub const MAX_BAD_PIECES: u32 = 2;
/// Rounds an attempt may restart a piece because the one source fetching
/// it alone left mid-piece; then the attempt ends (and is retried).
const MAX_REDOS: u32 = 4;

/// §2.6: the verifier of a row whose release has a digest (`None`
/// without one: §2.4 alone), with the source's piece digests (fetched
/// once, then kept with the row; a peer without them leaves the
/// whole-file check), taken up from the row's proof and caught up to
/// `offset`: bytes durable but not yet proven are read and checked, and
/// a bad piece takes the `.part` back to its start.
fn verifier_for(
    cx: &Context<'_>,
    row: &Download,
    part: &File,
    record: &mut Record,
    offset: &mut u64,
) -> Result<Option<Verifier>, Stop> {
    let Some(sha256) = row.sha256.as_deref().and_then(crate::digest::parse_hex) else {
        return Ok(None);
    };
    let pieces = match cx.registry.pieces_of(row.id)? {
        Some(p) => Some(p),
        None => match cx.client.pieces(cx.peer, &row.item_id) {
            Ok(Some(doc)) if doc.sha256 != sha256 || doc.size != row.expected_bytes => {
                let reason = "digest_changed: the source's pieces are another version's";
                return Err(Stop::Outcome(restart_from_zero(
                    cx, row, part, record, reason,
                )?));
            }
            Ok(Some(doc)) => {
                cx.registry.set_pieces(row.id, &doc.pieces)?;
                Some(doc.pieces)
            }
            Ok(None) => None,
            Err(PeerError::Transient(e)) => return Err(Stop::Outcome(network_failure(&e))),
            Err(PeerError::Permanent(e)) => {
                log::warn!("download id={} checks the whole file only: {e}", row.id);
                None
            }
        },
    };
    let plan = verify::Plan {
        size: row.expected_bytes,
        sha256,
        pieces: pieces.map(Arc::new),
    };
    let resume = row.hash_state.filter(|m| m.bytes <= *offset);
    let mut v = Verifier::new(plan, resume);
    match verify::catch_up(&mut v, part, *offset).map_err(|e| Stop::Disk(e, "read"))? {
        Ok(()) if v.proof().bytes > row.verified_bytes => {
            // `offset` is durable here (rules 1 and 2 made it so).
            cx.registry
                .set_progress_proven(row.id, *offset, &v.proof())?;
        }
        Ok(()) => {}
        Err(bad) => {
            // Bytes from before this attempt: nobody is blamed.
            *offset = bad_piece(cx, row, part, record, (bad, *offset))?;
            v.reset();
        }
    }
    Ok(Some(v))
}

/// A piece (or the whole file) failed its check: the registry goes back
/// to its start, with an event naming the source, before the `.part`
/// does. Returns the new offset; a source with [`MAX_BAD_PIECES`] is
/// dropped for this download (with one source, the download fails).
fn bad_piece(
    cx: &Context<'_>,
    row: &Download,
    part: &File,
    record: &mut Record,
    (bad, since): (BadPiece, u64),
) -> Result<u64, Stop> {
    let mut only = vec![multi::Src {
        peer: cx.peer.clone(),
        item_id: row.item_id.clone(),
        primary: true,
        etag: None,
        stat: multi::SourceStat::new(&cx.peer.name),
    }];
    bad_piece_of(cx, row, Some(part), record, (bad, since), &mut only, &[0])
}

/// [`bad_piece`] with several sources: the culprit (the one source that
/// wrote into the piece) counts one more bad piece, and one at
/// [`MAX_BAD_PIECES`] leaves `sources`; the download fails when none is
/// left. `part` is cut back to the piece's start unless it is `None` (a
/// round kept what was written past the piece: `multi::Kept`).
fn bad_piece_of(
    cx: &Context<'_>,
    row: &Download,
    part: Option<&File>,
    record: &mut Record,
    (bad, since): (BadPiece, u64),
    sources: &mut Vec<multi::Src>,
    culprits: &[usize],
) -> Result<u64, Stop> {
    let mut names: Vec<&str> = culprits
        .iter()
        .filter_map(|&i| sources.get(i))
        .map(|s| s.peer.name.as_str())
        .collect();
    if bad.index.is_some() && bad.start < since {
        names = vec!["an earlier attempt's source"];
    }
    let detail = bad.describe(row.expected_bytes, &names.join(" and "));
    log::warn!("download id={} {detail}", row.id);
    // A piece several sources wrote into, or begun before `since` (an
    // earlier attempt or round, perhaps another source, wrote its start),
    // names no culprit: it is fetched again whole by one source, whose
    // failure then counts. (The whole file failing, every piece having
    // passed, counts against every source: the piece digests and the
    // file's disagree.)
    let counted: &[usize] = if bad.index.is_none() || (culprits.len() == 1 && bad.start >= since) {
        culprits
    } else {
        &[]
    };
    let keys: Vec<(&str, &str)> = counted
        .iter()
        .filter_map(|&i| sources.get(i))
        .map(|s| (s.peer.name.as_str(), s.item_id.as_str()))
        .collect();
    let (generation, counts) = cx
        .registry
        .piece_failed(row.id, bad.start, &keys, &detail)?;
    crate::metrics::METRICS.piece_failed();
    record.restart(generation);
    if let Some(part) = part {
        part.set_len(bad.start)
            .map_err(|e| Stop::Disk(e, "truncate"))?;
    }
    let mut dropped = Vec::new();
    for (&i, &count) in counted.iter().zip(&counts) {
        let Some(src) = sources.get(i) else { continue };
        src.stat.bad_pieces.store(count, Ordering::Relaxed);
        if count >= MAX_BAD_PIECES {
            *src.stat.state.lock() = format!("dropped: {count} bad pieces");
            dropped.push(i);
        }
    }
    let why: Vec<String> = dropped
        .iter()
        .filter_map(|&i| sources.get(i))
        .map(|s| {
            format!(
                "{} sent {} pieces that failed their SHA-256 check against the release's digests",
                s.peer.name,
                s.stat.bad_pieces.load(Ordering::Relaxed)
            )
        })
        .collect();
    let mut index = 0;
    sources.retain(|_| {
        index += 1;
        !dropped.contains(&(index - 1))
    });
    if sources.is_empty() {
        return Err(Stop::Outcome(Outcome::Fatal {
            error: format!("{}: not used again for this download", why.join("; ")),
        }));
    }
    if !why.is_empty() {
        log::warn!("download id={} drops a source: {}", row.id, why.join("; "));
    }
    Ok(bad.start)
}

/// Every byte is here: with a verifier, the whole file's digest is
/// checked first (a mismatch takes the download back to byte 0 and
/// returns `false`), then rule 11's hand-off, then the digest is kept
/// for the handed-off file (§2.6: known without reading it again).
fn complete(
    cx: &Context<'_>,
    row: &Download,
    part: &mut File,
    record: &mut Record,
    verifier: &mut Option<Verifier>,
    offset: &mut u64,
) -> Result<bool, Stop> {
    if let Some(v) = verifier.as_mut() {
        // Bytes a 416 proved, or a resume found, are hashed first.
        if let Err(bad) = verify::catch_up(v, part, *offset)
            .map_err(|e| Stop::Disk(e, "read"))?
            .and_then(|()| v.finish().map(|_| ()))
        {
            *offset = bad_piece(cx, row, part, record, (bad, *offset))?;
            if bad.start == 0 {
                *v = Verifier::new(v.plan().clone(), None);
            } else {
                v.reset();
            }
            return Ok(false);
        }
    }
    finalize(cx, row, part)?;
    if let Some(pieces) = verifier.as_ref().and_then(Verifier::pieces) {
        keep_digest(cx, row, &pieces);
    }
    Ok(true)
}

/// Records the digest of the handed-off file under its identity, so
/// this node offers it at once should it serve the file (best effort).
fn keep_digest(cx: &Context<'_>, row: &Download, pieces: &crate::digest::Pieces) {
    let kept = std::fs::metadata(&row.dest_path)
        .map_err(|e| crate::error::Error::io(format!("cannot stat {}", row.dest_path.display()), e))
        .and_then(|meta| {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            cx.registry
                .put_digest(&crate::db::FileId::of(&meta), pieces, at)
        });
    if let Err(e) = kept {
        log::warn!(
            "cannot keep the digest of {}: {}",
            row.dest_path.display(),
            e.chain()
        );
    }
}

/// Rule 8: write nothing more, truncate to 0, record why, try again.
fn restart_from_zero(
    cx: &Context<'_>,
    row: &Download,
    part: &File,
    record: &mut Record,
    reason: &str,
) -> Result<Outcome, Stop> {
    record_restart(cx, row.id, record, reason)?;
    part.set_len(0).map_err(|e| Stop::Disk(e, "truncate"))?;
    if remote_changed(reason) {
        // The validator was the old version's; looking the release up
        // again gives the new one's. Any other restart (a lying answer)
        // keeps it: the version did not change, and an ETag once learned
        // for it is never forgotten.
        cx.registry.set_etag(row.id, None)?;
        return Ok(Outcome::Changed {
            reason: reason.to_string(),
        });
    }
    Ok(Outcome::Retry {
        error: format!("restarted from byte 0: {reason}"),
        retry_after: None,
        progressed: false,
    })
}

/// Whether a restart `reason` says the peer's file itself changed (a new
/// size or validator), rather than a misbehaving answer: such a restart
/// looks the release up again.
pub fn remote_changed(reason: &str) -> bool {
    let word = reason.split(':').next().unwrap_or(reason);
    matches!(
        word,
        "size_changed" | "etag_changed" | "digest_changed" | "changed"
    )
}

/// Where [`append`] writes: the `.part`, and its written record.
struct Target<'a> {
    path: &'a Path,
    part: &'a mut File,
    record: &'a mut Record,
}

struct Appended {
    bytes: u64,
    end: End,
}

/// How a body ended.
enum End {
    /// Exactly at the end it promised.
    Whole,
    /// Before it (network error, stall, shutdown): keep what arrived.
    Early(Outcome),
    /// An unsized body went on past the expected end (rule 12).
    Longer,
    /// A piece failed its check (§2.6); what was written is kept durable
    /// only up to the checkpoint, and the caller takes it back further.
    Bad(BadPiece),
}

/// What one [`append`] takes: the body's bytes from `offset` up to `end`
/// (exclusive), `sized` when framed by `Content-Length`; `high_water`: the
/// row's highest durable offset for this version before the attempt.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    end: u64,
    sized: bool,
    high_water: u64,
}

/// Appends the body at `offset` up to `end` (exclusive), never past it, with
/// checkpoints; a short body keeps what arrived. A body without
/// `Content-Length` (`sized` false) must prove it ends at `end` (rule 12):
/// one more byte is read; until that read says "end of body" the last byte
/// is neither claimed durable nor counted by the written record, so a later
/// attempt asks for it again (with a checked `Content-Range`) rather than
/// trusting an unproven end.
fn append(
    cx: &Context<'_>,
    id: i64,
    to: &mut Target<'_>,
    mut source: Source<'_, impl Read>,
    span: Span,
    verifier: Option<&mut Verifier>,
) -> Result<Appended, Stop> {
    let Span {
        offset, end, sized, ..
    } = span;
    // What the record may count: never the unproven last byte.
    let vouch_limit = if sized { end } else { end - 1 };
    let part = &*to.part;
    let synced = part.try_clone().map_err(|e| Stop::Disk(e, "open"))?;
    // The verifier (§2.6) hashes what is written, a little behind, on its
    // own thread; the checkpoints commit what it proved.
    let follow = Follow::new(offset);
    let proofs = Proofs::default();
    let verifying = verifier.is_some();
    let mut bad: Option<BadPiece> = None;
    let at = Part {
        id,
        path: to.path,
        file: part,
        proofs: verifying.then_some(&proofs),
    };
    let mut buf = vec![0u8; READ_BUFFER];
    let checkpoint_bytes = crate::fault::scaled("JACK_FAULT_CHECKPOINT_BYTES", CHECKPOINT_BYTES);
    let mut pos = offset;
    // The durable position when the body stopped (the last checkpoint).
    let mut synced_to = offset;
    let mut error: Option<Outcome> = None;
    // Checkpoints while the body streams run on a flusher thread, so the
    // `fdatasync` overlaps the next reads instead of stalling them; the
    // position it commits is one every byte below was written for before
    // the sync began (rule 10 holds). One at a time, and the last one is
    // waited for before the closing checkpoint below.
    std::thread::scope(|s| -> Result<(), Stop> {
        let flushed = Part {
            file: &synced,
            ..at
        };
        let mut flusher = Flusher::start(s, cx, flushed, (pos, span.high_water));
        // Whatever way this closure ends, the verifier is told the writer
        // is done (it hashes what was written, then its thread ends).
        let _done = verify::Closing(&follow);
        if let Some(v) = verifier {
            let (follow, proofs, file) = (&follow, &proofs, &synced);
            s.spawn(move || follow.verify(v, file, proofs));
        }
        let mut last_sync = (pos, Instant::now());
        // Written bytes below this have had their write-back started.
        let mut kicked = pos;
        while pos < end {
            if cx.should_stop() {
                error = Some(Outcome::Interrupted);
                break;
            }
            let Some(step) = source.limited_step(cx, part, (pos, end), &mut buf) else {
                continue;
            };
            let n = match step {
                Step::Wrote(n) => n,
                Step::Ended => {
                    error = Some(network_failure(&format!(
                        "body ended at byte {pos} of {end}"
                    )));
                    break;
                }
                Step::Net(e) => {
                    error = Some(network_failure(&e));
                    break;
                }
                Step::Disk(e) => {
                    // What was written may be partial; the checkpoint below
                    // claims only what is synced, and the next attempt
                    // truncates to it.
                    flusher.wait()?;
                    checkpoint(cx, at, flusher.durable, pos)?;
                    return Err(Stop::Disk(e, "write"));
                }
            };
            if source.direct() {
                crate::metrics::METRICS.downloaded_direct(n as u64);
            }
            pos += n as u64;
            if verifying && !follow.wrote(pos) {
                // A piece failed: nothing more from this body.
                error = Some(Outcome::Interrupted);
                break;
            }
            to.record.advance(pos.min(vouch_limit));
            crate::metrics::METRICS.downloaded(n as u64);
            cx.live.store(pos, Ordering::Relaxed);
            // Never more than one interval beyond the durable point: when
            // the disk is slower than the network, the reads wait for the
            // sync under way (a power cut loses at most CHECKPOINT_BYTES).
            if pos - flusher.durable >= checkpoint_bytes {
                flusher.wait()?;
            }
            // Offered twice an interval, so one can be under way while the
            // bytes for the next arrive.
            let due = pos - last_sync.0 >= checkpoint_bytes / 2
                || last_sync.1.elapsed() >= CHECKPOINT_INTERVAL;
            if due && pos < end {
                if flusher.offer(Job::Checkpoint(pos))? {
                    last_sync = (pos, Instant::now());
                    kicked = pos;
                }
            } else if pos - kicked >= WRITE_BEHIND && flusher.offer(Job::WriteBack(kicked, pos))? {
                kicked = pos;
            }
        }
        flusher.wait()?;
        synced_to = flusher.durable;
        if verifying {
            match follow.close() {
                Some(verify::Failed::Bad(b)) => bad = Some(b),
                Some(verify::Failed::Read(e)) => return Err(Stop::Disk(e, "read back")),
                None => {}
            }
        }
        Ok(())
    })?;
    let mut durable = pos;
    let end = match (bad, error) {
        (Some(b), _) => End::Bad(b),
        (None, Some(outcome)) => End::Early(outcome),
        (None, None) if sized => End::Whole,
        (None, None) => match source.read_past_end() {
            Ok(false) => End::Whole,
            Ok(true) => {
                return Ok(Appended {
                    bytes: pos - offset,
                    end: End::Longer,
                });
            }
            Err(e) => {
                durable = pos - 1;
                End::Early(network_failure(&format!(
                    "cannot tell whether the body ends at byte {end}: {e}"
                )))
            }
        },
    };
    checkpoint(cx, at, synced_to, durable)?;
    Ok(Appended {
        bytes: durable - offset,
        end,
    })
}

/// Where an [`append`] takes the body's bytes from: ureq's reader (armed to
/// hand its socket over when `direct` allows), or the socket itself once
/// handed over.
enum Source<'b, R> {
    Body(&'b mut R, Option<direct::Armed>),
    Socket(direct::Socket),
}

/// What one [`Source::step`] did.
enum Step {
    /// `n` bytes were written at the position asked.
    Wrote(usize),
    /// The body ended.
    Ended,
    /// Reading failed (reset, stall, bad framing): why.
    Net(String),
    /// Writing the `.part` failed.
    Disk(std::io::Error),
}

impl<R: Read> Source<'_, R> {
    /// Moves up to `want` bytes of the body into `part` at `pos`.
    fn step(&mut self, part: &File, pos: u64, want: usize, buf: &mut [u8], idle: Duration) -> Step {
        let check = |n: usize| crate::fault::check_write(pos + n as u64);
        loop {
            let (body, armed) = match self {
                Source::Socket(socket) => {
                    return match socket.move_into(part, pos, want, buf, check) {
                        Ok(0) => Step::Ended,
                        Ok(n) => Step::Wrote(n),
                        Err(direct::Failed::Net(e)) => Step::Net(e.to_string()),
                        Err(direct::Failed::Disk(e)) => Step::Disk(e),
                    };
                }
                Source::Body(body, armed) => (body, armed),
            };
            let n = match body.read(&mut buf[..want]) {
                Ok(0) => return Step::Ended,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => match armed.as_ref().and_then(direct::Armed::take) {
                    // ureq's buffer is drained; the rest comes straight
                    // from the socket.
                    Some(stream) => {
                        *self = Source::Socket(direct::Socket::new(stream, idle));
                        continue;
                    }
                    None => return Step::Net(e.to_string()),
                },
            };
            return match check(n).and_then(|()| part.write_all_at(&buf[..n], pos)) {
                Ok(()) => Step::Wrote(n),
                Err(e) => Step::Disk(e),
            };
        }
    }

    /// [`Source::step`] for up to `end - pos` bytes under the download
    /// limit's bucket (`rate`: all downloads together), what did not move
    /// given back. `None`: the bucket granted nothing (look at the stop,
    /// then ask again).
    fn limited_step(
        &mut self,
        cx: &Context<'_>,
        part: &File,
        (pos, end): (u64, u64),
        buf: &mut [u8],
    ) -> Option<Step> {
        let mut want = (end - pos).min(buf.len() as u64);
        if DOWNLOAD.limited() {
            want = DOWNLOAD.take(want, || cx.should_stop())?;
        }
        let granted = want;
        let want = usize::try_from(want).unwrap_or(buf.len());
        let step = self.step(part, pos, want, buf, cx.client.idle());
        let moved = match step {
            Step::Wrote(n) => (n as u64).min(granted),
            _ => 0,
        };
        DOWNLOAD.refund(granted - moved);
        Some(step)
    }

    /// Whether bytes now come straight from the socket.
    fn direct(&self) -> bool {
        matches!(self, Source::Socket(_))
    }

    /// Whether the body has anything left after the bytes asked for.
    fn read_past_end(&mut self) -> std::io::Result<bool> {
        match self {
            Source::Body(body, _) => read_past_end(body),
            Source::Socket(socket) => read_past_end(&mut socket.stream()),
        }
    }
}

/// What the [`Flusher`] is asked to do.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// Rule 10 at this position: `fdatasync`, then commit it.
    Checkpoint(u64),
    /// Start writing `[from, to)` back to the disk without waiting
    /// (`POSIX_FADV_DONTNEED` starts write-back of dirty pages; it frees
    /// only pages already clean). Nothing is claimed: the next checkpoint
    /// finds less to wait for, the last one above all, and the dirty pages
    /// of a download stay few (a NAS has little memory to hold them).
    WriteBack(u64, u64),
}

/// The checkpoint thread of one [`append`]: takes one [`Job`] at a time
/// (`offer`), does it and reports how it went. Its thread ends when the
/// `Flusher` is dropped.
struct Flusher<'scope> {
    ask: Option<crossbeam_channel::Sender<Job>>,
    done: crossbeam_channel::Receiver<Result<(), Stop>>,
    /// The job under way.
    busy: Option<Job>,
    /// The durable position: where the append started, then the last
    /// position a checkpoint of this flusher committed.
    durable: u64,
    _thread: std::thread::ScopedJoinHandle<'scope, ()>,
}

impl<'scope> Flusher<'scope> {
    /// `(durable, high_water)`: where the append starts (durable), and the
    /// row's highest durable offset for this version (a checkpoint past it
    /// is progress).
    fn start<'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        cx: &'env Context<'env>,
        part: Part<'env>,
        (durable, high_water): (u64, u64),
    ) -> Flusher<'scope> {
        let (ask, asked) = crossbeam_channel::bounded::<Job>(1);
        let (tell, done) = crossbeam_channel::bounded(1);
        let thread = s.spawn(move || {
            let mut last = durable;
            for job in asked {
                let result = match job {
                    Job::Checkpoint(pos) => checkpoint(cx, part, last, pos),
                    Job::WriteBack(from, to) => {
                        // Advice only: a refusal changes nothing.
                        let len = std::num::NonZeroU64::new(to - from);
                        let _ =
                            rustix::fs::fadvise(part.file, from, len, rustix::fs::Advice::DontNeed);
                        Ok(())
                    }
                };
                if let (Ok(()), Job::Checkpoint(pos)) = (&result, job) {
                    last = pos;
                    if pos > high_water {
                        cx.checkpointed.store(true, Ordering::Relaxed);
                    }
                }
                if tell.send(result).is_err() {
                    break;
                }
            }
        });
        Flusher {
            ask: Some(ask),
            done,
            busy: None,
            durable,
            _thread: thread,
        }
    }

    /// Takes in the result of the job under way.
    fn finished(&mut self, result: Result<(), Stop>) -> Result<(), Stop> {
        if let Some(Job::Checkpoint(pos)) = self.busy.take()
            && result.is_ok()
        {
            self.durable = pos;
        }
        result
    }

    /// Hands `job` to the thread unless it is still busy with the previous
    /// one; `Ok(true)` when taken. A failed previous checkpoint is returned.
    fn offer(&mut self, job: Job) -> Result<bool, Stop> {
        if self.busy.is_some() {
            match self.done.try_recv() {
                Ok(result) => self.finished(result)?,
                Err(_) => return Ok(false),
            }
        }
        let Some(ask) = &self.ask else {
            return Ok(false);
        };
        if ask.send(job).is_ok() {
            self.busy = Some(job);
        }
        Ok(self.busy.is_some())
    }

    /// Waits for the job under way, if any, and returns its result.
    fn wait(&mut self) -> Result<(), Stop> {
        if self.busy.is_some() {
            let result = self.done.recv().unwrap_or(Ok(()));
            return self.finished(result);
        }
        Ok(())
    }
}

impl Drop for Flusher<'_> {
    fn drop(&mut self) {
        // Closing the channel ends the thread (after any checkpoint under
        // way); the scope joins it.
        self.ask = None;
    }
}

/// Whether a body has anything left to read (rule 12's one byte past).
fn read_past_end(body: &mut impl Read) -> std::io::Result<bool> {
    let mut one = [0u8; 1];
    loop {
        match body.read(&mut one) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Rule 10: `fdatasync` the `.part`, then commit `downloaded_bytes` =
/// `pos` (`from`: the last checkpoint, for the fault seam). A failed sync
/// disowns the unsynced bytes at once, on whichever thread it happens
/// (the flusher's error reaches the reads only later, and a kill in
/// between must not find a record that vouches for lost bytes).
fn checkpoint(cx: &Context<'_>, at: Part<'_>, from: u64, pos: u64) -> Result<(), Stop> {
    crate::fault::crash_point("checkpoint:after_write");
    crate::fault::slow_sync();
    let synced = crate::fault::sync_fails(at.file, from, pos).and_then(|()| at.file.sync_data());
    if let Err(e) = synced {
        disown_unsynced(cx, at.id, at.path);
        return Err(Stop::Disk(e, "sync"));
    }
    let id = at.id;
    crate::fault::crash_point("checkpoint:after_sync");
    match at.proofs.and_then(|p| p.at_or_below(pos)) {
        Some(proof) => cx.registry.set_progress_proven(id, pos, &proof)?,
        None => cx.registry.set_progress(id, pos)?,
    }
    crate::fault::crash_point("checkpoint:after_commit");
    Ok(())
}

fn network_failure(error: &str) -> Outcome {
    Outcome::Retry {
        error: error.to_string(),
        retry_after: None,
        progressed: false,
    }
}

/// Rule 11: sync, check the length, then the hand-off (`handoff`). The
/// caller marks the row completed.
fn finalize(cx: &Context<'_>, row: &Download, part: &mut File) -> Result<(), Stop> {
    part.sync_all().map_err(|e| Stop::Disk(e, "sync"))?;
    let len = part.metadata().map_err(|e| Stop::Disk(e, "stat"))?.len();
    if len != row.expected_bytes {
        written::forget(&row.part_path);
        let reason = format!("length {len} at finalize, expected {}", row.expected_bytes);
        cx.registry.record_restart(row.id, &reason)?;
        crate::metrics::METRICS.restarted(&reason);
        part.set_len(0).map_err(|e| Stop::Disk(e, "truncate"))?;
        return Err(Stop::Outcome(network_failure(
            "length mismatch at finalize",
        )));
    }
    crate::fault::crash_point("finalize:after_fsync");
    let handoff = HandOff {
        registry: cx.registry,
        mode: cx.handoff,
        stopping: cx.stopping,
    };
    handoff.run(row, part).map_err(|f| match f {
        Failure::DestinationExists => Stop::Outcome(Outcome::Fatal {
            error: DESTINATION_EXISTS.into(),
        }),
        Failure::Interrupted => Stop::Outcome(Outcome::Interrupted),
        Failure::Io(e, what) => Stop::Disk(e, what),
        Failure::Db(e) => Stop::Db(e),
    })?;
    written::forget(&row.part_path);
    Ok(())
}

/// Where an attempt on `row` resumes, given its `.part`'s metadata: the
/// `.part`'s length, but no further than what is durable or, when
/// `written` records are trusted here, vouched for by this boot's record.
pub fn resume_point(row: &Download, part: &std::fs::Metadata, written: bool) -> u64 {
    let vouched = if written {
        written::read(&row.part_path, part, Owner::of(row)).unwrap_or(0)
    } else {
        0
    };
    part.len().min(row.downloaded_bytes.max(vouched))
}

/// The error of a download whose final name is taken by a file jack did
/// not put there (left untouched).
pub const DESTINATION_EXISTS: &str = "destination exists";

/// The `.part` path of download row `id`: one per row (ids are never
/// reused), so two rows never share a `.part`, whether they name the same
/// release (a re-grab after a removal) or the same destination.
pub fn part_path(incomplete_dir: &Path, info_hash: &str, id: i64) -> PathBuf {
    incomplete_dir.join(format!("{info_hash}.{id}.part"))
}

/// A shared live byte count per running download.
pub type Live = Arc<AtomicU64>;

/// When a running download's transfer began, and at what byte (`None`
/// until it has).
pub type Began = Arc<parking_lot::Mutex<Option<(std::time::Instant, u64)>>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(status: u16, cr: Option<&'a str>, len: Option<u64>) -> Head<'a> {
        Head {
            status,
            content_range: cr,
            content_length: len,
            ..Head::default()
        }
    }

    #[test]
    fn the_resume_table() {
        let r = |s: &str| Verdict::Restart { reason: s.into() };
        let cases: Vec<(Head<'_>, Verdict)> = vec![
            (
                head(206, Some("bytes 100-999/1000"), Some(900)),
                Verdict::Append { last: 999 },
            ),
            (
                head(206, Some("bytes 100-499/1000"), Some(400)),
                Verdict::Append { last: 499 },
            ),
            (
                head(206, Some("bytes 100-999/1000"), None),
                Verdict::Append { last: 999 },
            ),
            (
                head(206, Some("bytes 0-999/1000"), None),
                r("content_range_mismatch"),
            ),
            (
                head(206, Some("bytes 100-999/2000"), None),
                r("size_changed"),
            ),
            (
                head(206, Some("bytes 100-999/1000"), Some(5)),
                r("content_length_mismatch"),
            ),
            (
                head(206, Some("bytes 100-99/1000"), None),
                r("content_range_mismatch"),
            ),
            (
                head(206, Some("bytes 100-1000/1000"), None),
                r("content_range_mismatch"),
            ),
            (
                head(206, Some("bytes 100-999/*"), None),
                r("content_range_mismatch"),
            ),
            (
                head(206, Some("bytes=100-999/1000"), None),
                r("content_range_mismatch"),
            ),
            (head(206, None, None), r("content_range_mismatch")),
            (
                head(200, None, Some(1000)),
                Verdict::TakeWhole {
                    reason: "range_ignored",
                },
            ),
            (
                head(200, None, None),
                Verdict::TakeWhole {
                    reason: "range_ignored",
                },
            ),
            (head(200, None, Some(999)), r("size_changed")),
            (head(416, Some("bytes */100"), None), r("changed")),
            (head(416, Some("bytes */1000"), None), r("changed")),
            (head(416, None, None), r("changed")),
            (head(503, None, None), Verdict::Status(503)),
            (head(404, None, None), Verdict::Status(404)),
            (head(302, None, None), Verdict::Status(302)),
        ];
        for (h, want) in cases {
            assert_eq!(judge(100, 1000, None, &h), want, "{h:?}");
        }
        // 416 proves completeness only when T == offset == expected.
        assert_eq!(
            judge(1000, 1000, None, &head(416, Some("bytes */1000"), None)),
            Verdict::Complete
        );
        // Multipart, encodings and changed validators never append.
        let mut h = head(206, Some("bytes 100-999/1000"), None);
        h.content_type = Some("multipart/byteranges; boundary=x");
        assert_eq!(judge(100, 1000, None, &h), r("multipart"));
        let mut h = head(206, Some("bytes 100-999/1000"), None);
        h.content_encoding = Some("gzip");
        assert_eq!(judge(100, 1000, None, &h), r("content_encoding"));
        let mut h = head(200, None, Some(1000));
        h.content_encoding = Some("gzip");
        assert_eq!(judge(100, 1000, None, &h), r("content_encoding"));
        let mut h = head(206, Some("bytes 100-999/1000"), None);
        h.etag = Some("\"new\"");
        assert_eq!(judge(100, 1000, Some("\"old\""), &h), r("etag_changed"));
        assert_eq!(
            judge(100, 1000, None, &h),
            Verdict::Append { last: 999 },
            "no known etag: nothing to compare"
        );
        let mut h = head(200, None, Some(1000));
        h.etag = Some("\"new\"");
        assert_eq!(
            judge(100, 1000, Some("\"old\""), &h),
            Verdict::TakeWhole { reason: "changed" }
        );
    }

    #[test]
    fn only_a_changed_file_is_looked_up_again() {
        for yes in [
            "size_changed",
            "etag_changed",
            "changed",
            "size_changed: the body ran past its end",
        ] {
            assert!(remote_changed(yes), "{yes}");
        }
        for no in [
            "content_range_mismatch",
            "range_ignored",
            "multipart",
            "content_encoding",
            "content_length_mismatch",
            "part_too_long: 5 bytes, expected 4",
        ] {
            assert!(!remote_changed(no), "{no}");
        }
    }

    #[test]
    fn content_ranges_parse_strictly() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(
            parse_content_range("bytes 4294967296-5368709119/5368709120"),
            Some((4_294_967_296, 5_368_709_119, 5_368_709_120))
        );
        for bad in [
            "bytes 0-9",
            "bytes -9/10",
            "bytes 0-/10",
            "bytes +0-9/10",
            "items 0-9/10",
            "bytes 0-9/99999999999999999999999",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
