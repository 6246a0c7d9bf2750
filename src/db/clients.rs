//! What the download-client API (qBittorrent-compatible) keeps in the
//! registry: each download's category and tags, the categories and tags
//! *arr created, the adds taken but not yet turned into downloads
//! (`grabs`), and removals asked for.
//!
//! Part of `db`: the only SQL outside `db.rs`, under the same rules (the
//! mutex held only around SQL, one transaction per change). Rows are plain
//! structs; the API module translates them into its JSON.

use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{Registry, Status, db_err, get_status, get_u64, query_all, to_i64};
use crate::clock::now_rfc3339;
use crate::error::Result;

/// An add taken by the API, before `Downloads::add_stub` made it a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grab {
    pub id: i64,
    pub stub_name: String,
    /// The stub's info-hash; `None` for a link, whose stub is built from the
    /// peer's release when the add is processed.
    pub info_hash: Option<String>,
    pub title: String,
    pub size: u64,
    pub peer: String,
    pub item_id: String,
    pub category: String,
    /// Its tags, sorted, joined by commas.
    pub tags: String,
    pub added_at: String,
    /// Added with `paused=true` (or paused before it became a download).
    pub paused: bool,
}

/// What the client API shows of a download (only what it needs: it reads
/// every row of the registry on each `torrents/info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub id: i64,
    pub info_hash: String,
    pub title: String,
    /// Empty until the release was looked up.
    pub file_name: String,
    /// The final file (empty until the release was looked up).
    pub dest_path: String,
    pub expected_bytes: u64,
    pub downloaded_bytes: u64,
    pub status: Status,
    pub category: String,
    /// Its tags, sorted, joined by commas (with those of its release's
    /// pending adds, which it takes when they are settled).
    pub tags: String,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    /// The version's SHA-256 when known, and the bytes proven against it.
    pub sha256: Option<String>,
    pub verified_bytes: u64,
}

/// What a new grab carries: a stub (with what parsing it told), or a link.
#[derive(Debug, Clone)]
pub struct NewGrab {
    pub stub_name: String,
    /// `(bytes, info-hash)` of a stub; `None` for a link.
    pub stub: Option<(Vec<u8>, String)>,
    pub title: String,
    pub size: u64,
    pub peer: String,
    pub item_id: String,
}

/// Every download the API shows: not being removed, with its category.
const VISIBLE: &str = "removal IS NULL";

/// What [`Registry::edit_tags`] does to the tags of some downloads.
#[derive(Debug, Clone, Copy)]
pub enum TagEdit<'a> {
    /// Adds these (made tags if new).
    Add(&'a [String]),
    /// Takes these off.
    Remove(&'a [String]),
    /// Takes every tag off.
    Clear,
}

/// Tags as stored: sorted, without repeats, joined by commas.
fn join_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let set: std::collections::BTreeSet<&str> =
        tags.into_iter().filter(|t| !t.is_empty()).collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// The tags of a stored list.
pub fn split_tags(stored: &str) -> impl Iterator<Item = &str> {
    stored.split(',').filter(|t| !t.is_empty())
}

/// `stored` changed by `edit`.
fn edited(stored: &str, edit: TagEdit<'_>) -> String {
    match edit {
        TagEdit::Add(add) => join_tags(split_tags(stored).chain(add.iter().map(String::as_str))),
        TagEdit::Remove(gone) => {
            join_tags(split_tags(stored).filter(|t| !gone.iter().any(|g| g == t)))
        }
        TagEdit::Clear => String::new(),
    }
}

/// The `WHERE` filter of `hashes` (every one when `None`) and its values,
/// after `first`.
fn hash_filter<'a>(hashes: Option<&'a [String]>, first: Vec<&'a str>) -> (String, Vec<&'a str>) {
    match hashes {
        None => ("1".into(), first),
        Some(h) => {
            let marks = vec!["?"; h.len()].join(", ");
            let mut values = first;
            values.extend(h.iter().map(String::as_str));
            (format!("info_hash IN ({marks})"), values)
        }
    }
}

impl Registry {
    /// What the client API shows, read in one transaction: the downloads
    /// not being removed (only those with `info_hash`, and only those in
    /// `category`, when given; oldest first) and the adds not yet made
    /// downloads. An add the `qbit-add` thread makes a download meanwhile
    /// is in one or the other, never in neither. A download's category is
    /// that of the newest pending add of its release when there is one,
    /// and its tags have theirs too (what it takes when they are settled).
    pub fn client_view(
        &self,
        info_hash: Option<&str>,
        category: Option<&str>,
    ) -> Result<(Vec<ClientRow>, Vec<Grab>)> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction()
            .map_err(db_err("begin reading downloads"))?;
        let mut rows = client_rows(&tx, info_hash, category)?;
        crate::fault::pause("qbit:view");
        let grabs = grabs(&tx)?;
        tx.commit().map_err(db_err("end reading downloads"))?;
        let mut pending: std::collections::HashMap<&str, Vec<&str>> = Default::default();
        for g in grabs.iter().filter(|g| !g.tags.is_empty()) {
            if let Some(hash) = g.info_hash.as_deref() {
                pending.entry(hash).or_default().extend(split_tags(&g.tags));
            }
        }
        for row in &mut rows {
            if let Some(theirs) = pending.get(row.info_hash.as_str()) {
                row.tags = join_tags(split_tags(&row.tags).chain(theirs.iter().copied()));
            }
        }
        Ok((rows, grabs))
    }

    /// Sets the category of the visible downloads and pending grabs with
    /// one of `hashes` (every one when `None`).
    pub fn set_category(&self, hashes: Option<&[String]>, category: &str) -> Result<()> {
        let (filter, values) = hash_filter(hashes, vec![category]);
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction()
            .map_err(db_err("begin category change"))?;
        for table in ["downloads", "grabs"] {
            let visible = if table == "downloads" { VISIBLE } else { "1" };
            tx.execute(
                &format!("UPDATE {table} SET category = ?1 WHERE {visible} AND {filter}"),
                params_from_iter(values.iter()),
            )
            .map_err(db_err("set the category"))?;
        }
        tx.commit().map_err(db_err("commit category change"))
    }

    /// Every category: (name, save path), by name.
    pub fn categories(&self) -> Result<Vec<(String, String)>> {
        let sql = "SELECT name, save_path FROM categories ORDER BY name";
        let read = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        query_all(&self.conn.lock(), sql, [], read, "list categories")
    }

    /// Creates a category; `false` when it already exists (left as it was).
    pub fn create_category(&self, name: &str, save_path: &str) -> Result<bool> {
        let conn = self.conn.lock();
        let n = conn
            .execute(
                "INSERT OR IGNORE INTO categories (name, save_path) VALUES (?1, ?2)",
                params![name, save_path],
            )
            .map_err(db_err("create a category"))?;
        Ok(n == 1)
    }

    /// Every tag made, sorted.
    pub fn tags(&self) -> Result<Vec<String>> {
        let sql = "SELECT name FROM tags ORDER BY name";
        query_all(&self.conn.lock(), sql, [], |r| r.get(0), "list tags")
    }

    /// Makes the tags that do not exist yet.
    pub fn create_tags(&self, tags: &[String]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin tag change"))?;
        make_tags(&tx, tags)?;
        tx.commit().map_err(db_err("commit tag change"))
    }

    /// Deletes tags: gone from the list and from every download and add.
    pub fn delete_tags(&self, tags: &[String]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin tag change"))?;
        for tag in tags {
            tx.execute("DELETE FROM tags WHERE name = ?1", [tag])
                .map_err(db_err("delete a tag"))?;
        }
        retag(&tx, None, TagEdit::Remove(tags))?;
        tx.commit().map_err(db_err("commit tag change"))
    }

    /// Changes the tags of the visible downloads and pending adds with one
    /// of `hashes` (every one when `None`), in one transaction.
    pub fn edit_tags(&self, hashes: Option<&[String]>, edit: TagEdit<'_>) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin tag change"))?;
        if let TagEdit::Add(tags) = edit {
            make_tags(&tx, tags)?;
        }
        retag(&tx, hashes, edit)?;
        tx.commit().map_err(db_err("commit tag change"))
    }

    /// Records adds (one transaction), creating `category` and `tags` if
    /// they are new; `paused`: they become paused downloads. Returns their
    /// ids.
    pub fn insert_grabs(
        &self,
        grabs: &[NewGrab],
        category: &str,
        tags: &[String],
        paused: bool,
    ) -> Result<Vec<i64>> {
        let now = now_rfc3339();
        let stored = join_tags(tags.iter().map(String::as_str));
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin add"))?;
        make_tags(&tx, tags)?;
        if !category.is_empty() {
            tx.execute(
                "INSERT OR IGNORE INTO categories (name) VALUES (?1)",
                [category],
            )
            .map_err(db_err("create a category"))?;
        }
        let mut ids = Vec::with_capacity(grabs.len());
        for g in grabs {
            let (stub, hash) = match &g.stub {
                Some((bytes, hash)) => (Some(bytes.as_slice()), Some(hash.as_str())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO grabs (stub_name, stub, info_hash, title, size, peer, item_id, \
                 category, tags, added_at, paused) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    g.stub_name,
                    stub,
                    hash,
                    g.title,
                    to_i64(g.size)?,
                    g.peer,
                    g.item_id,
                    category,
                    stored,
                    now,
                    paused
                ],
            )
            .map_err(db_err("record an add"))?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit().map_err(db_err("commit add"))?;
        Ok(ids)
    }

    /// Adds not yet turned into downloads, oldest first (without their stubs).
    pub fn grabs(&self) -> Result<Vec<Grab>> {
        grabs(&self.conn.lock())
    }

    /// The stub bytes of a grab (`None` for a link, or a grab that is gone).
    pub fn grab_stub(&self, id: i64) -> Result<Option<Vec<u8>>> {
        let conn = self.conn.lock();
        let stub: Option<Option<Vec<u8>>> = conn
            .query_row("SELECT stub FROM grabs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(db_err("read an add"))?;
        Ok(stub.flatten())
    }

    /// A grab was processed: it goes, and the download it became (if any)
    /// takes its category and its tags, in one transaction. `None` when
    /// the grab was already gone (deleted meanwhile), else whether it was
    /// paused by then (a pause may come while the add is made).
    pub fn settle_grab(&self, id: i64, download: Option<i64>) -> Result<Option<bool>> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin add"))?;
        let grab: Option<(String, bool)> = tx
            .query_row("SELECT tags, paused FROM grabs WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db_err("read an add"))?;
        let paused = grab.as_ref().map(|g| g.1);
        if let (Some(download), Some((tags, _))) = (download, grab) {
            let theirs: Option<String> = tx
                .query_row(
                    "SELECT tags FROM downloads WHERE id = ?1",
                    [download],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err("read a download"))?;
            let both =
                join_tags(split_tags(&tags).chain(split_tags(theirs.as_deref().unwrap_or(""))));
            tx.execute(
                "UPDATE downloads SET category = (SELECT category FROM grabs WHERE id = ?1), \
                 tags = ?3 WHERE id = ?2",
                params![id, download, both],
            )
            .map_err(db_err("set the category"))?;
        }
        tx.execute("DELETE FROM grabs WHERE id = ?1", [id])
            .map_err(db_err("settle an add"))?;
        tx.commit().map_err(db_err("commit add"))?;
        Ok(paused)
    }

    /// Pauses or resumes the adds of `info_hash` (every add with `None`)
    /// not yet made downloads (a link's add has no hash until then: only
    /// `None` reaches it).
    pub fn pause_grabs(&self, info_hash: Option<&str>, paused: bool) -> Result<usize> {
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE grabs SET paused = ?2 WHERE ?1 IS NULL OR info_hash = ?1",
            params![info_hash, paused],
        )
        .map_err(db_err("pause an add"))
    }

    /// Drops a pending grab (its torrent was deleted before it became one).
    pub fn delete_grab(&self, id: i64) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute("DELETE FROM grabs WHERE id = ?1", [id])
            .map_err(db_err("drop an add"))?;
        Ok(())
    }

    /// Records that download `id` is to be removed (`delete_files`: its
    /// `.part` and a final file jack put there go too). Durable before any
    /// file is touched, so a restart finishes it.
    pub fn request_removal(&self, id: i64, delete_files: bool) -> Result<()> {
        let mode = if delete_files {
            "delete_files"
        } else {
            "keep_files"
        };
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE downloads SET removal = ?2 WHERE id = ?1",
            params![id, mode],
        )
        .map_err(db_err("record a removal"))?;
        Ok(())
    }

    /// `Some(delete_files)` when a removal of `id` was asked for.
    pub fn removal(&self, id: i64) -> Result<Option<bool>> {
        let conn = self.conn.lock();
        let mode: Option<Option<String>> = conn
            .query_row("SELECT removal FROM downloads WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_err("read a removal"))?;
        Ok(mode.flatten().map(|m| m == "delete_files"))
    }

    /// Ids of the rows of release `info_hash` whose removal was asked for
    /// and is not finished (their worker may still hold them).
    pub fn being_removed(&self, info_hash: &str) -> Result<Vec<i64>> {
        let sql =
            "SELECT id FROM downloads WHERE info_hash = ?1 AND removal IS NOT NULL ORDER BY id";
        let conn = self.conn.lock();
        query_all(&conn, sql, [info_hash], |r| r.get(0), "list removals")
    }

    /// Ids of the downloads whose removal was asked for, oldest first.
    pub fn removals(&self) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM downloads WHERE removal IS NOT NULL ORDER BY id";
        query_all(&self.conn.lock(), sql, [], |r| r.get(0), "list removals")
    }

    /// Deletes a download's row and its events (the removal's last step).
    pub fn delete_download(&self, id: i64) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute("DELETE FROM downloads WHERE id = ?1", [id])
            .map_err(db_err("delete a download"))?;
        Ok(())
    }
}

/// The visible downloads of [`Registry::client_view`].
fn client_rows(
    conn: &rusqlite::Connection,
    info_hash: Option<&str>,
    category: Option<&str>,
) -> Result<Vec<ClientRow>> {
    let sql = format!(
        "SELECT * FROM (SELECT id, info_hash, title, file_name, dest_path, expected_bytes, \
         downloaded_bytes, status, coalesce((SELECT g.category FROM grabs g \
         WHERE g.info_hash = d.info_hash ORDER BY g.id DESC LIMIT 1), category) AS shown, \
         created_at, updated_at, completed_at, tags, sha256, verified_bytes \
         FROM downloads d WHERE {VISIBLE} AND (?1 IS NULL OR info_hash = ?1)) \
         WHERE ?2 IS NULL OR shown = ?2 ORDER BY id"
    );
    let read = |r: &rusqlite::Row<'_>| {
        Ok(ClientRow {
            id: r.get(0)?,
            info_hash: r.get(1)?,
            title: r.get(2)?,
            file_name: r.get(3)?,
            dest_path: r.get(4)?,
            expected_bytes: get_u64(r, 5)?,
            downloaded_bytes: get_u64(r, 6)?,
            status: get_status(r, 7)?,
            category: r.get(8)?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
            completed_at: r.get(11)?,
            tags: r.get(12)?,
            sha256: r.get(13)?,
            verified_bytes: get_u64(r, 14)?,
        })
    };
    let params = rusqlite::params![info_hash, category];
    query_all(conn, &sql, params, read, "list downloads")
}

/// The pending adds, oldest first (without their stubs).
fn grabs(conn: &rusqlite::Connection) -> Result<Vec<Grab>> {
    let sql = "SELECT id, stub_name, info_hash, title, size, peer, item_id, category, \
               added_at, tags, paused FROM grabs ORDER BY id";
    let read = |r: &rusqlite::Row<'_>| {
        Ok(Grab {
            id: r.get(0)?,
            stub_name: r.get(1)?,
            info_hash: r.get(2)?,
            title: r.get(3)?,
            size: get_u64(r, 4)?,
            peer: r.get(5)?,
            item_id: r.get(6)?,
            category: r.get(7)?,
            added_at: r.get(8)?,
            tags: r.get(9)?,
            paused: r.get(10)?,
        })
    };
    query_all(conn, sql, [], read, "list adds")
}

/// Makes `tags` that do not exist yet.
fn make_tags(conn: &rusqlite::Connection, tags: &[String]) -> Result<()> {
    for tag in tags {
        conn.execute("INSERT OR IGNORE INTO tags (name) VALUES (?1)", [tag])
            .map_err(db_err("make a tag"))?;
    }
    Ok(())
}

/// Applies `edit` to the tags of the visible downloads and the pending
/// adds with one of `hashes` (every one when `None`).
fn retag(conn: &rusqlite::Connection, hashes: Option<&[String]>, edit: TagEdit<'_>) -> Result<()> {
    let (filter, values) = hash_filter(hashes, Vec::new());
    for table in ["downloads", "grabs"] {
        let visible = if table == "downloads" { VISIBLE } else { "1" };
        let sql = format!("SELECT id, tags FROM {table} WHERE {visible} AND {filter}");
        let read = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?));
        let params = params_from_iter(values.iter());
        for (id, tags) in query_all(conn, &sql, params, read, "read tags")? {
            let new = edited(&tags, edit);
            if new != tags {
                conn.execute(
                    &format!("UPDATE {table} SET tags = ?2 WHERE id = ?1"),
                    params![id, new],
                )
                .map_err(db_err("set tags"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{EventKind, NewDownload, Status};

    fn new(n: u32, hash: &str) -> NewDownload {
        NewDownload {
            stub_name: format!("api/{n}.torrent"),
            info_hash: hash.into(),
            peer: "alice".into(),
            item_id: format!("m:{n}"),
            title: format!("T{n}"),
            file_name: format!("T{n}.mkv"),
            part_path: format!("/i/{hash}.part").into(),
            dest_path: format!("/c/T{n}.mkv").into(),
            etag: None,
            expected_bytes: 10,
            sha256: None,
            search: None,
        }
    }

    fn grab(name: &str, stub: Option<(&[u8], &str)>) -> NewGrab {
        NewGrab {
            stub_name: name.into(),
            stub: stub.map(|(b, h)| (b.to_vec(), h.to_string())),
            title: "T".into(),
            size: 10,
            peer: "alice".into(),
            item_id: "m:1".into(),
        }
    }

    #[test]
    fn categories_grabs_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let (a, b) = (
            reg.insert(&new(1, "aa")).unwrap(),
            reg.insert(&new(2, "bb")).unwrap(),
        );
        let category = |id| {
            let rows = reg.client_view(None, None).unwrap().0;
            rows.into_iter().find(|r| r.id == id).map(|r| r.category)
        };
        assert_eq!(category(a).as_deref(), Some(""));

        // Adds: recorded with their category (created), read back, settled.
        let ids = reg
            .insert_grabs(
                &[grab("s", Some((b"stub", "aa"))), grab("l", None)],
                "radarr",
                &[],
                false,
            )
            .unwrap();
        assert!(reg.create_category("sonarr", "/x").unwrap());
        assert!(!reg.create_category("sonarr", "/y").unwrap(), "exists");
        assert_eq!(
            reg.categories().unwrap(),
            [("radarr".into(), "".into()), ("sonarr".into(), "/x".into())]
        );
        let grabs = reg.grabs().unwrap();
        assert_eq!(grabs.len(), 2);
        assert_eq!(
            (grabs[0].info_hash.as_deref(), grabs[1].info_hash.as_deref()),
            (Some("aa"), None)
        );
        assert_eq!(
            reg.grab_stub(ids[0]).unwrap().as_deref(),
            Some(&b"stub"[..])
        );
        assert_eq!(reg.grab_stub(ids[1]).unwrap(), None);
        // A pause reaches an add by its hash, or every add.
        assert_eq!(reg.pause_grabs(Some("aa"), true).unwrap(), 1);
        assert!(reg.grabs().unwrap()[0].paused && !reg.grabs().unwrap()[1].paused);
        assert_eq!(reg.pause_grabs(None, true).unwrap(), 2);
        assert_eq!(reg.pause_grabs(None, false).unwrap(), 2);
        assert_eq!(reg.settle_grab(ids[0], Some(a)).unwrap(), Some(false));
        assert_eq!(category(a).as_deref(), Some("radarr"), "the add's category");
        assert_eq!(
            reg.settle_grab(ids[0], Some(b)).unwrap(),
            None,
            "already settled"
        );
        assert_eq!(
            category(b).as_deref(),
            Some(""),
            "a settled add changes nothing"
        );
        reg.delete_grab(ids[1]).unwrap();
        assert!(reg.grabs().unwrap().is_empty());

        // Categories by hash, or all.
        reg.set_category(Some(&["bb".to_string(), "zz".to_string()]), "sonarr")
            .unwrap();
        assert_eq!(
            (category(a).unwrap(), category(b).unwrap()),
            ("radarr".into(), "sonarr".into())
        );
        reg.set_category(None, "").unwrap();
        assert_eq!(
            (category(a).unwrap(), category(b).unwrap()),
            (String::new(), String::new())
        );

        // A removal hides the row from clients and from Identity, then the
        // row goes with its events.
        reg.transition(a, Status::Failed, Some("x"), EventKind::Failed, "x")
            .unwrap();
        assert_eq!(reg.removal(a).unwrap(), None);
        reg.request_removal(a, true).unwrap();
        reg.request_removal(b, false).unwrap();
        assert_eq!(
            (reg.removal(a).unwrap(), reg.removal(b).unwrap()),
            (Some(true), Some(false))
        );
        assert_eq!(reg.removals().unwrap(), [a, b]);
        assert!(reg.client_view(None, None).unwrap().0.is_empty());
        assert!(reg.by_info_hash("aa").unwrap().is_empty());
        reg.delete_download(a).unwrap();
        assert!(reg.get(a).unwrap().is_none() && reg.events(a).unwrap().is_empty());
        assert_eq!(reg.removal(a).unwrap(), None);
    }

    #[test]
    fn a_download_shows_the_category_of_its_pending_add() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        // The add recorded, its download made, the add not yet settled.
        let ids = reg
            .insert_grabs(&[grab("s", Some((b"stub", "aa")))], "radarr", &[], false)
            .unwrap();
        let a = reg.insert(&new(1, "aa")).unwrap();
        reg.insert(&new(2, "bb")).unwrap();
        let shown = |category: Option<&str>| {
            let (rows, grabs) = reg.client_view(None, category).unwrap();
            let rows: Vec<_> = rows.into_iter().map(|r| (r.id, r.category)).collect();
            (rows, grabs.len())
        };
        assert_eq!(
            shown(None),
            (vec![(a, "radarr".into()), (a + 1, String::new())], 1)
        );
        assert_eq!(shown(Some("radarr")), (vec![(a, "radarr".into())], 1));
        assert_eq!(shown(Some("")), (vec![(a + 1, String::new())], 1));
        // Settled: the same, from the row itself.
        assert_eq!(reg.settle_grab(ids[0], Some(a)).unwrap(), Some(false));
        assert_eq!(shown(Some("radarr")), (vec![(a, "radarr".into())], 0));
    }

    #[test]
    fn tags_of_downloads_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let a = reg.insert(&new(1, "aa")).unwrap();
        let b = reg.insert(&new(2, "bb")).unwrap();
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let tags = |id: i64| {
            let (rows, _) = reg.client_view(None, None).unwrap();
            rows.into_iter().find(|r| r.id == id).unwrap().tags
        };
        // An add with tags (made), its download not yet settled.
        let ids = reg
            .insert_grabs(
                &[grab("s", Some((b"stub", "cc")))],
                "",
                &t(&["tv", "anime"]),
                false,
            )
            .unwrap();
        let c = reg.insert(&new(3, "cc")).unwrap();
        assert_eq!(reg.tags().unwrap(), t(&["anime", "tv"]));
        assert_eq!(tags(c), "anime,tv", "the pending add's tags");
        // addTags by hash reaches the download and the add.
        let hashes = t(&["aa", "cc"]);
        reg.edit_tags(Some(&hashes), TagEdit::Add(&t(&["new", "tv"])))
            .unwrap();
        assert_eq!((tags(a), tags(b)), ("new,tv".into(), String::new()));
        assert_eq!(reg.grabs().unwrap()[0].tags, "anime,new,tv");
        assert_eq!(reg.settle_grab(ids[0], Some(c)).unwrap(), Some(false));
        assert_eq!(tags(c), "anime,new,tv", "settled: the download's own");
        assert_eq!(reg.tags().unwrap(), t(&["anime", "new", "tv"]));
        // removeTags, then every tag off; deleteTags from everything.
        reg.edit_tags(None, TagEdit::Remove(&t(&["new"]))).unwrap();
        assert_eq!((tags(a), tags(c)), ("tv".into(), "anime,tv".into()));
        reg.edit_tags(Some(&t(&["aa"])), TagEdit::Clear).unwrap();
        assert_eq!(tags(a), "");
        reg.create_tags(&t(&["spare"])).unwrap();
        reg.delete_tags(&t(&["tv", "spare"])).unwrap();
        assert_eq!(
            (tags(c), reg.tags().unwrap()),
            ("anime".into(), t(&["anime", "new"]))
        );
    }
}
