//! What the qBittorrent-compatible API shows of the registry: registry rows
//! (and adds not yet made downloads) translated into qBittorrent's torrent
//! objects, the state mapping, filters, and download speeds.
//!
//! Pure: rows, live byte counts and times in, values out. The API module
//! (`qbit`) does the reading and the HTTP. Must not do I/O or hold state
//! beyond [`Speedometer`]'s samples.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::parse_rfc3339;
use crate::db::{ClientRow, Grab, Status, split_tags};
use crate::download::downloads::Progress;
use crate::download::pieces::{self, Held};

/// `eta` when it cannot be told (qBittorrent's "infinity": 100 days).
pub const ETA_UNKNOWN: u64 = 8_640_000;

/// Stub piece length (`PROTOCOL.md` §3).
const PIECE: u64 = 16 * 1024 * 1024;

/// The qBittorrent state of a download in `status`.
pub fn state(status: Status) -> &'static str {
    match status {
        Status::Queued => "queuedDL",
        Status::Downloading => "downloading",
        // Waiting out a retry delay, or for room on the disk: no data
        // flows, it will resume by itself.
        Status::Retrying => "stalledDL",
        // Paused by its owner or added paused: not an error.
        Status::Paused => "pausedDL",
        Status::Completed => "pausedUP",
        Status::Failed => "error",
    }
}

/// The state of an add not yet made a download.
pub const PENDING_STATE: &str = "queuedDL";

/// One torrent of `torrents/info`: the qBittorrent fields *arr and common
/// clients read, borrowed from the rows it is made of; `properties` and
/// `files` are made from it too.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Torrent<'a> {
    pub hash: &'a str,
    pub name: &'a str,
    pub size: u64,
    pub total_size: u64,
    pub progress: f64,
    pub dlspeed: u64,
    pub upspeed: u64,
    pub eta: u64,
    pub state: &'static str,
    pub category: &'a str,
    /// Joined by `", "`, as qBittorrent.
    pub tags: Cow<'a, str>,
    pub save_path: &'a str,
    pub content_path: Cow<'a, str>,
    pub ratio: f64,
    pub ratio_limit: i64,
    pub seeding_time_limit: i64,
    pub inactive_seeding_time_limit: i64,
    pub seeding_time: u64,
    pub amount_left: u64,
    pub completed: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub added_on: i64,
    pub completion_on: i64,
    pub last_activity: i64,
    pub time_active: u64,
    pub priority: i64,
    /// Sources sending now (§2.6; a running download without digests has
    /// its own peer alone).
    pub num_seeds: u64,
    /// Sources known.
    pub num_complete: u64,
    pub num_leechs: u64,
    pub num_incomplete: u64,
    pub force_start: bool,
    pub auto_tmm: bool,
    /// jack's own: the sources of a running download, each with its rate
    /// (empty otherwise). Radarr and Sonarr ignore it.
    pub jack_sources: Vec<SourceSpeed>,
    /// The file's name inside `save_path` (`torrents/files`).
    #[serde(skip)]
    pub file_name: &'a str,
    /// What it holds of its bytes, whether its version has a digest, and
    /// its live bytes while it runs (`properties`, `pieceStates`).
    #[serde(skip)]
    pub held: Held,
    #[serde(skip)]
    pub digest: bool,
    #[serde(skip)]
    pub live: Option<u64>,
}

/// One source of a running download in `torrents/info` (`jack_sources`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceSpeed {
    pub peer: String,
    /// Bytes per second over its last second.
    pub dlspeed: u64,
    /// Bytes it sent in this attempt.
    pub downloaded: u64,
    pub bad_pieces: u32,
    /// `active`, `idle`, `failed: ...` or `dropped: ...`.
    pub state: String,
}

/// What every torrent shares: where files land, and the time now.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub save_path: &'a str,
    /// Unix seconds.
    pub now: u64,
}

/// What a torrent is made of: a registry row, or an add not yet made a
/// download (indices into the slices given to [`picks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Row(usize),
    Grab(usize),
}

/// The torrents the registry holds, in order: one per release (the row
/// Identity picks: a completed one, else the newest live one, else the
/// newest), then the adds not yet made downloads whose release has none.
pub fn picks(rows: &[ClientRow], grabs: &[Grab]) -> Vec<Pick> {
    let rank = |s: Status| match s {
        Status::Completed => 2,
        s if s.is_live() => 1,
        _ => 0,
    };
    let mut chosen: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let replaces = |j: &usize| rank(row.status) >= rank(rows[*j].status);
        if chosen.get(row.info_hash.as_str()).is_none_or(replaces) {
            chosen.insert(&row.info_hash, i);
        }
    }
    let mut out: Vec<Pick> = chosen.values().map(|&i| Pick::Row(i)).collect();
    out.sort_unstable_by_key(|p| match p {
        Pick::Row(i) | Pick::Grab(i) => *i,
    });
    for (i, g) in grabs.iter().enumerate() {
        if let Some(hash) = g.info_hash.as_deref()
            && !chosen.contains_key(hash)
        {
            chosen.insert(hash, usize::MAX);
            out.push(Pick::Grab(i));
        }
    }
    out
}

/// The torrent `pick` makes. `running` holds the running downloads (live
/// bytes, sources), `rates` their speed (bytes/s).
pub fn torrent<'a>(
    pick: Pick,
    rows: &'a [ClientRow],
    grabs: &'a [Grab],
    running: &HashMap<i64, Progress>,
    rates: &HashMap<i64, u64>,
    facts: Facts<'a>,
) -> Torrent<'a> {
    match pick {
        Pick::Row(i) => {
            let row = &rows[i];
            from_row(row, running.get(&row.id), rates, facts)
        }
        Pick::Grab(i) => from_grab(&grabs[i], facts),
    }
}

/// Every torrent, made (`torrents/properties` and `files`, tests).
pub fn torrents<'a>(
    rows: &'a [ClientRow],
    grabs: &'a [Grab],
    running: &HashMap<i64, Progress>,
    rates: &HashMap<i64, u64>,
    facts: Facts<'a>,
) -> Vec<Torrent<'a>> {
    picks(rows, grabs)
        .into_iter()
        .map(|p| torrent(p, rows, grabs, running, rates, facts))
        .collect()
}

fn from_row<'a>(
    row: &'a ClientRow,
    running: Option<&Progress>,
    rates: &HashMap<i64, u64>,
    facts: Facts<'a>,
) -> Torrent<'a> {
    let live = running.map(|p| p.bytes);
    let size = row.expected_bytes;
    let complete = row.status == Status::Completed;
    let done = if complete {
        size
    } else {
        live.unwrap_or(row.downloaded_bytes).min(size)
    };
    let speed = live.and(rates.get(&row.id).copied()).unwrap_or(0);
    let left = size - done;
    let eta = match (complete, speed) {
        (true, _) => 0,
        (false, 0) => ETA_UNKNOWN,
        (false, s) => left.div_ceil(s).min(ETA_UNKNOWN),
    };
    let file_name = if row.file_name.is_empty() {
        &row.title
    } else {
        &row.file_name
    };
    let mut t = base(
        &row.info_hash,
        &row.title,
        size,
        &row.category,
        facts,
        secs(&row.created_at),
    );
    t.progress = if complete || size == 0 {
        f64::from(u8::from(complete))
    } else {
        done as f64 / size as f64
    };
    t.dlspeed = speed;
    t.eta = eta;
    t.state = state(row.status);
    t.content_path = if row.dest_path.is_empty() {
        inside(facts.save_path, file_name)
    } else {
        Cow::Borrowed(&row.dest_path)
    };
    t.amount_left = left;
    t.completed = done;
    t.downloaded = done;
    t.completion_on = row.completed_at.as_deref().map_or(-1, secs);
    t.last_activity = if live.is_some() {
        i64::try_from(facts.now).unwrap_or(0)
    } else {
        secs(&row.updated_at)
    };
    t.file_name = file_name;
    t.tags = shown_tags(&row.tags);
    t.held = Held {
        expected: size,
        durable: row.downloaded_bytes,
        verified: row.verified_bytes,
        completed: complete,
    };
    t.digest = row.sha256.is_some();
    t.live = live;
    if let Some(p) = running {
        with_sources(&mut t, p);
    }
    t
}

/// The sources of a running download in `t`: those sending now are its
/// seeds, all of them the seeds known (its own peer alone when it has no
/// digests: one of each).
fn with_sources(t: &mut Torrent<'_>, p: &Progress) {
    t.jack_sources = p
        .sources
        .iter()
        .map(|s| SourceSpeed {
            peer: s.peer.clone(),
            dlspeed: s.rate,
            downloaded: s.bytes,
            bad_pieces: s.bad_pieces,
            state: s.state.clone(),
        })
        .collect();
    let active = p.sources.iter().filter(|s| s.state == "active").count();
    (t.num_seeds, t.num_complete) = match p.sources.len() {
        0 => (1, 1),
        n => (active as u64, n as u64),
    };
}

fn from_grab<'a>(g: &'a Grab, facts: Facts<'a>) -> Torrent<'a> {
    let hash = g.info_hash.as_deref().unwrap_or_default();
    let mut t = base(
        hash,
        &g.title,
        g.size,
        &g.category,
        facts,
        secs(&g.added_at),
    );
    t.content_path = inside(facts.save_path, &g.title);
    t.file_name = &g.title;
    t.tags = shown_tags(&g.tags);
    if g.paused {
        t.state = state(Status::Paused);
    }
    t
}

/// Stored tags (`a,b`) as `torrents/info` shows them (`a, b`).
fn shown_tags(stored: &str) -> Cow<'_, str> {
    if stored.contains(',') {
        Cow::Owned(split_tags(stored).collect::<Vec<_>>().join(TAGS_SHOWN))
    } else {
        Cow::Borrowed(stored)
    }
}

/// `app/preferences`: where files land, the queue, and the global share
/// limits. jack never seeds, so a finished download has reached a share
/// ratio of 0: with `remove_after_import`, the ratio limit is on at 0 and
/// its action is to pause (`max_ratio_act` 0, not 1 or 3, which
/// Radarr/Sonarr's test warns about), so Radarr/Sonarr judge a finished
/// (`pausedUP`) download removable once imported; without, every limit is
/// off (-1) and they keep it listed. The per-torrent limits are always
/// -2 ("the global one applies", [`base`]).
pub fn preferences(
    save_path: &str,
    max_active: usize,
    remove_after_import: bool,
) -> serde_json::Value {
    let (ratio_enabled, max_ratio) = if remove_after_import {
        (true, 0)
    } else {
        (false, -1)
    };
    serde_json::json!({
        "save_path": save_path,
        "temp_path_enabled": false,
        "queueing_enabled": true,
        "max_active_downloads": max_active,
        "max_active_torrents": max_active,
        "max_active_uploads": 0,
        "dht": true,
        "pex": false,
        "lsd": false,
        "max_ratio_enabled": ratio_enabled,
        "max_ratio": max_ratio,
        "max_ratio_act": 0,
        "max_seeding_time_enabled": false,
        "max_seeding_time": -1,
        "max_inactive_seeding_time_enabled": false,
        "max_inactive_seeding_time": -1,
        "auto_tmm_enabled": false,
        "start_paused_enabled": false,
        "create_subfolder_enabled": false,
    })
}

/// `dir/name` as text.
fn inside<'a>(dir: &str, name: &str) -> Cow<'a, str> {
    Cow::Owned(Path::new(dir).join(name).display().to_string())
}

/// A torrent with nothing done yet, in `PENDING_STATE`.
fn base<'a>(
    hash: &'a str,
    name: &'a str,
    size: u64,
    category: &'a str,
    facts: Facts<'a>,
    added_on: i64,
) -> Torrent<'a> {
    Torrent {
        hash,
        name,
        size,
        total_size: size,
        progress: 0.0,
        dlspeed: 0,
        upspeed: 0,
        eta: ETA_UNKNOWN,
        state: PENDING_STATE,
        category,
        tags: Cow::Borrowed(""),
        save_path: facts.save_path,
        content_path: Cow::Borrowed(""),
        ratio: 0.0,
        ratio_limit: -2,
        seeding_time_limit: -2,
        inactive_seeding_time_limit: -2,
        seeding_time: 0,
        amount_left: size,
        completed: 0,
        downloaded: 0,
        uploaded: 0,
        added_on,
        completion_on: -1,
        last_activity: added_on,
        time_active: facts
            .now
            .saturating_sub(u64::try_from(added_on).unwrap_or(0)),
        priority: 0,
        num_seeds: 0,
        num_complete: 1,
        num_leechs: 0,
        num_incomplete: 0,
        force_start: false,
        auto_tmm: false,
        jack_sources: Vec::new(),
        file_name: "",
        held: Held {
            expected: size,
            durable: 0,
            verified: 0,
            completed: false,
        },
        digest: false,
        live: None,
    }
}

/// Unix seconds of a registry time (0 if it does not parse).
fn secs(rfc3339: &str) -> i64 {
    parse_rfc3339(rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// `hashes=a|b` (`None`: every torrent; `all` means every torrent too),
/// lowercased.
pub fn hash_list(value: Option<&str>) -> Option<Vec<String>> {
    let v = value?.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("all") {
        return None;
    }
    Some(
        v.split('|')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
    )
}

/// `torrents/info`'s filters: a category (`Some("")`: uncategorized only;
/// `None`: any), a tag (likewise: `Some("")`, untagged only), and hashes.
pub fn selected(
    t: &Torrent<'_>,
    category: Option<&str>,
    tag: Option<&str>,
    hashes: Option<&[String]>,
) -> bool {
    let tagged = |tag: &str| match tag.trim() {
        "" => t.tags.is_empty(),
        tag => t.tags.split(TAGS_SHOWN).any(|x| x == tag),
    };
    category.is_none_or(|c| t.category == c)
        && tag.is_none_or(tagged)
        && hashes.is_none_or(|h| h.iter().any(|x| x == t.hash))
}

/// How `torrents/info` joins a torrent's tags, as qBittorrent.
const TAGS_SHOWN: &str = ", ";

/// Tags are at most this long (bytes).
pub const MAX_TAG: usize = 255;

/// The tags of a request's `tags=a,b` (qBittorrent's list: split at
/// commas, each trimmed, empty ones skipped); a tag with a control
/// character or longer than [`MAX_TAG`] bytes is refused with the reason.
pub fn tag_list(value: &str) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tag.len() > MAX_TAG || tag.chars().any(char::is_control) {
            let shown: String = tag.chars().take(40).collect();
            return Err(format!(
                "Incorrect tag name {shown:?}: at most {MAX_TAG} bytes, no control characters"
            ));
        }
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    Ok(tags)
}

/// `torrents/properties` of one torrent: with a digest, the pieces it
/// has are the proven ones.
pub fn properties(t: &Torrent<'_>) -> serde_json::Value {
    let pieces = t.size.div_ceil(PIECE);
    let have = match t.held.counts(t.digest) {
        Some(c) => c.verified,
        None if t.state == "pausedUP" => pieces,
        None => t.completed / PIECE,
    };
    serde_json::json!({
        "hash": t.hash,
        "name": t.name,
        "save_path": t.save_path,
        "download_path": "",
        "creation_date": t.added_on,
        "addition_date": t.added_on,
        "completion_date": t.completion_on,
        "created_by": "jack",
        "comment": "",
        "piece_size": PIECE,
        "pieces_num": pieces,
        "pieces_have": have,
        "total_size": t.size,
        "total_downloaded": t.completed,
        "total_downloaded_session": t.completed,
        "total_uploaded": 0,
        "total_uploaded_session": 0,
        "total_wasted": 0,
        "dl_speed": t.dlspeed,
        "dl_speed_avg": t.dlspeed,
        "up_speed": 0,
        "up_speed_avg": 0,
        "dl_limit": -1,
        "up_limit": -1,
        "eta": t.eta,
        "time_elapsed": t.time_active,
        "seeding_time": 0,
        "share_ratio": 0,
        "last_seen": t.last_activity,
        "nb_connections": t.num_seeds,
        "nb_connections_limit": t.num_complete.max(1),
        "peers": 0,
        "peers_total": 0,
        "seeds": t.num_seeds,
        "seeds_total": t.num_complete,
        "reannounce": 0,
        "is_private": true,
    })
}

/// `torrents/pieceStates` of one torrent: per piece 0 (not yet), 1
/// (coming in, or received and not yet proven) or 2 (proven; without a
/// digest, whole on disk).
pub fn piece_states(t: &Torrent<'_>) -> serde_json::Value {
    serde_json::json!(pieces::states(&t.held, t.digest, t.live))
}

/// `torrents/files` of one torrent: its one file.
pub fn files(t: &Torrent<'_>) -> serde_json::Value {
    let last_piece = t.size.div_ceil(PIECE).saturating_sub(1);
    serde_json::json!([{
        "index": 0,
        "name": t.file_name,
        "size": t.size,
        "progress": t.progress,
        "priority": 1,
        "is_seed": t.state == "pausedUP",
        "piece_range": [0, last_piece],
        "availability": 1,
    }])
}

/// Download speeds, measured whenever the API is asked: each running
/// download's bytes over about the last [`Speedometer::WINDOW`], from the
/// newest sample at least that old (or, before there is one, from where
/// its transfer began). A transfer shows its speed from its first second,
/// whether *arr polls every second or first asks a minute in; a stall
/// shows within a window.
#[derive(Debug, Default)]
pub struct Speedometer {
    tracks: HashMap<i64, Track>,
}

/// One download's samples: `(time, bytes)`, oldest first, the first the
/// transfer's start when known.
#[derive(Debug)]
struct Track {
    began: Option<(Instant, u64)>,
    samples: VecDeque<(Instant, u64)>,
}

impl Speedometer {
    /// How far back a speed looks (once the transfer is that old).
    pub const WINDOW: Duration = Duration::from_secs(5);
    /// Shorter spans than this tell no speed yet.
    pub const MIN_SPAN: Duration = Duration::from_millis(250);

    /// Takes a sample of every running download at `now`; returns their
    /// speeds (bytes/s). Downloads not running are forgotten.
    pub fn update(&mut self, now: Instant, running: &HashMap<i64, Progress>) -> HashMap<i64, u64> {
        self.tracks.retain(|id, _| running.contains_key(id));
        let mut rates = HashMap::with_capacity(running.len());
        for (&id, p) in running {
            let track = self.tracks.entry(id).or_insert_with(|| Track::new(p.began));
            let went_back = track.samples.back().is_some_and(|&(_, b)| p.bytes < b);
            if track.began != p.began || went_back {
                *track = Track::new(p.began); // a new transfer, or from byte 0 again
            }
            track.samples.push_back((now, p.bytes));
            // Keep the newest sample at least a window old, and those after.
            while track
                .samples
                .get(1)
                .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= Self::WINDOW)
            {
                track.samples.pop_front();
            }
            rates.insert(id, track.rate(now, p.bytes));
        }
        rates
    }
}

impl Track {
    fn new(began: Option<(Instant, u64)>) -> Track {
        Track {
            began,
            samples: began.into_iter().collect(),
        }
    }

    /// Bytes/s from the oldest sample kept to `(now, bytes)`.
    fn rate(&self, now: Instant, bytes: u64) -> u64 {
        let Some(&(at, from)) = self.samples.front() else {
            return 0;
        };
        let span = now.saturating_duration_since(at);
        if span < Speedometer::MIN_SPAN || bytes < from {
            return 0;
        }
        ((bytes - from) as f64 / span.as_secs_f64()).round() as u64
    }
}

/// The live bytes of `running`.
pub fn live_bytes(running: &HashMap<i64, Progress>) -> HashMap<i64, u64> {
    running.iter().map(|(&id, p)| (id, p.bytes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_status_has_a_qbittorrent_state() {
        let table = [
            (Status::Queued, "queuedDL"),
            (Status::Downloading, "downloading"),
            (Status::Retrying, "stalledDL"),
            (Status::Paused, "pausedDL"),
            (Status::Completed, "pausedUP"),
            (Status::Failed, "error"),
        ];
        assert_eq!(
            table.len(),
            Status::ALL.len(),
            "every status is in the table"
        );
        for (status, want) in table {
            assert_eq!(state(status), want, "{status}");
        }
    }

    fn row(id: i64, hash: &str, status: Status, done: u64) -> ClientRow {
        ClientRow {
            id,
            info_hash: hash.into(),
            title: format!("Movie.{id}"),
            file_name: format!("Movie.{id}.mkv"),
            dest_path: format!("/d/completed/Movie.{id}.mkv"),
            expected_bytes: 1000,
            downloaded_bytes: done,
            status,
            category: "radarr".into(),
            tags: String::new(),
            created_at: "2026-01-02T03:04:05Z".into(),
            updated_at: "2026-01-02T03:05:00Z".into(),
            completed_at: (status == Status::Completed).then(|| "2026-01-02T03:06:00Z".into()),
            sha256: None,
            verified_bytes: 0,
        }
    }

    /// A running download at `bytes`, from `sources`.
    fn running(bytes: u64, sources: Vec<crate::download::downloads::SourceNow>) -> Progress {
        Progress {
            bytes,
            began: None,
            sources,
        }
    }

    fn facts() -> Facts<'static> {
        Facts {
            save_path: "/d/completed",
            now: 1_767_323_145,
        }
    }

    #[test]
    fn rows_become_torrents() {
        let rows = vec![
            row(1, "aa", Status::Downloading, 100),
            row(2, "bb", Status::Completed, 1000),
            row(3, "cc", Status::Retrying, 250),
            row(4, "dd", Status::Failed, 0),
        ];
        let live = HashMap::from([(1, running(600, Vec::new()))]);
        let rates = HashMap::from([(1, 100), (3, 999)]);
        let t = torrents(&rows, &[], &live, &rates, facts());
        let view: Vec<_> = t
            .iter()
            .map(|t| (t.hash, t.state, t.progress, t.completed, t.dlspeed, t.eta))
            .collect();
        assert_eq!(
            view,
            [
                ("aa", "downloading", 0.6, 600, 100, 4),
                ("bb", "pausedUP", 1.0, 1000, 0, 0),
                ("cc", "stalledDL", 0.25, 250, 0, ETA_UNKNOWN),
                ("dd", "error", 0.0, 0, 0, ETA_UNKNOWN),
            ],
            "live bytes count, not only the checkpoint; a speed only while running"
        );
        let done = &t[1];
        assert_eq!(done.content_path, "/d/completed/Movie.2.mkv");
        assert_ne!(done.content_path, done.save_path);
        assert_eq!((done.amount_left, done.added_on), (0, 1_767_323_045));
        assert_eq!(
            (done.completion_on, done.last_activity),
            (1_767_323_160, 1_767_323_100)
        );
        assert_eq!(
            (t[0].completion_on, t[0].last_activity),
            (-1, facts().now as i64)
        );
        assert_eq!(
            (done.ratio, done.ratio_limit, done.seeding_time_limit),
            (0.0, -2, -2)
        );
        assert_eq!(done.category, "radarr");
        let json = serde_json::to_value(done).unwrap();
        assert!(json.get("file_name").is_none() && json["total_size"] == 1000);
    }

    #[test]
    fn share_limits_a_finished_download_has_reached() {
        let limits = |remove: bool| {
            let p = preferences("/d/completed", 2, remove);
            let keys = [
                "max_ratio_enabled",
                "max_ratio",
                "max_ratio_act",
                "max_seeding_time_enabled",
                "max_seeding_time",
                "max_inactive_seeding_time_enabled",
            ];
            keys.map(|k| p[k].clone())
        };
        use serde_json::json as j;
        assert_eq!(
            limits(true),
            [j!(true), j!(0), j!(0), j!(false), j!(-1), j!(false)],
            "ratio limit 0, reached by every download; its action is to pause"
        );
        assert_eq!(
            limits(false),
            [j!(false), j!(-1), j!(0), j!(false), j!(-1), j!(false)],
            "every limit off"
        );
        // Every torrent follows the global limits, and has shared nothing.
        let done = row(1, "aa", Status::Completed, 1000);
        let t = torrents(
            std::slice::from_ref(&done),
            &[],
            &HashMap::new(),
            &HashMap::new(),
            facts(),
        );
        let json = serde_json::to_value(&t[0]).unwrap();
        let fields = ["state", "ratio", "ratio_limit", "seeding_time_limit"];
        assert_eq!(
            fields.map(|k| json[k].clone()),
            [j!("pausedUP"), j!(0.0), j!(-2), j!(-2)]
        );
        assert_eq!(json["inactive_seeding_time_limit"], -2);
    }

    #[test]
    fn one_torrent_per_release_and_pending_adds() {
        // An old failed row and a newer live one of one release: the live
        // one; a completed one wins over newer rows.
        let rows = vec![
            row(1, "aa", Status::Failed, 0),
            row(2, "aa", Status::Queued, 0),
            row(3, "aa", Status::Failed, 0),
            row(4, "bb", Status::Completed, 1000),
            row(5, "bb", Status::Queued, 0),
        ];
        let grab = |id: i64, hash: Option<&str>| Grab {
            id,
            stub_name: "api/y.torrent".into(),
            info_hash: hash.map(String::from),
            title: "Pending.Movie".into(),
            size: 77,
            peer: "alice".into(),
            item_id: "m:9".into(),
            category: "sonarr".into(),
            tags: "b,tv".into(),
            added_at: "2026-01-02T03:04:05Z".into(),
            paused: false,
        };
        let grabs = [
            grab(1, Some("aa")),
            grab(2, Some("ee")),
            grab(3, None),
            grab(4, Some("ee")),
        ];
        let t = torrents(&rows, &grabs, &HashMap::new(), &HashMap::new(), facts());
        let ids: Vec<_> = t.iter().map(|t| (t.hash, t.name, t.state)).collect();
        assert_eq!(
            ids,
            [
                ("aa", "Movie.2", "queuedDL"),
                ("bb", "Movie.4", "pausedUP"),
                ("ee", "Pending.Movie", PENDING_STATE),
            ]
        );
        let pending = &t[2];
        assert_eq!(
            (pending.size, pending.progress, pending.category),
            (77, 0.0, "sonarr")
        );
        assert_eq!(pending.content_path, "/d/completed/Pending.Movie");
        assert_eq!(pending.tags, "b, tv", "joined as qBittorrent does");
    }

    #[test]
    fn filters() {
        let rows = vec![
            row(1, "aa", Status::Queued, 0),
            row(2, "bb", Status::Queued, 0),
        ];
        let mut all = torrents(&rows, &[], &HashMap::new(), &HashMap::new(), facts());
        all[1].category = "";
        all[1].tags = "tv, x y".into();
        let tagged = |tag: &str| {
            let t = all.iter().filter(|t| selected(t, None, Some(tag), None));
            t.map(|t| t.hash).collect::<Vec<_>>()
        };
        assert_eq!(tagged("x y"), ["bb"]);
        assert_eq!(tagged(" tv "), ["bb"]);
        assert_eq!(tagged("x"), Vec::<&str>::new(), "whole tags only");
        assert_eq!(tagged(""), ["aa"], "empty: untagged only");
        let pick = |c: Option<&str>, h: Option<&str>| {
            let hashes = hash_list(h);
            let t = all
                .iter()
                .filter(|t| selected(t, c, None, hashes.as_deref()));
            t.map(|t| t.hash).collect::<Vec<_>>()
        };
        assert_eq!(pick(None, None), ["aa", "bb"]);
        assert_eq!(pick(Some("radarr"), None), ["aa"]);
        assert_eq!(pick(Some(""), None), ["bb"], "empty: uncategorized only");
        assert_eq!(pick(None, Some("BB|zz")), ["bb"]);
        assert_eq!(pick(None, Some("all")), ["aa", "bb"]);
        assert_eq!(pick(Some("radarr"), Some("bb")), Vec::<&str>::new());
    }

    #[test]
    fn tag_lists_as_qbittorrent_reads_them() {
        let ok = |v: &str| tag_list(v).unwrap();
        assert_eq!(ok("tv,  anime ,,tv,"), ["tv", "anime"]);
        assert!(ok(" , ").is_empty());
        assert_eq!(ok("4k hdr"), ["4k hdr"]);
        let long = "t".repeat(MAX_TAG + 1);
        for bad in ["a,b\u{7}c", long.as_str()] {
            let e = tag_list(bad).unwrap_err();
            assert!(e.starts_with("Incorrect tag name"), "{e}");
        }
        assert_eq!(ok(&"t".repeat(MAX_TAG)).len(), 1);
    }

    #[test]
    fn sources_are_seeds_and_proven_pieces_are_had() {
        use crate::download::downloads::SourceNow;
        let p = PIECE;
        let mut digested = row(1, "aa", Status::Downloading, 3 * p);
        (digested.expected_bytes, digested.verified_bytes) = (4 * p + 1, 2 * p);
        digested.sha256 = Some("ab".repeat(32));
        let mut plain = row(2, "bb", Status::Downloading, p);
        plain.expected_bytes = 4 * p + 1;
        let mut done = row(3, "cc", Status::Completed, 4 * p + 1);
        (done.expected_bytes, done.sha256) = (4 * p + 1, Some("cd".repeat(32)));
        let rows = [digested, plain, done, row(4, "dd", Status::Paused, 0)];
        let source = |peer: &str, rate: u64, state: &str| SourceNow {
            peer: peer.into(),
            bytes: 7 * rate,
            rate,
            bad_pieces: u32::from(state != "active"),
            state: state.into(),
        };
        let live = HashMap::from([
            (
                1,
                running(
                    3 * p + 9,
                    vec![source("alice", 3000, "active"), source("bob", 0, "idle")],
                ),
            ),
            (2, running(p + 5, Vec::new())),
        ]);
        let t = torrents(&rows, &[], &live, &HashMap::new(), facts());
        let seeds: Vec<_> = t.iter().map(|t| (t.num_seeds, t.num_complete)).collect();
        assert_eq!(
            seeds,
            [(1, 2), (1, 1), (0, 1), (0, 1)],
            "sending now of known; without digests its own peer; none when not running"
        );
        let json = serde_json::to_value(&t[0]).unwrap();
        assert_eq!(
            json["jack_sources"],
            serde_json::json!([
                {"peer": "alice", "dlspeed": 3000, "downloaded": 21000, "bad_pieces": 0, "state": "active"},
                {"peer": "bob", "dlspeed": 0, "downloaded": 0, "bad_pieces": 1, "state": "idle"},
            ])
        );
        assert_eq!(
            serde_json::to_value(&t[3]).unwrap()["jack_sources"],
            serde_json::json!([])
        );
        let props: Vec<_> = t[..3]
            .iter()
            .map(|t| {
                let v = properties(t);
                (
                    v["pieces_num"].clone(),
                    v["pieces_have"].clone(),
                    v["seeds"].clone(),
                )
            })
            .collect();
        use serde_json::json as j;
        assert_eq!(
            props,
            [
                (j!(5), j!(2), j!(1)),
                (j!(5), j!(1), j!(1)),
                (j!(5), j!(5), j!(0))
            ],
            "proven pieces with a digest, whole ones without"
        );
        assert_eq!(properties(&t[0])["piece_size"], 16_777_216);
        let states: Vec<_> = t.iter().map(piece_states).collect();
        assert_eq!(
            states,
            [
                j!([2, 2, 1, 1, 0]),
                j!([2, 1, 0, 0, 0]),
                j!([2, 2, 2, 2, 2]),
                j!([0])
            ]
        );
    }

    #[test]
    fn speeds_from_the_first_second_over_a_short_window() {
        let mut s = Speedometer::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mb = 1_000_000;
        // Resumed at byte 5000: its start is known.
        let began = Some((at(0), 5000));
        let mut poll = |ms: u64, bytes: u64, began: Option<(Instant, u64)>| {
            let running = HashMap::from([(
                1,
                Progress {
                    bytes,
                    began,
                    sources: Vec::new(),
                },
            )]);
            s.update(at(ms), &running).get(&1).copied()
        };
        assert_eq!(
            poll(100, 5000 + mb / 10, began),
            Some(0),
            "too soon to tell"
        );
        assert_eq!(
            poll(1000, 5000 + mb, began),
            Some(mb),
            "the first poll a second in: exact, no warm-up"
        );
        // 1 MB/s, then 3 MB/s: the window's average, the new speed in 5 s.
        for i in 2..=10 {
            assert_eq!(poll(i * 1000, 5000 + i * mb, began), Some(mb));
        }
        assert_eq!(poll(11_000, 5000 + 13 * mb, began), Some(7 * mb / 5));
        for i in 12..=15 {
            poll(i * 1000, 5000 + (10 + 3 * (i - 10)) * mb, began);
        }
        assert_eq!(poll(16_000, 5000 + 28 * mb, began), Some(3 * mb));
        // A stall: zero within a window.
        assert_eq!(poll(18_000, 5000 + 28 * mb, began), Some(9 * mb / 5));
        assert_eq!(poll(21_000, 5000 + 28 * mb, began), Some(0));
        // Polled a minute later: the minute's average.
        assert_eq!(poll(81_000, 5000 + 148 * mb, began), Some(2 * mb));
        // A new transfer (the file changed: from 0 again) starts over.
        let again = Some((at(82_000), 0));
        assert_eq!(poll(84_000, 4 * mb, again), Some(2 * mb));
        // Not begun yet: told from the second poll on.
        let mut s = Speedometer::default();
        let running = |bytes| {
            HashMap::from([(
                2,
                Progress {
                    bytes,
                    began: None,
                    sources: Vec::new(),
                },
            )])
        };
        assert_eq!(s.update(at(0), &running(0))[&2], 0);
        assert_eq!(s.update(at(2000), &running(mb))[&2], mb / 2);
        // A download that stopped is forgotten.
        assert!(s.update(at(3000), &HashMap::new()).is_empty());
        assert!(s.tracks.is_empty());
    }
}
