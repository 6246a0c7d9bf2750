//! The watch folder: stub `.torrent` files dropped by Radarr/Sonarr.
//!
//! The `watch` thread polls `downloads.watch_dir` every `scan_interval_ms`.
//! A stub is read only once it has stopped changing (same size and
//! modification time on two polls in a row: *arr writes stubs in chunks),
//! and handed to [`Downloads::add_stub`] once, across restarts too: the
//! registry remembers each processed stub by name, length and modification
//! time, so only a stub written anew (a re-grab) is read again. A broken
//! stub is renamed `<name>.invalid` and recorded with its reason; a stub
//! whose download fails for good becomes `<name>.failed` (in `downloads`);
//! neither is ever deleted or read again. A stub whose peer cannot be
//! reached right now is tried again later. Completed downloads remove their
//! stub (in `downloads`). Each poll also picks up `queued` rows nobody is
//! working on (`jack retry`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::download::downloads::{Added, Downloads};
use crate::download::handoff::rename_no_replace;
use crate::error::Result;
use crate::stub::MAX_STUB_BYTES;
use crate::worker::Background;

/// A stub whose peer was unreachable is tried again after this long.
const LATER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    /// Handled (queued, duplicate, failed or invalid): never again while unchanged.
    done: bool,
    not_before: Option<Instant>,
}

pub struct Watcher {
    thread: Background,
}

impl Watcher {
    pub fn start(downloads: Arc<Downloads>, dir: PathBuf, interval: Duration) -> Result<Watcher> {
        let thread = Background::spawn("watch", move |rx, flag| {
            let mut seen = HashMap::new();
            loop {
                poll(&downloads, &dir, &mut seen, &flag);
                if let Err(e) = downloads.pick_up_queued_rows() {
                    log::error!("cannot read queued downloads: {e}");
                }
                if rx.recv_timeout(interval) != Err(crossbeam_channel::RecvTimeoutError::Timeout) {
                    break;
                }
            }
        })?;
        Ok(Watcher { thread })
    }

    /// Stops the thread and joins it, waiting at most `limit`: a stub being
    /// looked up on a peer that does not answer is left behind (it has
    /// written nothing yet, and the stub stays for the next start).
    pub fn stop(self, limit: Duration) {
        self.thread.stop(limit);
    }
}

/// One pass over the watch folder.
fn poll(
    downloads: &Downloads,
    dir: &Path,
    seen: &mut HashMap<String, Seen>,
    stopping: &AtomicBool,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("cannot read the watch folder {}: {e}", dir.display());
            return;
        }
    };
    let mut present = Vec::new();
    for entry in entries.flatten() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || !name.to_ascii_lowercase().ends_with(".torrent") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        present.push(name.clone());
        let now = Seen {
            len: meta.len(),
            modified: meta.modified().ok(),
            done: false,
            not_before: None,
        };
        let prev = seen.get(&name).copied();
        let stable = prev.is_some_and(|p| p.len == now.len && p.modified == now.modified);
        if !stable {
            // New or still being written: look again next poll.
            seen.insert(name, now);
            continue;
        }
        let prev = prev.unwrap_or(now);
        if prev.done || prev.not_before.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let modified = modified_ns(now.modified);
        let registry = downloads.registry();
        let outcome = match registry.stub_seen(&name, now.len, modified) {
            // Processed before (by an earlier run): never again.
            Ok(true) => None,
            Ok(false) => handle(downloads, dir, &name, now.len),
            Err(e) => {
                log::error!("cannot read processed stubs stub={name} error={e}");
                Some(LATER)
            }
        };
        let entry = seen.entry(name.clone()).or_insert(now);
        match outcome {
            Some(later) => entry.not_before = Some(Instant::now() + later),
            None => {
                entry.done = true;
                if let Err(e) = registry.remember_stub(&name, now.len, modified) {
                    log::error!("cannot record a processed stub stub={name} error={e}");
                }
            }
        }
    }
    seen.retain(|name, _| present.contains(name));
}

/// Handles one stable stub; `Some(delay)` when it must be tried again.
fn handle(downloads: &Downloads, dir: &Path, name: &str, len: u64) -> Option<Duration> {
    let path = dir.join(name);
    let result = if len > MAX_STUB_BYTES as u64 {
        Ok(Added::Invalid(format!(
            "stub is {len} bytes, more than {MAX_STUB_BYTES}"
        )))
    } else {
        match std::fs::read(&path) {
            Ok(bytes) => downloads.add_stub(name, &bytes),
            Err(e) => {
                log::warn!("cannot read stub stub={name} error={e}");
                return Some(LATER);
            }
        }
    };
    match result {
        Ok(Added::Queued(id)) => log::info!("stub accepted stub={name} id={id}"),
        Ok(Added::Duplicate(id)) => log::info!("stub already known stub={name} id={id}"),
        Ok(Added::Regrabbed(id)) => {
            log::info!("stub gave its download a new source stub={name} id={id}")
        }
        Ok(Added::Failed(id, e)) => {
            log::warn!("stub recorded as failed stub={name} id={id} error={e}");
            set_aside(dir, name, "failed");
        }
        Ok(Added::Later(e)) => {
            log::warn!("peer unavailable, stub kept for later stub={name} error={e}");
            return Some(LATER);
        }
        Ok(Added::Invalid(reason)) => {
            log::warn!("invalid stub stub={name} reason={reason}");
            set_aside(dir, name, "invalid");
            if let Err(e) = downloads.registry().record_invalid_stub(name, &reason) {
                log::error!("cannot record invalid stub stub={name} error={e}");
            }
        }
        Err(e) => {
            log::error!("cannot queue stub stub={name} error={e}");
            return Some(LATER);
        }
    }
    None
}

/// Renames the stub `name` in `dir` to `<name>.<kind>` (`invalid`,
/// `failed`), never replacing a stub set aside earlier (`<name>.2.<kind>`
/// and so on). A stub that is not there (added through an API) is fine.
pub fn set_aside(dir: &Path, name: &str, kind: &str) {
    if !crate::download::downloads::safe_file_name(name) {
        return;
    }
    let from = dir.join(name);
    for n in 1..100 {
        let to = match n {
            1 => dir.join(format!("{name}.{kind}")),
            n => dir.join(format!("{name}.{n}.{kind}")),
        };
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

/// Nanoseconds since the epoch (0 when unknown), what the registry keeps.
fn modified_ns(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}
