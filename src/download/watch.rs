//! The watch folder: stub `.torrent` files dropped by Radarr/Sonarr.
//!
//! The `watch` thread learns of stubs in two ways. inotify (`notify`) tells
//! it at once of a stub renamed into place (`IN_MOVED_TO`) or closed after
//! writing (`IN_CLOSE_WRITE`): such a stub is whole and is read then, with
//! no second look. And every `scan_interval_ms` it reads the whole folder
//! (a pass), which finds what inotify does not tell: stubs there at
//! start-up, stubs written from another machine onto a network share (NFS,
//! SMB, FUSE: inotify sees only this machine's changes), stubs written
//! while events were lost (`IN_Q_OVERFLOW`, which also starts a pass at
//! once) or while the watch was gone, and every stub where inotify cannot
//! be used (init or add_watch failed: one warning, then passes only). A
//! pass reads a stub only once it has stopped changing (same size and
//! modification time on two passes in a row: a writer may write in
//! chunks), except a stub inotify saw written and not closed since: that
//! one waits for its close, or for `WRITER_PATIENCE` (60 s) without a
//! write. A watch that ended (the folder removed, moved away or unmounted)
//! or whose folder was replaced is added again by the next pass that finds
//! a folder there; until then passes do the work.
//!
//! Each stub is handed to [`Downloads::add_stub`] once, across restarts
//! too: the registry remembers each processed stub by name, length and
//! modification time, so only a stub written anew (a re-grab) is read
//! again. A stub whose peer cannot be reached right now is tried again
//! later. Each pass also picks up `queued` rows nobody is working on
//! (`jack retry`).
//!
//! A stub that does not parse may not be whole yet (a writer that opens,
//! appends and closes several times; a network share, where a pass may
//! read it between two writes): it stays where it is and is read again
//! whenever it changes (inotify says it was closed after writing again,
//! or a pass finds another length or modification time and then the
//! stable-file rule), and only once it has been unchanged for the
//! stability window (`stub_settle_ms`, 30 s by default, counted from when
//! this version was first seen) is it read one last time and, still
//! broken, renamed `<name>.invalid` and recorded with its reason. The
//! window ends at the first pass after it, so a stub is set aside at most
//! one `scan_interval_ms` late. A stub that parses is processed at once:
//! the window costs the happy path nothing.
//!
//! What becomes of a stub once processed (none is ever read again):
//!
//! * a new download: the stub stays, named by the row (`stub_name`), until
//!   the download completes and removes it (in `downloads`);
//! * its download fails for good: `<name>.failed` (in `downloads`),
//!   removed if the download later completes (a retry, or a re-grab);
//! * a download of the release already exists (completed or running:
//!   [`Added::Duplicate`]; queued, retrying, paused or failed, which takes
//!   this stub's source: [`Added::Regrabbed`]): `<name>.duplicate`, once
//!   the row has taken it into account. **The row keeps its own stub**:
//!   its `stub_name` stays the first stub's, which is still there or is
//!   `<stub_name>.failed`, so its completion removes exactly what it owns,
//!   and a stub another row owns is never touched (the completion removes
//!   a file only when it is a stub of its release, by info-hash). A stub
//!   written anew under the name of a row that has not completed (the same
//!   grab again) is that row's own stub: it stays, for the completion to
//!   remove with the `.failed` form;
//! * not a valid stub after the window: `<name>.invalid`.
//!
//! `.invalid`, `.duplicate` and a `.failed` whose download never completes
//! are left for the operator: jack does not delete them.
//!
//! Why no busy wait and no late stop: the thread sleeps in poll(2) on two
//! fds, the inotify fd and an eventfd that [`Watcher::stop`] writes once
//! the stop flag is set, with a timeout that ends when the next pass is
//! due. It wakes for an event, a stop or a pass and for nothing else: an
//! idle node costs one wake-up a `scan_interval_ms`, as before, and a stop
//! is seen at once whatever the interval (the flag is set before the
//! write, and the eventfd stays readable, so a stop asked between the last
//! look at the flag and the poll still ends the poll at once).

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};

use crate::db::Status;
use crate::download::downloads::{Added, Downloads, Start};
use crate::download::handoff::rename_no_replace;
use crate::download::notify::{Change, Notify};
use crate::error::{Error, Result};
use crate::stub::MAX_STUB_BYTES;
use crate::worker::Background;

/// A stub whose peer was unreachable is tried again after this long.
const LATER: Duration = Duration::from_secs(30);

/// A stub inotify saw written and not closed is left to the stable-file
/// rule once this long has passed without a write (a writer that keeps
/// it open for good).
const WRITER_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    /// When this version (length and modification time) was first seen.
    since: Instant,
    /// Handled (queued, duplicate, failed or invalid): never again while unchanged.
    done: bool,
    /// Read, and not a valid stub (yet): read again once it changes, set
    /// aside once unchanged for the stability window.
    broken: bool,
    not_before: Option<Instant>,
}

/// What reading a stub came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handled {
    /// Taken into account: never read again while unchanged.
    Done,
    /// Try it again after this long (the peer or the registry could not
    /// be asked).
    Later(Duration),
    /// Not a valid stub, for this reason: perhaps not whole yet.
    Broken(String),
}

/// When a stub found in the folder may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    /// The kernel said it is whole (renamed into place, closed after writing).
    Now,
    /// Once unchanged since the last pass.
    IfStable,
    /// Not while a writer has it open.
    NotYet,
}

pub struct Watcher {
    thread: Background,
    waker: Arc<OwnedFd>,
}

impl Watcher {
    /// Starts the `watch` thread. The inotify watch is in place when this
    /// returns, so a stub dropped from then on is seen at once.
    /// `settle`: the stability window of a stub that does not parse.
    pub fn start(
        downloads: Arc<Downloads>,
        dir: PathBuf,
        interval: Duration,
        settle: Duration,
    ) -> Result<Watcher> {
        let waker = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::io("cannot make the watch thread's eventfd", e.into()))?;
        let waker = Arc::new(waker);
        let polling = |e: std::io::Error| {
            log::warn!(
                "cannot watch the watch folder with inotify, polling it every {} ms dir={} error={e}",
                interval.as_millis(),
                dir.display()
            );
        };
        // Without an instance, polling for good; without a watch, polling
        // until a pass can add it (`rewatch`).
        let notify = match Notify::new(&dir) {
            Ok(mut n) => {
                match n.rewatch() {
                    Ok(_) => log::info!(
                        "watch folder watched with inotify dir={} poll_ms={}",
                        dir.display(),
                        interval.as_millis()
                    ),
                    Err(e) => polling(e),
                }
                Some(n)
            }
            Err(e) => {
                polling(e);
                None
            }
        };
        let wake = waker.clone();
        let thread = Background::spawn("watch", move |rx, flag| {
            let mut folder = Folder {
                downloads: &downloads,
                dir: &dir,
                settle,
                seen: HashMap::new(),
                writing: HashMap::new(),
            };
            run(&mut folder, notify, &wake, &rx, &flag, interval);
        })?;
        Ok(Watcher { thread, waker })
    }

    /// Stops the thread and joins it, waiting at most `limit`: a stub being
    /// looked up on a peer that does not answer is left behind (it has
    /// written nothing yet, and the stub stays for the next start).
    pub fn stop(self, limit: Duration) {
        let waker = self.waker;
        self.thread.stop_waking(limit, || {
            // Wakes the thread's poll(2); it then sees the stop flag.
            let _ = rustix::io::write(&*waker, &1u64.to_ne_bytes());
        });
    }
}

/// The thread's loop: events as they come, a pass when one is due.
fn run(
    folder: &mut Folder,
    mut notify: Option<Notify>,
    waker: &OwnedFd,
    stop: &Receiver<()>,
    stopping: &AtomicBool,
    interval: Duration,
) {
    let mut changes = Vec::new();
    let mut next_pass = Instant::now();
    while !stopping.load(Ordering::SeqCst) {
        if let Some(n) = notify.as_mut() {
            n.read(&mut changes);
        }
        let rescan = folder.apply(&mut changes, stopping);
        if rescan || Instant::now() >= next_pass {
            if let Some(n) = notify.as_mut() {
                rewatch(n, folder.dir);
            }
            folder.pass(stopping);
            if let Err(e) = folder.downloads.pick_up_queued_rows() {
                log::error!("cannot read queued downloads: {e}");
            }
            next_pass = Instant::now() + interval;
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let events = notify.as_ref().filter(|n| n.watching());
        wait(
            waker,
            events,
            stop,
            next_pass.saturating_duration_since(Instant::now()),
        );
    }
}

/// Watches the folder again if the watch ended or the folder was replaced.
fn rewatch(notify: &mut Notify, dir: &Path) {
    let was = notify.watching();
    match notify.rewatch() {
        Ok(true) if was => log::info!(
            "watch folder replaced, watching the new one with inotify dir={}",
            dir.display()
        ),
        Ok(true) => log::info!(
            "watch folder watched with inotify again dir={}",
            dir.display()
        ),
        // Unchanged, or still no folder to watch (the pass says so).
        Ok(false) | Err(_) => {}
    }
}

/// Sleeps until `timeout` passes, inotify has events or the waker is
/// written (a stop).
fn wait(waker: &OwnedFd, notify: Option<&Notify>, stop: &Receiver<()>, timeout: Duration) {
    let mut fds = vec![PollFd::new(waker, PollFlags::IN)];
    if let Some(n) = notify {
        fds.push(PollFd::from_borrowed_fd(n.fd(), PollFlags::IN));
    }
    // `scan_interval_ms` is at most an hour: always representable.
    let until = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 3600,
        tv_nsec: 0,
    });
    match rustix::event::poll(&mut fds, Some(&until)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => {
            // Not expected; wait on the stop channel as before inotify.
            log::warn!("cannot poll the watch folder's events error={e}");
            let _ = stop.recv_timeout(timeout);
        }
    }
}

/// The watch folder as the thread knows it.
struct Folder<'a> {
    downloads: &'a Downloads,
    dir: &'a Path,
    /// How long a stub that does not parse must stay unchanged before it
    /// is set aside `.invalid`.
    settle: Duration,
    seen: HashMap<String, Seen>,
    /// Stubs inotify saw written and not closed since, with the last write.
    writing: HashMap<String, Instant>,
}

impl Folder<'_> {
    /// Takes in what inotify said and reads the stubs it says are whole;
    /// true when a pass is needed now (events lost, watch ended).
    fn apply(&mut self, changes: &mut Vec<Change>, stopping: &AtomicBool) -> bool {
        let mut whole: Vec<String> = Vec::new();
        let mut rescan = false;
        for change in changes.drain(..) {
            match change {
                Change::Complete(name) if is_stub_name(&name) => {
                    self.writing.remove(&name);
                    if !whole.contains(&name) {
                        whole.push(name);
                    }
                }
                Change::Writing(name) if is_stub_name(&name) => {
                    whole.retain(|n| *n != name);
                    self.writing.insert(name, Instant::now());
                }
                Change::Gone(name) => {
                    whole.retain(|n| *n != name);
                    self.writing.remove(&name);
                }
                Change::Overflow => {
                    log::warn!("inotify events were lost: reading the whole watch folder");
                    // Closes may have been missed: the stable-file rule again.
                    self.writing.clear();
                    rescan = true;
                }
                Change::Lost => {
                    log::warn!(
                        "the watch folder's inotify watch ended, polling until it can be watched again dir={}",
                        self.dir.display()
                    );
                    self.writing.clear();
                    rescan = true;
                }
                Change::Complete(_) | Change::Writing(_) => {}
            }
        }
        for name in whole {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            // Not followed, as a pass does not follow a link.
            match std::fs::symlink_metadata(self.dir.join(&name)) {
                Ok(meta) if meta.is_file() => self.consider(&name, &meta, Ready::Now),
                _ => {}
            }
        }
        rescan
    }

    /// One pass over the watch folder.
    fn pass(&mut self, stopping: &AtomicBool) {
        let entries = match std::fs::read_dir(self.dir) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("cannot read the watch folder {}: {e}", self.dir.display());
                return;
            }
        };
        let mut present = HashSet::new();
        for entry in entries.flatten() {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_stub_name(&name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let open = self
                .writing
                .get(&name)
                .is_some_and(|t| t.elapsed() < WRITER_PATIENCE);
            let ready = if open { Ready::NotYet } else { Ready::IfStable };
            self.consider(&name, &meta, ready);
            present.insert(name);
        }
        self.seen.retain(|name, _| present.contains(name));
        self.writing.retain(|name, _| present.contains(name));
    }

    /// Reads the stub `name` when it is `ready` and not handled yet.
    fn consider(&mut self, name: &str, meta: &Metadata, ready: Ready) {
        let now = Seen {
            len: meta.len(),
            modified: meta.modified().ok(),
            since: Instant::now(),
            done: false,
            broken: false,
            not_before: None,
        };
        // A broken stub inotify says was written and closed again is a new
        // version, even with the same length and modification time.
        let rewritten = |p: &Seen| ready == Ready::Now && p.broken;
        let (prev, unchanged) = match self.seen.get(name) {
            Some(p) if p.len == now.len && p.modified == now.modified && !rewritten(p) => {
                (*p, true)
            }
            _ => {
                self.seen.insert(name.to_string(), now);
                (now, false)
            }
        };
        let go = match ready {
            Ready::Now => true,
            // New or still being written: look again next pass.
            Ready::IfStable => unchanged,
            Ready::NotYet => false,
        };
        if !go || prev.done || prev.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        // Broken and unchanged since: read again only once the window is over.
        let settled = prev.since.elapsed() >= self.settle;
        if prev.broken && !settled {
            return;
        }
        let modified = modified_ns(now.modified);
        let registry = self.downloads.registry();
        let outcome = match registry.stub_seen(name, now.len, modified) {
            // Processed before (by an earlier run): never again.
            Ok(true) => Handled::Done,
            Ok(false) => handle(self.downloads, self.dir, name, now.len),
            Err(e) => {
                log::error!("cannot read processed stubs stub={name} error={e}");
                Handled::Later(LATER)
            }
        };
        let entry = match outcome {
            Handled::Later(later) => Seen {
                not_before: Some(Instant::now() + later),
                ..prev
            },
            Handled::Broken(reason) if !settled => {
                log::info!(
                    "stub does not parse yet, read again when it changes stub={name} settle_ms={} reason={reason}",
                    self.settle.as_millis()
                );
                Seen {
                    broken: true,
                    ..prev
                }
            }
            Handled::Broken(_) | Handled::Done => {
                if let Handled::Broken(reason) = &outcome {
                    set_aside_invalid(self.downloads, self.dir, name, reason);
                }
                if let Err(e) = registry.remember_stub(name, now.len, modified) {
                    log::error!("cannot record a processed stub stub={name} error={e}");
                }
                Seen { done: true, ..prev }
            }
        };
        self.seen.insert(name.to_string(), entry);
    }
}

/// A name the watch folder reads: `*.torrent`, not hidden (a writer's
/// temporary name), not set aside (`.invalid`, `.failed`, `.duplicate`).
fn is_stub_name(name: &str) -> bool {
    !name.starts_with('.') && name.to_ascii_lowercase().ends_with(".torrent")
}

/// Handles one stable stub. One that does not parse is left where it is
/// (the caller sets it aside once the stability window is over).
fn handle(downloads: &Downloads, dir: &Path, name: &str, len: u64) -> Handled {
    let path = dir.join(name);
    let result = if len > MAX_STUB_BYTES as u64 {
        Ok(Added::Invalid(format!(
            "stub is {len} bytes, more than {MAX_STUB_BYTES}"
        )))
    } else {
        match std::fs::read(&path) {
            Ok(bytes) => downloads.add_stub(name, &bytes, Start::Now),
            Err(e) => {
                log::warn!("cannot read stub stub={name} error={e}");
                return Handled::Later(LATER);
            }
        }
    };
    match result {
        Ok(Added::Queued(id)) => log::info!("stub accepted stub={name} id={id}"),
        // The download keeps its own stub (see the module doc).
        Ok(Added::Duplicate(id)) => {
            log::info!("stub already known stub={name} id={id}");
            set_aside_duplicate(downloads, dir, name, id);
        }
        Ok(Added::Regrabbed(id)) => {
            log::info!("stub gave its download a new source stub={name} id={id}");
            set_aside_duplicate(downloads, dir, name, id);
        }
        Ok(Added::Failed(id, e)) => {
            log::warn!("stub recorded as failed stub={name} id={id} error={e}");
            set_aside(dir, name, "failed");
        }
        Ok(Added::Later(e)) => {
            log::warn!("peer unavailable, stub kept for later stub={name} error={e}");
            return Handled::Later(LATER);
        }
        Ok(Added::Invalid(reason)) => return Handled::Broken(reason),
        Err(e) => {
            log::error!("cannot queue stub stub={name} error={e}");
            return Handled::Later(LATER);
        }
    }
    Handled::Done
}

/// Sets the stub `name`, taken into account by download `id`, aside as
/// `<name>.duplicate`, unless it is that download's own stub: the row
/// names it and has not completed (the same stub written anew under its
/// name, a re-grab): it stays, for the completion to remove.
fn set_aside_duplicate(downloads: &Downloads, dir: &Path, name: &str, id: i64) {
    let own = matches!(
        downloads.registry().get(id),
        Ok(Some(row)) if row.stub_name == name && row.status != Status::Completed
    );
    if !own {
        set_aside(dir, name, "duplicate");
    }
}

/// Sets the stub `name` aside as `<name>.invalid`, with its reason on record.
fn set_aside_invalid(downloads: &Downloads, dir: &Path, name: &str, reason: &str) {
    log::warn!("invalid stub stub={name} reason={reason}");
    set_aside(dir, name, "invalid");
    if let Err(e) = downloads.registry().record_invalid_stub(name, reason) {
        log::error!("cannot record invalid stub stub={name} error={e}");
    }
}

/// Renames the stub `name` in `dir` to `<name>.<kind>` (`invalid`,
/// `failed`, `duplicate`), never replacing a stub set aside earlier (`<name>.2.<kind>`
/// and so on). A stub that is not there (added through an API) is fine.
pub fn set_aside(dir: &Path, name: &str, kind: &str) {
    if !crate::naming::bare_file_name(name) {
        return;
    }
    let from = dir.join(name);
    for aside in aside_names(name, kind) {
        let to = dir.join(aside);
        match rename_no_replace(&from, &to) {
            Ok(()) => {
                log::info!("stub set aside stub={name} as={}", to.display());
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::warn!("cannot set aside stub={name} as={kind} error={e}");
                return;
            }
        }
    }
}

/// The names [`set_aside`] gives the stub `name` as `kind`, in the order
/// it tries them: `<name>.<kind>`, then `<name>.2.<kind>` up to 99.
pub fn aside_names(name: &str, kind: &str) -> impl Iterator<Item = String> {
    (1..100).map(move |n| match n {
        1 => format!("{name}.{kind}"),
        n => format!("{name}.{n}.{kind}"),
    })
}

/// Nanoseconds since the epoch (0 when unknown), what the registry keeps.
fn modified_ns(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}
