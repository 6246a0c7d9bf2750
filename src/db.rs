//! The download registry: SQLite, the one source of truth for downloads.
//!
//! Only this module (with its part `db/clients.rs`: categories, pending
//! adds and removals for the download-client API) contains SQL. One connection sits behind a
//! `parking_lot::Mutex` that is held only for the duration of a statement or
//! transaction, never across network or disk I/O of the caller. Every status
//! change writes its `download_events` row in the same transaction, so the
//! history can never disagree with the state.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit that has
//! returned survives power loss (see ARCHITECTURE.md). Migrations are an
//! ordered list applied by `PRAGMA user_version`, each in its own
//! transaction.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::clock::now_rfc3339;
use crate::error::{Error, Result};

mod clients;
mod digests;
mod offers;
mod proof;
pub use clients::{ClientRow, Grab, NewGrab, TagEdit, split_tags};
pub use digests::FileId;
pub use offers::{Offer, OfferChanges};
pub use proof::BadPieces;

/// The schema, one entry per version. Never edit an entry that has shipped;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: downloads and their event history.
    "CREATE TABLE downloads (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        stub_name        TEXT    NOT NULL,
        info_hash        TEXT    NOT NULL,
        peer             TEXT    NOT NULL,
        item_id          TEXT    NOT NULL,
        title            TEXT    NOT NULL,
        file_name        TEXT    NOT NULL,
        part_path        TEXT    NOT NULL,
        dest_path        TEXT    NOT NULL,
        etag             TEXT,
        expected_bytes   INTEGER NOT NULL CHECK (expected_bytes >= 0),
        downloaded_bytes INTEGER NOT NULL DEFAULT 0
                         CHECK (downloaded_bytes >= 0 AND downloaded_bytes <= expected_bytes),
        status           TEXT    NOT NULL CHECK (status IN
                         ('queued','downloading','retrying','paused','completed','failed')),
        attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        restarts         INTEGER NOT NULL DEFAULT 0 CHECK (restarts >= 0),
        error            TEXT,
        created_at       TEXT    NOT NULL,
        updated_at       TEXT    NOT NULL,
        completed_at     TEXT
    );
    CREATE INDEX downloads_info_hash ON downloads (info_hash);
    CREATE INDEX downloads_status ON downloads (status);
    CREATE TABLE download_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        download_id INTEGER NOT NULL REFERENCES downloads (id) ON DELETE CASCADE,
        at          TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        detail      TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX download_events_by_download ON download_events (download_id, id);",
    // 2: stubs that could not be read, kept so `jack status` can show them.
    "CREATE TABLE invalid_stubs (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        stub_name TEXT NOT NULL,
        reason    TEXT NOT NULL,
        at        TEXT NOT NULL
    );",
    // 3: the file a hand-off gives the final name to (`dev:ino`, recorded
    // before the hand-off begins: the evidence that lets start-up adopt a
    // final file), and the stubs the watch folder has processed (so a
    // restart processes none of them again).
    "ALTER TABLE downloads ADD COLUMN handoff_file TEXT;
    CREATE TABLE stubs_seen (
        stub_name   TEXT    PRIMARY KEY,
        len         INTEGER NOT NULL,
        modified_ns INTEGER NOT NULL,
        at          TEXT    NOT NULL
    );",
    // 4: the qBittorrent-compatible API: a category per download, a removal
    // asked for (finished once no worker holds the download, at the latest
    // at the next start), the categories *arr created, and the adds taken
    // but not yet turned into downloads (a stub, or a peer's item for a
    // link), so a restart loses none of them.
    "ALTER TABLE downloads ADD COLUMN category TEXT NOT NULL DEFAULT '';
    ALTER TABLE downloads ADD COLUMN removal TEXT
        CHECK (removal IN ('keep_files', 'delete_files'));
    CREATE TABLE categories (
        name      TEXT PRIMARY KEY,
        save_path TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE grabs (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        stub_name TEXT    NOT NULL,
        stub      BLOB,
        info_hash TEXT,
        title     TEXT    NOT NULL,
        size      INTEGER NOT NULL CHECK (size >= 0),
        peer      TEXT    NOT NULL,
        item_id   TEXT    NOT NULL,
        category  TEXT    NOT NULL DEFAULT '',
        added_at  TEXT    NOT NULL,
        CHECK ((stub IS NULL) = (info_hash IS NULL))
    );",
    // 5: who owns the bytes (PROTOCOL.md §2.4). `generation` names the
    // bytes of a row's `.part`: it changes whenever they stop being a
    // prefix of what the row expects (a restart from 0, a new version, a
    // failed sync), and a written record is trusted only for the row and
    // generation it names. `high_water`: the highest offset ever made
    // durable for the row's current version, so fetching discarded bytes
    // again is not progress. `cancelled`: a status of its own. SQLite
    // cannot change a CHECK in place: the table is made again (foreign
    // keys are off during migrations, so no event is lost).
    "CREATE TABLE downloads_v5 (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        stub_name        TEXT    NOT NULL,
        info_hash        TEXT    NOT NULL,
        peer             TEXT    NOT NULL,
        item_id          TEXT    NOT NULL,
        title            TEXT    NOT NULL,
        file_name        TEXT    NOT NULL,
        part_path        TEXT    NOT NULL,
        dest_path        TEXT    NOT NULL,
        etag             TEXT,
        expected_bytes   INTEGER NOT NULL CHECK (expected_bytes >= 0),
        downloaded_bytes INTEGER NOT NULL DEFAULT 0
                         CHECK (downloaded_bytes >= 0 AND downloaded_bytes <= expected_bytes),
        status           TEXT    NOT NULL CHECK (status IN
                         ('queued','downloading','retrying','paused','completed','failed',
                          'cancelled')),
        attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        restarts         INTEGER NOT NULL DEFAULT 0 CHECK (restarts >= 0),
        error            TEXT,
        created_at       TEXT    NOT NULL,
        updated_at       TEXT    NOT NULL,
        completed_at     TEXT,
        handoff_file     TEXT,
        category         TEXT    NOT NULL DEFAULT '',
        removal          TEXT    CHECK (removal IN ('keep_files', 'delete_files')),
        generation       INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0),
        high_water       INTEGER NOT NULL DEFAULT 0
                         CHECK (high_water >= 0 AND high_water <= expected_bytes)
    );
    INSERT INTO downloads_v5 (id, stub_name, info_hash, peer, item_id, title, file_name,
        part_path, dest_path, etag, expected_bytes, downloaded_bytes, status, attempts,
        restarts, error, created_at, updated_at, completed_at, handoff_file, category,
        removal, high_water)
    SELECT id, stub_name, info_hash, peer, item_id, title, file_name, part_path, dest_path,
        etag, expected_bytes, downloaded_bytes, status, attempts, restarts, error,
        created_at, updated_at, completed_at, handoff_file, category, removal,
        downloaded_bytes
    FROM downloads;
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'downloads_v5', 0 WHERE NOT EXISTS
            (SELECT 1 FROM sqlite_sequence WHERE name = 'downloads_v5');
    UPDATE sqlite_sequence SET seq = max(seq,
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'downloads'), 0))
        WHERE name = 'downloads_v5';
    DROP TABLE downloads;
    ALTER TABLE downloads_v5 RENAME TO downloads;
    CREATE INDEX downloads_info_hash ON downloads (info_hash);
    CREATE INDEX downloads_status ON downloads (status);",
    // 6: a real pause (PROTOCOL.md §5). `paused` is the owner's stop (it
    // was `cancelled`: the same state, now reached by pause and left by
    // resume); a download waiting for room on the disk, which was
    // `paused`, is `retrying` (it resumes by itself, its error says what
    // it waits for). An add made with `paused=true` keeps that until it
    // becomes a download.
    "UPDATE downloads SET status = CASE status
         WHEN 'paused' THEN 'retrying'
         WHEN 'cancelled' THEN 'paused'
         ELSE status END
     WHERE status IN ('paused', 'cancelled');
    ALTER TABLE grabs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));",
    // 7: the qBittorrent API's tags: every tag made (`tags`), and each
    // download's and pending add's, sorted and joined by commas (a tag
    // has none).
    "CREATE TABLE tags (name TEXT PRIMARY KEY);
    ALTER TABLE downloads ADD COLUMN tags TEXT NOT NULL DEFAULT '';
    ALTER TABLE grabs ADD COLUMN tags TEXT NOT NULL DEFAULT '';",
    // 8: when this node first offered each file it serves (PROTOCOL.md
    // §2.2 `publishDate`): the item (its id's 64-bit hash, as SQLite's
    // signed integer), the version offered (size and modification second),
    // when a scan first found that version (Unix seconds), and since when
    // scans no longer find the item (kept a while: a disk that comes back
    // is not offered anew).
    "CREATE TABLE offers (
        item          INTEGER PRIMARY KEY,
        size          INTEGER NOT NULL CHECK (size >= 0),
        modified      INTEGER NOT NULL,
        first_offered INTEGER NOT NULL,
        gone_since    INTEGER
    );",
    // 9: a stub set aside `.failed` is listed with its download, found by
    // the stub's name (`download/aside`, each status poll): an index, not
    // a scan of every download per stub.
    "CREATE INDEX downloads_stub_name ON downloads(stub_name);",
    // 10: the content digests of files this node has (PROTOCOL.md §2.6),
    // under the file's identity: device and inode (the key; hard links
    // share one), size and modification time in nanoseconds (a digest is
    // of that version only). `pieces` is the 32-byte SHA-256 of each
    // 16 MiB piece, concatenated.
    "CREATE TABLE digests (
        dev       INTEGER NOT NULL,
        ino       INTEGER NOT NULL,
        size      INTEGER NOT NULL CHECK (size >= 0),
        mtime_ns  INTEGER NOT NULL,
        sha256    BLOB    NOT NULL CHECK (length(sha256) = 32),
        pieces    BLOB    NOT NULL CHECK (length(pieces) % 32 = 0),
        hashed_at INTEGER NOT NULL,
        PRIMARY KEY (dev, ino)
    );",
    // 11: a download checked against its source's digests (PROTOCOL.md
    // §2.6): the version's whole-file SHA-256 (hex) when its release gave
    // one, the `/peer/search` query that finds the release on other nodes
    // (`tmdbId=603`; its ids), the piece digests once fetched, how far the bytes are hashed
    // and checked (`verified_bytes`, a piece boundary or the end, never
    // past the durable count) with the whole-file hash's state there; and
    // per source (peer and item) of a download, how many pieces it sent
    // that failed their check.
    "ALTER TABLE downloads ADD COLUMN sha256 TEXT
        CHECK (sha256 IS NULL OR length(sha256) = 64);
    ALTER TABLE downloads ADD COLUMN pieces BLOB
        CHECK (pieces IS NULL OR length(pieces) % 32 = 0);
    ALTER TABLE downloads ADD COLUMN verified_bytes INTEGER NOT NULL DEFAULT 0
        CHECK (verified_bytes >= 0 AND verified_bytes <= downloaded_bytes);
    ALTER TABLE downloads ADD COLUMN hash_state BLOB
        CHECK (hash_state IS NULL OR length(hash_state) = 32);
    ALTER TABLE downloads ADD COLUMN search TEXT;
    CREATE TABLE download_sources (
        download_id INTEGER NOT NULL REFERENCES downloads (id) ON DELETE CASCADE,
        peer        TEXT    NOT NULL,
        item_id     TEXT    NOT NULL,
        bad_pieces  INTEGER NOT NULL DEFAULT 0 CHECK (bad_pieces >= 0),
        PRIMARY KEY (download_id, peer, item_id)
    );",
];

/// How [`Registry::change`] treats `attempts` (the attempts without
/// progress, which `max_attempts` bounds).
#[derive(Debug, Clone, Copy)]
enum Count {
    Keep,
    One,
    Reset,
}

/// The event of a download paused by its owner (a pause is not an error:
/// the row has none).
pub const PAUSED: &str = "paused by the owner";

/// The event of a download its owner resumed (or retried).
pub const RESUMED: &str = "resumed by the owner";

/// The schema version that keeps first-offered dates (`offers`).
const OFFERS_SCHEMA: u32 = 8;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Downloading,
    Retrying,
    /// Stopped by its owner, or added stopped (not an error): holds no
    /// worker, keeps its bytes, resumed by `resume` (or a retry, or a new
    /// stub without `paused`) where it stopped.
    Paused,
    Completed,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Downloading,
        Status::Retrying,
        Status::Paused,
        Status::Completed,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Downloading => "downloading",
            Status::Retrying => "retrying",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Live rows are resumed at start-up; completed, failed and paused
    /// rows are not.
    pub fn is_live(self) -> bool {
        !matches!(self, Status::Completed | Status::Failed | Status::Paused)
    }

    /// Rows a resume or a retry (`jack resume`, `jack retry`, the status
    /// API, `torrents/resume`) queues again: failed and paused ones.
    pub fn is_retryable(self) -> bool {
        matches!(self, Status::Failed | Status::Paused)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a download; the `kind` column of `download_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Queued,
    Started,
    Resumed,
    Restarted,
    /// Waiting to try again (after a failure, or for room on the disk).
    RetryScheduled,
    /// Paused by its owner (the status API, `jack pause`,
    /// `torrents/pause`), or added paused.
    Paused,
    Failed,
    Completed,
    Reconciled,
    /// A new stub for the release: its source replaced the row's.
    Regrabbed,
    /// The hand-off into `completed_dir` (copy progress, mode).
    HandOff,
    /// The peer's file changed: the release was looked up again.
    Changed,
    /// A piece failed its check against the source's digest (§2.6): the
    /// `.part` went back to the piece's start.
    PieceFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Started => "started",
            EventKind::Resumed => "resumed",
            EventKind::Restarted => "restarted",
            EventKind::RetryScheduled => "retry_scheduled",
            EventKind::Paused => "paused",
            EventKind::Failed => "failed",
            EventKind::Completed => "completed",
            EventKind::Reconciled => "reconciled",
            EventKind::Regrabbed => "regrabbed",
            EventKind::HandOff => "hand_off",
            EventKind::Changed => "changed",
            EventKind::PieceFailed => "piece_failed",
        }
    }
}

/// A `downloads` row. Byte counts are u64 whatever the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub id: i64,
    pub stub_name: String,
    pub info_hash: String,
    pub peer: String,
    pub item_id: String,
    pub title: String,
    pub file_name: String,
    pub part_path: PathBuf,
    pub dest_path: PathBuf,
    pub etag: Option<String>,
    pub expected_bytes: u64,
    /// Bytes known durable in the `.part` (never more than are on disk).
    pub downloaded_bytes: u64,
    pub status: Status,
    pub attempts: u32,
    pub restarts: u32,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    /// `dev:ino` of the file the hand-off gives the final name to, recorded
    /// before it begins (`None` until then).
    pub handoff_file: Option<String>,
    /// Names the bytes of the `.part`: changes whenever they stop being a
    /// prefix of what the row expects; a written record is trusted only
    /// for its row and generation.
    pub generation: u64,
    /// The highest offset ever made durable for the current version
    /// (progress is passing it).
    pub high_water: u64,
    /// The version's whole-file SHA-256 (lower-case hex), when known.
    pub sha256: Option<String>,
    /// Bytes hashed and checked (a piece boundary, or the end; never past
    /// `downloaded_bytes`), and the whole-file hash's state there.
    pub verified_bytes: u64,
    pub hash_state: Option<crate::digest::Midstate>,
    /// The `/peer/search` query that finds the release elsewhere.
    pub search: Option<String>,
}

/// The columns of a download the status table shows ([`Registry::table_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub id: i64,
    pub stub_name: String,
    pub peer: String,
    pub title: String,
    pub expected_bytes: u64,
    pub downloaded_bytes: u64,
    pub status: Status,
    pub attempts: u32,
    pub restarts: u32,
    pub error: Option<String>,
    /// The version's SHA-256 when known, and the bytes proven against it.
    pub sha256: Option<String>,
    pub verified_bytes: u64,
}

/// What is known when a download is first queued (and, but for the
/// info-hash and `.part`, what a new stub for the same release replaces).
#[derive(Debug, Clone)]
pub struct NewDownload {
    pub stub_name: String,
    pub info_hash: String,
    pub peer: String,
    pub item_id: String,
    pub title: String,
    pub file_name: String,
    pub part_path: PathBuf,
    pub dest_path: PathBuf,
    pub etag: Option<String>,
    pub expected_bytes: u64,
    /// The version's whole-file SHA-256 (lower-case hex), when its release
    /// gave one.
    pub sha256: Option<String>,
    /// The `/peer/search` query that finds the release elsewhere (§2.6),
    /// when it has ids: `tmdbId=603`, `tvdbId=1&season=2&episode=3`.
    pub search: Option<String>,
}

/// A stub the watch folder could not read (renamed `<name>.invalid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidStub {
    pub stub_name: String,
    pub reason: String,
    pub at: String,
}

/// A `download_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub download_id: i64,
    pub at: String,
    pub kind: String,
    pub detail: String,
}

pub struct Registry {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The schema version the file had when opened (0: a new registry).
    opened_at: u32,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.path)
            .finish()
    }
}

const DOWNLOAD_COLUMNS: &str = "id, stub_name, info_hash, peer, item_id, title, file_name, \
     part_path, dest_path, etag, expected_bytes, downloaded_bytes, status, attempts, restarts, \
     error, created_at, updated_at, completed_at, handoff_file, generation, high_water, \
     sha256, verified_bytes, hash_state, search";

impl Registry {
    /// Opens (creating if needed) the registry at `path` and applies any
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Registry> {
        let what = |op: &str| format!("cannot {op} the registry {}", path.display());
        let mut conn = Connection::open(path).map_err(|e| Error::db(what("open"), e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| Error::db(what("configure"), e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| Error::db(what("configure"), e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Runtime(format!(
                "the registry {} cannot use the WAL journal (got {mode}); put database.path on a local disk",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| Error::db(what("configure"), e))?;
        let opened_at = user_version(&conn)?;
        migrate(&mut conn).map_err(|e| match e {
            Error::Db { source, .. } => Error::db(what("migrate"), source),
            other => other,
        })?;
        Ok(Registry {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            opened_at,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This registry was made by a jack that kept no first-offered dates
    /// (schema before 8): the files it served were offered before now.
    pub fn predates_offers(&self) -> bool {
        (1..OFFERS_SCHEMA).contains(&self.opened_at)
    }

    pub fn schema_version(&self) -> Result<u32> {
        user_version(&self.conn.lock())
    }

    /// Inserts a `queued` row and its `queued` event; returns the new id.
    pub fn insert(&self, new: &NewDownload) -> Result<i64> {
        let part = new.part_path.clone();
        self.insert_with_part(new, false, |_| part)
    }

    /// [`Registry::insert`] with the `.part` named by the new row's id
    /// (`part_for(id)`; `new.part_path` is not used), in the same
    /// transaction: a `.part` belongs to one row (ids are never reused).
    /// With `paused` the row starts `paused` (a stub added paused).
    pub fn insert_with_part(
        &self,
        new: &NewDownload,
        paused: bool,
        part_for: impl FnOnce(i64) -> PathBuf,
    ) -> Result<i64> {
        let (status, kind) = match paused {
            true => (Status::Paused, EventKind::Paused),
            false => (Status::Queued, EventKind::Queued),
        };
        let now = now_rfc3339();
        let part = path_text(&new.part_path)?;
        let dest = path_text(&new.dest_path)?;
        let expected = to_i64(new.expected_bytes)?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin insert"))?;
        tx.execute(
            "INSERT INTO downloads (stub_name, info_hash, peer, item_id, title, file_name, \
             part_path, dest_path, etag, expected_bytes, status, created_at, updated_at, sha256, \
             search) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12, ?11, ?11, ?13, ?14)",
            params![
                new.stub_name,
                new.info_hash,
                new.peer,
                new.item_id,
                new.title,
                new.file_name,
                part,
                dest,
                new.etag,
                expected,
                now,
                status.as_str(),
                new.sha256,
                new.search
            ],
        )
        .map_err(db_err("insert download"))?;
        let id = tx.last_insert_rowid();
        let part = part_for(id);
        tx.execute(
            "UPDATE downloads SET part_path = ?2 WHERE id = ?1",
            params![id, path_text(&part)?],
        )
        .map_err(db_err("insert download"))?;
        insert_event(
            &tx,
            id,
            &now,
            kind,
            &format!(
                "from {}{}",
                new.stub_name,
                if paused { ", added paused" } else { "" }
            ),
        )?;
        tx.commit().map_err(db_err("commit insert"))?;
        Ok(id)
    }

    pub fn get(&self, id: i64) -> Result<Option<Download>> {
        let conn = self.conn.lock();
        conn.query_row(
            &format!("SELECT {DOWNLOAD_COLUMNS} FROM downloads WHERE id = ?1"),
            [id],
            read_download,
        )
        .optional()
        .map_err(db_err("read download"))
    }

    /// Every row, oldest first.
    pub fn list(&self) -> Result<Vec<Download>> {
        self.downloads_where("1", [])
    }

    /// Every row, oldest first, with only the columns the status table
    /// shows (`jack status`, `?format=text`): no paths, hashes or times.
    pub fn table_rows(&self) -> Result<Vec<TableRow>> {
        let sql = "SELECT id, stub_name, peer, title, expected_bytes, downloaded_bytes, status, \
                   attempts, restarts, error, sha256, verified_bytes FROM downloads ORDER BY id";
        let read = |r: &Row<'_>| {
            Ok(TableRow {
                id: r.get(0)?,
                stub_name: r.get(1)?,
                peer: r.get(2)?,
                title: r.get(3)?,
                expected_bytes: get_u64(r, 4)?,
                downloaded_bytes: get_u64(r, 5)?,
                status: get_status(r, 6)?,
                attempts: r.get(7)?,
                restarts: r.get(8)?,
                error: r.get(9)?,
                sha256: r.get(10)?,
                verified_bytes: get_u64(r, 11)?,
            })
        };
        query_all(&self.conn.lock(), sql, [], read, "list downloads")
    }

    /// Rows with this info-hash, oldest first, but for those being removed
    /// (a removed download is no longer the release's: a new stub for it
    /// starts a new one).
    pub fn by_info_hash(&self, info_hash: &str) -> Result<Vec<Download>> {
        self.downloads_where("info_hash = ?1 AND removal IS NULL", [info_hash])
    }

    /// The downloads whose own stub is `stub_name`, oldest first.
    pub fn by_stub_name(&self, stub_name: &str) -> Result<Vec<Download>> {
        self.downloads_where("stub_name = ?1 AND removal IS NULL", [stub_name])
    }

    fn downloads_where<P: rusqlite::Params>(
        &self,
        condition: &str,
        params: P,
    ) -> Result<Vec<Download>> {
        let sql = format!("SELECT {DOWNLOAD_COLUMNS} FROM downloads WHERE {condition} ORDER BY id");
        query_all(
            &self.conn.lock(),
            &sql,
            params,
            read_download,
            "list downloads",
        )
    }

    /// The event history of one download, oldest first.
    pub fn events(&self, download_id: i64) -> Result<Vec<Event>> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, download_id, at, kind, detail FROM download_events \
                 WHERE download_id = ?1 ORDER BY id",
            )
            .map_err(db_err("read events"))?;
        let rows = stmt
            .query_map([download_id], |r| {
                Ok(Event {
                    id: r.get(0)?,
                    download_id: r.get(1)?,
                    at: r.get(2)?,
                    kind: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .map_err(db_err("read events"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err("read events"))
    }

    /// Moves a row to `status` (setting or clearing its error) and records
    /// the event, in one transaction.
    pub fn transition(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        kind: EventKind,
        detail: &str,
    ) -> Result<()> {
        self.change(id, status, error, kind, detail, Count::Keep)
    }

    /// Ends an attempt: like [`Registry::transition`], and in the same
    /// transaction counts it in `attempts` (the attempts in a row without
    /// progress, what `max_attempts` bounds), or, when it `progressed`,
    /// starts that count again from 0.
    pub fn end_attempt(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        kind: EventKind,
        detail: &str,
        progressed: bool,
    ) -> Result<()> {
        let count = if progressed { Count::Reset } else { Count::One };
        self.change(id, status, error, kind, detail, count)
    }

    fn change(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        kind: EventKind,
        detail: &str,
        count: Count,
    ) -> Result<()> {
        let (add, reset) = match count {
            Count::Keep => (0, false),
            Count::One => (1, false),
            Count::Reset => (0, true),
        };
        if status == Status::Completed {
            crate::fault::registry_full().map_err(db_err("update download status"))?;
        }
        let now = now_rfc3339();
        let completed_at = (status == Status::Completed).then_some(now.as_str());
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin transition"))?;
        let n = tx
            .execute(
                "UPDATE downloads SET status = ?2, error = ?3, updated_at = ?4, \
                 completed_at = COALESCE(?5, completed_at), \
                 attempts = CASE WHEN ?7 THEN 0 ELSE attempts + ?6 END WHERE id = ?1",
                params![id, status.as_str(), error, now, completed_at, add, reset],
            )
            .map_err(db_err("update download status"))?;
        if n == 0 {
            return Err(Error::Runtime(format!("no download with id {id}")));
        }
        insert_event(&tx, id, &now, kind, detail)?;
        tx.commit().map_err(db_err("commit transition"))
    }

    /// Records `bytes` as durable progress (and raises the version's
    /// `high_water` to it). The caller must have synced the `.part` to at
    /// least `bytes` first.
    pub fn set_progress(&self, id: i64, bytes: u64) -> Result<()> {
        let bytes = to_i64(bytes)?;
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE downloads SET downloaded_bytes = ?2, high_water = max(high_water, ?2), \
             verified_bytes = CASE WHEN verified_bytes <= ?2 THEN verified_bytes ELSE 0 END, \
             hash_state = CASE WHEN verified_bytes <= ?2 THEN hash_state ELSE NULL END, \
             updated_at = ?3 WHERE id = ?1",
            params![id, bytes, now_rfc3339()],
        )
        .map_err(db_err("record progress"))?;
        Ok(())
    }

    /// The `.part` is about to be truncated to 0: progress 0, `restarts` +
    /// 1, a new generation (returned: no written record of the old bytes is
    /// trusted again), and why. The version stays (its `high_water` too).
    pub fn record_restart(&self, id: i64, reason: &str) -> Result<u64> {
        let now = now_rfc3339();
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin restart"))?;
        let generation: i64 = tx
            .query_row(
                "UPDATE downloads SET downloaded_bytes = 0, restarts = restarts + 1, \
                 verified_bytes = 0, hash_state = NULL, \
                 generation = generation + 1, updated_at = ?2 WHERE id = ?1 RETURNING generation",
                params![id, now],
                |r| r.get(0),
            )
            .map_err(db_err("record a restart"))?;
        insert_restart_event(&tx, id, &now, reason)?;
        tx.commit().map_err(db_err("commit restart"))?;
        Ok(generation.unsigned_abs())
    }

    /// A write or sync of the `.part` failed: what was written since the
    /// last checkpoint is unknown, so the bytes get a new generation (no
    /// written record vouches for them again) and only the durable count
    /// stands. Returns the new generation.
    pub fn distrust_unsynced(&self, id: i64) -> Result<u64> {
        let conn = self.conn.lock();
        let generation: i64 = conn
            .query_row(
                "UPDATE downloads SET generation = generation + 1 WHERE id = ?1 \
                 RETURNING generation",
                [id],
                |r| r.get(0),
            )
            .map_err(db_err("forget unsynced bytes"))?;
        Ok(generation.unsigned_abs())
    }

    /// The peer's file changed and its release was looked up again: the
    /// row takes the release's title, file name, destination, size and
    /// ETag (`new`; the info-hash, stub and source stay), progress 0, a new
    /// generation, a `high_water` of 0 when it is `new_version` (else the
    /// version's stays: fetching it again is not progress), and the event
    /// (`detail`), in one transaction. The caller has truncated
    /// the `.part` (a restart recorded first).
    pub fn remote_changed(
        &self,
        id: i64,
        new: &NewDownload,
        new_version: bool,
        detail: &str,
    ) -> Result<()> {
        self.take_release(
            id,
            new,
            |tx, dest, expected, now| {
                tx.execute(
                    "UPDATE downloads SET title = ?2, file_name = ?3, dest_path = ?4, etag = ?5, \
                     expected_bytes = ?6, downloaded_bytes = 0, generation = generation + 1, \
                     high_water = CASE WHEN ?8 THEN 0 ELSE high_water END, \
                     verified_bytes = 0, hash_state = NULL, \
                     sha256 = CASE WHEN ?8 THEN ?9 ELSE COALESCE(?9, sha256) END, \
                     search = COALESCE(?10, search), \
                     pieces = CASE WHEN ?8 THEN NULL ELSE pieces END, \
                     updated_at = ?7 WHERE id = ?1",
                    params![
                        id,
                        new.title,
                        new.file_name,
                        dest,
                        new.etag,
                        expected,
                        now,
                        new_version,
                        new.sha256,
                        new.search
                    ],
                )
                .map_err(db_err("record the remote change"))
            },
            |tx, now| insert_event(tx, id, now, EventKind::Changed, detail),
        )
    }

    /// Row `id` takes the release `new`, in one transaction: `update` (given
    /// the destination, the expected size and the time; no row changed is
    /// "no download with id"), then `events` (given the time).
    fn take_release(
        &self,
        id: i64,
        new: &NewDownload,
        update: impl FnOnce(&Connection, &str, i64, &str) -> Result<usize>,
        events: impl FnOnce(&Connection, &str) -> Result<()>,
    ) -> Result<()> {
        let now = now_rfc3339();
        let dest = path_text(&new.dest_path)?;
        let expected = to_i64(new.expected_bytes)?;
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction()
            .map_err(db_err("begin a release change"))?;
        if update(&tx, dest, expected, &now)? == 0 {
            return Err(Error::Runtime(format!("no download with id {id}")));
        }
        // A new source or version: its sources start with no bad pieces.
        tx.execute("DELETE FROM download_sources WHERE download_id = ?1", [id])
            .map_err(db_err("forget bad pieces"))?;
        events(&tx, &now)?;
        tx.commit().map_err(db_err("commit a release change"))
    }

    /// Remembers the validator the `.part` is a prefix of.
    pub fn set_etag(&self, id: i64, etag: Option<&str>) -> Result<()> {
        self.set_text(id, "UPDATE downloads SET etag = ?2 WHERE id = ?1", etag)
            .map_err(db_err("record the etag"))
    }

    /// Records the file (`dev:ino`) the hand-off is about to give the final
    /// name to: rule 13's evidence at the next start.
    pub fn set_handoff_file(&self, id: i64, file: &str) -> Result<()> {
        let sql = "UPDATE downloads SET handoff_file = ?2 WHERE id = ?1";
        self.set_text(id, sql, Some(file))
            .map_err(db_err("record the hand-off file"))
    }

    fn set_text(&self, id: i64, sql: &str, value: Option<&str>) -> rusqlite::Result<()> {
        self.conn.lock().execute(sql, params![id, value]).map(drop)
    }

    /// Ids of the rows in `status`, oldest first.
    pub fn ids_with_status(&self, status: Status) -> Result<Vec<i64>> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT id FROM downloads WHERE status = ?1 ORDER BY id")
            .map_err(db_err("list downloads"))?;
        let rows = stmt
            .query_map([status.as_str()], |r| r.get(0))
            .map_err(db_err("list downloads"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err("list downloads"))
    }

    pub fn record_invalid_stub(&self, stub_name: &str, reason: &str) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO invalid_stubs (stub_name, reason, at) VALUES (?1, ?2, ?3)",
            params![stub_name, reason, now_rfc3339()],
        )
        .map_err(db_err("record an invalid stub"))?;
        Ok(())
    }

    pub fn invalid_stubs(&self) -> Result<Vec<InvalidStub>> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT stub_name, reason, at FROM invalid_stubs ORDER BY id")
            .map_err(db_err("list invalid stubs"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(InvalidStub {
                    stub_name: r.get(0)?,
                    reason: r.get(1)?,
                    at: r.get(2)?,
                })
            })
            .map_err(db_err("list invalid stubs"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err("list invalid stubs"))
    }

    /// A resume or a retry (`jack resume`, `jack retry`, the status API,
    /// `torrents/resume`): a failed or paused row goes back to `queued`
    /// with fresh attempts (its `.part` is resumed), `detail` its event.
    /// Returns the status it had.
    pub fn retry(&self, id: i64, detail: &str) -> Result<Status> {
        let row = self
            .get(id)?
            .ok_or_else(|| Error::Runtime(format!("no download with id {id}")))?;
        if !row.status.is_retryable() {
            return Err(Error::Runtime(format!(
                "download {id} is {}, not failed or paused",
                row.status
            )));
        }
        self.change(
            id,
            Status::Queued,
            None,
            EventKind::Queued,
            detail,
            Count::Reset,
        )?;
        // Fresh attempts, and the sources fresh counts of bad pieces.
        self.forget_bad_pieces(id)?;
        Ok(row.status)
    }

    /// `jack pause` with no node running: a live row becomes `paused`
    /// (nothing transfers it meanwhile: the instance lock says so).
    /// Returns the status it had; a row that is not live is left alone.
    pub fn pause(&self, id: i64) -> Result<Status> {
        let row = self
            .get(id)?
            .ok_or_else(|| Error::Runtime(format!("no download with id {id}")))?;
        if row.status.is_live() {
            self.transition(id, Status::Paused, None, EventKind::Paused, PAUSED)?;
        }
        Ok(row.status)
    }

    /// A new stub for the release of row `id` (§2.4 **Identity**): its
    /// source (peer, item, and the release as looked up again) replaces
    /// the row's. The row keeps its own stub name: the new stub is set
    /// aside `.duplicate`, and the row's stub (or its `.failed` form) is
    /// the one its completion removes. With `restart` (another version)
    /// the durable progress goes to 0, the bytes get a new generation and
    /// the version's `high_water` is 0 (the caller truncates the `.part`
    /// after this commits; a crash in between leaves nothing that vouches
    /// for the old bytes). A failed or paused row is queued again with
    /// fresh attempts; with `paused` (a stub added paused) the row is
    /// paused whatever it was. One transaction, with its events.
    pub fn replace_source(
        &self,
        id: i64,
        new: &NewDownload,
        restart: Option<&str>,
        paused: bool,
        detail: &str,
    ) -> Result<()> {
        let update = |tx: &Connection, dest: &str, expected: i64, now: &str| {
            // SET expressions all see the row as it was.
            tx.execute(
                "UPDATE downloads SET peer = ?2, item_id = ?3, title = ?4, \
                 file_name = ?5, dest_path = ?6, etag = ?7, expected_bytes = ?8, \
                 downloaded_bytes = CASE WHEN ?9 THEN 0 ELSE downloaded_bytes END, \
                 high_water = CASE WHEN ?9 THEN 0 ELSE high_water END, \
                 verified_bytes = CASE WHEN ?9 THEN 0 ELSE verified_bytes END, \
                 hash_state = CASE WHEN ?9 THEN NULL ELSE hash_state END, \
                 pieces = CASE WHEN ?9 THEN NULL ELSE pieces END, \
                 sha256 = ?12, search = COALESCE(?13, search), \
                 generation = generation + ?9, \
                 restarts = restarts + ?9, \
                 attempts = CASE WHEN status IN ('failed', 'paused') THEN 0 ELSE attempts END, \
                 error = CASE WHEN ?11 OR status IN ('failed', 'paused') THEN NULL \
                         ELSE error END, \
                 status = CASE WHEN ?11 THEN 'paused' \
                          WHEN status IN ('failed', 'paused') THEN 'queued' \
                          ELSE status END, \
                 updated_at = ?10 WHERE id = ?1",
                params![
                    id,
                    new.peer,
                    new.item_id,
                    new.title,
                    new.file_name,
                    dest,
                    new.etag,
                    expected,
                    restart.is_some(),
                    now,
                    paused,
                    new.sha256,
                    new.search
                ],
            )
            .map_err(db_err("replace the source"))
        };
        let events = |tx: &Connection, now: &str| {
            insert_event(tx, id, now, EventKind::Regrabbed, detail)?;
            match restart {
                Some(reason) => insert_restart_event(tx, id, now, reason),
                None => Ok(()),
            }
        };
        self.take_release(id, new, update, events)
    }

    /// Whether the watch folder already processed the stub `name` as it is
    /// now (same length and modification time): a restart must not process
    /// it again; a stub written anew is a new grab.
    pub fn stub_seen(&self, name: &str, len: u64, modified_ns: i64) -> Result<bool> {
        let conn = self.conn.lock();
        let seen: Option<(i64, i64)> = conn
            .query_row(
                "SELECT len, modified_ns FROM stubs_seen WHERE stub_name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err("read processed stubs"))?;
        Ok(seen == Some((to_i64(len)?, modified_ns)))
    }

    /// Remembers that the stub `name` (this length and modification time)
    /// was processed.
    pub fn remember_stub(&self, name: &str, len: u64, modified_ns: i64) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO stubs_seen (stub_name, len, modified_ns, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (stub_name) DO UPDATE SET len = ?2, modified_ns = ?3, at = ?4",
            params![name, to_i64(len)?, modified_ns, now_rfc3339()],
        )
        .map_err(db_err("record a processed stub"))?;
        Ok(())
    }

    /// Appends an event without changing the row.
    pub fn add_event(&self, id: i64, kind: EventKind, detail: &str) -> Result<()> {
        let conn = self.conn.lock();
        insert_event(&conn, id, &now_rfc3339(), kind, detail)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // A migration may make a table again (5): with foreign keys on, its
    // DROP would delete the events that refer to it. The pragma is a no-op
    // inside a transaction, so it is set around them; every migration
    // ends with the keys checked.
    conn.execute_batch("PRAGMA foreign_keys = OFF;")
        .map_err(db_err("begin migration"))?;
    let result = migrate_all(conn);
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .map_err(db_err("end migration"))?;
    result
}

fn migrate_all(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("begin migration"))?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Runtime(format!(
                "the registry has schema version {version}, newer than this jack understands ({SCHEMA_VERSION}); run a newer jack"
            )));
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(db_err("apply migration"))?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(db_err("check foreign keys"))?;
        if let Some(table) = broken {
            return Err(Error::Runtime(format!(
                "migration {} left a broken reference in {table}",
                version + 1
            )));
        }
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(db_err("set schema version"))?;
        tx.commit().map_err(db_err("commit migration"))?;
        log::info!("registry migrated to schema version {}", version + 1);
    }
}

/// Every row `sql` selects with `params`, each read by `read`.
fn query_all<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    what: &'static str,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err(what))?;
    let rows = stmt.query_map(params, read).map_err(db_err(what))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err(what))
}

fn user_version(conn: &Connection) -> Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err("read schema version"))
}

fn insert_event(conn: &Connection, id: i64, at: &str, kind: EventKind, detail: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO download_events (download_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, at, kind.as_str(), detail],
    )
    .map_err(db_err("record event"))?;
    Ok(())
}

fn insert_restart_event(conn: &Connection, id: i64, at: &str, reason: &str) -> Result<()> {
    let detail = format!("from byte 0: {reason}");
    insert_event(conn, id, at, EventKind::Restarted, &detail)
}

fn read_download(r: &Row<'_>) -> rusqlite::Result<Download> {
    let status = get_status(r, 12)?;
    Ok(Download {
        id: r.get(0)?,
        stub_name: r.get(1)?,
        info_hash: r.get(2)?,
        peer: r.get(3)?,
        item_id: r.get(4)?,
        title: r.get(5)?,
        file_name: r.get(6)?,
        part_path: PathBuf::from(r.get::<_, String>(7)?),
        dest_path: PathBuf::from(r.get::<_, String>(8)?),
        etag: r.get(9)?,
        expected_bytes: get_u64(r, 10)?,
        downloaded_bytes: get_u64(r, 11)?,
        status,
        attempts: r.get(13)?,
        restarts: r.get(14)?,
        error: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
        completed_at: r.get(18)?,
        handoff_file: r.get(19)?,
        generation: get_u64(r, 20)?,
        high_water: get_u64(r, 21)?,
        sha256: r.get(22)?,
        verified_bytes: get_u64(r, 23)?,
        hash_state: {
            let bytes = get_u64(r, 23)?;
            r.get::<_, Option<Vec<u8>>>(24)?
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(|state| crate::digest::Midstate { bytes, state })
        },
        search: r.get(25)?,
    })
}

/// A `status` column.
fn get_status(r: &Row<'_>, i: usize) -> rusqlite::Result<Status> {
    let status: String = r.get(i)?;
    Status::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown status {status:?}").into(),
        )
    })
}

/// Byte counts are stored as SQLite integers (i64) and are never negative.
fn get_u64(r: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn db_err(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::db(format!("cannot {what} in the registry"), e)
}

fn to_i64(n: u64) -> Result<i64> {
    i64::try_from(n)
        .map_err(|_| Error::Runtime(format!("byte count {n} is too large for the registry")))
}

fn path_text(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| Error::Runtime(format!("path {} is not valid UTF-8", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u32) -> NewDownload {
        NewDownload {
            stub_name: format!("Movie.{n}.torrent"),
            info_hash: format!("{n:040x}"),
            peer: "alice".into(),
            item_id: format!("lib1:movie:{n}"),
            title: format!("Movie.{n}.2024.1080p"),
            file_name: format!("Movie.{n}.2024.1080p.mkv"),
            part_path: format!("/data/incomplete/{n}.part").into(),
            dest_path: format!("/data/completed/Movie.{n}.mkv").into(),
            etag: Some("\"abc\"".into()),
            expected_bytes: 5 * 1024 * 1024 * 1024 + u64::from(n),
            sha256: None,
            search: None,
        }
    }

    /// A download is found by its stub's name through an index (the
    /// listing of stubs set aside asks once per `.failed` stub, on every
    /// status poll), not by reading every row.
    #[test]
    fn downloads_are_found_by_stub_name_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let plan: String = reg
            .conn
            .lock()
            .query_row(
                &format!(
                    "EXPLAIN QUERY PLAN SELECT {DOWNLOAD_COLUMNS} FROM downloads WHERE stub_name = ?1 AND removal IS NULL"
                ),
                ["M.torrent"],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("USING INDEX downloads_stub_name"), "{plan}");
    }

    #[test]
    fn migrates_from_empty_and_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jack.db");
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), SCHEMA_VERSION);
        let id = reg.insert(&sample(1)).unwrap();
        drop(reg);
        // Opening again runs migrate() again: nothing changes, nothing is lost.
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(reg.get(id).unwrap().unwrap().item_id, "lib1:movie:1");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn migrations_6_to_8_carry_an_older_registry_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jack.db");
        {
            // A registry as the previous release left it (schema 5), with
            // an owner's cancel, a download waiting for disk room and an add.
            let mut conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            let tx = conn.transaction().unwrap();
            for (n, status, error) in [
                (1, "cancelled", None),
                (2, "paused", Some("waiting for disk space: need 3.0 MiB")),
                (3, "failed", Some("gave up")),
            ] {
                tx.execute(
                    "INSERT INTO downloads (stub_name, info_hash, peer, item_id, title, \
                     file_name, part_path, dest_path, expected_bytes, downloaded_bytes, status, \
                     error, created_at, updated_at) VALUES ('s', ?1, 'p', 'i', 't', 'f', \
                     '/x.part', '/f', 100, 40, ?2, ?3, 'a', 'a')",
                    params![format!("{n:040x}"), status, error],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO grabs (stub_name, title, size, peer, item_id, added_at) \
                 VALUES ('api/x', 't', 1, 'p', 'i', 'a')",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), SCHEMA_VERSION);
        let got: Vec<(Status, Option<String>, u64)> = (1..=3)
            .map(|id| {
                let row = reg.get(id).unwrap().unwrap();
                (row.status, row.error, row.downloaded_bytes)
            })
            .collect();
        assert_eq!(
            got,
            [
                (Status::Paused, None, 40),
                (
                    Status::Retrying,
                    Some("waiting for disk space: need 3.0 MiB".into()),
                    40
                ),
                (Status::Failed, Some("gave up".into()), 40),
            ]
        );
        let grab = &reg.grabs().unwrap()[0];
        assert_eq!((grab.paused, grab.tags.as_str()), (false, ""));
        assert!(reg.offers().unwrap().is_empty());
        // Its files were offered before this jack: dated by their own time
        // on the first scan (`predates_offers`); a new or current registry
        // dates new files now.
        assert!(reg.predates_offers());
        drop(reg);
        assert!(!Registry::open(&path).unwrap().predates_offers());
        let fresh = Registry::open(&dir.path().join("new.db")).unwrap();
        assert!(!fresh.predates_offers());
    }

    #[test]
    fn migration_5_keeps_rows_events_and_never_reuses_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jack.db");
        {
            // A registry as the previous release left it (schema 4).
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            let tx = conn.transaction().unwrap();
            for n in 1..=3 {
                tx.execute(
                    "INSERT INTO downloads (stub_name, info_hash, peer, item_id, title, \
                     file_name, part_path, dest_path, expected_bytes, downloaded_bytes, status, \
                     created_at, updated_at, category) VALUES ('s', ?1, 'p', 'i', 't', 'f', \
                     '/x.part', '/f', 100, 40, 'retrying', 'a', 'a', 'tv')",
                    [format!("{n:040x}")],
                )
                .unwrap();
                insert_event(&tx, n, "a", EventKind::Queued, "from s").unwrap();
            }
            // The newest row removed: its id must not come back.
            tx.execute("DELETE FROM downloads WHERE id = 3", [])
                .unwrap();
            tx.commit().unwrap();
        }
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), SCHEMA_VERSION);
        let rows = reg.list().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].status, Status::Retrying);
        assert_eq!((rows[0].downloaded_bytes, rows[0].high_water), (40, 40));
        assert_eq!(rows[0].generation, 0);
        assert_eq!(reg.events(1).unwrap().len(), 1, "events kept");
        let id = reg.insert(&sample(9)).unwrap();
        assert_eq!(id, 4, "ids are never reused");
        let conn = reg.conn.lock();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys on again");
        drop(conn);
        reg.delete_download(1).unwrap();
        assert!(reg.events(1).unwrap().is_empty(), "the cascade still holds");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jack.db");
        drop(Registry::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = Registry::open(&path).unwrap_err().to_string();
        assert!(err.contains("newer than this jack"), "{err}");
    }

    #[test]
    fn durable_pragmas_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let conn = reg.conn.lock();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
    }

    /// The bundled SQLite is built without the extensions the registry
    /// never uses (`LIBSQLITE3_FLAGS` in `.cargo/config.toml`: about
    /// 0.5 MB of each binary), and with what it does use.
    #[test]
    fn bundled_sqlite_leaves_out_unused_extensions() {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for left_out in [
            "ENABLE_FTS3",
            "ENABLE_FTS5",
            "ENABLE_RTREE",
            "ENABLE_DBSTAT_VTAB",
            "ENABLE_STAT4",
            "SOUNDEX",
        ] {
            assert!(
                !options.iter().any(|o| o == left_out),
                "{left_out} in {options:?}"
            );
        }
        assert!(options.iter().any(|o| o == "OMIT_JSON"), "{options:?}");
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
        let json = conn.query_row("SELECT json('{}')", [], |r| r.get::<_, String>(0));
        assert!(json.is_err(), "{json:?}");
    }

    #[test]
    fn row_and_events_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let new = sample(7);
        let id = reg.insert(&new).unwrap();
        let row = reg.get(id).unwrap().unwrap();
        assert_eq!(row.stub_name, new.stub_name);
        assert_eq!(row.info_hash, new.info_hash);
        assert_eq!(row.part_path, new.part_path);
        assert_eq!(row.dest_path, new.dest_path);
        assert_eq!(row.etag.as_deref(), Some("\"abc\""));
        assert_eq!(
            row.expected_bytes, 5_368_709_127,
            "u64 above 4 GiB survives"
        );
        assert_eq!(
            (row.status, row.downloaded_bytes, row.attempts, row.restarts),
            (Status::Queued, 0, 0, 0)
        );
        assert!(row.created_at.ends_with('Z') && row.completed_at.is_none());

        reg.transition(
            id,
            Status::Downloading,
            None,
            EventKind::Started,
            "offset=0",
        )
        .unwrap();
        reg.set_progress(id, 4_294_967_296 + 5).unwrap();
        reg.transition(
            id,
            Status::Retrying,
            Some("connection reset"),
            EventKind::RetryScheduled,
            "in 800 ms after connection reset",
        )
        .unwrap();
        let row = reg.get(id).unwrap().unwrap();
        assert_eq!(row.downloaded_bytes, 4_294_967_301);
        assert_eq!(
            (row.status, row.error.as_deref()),
            (Status::Retrying, Some("connection reset"))
        );
        reg.transition(
            id,
            Status::Completed,
            None,
            EventKind::Completed,
            "5368709127 bytes",
        )
        .unwrap();
        let row = reg.get(id).unwrap().unwrap();
        assert_eq!(row.status, Status::Completed);
        assert!(row.error.is_none() && row.completed_at.is_some());

        let kinds: Vec<String> = reg
            .events(id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["queued", "started", "retry_scheduled", "completed"]);
        assert_eq!(reg.list().unwrap().len(), 1);
        assert!(reg.get(id + 1).unwrap().is_none());
        assert!(
            reg.transition(id + 1, Status::Failed, None, EventKind::Failed, "")
                .is_err()
        );
    }

    #[test]
    fn the_schema_refuses_impossible_rows() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let id = reg.insert(&sample(1)).unwrap();
        // Progress can never claim more than the expected size.
        assert!(reg.set_progress(id, 5 * 1024 * 1024 * 1024 + 2).is_err());
        assert!(reg.set_progress(id, u64::MAX).is_err());
        let conn = reg.conn.lock();
        assert!(
            conn.execute(
                "UPDATE downloads SET status = 'exploded' WHERE id = ?1",
                [id]
            )
            .is_err()
        );
    }

    #[test]
    fn table_rows_are_the_table_columns_of_list() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let a = reg.insert(&sample(1)).unwrap();
        reg.insert(&sample(2)).unwrap();
        reg.set_progress(a, 4_294_967_296 + 5).unwrap();
        reg.transition(a, Status::Failed, Some("gone"), EventKind::Failed, "")
            .unwrap();
        let (full, lean) = (reg.list().unwrap(), reg.table_rows().unwrap());
        let cut: Vec<TableRow> = full
            .iter()
            .map(|d| TableRow {
                id: d.id,
                stub_name: d.stub_name.clone(),
                peer: d.peer.clone(),
                title: d.title.clone(),
                expected_bytes: d.expected_bytes,
                downloaded_bytes: d.downloaded_bytes,
                status: d.status,
                attempts: d.attempts,
                restarts: d.restarts,
                error: d.error.clone(),
                sha256: d.sha256.clone(),
                verified_bytes: d.verified_bytes,
            })
            .collect();
        assert_eq!(lean, cut);
        // The same table either way.
        let live = crate::owner::status::Figures {
            live: std::collections::HashMap::from([(a, 7)]),
            ..Default::default()
        };
        let text = |r: &crate::owner::status::Report| crate::owner::status::text(r);
        assert_eq!(
            text(&crate::owner::status::report(
                "x",
                &full,
                &live,
                &[],
                vec![]
            )),
            text(&crate::owner::status::report(
                "x",
                &lean,
                &live,
                &[],
                vec![]
            ))
        );
    }
}
