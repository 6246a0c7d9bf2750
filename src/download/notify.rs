//! inotify on the watch folder, through rustix: what the kernel says about
//! the names in it. A name is complete once renamed into place
//! (`IN_MOVED_TO`) or closed after writing (`IN_CLOSE_WRITE`); it is being
//! written after a write (`IN_MODIFY`) until then; it is gone once removed
//! or renamed away. The kernel's word cannot be taken any more when events
//! were lost (`IN_Q_OVERFLOW`) or the watch ended (the folder was removed,
//! moved away or unmounted: `IN_DELETE_SELF`, `IN_MOVE_SELF`,
//! `IN_UNMOUNT`, `IN_IGNORED`); a folder replaced without a word is found
//! by [`Notify::rewatch`], which compares the path's device and inode with
//! the watched one. Knows nothing of stubs (the `watch` thread decides) and
//! never blocks: the fd is non-blocking, for the caller to poll(2).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// What one event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Renamed into place or closed after writing: whole.
    Complete(String),
    /// Written to, not closed since.
    Writing(String),
    /// Removed, or renamed away.
    Gone(String),
    /// Events were lost: look at the whole folder.
    Overflow,
    /// The watch ended: nothing more will come until [`Notify::rewatch`].
    Lost,
}

/// What the folder's watch asks for (`IN_IGNORED`, `IN_Q_OVERFLOW` and
/// `IN_UNMOUNT` come anyway).
const MASK: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// Device and inode of a folder.
type Identity = (u64, u64);

pub struct Notify {
    fd: OwnedFd,
    dir: PathBuf,
    /// The watch descriptor and the folder it is on; `None` once it ended.
    watch: Option<(i32, Identity)>,
    buf: Vec<MaybeUninit<u8>>,
}

impl Notify {
    /// An inotify instance for `dir`, not watching it yet ([`Notify::rewatch`]).
    pub fn new(dir: &Path) -> io::Result<Notify> {
        crate::fault::no_inotify()?;
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        Ok(Notify {
            fd,
            dir: dir.to_path_buf(),
            watch: None,
            // Many events a read; one is 16 bytes and a name (NAME_MAX 255).
            buf: vec![MaybeUninit::uninit(); 16 * 1024],
        })
    }

    /// The fd to poll for events.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Watches the folder: first, again when the watch ended, or when the
    /// path now names another folder (replaced). `Ok(true)` when a new
    /// watch began.
    pub fn rewatch(&mut self) -> io::Result<bool> {
        let now = identity(&self.dir)?;
        if let Some((wd, on)) = self.watch {
            if on == now {
                return Ok(false);
            }
            self.unwatch(wd);
        }
        self.add()?;
        Ok(true)
    }

    /// Reads every event queued now into `out`, without blocking.
    pub fn read(&mut self, out: &mut Vec<Change>) {
        let Notify { fd, watch, buf, .. } = self;
        let mut reader = inotify::Reader::new(&*fd, buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    // Not expected with a buffer this size. Events may be
                    // lost: end the watch (so the fd is not polled in a
                    // loop) and let the next pass add it again.
                    log::warn!("cannot read inotify events error={e}");
                    if let Some((wd, _)) = watch.take() {
                        let _ = inotify::remove_watch(&*fd, wd);
                    }
                    out.push(Change::Lost);
                    return;
                }
            };
            let ours = watch.is_some_and(|(wd, _)| wd == event.wd());
            let name = event.file_name().and_then(|n| n.to_str().ok());
            let Some(change) = classify(event.events(), ours, name) else {
                continue;
            };
            if change == Change::Lost
                && let Some((wd, _)) = watch.take()
            {
                // A folder moved away is still watched where it went.
                let _ = inotify::remove_watch(&*fd, wd);
            }
            out.push(change);
        }
    }

    fn add(&mut self) -> io::Result<()> {
        // The identity first: a folder replaced in between is seen as
        // replaced by the next `rewatch`, never the other way round.
        let id = identity(&self.dir)?;
        let wd = inotify::add_watch(&self.fd, &self.dir, MASK)?;
        self.watch = Some((wd, id));
        Ok(())
    }

    fn unwatch(&mut self, wd: i32) {
        // Fails when the kernel ended it already: nothing to do then.
        let _ = inotify::remove_watch(&self.fd, wd);
        self.watch = None;
    }
}

fn identity(dir: &Path) -> io::Result<Identity> {
    let meta = std::fs::metadata(dir)?;
    Ok((meta.dev(), meta.ino()))
}

/// One event: its flags, whether it is for the current watch (`ours`),
/// and the name it is about. Pure.
fn classify(flags: ReadFlags, ours: bool, name: Option<&str>) -> Option<Change> {
    if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
        return Some(Change::Overflow);
    }
    // An earlier watch's last words (its `IN_IGNORED` after a rewatch).
    if !ours {
        return None;
    }
    let ended =
        ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::UNMOUNT | ReadFlags::IGNORED;
    if flags.intersects(ended) {
        return Some(Change::Lost);
    }
    if flags.contains(ReadFlags::ISDIR) {
        return None;
    }
    let name = name?.to_string();
    if flags.intersects(ReadFlags::MOVED_TO | ReadFlags::CLOSE_WRITE) {
        Some(Change::Complete(name))
    } else if flags.contains(ReadFlags::MODIFY) {
        Some(Change::Writing(name))
    } else if flags.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM) {
        Some(Change::Gone(name))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified() {
        let c = |n: &str| Some(Change::Complete(n.into()));
        let table: &[(ReadFlags, bool, Option<&str>, Option<Change>)] = &[
            (ReadFlags::MOVED_TO, true, Some("a.torrent"), c("a.torrent")),
            (
                ReadFlags::CLOSE_WRITE,
                true,
                Some("a.torrent"),
                c("a.torrent"),
            ),
            (
                ReadFlags::MODIFY,
                true,
                Some("a.torrent"),
                Some(Change::Writing("a.torrent".into())),
            ),
            (
                ReadFlags::DELETE,
                true,
                Some("a.torrent"),
                Some(Change::Gone("a.torrent".into())),
            ),
            (
                ReadFlags::MOVED_FROM,
                true,
                Some("a.torrent"),
                Some(Change::Gone("a.torrent".into())),
            ),
            // A folder named like a stub is no stub.
            (
                ReadFlags::MOVED_TO | ReadFlags::ISDIR,
                true,
                Some("d"),
                None,
            ),
            (
                ReadFlags::QUEUE_OVERFLOW,
                false,
                None,
                Some(Change::Overflow),
            ),
            (ReadFlags::DELETE_SELF, true, None, Some(Change::Lost)),
            (ReadFlags::MOVE_SELF, true, None, Some(Change::Lost)),
            (ReadFlags::UNMOUNT, true, None, Some(Change::Lost)),
            (ReadFlags::IGNORED, true, None, Some(Change::Lost)),
            // An old watch ending after a rewatch changes nothing.
            (ReadFlags::IGNORED, false, None, None),
            (ReadFlags::MOVED_TO, false, Some("a.torrent"), None),
            (ReadFlags::OPEN, true, Some("a.torrent"), None),
        ];
        for (flags, ours, name, want) in table {
            assert_eq!(
                &classify(*flags, *ours, *name),
                want,
                "{flags:?} ours={ours}"
            );
        }
    }

    #[test]
    fn a_folder_reports_complete_written_and_gone_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = Notify::new(dir.path()).unwrap();
        assert!(n.rewatch().unwrap());
        let mut out = Vec::new();
        std::fs::write(dir.path().join(".a.tmp"), b"x").unwrap();
        std::fs::rename(dir.path().join(".a.tmp"), dir.path().join("a")).unwrap();
        let mut f = std::fs::File::create(dir.path().join("b")).unwrap();
        std::io::Write::write_all(&mut f, b"half").unwrap();
        n.read(&mut out);
        assert!(out.contains(&Change::Complete("a".into())), "{out:?}");
        assert_eq!(out.last(), Some(&Change::Writing("b".into())), "{out:?}");
        out.clear();
        drop(f);
        std::fs::remove_file(dir.path().join("a")).unwrap();
        n.read(&mut out);
        assert_eq!(
            out,
            [Change::Complete("b".into()), Change::Gone("a".into())]
        );
    }

    #[test]
    fn a_replaced_folder_is_watched_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("watch");
        std::fs::create_dir(&dir).unwrap();
        let mut n = Notify::new(&dir).unwrap();
        assert!(!n.watching());
        assert!(n.rewatch().unwrap());
        let mut out = Vec::new();
        // Moved away: the watch ends.
        std::fs::rename(&dir, root.path().join("old")).unwrap();
        n.read(&mut out);
        assert_eq!(out, [Change::Lost]);
        assert!(!n.watching());
        std::fs::write(root.path().join("old/x"), b"x").unwrap();
        out.clear();
        n.read(&mut out);
        assert_eq!(out, [], "the old folder is no longer watched");
        // A new folder under the name: watched again.
        std::fs::create_dir(&dir).unwrap();
        assert!(n.rewatch().unwrap());
        assert!(!n.rewatch().unwrap(), "once");
        // Replaced without a word (an empty folder renamed over it).
        std::fs::create_dir(root.path().join("new")).unwrap();
        std::fs::rename(root.path().join("new"), &dir).unwrap();
        assert!(n.rewatch().unwrap());
        n.read(&mut out);
        out.clear();
        std::fs::write(dir.join("y"), b"y").unwrap();
        n.read(&mut out);
        assert!(out.contains(&Change::Complete("y".into())), "{out:?}");
    }
}
