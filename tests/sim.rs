//! A deterministic simulation of the download plane (issue 18), in the
//! manner of FoundationDB's simulation and TigerBeetle's VOPR: one seed
//! drives every choice (the operations, the fake peer's faults, the crash
//! points and disk faults of the real `jack` binary), and after every step
//! the invariants of PROTOCOL.md §2.4 are checked against an oracle that
//! keeps every version the fake peer ever served.
//!
//! * `cargo test --test sim`: sequences for `JACK_SIM_SECONDS` (60 by
//!   default; 0: no cap), at most `JACK_SIM_SEQUENCES`.
//! * `JACK_SIM_SEED=<n> cargo test --test sim -- --nocapture`: that seed
//!   alone, its op log printed.
//!
//! One seed in three (`seed % 3 == 1`) downloads with the digests of
//! PROTOCOL.md §2.6: the peer offers them, its files are two or three
//! 16 MiB pieces, and a second friend, `bob`, holds the same files (two
//! sources for each download) or, in some seeds, same-size files with
//! another digest (never to be used); sources corrupt a byte of a piece,
//! corrupt every answer, or vanish, among the other ops. Every verified
//! piece is byte-exact, and the handed-off file equals the digest.
//!
//! Each step ends in a quiescent state (every row completed, failed or
//! paused, the stub taken, or the process dead at a crash
//! point), each wait bounded, so thread timing changes outcomes as little
//! as possible. A kill -9 at a random moment is an op of its own whose
//! outcome is not compared; the invariants still hold after it.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jack::digest::{PIECE_SIZE, Sha256};
use support::fake_peer::{self, FakePeer, Mode};
use support::{CRASH_POINTS, KEY, Node, Site, downloader};

/// The items the fake peer serves.
const ITEMS: [&str; 2] = ["a", "b"];
/// How long a step waits for quiescence.
const SETTLE: Duration = Duration::from_secs(8);
/// The checkpoint interval and the written record's step of the node.
const CHECKPOINT: u64 = 256 * 1024;
const RECORD_STEP: u64 = 64 * 1024;
/// A download may fetch this many times its size, plus one size for each
/// event that may legitimately cost a whole file again (a grab, retry,
/// restart, kill, replaced file, injected fault).
const BASE_MULTIPLE: u64 = 4;
/// Steps a row may stay unsettled (each `SETTLE` long) before it counts
/// as a download that never ends.
const UNSETTLED_STEPS: u32 = 2;

const COPY_POINTS: [&str; 5] = [
    "copy:after_create",
    "copy:after_first_chunk",
    "copy:after_sync",
    "copy:after_place",
    "copy:after_part_removed",
];

/// splitmix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize + 8);
        while (out.len() as u64) < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len as usize);
        out
    }
}

/// What the owner, the peer or fate does in one step.
#[derive(Debug, Clone)]
enum Op {
    /// A stub for the item dropped into the watch folder: its title or
    /// another (another release of the same file), and the size the peer
    /// serves now or the first one (an indexer's stale answer).
    Grab {
        item: usize,
        other_title: bool,
        stale_size: bool,
    },
    /// The owner resumes (or retries) a row (status API, `jack resume`
    /// or `jack retry`).
    Retry {
        pick: usize,
        cli: bool,
    },
    /// The owner pauses a row (status API or `jack pause`).
    Pause {
        pick: usize,
        cli: bool,
    },
    Delete {
        pick: usize,
        delete_files: bool,
    },
    /// A stub added paused through the qBittorrent API (Sonarr's Initial
    /// State "Stop"): a new row starts paused, an existing one not being
    /// transferred takes the source and ends paused.
    GrabPaused {
        item: usize,
    },
    /// A grab whose transfer the peer stalls after `after` per mille of
    /// the file, and while it runs: `then`.
    Midway {
        item: usize,
        after: u64,
        then: Then,
    },
    /// The peer replaces its file: the same size or another.
    Replace {
        item: usize,
        same_size: bool,
        len: u64,
        seed: u64,
    },
    /// The Release JSON leaves out (or carries again) `etag`.
    HideEtag(bool),
    /// The next file request is answered this way.
    OneShot(Mode),
    /// Every file request is answered this way from now on.
    Fallback(Mode),
    /// SIGTERM, then a start with these knobs: a crash point `name#n`, the
    /// `n`-th checkpoint sync failing with EIO.
    Restart {
        crash: Option<String>,
        eio: Option<u64>,
    },
    /// A grab, then SIGKILL after `ms` (outcome not compared).
    KillAfter {
        item: usize,
        ms: u64,
    },
    /// A grab, SIGKILL after `ms`, the bytes past each durable count
    /// garbled or cut and the written records garbled, then a start as
    /// another boot.
    PowerCut {
        item: usize,
        ms: u64,
    },
    /// ENOSPC past this length of a `.part` (None: room again).
    DiskLimit(Option<u64>),
    /// §2.6 seeds: the source's next file answers flip the byte at these
    /// per mille of the item's size (when they carry it), and a grab.
    BadPiece {
        item: usize,
        source: Who,
        at: Vec<u64>,
    },
    /// §2.6 seeds: the source corrupts every answer (its first byte) from
    /// now on, or no longer.
    Corrupting {
        source: Who,
        on: bool,
    },
    /// §2.6 seeds: a grab, and bob goes away while it sends (or when the
    /// wait for it runs out): its bodies stop, its port refuses.
    BobVanishes {
        item: usize,
    },
    /// §2.6 seeds: bob sends at 8 KiB/s for a few seconds around a grab
    /// (a friend's uplink all but stopped): his part goes to the others
    /// when they wait for work (cut for moving under 64 KiB in 3 s).
    BobTrickles {
        item: usize,
    },
}

/// A source of the §2.6 seeds: the download's own peer or the friend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Alice,
    Bob,
}

/// What bob holds in a §2.6 seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bob {
    /// The same files as alice (replaced with hers).
    Same,
    /// Files of the same size with another digest: never a byte of them
    /// may be asked for.
    Other,
}

#[derive(Debug, Clone)]
enum Then {
    Pause,
    /// Paused, and resumed at once (while the pause may still be under
    /// way in the worker).
    PauseResume,
    /// Removed (with its files or not), and grabbed again at once.
    Delete {
        files: bool,
        regrab: bool,
    },
    Kill,
    Replace(bool),
}

fn gen_op(rng: &mut Rng, copy: bool, pieces: bool) -> Op {
    // Only the §2.6 seeds draw this: the others' sequences stay.
    if pieces && rng.chance(30) {
        return gen_piece_op(rng);
    }
    let item = rng.below(ITEMS.len() as u64) as usize;
    let pick = rng.below(8) as usize;
    match rng.below(100) {
        0..=2 => Op::GrabPaused { item },
        3..=17 => Op::Grab {
            item,
            other_title: rng.chance(25),
            stale_size: rng.chance(15),
        },
        18..=26 => Op::Retry {
            pick,
            cli: rng.chance(30),
        },
        27..=30 => Op::Pause {
            pick,
            cli: rng.chance(30),
        },
        31..=37 => Op::Delete {
            pick,
            delete_files: rng.chance(50),
        },
        38..=51 => Op::Midway {
            item,
            after: rng.below(1000),
            then: match rng.below(6) {
                0 => Then::Pause,
                5 => Then::PauseResume,
                1 => Then::Delete {
                    files: rng.chance(50),
                    regrab: rng.chance(60),
                },
                2 => Then::Kill,
                _ => Then::Replace(rng.chance(50)),
            },
        },
        52..=58 => Op::Replace {
            item,
            same_size: rng.chance(50),
            len: rng.range(64 * 1024, 1200 * 1024),
            seed: rng.next(),
        },
        59..=62 => Op::HideEtag(rng.chance(60)),
        63..=71 => Op::OneShot(match rng.below(8) {
            0 => Mode::Cut(rng.range(1, 900 * 1024)),
            1 => Mode::Stall(rng.range(0, 900 * 1024), Duration::from_millis(1500)),
            2 => Mode::WrongStart,
            3 => Mode::IgnoreRange,
            4 => Mode::ChangedEtag,
            5 => Mode::Status(503, None),
            6 => match rng.chance(50) {
                true => Mode::UnsizedHold(Duration::from_millis(1000)),
                false => Mode::UnsizedLongerHold(Duration::from_millis(1000)),
            },
            _ => Mode::Subset(rng.range(1, 600 * 1024)),
        }),
        72..=75 => Op::Fallback(match rng.below(4) {
            0 => Mode::Honest,
            1 => Mode::Cut(rng.range(64 * 1024, 300 * 1024)),
            _ => Mode::EarlierStart {
                cut_at: 200_000,
                block: 64 * 1024,
            },
        }),
        76..=85 => {
            let crash = rng.chance(70).then(|| {
                // A removal between its files and its row, besides the
                // transfer's and the hand-off's points.
                let mut points: Vec<&str> = CRASH_POINTS.to_vec();
                points.push("removal:after_files");
                if copy {
                    points.extend(COPY_POINTS);
                }
                let p = points[rng.below(points.len() as u64) as usize];
                format!("{p}#{}", rng.range(1, 3))
            });
            let eio = rng.chance(35).then(|| rng.range(1, 3));
            Op::Restart { crash, eio }
        }
        86..=90 => Op::KillAfter {
            item,
            ms: rng.range(0, 400),
        },
        91..=94 => Op::PowerCut {
            item,
            ms: rng.range(0, 400),
        },
        _ => Op::DiskLimit(rng.chance(60).then(|| rng.range(0, 1200 * 1024))),
    }
}

/// An op of the sources of a §2.6 seed.
fn gen_piece_op(rng: &mut Rng) -> Op {
    let item = rng.below(ITEMS.len() as u64) as usize;
    let source = if rng.chance(60) { Who::Bob } else { Who::Alice };
    match rng.below(11) {
        0..=5 => Op::BadPiece {
            item,
            source,
            at: vec![rng.below(1000)],
        },
        6..=8 => Op::Corrupting {
            source,
            on: rng.chance(70),
        },
        9 => Op::BobVanishes { item },
        _ => Op::BobTrickles { item },
    }
}

/// The ops of one sequence: `steps` random ops, and in half of the
/// sequences one of the known dangerous paths of issue 18 laid in among
/// them (each still a plain sequence of ops, so a failure replays alike);
/// in half of the §2.6 seeds, one of the sources' paths too.
fn plan(rng: &mut Rng, copy: bool, pieces: bool, steps: u64) -> Vec<Op> {
    let mut ops: Vec<Op> = (0..steps).map(|_| gen_op(rng, copy, pieces)).collect();
    if rng.chance(50) {
        let at = rng.below(ops.len() as u64 + 1) as usize;
        let path = dangerous_path(rng);
        ops.splice(at..at, path);
    }
    if pieces && rng.chance(50) {
        let at = rng.below(ops.len() as u64 + 1) as usize;
        let path = sources_path(rng);
        ops.splice(at..at, path);
    }
    ops
}

/// A grab of `item` under its title and current size.
fn plain_grab(item: usize) -> Op {
    Op::Grab {
        item,
        other_title: false,
        stale_size: false,
    }
}

/// Paths of §2.6 where a bad piece, a dropped source or a kill could let
/// a wrong byte through, as ops.
fn sources_path(rng: &mut Rng) -> Vec<Op> {
    let item = rng.below(ITEMS.len() as u64) as usize;
    let grab = plain_grab(item);
    match rng.below(4) {
        // A friend that corrupts everything, and a kill while it is
        // being caught.
        0 => vec![
            Op::Corrupting {
                source: Who::Bob,
                on: true,
            },
            Op::KillAfter {
                item,
                ms: rng.range(50, 400),
            },
            grab,
        ],
        // The download's own source sends two bad pieces: it is dropped
        // (bob finishes, or the download fails).
        1 => vec![Op::BadPiece {
            item,
            source: Who::Alice,
            at: vec![rng.below(1000), rng.below(1000), rng.below(1000)],
        }],
        // Killed mid-way, and the friend gone when it starts again.
        2 => vec![
            Op::Midway {
                item,
                after: rng.below(1000),
                then: Then::Kill,
            },
            Op::BobVanishes { item },
        ],
        // Both corrupt a piece of the same download.
        _ => vec![
            Op::Corrupting {
                source: Who::Alice,
                on: true,
            },
            Op::BadPiece {
                item,
                source: Who::Bob,
                at: vec![rng.below(1000)],
            },
            Op::Corrupting {
                source: Who::Alice,
                on: false,
            },
        ],
    }
}

/// One of the paths where a re-grab, a removal, the written record or a
/// failed sync could splice two versions, as ops.
fn dangerous_path(rng: &mut Rng) -> Vec<Op> {
    let item = rng.below(ITEMS.len() as u64) as usize;
    let grab = plain_grab(item);
    let replace = |rng: &mut Rng| Op::Replace {
        item,
        same_size: true,
        len: 0,
        seed: rng.next(),
    };
    let after = rng.range(100, 900);
    match rng.below(6) {
        // An unsized body that cannot prove its end is another, longer
        // version's beginning: never a whole file (rule 12).
        5 => vec![
            Op::OneShot(Mode::UnsizedLongerHold(Duration::from_millis(1000))),
            grab,
        ],
        // A learned ETag kept across a re-grab (an old node's Release has
        // none), and the file replaced at the same size meanwhile.
        0 => vec![
            Op::HideEtag(true),
            Op::Midway {
                item,
                after,
                then: Then::Pause,
            },
            replace(rng),
            grab,
        ],
        // Removed keeping its files, the file replaced, grabbed again: the
        // new row must not take the old `.part` or its record.
        1 => vec![
            Op::Midway {
                item,
                after,
                then: Then::Delete {
                    files: false,
                    regrab: false,
                },
            },
            replace(rng),
            grab,
        ],
        // Removed while running and grabbed again at once.
        2 => vec![Op::Midway {
            item,
            after,
            then: Then::Delete {
                files: rng.chance(50),
                regrab: true,
            },
        }],
        // A failed sync, then retries in the same boot.
        3 => vec![
            Op::Restart {
                crash: None,
                eio: Some(rng.range(1, 3)),
            },
            grab,
            Op::Retry {
                pick: rng.below(8) as usize,
                cli: rng.chance(50),
            },
            Op::Retry {
                pick: rng.below(8) as usize,
                cli: false,
            },
        ],
        // A peer that cuts every transfer and answers each resume earlier.
        _ => vec![
            Op::Fallback(Mode::EarlierStart {
                cut_at: 200_000,
                block: 64 * 1024,
            }),
            grab,
        ],
    }
}

/// One version of an item the peer served.
struct Version {
    data: Arc<Vec<u8>>,
    etag: String,
    sha256: Sha256,
}

impl Version {
    fn new(data: Vec<u8>, etag: String) -> Version {
        Version {
            sha256: jack::digest::sha256(&data),
            data: Arc::new(data),
            etag,
        }
    }
}

/// A row of the registry, as the simulation reads it.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    item: String,
    status: String,
    durable: u64,
    part: PathBuf,
    dest: PathBuf,
    etag: Option<String>,
    expected: u64,
    /// §2.6: the bytes proven against the source's digests, and the
    /// release's SHA-256 (hex).
    verified: u64,
    sha256: Option<String>,
    error: Option<String>,
}

/// `waiting`: retrying for room on the disk (`read_rows`), which only
/// more room ends.
fn settled(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "paused" | "waiting")
}

/// A file seen under a final name in `completed_dir`.
struct Final {
    item: String,
    version: usize,
    ino: u64,
    link: PathBuf,
    /// A delete with files of a row with this destination: jack may
    /// remove it (its content still never changes).
    may_vanish: bool,
}

/// Figures over every sequence.
#[derive(Default)]
struct Totals {
    sequences: u64,
    steps: u64,
    states: HashSet<u64>,
    /// §2.6 sequences, and what they saw (before their heal): pieces that
    /// failed, sources at two bad pieces (dropped), downloads completed
    /// against a digest, bytes bob sent, bobs that vanished.
    pieces: u64,
    pieces_failed: u64,
    dropped: u64,
    proven: u64,
    bob_bytes: u64,
    vanished: u64,
    /// Rounds that kept what was written past a failed piece, and
    /// sources cut for trickling.
    kept: u64,
    too_slow: u64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    log: Vec<String>,
    verbose: bool,
    peer: FakePeer,
    site: Site,
    node: Option<Node>,
    copy: bool,
    boot_id: String,
    versions: BTreeMap<String, Vec<Version>>,
    finals: BTreeMap<PathBuf, Final>,
    /// Destinations of rows deleted with their files: a final file that
    /// appears there after the delete was asked (a hand-off the removal
    /// let finish) may go too.
    deleted_dests: HashSet<PathBuf>,
    /// `.part` files whose bytes from this offset on are the simulated
    /// hardware's (a power cut's garbage, a failed sync's lost pages):
    /// nothing may vouch for them, and they need not be a version's.
    taint: HashMap<PathBuf, u64>,
    /// Events per item that may cost a whole file again.
    allowance: HashMap<String, u64>,
    unsettled: HashMap<i64, u32>,
    /// Bytes the peer sent per item while a disk limit was set, and what
    /// it had sent when the current limit was set: the injected ENOSPC is
    /// invisible to the free-space check (`statvfs`), so each resume from
    /// waiting for room asks the peer again (a quota does the same).
    exempt: HashMap<String, u64>,
    limit_from: Option<HashMap<String, u64>>,
    eio_seen: usize,
    /// The written record's step for this seed: 64 KiB, or every byte
    /// (then the record reaches the very end of a body).
    record_step: u64,
    /// What the last process wrote to stderr (for a failure's report).
    last_log: String,
    stubs: u64,
    links: u64,
    deadline: Instant,
    /// §2.6: the peer offers digests, its files are pieces, and `bob`
    /// (a friend of the downloader) holds the same files or others.
    pieces: bool,
    bob: Option<(FakePeer, Bob)>,
    bob_gone: bool,
    /// Rounds that kept bytes past a failed piece, and sources cut for
    /// trickling, in nodes now gone.
    kept: u64,
    too_slow: u64,
    /// The sources ever made to corrupt, and whether the simulated disk
    /// lost bytes (then a source may be blamed for the disk's fault).
    corrupters: HashSet<Who>,
    disk_faults: bool,
    /// The sources corrupting every answer now.
    corrupting: HashSet<Who>,
}

type Check = Result<(), String>;

impl Sim {
    fn new(seed: u64, verbose: bool, deadline: Instant) -> Sim {
        let mut rng = Rng(seed);
        // From the seed, as `max_rate` below (never both: a 40 MiB file
        // at 2 MiB/s outlasts a step).
        let pieces = seed % 3 == 1;
        let mut versions = BTreeMap::new();
        let mut files = Vec::new();
        for id in ITEMS {
            let len = sized(pieces, rng.range(64 * 1024, 1200 * 1024));
            let data = rng.bytes(len);
            files.push(fake_peer::File {
                id: id.into(),
                filename: format!("Film.{id}.2024.mkv"),
                data: data.clone(),
            });
            let v = Version::new(data, fake_peer::ETAG.to_string());
            versions.insert(id.to_string(), vec![v]);
        }
        let bob = pieces.then(|| {
            let kind = if rng.chance(70) {
                Bob::Same
            } else {
                Bob::Other
            };
            let held = files
                .iter()
                .map(|f| fake_peer::File {
                    id: f.id.clone(),
                    filename: f.filename.clone(),
                    data: bobs(kind, &f.data),
                })
                .collect();
            let bob = FakePeer::start(held, vec![], None);
            bob.offer_digests(true);
            (bob, kind)
        });
        let peer = FakePeer::start(files, vec![], None);
        peer.offer_digests(pieces);
        // One seed in three downloads under `[downloads] max_rate` (2 MiB/s
        // for all together): pauses, removals, kills and power cuts then
        // also reach workers waiting on the speed limit's bucket. From the
        // seed, not the generator, so the other seeds' sequences stay.
        let max_rate = if seed.is_multiple_of(3) {
            "max_rate = 2097152\n"
        } else {
            ""
        };
        let site = downloader(
            peer.addr,
            &format!(
                "max_attempts = 4\nidle_timeout_ms = 600\ndisk_full_retry_ms = 100\nmin_free_bytes = 0\n\
                 {max_rate}[qbittorrent]\nusername = \"sim\"\npassword = \"sim-password-0123\"\n"
            ),
        );
        if let Some((bob, _)) = &bob {
            let mut config = std::fs::read_to_string(site.config()).unwrap();
            config.push_str(&format!(
                "[[peers]]\nname = \"bob\"\nurl = \"http://{}\"\napi_key = \"{KEY}\"\n",
                bob.addr
            ));
            std::fs::write(site.config(), config).unwrap();
        }
        // A known port: `jack pause`/`resume` reach the running node.
        site.listen_on_a_free_port();
        let copy = rng.chance(25);
        let record_step = if rng.chance(30) { 1 } else { RECORD_STEP };
        let boot_id = format!("00000000-0000-4000-8000-{:012x}", seed & 0xffff_ffff_ffff);
        Sim {
            seed,
            rng,
            log: Vec::new(),
            verbose,
            peer,
            site,
            node: None,
            copy,
            boot_id,
            versions,
            finals: BTreeMap::new(),
            deleted_dests: HashSet::new(),
            taint: HashMap::new(),
            allowance: HashMap::new(),
            unsettled: HashMap::new(),
            exempt: HashMap::new(),
            limit_from: None,
            eio_seen: 0,
            record_step,
            last_log: String::new(),
            stubs: 0,
            links: 0,
            deadline,
            pieces,
            bob,
            bob_gone: false,
            kept: 0,
            too_slow: 0,
            corrupters: HashSet::new(),
            disk_faults: false,
            corrupting: HashSet::new(),
        }
    }

    fn note(&mut self, line: String) {
        if self.verbose {
            eprintln!("sim {}: {line}", self.seed);
        }
        self.log.push(line);
    }

    fn db(&self) -> PathBuf {
        self.site.path().join("data/jack.db")
    }
    fn incomplete(&self) -> PathBuf {
        self.site.path().join("data/incomplete")
    }
    fn completed(&self) -> PathBuf {
        self.site.path().join("data/completed")
    }
    fn limit_file(&self) -> PathBuf {
        self.site.path().join("disk-limit")
    }

    fn alive(&mut self) -> bool {
        self.node
            .as_mut()
            .is_some_and(|n| n.child.try_wait().ok().flatten().is_none())
    }

    /// Starts the node with these knobs (a crash at start-up leaves it
    /// dead: the next step starts it again).
    fn start(&mut self, crash: Option<&str>, eio: Option<u64>) {
        if let Some(dead) = self.node.take() {
            self.node_gone(&dead);
        }
        let config = self.site.config();
        let mut cmd = self
            .site
            .command(&["--config", config.to_str().unwrap(), "run"]);
        cmd.env("JACK_FAULT_CHECKPOINT_BYTES", CHECKPOINT.to_string())
            .env("JACK_FAULT_RECORD_STEP", self.record_step.to_string())
            .env("JACK_FAULT_DISK_LIMIT_FILE", self.limit_file())
            .env("JACK_FAULT_BOOT_ID", &self.boot_id)
            .env("JACK_FAULT_EXDEV", if self.copy { "1" } else { "0" })
            .env_remove("JACK_CRASH_AT")
            .env_remove("JACK_FAULT_SYNC_EIO_AT");
        if let Some(c) = crash {
            cmd.env("JACK_CRASH_AT", c);
        }
        if let Some(n) = eio {
            cmd.env("JACK_FAULT_SYNC_EIO_AT", n.to_string());
        }
        self.eio_seen = 0;
        self.node = match Node::try_spawn(cmd) {
            Ok(node) => Some(node),
            Err(log) => {
                self.last_log = log;
                None
            }
        };
        self.bump_all();
    }

    /// SIGTERM and wait (SIGKILL after 5 s), or reap a dead process.
    fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            if node.child.try_wait().ok().flatten().is_none() {
                node.signal("TERM");
                if node.wait_exit(Duration::from_secs(5)).is_none() {
                    self.log
                        .push("  (no exit 5 s after SIGTERM: killed)".into());
                }
            }
            self.node_gone(&node);
        }
    }

    fn kill(&mut self) {
        if let Some(mut node) = self.node.take() {
            let _ = node.child.kill();
            let _ = node.child.wait();
            self.node_gone(&node);
            self.last_log = node.log_text();
        }
    }

    fn bump(&mut self, item: &str) {
        // A source corrupting every answer costs its pieces again (two it
        // alone sent, and those it shared): a file more for each event.
        let n = if self.corrupting.is_empty() { 1 } else { 2 };
        *self.allowance.entry(item.to_string()).or_default() += n;
    }
    fn bump_all(&mut self) {
        for id in ITEMS {
            self.bump(id);
        }
    }

    fn rows(&self) -> Vec<Row> {
        read_rows(&self.db())
    }

    fn pick_row(&self, pick: usize) -> Option<Row> {
        let rows = self.rows();
        (!rows.is_empty()).then(|| rows[pick % rows.len()].clone())
    }

    fn api(&self, method: &str, path: &str) -> Option<u16> {
        let addr = self.node.as_ref()?.addr;
        call(addr, method, path)
    }

    /// `verb` (`pause`, `resume`, `retry`) on `row`: `jack <verb> ID`
    /// (through the running node, or the registry when none runs), or the
    /// status API.
    fn act(&self, row: &Row, verb: &str, cli: bool) -> Option<u16> {
        if cli {
            let out = self.site.run_cli(&[verb, &row.id.to_string()]);
            out.status.code().map(|c| c as u16)
        } else {
            self.api("POST", &format!("/api/v1/downloads/{}/{verb}", row.id))
        }
    }

    fn current(&self, item: &str) -> &Version {
        self.versions[item].last().unwrap()
    }

    fn grab(&mut self, item: usize, other_title: bool, stale_size: bool) -> String {
        let id = ITEMS[item];
        let size = if stale_size {
            self.versions[id][0].data.len()
        } else {
            self.current(id).data.len()
        };
        let title = if other_title {
            format!("Film.{id}.2024.PROPER")
        } else {
            format!("Film.{id}.2024")
        };
        self.grab_as(item, &title, size)
    }

    /// A grab that transfers: in a §2.6 seed the item's completed
    /// downloads are removed first (the owner's) and its files imported
    /// (moved away by the *arr), so a download runs even when the item was
    /// complete already.
    fn grab_run(&mut self, item: usize) -> String {
        if self.pieces {
            let done: Vec<Row> = self
                .rows()
                .into_iter()
                .filter(|r| r.item == ITEMS[item] && r.status == "completed")
                .collect();
            for row in done {
                self.delete(&row, false);
            }
            for (path, f) in self.finals.iter_mut() {
                if f.item == ITEMS[item] && std::fs::remove_file(path).is_ok() {
                    f.may_vanish = true;
                }
            }
        }
        self.grab(item, false, false)
    }

    fn grab_as(&mut self, item: usize, title: &str, size: usize) -> String {
        let id = ITEMS[item];
        self.stubs += 1;
        let name = format!("g{}.torrent", self.stubs);
        let stub = jack::stub::build("alice", id, title, size as u64);
        support::drop_stub(&self.site, &name, &stub);
        self.bump(id);
        name
    }

    /// Waits until the watch folder took stub `name` (or the node died).
    fn wait_taken(&mut self, name: &str) {
        let start = Instant::now();
        while start.elapsed() < SETTLE && self.alive() && !stub_seen(&self.db(), name) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every row is settled or the node is dead; false when
    /// the wait ran out.
    fn settle(&mut self, limit: Duration) -> bool {
        self.settle_until(limit, settled)
    }

    /// Waits (at most `limit`) until every row's status is `done`, or the
    /// process is dead; whether it came to that.
    fn settle_until(&mut self, limit: Duration, done: fn(&str) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if !self.alive() {
                return true;
            }
            if self.rows().iter().all(|r| done(&r.status)) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn replace(&mut self, item: usize, same_size: bool, len: u64, seed: u64) {
        let id = ITEMS[item];
        let len = if same_size {
            self.current(id).data.len() as u64
        } else {
            sized(self.pieces, len)
        };
        let data = Rng(seed).bytes(len);
        self.peer.replace(id, data.clone());
        if let Some((bob, kind)) = &self.bob {
            bob.replace(id, bobs(*kind, &data));
        }
        let etag = self.peer.etag(id).unwrap();
        let v = Version::new(data, etag);
        self.versions.get_mut(id).unwrap().push(v);
        self.bump(id);
    }

    /// Runs one op to its quiescent end.
    fn run(&mut self, op: &Op) -> Check {
        match op.clone() {
            Op::Grab {
                item,
                other_title,
                stale_size,
            } => {
                let name = self.grab(item, other_title, stale_size);
                self.wait_taken(&name);
            }
            Op::GrabPaused { item } => {
                let id = ITEMS[item];
                let stub = jack::stub::build(
                    "alice",
                    id,
                    &format!("Film.{id}.2024"),
                    self.current(id).data.len() as u64,
                );
                self.bump(id);
                let answer = self.node.as_ref().and_then(|n| add_paused(n.addr, &stub));
                self.note(format!("  added paused through the API: {answer:?}"));
                // The add is made a download off the request path.
                let start = Instant::now();
                while start.elapsed() < SETTLE && self.alive() && pending_adds(&self.db()) > 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Op::Retry { pick, cli } => {
                let Some(row) = self.pick_row(pick) else {
                    return Ok(());
                };
                self.bump(&row.item);
                let verb = if row.id % 2 == 0 { "retry" } else { "resume" };
                let answer = self.act(&row, verb, cli);
                self.note(format!(
                    "  {verb} row {} ({}): {answer:?}",
                    row.id, row.status
                ));
            }
            Op::Pause { pick, cli } => {
                let Some(row) = self.pick_row(pick) else {
                    return Ok(());
                };
                let answer = self.act(&row, "pause", cli);
                self.note(format!(
                    "  pause row {} ({}): {answer:?}",
                    row.id, row.status
                ));
            }
            Op::Delete { pick, delete_files } => {
                let Some(row) = self.pick_row(pick) else {
                    return Ok(());
                };
                self.delete(&row, delete_files);
            }
            Op::Midway { item, after, then } => self.midway(item, after, then),
            Op::Replace {
                item,
                same_size,
                len,
                seed,
            } => self.replace(item, same_size, len, seed),
            Op::HideEtag(hide) => self.peer.hide_etag_in_release(hide),
            Op::OneShot(mode) => {
                if matches!(mode, Mode::UnsizedLongerHold(_)) {
                    // Another version's bytes under no digest: alice's.
                    self.corrupters.insert(Who::Alice);
                }
                self.peer.push(self.stretch(mode));
                self.bump_all();
            }
            Op::Fallback(mode) => {
                self.corrupting.remove(&Who::Alice);
                self.peer.set_fallback(self.stretch(mode));
                self.bump_all();
            }
            Op::Restart { crash, eio } => {
                self.stop();
                self.start(crash.as_deref(), eio);
            }
            Op::KillAfter { item, ms } => {
                let ms = stretched(self.pieces, ms, 4);
                self.grab_run(item);
                std::thread::sleep(Duration::from_millis(ms));
                self.kill();
                self.check("after kill -9")?;
                self.start(None, None);
            }
            Op::PowerCut { item, ms } => {
                let ms = stretched(self.pieces, ms, 4);
                self.disk_faults = true;
                self.grab_run(item);
                std::thread::sleep(Duration::from_millis(ms));
                self.kill();
                self.check("after the power cut, before restart")?;
                self.power_cut();
                self.start(None, None);
            }
            Op::DiskLimit(limit) => {
                self.set_disk_limit(limit.map(|n| stretched(self.pieces, n, 30)));
                self.bump_all();
            }
            Op::BadPiece { item, source, at } => {
                let id = ITEMS[item];
                let size = self.current(id).data.len() as u64;
                let Some(peer) = self.source(source) else {
                    return Ok(());
                };
                for a in at {
                    peer.push(Mode::Corrupt(size * a / 1000));
                }
                self.corrupters.insert(source);
                let name = self.grab_run(item);
                self.wait_taken(&name);
            }
            Op::Corrupting { source, on } => {
                let Some(peer) = self.source(source) else {
                    return Ok(());
                };
                peer.set_fallback(if on { Mode::CorruptFirst } else { Mode::Honest });
                if on {
                    self.corrupters.insert(source);
                    self.corrupting.insert(source);
                } else {
                    self.corrupting.remove(&source);
                }
                self.bump_all();
            }
            Op::BobVanishes { item } => self.bob_vanishes(item),
            Op::BobTrickles { item } => self.bob_trickles(item),
        }
        Ok(())
    }

    /// The fake peer behind `who`, when it is there.
    fn source(&self, who: Who) -> Option<&FakePeer> {
        match who {
            Who::Alice => Some(&self.peer),
            Who::Bob => self.bob.as_ref().map(|(b, _)| b).filter(|_| !self.bob_gone),
        }
    }

    /// A mode's offsets stretched over the files of a §2.6 seed.
    fn stretch(&self, mode: Mode) -> Mode {
        let s = |n| stretched(self.pieces, n, 20);
        match mode {
            Mode::Cut(n) => Mode::Cut(s(n)),
            Mode::Stall(n, d) => Mode::Stall(s(n), d),
            Mode::Subset(n) => Mode::Subset(s(n)),
            other => other,
        }
    }

    /// A grab of `item`; bob goes away once it sends (or after 3 s).
    fn bob_vanishes(&mut self, item: usize) {
        if self.bob.is_none() || self.bob_gone {
            return;
        }
        let name = self.grab_run(item);
        self.wait_taken(&name);
        let (bob, _) = self.bob.as_ref().unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3)
            && bob.record.active.load(std::sync::atomic::Ordering::SeqCst) == 0
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let sending = bob.record.active.load(std::sync::atomic::Ordering::SeqCst);
        bob.vanish();
        self.bob_gone = true;
        self.bump_all();
        self.note(format!("  bob vanished ({sending} answers under way)"));
    }

    fn bob_trickles(&mut self, item: usize) {
        let Some((bob, _)) = self.bob.as_ref().filter(|_| !self.bob_gone) else {
            return;
        };
        bob.set_fallback(Mode::Trickle(8 * 1024));
        self.corrupting.remove(&Who::Bob);
        let name = self.grab_run(item);
        self.wait_taken(&name);
        // Long enough for the cut (3 s without 64 KiB while the download's
        // own source waits), short of the step's settle.
        std::thread::sleep(Duration::from_secs(5));
        if let Some((bob, _)) = self.bob.as_ref() {
            bob.set_fallback(Mode::Honest);
        }
        self.note("  bob trickled for 5 s".into());
    }

    fn set_disk_limit(&mut self, limit: Option<u64>) {
        let text = limit.map(|n| n.to_string()).unwrap_or_default();
        std::fs::write(self.limit_file(), text).unwrap();
        if let Some(from) = self.limit_from.take() {
            for (id, n) in from {
                *self.exempt.entry(id.clone()).or_default() += self.sent(&id) - n;
            }
        }
        if limit.is_some() {
            let now = ITEMS.map(|id| (id.to_string(), self.sent(id)));
            self.limit_from = Some(now.into_iter().collect());
        }
    }

    fn delete(&mut self, row: &Row, delete_files: bool) {
        let path = format!("/api/v1/downloads/{}?delete_files={delete_files}", row.id);
        let answer = self.api("DELETE", &path);
        if delete_files {
            self.deleted_dests.insert(row.dest.clone());
            if let Some(f) = self.finals.get_mut(&row.dest) {
                f.may_vanish = true;
            }
        }
        self.note(format!(
            "  delete row {} ({}): {answer:?}",
            row.id, row.status
        ));
    }

    fn midway(&mut self, item: usize, after: u64, then: Then) {
        let id = ITEMS[item];
        self.peer
            .push(Mode::Stall(after, Duration::from_millis(2500)));
        let name = self.grab_run(item);
        self.wait_taken(&name);
        let start = Instant::now();
        let running = loop {
            let rows = self.rows();
            let row = rows
                .iter()
                .find(|r| r.item == id && r.status == "downloading")
                .cloned();
            if let Some(row) = row
                && self
                    .peer
                    .record
                    .active
                    .load(std::sync::atomic::Ordering::SeqCst)
                    > 0
            {
                break Some(row);
            }
            if start.elapsed() > Duration::from_secs(3) || !self.alive() {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.peer.clear_script();
        let Some(row) = running else {
            self.note("  (no transfer ran)".into());
            return;
        };
        match then {
            Then::Pause => {
                let answer = self.api("POST", &format!("/api/v1/downloads/{}/pause", row.id));
                self.note(format!("  pause running row {}: {answer:?}", row.id));
            }
            Then::PauseResume => {
                let paused = self.api("POST", &format!("/api/v1/downloads/{}/pause", row.id));
                self.bump(&row.item);
                let resumed = self.api("POST", &format!("/api/v1/downloads/{}/resume", row.id));
                self.note(format!(
                    "  pause then resume running row {}: {paused:?} {resumed:?}",
                    row.id
                ));
            }
            Then::Delete { files, regrab } => {
                self.delete(&row, files);
                if regrab {
                    let name = self.grab(item, false, false);
                    self.wait_taken(&name);
                }
            }
            Then::Kill => {
                self.kill();
                self.note(format!("  killed while row {} ran", row.id));
            }
            Then::Replace(same) => {
                let len = self.rng.range(64 * 1024, 1200 * 1024);
                let seed = self.rng.next();
                self.replace(item, same, len, seed);
                self.note(format!(
                    "  replaced {id} (same size: {same}) while row {} ran",
                    row.id
                ));
            }
        }
    }

    /// What a power cut may leave: every byte past a row's durable count
    /// garbled or cut, the written records garbled, another boot.
    fn power_cut(&mut self) {
        for row in self.rows() {
            let Ok(meta) = std::fs::metadata(&row.part) else {
                continue;
            };
            let len = meta.len();
            self.taint.insert(row.part.clone(), row.durable);
            if len > row.durable {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&row.part)
                    .unwrap();
                if self.rng.chance(50) {
                    f.set_len(self.rng.range(row.durable, len)).unwrap();
                } else {
                    use std::os::unix::fs::FileExt;
                    let from = self.rng.range(row.durable, len - 1);
                    let junk = self.rng.bytes((len - from).min(100_000));
                    f.write_all_at(&junk, from).unwrap();
                }
            }
            let record = sidecar(&row.part);
            if let Ok(text) = std::fs::read(&record) {
                let junk = self.rng.bytes(text.len() as u64);
                std::fs::write(&record, junk).unwrap();
            }
        }
        self.boot_id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            self.rng.next() as u32,
            self.seed & 0xffff_ffff_ffff
        );
    }

    /// Every invariant, now.
    fn check(&mut self, phase: &str) -> Check {
        let alive = self.alive();
        let rows = self.rows();
        self.watch_eio(&rows);
        self.check_parts(&rows, alive)
            .and_then(|()| self.check_proofs(&rows, alive))
            .and_then(|()| self.check_rows(&rows, alive))
            .and_then(|()| self.check_finals())
            .and_then(|()| self.check_digests(&rows))
            .and_then(|()| self.check_sources())
            .and_then(|()| self.check_bytes())
            .map_err(|e| format!("{phase}: {e}"))
    }

    /// A failed sync zeroed the bytes since the last checkpoint of some
    /// `.part`: from each row's durable count on, they are the disk's.
    fn watch_eio(&mut self, rows: &[Row]) {
        let fired = self.node.as_ref().map_or(0, eio_lines);
        self.taint_after_eio(fired, rows);
    }

    /// The node whose log says `fired` failed syncs is going away: what
    /// they zeroed stays the disk's, and the next node counts from 0.
    fn node_gone(&mut self, node: &Node) {
        // The reader thread drains the pipe after the exit.
        std::thread::sleep(Duration::from_millis(100));
        self.kept += lines_saying(node, KEPT);
        self.too_slow += lines_saying(node, TOO_SLOW);
        let rows = self.rows();
        self.taint_after_eio(eio_lines(node), &rows);
        self.eio_seen = 0;
    }

    fn taint_after_eio(&mut self, fired: usize, rows: &[Row]) {
        if fired > self.eio_seen {
            self.eio_seen = fired;
            self.disk_faults = true;
            for r in rows {
                self.taint.entry(r.part.clone()).or_insert(r.durable);
            }
            self.bump_all();
        }
    }

    /// Every `.part` in `incomplete_dir` is a prefix of a version served
    /// (§2.6 seeds: past its row's proven bytes, but for a byte a source
    /// flipped and, past the durable ones, holes between parts written
    /// ahead).
    fn check_parts(&self, rows: &[Row], alive: bool) -> Check {
        for part in part_files(&self.incomplete()) {
            let Ok(data) = std::fs::read(&part) else {
                continue;
            };
            let end = self
                .taint
                .get(&part)
                .map_or(data.len(), |&t| (t as usize).min(data.len()));
            let owner = rows.iter().find(|r| r.part == part);
            let item = owner.map(|r| r.item.as_str());
            // A running row's proof may be taken back under the read.
            let exact = owner
                .filter(|r| !alive || matches!(r.status.as_str(), "failed" | "paused"))
                .map_or(0, |r| r.verified);
            let durable = owner.map_or(0, |r| r.durable);
            if !self.begins(item, &data[..end], exact, durable)
                && !self.longer_beginning(item, &data[..end])
            {
                return Err(format!(
                    "{} ({} bytes, rows {:?}) is not a prefix of any version served{}",
                    part.display(),
                    data.len(),
                    rows.iter()
                        .filter(|r| r.part == part)
                        .map(|r| r.id)
                        .collect::<Vec<_>>(),
                    self.difference(owner.map(|r| r.item.as_str()), &data[..end]),
                ));
            }
        }
        Ok(())
    }

    /// A row's durable count is no longer than its `.part`, and those
    /// bytes are a version's.
    fn check_rows(&mut self, rows: &[Row], alive: bool) -> Check {
        for r in rows {
            if r.status == "completed" || (alive && !settled(&r.status)) {
                continue;
            }
            // Stopped inside a hand-off: the `.part` is gone and the final
            // file carries every durable byte (start-up finishes it).
            let handing_off =
                !r.part.exists() && std::fs::metadata(&r.dest).is_ok_and(|m| m.len() == r.durable);
            if handing_off {
                continue;
            }
            let data = std::fs::read(&r.part).unwrap_or_default();
            if r.durable > data.len() as u64 {
                return Err(format!(
                    "row {} ({}) claims {} durable bytes, its .part {} has {}",
                    r.id,
                    r.status,
                    r.durable,
                    r.part.display(),
                    data.len()
                ));
            }
            let durable = &data[..r.durable as usize];
            // (The proven bytes are held exactly in `check_proofs`.)
            if !self.begins(Some(&r.item), durable, 0, r.durable)
                && !self.longer_beginning(Some(&r.item), durable)
            {
                return Err(format!(
                    "row {} ({}): its {} durable bytes are no version of {}{}",
                    r.id,
                    r.status,
                    r.durable,
                    r.item,
                    self.difference(Some(&r.item), durable)
                ));
            }
            if self.taint.get(&r.part).is_some_and(|&t| r.durable > t) {
                self.taint.remove(&r.part);
            }
        }
        for r in rows {
            if let Some(&t) = self.taint.get(&r.part)
                && std::fs::metadata(&r.part).map_or(true, |m| m.len() <= t)
            {
                self.taint.remove(&r.part);
            }
        }
        Ok(())
    }

    /// §2.6, from the registry: a row's proof never passes its durable
    /// count and ends on a piece boundary (or the file's end); its SHA-256
    /// is a version's (the one its ETag names, when it names one); and the
    /// proven bytes of its `.part` are that version's, byte for byte.
    fn check_proofs(&self, rows: &[Row], alive: bool) -> Check {
        for r in rows {
            let what = format!("row {} ({}, {})", r.id, r.item, r.status);
            if r.verified > r.durable {
                return Err(format!(
                    "{what} proves {} bytes, more than its {} durable ones",
                    r.verified, r.durable
                ));
            }
            if r.verified % PIECE_SIZE != 0 && r.verified != r.expected {
                return Err(format!(
                    "{what} proves {} bytes: neither a piece boundary nor the end ({})",
                    r.verified, r.expected
                ));
            }
            let Some(hex) = &r.sha256 else {
                if r.verified > 0 {
                    return Err(format!(
                        "{what} proves {} bytes without a digest",
                        r.verified
                    ));
                }
                continue;
            };
            let Some((i, v)) = self.by_digest(&r.item, hex) else {
                return Err(format!("{what} expects SHA-256 {hex}: no version's"));
            };
            let named = r
                .etag
                .as_ref()
                .and_then(|e| self.versions[&r.item].iter().position(|v| &v.etag == e));
            if let Some(n) = named.filter(|&n| self.versions[&r.item][n].sha256 != v.sha256) {
                return Err(format!(
                    "{what} expects v{} by its ETag {:?} and v{} by its SHA-256",
                    n + 1,
                    r.etag,
                    i + 1
                ));
            }
            if r.verified == 0 || r.status == "completed" {
                continue;
            }
            // Gone: handed off (its file is checked as a final one).
            let Ok(data) = std::fs::read(&r.part) else {
                continue;
            };
            let proven = r.verified as usize;
            if data.get(..proven) == Some(&v.data[..proven]) {
                continue;
            }
            // A running row may have let its proof go under the read: only
            // one that still claims it is held to it.
            let still = self.rows().into_iter().find(|x| x.id == r.id);
            if alive
                && still.is_none_or(|x| {
                    (x.verified, &x.sha256, x.durable) != (r.verified, &r.sha256, r.durable)
                })
            {
                continue;
            }
            return Err(format!(
                "{what}: its {} proven bytes are not v{} of {} byte for byte ({}-byte .part){}",
                r.verified,
                i + 1,
                r.item,
                data.len(),
                self.difference(Some(&r.item), &data[..proven.min(data.len())])
            ));
        }
        Ok(())
    }

    /// §2.6: a completed row's file is the version of its SHA-256, and
    /// the digest kept under a handed-off file's identity is its own.
    fn check_digests(&self, rows: &[Row]) -> Check {
        for r in rows.iter().filter(|r| r.status == "completed") {
            let (Some(hex), Some(f)) = (&r.sha256, self.finals.get(&r.dest)) else {
                continue;
            };
            let v = &self.versions[&f.item][f.version];
            if r.dest.exists() && jack::digest::hex(&v.sha256) != *hex {
                return Err(format!(
                    "row {} completed expecting SHA-256 {hex}; its file {} is {} v{} ({})",
                    r.id,
                    r.dest.display(),
                    f.item,
                    f.version + 1,
                    jack::digest::hex(&v.sha256)
                ));
            }
        }
        let Some(conn) = open_db(&self.db()) else {
            return Ok(());
        };
        let Ok(mut stmt) = conn.prepare("SELECT dev, ino, size, mtime_ns, sha256 FROM digests")
        else {
            return Ok(());
        };
        let kept: Vec<(jack::db::FileId, Vec<u8>)> = stmt
            .query_map([], |r| {
                let id = jack::db::FileId {
                    dev: r.get::<_, i64>(0)? as u64,
                    ino: r.get::<_, i64>(1)? as u64,
                    size: r.get::<_, i64>(2)? as u64,
                    mtime_ns: r.get(3)?,
                };
                Ok((id, r.get(4)?))
            })
            .map(|it| it.filter_map(Result::ok).collect())
            .unwrap_or_default();
        for (path, f) in &self.finals {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            let id = jack::db::FileId::of(&meta);
            let v = &self.versions[&f.item][f.version];
            if let Some((_, d)) = kept.iter().find(|(k, _)| *k == id)
                && d[..] != v.sha256[..]
            {
                return Err(format!(
                    "the digest kept for {} is not its own ({} v{})",
                    path.display(),
                    f.item,
                    f.version + 1
                ));
            }
        }
        Ok(())
    }

    /// §2.6: bob never sends a byte of a file with another digest; a
    /// source is blamed only for pieces it alone sent (each an event), and
    /// only a source that was made to corrupt (or a disk that lost
    /// bytes); one dropped for a download sent two such pieces.
    fn check_sources(&self) -> Check {
        if let Some((bob, Bob::Other)) = &self.bob {
            let asked = bob.file_requests();
            if !asked.is_empty() {
                return Err(format!(
                    "bob holds files with another digest and was asked for bytes: {:?}",
                    asked.iter().map(|(id, r, _)| (id, r)).collect::<Vec<_>>()
                ));
            }
        }
        let Some(conn) = open_db(&self.db()) else {
            return Ok(());
        };
        let lone = |id: i64, peer: &str| -> u32 {
            conn.query_row(
                "SELECT count(*) FROM download_events WHERE download_id = ?1 \
                 AND kind = 'piece_failed' AND (detail LIKE '%sent by ' || ?2 || ';%' \
                 OR (detail LIKE 'the whole file failed%' AND detail LIKE '%' || ?2 || '%'))",
                rusqlite::params![id, peer],
                |r| r.get(0),
            )
            .unwrap_or(0)
        };
        let blamed: Vec<(i64, String, u32)> = conn
            .prepare("SELECT download_id, peer, bad_pieces FROM download_sources")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map(|it| it.filter_map(Result::ok).collect())
            })
            .unwrap_or_default();
        for (id, peer, n) in blamed.into_iter().filter(|b| b.2 > 0) {
            let who = if peer == "bob" { Who::Bob } else { Who::Alice };
            if !self.corrupters.contains(&who) && !self.disk_faults {
                return Err(format!(
                    "row {id}: {peer} blamed for {n} bad pieces, though it never sent a flipped byte"
                ));
            }
            let events = lone(id, &peer);
            if n > events {
                return Err(format!(
                    "row {id}: {peer} counts {n} bad pieces, {events} events name it alone"
                ));
            }
        }
        let dropped: Vec<(i64, String)> = conn
            .prepare(
                "SELECT id, error FROM downloads WHERE status = 'failed' \
                 AND error LIKE '%pieces that failed%'",
            )
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map(|it| it.filter_map(Result::ok).collect())
            })
            .unwrap_or_default();
        for (id, error) in dropped {
            for why in error.split("; ") {
                let Some((peer, rest)) = why.split_once(" sent ") else {
                    continue;
                };
                let n: u32 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let events = lone(id, peer.trim());
                if n < 2 || events < 2 {
                    return Err(format!(
                        "row {id} failed dropping {peer} with {n} bad pieces ({events} events name it alone): {error}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every final file is one version, byte for byte, and never changes.
    fn check_finals(&mut self) -> Check {
        for path in walk(&self.completed()) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(".jack-") && name.ends_with(".partial~") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let data = std::fs::read(&path).unwrap_or_default();
            if let Some(f) = self.finals.get(&path) {
                // A final file the owner deleted with its download: the
                // name may carry a later hand-off (checked below as new;
                // the old file is still checked by its hard link).
                if meta.ino() != f.ino && f.may_vanish {
                    let old = self.finals.remove(&path).unwrap();
                    self.links += 1;
                    let moved = PathBuf::from(format!("{}-was-{}", path.display(), self.links));
                    self.finals.insert(moved, old);
                } else if meta.ino() != f.ino {
                    return Err(format!(
                        "{} is another file than the one handed off",
                        path.display()
                    ));
                } else {
                    if data != *self.versions[&f.item][f.version].data {
                        return Err(format!("{} changed after its hand-off", path.display()));
                    }
                    continue;
                }
            }
            let Some((item, version)) = self.whole(&data) else {
                return Err(format!(
                    "{} ({} bytes) equals no version served{}",
                    path.display(),
                    data.len(),
                    self.difference(None, &data)
                ));
            };
            self.links += 1;
            let link = self.site.path().join(format!("imported-{}", self.links));
            std::fs::hard_link(&path, &link).unwrap();
            let f = Final {
                item,
                version,
                ino: meta.ino(),
                link,
                may_vanish: self.deleted_dests.contains(&path),
            };
            self.finals.insert(path, f);
        }
        for (path, f) in &self.finals {
            let data = std::fs::read(&f.link).unwrap();
            if data != *self.versions[&f.item][f.version].data {
                return Err(format!(
                    "{} (by its hard link) changed after its hand-off",
                    path.display()
                ));
            }
            if !path.exists() && !f.may_vanish {
                return Err(format!(
                    "{} vanished though no delete with files asked",
                    path.display()
                ));
            }
        }
        Ok(())
    }

    /// Body bytes of `id` both sources sent.
    fn sent(&self, id: &str) -> u64 {
        self.peer.bytes_sent(id) + self.bob.as_ref().map_or(0, |(b, _)| b.bytes_sent(id))
    }

    /// Bytes the peer sent per item stay within the allowance.
    fn check_bytes(&self) -> Check {
        for id in ITEMS {
            let size = self.versions[id]
                .iter()
                .map(|v| v.data.len() as u64)
                .max()
                .unwrap();
            let events = self.allowance.get(id).copied().unwrap_or(0);
            let budget = (BASE_MULTIPLE + events) * size;
            let now = self.sent(id);
            let during = self.limit_from.as_ref().map_or(0, |f| now - f[id]);
            let sent = now - during - self.exempt.get(id).copied().unwrap_or(0);
            if sent > budget {
                return Err(format!(
                    "the peer sent {sent} bytes of {id} (besides those under a disk limit; {size} bytes, {events} events): more than {budget}"
                ));
            }
        }
        Ok(())
    }

    /// (item, version) of which `bytes` is a prefix (of item `only` when
    /// given).
    fn matching(&self, only: Option<&str>, bytes: &[u8]) -> Option<(String, usize)> {
        self.versions
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
            .flat_map(|(id, vs)| vs.iter().enumerate().map(move |(i, v)| (id, i, v)))
            .find(|(_, _, v)| v.data.starts_with(bytes))
            .map(|(id, i, _)| (id.clone(), i))
    }

    /// Whether `bytes` begins the longer version that `UnsizedLongerHold`
    /// serves (the bytes of a version XOR 0x5A, and one more): a version
    /// the peer served too, though never whole, so never a whole file.
    fn longer_beginning(&self, only: Option<&str>, bytes: &[u8]) -> bool {
        self.versions
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
            .flat_map(|(_, vs)| vs.iter())
            .any(|v| {
                bytes.len() <= v.data.len() + 1
                    && bytes
                        .iter()
                        .enumerate()
                        .all(|(i, b)| v.data.get(i).map_or(0x5A, |d| d ^ 0x5A) == *b)
            })
    }

    /// Whether `bytes` begins a version (of item `only` when given): the
    /// first `exact` bytes exactly; past them, in a §2.6 seed, a byte a
    /// source flipped (not yet checked) and, past `durable`, holes (zeros
    /// between the parts several sources write ahead) are let through.
    fn begins(&self, only: Option<&str>, bytes: &[u8], exact: u64, durable: u64) -> bool {
        if self.matching(only, bytes).is_some() {
            return true;
        }
        if !self.pieces {
            return false;
        }
        let loose = Loose {
            flips: !self.corrupters.is_empty(),
            holes_from: if self.bob.is_some() {
                durable as usize
            } else {
                usize::MAX
            },
        };
        self.versions
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
            .flat_map(|(_, vs)| vs.iter())
            .any(|v| fits(&v.data, bytes, exact as usize, loose))
    }

    /// The version of `item` whose SHA-256 is `hex`.
    fn by_digest(&self, item: &str, hex: &str) -> Option<(usize, &Version)> {
        self.versions[item]
            .iter()
            .enumerate()
            .find(|(_, v)| jack::digest::hex(&v.sha256) == hex)
    }

    fn whole(&self, bytes: &[u8]) -> Option<(String, usize)> {
        self.matching(None, bytes)
            .filter(|(id, i)| self.versions[id][*i].data.len() == bytes.len())
    }

    /// Where `bytes` leaves the version it follows longest.
    fn difference(&self, only: Option<&str>, bytes: &[u8]) -> String {
        let best = self
            .versions
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
            .flat_map(|(id, vs)| vs.iter().enumerate().map(move |(i, v)| (id, i, v)))
            .map(|(id, i, v)| {
                let same = v.data.iter().zip(bytes).take_while(|(a, b)| a == b).count();
                (same, id, i, v)
            })
            .max_by_key(|t| t.0);
        match best {
            Some((same, id, i, v)) => {
                let other = self
                    .versions
                    .iter()
                    .flat_map(|(oid, vs)| vs.iter().enumerate().map(move |(oi, ov)| (oid, oi, ov)))
                    .find(|(_, _, ov)| {
                        bytes.len() > same && ov.data.get(same..bytes.len()) == Some(&bytes[same..])
                    })
                    .map(|(oid, oi, _)| format!(", the rest is {oid} v{}", oi + 1))
                    .unwrap_or_default();
                format!(
                    " (follows {id} v{} [{} bytes, etag {}] for {same} bytes{other})",
                    i + 1,
                    v.data.len(),
                    v.etag
                )
            }
            None => String::new(),
        }
    }

    /// A hash of the abstract state: per row its status, its `.part`
    /// (none, empty, partial, whole, longer), its written record, durable
    /// against the `.part`, the item's versions and whether the Release
    /// and the row carry an ETag.
    fn state(&mut self, hide_etag: bool) -> u64 {
        let alive = self.alive();
        let mut parts: Vec<_> = self
            .rows()
            .iter()
            .map(|r| {
                let size = self.current(&r.item).data.len() as u64;
                let len = std::fs::metadata(&r.part).ok().map(|m| m.len());
                let part = match len {
                    None => 0,
                    Some(0) => 1,
                    Some(n) if n < size => 2,
                    Some(n) if n == size => 3,
                    Some(_) => 4,
                };
                let durable = len.map(|n| r.durable.cmp(&n));
                (
                    r.status.clone(),
                    part,
                    sidecar(&r.part).exists(),
                    durable,
                    self.versions[&r.item].len().min(3),
                    r.etag.is_some(),
                    // §2.6: nothing, some or every durable byte proven.
                    r.sha256.is_some(),
                    r.verified.cmp(&r.durable),
                    r.verified == 0,
                )
            })
            .collect();
        parts.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (parts, alive, hide_etag).hash(&mut h);
        h.finish()
    }

    /// Liveness: a row that stays unsettled step after step never ends.
    fn track_unsettled(&mut self) -> Check {
        let alive = self.alive();
        let mut rows: Vec<Row> = self
            .rows()
            .into_iter()
            .filter(|r| alive && !settled(&r.status))
            .collect();
        // §2.6 seeds: a row waiting for room is `downloading` during each
        // try (its unproven bytes read back, its sources looked for): one
        // seen settled within a second is not stuck.
        let start = Instant::now();
        while self.pieces && !rows.is_empty() && start.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.rows();
            rows.retain(|r| now.iter().any(|x| x.id == r.id && !settled(&x.status)));
        }
        let mut next = HashMap::new();
        for r in &rows {
            let n = self.unsettled.get(&r.id).copied().unwrap_or(0) + 1;
            if n >= UNSETTLED_STEPS {
                // What the node says of it (its sources, its error).
                let said = self
                    .node
                    .as_ref()
                    .and_then(|node| {
                        exchange(node.addr, "GET", &format!("/api/v1/downloads/{}", r.id))
                    })
                    .map(|raw| {
                        let text = String::from_utf8_lossy(&raw).into_owned();
                        text.split("\r\n\r\n").nth(1).unwrap_or(&text).to_string()
                    })
                    .unwrap_or_default();
                return Err(format!(
                    "row {} ({}) still {} after {n} steps of {} s: the download does not end (peer sent {} bytes of {}); the node says: {said}",
                    r.id,
                    r.item,
                    r.status,
                    SETTLE.as_secs(),
                    self.sent(&r.item),
                    r.item
                ));
            }
            next.insert(r.id, n);
        }
        self.unsettled = next;
        Ok(())
    }

    /// The whole sequence: `steps` ops, then the faults lifted and every
    /// failed row retried: each download must end.
    fn sequence(&mut self, totals: &Mutex<Totals>) -> Check {
        let steps = self.rng.range(8, 20);
        let ops = plan(&mut self.rng, self.copy, self.pieces, steps);
        let mut hide_etag = false;
        self.start(None, None);
        for (step, op) in ops.into_iter().enumerate() {
            if Instant::now() > self.deadline {
                self.note("(time is up: healing now)".into());
                break;
            }
            if !self.alive() {
                self.check("the process is dead")?;
                self.note(format!("{step}: start again (the process had died)"));
                self.start(None, None);
            }
            if let Op::HideEtag(h) = op {
                hide_etag = h;
            }
            self.note(format!("{step}: {op:?}"));
            self.run(&op)?;
            let quiet = self.settle(SETTLE);
            if !self.alive() {
                let crashed = self
                    .node
                    .as_ref()
                    .is_some_and(|n| n.log_text().contains("crash point"));
                self.note(format!(
                    "  the process died{}",
                    if crashed { " at its crash point" } else { "" }
                ));
            } else if !quiet {
                self.note("  not quiescent after the wait".into());
            }
            let rows: Vec<_> = self
                .rows()
                .iter()
                .map(|r| match (&r.error, r.status.as_str()) {
                    (Some(e), "failed") => {
                        format!("{}:{} {} {} ({e})", r.id, r.item, r.status, r.durable)
                    }
                    _ => format!("{}:{} {} {}", r.id, r.item, r.status, r.durable),
                })
                .collect();
            self.note(format!("  rows: {}", rows.join(", ")));
            self.check(&format!("step {step} ({op:?})"))?;
            self.track_unsettled()?;
            let s = self.state(hide_etag);
            let mut t = totals.lock().unwrap();
            t.steps += 1;
            t.states.insert(s);
        }
        if self.pieces {
            let (failed, dropped, proven) = self.piece_figures();
            let mut t = totals.lock().unwrap();
            t.pieces += 1;
            t.pieces_failed += failed;
            t.dropped += dropped;
            t.proven += proven;
            t.bob_bytes += ITEMS
                .iter()
                .map(|id| self.bob.as_ref().map_or(0, |(b, _)| b.bytes_sent(id)))
                .sum::<u64>();
            t.vanished += u64::from(self.bob_gone);
            t.kept += self.kept + self.node.as_ref().map_or(0, |n| lines_saying(n, KEPT));
            t.too_slow +=
                self.too_slow + self.node.as_ref().map_or(0, |n| lines_saying(n, TOO_SLOW));
        }
        self.heal()
    }

    /// Pieces that failed, sources at two bad pieces, and downloads
    /// completed against a digest, in the registry now.
    fn piece_figures(&self) -> (u64, u64, u64) {
        let Some(conn) = open_db(&self.db()) else {
            return (0, 0, 0);
        };
        let count = |sql: &str| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_or(0, |n| n as u64)
        };
        (
            count("SELECT count(*) FROM download_events WHERE kind = 'piece_failed'"),
            count("SELECT count(*) FROM download_sources WHERE bad_pieces >= 2"),
            count(
                "SELECT count(*) FROM downloads WHERE status = 'completed' AND sha256 IS NOT NULL",
            ),
        )
    }

    fn heal(&mut self) -> Check {
        self.note("heal: room on disk, an honest peer, no knobs, failed rows retried".into());
        self.set_disk_limit(None);
        self.peer.set_fallback(Mode::Honest);
        self.peer.clear_script();
        if let Some((bob, _)) = &self.bob {
            bob.set_fallback(Mode::Honest);
            bob.clear_script();
        }
        self.corrupting.clear();
        self.stop();
        self.check("heal, stopped")?;
        self.start(None, None);
        self.settle(Duration::from_secs(20));
        for r in self.rows() {
            if matches!(r.status.as_str(), "failed" | "paused") {
                self.bump(&r.item);
                let answer = self.api("POST", &format!("/api/v1/downloads/{}/resume", r.id));
                self.note(format!("  retry row {} ({}): {answer:?}", r.id, r.status));
            }
        }
        // With room on the disk again a waiting download resumes: only an
        // end counts here.
        let ended = |s: &str| matches!(s, "completed" | "failed" | "paused");
        let quiet = self.settle_until(Duration::from_secs(30), ended);
        self.check("heal")?;
        let open: Vec<_> = self
            .rows()
            .into_iter()
            .filter(|r| !matches!(r.status.as_str(), "completed" | "failed" | "paused"))
            .map(|r| {
                format!(
                    "row {} {} ({} bytes sent of {})",
                    r.id,
                    r.status,
                    self.sent(&r.item),
                    r.item
                )
            })
            .collect();
        if !quiet || !open.is_empty() || !self.alive() {
            // What the node says of each open row (its error, its events).
            let said: Vec<String> = self
                .rows()
                .into_iter()
                .filter(|r| !matches!(r.status.as_str(), "completed" | "failed" | "paused"))
                .filter_map(|r| {
                    let addr = self.node.as_ref()?.addr;
                    let raw = exchange(addr, "GET", &format!("/api/v1/downloads/{}", r.id))?;
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    Some(text.split("\r\n\r\n").nth(1).unwrap_or(&text).to_string())
                })
                .collect();
            return Err(format!(
                "heal: downloads that did not end with an honest peer in 30 s: {open:?} (alive: {}); the node says: {said:?}",
                self.alive()
            ));
        }
        self.stop();
        Ok(())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A file length drawn from 64..1200 KiB, as a §2.6 seed serves it: 16
/// MiB and 1.25..23.4 MiB more (two or three pieces).
fn sized(pieces: bool, len: u64) -> u64 {
    if pieces { PIECE_SIZE + len * 20 } else { len }
}

/// An offset, length or wait drawn for the small files, stretched over the
/// files of a §2.6 seed.
fn stretched(pieces: bool, n: u64, by: u64) -> u64 {
    if pieces { n * by } else { n }
}

/// What bob holds of a file alice serves: the same bytes, or the same
/// size with another digest (a byte in the middle of another value).
fn bobs(kind: Bob, data: &[u8]) -> Vec<u8> {
    let mut held = data.to_vec();
    if kind == Bob::Other {
        held[data.len() / 2] ^= 0xFF;
    }
    held
}

/// What a §2.6 seed lets through past a `.part`'s proven bytes.
#[derive(Clone, Copy)]
struct Loose {
    /// A byte a source flipped (`^ 0x01`), not yet checked.
    flips: bool,
    /// From this offset on: zeros, the holes between parts written ahead.
    holes_from: usize,
}

/// Whether `bytes` is the beginning of `v`: exactly up to `exact`, then
/// byte for byte but for what `loose` lets through.
fn fits(v: &[u8], bytes: &[u8], exact: usize, loose: Loose) -> bool {
    if bytes.len() > v.len() {
        return false;
    }
    let exact = exact.min(bytes.len());
    if bytes[..exact] != v[..exact] {
        return false;
    }
    let mut at = exact;
    for b in bytes[exact..].chunks(64 * 1024) {
        let d = &v[at..at + b.len()];
        if b != d {
            let ok = b.iter().zip(d).enumerate().all(|(i, (x, y))| {
                x == y || (loose.flips && *x == y ^ 1) || (*x == 0 && at + i >= loose.holes_from)
            });
            if !ok {
                return false;
            }
        }
        at += b.len();
    }
    true
}

/// `<part>.written`, the written record beside a `.part`.
fn sidecar(part: &Path) -> PathBuf {
    let mut s = part.as_os_str().to_owned();
    s.push(".written");
    PathBuf::from(s)
}

/// Every `*.part` under `dir`, `orphaned/` left out.
fn part_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| !p.strip_prefix(dir).is_ok_and(|r| r.starts_with("orphaned")))
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out.sort();
    out
}

fn open_db(db: &Path) -> Option<rusqlite::Connection> {
    if !db.exists() {
        return None;
    }
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(db, flags).ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    Some(conn)
}

fn read_rows(db: &Path) -> Vec<Row> {
    let Some(conn) = open_db(db) else {
        return Vec::new();
    };
    // A row retrying for room on the disk is `waiting`: a state of its
    // own for the checks, as it was before pauses were the owner's.
    let sql = "SELECT id, item_id, CASE WHEN status = 'retrying' AND (error = 'disk full' \
               OR error LIKE 'waiting for disk space%') THEN 'waiting' ELSE status END, \
               downloaded_bytes, part_path, dest_path, etag, expected_bytes, verified_bytes, \
               sha256, error FROM downloads ORDER BY id";
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok(Row {
            id: r.get(0)?,
            item: r.get(1)?,
            status: r.get(2)?,
            durable: u64::try_from(r.get::<_, i64>(3)?).unwrap(),
            part: PathBuf::from(r.get::<_, String>(4)?),
            dest: PathBuf::from(r.get::<_, String>(5)?),
            etag: r.get(6)?,
            expected: u64::try_from(r.get::<_, i64>(7)?).unwrap(),
            verified: u64::try_from(r.get::<_, i64>(8)?).unwrap(),
            sha256: r.get(9)?,
            error: r.get(10)?,
        })
    })
    .map(|it| it.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

fn stub_seen(db: &Path, name: &str) -> bool {
    open_db(db).is_some_and(|c| {
        c.query_row(
            "SELECT 1 FROM stubs_seen WHERE stub_name = ?1",
            [name],
            |_| Ok(()),
        )
        .is_ok()
    })
}

/// One status API request with the owner key; None when the node is not
/// there to answer (it may be dying at a crash point).
fn call(addr: SocketAddr, method: &str, path: &str) -> Option<u16> {
    let raw = exchange(addr, method, path)?;
    let head = String::from_utf8_lossy(&raw);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// `POST /api/v2/torrents/add` with `stub` and `paused=true`, as
/// Sonarr sends it, the owner key as a Bearer key; the status.
fn add_paused(addr: SocketAddr, stub: &[u8]) -> Option<u16> {
    let b = "simboundary";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"paused\"\r\n\r\ntrue\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"p.torrent\"\r\n\
         Content-Type: application/x-bittorrent\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(stub);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "POST /api/v2/torrents/add HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: multipart/form-data; boundary={b}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(&body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Adds recorded through the API and not yet made downloads.
fn pending_adds(db: &Path) -> i64 {
    open_db(db)
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM grabs", [], |r| r.get(0))
                .ok()
        })
        .unwrap_or(0)
}

/// One request to the node's owner API; the whole answer.
fn exchange(addr: SocketAddr, method: &str, path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    Some(raw)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The seed of sequence `n`.
fn seed_of(n: u64) -> u64 {
    Rng(0x6a61_636b ^ n).next() % 1_000_000_000
}

/// Runs one seed; the failure, with its log and how to replay it.
fn one(seed: u64, verbose: bool, deadline: Instant, totals: &Mutex<Totals>) -> Option<String> {
    let mut sim = Sim::new(seed, verbose, deadline);
    let result = sim.sequence(totals);
    totals.lock().unwrap().sequences += 1;
    let err = result.err()?;
    let node_log = match &sim.node {
        Some(n) => n.log_text(),
        None => sim.last_log.clone(),
    };
    let tail: Vec<_> = node_log
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Some(format!(
        "seed {seed}: {err}\nop log:\n  {}\nlast node log lines:\n  {}\nreplay: JACK_SIM_SEED={seed} cargo test --test sim -- --nocapture\n",
        sim.log.join("\n  "),
        tail.join("\n  ")
    ))
}

/// Lines of `node`'s log that say `what`.
fn lines_saying(node: &Node, what: &str) -> u64 {
    let log = node.log.lock().unwrap();
    log.iter().filter(|l| l.contains(what)).count() as u64
}

/// What the summary counts in a node's log: rounds that kept bytes written
/// past a failed piece, and sources cut for trickling.
const KEPT: &str = "written past piece";
const TOO_SLOW: &str = "is too slow: its part goes";

/// The failed syncs a node's log reports.
fn eio_lines(node: &Node) -> usize {
    let log = node.log.lock().unwrap();
    log.iter()
        .filter(|l| l.contains("sync fails with EIO"))
        .count()
}

/// To stderr past the test harness's capture: the summary shows in
/// `make test` too.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[test]
fn simulation() {
    let totals = Mutex::new(Totals::default());
    let started = Instant::now();
    let mut failures = Vec::new();
    if let Some(seed) = env_u64("JACK_SIM_SEED") {
        let far = started + Duration::from_secs(3600);
        if let Some(f) = one(seed, true, far, &totals) {
            say(&f);
            failures.push(f);
        }
    } else if support::emulated() && env_u64("JACK_SIM_SECONDS").is_none() {
        // Under qemu-user every step is ten times slower than the waits
        // are made for; the simulation's subject (orderings of faults and
        // owner actions) is the same on every target, so it runs natively
        // (`make test`, `make test-32`) and here only when asked.
        say("sim: not run under emulation (JACK_TEST_RUNNER); set JACK_SIM_SECONDS to run it");
        return;
    } else {
        let seconds = env_u64("JACK_SIM_SECONDS").unwrap_or(60);
        let budget = (seconds > 0).then(|| Duration::from_secs(seconds));
        let most = env_u64("JACK_SIM_SEQUENCES").unwrap_or(u64::MAX);
        // A sequence started before the budget runs out gets 20 s more
        // for its last steps; its heal is bounded by its own waits.
        let deadline =
            started + budget.unwrap_or(Duration::from_secs(86_400 * 365)) + Duration::from_secs(5);
        let mut n = 0;
        while n < most && budget.is_none_or(|b| started.elapsed() < b) {
            let seed = seed_of(n);
            if let Some(f) = one(seed, false, deadline, &totals) {
                say(&f);
                failures.push(f);
            }
            n += 1;
        }
    }
    let t = totals.lock().unwrap();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    say(&format!(
        "sim: {} sequences, {} steps, {} distinct states in {:.1} s ({:.1} sequences a minute), {} failing",
        t.sequences,
        t.steps,
        t.states.len(),
        started.elapsed().as_secs_f64(),
        t.sequences as f64 / minutes.max(1e-9),
        failures.len()
    ));
    say(&format!(
        "sim §2.6: {} sequences with digests and two sources: {} pieces failed, {} sources dropped, {} downloads completed against a digest, bob sent {} MiB, vanished in {}, {} rounds kept what was written past a failed piece, {} sources cut for trickling",
        t.pieces,
        t.pieces_failed,
        t.dropped,
        t.proven,
        t.bob_bytes >> 20,
        t.vanished,
        t.kept,
        t.too_slow
    ));
    let seeds: Vec<_> = failures
        .iter()
        .map(|f| f.split(':').next().unwrap().to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failing: {}",
        failures.len(),
        seeds.join(", ")
    );
}

/// Found by the simulation (seed 883582351: `Corrupting { source: Bob,
/// on: true }`, then `KillAfter { item: 0, ms: 57 }`): a kill -9 while two
/// sources fill a download leaves bytes bob sent (one of them flipped)
/// that the written record vouches for; the next process reads them back
/// and checks them before anything else, and the piece that fails is
/// blamed on the download's own source, alice, who never sent a bad
/// byte. Two such kills count her two bad pieces and drop her: the
/// download fails naming the honest source.
#[test]
fn bytes_a_friend_wrote_before_a_kill_are_not_blamed_on_the_download_s_own_source() {
    if support::emulated() {
        return;
    }
    let size = 2 * PIECE_SIZE + 4096 + 7;
    let mut blamed = Vec::new();
    for (n, ms) in (1..=12u64).map(|k| k * 30).enumerate() {
        let data = Rng(ms).bytes(size);
        let alice = FakePeer::start(vec![fake_peer::File::mkv("m", &data)], vec![], None);
        alice.offer_digests(true);
        let bob = FakePeer::start(vec![fake_peer::File::mkv("m", &data)], vec![], None);
        bob.offer_digests(true);
        bob.set_fallback(Mode::CorruptFirst);
        let site = downloader(alice.addr, "idle_timeout_ms = 600\n");
        let mut config = std::fs::read_to_string(site.config()).unwrap();
        config.push_str(&format!(
            "[[peers]]\nname = \"bob\"\nurl = \"http://{}\"\napi_key = \"{KEY}\"\n",
            bob.addr
        ));
        std::fs::write(site.config(), config).unwrap();
        let mut node = site.start();
        support::drop_grab(&site, "m.torrent", "alice", "m", "m", size as usize);
        std::thread::sleep(Duration::from_millis(ms));
        let _ = node.child.kill();
        let _ = node.child.wait();
        // The same boot: the written record vouches for what it wrote.
        let mut node = site.start();
        let db = site.path().join("data/jack.db");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20)
            && !read_rows(&db)
                .iter()
                .all(|r| matches!(r.status.as_str(), "completed" | "failed"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = node.child.kill();
        let _ = node.child.wait();
        let conn = open_db(&db).unwrap();
        let mut st = conn
            .prepare("SELECT detail FROM download_events WHERE kind = 'piece_failed'")
            .unwrap();
        let details: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        blamed.extend(
            details
                .into_iter()
                .filter(|d| d.contains("sent by alice;"))
                .map(|d| format!("kill after {ms} ms (run {n}): {d}")),
        );
    }
    assert!(
        blamed.is_empty(),
        "alice (honest) blamed for bytes bob sent:\n{}",
        blamed.join("\n")
    );
}
