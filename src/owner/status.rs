//! `jack status`: the downloads, from the daemon's status API when it
//! runs, else from the registry.
//!
//! [`Report`] is the one shape of a status, both as the status API's JSON
//! (`owner/status_api` builds it with live bytes and speeds) and as what
//! this command prints; the registry path builds it without live figures.
//! The formatting (bar, sizes, speed, ETA, the table) is pure and tested
//! with tables. Never creates a registry that does not exist yet.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::format::{eta, write_human_bytes, write_human_duration};

use crate::config::Config;
use crate::db::{Download, InvalidStub, Registry, Status, TableRow};
use crate::error::{Error, Result};

/// One download as `jack status` and `GET /api/v1/downloads` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View<'a> {
    pub id: i64,
    pub status: &'static str,
    pub title: &'a str,
    pub file_name: &'a str,
    pub peer: &'a str,
    pub item_id: &'a str,
    pub info_hash: &'a str,
    pub stub_name: &'a str,
    pub expected_bytes: u64,
    /// Durable bytes (the registry's).
    pub downloaded_bytes: u64,
    /// Bytes in the `.part` now: the live count of a running transfer,
    /// else the durable one.
    pub done_bytes: u64,
    pub progress: f64,
    /// Bytes per second (over the last few seconds: `Speedometer`),
    /// running downloads only.
    pub speed: Option<u64>,
    pub eta_seconds: Option<u64>,
    /// When a download waiting to try again is tried next, ms since the
    /// Unix epoch (the daemon's clock; none from the registry).
    pub next_try_at: Option<u64>,
    pub attempts: u32,
    pub restarts: u32,
    /// What went wrong, in plain words (`crate::plain`), with when it is
    /// tried again for a download waiting out a retry delay.
    pub error: Option<String>,
    /// The error as recorded (the technical text; events keep each one).
    pub error_detail: Option<&'a str>,
    /// Seconds until a download waiting out a retry delay is tried again.
    pub next_try_secs: Option<u64>,
    pub part_path: &'a Path,
    pub dest_path: &'a Path,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub completed_at: Option<&'a str>,
    /// The version's whole-file SHA-256 (lower-case hex), when known.
    pub digest: Option<&'a str>,
    /// Its pieces: total, proven and whole on disk (with a digest only).
    pub pieces: Option<crate::download::pieces::Counts>,
    /// Its sources (§2.6): each with its rate while it runs; the sources
    /// that sent bad pieces when it does not.
    pub sources: Vec<SourceView>,
}

/// One source of a download. `bytes`, `rate` and `state` are those of the
/// running attempt (`null` from the registry, which keeps only each
/// source's bad pieces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceView {
    pub peer: String,
    pub bytes: Option<u64>,
    /// Bytes per second over its last second.
    pub rate: Option<u64>,
    pub bad_pieces: u32,
    /// `active`, `idle`, `failed: ...` or `dropped: ...`.
    pub state: Option<String>,
}

/// The sources of every download: those of the running ones (`running`),
/// else those the registry holds bad pieces of (`bad`, by download id:
/// `Registry::all_bad_pieces`).
pub fn source_views(
    running: &HashMap<i64, crate::download::downloads::Progress>,
    bad: crate::db::BadPieces,
) -> HashMap<i64, Vec<SourceView>> {
    let mut out: HashMap<i64, Vec<SourceView>> = bad
        .into_iter()
        .filter(|(id, _)| !running.contains_key(id))
        .map(|(id, list)| {
            let views = list
                .into_iter()
                .map(|(peer, _item, bad_pieces)| SourceView {
                    peer,
                    bytes: None,
                    rate: None,
                    bad_pieces,
                    state: None,
                });
            (id, views.collect())
        })
        .collect();
    for (&id, p) in running.iter().filter(|(_, p)| !p.sources.is_empty()) {
        let views = p.sources.iter().map(|s| SourceView {
            peer: s.peer.clone(),
            bytes: Some(s.bytes),
            rate: Some(s.rate),
            bad_pieces: s.bad_pieces,
            state: Some(s.state.clone()),
        });
        out.insert(id, views.collect());
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidView<'a> {
    pub stub_name: &'a str,
    pub reason: &'a str,
    pub at: &'a str,
}

/// What the daemon knows beyond the registry, by download id (empty when
/// the registry is read without it), and its peers' latest contacts.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub live: HashMap<i64, u64>,
    pub speeds: HashMap<i64, u64>,
    /// When each download waiting out a retry delay is tried next (ms
    /// since the Unix epoch).
    pub next_tries: HashMap<i64, u64>,
    pub peers: Vec<PeerView>,
    /// The sources of each download ([`source_views`]).
    pub sources: HashMap<i64, Vec<SourceView>>,
}

/// A `[[peers]]` entry and its latest contact since the node started
/// (any of: a search, a handshake, a download's request).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    pub name: String,
    pub url: String,
    /// `None`: not asked since the node started.
    pub contact: Option<ContactView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactView {
    /// RFC 3339.
    pub at: String,
    /// Seconds ago, when it was asked for.
    pub ago_secs: u64,
    /// `handshake`, `search` or `download`.
    pub exchange: &'static str,
    pub ok: bool,
    /// What went wrong in plain words.
    pub problem: Option<String>,
    /// What went wrong as the client library said it.
    pub detail: Option<String>,
}

/// Every `[[peers]]` entry with its latest contact.
pub fn peer_views(peers: &crate::config::Peers) -> Vec<PeerView> {
    use crate::download::contact::CONTACTS;
    peers
        .current()
        .iter()
        .map(|p| PeerView {
            name: p.name.clone(),
            url: p.url.clone(),
            contact: CONTACTS.latest(&p.name).map(|c| ContactView {
                at: crate::clock::rfc3339(c.at),
                ago_secs: c.at.elapsed().map_or(0, |d| d.as_secs()),
                exchange: c.exchange.as_str(),
                ok: c.ok(),
                problem: c.failure.as_deref().map(|f| crate::plain::say(&p.name, f)),
                detail: c.failure.clone(),
            }),
        })
        .collect()
}

/// Everything `jack status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report<'a> {
    /// Where the figures come from: `daemon` or `registry`.
    pub source: &'static str,
    pub downloads: Vec<View<'a>>,
    pub invalid_stubs: Vec<InvalidView<'a>>,
    pub orphaned_parts: Vec<PathBuf>,
    /// The free space of each filesystem the download folders are on.
    pub disks: Vec<crate::download::space::Disk>,
    /// `[downloads] min_free_bytes`: a disk under it is `low`.
    pub min_free_bytes: u64,
    /// The peers and their latest contacts (from the daemon only).
    pub peers: Vec<PeerView>,
    /// The stubs the watch folder set aside, with their reasons.
    pub set_aside: Vec<crate::download::aside::SetAside>,
    /// Why the stubs set aside could not be listed (the watch folder
    /// could not be read), when so: the rest of the report stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_aside_error: Option<String>,
}

/// Puts the stubs set aside, or why they could not be listed, in `report`.
pub fn add_set_aside(report: &mut Report, listed: Result<Vec<crate::download::aside::SetAside>>) {
    match listed {
        Ok(list) => report.set_aside = list,
        Err(e) => {
            log::warn!("cannot list the stubs set aside error={}", e.chain());
            report.set_aside_error = Some(format!("stubs set aside cannot be shown: {e}"));
        }
    }
}

/// The bytes done and the progress (0..=1) of a download with `expected`
/// and `durable` bytes, or `live` ones when it runs.
fn done_and_progress(expected: u64, durable: u64, status: Status, live: Option<u64>) -> (u64, f64) {
    let done = live.unwrap_or(durable).min(expected.max(durable));
    let progress = if expected == 0 {
        if status == Status::Completed {
            1.0
        } else {
            0.0
        }
    } else {
        done as f64 / expected as f64
    };
    (done, progress)
}

/// What the daemon knows of a download beyond its row: its live bytes and
/// speed when it runs, when it is tried next (ms since the Unix epoch) when
/// it waits out a retry delay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    pub live: Option<u64>,
    pub speed: Option<u64>,
    pub next_try: Option<u64>,
}

/// Whole seconds from now until `at_ms` (ms since the Unix epoch), rounded up.
fn secs_until(at_ms: u64) -> u64 {
    at_ms
        .saturating_sub(crate::owner::dashboard::now_ms())
        .div_ceil(1000)
}

/// A row's `error` in plain words, with its next try.
fn plain_error(peer: &str, error: Option<&str>, next_try: Option<u64>) -> Option<String> {
    error.map(|e| {
        format!(
            "{}{}",
            crate::plain::say(peer, e),
            crate::plain::next_try(next_try)
        )
    })
}

/// What a view computes from a row's figures and the daemon's [`Now`]:
/// bytes done, progress, speed and ETA, the next try, the plain error,
/// the pieces.
struct Figured {
    done: u64,
    progress: f64,
    speed: Option<u64>,
    eta_seconds: Option<u64>,
    next_try_at: Option<u64>,
    next_try_secs: Option<u64>,
    error: Option<String>,
    pieces: Option<crate::download::pieces::Counts>,
}

fn figured(
    (expected, downloaded, status): (u64, u64, Status),
    (peer, error): (&str, Option<&str>),
    (has_digest, verified): (bool, u64),
    now: Now,
) -> Figured {
    let Now {
        live,
        speed,
        next_try,
    } = now;
    let next_try_secs = next_try.map(secs_until);
    let (done, progress) = done_and_progress(expected, downloaded, status, live);
    Figured {
        done,
        progress,
        speed,
        eta_seconds: speed.and_then(|s| eta(expected.saturating_sub(done), s)),
        next_try_at: next_try,
        next_try_secs,
        error: plain_error(peer, error, next_try_secs),
        pieces: crate::download::pieces::Held {
            expected,
            durable: downloaded,
            verified,
            completed: status == Status::Completed,
        }
        .counts(has_digest),
    }
}

/// The view of `d`, with `live` bytes and `speed` when it is running.
pub fn view(d: &Download, now: Now) -> View<'_> {
    let f = figured(
        (d.expected_bytes, d.downloaded_bytes, d.status),
        (&d.peer, d.error.as_deref()),
        (d.sha256.is_some(), d.verified_bytes),
        now,
    );
    View {
        id: d.id,
        status: d.status.as_str(),
        title: &d.title,
        file_name: &d.file_name,
        peer: &d.peer,
        item_id: &d.item_id,
        info_hash: &d.info_hash,
        stub_name: &d.stub_name,
        expected_bytes: d.expected_bytes,
        downloaded_bytes: d.downloaded_bytes,
        done_bytes: f.done,
        progress: f.progress,
        speed: f.speed,
        eta_seconds: f.eta_seconds,
        next_try_at: f.next_try_at,
        attempts: d.attempts,
        restarts: d.restarts,
        error: f.error,
        error_detail: d.error.as_deref(),
        next_try_secs: f.next_try_secs,
        part_path: &d.part_path,
        dest_path: &d.dest_path,
        created_at: &d.created_at,
        updated_at: &d.updated_at,
        completed_at: d.completed_at.as_deref(),
        digest: d.sha256.as_deref(),
        pieces: f.pieces,
        sources: Vec::new(),
    }
}

/// The view of a [`TableRow`], for the table only: what the table does
/// not print (hashes, paths, times) is left empty.
pub fn table_view(r: &TableRow, now: Now) -> View<'_> {
    let f = figured(
        (r.expected_bytes, r.downloaded_bytes, r.status),
        (&r.peer, r.error.as_deref()),
        (r.sha256.is_some(), r.verified_bytes),
        now,
    );
    View {
        id: r.id,
        status: r.status.as_str(),
        title: &r.title,
        file_name: "",
        peer: &r.peer,
        item_id: "",
        info_hash: "",
        stub_name: &r.stub_name,
        expected_bytes: r.expected_bytes,
        downloaded_bytes: r.downloaded_bytes,
        done_bytes: f.done,
        progress: f.progress,
        speed: f.speed,
        eta_seconds: f.eta_seconds,
        next_try_at: f.next_try_at,
        attempts: r.attempts,
        restarts: r.restarts,
        error: f.error,
        error_detail: r.error.as_deref(),
        next_try_secs: f.next_try_secs,
        part_path: Path::new(""),
        dest_path: Path::new(""),
        created_at: "",
        updated_at: "",
        completed_at: None,
        digest: r.sha256.as_deref(),
        pieces: f.pieces,
        sources: Vec::new(),
    }
}

/// A registry row a [`View`] is made of: a whole [`Download`] (the JSON),
/// or a [`TableRow`] (the table).
pub trait Row {
    fn id(&self) -> i64;
    fn view(&self, now: Now) -> View<'_>;
}

impl Row for Download {
    fn id(&self) -> i64 {
        self.id
    }
    fn view(&self, now: Now) -> View<'_> {
        view(self, now)
    }
}

impl Row for TableRow {
    fn id(&self) -> i64 {
        self.id
    }
    fn view(&self, now: Now) -> View<'_> {
        table_view(self, now)
    }
}

/// The report of `downloads` (whole rows, or the table's) with the live
/// bytes and speeds of the running ones.
pub fn report<'a, R: Row>(
    source: &'static str,
    downloads: &'a [R],
    now: &Figures,
    invalid: &'a [InvalidStub],
    orphans: Vec<PathBuf>,
) -> Report<'a> {
    Report {
        source,
        downloads: downloads
            .iter()
            .map(|d| {
                let mut v = d.view(Now {
                    live: now.live.get(&d.id()).copied(),
                    speed: now.speeds.get(&d.id()).copied(),
                    next_try: now.next_tries.get(&d.id()).copied(),
                });
                v.sources = now.sources.get(&d.id()).cloned().unwrap_or_default();
                v
            })
            .collect(),
        peers: now.peers.clone(),
        set_aside: Vec::new(),
        set_aside_error: None,
        invalid_stubs: invalid
            .iter()
            .map(|i| InvalidView {
                stub_name: &i.stub_name,
                reason: &i.reason,
                at: &i.at,
            })
            .collect(),
        orphaned_parts: orphans,
        disks: Vec::new(),
        min_free_bytes: 0,
    }
}

/// The free space of the filesystems `downloads`' folders are on
/// (incomplete, completed, watch), put in `report`.
pub fn measure_disks(report: &mut Report, downloads: &crate::config::DownloadsConfig) {
    let folders = [
        downloads.incomplete_dir.as_path(),
        &downloads.completed_dir,
        &downloads.watch_dir,
    ];
    report.disks = crate::download::space::disks(&folders, downloads.min_free_bytes);
    report.min_free_bytes = downloads.min_free_bytes;
}

/// `jack status [--json] [--watch]`.
pub fn run(config: &Config, json: bool, watch: bool, out: &mut dyn Write) -> Result<()> {
    let write = |out: &mut dyn Write, s: &str| {
        out.write_all(s.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("cannot write the status", e))
    };
    if !watch {
        return write(out, &gather(config, json)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Error::io("cannot install the signal handler", e))?;
    }
    while !stop.load(Ordering::Relaxed) {
        let frame = gather(config, json)?;
        // Home, clear the screen, then the frame.
        write(out, &format!("\x1b[H\x1b[2J{frame}"))?;
        let until = Instant::now() + Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    write(out, "\n")
}

fn render(header: &str, report: &Report, json: bool) -> String {
    if json {
        let mut s = serde_json::to_string(report).unwrap_or_default();
        s.push('\n');
        return s;
    }
    let mut s = String::with_capacity(header.len() + 1);
    s.push_str(header);
    s.push('\n');
    s.push_str(&text(report));
    s
}

/// The table, then the peers' latest contacts, the invalid stubs and
/// orphaned `.part` files (the status API's `?format=text`).
pub fn text(report: &Report) -> String {
    let mut t = to_table(&report.downloads);
    write_peers(&mut t, &report.peers);
    for i in &report.invalid_stubs {
        let _ = writeln!(t, "invalid stub {} ({}): {}", i.stub_name, i.at, i.reason);
    }
    if let Some(e) = &report.set_aside_error {
        let _ = writeln!(t, "{e}");
    }
    for a in &report.set_aside {
        let _ = write!(t, "stub set aside {} ({}): {}; ", a.file, a.at, a.reason);
        match a.kind {
            "duplicate" if a.download.is_some() => {
                t.push_str("delete it, or remove that download and then retry it\n")
            }
            _ => {
                let _ = writeln!(t, "retry: jack retry-stub {:?}", a.file);
            }
        }
    }
    for o in &report.orphaned_parts {
        let _ = writeln!(t, "orphaned .part (no download owns it): {}", o.display());
    }
    write_disks(&mut t, report);
    t
}

/// One line per filesystem of the download folders, and a warning for
/// each under `min_free_bytes`.
fn write_disks(t: &mut String, report: &Report) {
    for d in &report.disks {
        let folders = d
            .folders
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(why) = &d.error {
            let _ = writeln!(t, "disk of {folders}: free space unknown: {why}");
            continue;
        }
        t.push_str("disk of ");
        t.push_str(&folders);
        t.push_str(": ");
        write_human_bytes(t, d.free_bytes);
        t.push_str(" free of ");
        write_human_bytes(t, d.total_bytes);
        t.push('\n');
        if d.low {
            t.push_str("warning: only ");
            write_human_bytes(t, d.free_bytes);
            let _ = write!(
                t,
                " free on the disk of {folders}, under [downloads] min_free_bytes ("
            );
            write_human_bytes(t, report.min_free_bytes);
            t.push_str(
                "): downloads wait for room; free some space there or lower min_free_bytes\n",
            );
        }
    }
}

/// A line per peer: its latest contact, when, and the problem if any.
fn write_peers(t: &mut String, peers: &[PeerView]) {
    for p in peers {
        let _ = write!(t, "peer {} ({}): ", p.name, p.url);
        match &p.contact {
            None => t.push_str("not asked since the node started"),
            Some(c) => {
                let _ = write!(
                    t,
                    "{} {} ago ({}, {})",
                    if c.ok { "answered" } else { "failed" },
                    crate::format::human_duration(c.ago_secs),
                    c.exchange,
                    c.at
                );
                if let Some(problem) = &c.problem {
                    let _ = write!(t, ": {problem}");
                }
            }
        }
        t.push('\n');
    }
}

/// What `jack status` prints: from the daemon's status API when it
/// answers (the daemon renders it: `?format=text`, or its JSON as is),
/// else from the registry, with a header line saying which.
fn gather(config: &Config, json: bool) -> Result<String> {
    let addr = api_addr(config.server.listen);
    let why = match from_daemon(addr, config.server.api_key.expose(), json) {
        Ok(body) if json => return Ok(format!("{}\n", body.trim_end())),
        Ok(body) => return Ok(format!("source: daemon at http://{addr}\n{body}")),
        Err(why) => why,
    };
    let path = &config.database.path;
    let reg = match path.exists() {
        true => Some(Registry::open(path)?),
        false => None,
    };
    let invalid = match &reg {
        Some(reg) => reg.invalid_stubs()?,
        None => Vec::new(),
    };
    let orphans = crate::download::reconcile::orphans(&config.downloads.incomplete_dir);
    // No rates without the daemon: the sources that sent bad pieces.
    let none = Figures {
        sources: match &reg {
            Some(reg) => source_views(&HashMap::new(), reg.all_bad_pieces()?),
            None => HashMap::new(),
        },
        ..Figures::default()
    };
    let header = format!("source: registry {} ({why})", path.display());
    let set_aside = match &reg {
        Some(reg) => crate::download::aside::list(&config.downloads.watch_dir, reg),
        None => Ok(Vec::new()),
    };
    if json {
        let downloads = match &reg {
            Some(reg) => reg.list()?,
            None => Vec::new(),
        };
        let mut report = report("registry", &downloads, &none, &invalid, orphans);
        add_set_aside(&mut report, set_aside);
        measure_disks(&mut report, &config.downloads);
        return Ok(render(&header, &report, true));
    }
    // The table prints a few columns: read only those.
    let rows = match &reg {
        Some(reg) => reg.table_rows()?,
        None => Vec::new(),
    };
    let mut report = report("registry", &rows, &none, &invalid, orphans);
    add_set_aside(&mut report, set_aside);
    measure_disks(&mut report, &config.downloads);
    Ok(render(&header, &report, false))
}

/// Where this machine reaches its own daemon: the listen address, with an
/// unspecified address (`0.0.0.0`, `::`) replaced by loopback.
pub(crate) fn api_addr(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// `GET /api/v1/downloads` of the daemon at `addr` (its JSON, or its text
/// without `json`); the error says why not (never with the key).
fn from_daemon(addr: SocketAddr, key: &str, json: bool) -> std::result::Result<String, String> {
    let mut resp = daemon_agent()
        .get(format!(
            "http://{addr}/api/v1/downloads{}",
            if json { "" } else { "?format=text" }
        ))
        .header("X-Api-Key", key)
        .call()
        .map_err(|e| format!("daemon not answering at {addr}: {e}"))?;
    if resp.status() != 200 {
        return Err(format!(
            "daemon at {addr} answered {} to the status API",
            resp.status().as_u16()
        ));
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("cannot read the daemon's status: {e}"))?;
    let expected = if json { "{\"source\":\"daemon\"" } else { "" };
    match body.starts_with(expected) {
        true => Ok(body),
        false => Err(format!("the daemon at {addr} did not answer a status")),
    }
}

/// The client of this machine's own daemon: short connect, bounded
/// exchange, statuses read (not errors), no redirect (the key stays).
pub(crate) fn daemon_agent() -> ureq::Agent {
    crate::download::direct::agent(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(500)))
            .timeout_global(Some(Duration::from_secs(10)))
            .max_redirects(0)
            .build(),
    )
}

/// The table's columns (ATT: attempts, RST: restarts).
pub const COLUMNS: [&str; 11] = [
    "ID",
    "NAME",
    "PEER",
    "STATE",
    "PROGRESS",
    "DONE/TOTAL",
    "SPEED",
    "ETA",
    "ATT",
    "RST",
    "ERROR",
];

/// The table of downloads, written straight into one buffer (no string
/// per cell: 10,000 rows are rendered for every `jack status`).
pub fn to_table(downloads: &[View]) -> String {
    if downloads.is_empty() {
        return "no downloads\n".to_string();
    }
    let [
        id,
        name,
        peer,
        state,
        progress,
        done,
        speed,
        eta,
        att,
        rst,
        error,
    ] = COLUMNS;
    let mut s = String::with_capacity(160 * (downloads.len() + 1));
    let _ = writeln!(
        s,
        "{id:>5}  {name:<24}  {peer:<10}  {state:<11}  {progress:<22}  {done:>21}  {speed:>10}  {eta:>7}  {att:>4}  {rst:>4}  {error}"
    );
    // One scratch buffer for the cells that are padded after formatting.
    let mut cell = String::with_capacity(32);
    for d in downloads {
        let name = if d.title.is_empty() {
            d.stub_name
        } else {
            d.title
        };
        let _ = write!(
            s,
            "{:>5}  {:<24}  {:<10}  {:<11}  ",
            d.id,
            clip(name, 24),
            clip(d.peer, 10),
            d.status
        );
        write_bar(&mut s, d.progress, 14);
        let _ = write!(s, " {:>5.1}%  ", d.progress * 100.0);
        cell.clear();
        write_human_bytes(&mut cell, d.done_bytes);
        cell.push('/');
        write_human_bytes(&mut cell, d.expected_bytes);
        let _ = write!(s, "{:>21}  ", cell.as_str());
        cell.clear();
        match d.speed {
            Some(b) => {
                write_human_bytes(&mut cell, b);
                cell.push_str("/s");
            }
            None => cell.push('-'),
        }
        let _ = write!(s, "{:>10}  ", cell.as_str());
        cell.clear();
        match d.eta_seconds {
            Some(secs) => write_human_duration(&mut cell, secs),
            None => cell.push('-'),
        }
        let _ = writeln!(
            s,
            "{:>7}  {:>4}  {:>4}  {}",
            cell.as_str(),
            d.attempts,
            d.restarts,
            d.error.as_deref().unwrap_or("")
        );
        write_sources(&mut s, d);
    }
    s
}

/// Under a download not yet completed: its sources (with their rates
/// while it runs) and its pieces, in plain words; nothing when it has
/// neither:
/// `       from alice 3.1 MiB/s, bob 2.9 MiB/s; pieces: 5 of 12 verified, 7 received`.
fn write_sources(s: &mut String, d: &View) {
    if d.status == Status::Completed.as_str() || (d.sources.is_empty() && d.pieces.is_none()) {
        return;
    }
    s.push_str("       ");
    for (i, src) in d.sources.iter().enumerate() {
        s.push_str(if i == 0 { "from " } else { ", " });
        s.push_str(&src.peer);
        if let Some(rate) = src.rate {
            s.push(' ');
            write_human_bytes(s, rate);
            s.push_str("/s");
        }
        let mut notes: Vec<Cow<'_, str>> = Vec::new();
        if let Some(state) = src.state.as_deref().filter(|st| *st != "active") {
            notes.push(state.into());
        }
        match src.bad_pieces {
            0 => {}
            1 => notes.push("1 bad piece".into()),
            n => notes.push(format!("{n} bad pieces").into()),
        }
        if !notes.is_empty() {
            let _ = write!(s, " ({})", notes.join(", "));
        }
    }
    if let Some(p) = d.pieces {
        if !d.sources.is_empty() {
            s.push_str("; ");
        }
        let _ = write!(
            s,
            "pieces: {} of {} verified, {} received",
            p.verified, p.total, p.received
        );
    }
    s.push('\n');
}

/// `name` cut to `width` characters (an ellipsis marks the cut).
fn clip(name: &str, width: usize) -> Cow<'_, str> {
    // At most `width` bytes is at most `width` characters: no count needed.
    if name.len() <= width || name.chars().count() <= width {
        return name.into();
    }
    let mut s: String = name.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s.into()
}

/// `[#####.....]`: `width` cells inside the brackets, filled for `progress`
/// (clamped to 0..=1; a cell fills only when wholly reached).
pub fn bar(progress: f64, width: usize) -> String {
    let mut s = String::with_capacity(width + 2);
    write_bar(&mut s, progress, width);
    s
}

/// [`bar`], appended to `out`.
fn write_bar(out: &mut String, progress: f64, width: usize) {
    let p = if progress.is_finite() {
        progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = ((p * width as f64).floor() as usize).min(width);
    out.push('[');
    out.extend(std::iter::repeat_n('#', filled));
    out.extend(std::iter::repeat_n('.', width - filled));
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars() {
        let cases = [
            (0.0, 10, "[..........]"),
            (0.5, 10, "[#####.....]"),
            (0.99, 10, "[#########.]"),
            (1.0, 10, "[##########]"),
            (1.7, 4, "[####]"),
            (-1.0, 4, "[....]"),
            (f64::NAN, 4, "[....]"),
            (0.5, 0, "[]"),
        ];
        for (p, w, want) in cases {
            assert_eq!(bar(p, w), want, "{p} {w}");
        }
    }

    #[test]
    fn sources_and_pieces_under_a_download() {
        use crate::download::downloads::{Progress, SourceNow};
        let mib = 1024 * 1024;
        let source = |peer: &str, rate: u64, bad: u32, state: &str| SourceNow {
            peer: peer.into(),
            bytes: 10 * mib,
            rate,
            bad_pieces: bad,
            state: state.into(),
        };
        let running = HashMap::from([(
            1,
            Progress {
                bytes: 0,
                began: None,
                sources: vec![
                    source("alice", 3 * mib + mib / 10, 0, "active"),
                    source("bob", 0, 2, "dropped: two bad pieces"),
                ],
            },
        )]);
        // A running download's sources come from the pool; the registry's
        // bad pieces are for the others.
        let bad = HashMap::from([
            (1, vec![("carol".to_string(), "m:1".to_string(), 9)]),
            (2, vec![("bob".to_string(), "m:1".to_string(), 1)]),
        ]);
        let views = source_views(&running, bad);
        assert_eq!(views[&1].len(), 2);
        assert_eq!(
            views[&2],
            [SourceView {
                peer: "bob".into(),
                bytes: None,
                rate: None,
                bad_pieces: 1,
                state: None
            }]
        );
        let mut d = crate::db::Download {
            id: 1,
            stub_name: "m.torrent".into(),
            info_hash: "aa".into(),
            peer: "alice".into(),
            item_id: "m:1".into(),
            title: "Movie".into(),
            file_name: "m.mkv".into(),
            part_path: PathBuf::new(),
            dest_path: PathBuf::new(),
            etag: None,
            expected_bytes: 11 * 16 * mib + 5,
            downloaded_bytes: 7 * 16 * mib + 3,
            status: Status::Downloading,
            attempts: 0,
            restarts: 0,
            error: None,
            created_at: String::new(),
            updated_at: String::new(),
            completed_at: None,
            handoff_file: None,
            generation: 1,
            high_water: 0,
            sha256: Some("ab".repeat(32)),
            verified_bytes: 5 * 16 * mib,
            hash_state: None,
            search: None,
        };
        let line = |d: &crate::db::Download, sources: &HashMap<i64, Vec<SourceView>>| {
            let mut v = view(d, Now::default());
            v.sources = sources.get(&d.id).cloned().unwrap_or_default();
            to_table(&[v]).lines().nth(2).map(str::to_string)
        };
        assert_eq!(
            line(&d, &views).as_deref(),
            Some(
                "       from alice 3.1 MiB/s, bob 0 B/s (dropped: two bad pieces, 2 bad pieces); \
                 pieces: 5 of 12 verified, 7 received"
            )
        );
        // From the registry: no rates, the pieces.
        let from_registry = source_views(
            &HashMap::new(),
            HashMap::from([(1, vec![("bob".into(), "m:1".into(), 1)])]),
        );
        assert_eq!(
            line(&d, &from_registry).as_deref(),
            Some("       from bob (1 bad piece); pieces: 5 of 12 verified, 7 received")
        );
        let json = serde_json::to_value(view(&d, Now::default())).unwrap();
        assert_eq!(json["digest"], "ab".repeat(32));
        assert_eq!(
            json["pieces"],
            serde_json::json!({"total": 12, "verified": 5, "received": 7})
        );
        // Without a digest nor sources, or completed: no line.
        d.sha256 = None;
        assert_eq!(line(&d, &HashMap::new()), None);
        assert!(serde_json::to_value(view(&d, Now::default())).unwrap()["pieces"].is_null());
        (d.sha256, d.status) = (Some("ab".repeat(32)), Status::Completed);
        assert_eq!(line(&d, &views), None);
        let json = serde_json::to_value(view(&d, Now::default())).unwrap();
        assert_eq!(
            json["pieces"],
            serde_json::json!({"total": 12, "verified": 12, "received": 12})
        );
    }

    #[test]
    fn names_are_clipped() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 5), "abcd…");
        assert_eq!(clip("ééééééé", 3), "éé…");
    }

    #[test]
    fn loopback_stands_for_an_unspecified_listen_address() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(api_addr(a("0.0.0.0:8080")), a("127.0.0.1:8080"));
        assert_eq!(api_addr(a("[::]:8080")), a("[::1]:8080"));
        assert_eq!(api_addr(a("10.0.0.2:8080")), a("10.0.0.2:8080"));
    }
}
