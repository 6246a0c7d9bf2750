//! The hand-off (`PROTOCOL.md` §2.4 rule 11): how a complete, synced
//! `.part` in `incomplete_dir` gets its final name in `completed_dir`,
//! where Radarr/Sonarr import it.
//!
//! A start-up [`probe`] decides the [`Mode`] by trying it on an empty file:
//! a hard link from one folder into the other ([`Mode::Link`]: instant, and
//! a link never replaces a file); where the filesystem has no hard links, a
//! rename that refuses to replace (`renameat2` with `RENAME_NOREPLACE`,
//! [`Mode::Rename`]); where the two folders cannot be linked or renamed
//! across (two filesystems, or two bind mounts of one filesystem, which
//! fail with `EXDEV` although `st_dev` is equal), a copy ([`Mode::Copy`])
//! into a hidden temporary name inside `completed_dir` that Radarr/Sonarr
//! ignore, synced, then renamed into place without replacing.
//!
//! Invariants: only whole, synced files ever carry a final name; a final
//! name never replaces a file; before a hand-off begins the registry
//! records which file (`dev:ino`) will carry the final name, so start-up
//! can tell a final file jack put there from anybody else's (rule 13).
//! This module never decides whether to hand off; `transfer` does.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::db::{Download, EventKind, Registry};
use crate::error::{Error, Result};
use crate::fault::{self, crash_point};

/// How finished files reach `completed_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A hard link, then the `.part` name is removed.
    Link,
    /// `renameat2(RENAME_NOREPLACE)` (no hard links on this filesystem).
    Rename,
    /// A copy into a hidden temporary name, synced, then a no-replace
    /// rename (the folders cannot be linked or renamed across).
    Copy,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Link => "link",
            Mode::Rename => "rename",
            Mode::Copy => "copy",
        }
    }
}

/// Bytes asked of one `copy_file_range` call; between calls the copy
/// checks for shutdown and reports progress.
const COPY_CHUNK: u64 = 64 * 1024 * 1024;
/// Buffer of the read/write fallback where `copy_file_range` cannot work.
const COPY_BUFFER: usize = 1024 * 1024;
/// Copy progress is logged this often, and recorded as an event at each
/// tenth of the file when at least this long has passed since the last.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The hidden name a copy is written under inside `completed_dir`: a dot
/// file (hidden), ending in `.partial~`, which Sonarr and Radarr skip
/// explicitly and which no import treats as a video.
pub fn temp_path(completed_dir: &Path, info_hash: &str) -> PathBuf {
    completed_dir.join(format!(".jack-{info_hash}.partial~"))
}

/// Whether a file name in `completed_dir` is one of jack's own
/// unfinished copies or probe files (never a final file).
pub fn is_own_temp(name: &str) -> bool {
    name.starts_with(".jack-") && (name.ends_with(".partial~") || name.starts_with(".jack-probe-"))
}

/// `dev:ino` of a file: what the registry records before a hand-off.
pub fn file_id(meta: &std::fs::Metadata) -> String {
    format!("{}:{}", meta.dev(), meta.ino())
}

/// Decides the hand-off by trying it on an empty file, which it removes.
pub fn probe(incomplete: &Path, completed: &Path) -> Result<Mode> {
    let name = format!(".jack-probe-{}", std::process::id());
    let (src, dst) = (incomplete.join(&name), completed.join(&name));
    let fail = |what: &str, e| {
        Error::io(
            format!(
                "cannot {what} while testing how files move from {} to {}",
                incomplete.display(),
                completed.display()
            ),
            e,
        )
    };
    remove_if_there(&src).map_err(|e| fail("clean up", e))?;
    remove_if_there(&dst).map_err(|e| fail("clean up", e))?;
    File::create(&src).map_err(|e| fail("create a file", e))?;
    let across = move_across(&src, &dst);
    let cleaned = remove_if_there(&src).and_then(|()| remove_if_there(&dst));
    let mode = match across {
        Ok(Some(mode)) => mode,
        Ok(None) => {
            probe_placing(completed)?;
            Mode::Copy
        }
        Err(e) => return Err(cannot_place(completed, e)),
    };
    cleaned.map_err(|e| fail("clean up", e))?;
    Ok(mode)
}

/// Moves the empty probe file across: `Some(mode)` when it could, `None`
/// when the folders cannot be linked or renamed across.
fn move_across(src: &Path, dst: &Path) -> io::Result<Option<Mode>> {
    match fault::cross_device().and_then(|()| std::fs::hard_link(src, dst)) {
        Ok(()) => return Ok(Some(Mode::Link)),
        Err(e) if is_exdev(&e) => return Ok(None),
        Err(_) => {} // no hard links here: try the no-replace rename
    }
    match fault::cross_device().and_then(|()| rename_noreplace_syscall(src, dst)) {
        Ok(()) => Ok(Some(Mode::Rename)),
        Err(e) if is_exdev(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The copy hand-off needs a no-replace rename inside `completed_dir`.
fn probe_placing(completed: &Path) -> Result<()> {
    let a = completed.join(format!(".jack-probe-{}-a", std::process::id()));
    let b = completed.join(format!(".jack-probe-{}-b", std::process::id()));
    let _ = remove_if_there(&a);
    let _ = remove_if_there(&b);
    let result = File::create(&a).and_then(|_| rename_no_replace(&a, &b));
    let _ = remove_if_there(&a);
    let _ = remove_if_there(&b);
    result.map_err(|e| cannot_place(completed, e))
}

fn cannot_place(completed: &Path, e: io::Error) -> Error {
    Error::Runtime(format!(
        "{} supports neither hard links nor renames that refuse to replace a file ({e}): \
         jack cannot hand finished files over there without risking one that exists; \
         put downloads.completed_dir on a local filesystem",
        completed.display()
    ))
}

/// Moves `from` to `to`, failing with `AlreadyExists` rather than
/// replacing a file: `renameat2(RENAME_NOREPLACE)`, or, where the
/// filesystem does not support that flag, a hard link (which never
/// replaces) and then the old name removed. Never `exists()` then
/// `rename()`.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match rename_noreplace_syscall(from, to) {
        Err(e) if flag_unsupported(&e) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        other => other,
    }
}

fn rename_noreplace_syscall(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// `EINVAL`, `ENOSYS`, `EOPNOTSUPP`: the filesystem or kernel lacks
/// `RENAME_NOREPLACE`.
fn flag_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(22 | 38 | 95))
}

fn is_exdev(e: &io::Error) -> bool {
    e.raw_os_error() == Some(18)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why a hand-off did not happen.
#[derive(Debug)]
pub enum Failure {
    /// A file already has the final name; it is left untouched.
    DestinationExists,
    /// The node is shutting down (a copy was abandoned and removed).
    Interrupted,
    /// `what` failed on a file or folder.
    Io(io::Error, &'static str),
    /// The registry could not record the hand-off file.
    Db(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Db(e)
    }
}

/// Everything a hand-off needs besides the row and its synced `.part`.
pub struct HandOff<'a> {
    pub registry: &'a Registry,
    pub mode: Mode,
    pub stopping: &'a AtomicBool,
}

impl HandOff<'_> {
    /// Gives `row`'s complete, synced `.part` its final name (rule 11).
    /// The caller marks the row completed.
    pub fn run(&self, row: &Download, part: &File) -> Result<(), Failure> {
        if self.mode == Mode::Copy {
            return self.copy(row, part);
        }
        match self.move_part(row, part) {
            // The mounts changed since start-up: copy this one.
            Err(Failure::Io(e, _)) if is_exdev(&e) => {
                log::warn!(
                    "hand-off cannot {} across the folders any more id={}: copying",
                    self.mode.as_str(),
                    row.id
                );
                self.copy(row, part)
            }
            other => other,
        }
    }

    /// [`Mode::Link`] and [`Mode::Rename`]: the `.part` itself takes the
    /// final name.
    fn move_part(&self, row: &Download, part: &File) -> Result<(), Failure> {
        let meta = part.metadata().map_err(|e| Failure::Io(e, "stat"))?;
        self.registry.set_handoff_file(row.id, &file_id(&meta))?;
        let (from, to) = (&row.part_path, &row.dest_path);
        let moved = fault::cross_device().and_then(|()| match self.mode {
            Mode::Link => std::fs::hard_link(from, to).map(|()| {
                crash_point("finalize:after_link");
            }),
            _ => rename_no_replace(from, to),
        });
        match moved {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Failure::DestinationExists);
            }
            Err(e) => return Err(Failure::Io(e, "move into place")),
        }
        if self.mode == Mode::Link {
            std::fs::remove_file(from).map_err(|e| Failure::Io(e, "remove"))?;
        }
        crash_point("finalize:after_rename");
        sync_parents(row)?;
        crash_point("finalize:after_dir_fsync");
        Ok(())
    }

    /// [`Mode::Copy`]: copy into the hidden temporary name, sync it, give
    /// it the final name without replacing, sync the folder, then remove
    /// the `.part`. A failure removes the copy (it was never exposed).
    fn copy(&self, row: &Download, part: &File) -> Result<(), Failure> {
        let dir = row.dest_path.parent().unwrap_or(Path::new("."));
        let temp = temp_path(dir, &row.info_hash);
        // A copy an earlier attempt left is jack's own and unfinished.
        remove_if_there(&temp).map_err(|e| Failure::Io(e, "remove an unfinished copy"))?;
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Failure::Io(e, "create the copy"))?;
        let placed = self.copy_and_place(row, part, &out, &temp);
        if placed.is_err() {
            let _ = remove_if_there(&temp);
            return placed;
        }
        std::fs::remove_file(&row.part_path).map_err(|e| Failure::Io(e, "remove"))?;
        if let Some(incomplete) = row.part_path.parent() {
            sync_dir(incomplete).map_err(|e| Failure::Io(e, "sync the folder of"))?;
        }
        crash_point("copy:after_part_removed");
        Ok(())
    }

    fn copy_and_place(
        &self,
        row: &Download,
        part: &File,
        out: &File,
        temp: &Path,
    ) -> Result<(), Failure> {
        let meta = out.metadata().map_err(|e| Failure::Io(e, "stat"))?;
        self.registry.set_handoff_file(row.id, &file_id(&meta))?;
        crash_point("copy:after_create");
        let total = row.expected_bytes;
        let started = Instant::now();
        self.note(
            row.id,
            &format!(
                "copying {total} bytes into completed_dir (the folders cannot be linked across)"
            ),
        );
        log::info!("hand-off copy started id={} bytes={total}", row.id);
        self.copy_bytes(row, part, out)?;
        out.sync_all()
            .map_err(|e| Failure::Io(e, "sync the copy"))?;
        let len = out.metadata().map_err(|e| Failure::Io(e, "stat"))?.len();
        if len != total {
            let e = io::Error::other(format!("the copy has {len} bytes, expected {total}"));
            return Err(Failure::Io(e, "check the copy"));
        }
        crash_point("copy:after_sync");
        match rename_no_replace(temp, &row.dest_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Failure::DestinationExists);
            }
            Err(e) => return Err(Failure::Io(e, "move the copy into place")),
        }
        crash_point("copy:after_place");
        let dir = row.dest_path.parent().unwrap_or(Path::new("."));
        sync_dir(dir).map_err(|e| Failure::Io(e, "sync the folder of"))?;
        crash_point("copy:after_dir_fsync");
        let ms = started.elapsed().as_millis();
        self.note(row.id, &format!("copied {total} bytes in {ms} ms"));
        log::info!("hand-off copy done id={} bytes={total} ms={ms}", row.id);
        Ok(())
    }

    /// Copies the whole `.part` into `out`: `copy_file_range` (in the
    /// kernel, no user-space buffer), or `pread`/`pwrite` where it cannot.
    fn copy_bytes(&self, row: &Download, part: &File, out: &File) -> Result<(), Failure> {
        let total = row.expected_bytes;
        let mut done = 0u64;
        let mut in_kernel = true;
        let mut buf = Vec::new();
        let mut last_log = Instant::now();
        let mut last_event = (Instant::now(), 0u64);
        while done < total {
            if self.stopping.load(Ordering::Relaxed) {
                return Err(Failure::Interrupted);
            }
            let want = (total - done).min(COPY_CHUNK);
            let n = if in_kernel {
                let len = usize::try_from(want).unwrap_or(COPY_BUFFER);
                let (mut off_in, mut off_out) = (done, done);
                match rustix::fs::copy_file_range(
                    part,
                    Some(&mut off_in),
                    out,
                    Some(&mut off_out),
                    len,
                ) {
                    Ok(n) => n as u64,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) if cannot_copy_in_kernel(e) => {
                        in_kernel = false;
                        continue;
                    }
                    Err(e) => return Err(Failure::Io(e.into(), "copy")),
                }
            } else {
                buf.resize(COPY_BUFFER, 0);
                let len = usize::try_from(want)
                    .unwrap_or(COPY_BUFFER)
                    .min(COPY_BUFFER);
                let n = part
                    .read_at(&mut buf[..len], done)
                    .map_err(|e| Failure::Io(e, "read"))?;
                out.write_all_at(&buf[..n], done)
                    .map_err(|e| Failure::Io(e, "copy"))?;
                n as u64
            };
            if n == 0 {
                let e = io::Error::other(format!("the .part ended at byte {done} of {total}"));
                return Err(Failure::Io(e, "copy"));
            }
            done += n;
            crash_point("copy:after_first_chunk");
            if last_log.elapsed() >= PROGRESS_EVERY {
                log::info!("hand-off copying id={} bytes={done} of={total} ", row.id);
                last_log = Instant::now();
            }
            let tenth = done * 10 / total;
            if tenth > last_event.1 && last_event.0.elapsed() >= PROGRESS_EVERY && done < total {
                self.note(
                    row.id,
                    &format!("copying: {}% ({done} of {total} bytes)", tenth * 10),
                );
                last_event = (Instant::now(), tenth);
            }
        }
        Ok(())
    }

    /// A hand-off event; a registry that cannot take it does not stop the copy.
    fn note(&self, id: i64, detail: &str) {
        if let Err(e) = self.registry.add_event(id, EventKind::HandOff, detail) {
            log::warn!("cannot record a hand-off event id={id} error={e}");
        }
    }
}

/// Errors after which a read/write copy still works: another filesystem
/// (`EXDEV`), no support (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`), or a file
/// the kernel will not copy this way (`EBADF` on some filesystems).
fn cannot_copy_in_kernel(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(
        e,
        Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::BADF
    )
}

/// Syncs the folders of the final name and of the `.part`.
fn sync_parents(row: &Download) -> Result<(), Failure> {
    for dir in [row.dest_path.parent(), row.part_path.parent()]
        .into_iter()
        .flatten()
    {
        sync_dir(dir).map_err(|e| Failure::Io(e, "sync the folder of"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
        assert!(a.exists());
        std::fs::remove_file(&b).unwrap();
        rename_no_replace(&a, &b).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
    }

    #[test]
    fn one_filesystem_links_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (inc, done) = (dir.path().join("inc"), dir.path().join("done"));
        std::fs::create_dir_all(&inc).unwrap();
        std::fs::create_dir_all(&done).unwrap();
        assert_eq!(probe(&inc, &done).unwrap(), Mode::Link);
        assert_eq!(std::fs::read_dir(&inc).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&done).unwrap().count(), 0);
    }

    #[test]
    fn temp_names_are_hidden_and_skipped_by_the_arr_apps() {
        let t = temp_path(Path::new("/c"), &"a".repeat(40));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with('.') && name.ends_with(".partial~"));
        assert!(is_own_temp(name));
        assert!(is_own_temp(".jack-probe-12-a"));
        assert!(!is_own_temp("Movie.mkv"));
        assert!(!is_own_temp(".jack-notes.txt"));
    }
}
