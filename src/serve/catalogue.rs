//! The catalogue: what this node serves, one [`Release`] per video file in
//! the `[[library]]` folders, and per file a Radarr/Sonarr library knows.
//!
//! A scan walks each folder library iteratively (no recursion), skips
//! hidden entries and NAS junk, and never follows a symlink out of its
//! library. An *arr library is asked for its files instead
//! ([`ArrLibrary::fetch`]); each path it names is served only when it
//! resolves to a regular video file inside one of the *arr's root folders,
//! and an *arr that cannot be asked keeps the items it had. A scan builds a
//! new [`Snapshot`] off to the side and swaps it in whole, so requests
//! always read a complete catalogue and never wait for a scan. Scans run
//! at start-up and then every `server.library_rescan_secs` on the
//! `catalogue` thread; never on the request path (an *arr is never asked
//! because of a request).
//!
//! Item ids are `<library>:<movie|episode>:<16 hex>`, a hash of the library
//! name and the file's path inside it (for an *arr library: the *arr's id
//! of the file): stable while the file stays where it is, opaque, and never
//! a path. Opening a file re-checks that it is a regular file still inside
//! its library (or the *arr's root folders).

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::arr::library::{ArrLibrary, Entry};
use crate::clock::rfc3339;
use crate::config::{Category, Library, LibrarySource};
use crate::db::{Offer, OfferChanges, Registry};
use crate::digest::Sha256;
use crate::naming::safe_file_name;
use crate::naming::{self, imdb_number};
use crate::serve::hasher::Digests;

/// Video file extensions served when a library does not list its own.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "mkv", "mp4", "m4v", "avi", "ts", "m2ts", "webm", "mov", "wmv", "mpg",
];

/// Folder names NAS systems fill with thumbnails and deleted files.
const JUNK: &[&str] = &[
    "@eaDir",
    "@Recycle",
    "#recycle",
    "#snapshot",
    "$RECYCLE.BIN",
    "lost+found",
];

/// A release as the peer API describes it (`PROTOCOL.md` §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    pub title: String,
    pub filename: String,
    pub category: Category,
    pub size: u64,
    pub tmdb_id: Option<u64>,
    pub imdb_id: Option<String>,
    pub tvdb_id: Option<u64>,
    pub year: Option<u16>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    pub quality_name: Option<String>,
    pub source: Option<String>,
    pub resolution: Option<u32>,
    pub release_group: Option<String>,
    pub series_title: Option<String>,
    /// A daily show's date (TV only), from its file name.
    pub air_date: Option<naming::AirDate>,
    pub publish_date: String,
    /// The strong validator the file is served with (extension).
    pub etag: String,
    /// The whole file's SHA-256, when the hasher has it for exactly the
    /// version `etag` names (extension, §2.6).
    pub sha256: Option<Sha256>,
}

impl Release {
    /// Torznab category: 2000 movies, 5000 TV.
    pub fn category_code(&self) -> u32 {
        match self.category {
            Category::Movies => 2000,
            Category::Tv => 5000,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": self.id,
            "title": self.title,
            "filename": self.filename,
            "category": self.category_code(),
            "size": self.size,
            "publishDate": self.publish_date,
            "etag": self.etag,
        });
        let obj = v.as_object_mut().expect("a JSON object");
        let mut put = |k: &str, val: serde_json::Value| {
            obj.insert(k.to_string(), val);
        };
        if let Some(x) = &self.sha256 {
            put("sha256", crate::digest::hex(x).into());
        }
        if let Some(x) = self.tmdb_id {
            put("tmdbId", x.into());
        }
        if let Some(x) = &self.imdb_id {
            put("imdbId", x.as_str().into());
        }
        if let Some(x) = self.tvdb_id {
            put("tvdbId", x.into());
        }
        if let Some(x) = self.year {
            put("year", x.into());
        }
        if let Some(x) = self.season {
            put("season", x.into());
        }
        if let Some(x) = self.episode {
            put("episode", x.into());
        }
        if let Some(x) = &self.release_group {
            put("releaseGroup", x.as_str().into());
        }
        if let Some(x) = &self.series_title {
            put("seriesTitle", x.as_str().into());
        }
        if let Some(x) = self.air_date {
            put("airDate", x.to_string().into());
        }
        if self.quality_name.is_some() || self.resolution.is_some() || self.source.is_some() {
            let mut q = serde_json::Map::new();
            if let Some(x) = &self.quality_name {
                q.insert("name".into(), x.as_str().into());
            }
            if let Some(x) = &self.source {
                q.insert("source".into(), x.as_str().into());
            }
            if let Some(x) = self.resolution {
                q.insert("resolution".into(), x.into());
            }
            put("quality", q.into());
        }
        v
    }
}

/// Search parameters of `/peer/search` (`PROTOCOL.md` §2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub tmdb_id: Option<u64>,
    /// The numeric part of an IMDb id (`tt0133093` and `133093` are equal).
    pub imdb_num: Option<u64>,
    pub tvdb_id: Option<u64>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
}

impl Query {
    fn matches(&self, k: &SearchKeys) -> bool {
        if let Some(id) = self.tmdb_id {
            return k.tmdb == Some(id);
        }
        if let Some(n) = self.imdb_num {
            return k.imdb == Some(n);
        }
        if let Some(id) = self.tvdb_id {
            return k.tvdb == Some(id)
                && self.season.is_none_or(|s| k.season == Some(s))
                && self.episode.is_none_or(|e| {
                    k.episode
                        .is_some_and(|first| (first..=k.episode_last.unwrap_or(first)).contains(&e))
                });
        }
        true
    }
}

/// One file of the catalogue. Kept small (about 200 bytes with its path)
/// so a library of 100,000 files fits a small NAS: the `Release` is derived
/// again from the path when a response needs it (or from what the *arr
/// said, kept in `told`: about 250 bytes more, estimated from the field
/// sizes and typical titles).
#[derive(Debug, Clone)]
struct Item {
    /// Path inside the library root; for an *arr library, the file's real
    /// (canonical) absolute path.
    rel_path: Box<str>,
    /// The hash part of the item id.
    id_hash: u64,
    size: u64,
    /// Modification time, seconds since the epoch.
    modified: u64,
    /// When this node first offered this version of the file (size and
    /// `modified`), seconds since the epoch: its `publishDate`.
    offered: u64,
    etag: [u8; 12],
    keys: SearchKeys,
    library: u16,
    /// What the *arr said about the file; `None`: the names say it.
    told: Option<Box<Told>>,
}

/// The facts of an *arr item that are not search keys.
#[derive(Debug, Clone)]
struct Told {
    title: Box<str>,
    year: Option<u16>,
    quality_name: Option<Box<str>>,
    source: Option<Box<str>>,
    resolution: Option<u32>,
    release_group: Option<Box<str>>,
    series_title: Option<Box<str>>,
}

/// What `/peer/search` filters on.
#[derive(Debug, Clone, Copy, Default)]
struct SearchKeys {
    tmdb: Option<u64>,
    imdb: Option<u64>,
    tvdb: Option<u64>,
    season: Option<u32>,
    episode: Option<u32>,
    /// The last episode of a multi-episode file (`S01E02E03`: 3).
    episode_last: Option<u32>,
}

/// One complete catalogue.
#[derive(Debug, Default)]
pub struct Snapshot {
    items: Vec<Item>,
    /// Item index by id hash.
    by_id: HashMap<u64, u32>,
    /// By library index: the real paths of an *arr library's root folders
    /// when its files were listed (empty for a folder library).
    arr_roots: Vec<Vec<PathBuf>>,
}

impl Snapshot {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Root {
    name: String,
    path: PathBuf,
    category: Category,
    extensions: Vec<String>,
    /// Where the files come from when not from `path`.
    arr: Option<ArrLibrary>,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub items: usize,
    pub skipped: usize,
    /// Video files left out because the catalogue was full.
    pub over_limit: usize,
    pub errors: usize,
    /// *arr libraries that could not be asked (their previous items kept).
    pub unavailable: usize,
    /// Folders read (folder libraries).
    pub folders: usize,
    pub elapsed: Duration,
    /// The same counts for each library, in configuration order.
    pub libraries: Vec<LibraryStats>,
}

/// What a scan found in one library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibraryStats {
    pub name: String,
    pub items: usize,
    pub folders: usize,
    pub skipped: usize,
    pub over_limit: usize,
    pub errors: usize,
    /// 1 when this *arr library could not be asked.
    pub unavailable: usize,
    pub elapsed: Duration,
}

/// How far the scan under way has got, for a progress line: which library
/// (its index; `usize::MAX` before the first), folders read and items
/// admitted so far in it. Updated once per folder, read from any thread.
#[derive(Debug, Default)]
pub struct ScanProgress {
    library: AtomicUsize,
    folders: AtomicUsize,
    items: AtomicUsize,
}

impl ScanProgress {
    /// (library index, folders read, items found) in the library under way.
    pub fn get(&self) -> (usize, usize, usize) {
        (
            self.library.load(Ordering::Relaxed),
            self.folders.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
        )
    }

    fn start(&self, library: usize) {
        self.folders.store(0, Ordering::Relaxed);
        self.items.store(0, Ordering::Relaxed);
        self.library.store(library, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Catalogue {
    roots: Vec<Root>,
    limit: usize,
    /// Where first-offered dates are kept; without it (`jack scan`, which
    /// runs beside a live node) they last as long as this catalogue.
    registry: Option<Arc<Registry>>,
    current: RwLock<Arc<Snapshot>>,
    progress: ScanProgress,
    /// The content digests the hasher found, by version (`serve/hasher`).
    digests: Arc<Digests>,
}

/// A file opened for serving, with the facts it is served with.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub size: u64,
    pub etag: String,
    /// The whole file's SHA-256, when known for exactly the version this
    /// descriptor reads (the same `fstat` as `etag`).
    pub sha256: Option<Sha256>,
    /// The modification time `Last-Modified` shows: whole seconds, clamped
    /// to 1970..=9999, which httpdate can format.
    pub modified: SystemTime,
    pub filename: String,
}

impl Catalogue {
    /// A catalogue of `libraries` holding at most `limit` items (memory is
    /// about 260 bytes per item; files past the limit are left out and
    /// counted in [`ScanStats::over_limit`]).
    pub fn new(libraries: &[Library], limit: usize) -> Catalogue {
        let roots = libraries
            .iter()
            .map(|l| Root {
                name: l.name.clone(),
                path: l.path.clone(),
                category: l.category,
                extensions: l
                    .extensions
                    .iter()
                    .map(|e| e.to_ascii_lowercase())
                    .collect(),
                arr: match &l.source {
                    LibrarySource::Directory => None,
                    LibrarySource::Arr(arr) => Some(ArrLibrary::new(arr)),
                },
            })
            .collect();
        Catalogue {
            roots,
            limit,
            registry: None,
            current: RwLock::new(Arc::new(Snapshot::default())),
            progress: ScanProgress {
                library: AtomicUsize::new(usize::MAX),
                ..ScanProgress::default()
            },
            digests: Arc::default(),
        }
    }

    /// This catalogue, keeping when each file was first offered in
    /// `registry` (written by scans only, in one transaction each).
    pub fn remembering_offers(mut self, registry: Arc<Registry>) -> Catalogue {
        self.registry = Some(registry);
        self
    }

    /// The progress of the scan under way (or of the last one).
    pub fn progress(&self) -> &ScanProgress {
        &self.progress
    }

    /// The content digests releases and file answers carry, filled by the
    /// hasher (`serve/hasher`).
    pub fn digests(&self) -> &Arc<Digests> {
        &self.digests
    }

    /// The catalogue as of the last completed scan.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    /// Scans every library and swaps the result in.
    pub fn rescan(&self) -> ScanStats {
        self.rescan_unless(&AtomicBool::new(false))
            .expect("a scan nobody cancels completes")
    }

    /// Like [`Catalogue::rescan`], but gives up (keeping the current
    /// catalogue) as soon as `cancel` is set; `None` then.
    pub fn rescan_unless(&self, cancel: &AtomicBool) -> Option<ScanStats> {
        let started = Instant::now();
        let previous = self.snapshot();
        let mut stats = ScanStats::default();
        let mut items = Vec::new();
        let mut arr_roots = Vec::with_capacity(self.roots.len());
        for (i, root) in self.roots.iter().enumerate() {
            self.progress.start(i);
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            let (t, before, found) = (Instant::now(), stats.clone(), items.len());
            let mut scan = Scan {
                index,
                out: &mut items,
                stats: &mut stats,
                cancel,
                limit: self.limit,
                progress: &self.progress,
            };
            arr_roots.push(match &root.arr {
                None => {
                    scan.folder(root);
                    Vec::new()
                }
                Some(arr) => scan.arr(root, arr, &previous),
            });
            stats.libraries.push(LibraryStats {
                name: root.name.clone(),
                items: items.len() - found,
                folders: stats.folders - before.folders,
                skipped: stats.skipped - before.skipped,
                over_limit: stats.over_limit - before.over_limit,
                errors: stats.errors - before.errors,
                unavailable: stats.unavailable - before.unavailable,
                elapsed: t.elapsed(),
            });
        }
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        items.sort_by(|a, b| (a.library, &a.rel_path).cmp(&(b.library, &b.rel_path)));
        self.date_offers(&mut items, &previous);
        let mut by_id = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            by_id.insert(item.id_hash, u32::try_from(i).unwrap_or(u32::MAX));
        }
        items.shrink_to_fit();
        stats.items = items.len();
        stats.elapsed = started.elapsed();
        *self.current.write() = Arc::new(Snapshot {
            items,
            by_id,
            arr_roots,
        });
        Some(stats)
    }

    /// Gives every item the time it was first offered: the registry's,
    /// when it remembers this version of the file; else the previous
    /// snapshot's (the registry could not be read or written last time);
    /// else now. Records what changed, in one transaction.
    fn date_offers(&self, items: &mut [Item], previous: &Snapshot) {
        let started = Instant::now();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let known = self.registry.as_ref().and_then(|r| match r.offers() {
            Ok(rows) => Some(rows),
            Err(e) => {
                log::warn!("cannot read when the files were first offered, dating them from the last scan error={e}");
                None
            }
        });
        // The first dating of a registry an older jack made: its files
        // were offered before now, since their own dates at the latest
        // (else every friend's RSS sync would see the whole library anew).
        let upgraded = known.as_ref().is_some_and(Vec::is_empty)
            && self.registry.as_ref().is_some_and(|r| r.predates_offers());
        let Some(changes) = date_items(items, known.as_deref(), previous, now, upgraded) else {
            return;
        };
        if let Some(registry) = &self.registry {
            if let Err(e) = registry.record_offers(&changes) {
                log::warn!("cannot record when files were first offered error={e}");
            } else {
                log::debug!(
                    "catalogue offers recorded items={} offered={} gone={} forgotten={} elapsed_ms={}",
                    items.len(),
                    changes.offered.len(),
                    changes.gone.len(),
                    changes.forget.len(),
                    started.elapsed().as_millis()
                );
            }
        }
    }

    pub fn search(&self, q: &Query) -> Vec<Release> {
        let snap = self.snapshot();
        snap.items
            .iter()
            .filter(|it| q.matches(&it.keys))
            .map(|it| self.release(it))
            .collect()
    }

    /// The release of `id` with the size, ETag and date of its file as the
    /// file endpoint would serve it now: one `stat` with the checks of
    /// [`Catalogue::open`], no scan. `Ok(None)` when `open` would find nothing.
    pub fn get(&self, id: &str) -> std::io::Result<Option<Release>> {
        let snap = self.snapshot();
        let Some((item, meta)) = self.stat_in(&snap, id)? else {
            return Ok(None);
        };
        let mut release = self.release(item);
        release.size = meta.len();
        release.etag = etag(&meta);
        release.sha256 = self.digests.sha256(&tag(&meta), meta.len());
        Ok(Some(release))
    }

    /// What the file of `id` is now, with the checks of [`Catalogue::open`]
    /// and one `stat`; `Ok(None)` when `open` would find nothing.
    pub fn stat(&self, id: &str) -> std::io::Result<Option<Metadata>> {
        Ok(self.stat_in(&self.snapshot(), id)?.map(|(_, meta)| meta))
    }

    fn stat_in<'s>(
        &self,
        snap: &'s Snapshot,
        id: &str,
    ) -> std::io::Result<Option<(&'s Item, Metadata)>> {
        let Some((item, real)) = self.locate(snap, id) else {
            return Ok(None);
        };
        match std::fs::metadata(&real) {
            Ok(m) if m.is_file() => Ok(Some((item, m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of every item of `snap` (the hasher's list of files).
    pub fn item_ids(&self, snap: &Snapshot) -> Vec<String> {
        snap.items.iter().map(|it| self.id_of(it)).collect()
    }

    fn id_of(&self, item: &Item) -> String {
        let root = &self.roots[usize::from(item.library)];
        format!(
            "{}:{}:{:016x}",
            root.name,
            kind_of(root.category),
            item.id_hash
        )
    }

    /// The item of `id` in `snap`: library name, kind and hash must all match.
    fn find<'s>(&self, snap: &'s Snapshot, id: &str) -> Option<&'s Item> {
        let mut parts = id.split(':');
        let (lib, kind, hash) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || hash.len() != 16 {
            return None;
        }
        let hash = crate::lexical::hex_u64(hash)?;
        let item = &snap.items[*snap.by_id.get(&hash)? as usize];
        let root = &self.roots[usize::from(item.library)];
        (root.name == lib && kind_of(root.category) == kind).then_some(item)
    }

    fn release(&self, item: &Item) -> Release {
        let root = &self.roots[usize::from(item.library)];
        let path = Path::new(&*item.rel_path);
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stem = file_name
            .rsplit_once('.')
            .map_or(file_name, |(stem, _)| stem);
        let facts = match &item.told {
            Some(told) => told.facts(&item.keys),
            None => facts_of(path),
        };
        let title = item.told.as_ref().map_or(stem, |t| &t.title);
        Release {
            id: self.id_of(item),
            title: title.to_string(),
            filename: file_name.to_string(),
            category: root.category,
            size: item.size,
            tmdb_id: facts.tmdb_id,
            imdb_id: facts.imdb_id,
            tvdb_id: facts.tvdb_id,
            year: facts.year,
            season: facts.season,
            episode: facts.episode,
            quality_name: facts.quality_name,
            source: facts.source,
            resolution: facts.resolution,
            release_group: facts.release_group,
            series_title: facts.series_title,
            air_date: facts.air_date.filter(|_| root.category == Category::Tv),
            publish_date: publish_date(item.offered),
            etag: etag_text(&item.etag),
            sha256: self.digests.sha256(&item.etag, item.size),
        }
    }

    /// Opens the file of item `id` for serving. `Ok(None)` when the id is
    /// unknown or the file is gone, was replaced by something that is not a
    /// regular file, or now resolves outside its library.
    pub fn open(&self, id: &str) -> std::io::Result<Option<OpenFile>> {
        let snap = self.snapshot();
        let Some((item, real)) = self.locate(&snap, id) else {
            return Ok(None);
        };
        let file = match File::open(&real) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        // Served front to back: a larger readahead window when the file is
        // not in the page cache (a NAS serves mostly cold files). Advice
        // only; a filesystem that ignores it serves the same.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
        Ok(Some(OpenFile {
            size: meta.len(),
            etag: etag(&meta),
            sha256: self.digests.sha256(&tag(&meta), meta.len()),
            modified: modified_time(&meta),
            filename: Path::new(&*item.rel_path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string(),
            file,
        }))
    }

    /// The item of `id` and the real path of its file, re-resolved now;
    /// `None` when the id is unknown, the path is gone, or it now resolves
    /// outside its library (for an *arr library: outside the *arr's root
    /// folders as of the scan).
    fn locate<'s>(&self, snap: &'s Snapshot, id: &str) -> Option<(&'s Item, PathBuf)> {
        let item = self.find(snap, id)?;
        let root = &self.roots[usize::from(item.library)];
        let inside = if root.arr.is_some() {
            let real = Path::new(&*item.rel_path).canonicalize().ok()?;
            let roots = snap.arr_roots.get(usize::from(item.library))?;
            roots.iter().any(|r| real.starts_with(r)).then_some(real)
        } else {
            let path = root.path.join(&*item.rel_path);
            let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.path.canonicalize()) else {
                return None;
            };
            real.starts_with(&real_root).then_some(real)
        };
        let Some(real) = inside else {
            log::warn!("refusing a file that now resolves outside its library id={id}");
            return None;
        };
        Some((item, real))
    }
}

/// A strong ETag from device, inode, size, and modification and change
/// times in nanoseconds: it changes when the file is modified or replaced,
/// even within the same second at the same size.
pub fn etag(meta: &std::fs::Metadata) -> String {
    etag_text(&tag(meta))
}

/// Which version of a file `meta` describes: the ETag's 96 bits (device,
/// inode, size, modification and change times), under which the hasher
/// keeps a version's digests. The change time tells a file rewritten in
/// place with its modification time put back (`cp -p` over it).
pub type Tag = [u8; 12];

/// The [`Tag`] of the file `meta` describes.
pub fn tag(meta: &std::fs::Metadata) -> Tag {
    let mut h = sha1_smol::Sha1::new();
    for n in [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
    ] {
        h.update(&n.to_le_bytes());
    }
    let digest = h.digest().bytes();
    let mut out = [0u8; 12];
    out.copy_from_slice(&digest[..12]);
    out
}

/// The last second an HTTP-date can show, 9999-12-31T23:59:59Z.
const LAST_HTTP_DATE_SECS: i64 = 253_402_300_799;

/// Modification time in whole seconds since the epoch, as `Last-Modified`
/// and `publishDate` show it: clamped to 1970..=9999, because httpdate
/// panics outside those years (a file dated 1960 made every request for it
/// a 500) and RFC 3339 has four-digit years. The ETag keeps the real time.
fn modified_secs(meta: &std::fs::Metadata) -> u64 {
    clamp_to_http_date(meta.mtime())
}

fn clamp_to_http_date(unix_secs: i64) -> u64 {
    u64::try_from(unix_secs.clamp(0, LAST_HTTP_DATE_SECS)).unwrap_or(0)
}

/// [`modified_secs`] as a time.
fn modified_time(meta: &std::fs::Metadata) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(modified_secs(meta))
}

fn publish_date(secs: u64) -> String {
    rfc3339(
        UNIX_EPOCH
            + Duration::from_secs(clamp_to_http_date(i64::try_from(secs).unwrap_or(i64::MAX))),
    )
}

/// How long the registry remembers an item no scan finds any more: a disk
/// away for less (unmounted, a NAS share down) is not offered anew when
/// it comes back.
const FORGET_GONE_AFTER: u64 = 30 * 24 * 3600;

/// Dates each of `items` (sorted by nothing in particular) with when this
/// node first offered its current version (size and modification second):
/// from `known` (the registry's rows) when it remembers that version, else
/// from `previous` when it held that version, else `now` (or, `upgraded`:
/// the first dating of a registry an older jack made, the file's own time
/// when earlier). Returns what the
/// registry must record, or `None` without `known` (nothing read, so
/// nothing written: a registry that could not be read is never
/// overwritten with later dates). The inode, the device and the change
/// time are not part of a version: they change when a disk is mounted
/// again, a hard link is made or removed, or a file is renamed, none of
/// which is new content.
fn date_items(
    items: &mut [Item],
    known: Option<&[Offer]>,
    previous: &Snapshot,
    now: u64,
    upgraded: bool,
) -> Option<OfferChanges> {
    let same = |size: u64, modified: u64, it: &Item| size == it.size && modified == it.modified;
    let remembered: HashMap<u64, &Offer> = known
        .unwrap_or_default()
        .iter()
        .map(|o| (o.item, o))
        .collect();
    let mut changes = OfferChanges::default();
    let mut found = HashSet::with_capacity(items.len());
    for it in items.iter_mut() {
        found.insert(it.id_hash);
        let row = remembered.get(&it.id_hash);
        if let Some(o) = row.filter(|o| same(o.size, o.modified, it)) {
            it.offered = o.first_offered;
            if o.gone_since.is_some() {
                changes.offered.push(Offer {
                    gone_since: None,
                    ..**o
                });
            }
            continue;
        }
        let before = previous
            .by_id
            .get(&it.id_hash)
            .and_then(|&i| previous.items.get(i as usize))
            .filter(|p| same(p.size, p.modified, it));
        let new = if upgraded { it.modified.min(now) } else { now };
        it.offered = before.map_or(new, |p| p.offered);
        changes.offered.push(Offer {
            item: it.id_hash,
            size: it.size,
            modified: it.modified,
            first_offered: it.offered,
            gone_since: None,
        });
    }
    for o in remembered.values().filter(|o| !found.contains(&o.item)) {
        match o.gone_since {
            None => changes.gone.push((o.item, now)),
            Some(since) if now.saturating_sub(since) > FORGET_GONE_AFTER => {
                changes.forget.push(o.item)
            }
            Some(_) => {}
        }
    }
    known.map(|_| changes)
}

fn etag_text(bytes: &[u8; 12]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn kind_of(category: Category) -> &'static str {
    match category {
        Category::Movies => "movie",
        Category::Tv => "episode",
    }
}

fn facts_of(rel: &Path) -> naming::NameFacts {
    let file_name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let folders: Vec<&str> = rel
        .parent()
        .map(|p| p.iter().filter_map(|c| c.to_str()).collect())
        .unwrap_or_default();
    naming::parse(file_name, &folders)
}

fn id_hash(root: &Root, rel_path: &str) -> u64 {
    let mut h = sha1_smol::Sha1::new();
    h.update(root.name.as_bytes());
    h.update(b"\0");
    h.update(rel_path.as_bytes());
    let d = h.digest().bytes();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn is_junk(name: &str) -> bool {
    name.starts_with('.') || JUNK.contains(&name)
}

fn scan_library(
    index: u16,
    root: &Root,
    out: &mut Vec<Item>,
    stats: &mut ScanStats,
    cancel: &AtomicBool,
    limit: usize,
    progress: &ScanProgress,
) {
    let real_root = match root.path.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            log::warn!(
                "library unreadable library={} path={} error={e}",
                root.name,
                root.path.display()
            );
            stats.errors += 1;
            return;
        }
    };
    let first = out.len();
    // Directories still to read, as paths inside the root.
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    // (device, inode) of every directory entered: no loops through links or bind mounts.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    if let Ok(m) = std::fs::metadata(&real_root) {
        seen.insert((m.dev(), m.ino()));
    }
    while let Some(rel_dir) = pending.pop() {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        progress.items.store(out.len() - first, Ordering::Relaxed);
        let dir = real_root.join(&rel_dir);
        stats.folders += 1;
        progress.folders.fetch_add(1, Ordering::Relaxed);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("cannot read folder library={} error={e}", root.name);
                stats.errors += 1;
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                stats.skipped += 1;
                continue;
            };
            if is_junk(name_str) {
                continue;
            }
            let rel = rel_dir.join(&name);
            let Ok(ft) = entry.file_type() else {
                stats.errors += 1;
                continue;
            };
            let meta = if ft.is_symlink() {
                // Follow a link only when it stays inside the library.
                match real_root.join(&rel).canonicalize() {
                    Ok(target) if target.starts_with(&real_root) => {
                        match std::fs::metadata(&target) {
                            Ok(m) => m,
                            Err(_) => continue,
                        }
                    }
                    _ => {
                        stats.skipped += 1;
                        continue;
                    }
                }
            } else {
                match entry.metadata() {
                    Ok(m) => m,
                    Err(_) => {
                        stats.errors += 1;
                        continue;
                    }
                }
            };
            if meta.is_dir() {
                if seen.insert((meta.dev(), meta.ino())) {
                    pending.push(rel);
                }
            } else if meta.is_file()
                && has_video_extension(name_str, &root.extensions)
                && let Some(rel) = rel.to_str()
            {
                if !safe_file_name(name_str) {
                    // PROTOCOL.md §2.2: no peer could take it as it is.
                    log::debug!(
                        "not serving a badly named file library={} file={rel:?}",
                        root.name
                    );
                    stats.skipped += 1;
                    continue;
                }
                if out.len() >= limit {
                    stats.over_limit += 1;
                    continue;
                }
                let facts = facts_of(Path::new(rel));
                out.push(Item {
                    id_hash: id_hash(root, rel),
                    size: meta.len(),
                    modified: modified_secs(&meta),
                    offered: 0,
                    etag: tag(&meta),
                    keys: SearchKeys {
                        tmdb: facts.tmdb_id,
                        imdb: facts.imdb_id.as_deref().and_then(imdb_number),
                        tvdb: facts.tvdb_id,
                        season: facts.season,
                        episode: facts.episode,
                        episode_last: facts.episode,
                    },
                    library: index,
                    rel_path: rel.into(),
                    told: None,
                });
            }
        }
    }
}

/// One library's part of a scan: where its items go and what is counted.
struct Scan<'a> {
    index: u16,
    out: &'a mut Vec<Item>,
    stats: &'a mut ScanStats,
    cancel: &'a AtomicBool,
    limit: usize,
    progress: &'a ScanProgress,
}

impl Scan<'_> {
    /// Walks a folder library.
    fn folder(&mut self, root: &Root) {
        let (index, limit) = (self.index, self.limit);
        let (out, stats) = (&mut *self.out, &mut *self.stats);
        scan_library(index, root, out, stats, self.cancel, limit, self.progress);
    }

    /// Asks an *arr library's source for its files and admits each one
    /// that resolves to a regular video file inside one of the *arr's root
    /// folders. An *arr that cannot be asked keeps `previous`'s items.
    /// Returns the root folders the admitted files are inside.
    fn arr(&mut self, root: &Root, arr: &ArrLibrary, previous: &Snapshot) -> Vec<PathBuf> {
        let room = self.limit.saturating_sub(self.out.len());
        let listing = match arr.fetch(self.cancel, room) {
            Ok(listing) => listing,
            Err(_) if self.cancel.load(Ordering::Relaxed) => return Vec::new(),
            Err(e) => {
                let kept: Vec<Item> = previous
                    .items
                    .iter()
                    .filter(|it| it.library == self.index)
                    .take(room)
                    .cloned()
                    .collect();
                log::warn!(
                    "library source unavailable, keeping its {} items library={} error={e}",
                    kept.len(),
                    root.name
                );
                self.stats.unavailable += 1;
                self.out.extend(kept);
                let roots = previous.arr_roots.get(usize::from(self.index));
                return roots.cloned().unwrap_or_default();
            }
        };
        let roots: Vec<PathBuf> = listing
            .root_folders
            .iter()
            .filter_map(|r| r.canonicalize().ok())
            .collect();
        if roots.is_empty() {
            log::warn!(
                "no root folder of the *arr is readable here: none of its files is served library={}",
                root.name
            );
        }
        self.stats.over_limit += listing.left_out;
        let (listed, before) = (listing.entries.len(), self.out.len());
        for entry in listing.entries {
            match admit(&entry.path, &roots, &root.extensions) {
                Some((real, meta)) => self
                    .out
                    .push(arr_item(self.index, root, entry, real, &meta)),
                None => {
                    log::debug!(
                        "not serving a file the *arr lists library={} file_id={}",
                        root.name,
                        entry.file_id
                    );
                    self.stats.skipped += 1;
                }
            }
        }
        log::info!(
            "library source asked library={} arr={} files={listed} served={} left_out={}",
            root.name,
            arr.arr().kind.as_str(),
            self.out.len() - before,
            listing.left_out
        );
        roots
    }
}

/// The real path and metadata of a file an *arr names, when jack may serve
/// it: the path resolves (symlinks followed) to a regular file with a
/// video extension inside one of `roots` (the *arr's root folders, real
/// paths). The *arr's word alone is never enough: a path outside its root
/// folders, or a link leading out of them, is refused.
fn admit(path: &Path, roots: &[PathBuf], extensions: &[String]) -> Option<(String, Metadata)> {
    let real = path.canonicalize().ok()?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    let name = real.file_name()?.to_str()?;
    if !meta.is_file() || !has_video_extension(name, extensions) || !safe_file_name(name) {
        return None;
    }
    Some((real.into_os_string().into_string().ok()?, meta))
}

fn arr_item(index: u16, root: &Root, e: Entry, real: String, meta: &Metadata) -> Item {
    let f = e.facts;
    Item {
        id_hash: arr_id_hash(root, e.file_id),
        size: meta.len(),
        modified: modified_secs(meta),
        offered: 0,
        etag: tag(meta),
        keys: SearchKeys {
            tmdb: f.tmdb_id,
            imdb: f.imdb_id.as_deref().and_then(imdb_number),
            tvdb: f.tvdb_id,
            season: f.season,
            episode: f.episode,
            episode_last: e.episode_last,
        },
        library: index,
        rel_path: real.into(),
        told: Some(Box::new(Told {
            title: e.title.into(),
            year: f.year,
            quality_name: f.quality_name.map(Into::into),
            source: f.source.map(Into::into),
            resolution: f.resolution,
            release_group: f.release_group.map(Into::into),
            series_title: f.series_title.map(Into::into),
        })),
    }
}

impl Told {
    /// The facts a release shows, as the names of a folder item give them.
    fn facts(&self, keys: &SearchKeys) -> naming::NameFacts {
        naming::NameFacts {
            tmdb_id: keys.tmdb,
            imdb_id: keys.imdb.map(|n| format!("tt{n:07}")),
            tvdb_id: keys.tvdb,
            year: self.year,
            season: keys.season,
            episode: keys.episode,
            resolution: self.resolution,
            source: self.source.as_deref().map(str::to_string),
            quality_name: self.quality_name.as_deref().map(str::to_string),
            release_group: self.release_group.as_deref().map(str::to_string),
            series_title: self.series_title.as_deref().map(str::to_string),
            air_date: None,
        }
    }
}

/// The hash part of an *arr item's id: the library name and the *arr's id
/// of the file (kept through renames; a new file, an upgrade, is a new id).
fn arr_id_hash(root: &Root, file_id: u64) -> u64 {
    id_hash(root, &format!("\0arr-file\0{file_id}"))
}

fn has_video_extension(name: &str, extensions: &[String]) -> bool {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let ext = ext.to_ascii_lowercase();
    if extensions.is_empty() {
        DEFAULT_EXTENSIONS.contains(&ext.as_str())
    } else {
        extensions.contains(&ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn lib(name: &str, path: &Path, category: Category) -> Library {
        Library {
            name: name.into(),
            path: path.to_path_buf(),
            category,
            extensions: Vec::new(),
            source: crate::config::LibrarySource::Directory,
        }
    }

    fn touch(path: &Path, bytes: usize) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![7u8; bytes]).unwrap();
    }

    #[test]
    fn scans_videos_skips_junk_and_derives_releases() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("movies");
        touch(
            &m.join("The Matrix (1999) {tmdb-603}/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv"),
            10,
        );
        touch(&m.join("Other.Movie.2020.2160p.WEB-DL.MP4"), 3);
        touch(&m.join("notes.txt"), 1);
        touch(&m.join(".hidden/Secret.2000.mkv"), 1);
        touch(&m.join(".Hidden.2000.mkv"), 1);
        touch(&m.join("@eaDir/thumb.mkv"), 1);
        touch(&m.join("#recycle/Deleted.2001.mkv"), 1);
        touch(&m.join("x/.@__thumb/t.mkv"), 1);
        // PROTOCOL.md §2.2: names no peer may take are not offered.
        touch(&m.join(" Lead.2000.mkv"), 1);
        touch(&m.join("A Folder/Tab\tIn.2000.mkv"), 1);
        touch(&m.join("  Spaced.2000.mkv  "), 1);
        let cat = Catalogue::new(&[lib("movies", &m, Category::Movies)], 1000);
        let stats = cat.rescan();
        assert_eq!(stats.items, 2);
        // The two video files with a bad name; a trailing space makes
        // "mkv " no video extension.
        assert_eq!(stats.skipped, 2);
        let all = cat.search(&Query::default());
        let names: Vec<&str> = all.iter().map(|r| r.filename.as_str()).collect();
        assert_eq!(
            names,
            [
                "Other.Movie.2020.2160p.WEB-DL.MP4",
                "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv"
            ]
        );
        let matrix = &all[1];
        assert_eq!(matrix.title, "The.Matrix.1999.1080p.BluRay.x264-GRP");
        assert_eq!(matrix.size, 10);
        assert_eq!(matrix.tmdb_id, Some(603));
        assert_eq!(matrix.resolution, Some(1080));
        assert!(
            matrix.id.starts_with("movies:movie:") && matrix.id.len() == "movies:movie:".len() + 16
        );
        assert!(!matrix.id.contains("Matrix"), "ids never reveal a path");
        let json = matrix.to_json();
        assert_eq!(json["category"], 2000);
        assert_eq!(json["tmdbId"], 603);
        assert_eq!(json["quality"]["resolution"], 1080);
        assert!(json["publishDate"].as_str().unwrap().ends_with('Z'));
        assert_eq!(cat.get(&matrix.id).unwrap().unwrap(), *matrix);
        assert_eq!(
            cat.search(&Query {
                tmdb_id: Some(603),
                ..Query::default()
            })
            .len(),
            1
        );
        assert_eq!(
            cat.search(&Query {
                tmdb_id: Some(604),
                ..Query::default()
            })
            .len(),
            0
        );
    }

    #[test]
    fn the_catalogue_holds_at_most_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            touch(&dir.path().join(format!("M{i}.2001.mkv")), 1);
        }
        let cat = Catalogue::new(&[lib("m", dir.path(), Category::Movies)], 3);
        let stats = cat.rescan();
        assert_eq!((stats.items, stats.over_limit), (3, 2));
        assert_eq!(cat.search(&Query::default()).len(), 3);
    }

    #[test]
    fn ids_are_stable_across_scans_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("A.2001.mkv"), 5);
        let libs = [lib("m", dir.path(), Category::Movies)];
        let a = Catalogue::new(&libs, 1000);
        a.rescan();
        let b = Catalogue::new(&libs, 1000);
        b.rescan();
        assert_eq!(
            a.search(&Query::default())[0].id,
            b.search(&Query::default())[0].id
        );
    }

    #[test]
    fn tv_search_narrows_by_season_and_episode() {
        let dir = tempfile::tempdir().unwrap();
        let tv = dir.path();
        touch(
            &tv.join("Show {tvdb-81189}/Season 01/Show.S01E01.720p.mkv"),
            1,
        );
        touch(
            &tv.join("Show {tvdb-81189}/Season 01/Show.S01E02.720p.mkv"),
            1,
        );
        touch(
            &tv.join("Show {tvdb-81189}/Season 02/Show.S02E01.720p.mkv"),
            1,
        );
        let cat = Catalogue::new(&[lib("tv", tv, Category::Tv)], 1000);
        cat.rescan();
        let q = |season, episode| Query {
            tvdb_id: Some(81189),
            season,
            episode,
            ..Query::default()
        };
        assert_eq!(cat.search(&q(None, None)).len(), 3);
        assert_eq!(cat.search(&q(Some(1), None)).len(), 2);
        assert_eq!(cat.search(&q(Some(1), Some(2))).len(), 1);
        assert_eq!(cat.search(&q(Some(3), None)).len(), 0);
        assert_eq!(cat.search(&q(None, None))[0].category_code(), 5000);
    }

    #[test]
    fn a_daily_episode_carries_its_air_date() {
        let dir = tempfile::tempdir().unwrap();
        let (tv, movies) = (dir.path().join("tv"), dir.path().join("movies"));
        touch(
            &tv.join("Show {tvdb-71256}/Show.2011.03.15.720p.HDTV.mkv"),
            1,
        );
        touch(&tv.join("Show {tvdb-71256}/Show.S01E02.720p.HDTV.mkv"), 1);
        touch(&movies.join("Movie.2011.03.15.1080p.mkv"), 1);
        let cat = Catalogue::new(
            &[
                lib("tv", &tv, Category::Tv),
                lib("movies", &movies, Category::Movies),
            ],
            1000,
        );
        cat.rescan();
        let json: Vec<(String, serde_json::Value)> = cat
            .search(&Query::default())
            .iter()
            .map(|r| (r.filename.clone(), r.to_json()["airDate"].clone()))
            .collect();
        assert_eq!(
            json,
            [
                ("Show.2011.03.15.720p.HDTV.mkv".into(), "2011-03-15".into()),
                ("Show.S01E02.720p.HDTV.mkv".into(), serde_json::Value::Null),
                ("Movie.2011.03.15.1080p.mkv".into(), serde_json::Value::Null),
            ]
        );
    }

    #[test]
    fn symlinks_never_lead_out_of_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let lib_dir = dir.path().join("lib");
        let outside = dir.path().join("outside");
        touch(&outside.join("Secret.2000.mkv"), 4);
        touch(&lib_dir.join("Inside.2000.mkv"), 4);
        std::os::unix::fs::symlink(
            outside.join("Secret.2000.mkv"),
            lib_dir.join("Leak.2000.mkv"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&outside, lib_dir.join("outdir")).unwrap();
        std::os::unix::fs::symlink(
            lib_dir.join("Inside.2000.mkv"),
            lib_dir.join("Alias.2000.mkv"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&lib_dir, lib_dir.join("loop")).unwrap();
        let cat = Catalogue::new(&[lib("m", &lib_dir, Category::Movies)], 1000);
        cat.rescan();
        let names: Vec<String> = cat
            .search(&Query::default())
            .into_iter()
            .map(|r| r.filename)
            .collect();
        assert_eq!(names, ["Alias.2000.mkv", "Inside.2000.mkv"]);
    }

    #[test]
    fn open_refuses_a_file_swapped_for_a_link_outside() {
        let dir = tempfile::tempdir().unwrap();
        let lib_dir = dir.path().join("lib");
        touch(&lib_dir.join("A.2000.mkv"), 4);
        touch(&dir.path().join("secret.mkv"), 4);
        let cat = Catalogue::new(&[lib("m", &lib_dir, Category::Movies)], 1000);
        cat.rescan();
        let id = cat.search(&Query::default())[0].id.clone();
        let opened = cat.open(&id).unwrap().unwrap();
        assert_eq!(opened.size, 4);
        fs::remove_file(lib_dir.join("A.2000.mkv")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.mkv"), lib_dir.join("A.2000.mkv"))
            .unwrap();
        assert!(cat.open(&id).unwrap().is_none());
        assert!(cat.open("m:movie:0000000000000000").unwrap().is_none());
    }

    #[test]
    fn get_reports_the_file_as_it_is_now_without_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("A.2000.mkv");
        touch(&p, 4);
        let cat = Catalogue::new(&[lib("m", dir.path(), Category::Movies)], 1000);
        cat.rescan();
        let id = cat.search(&Query::default())[0].id.clone();
        let before = cat.get(&id).unwrap().unwrap();
        fs::write(&p, b"longer now").unwrap();
        let now = cat.get(&id).unwrap().unwrap();
        let opened = cat.open(&id).unwrap().unwrap();
        assert_eq!((now.size, &now.etag), (10, &opened.etag));
        assert_ne!(now.etag, before.etag);
        assert_eq!(
            cat.search(&Query::default())[0].size,
            4,
            "search keeps the scan"
        );
        fs::remove_file(&p).unwrap();
        assert_eq!(cat.get(&id).unwrap(), None);
    }

    #[test]
    fn etag_changes_when_the_file_is_replaced_in_the_same_second_at_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mkv");
        fs::write(&p, b"aaaa").unwrap();
        let before = etag(&fs::metadata(&p).unwrap());
        let tmp = dir.path().join("a.tmp");
        fs::write(&tmp, b"bbbb").unwrap();
        fs::rename(&tmp, &p).unwrap();
        let after = etag(&fs::metadata(&p).unwrap());
        assert_ne!(before, after);
        assert!(after.starts_with('"') && after.ends_with('"') && !after.starts_with("W/"));
    }

    /// httpdate panics on a time before 1970 or after 9999: a file dated
    /// outside is shown at the nearest date it can show, everywhere.
    #[test]
    fn a_file_dated_1960_is_shown_at_the_epoch_with_an_etag_that_still_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("Old.1960.mkv");
        touch(&p, 4);
        let date_file = |years_before_1970: u64| {
            let before = Duration::from_secs(years_before_1970 * 365 * 86_400);
            let f = fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(UNIX_EPOCH - before).unwrap();
        };
        date_file(10);
        let cat = Catalogue::new(&[lib("m", dir.path(), Category::Movies)], 1000);
        cat.rescan();
        let scanned = cat.search(&Query::default()).remove(0);
        let offered = crate::clock::parse_rfc3339(&scanned.publish_date).unwrap();
        let age = SystemTime::now().duration_since(offered).unwrap();
        assert!(
            age < Duration::from_secs(60),
            "first offered now, not in 1960"
        );
        let opened = cat.open(&scanned.id).unwrap().unwrap();
        assert_eq!(opened.modified, UNIX_EPOCH);
        assert_eq!(
            httpdate::fmt_http_date(opened.modified),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let now = cat.get(&scanned.id).unwrap().unwrap();
        assert_eq!(now, scanned);
        assert_eq!(now.etag, opened.etag);
        date_file(9);
        let moved = cat.open(&scanned.id).unwrap().unwrap();
        assert_eq!(moved.modified, UNIX_EPOCH);
        assert_ne!(moved.etag, opened.etag);
    }

    /// PROTOCOL.md §2.2: `publishDate` is when this node first offered
    /// the file, kept in the registry across restarts and rescans; a
    /// replaced file is offered anew, a file away for a while is not.
    #[test]
    fn first_offered_dates_live_in_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("movies");
        let p = m.join("Old.Copy.2001.mkv");
        touch(&p, 4);
        let years_ago = SystemTime::now() - Duration::from_secs(10 * 365 * 86_400);
        let set_mtime = || {
            let f = fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(years_ago).unwrap();
        };
        set_mtime();
        let reg = Arc::new(Registry::open(&dir.path().join("jack.db")).unwrap());
        let start = || {
            let cat = Catalogue::new(&[lib("movies", &m, Category::Movies)], 10)
                .remembering_offers(reg.clone());
            cat.rescan();
            cat
        };
        let date = |cat: &Catalogue| {
            let all = cat.search(&Query::default());
            all.first().map(|r| r.publish_date.clone())
        };
        let cat = start();
        let first = date(&cat).unwrap();
        let offered = crate::clock::parse_rfc3339(&first).unwrap();
        assert!(SystemTime::now().duration_since(offered).unwrap() < Duration::from_secs(60));
        let rows = reg.offers().unwrap();
        assert_eq!(rows.len(), 1);
        // Pretend it was first offered long ago, to tell dates apart
        // without sleeping: every scan, and a restart, keep that date.
        let row = Offer {
            first_offered: 1_000_000_000,
            ..rows[0]
        };
        let changes = OfferChanges {
            offered: vec![row],
            ..OfferChanges::default()
        };
        reg.record_offers(&changes).unwrap();
        let kept = "2001-09-09T01:46:40Z";
        let cat = start();
        assert_eq!(date(&cat).as_deref(), Some(kept), "after a restart");
        cat.rescan();
        assert_eq!(date(&cat).as_deref(), Some(kept), "after a rescan");
        let id = cat.search(&Query::default())[0].id.clone();
        assert_eq!(cat.get(&id).unwrap().unwrap().publish_date, kept);
        // Away for a scan (a disk unmounted), then back: the same offer.
        let aside = dir.path().join("aside.mkv");
        fs::rename(&p, &aside).unwrap();
        cat.rescan();
        assert_eq!(date(&cat), None);
        assert!(reg.offers().unwrap()[0].gone_since.is_some());
        fs::rename(&aside, &p).unwrap();
        cat.rescan();
        assert_eq!(date(&cat).as_deref(), Some(kept), "back after a while");
        assert_eq!(reg.offers().unwrap()[0].gone_since, None);
        // Replaced by other content (another size), dated years ago too:
        // offered anew, now.
        fs::write(&p, b"new content").unwrap();
        set_mtime();
        cat.rescan();
        let anew = crate::clock::parse_rfc3339(&date(&cat).unwrap()).unwrap();
        assert!(SystemTime::now().duration_since(anew).unwrap() < Duration::from_secs(60));
        assert_eq!(
            start().search(&Query::default())[0].publish_date,
            date(&cat).unwrap()
        );
    }

    /// Without the registry's rows (none, or it could not be read), dates
    /// come from the previous scan, and nothing is to be written; a row
    /// gone for more than [`FORGET_GONE_AFTER`] is forgotten.
    #[test]
    fn dates_without_the_registry_and_forgetting() {
        let item = |id_hash, size, modified| Item {
            rel_path: "x.mkv".into(),
            id_hash,
            size,
            modified,
            offered: 0,
            etag: [0; 12],
            keys: SearchKeys::default(),
            library: 0,
            told: None,
        };
        let previous = Snapshot {
            items: vec![Item {
                offered: 500,
                ..item(1, 10, 100)
            }],
            by_id: HashMap::from([(1, 0)]),
            arr_roots: Vec::new(),
        };
        let mut items = vec![item(1, 10, 100), item(2, 10, 100)];
        assert_eq!(date_items(&mut items, None, &previous, 9_000, false), None);
        assert_eq!((items[0].offered, items[1].offered), (500, 9_000));
        // The registry remembers neither: both are written, item 1 with the
        // previous scan's date.
        let gone_long = Offer {
            item: 3,
            size: 1,
            modified: 1,
            first_offered: 1,
            gone_since: Some(1),
        };
        let gone_lately = Offer {
            item: 4,
            gone_since: Some(9_000),
            ..gone_long
        };
        let present = Offer {
            item: 5,
            gone_since: None,
            ..gone_long
        };
        let now = 1 + FORGET_GONE_AFTER + 1;
        let known = [gone_long, gone_lately, present];
        let changes = date_items(&mut items, Some(&known), &previous, now, false).unwrap();
        let firsts: Vec<(u64, u64)> = changes
            .offered
            .iter()
            .map(|o| (o.item, o.first_offered))
            .collect();
        assert_eq!(firsts, [(1, 500), (2, now)]);
        assert_eq!(changes.gone, [(5, now)]);
        assert_eq!(changes.forget, [3]);
        // The first dating of a registry an older jack made: a file not
        // known before keeps its own (earlier) time, not now; one dated in
        // the future is offered now.
        let mut items = vec![item(2, 10, 100), item(6, 10, now + 50)];
        let changes = date_items(&mut items, Some(&[]), &Snapshot::default(), now, true).unwrap();
        assert_eq!((items[0].offered, items[1].offered), (100, now));
        assert_eq!(changes.offered.len(), 2);
    }

    #[test]
    fn shown_dates_stay_within_what_an_http_date_can_show() {
        let last = u64::try_from(LAST_HTTP_DATE_SECS).unwrap();
        for (mtime, want) in [
            (i64::MIN, 0),
            (-315_360_000, 0),
            (-1, 0),
            (0, 0),
            (1_767_323_045, 1_767_323_045),
            (LAST_HTTP_DATE_SECS, last),
            (LAST_HTTP_DATE_SECS + 1, last),
            (i64::MAX, last),
        ] {
            assert_eq!(clamp_to_http_date(mtime), want, "{mtime}");
        }
        let latest = UNIX_EPOCH + Duration::from_secs(last);
        assert_eq!(
            httpdate::fmt_http_date(latest),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(publish_date(last), "9999-12-31T23:59:59Z");
    }

    /// An *arr's word is not enough: a file it names is served only when
    /// it resolves to a regular video file inside one of its root folders,
    /// under a name PROTOCOL.md §2.2 allows.
    #[test]
    fn an_arr_file_is_admitted_only_inside_its_root_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("movies");
        let inside = root.join("A (2000)/A.2000.mkv");
        touch(&inside, 3);
        touch(&dir.path().join("outside/Secret.2000.mkv"), 3);
        touch(&root.join("B (2000)/notes.txt"), 3);
        fs::create_dir_all(root.join("C (2000)/C.2000.mkv")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("outside/Secret.2000.mkv"),
            root.join("A (2000)/Leak.2000.mkv"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&inside, root.join("A (2000)/Alias.2000.mkv")).unwrap();
        touch(&root.join("D (2000)/.D.2000.mkv"), 3);
        touch(&root.join("D (2000)/  D.2000.mkv  "), 3);
        let roots = [root.canonicalize().unwrap()];
        let ok = |p: &Path| admit(p, &roots, &[]).map(|(real, meta)| (real, meta.len()));
        let real_inside = inside.canonicalize().unwrap();
        let want = Some((real_inside.to_str().unwrap().to_string(), 3));
        assert_eq!(ok(&inside), want);
        assert_eq!(ok(&root.join("A (2000)/../A (2000)/A.2000.mkv")), want);
        assert_eq!(
            ok(&root.join("A (2000)/Alias.2000.mkv")),
            want,
            "a link inside"
        );
        for refused in [
            dir.path().join("outside/Secret.2000.mkv"),
            root.join("A (2000)/Leak.2000.mkv"),
            root.join("../outside/Secret.2000.mkv"),
            root.join("B (2000)/notes.txt"),
            root.join("C (2000)/C.2000.mkv"),
            root.join("gone.mkv"),
            root.join("D (2000)/.D.2000.mkv"),
            root.join("D (2000)/  D.2000.mkv  "),
        ] {
            assert_eq!(ok(&refused), None, "{}", refused.display());
        }
        assert_eq!(
            admit(&inside, &[], &[]).map(|(r, _)| r),
            None,
            "no root folder"
        );
    }

    #[test]
    fn a_multi_episode_item_is_found_by_each_of_its_episodes() {
        let keys = SearchKeys {
            tvdb: Some(1),
            season: Some(1),
            episode: Some(2),
            episode_last: Some(4),
            ..SearchKeys::default()
        };
        let q = |episode| Query {
            tvdb_id: Some(1),
            season: Some(1),
            episode,
            ..Query::default()
        };
        let found: Vec<bool> = [None, Some(1), Some(2), Some(3), Some(4), Some(5)]
            .into_iter()
            .map(|e| q(e).matches(&keys))
            .collect();
        assert_eq!(found, [true, false, true, true, true, false]);
    }
}
