//! Stubs the watch folder set aside (`<name>.invalid`, `<name>.failed`,
//! `<name>.duplicate`, or `<name>.<n>.<kind>`; `download/watch`): [`list`]
//! finds them with their reason, read from what is on disk and in the
//! registry alone (an invalid stub's reason as recorded, a failed one's
//! download and its error, a duplicate's download found by the info-hash
//! in the stub); [`Listing`] keeps that list while the folder is
//! unchanged (its modification time), 5 s at most, so a page polling
//! every second costs one `stat` a poll. [`retry`] puts one back under its
//! own name as a new file of jack's own (a copy of its bytes, written to a
//! hidden name, synced, renamed into place without replacing anything,
//! then the set-aside file unlinked), so the watch thread reads it again
//! as a new grab (a new file: new inode and modification time). The
//! *arr wrote the set-aside file and owns it: jack never writes it, never
//! re-dates it (Linux lets only a file's owner set its times), and needs
//! only write permission on the folder. It reads a set-aside file only if
//! it is a regular file (never through a link, never a FIFO or device)
//! and at most [`MAX_STUB_BYTES`]: anything else is refused as not a stub.
//! A duplicate whose download is still there stays a duplicate: retrying
//! it is refused with why. Must not: delete a stub (but the set-aside file
//! once its copy is back), replace a file, write or follow the *arr's
//! file.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::db::{Registry, Status};
use crate::error::{Error, Result};
use crate::stub::MAX_STUB_BYTES;

/// One stub set aside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetAside {
    /// Its name in the watch folder now (`Movie.torrent.invalid`).
    pub file: String,
    /// The stub's own name (`Movie.torrent`).
    pub stub: String,
    /// `invalid`, `failed` or `duplicate`.
    pub kind: &'static str,
    /// Why, in plain words.
    pub reason: String,
    /// The download it concerns, when there is one.
    pub download: Option<i64>,
    /// When it was set aside (its modification time, RFC 3339).
    pub at: String,
}

const KINDS: [&str; 3] = ["invalid", "failed", "duplicate"];

/// `(stub, kind)` of a set-aside name: `<stub>.<kind>` or
/// `<stub>.<n>.<kind>` (n 2 to 99), the stub a `.torrent` name. Pure.
pub fn parse_name(file: &str) -> Option<(&str, &'static str)> {
    let (rest, kind) = file.rsplit_once('.')?;
    let kind = KINDS.into_iter().find(|k| *k == kind)?;
    let rest = match rest.rsplit_once('.') {
        Some((stub, n))
            if crate::lexical::decimal::<u32>(n).is_some_and(|n| (2..100).contains(&n)) =>
        {
            stub
        }
        _ => rest,
    };
    let stub_like = rest.to_ascii_lowercase().ends_with(".torrent") && !rest.starts_with('.');
    stub_like.then_some((rest, kind))
}

/// Every stub set aside in `dir`, by name.
pub fn list(dir: &Path, registry: &Registry) -> Result<Vec<SetAside>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Runtime(format!(
                "cannot read the watch folder {}: {}",
                dir.display(),
                phrase(&e)
            )));
        }
    };
    let invalid = registry.invalid_stubs()?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some((stub, kind)) = parse_name(&file) else {
            continue;
        };
        // Not followed: a link is not a stub set aside.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let at = meta
            .modified()
            .map_or_else(|_| String::new(), crate::clock::rfc3339);
        let (reason, download) = match kind {
            "invalid" => (
                invalid
                    .iter()
                    .rev()
                    .find(|i| i.stub_name == stub)
                    .map_or_else(
                        || "not a valid stub".to_string(),
                        |i| format!("not a valid stub: {}", i.reason),
                    ),
                None,
            ),
            "failed" => match registry.by_stub_name(stub)?.pop() {
                Some(d) => (
                    match (d.status, &d.error) {
                        (Status::Failed, Some(e)) => {
                            format!("its download failed: {}", crate::plain::say(&d.peer, e))
                        }
                        (status, _) => format!("its download failed, and is {status} now"),
                    },
                    Some(d.id),
                ),
                None => (
                    "its download failed and was removed since".to_string(),
                    None,
                ),
            },
            _ => {
                let bytes = read_set_aside(&dir.join(&file), &file)
                    .ok()
                    .and_then(|r| r.ok());
                match bytes
                    .map(|b| duplicate_of(&b, registry))
                    .transpose()?
                    .flatten()
                {
                    Some(d) => (
                        format!(
                            "a download of this release is already there (#{}, {})",
                            d.id, d.status
                        ),
                        Some(d.id),
                    ),
                    None => (
                        "its release had a download, removed since".to_string(),
                        None,
                    ),
                }
            }
        };
        out.push(SetAside {
            file: file.clone(),
            stub: stub.to_string(),
            kind,
            reason,
            download,
            at,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// How long a [`Listing`] answers from memory while the folder's
/// modification time stays the same: what is not in the folder (a failed
/// download retried, removed) shows this late at most.
pub const LISTING_MAX_AGE: Duration = Duration::from_secs(5);

/// [`list`] of one watch folder, kept while the folder's modification
/// time is unchanged (a stub set aside, put back or deleted renames or
/// unlinks in it, which changes it) and [`LISTING_MAX_AGE`] at most. The
/// lock is held around the memory only, never the listing.
#[derive(Debug, Default)]
pub struct Listing {
    kept: Mutex<Option<Kept>>,
}

#[derive(Debug, Clone)]
struct Kept {
    modified: SystemTime,
    at: Instant,
    list: Vec<SetAside>,
}

impl Listing {
    /// The stubs set aside in `dir`: from memory when still true.
    pub fn list(&self, dir: &Path, registry: &Registry) -> Result<Vec<SetAside>> {
        self.list_at(dir, registry, Instant::now())
    }

    fn list_at(&self, dir: &Path, registry: &Registry, now: Instant) -> Result<Vec<SetAside>> {
        let modified = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
        if let (Some(modified), Some(kept)) = (modified, &*self.kept.lock())
            && kept.modified == modified
            && now.saturating_duration_since(kept.at) < LISTING_MAX_AGE
        {
            return Ok(kept.list.clone());
        }
        let fresh = list(dir, registry);
        *self.kept.lock() = match (&fresh, modified) {
            (Ok(list), Some(modified)) => Some(Kept {
                modified,
                at: now,
                list: list.clone(),
            }),
            _ => None,
        };
        fresh
    }

    /// Forgets the list (a stub was just put back).
    pub fn forget(&self) {
        *self.kept.lock() = None;
    }
}

/// The download of the release the stub `bytes` name, if any.
fn duplicate_of(bytes: &[u8], registry: &Registry) -> Result<Option<crate::db::Download>> {
    let Ok(stub) = crate::stub::parse(bytes, u64::MAX) else {
        return Ok(None);
    };
    Ok(registry.by_info_hash(&stub.info_hash)?.pop())
}

/// Why a stub set aside cannot be put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such file set aside.
    NotFound,
    /// It cannot be put back, and why (in plain words).
    Conflict(String),
}

/// The bytes of the file set aside as `file` at `path`: only a regular
/// file, never through a link (`O_NOFOLLOW`, and `lstat` first), never
/// waiting on a FIFO (`O_NONBLOCK`), at most [`MAX_STUB_BYTES`]; anything
/// else is refused as not a stub.
fn read_set_aside(
    path: &Path,
    file: &str,
) -> std::io::Result<std::result::Result<Vec<u8>, Refused>> {
    use rustix::fs::{Mode, OFlags};
    let not_a_stub = |what: &str| {
        Ok(Err(Refused::Conflict(format!(
            "{file} is {what}, not a stub jack set aside: jack puts back only a regular file, and never follows a link"
        ))))
    };
    let what = |meta: &std::fs::Metadata| {
        let t = meta.file_type();
        if t.is_symlink() {
            "a link"
        } else if t.is_dir() {
            "a folder"
        } else {
            "a special file (a pipe, socket or device)"
        }
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(Refused::NotFound)),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return not_a_stub(what(&meta));
    }
    let too_big = |len: u64| {
        Ok(Err(Refused::Conflict(format!(
            "{file} is {len} bytes, more than a stub's {MAX_STUB_BYTES}: not a stub; delete it"
        ))))
    };
    if meta.len() > MAX_STUB_BYTES as u64 {
        return too_big(meta.len());
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Replaced by a link since the look.
        Err(rustix::io::Errno::LOOP) => return not_a_stub("a link"),
        Err(rustix::io::Errno::NOENT) => return Ok(Err(Refused::NotFound)),
        Err(e) => return Err(e.into()),
    };
    let file_handle = std::fs::File::from(fd);
    let meta = file_handle.metadata()?;
    if !meta.is_file() {
        return not_a_stub(what(&meta));
    }
    let mut bytes = Vec::new();
    file_handle
        .take(MAX_STUB_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_STUB_BYTES {
        return too_big(bytes.len() as u64);
    }
    Ok(Ok(bytes))
}

/// A local file error in a few plain words (no `os error N`).
fn phrase(e: &std::io::Error) -> String {
    match crate::plain::io_phrase(e) {
        "error" => crate::plain::without_os_error(&e.to_string()).to_lowercase(),
        p => p.to_string(),
    }
}

/// Puts the stub set aside as `file` back under its own name in `dir` as
/// a new file of jack's own (see the module doc), for the watch thread to
/// read as a new grab. Answers the stub's name. Errors are in plain words.
pub fn retry(
    dir: &Path,
    registry: &Registry,
    file: &str,
) -> Result<std::result::Result<String, Refused>> {
    let Some((stub, kind)) = parse_name(file).filter(|_| crate::naming::bare_file_name(file))
    else {
        return Ok(Err(Refused::NotFound));
    };
    let from = dir.join(file);
    let failed = |what: &str, e: std::io::Error| {
        log::warn!("cannot put a stub back file={file} step={what} error={e}");
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "; jack needs permission to read it and to write in the watch folder"
            }
            _ => "",
        };
        Error::Runtime(format!(
            "cannot put {file} back: cannot {what} in the watch folder {}: {}{hint}",
            dir.display(),
            phrase(&e)
        ))
    };
    let bytes = match read_set_aside(&from, file) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(refused)) => return Ok(Err(refused)),
        Err(e) => return Err(failed(&format!("read {file}"), e)),
    };
    if kind == "duplicate"
        && let Some(d) = duplicate_of(&bytes, registry)?
    {
        return Ok(Err(Refused::Conflict(format!(
            "{stub} is still a duplicate: download #{} of this release is {}; delete the stub, or remove that download first",
            d.id, d.status
        ))));
    }
    let (tmp, mut out) = hidden_file(dir, stub).map_err(|e| failed("write a file", e))?;
    let written = out.write_all(&bytes).and_then(|()| out.sync_all());
    drop(out);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed("write a file", e));
    }
    match crate::download::handoff::rename_no_replace(&tmp, &dir.join(stub)) {
        Ok(()) => {}
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(Err(Refused::Conflict(format!(
                    "a stub named {stub} is already in the watch folder"
                )))),
                _ => Err(failed(&format!("name a file {stub}"), e)),
            };
        }
    }
    // Back: the set-aside file goes (its copy is the stub now).
    if let Err(e) = std::fs::remove_file(&from) {
        log::warn!("stub put back, its set-aside file stays file={file} error={e}");
    }
    let _ = crate::download::handoff::sync_dir(dir);
    log::info!("stub put back stub={stub} was={file}");
    Ok(Ok(stub.to_string()))
}

/// A new hidden file in `dir` for the copy of `stub` (a name the watch
/// thread and [`list`] skip), created, never opened if there.
fn hidden_file(dir: &Path, stub: &str) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{stub}.retry-{}-{n}", std::process::id()));
        match std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_aside_names() {
        let cases = [
            ("A.torrent.invalid", Some(("A.torrent", "invalid"))),
            ("A.torrent.failed", Some(("A.torrent", "failed"))),
            ("A.torrent.duplicate", Some(("A.torrent", "duplicate"))),
            ("A.torrent.2.duplicate", Some(("A.torrent", "duplicate"))),
            ("A.b.TORRENT.99.failed", Some(("A.b.TORRENT", "failed"))),
            ("A.torrent.100.failed", None),
            ("A.torrent", None),
            ("A.mkv.failed", None),
            (".A.torrent.failed", None),
            ("A.torrent.part", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_name(name), want, "{name}");
        }
    }

    fn folder() -> (tempfile::TempDir, std::path::PathBuf, Registry) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("watch");
        std::fs::create_dir(&dir).unwrap();
        let reg = Registry::open(&tmp.path().join("jack.db")).unwrap();
        (tmp, dir, reg)
    }

    fn row(stub_name: &str, n: u32) -> crate::db::NewDownload {
        crate::db::NewDownload {
            stub_name: stub_name.into(),
            info_hash: format!("{n:040x}"),
            peer: "alice".into(),
            item_id: format!("m{n}"),
            title: format!("M{n}"),
            file_name: format!("M{n}.mkv"),
            part_path: format!("/nowhere/{n}.part").into(),
            dest_path: format!("/nowhere/M{n}.mkv").into(),
            etag: None,
            expected_bytes: 1,
            sha256: None,
            search: None,
        }
    }

    fn conflict(r: std::result::Result<String, Refused>) -> String {
        match r {
            Err(Refused::Conflict(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    /// The *arr's file is copied, never written or re-dated: a read-only
    /// one (as when another user owns it) is put back all the same, as a
    /// new file, and the set-aside one is gone.
    #[test]
    fn a_read_only_stub_is_put_back_as_a_new_file() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_tmp, dir, reg) = folder();
        let stub = crate::stub::build("alice", "m", "M", 4096);
        let aside = dir.join("M.torrent.failed");
        std::fs::write(&aside, &stub).unwrap();
        std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o444)).unwrap();
        let old = std::fs::metadata(&aside).unwrap();
        assert_eq!(
            retry(&dir, &reg, "M.torrent.failed").unwrap(),
            Ok("M.torrent".into())
        );
        let back = std::fs::symlink_metadata(dir.join("M.torrent")).unwrap();
        assert!(back.is_file());
        assert_ne!(back.ino(), old.ino(), "a new file");
        assert_eq!(std::fs::read(dir.join("M.torrent")).unwrap(), stub);
        assert!(!aside.exists());
        // Nothing else left behind (no temporary file).
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A stub of that name already back: refused, nothing replaced.
        std::fs::write(&aside, b"other").unwrap();
        let why = conflict(retry(&dir, &reg, "M.torrent.failed").unwrap());
        assert!(why.contains("already in the watch folder"), "{why}");
        assert_eq!(std::fs::read(dir.join("M.torrent")).unwrap(), stub);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }

    /// A retry that cannot be done says why in plain words.
    #[test]
    fn a_retry_that_cannot_be_done_is_said_plainly() {
        let (_tmp, dir, reg) = folder();
        std::fs::write(
            dir.join("M.torrent.failed"),
            crate::stub::build("a", "m", "M", 1),
        )
        .unwrap();
        // Not a folder any more under the stub's name: the copy cannot be made.
        let e = retry(&dir.join("nowhere"), &reg, "M.torrent.failed")
            .unwrap()
            .unwrap_err();
        assert_eq!(e, Refused::NotFound);
        let file_dir = dir.join("M.torrent.failed");
        let e = retry(&file_dir, &reg, "M.torrent.failed")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot put M.torrent.failed back: "), "{e}");
        assert!(!e.contains("os error"), "{e}");
    }

    /// A link, a FIFO, a folder or a file too big for a stub is refused as
    /// not a stub: never followed, never read whole, never waited on, and
    /// what a link points to is left as it was.
    #[test]
    fn only_a_regular_file_of_a_stub_size_is_put_back() {
        use std::os::unix::fs::symlink;
        let (tmp, dir, reg) = folder();
        // A library file, far bigger than a stub (sparse).
        let big = tmp.path().join("Film.mkv");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(8 * MAX_STUB_BYTES as u64)
            .unwrap();
        let small = tmp.path().join("real.torrent");
        std::fs::write(&small, crate::stub::build("a", "m", "M", 1)).unwrap();
        let small_date = std::fs::metadata(&small).unwrap().modified().unwrap();
        symlink(&big, dir.join("A.torrent.duplicate")).unwrap();
        symlink(&small, dir.join("B.torrent.failed")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("C.torrent.invalid"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        std::fs::create_dir(dir.join("D.torrent.failed")).unwrap();
        std::fs::File::create(dir.join("E.torrent.invalid"))
            .unwrap()
            .set_len(MAX_STUB_BYTES as u64 + 1)
            .unwrap();
        for (file, what) in [
            ("A.torrent.duplicate", "is a link"),
            ("B.torrent.failed", "is a link"),
            ("C.torrent.invalid", "is a special file"),
            ("D.torrent.failed", "is a folder"),
            ("E.torrent.invalid", "more than a stub's"),
        ] {
            let why = conflict(retry(&dir, &reg, file).unwrap());
            assert!(why.starts_with(file) && why.contains(what), "{file}: {why}");
            assert!(
                std::fs::symlink_metadata(dir.join(file)).is_ok(),
                "{file} kept"
            );
        }
        assert_eq!(
            std::fs::metadata(&small).unwrap().modified().unwrap(),
            small_date
        );
        for stub in [
            "A.torrent",
            "B.torrent",
            "C.torrent",
            "D.torrent",
            "E.torrent",
        ] {
            assert!(std::fs::symlink_metadata(dir.join(stub)).is_err(), "{stub}");
        }
        // Listed: only the regular file (the too big one, as invalid).
        let listed: Vec<String> = list(&dir, &reg)
            .unwrap()
            .into_iter()
            .map(|a| a.file)
            .collect();
        assert_eq!(listed, ["E.torrent.invalid"]);
    }

    /// The listing is kept while the folder's modification time stays the
    /// same, and at most `LISTING_MAX_AGE`; a change of the folder is seen
    /// at once.
    #[test]
    fn the_listing_is_kept_while_the_folder_is_unchanged() {
        let (_tmp, dir, reg) = folder();
        let set_date = |t: SystemTime| {
            std::fs::File::open(&dir).unwrap().set_modified(t).unwrap();
        };
        let t0 = SystemTime::now() - Duration::from_secs(60);
        std::fs::write(dir.join("M.torrent.failed"), b"x").unwrap();
        set_date(t0);
        let listing = Listing::default();
        let start = Instant::now();
        let reason = |l: Vec<SetAside>| l.into_iter().map(|a| a.reason).collect::<Vec<_>>();
        let first = listing.list_at(&dir, &reg, start).unwrap();
        assert_eq!(reason(first), ["its download failed and was removed since"]);
        // The registry changes, not the folder: the kept list, for a while.
        reg.insert(&row("M.torrent", 1)).unwrap();
        let kept = listing
            .list_at(&dir, &reg, start + Duration::from_secs(1))
            .unwrap();
        assert_eq!(reason(kept), ["its download failed and was removed since"]);
        let late = listing
            .list_at(&dir, &reg, start + LISTING_MAX_AGE)
            .unwrap();
        assert_eq!(reason(late), ["its download failed, and is queued now"]);
        // The folder changes: seen at once.
        std::fs::write(dir.join("N.torrent.invalid"), b"x").unwrap();
        set_date(t0 + Duration::from_secs(1));
        let changed = listing
            .list_at(&dir, &reg, start + LISTING_MAX_AGE)
            .unwrap();
        assert_eq!(changed.len(), 2);
        // Forgotten: read again.
        std::fs::remove_file(dir.join("N.torrent.invalid")).unwrap();
        set_date(t0 + Duration::from_secs(1));
        listing.forget();
        assert_eq!(
            listing
                .list_at(&dir, &reg, start + LISTING_MAX_AGE)
                .unwrap()
                .len(),
            1
        );
    }
}
