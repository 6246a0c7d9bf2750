//! Start-up reconciliation: make the registry and the folders agree after
//! a crash, a kill or a power cut, before the watch folder or the pool
//! starts.
//!
//! [`decide`] is pure: given a live row and what is on disk, what to do.
//! [`run`] looks at the disk, applies each decision, and records it as a
//! `reconciled` event on the row (and in the log). It never deletes a file
//! jack does not own: a `.part` without a row is moved to
//! `incomplete_dir/orphaned/`, a final file is only ever adopted (with the
//! evidence of rule 13: the registry recorded every byte durable and named
//! that very file before the hand-off began), never removed; the only files
//! it deletes are jack's own unfinished hand-off copies in `completed_dir`
//! (hidden, never exposed), so the hand-off runs again.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::DownloadsConfig;
use crate::db::{Download, EventKind, Registry, Status};
use crate::download::handoff::{self, sync_dir};
use crate::download::transfer::DESTINATION_EXISTS;
use crate::download::written;
use crate::error::{Error, Result};

/// What was found on disk for one live row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    /// Length of the `.part`, if it exists.
    pub part: Option<u64>,
    /// Length of the final file, if something has the final name.
    pub dest: Option<u64>,
    /// The final file is the one this node's hand-off gave the name to:
    /// the `.part` itself (a crash between the hard link and the unlink),
    /// or the file the registry recorded before the hand-off began.
    pub dest_ours: bool,
    /// Bytes of the `.part` its written record vouches for (written by a
    /// process of this boot, on a local filesystem), else 0.
    pub written: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Consistent: resume as recorded.
    Resume,
    /// The `.part` is missing but progress was recorded: restart from 0.
    RestartMissingPart,
    /// Bytes written after the last checkpoint, and not vouched for by
    /// this boot's written record: drop them.
    TruncateToDurable { len: u64, durable: u64 },
    /// Bytes past the checkpoint that a process of this boot wrote (its
    /// written record says so): keep them; the attempt syncs them first.
    KeepWritten { len: u64, durable: u64 },
    /// Like [`Decision::KeepWritten`] up to `written`; what lies past it
    /// (appended after the record, or by someone else) is cut.
    TruncateToWritten { len: u64, written: u64 },
    /// The `.part` lost bytes the registry counted: resume from what is there.
    ResumeFromPart { len: u64, durable: u64 },
    /// The `.part` is longer than the file can be: restart from 0.
    TruncateTooLong { len: u64 },
    /// Every byte is here and durable: finalize without a request.
    Finalize,
    /// The hand-off happened but the row was not marked: adopt the final file.
    AdoptFinal,
    /// The hand-off placed the final file but the `.part` name is still
    /// there (a crash before its removal): remove it.
    FinishHandOff,
    /// Something jack did not put there has the final name: the row fails
    /// `destination exists`, the file is left untouched (rule 13).
    DestinationExists,
}

/// The start-up table of the crash-recovery design, for one live row.
pub fn decide(row: &Download, disk: OnDisk) -> Decision {
    let expected = row.expected_bytes;
    if let Some(dest) = disk.dest {
        let ours = disk.dest_ours && dest == expected && row.downloaded_bytes == expected;
        return match (ours, disk.part) {
            (true, Some(_)) => Decision::FinishHandOff,
            (true, None) => Decision::AdoptFinal,
            (false, _) => Decision::DestinationExists,
        };
    }
    match disk.part {
        None if row.downloaded_bytes > 0 => Decision::RestartMissingPart,
        None => Decision::Resume,
        Some(len) if len > expected => Decision::TruncateTooLong { len },
        Some(len) if len > row.downloaded_bytes => {
            let (durable, written) = (row.downloaded_bytes, disk.written.min(len));
            if written <= durable {
                Decision::TruncateToDurable { len, durable }
            } else if written == len {
                Decision::KeepWritten { len, durable }
            } else {
                Decision::TruncateToWritten { len, written }
            }
        }
        Some(len) if len < row.downloaded_bytes => Decision::ResumeFromPart {
            len,
            durable: row.downloaded_bytes,
        },
        Some(len) if len == expected => Decision::Finalize,
        Some(_) => Decision::Resume,
    }
}

/// What reconciliation did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub decisions: Vec<(i64, Decision)>,
    pub superseded: Vec<i64>,
    pub orphans: Vec<PathBuf>,
    /// Unfinished hand-off copies removed from `completed_dir`.
    pub copies_removed: Vec<PathBuf>,
}

/// Reconciles every live row and the incomplete folder.
pub fn run(registry: &Registry, config: &DownloadsConfig) -> Result<Summary> {
    let mut summary = Summary::default();
    let rows = registry.list()?;
    let mut live: Vec<&Download> = rows.iter().filter(|d| d.status.is_live()).collect();

    // Two live rows for one destination: keep the one with the most durable
    // progress (the older on a tie), fail the others.
    let mut by_dest: HashMap<&Path, &Download> = HashMap::new();
    for d in &live {
        if d.dest_path.as_os_str().is_empty() {
            continue;
        }
        match by_dest.get(d.dest_path.as_path()) {
            Some(kept) if kept.downloaded_bytes >= d.downloaded_bytes => {
                summary.superseded.push(d.id)
            }
            Some(kept) => {
                summary.superseded.push(kept.id);
                by_dest.insert(&d.dest_path, d);
            }
            None => {
                by_dest.insert(&d.dest_path, d);
            }
        }
    }
    for &id in &summary.superseded {
        let keeper = live
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| by_dest.get(d.dest_path.as_path()))
            .map_or(0, |k| k.id);
        let error = format!("superseded by download {keeper} for the same destination");
        registry.transition(
            id,
            Status::Failed,
            Some("superseded"),
            EventKind::Reconciled,
            &error,
        )?;
        log::warn!("reconciled id={id} decision=superseded keeper={keeper}");
    }
    live.retain(|d| !summary.superseded.contains(&d.id));
    summary.copies_removed = remove_unfinished_copies(registry, &live, &config.completed_dir)?;

    let local = written::local_fs(&config.incomplete_dir);
    for row in live {
        let disk = look(row, local);
        let decision = decide(row, disk);
        apply(registry, config, row, &decision)?;
        if decision != Decision::Resume {
            log::info!("reconciled id={} decision={decision:?}", row.id);
        }
        summary.decisions.push((row.id, decision));
    }

    let owned: HashSet<&Path> = rows.iter().map(|d| d.part_path.as_path()).collect();
    summary.orphans = move_orphans(&config.incomplete_dir, &owned)?;
    Ok(summary)
}

fn look(row: &Download, local: bool) -> OnDisk {
    let part = std::fs::metadata(&row.part_path).ok();
    let written = match &part {
        Some(meta) if local => {
            written::read(&row.part_path, meta, written::Owner::of(row)).unwrap_or(0)
        }
        _ => 0,
    };
    let dest = if row.dest_path.as_os_str().is_empty() {
        None
    } else {
        std::fs::symlink_metadata(&row.dest_path).ok()
    };
    let same_file =
        matches!((&part, &dest), (Some(p), Some(d)) if p.dev() == d.dev() && p.ino() == d.ino());
    OnDisk {
        part: part.map(|m| m.len()),
        dest_ours: same_file
            || dest
                .as_ref()
                .is_some_and(|d| recorded_as_handed_off(row, d)),
        dest: dest.map(|m| m.len()),
        written,
    }
}

/// Rule 13's evidence: the registry recorded every byte durable and named
/// this very file (`dev:ino`) before the hand-off began.
pub fn put_there_by_jack(row: &Download, dest: &std::fs::Metadata) -> bool {
    row.downloaded_bytes == row.expected_bytes
        && dest.len() == row.expected_bytes
        && recorded_as_handed_off(row, dest)
}

fn recorded_as_handed_off(row: &Download, dest: &std::fs::Metadata) -> bool {
    dest.is_file() && row.handoff_file.as_deref() == Some(handoff::file_id(dest).as_str())
}

/// Removes jack's own unfinished hand-off copies (and probe files) from
/// the completed folders: they were never exposed, and the hand-off runs
/// again from the `.part`, which is only removed once a copy is in place.
fn remove_unfinished_copies(
    registry: &Registry,
    live: &[&Download],
    completed: &Path,
) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<&Path> = vec![completed];
    for d in live {
        if let Some(p) = d.dest_path.parent().filter(|p| !p.as_os_str().is_empty())
            && !dirs.contains(&p)
        {
            dirs.push(p);
        }
    }
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let own = name.to_str().is_some_and(handoff::is_own_temp);
            if !own || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
            log::info!(
                "reconciled: unfinished hand-off copy removed path={}",
                path.display()
            );
            if let Some(row) = live.iter().find(|d| {
                d.dest_path
                    .parent()
                    .is_some_and(|p| handoff::temp_path(p, &d.info_hash) == path)
            }) {
                registry.add_event(
                    row.id,
                    EventKind::Reconciled,
                    "unfinished copy into completed_dir removed (never exposed): the hand-off runs again",
                )?;
            }
            removed.push(path);
        }
        if !removed.is_empty() {
            sync_dir(dir).map_err(|e| Error::io(format!("cannot sync {}", dir.display()), e))?;
        }
    }
    Ok(removed)
}

fn apply(
    registry: &Registry,
    config: &DownloadsConfig,
    row: &Download,
    decision: &Decision,
) -> Result<()> {
    let id = row.id;
    let io = |what: &str, e| Error::io(format!("cannot {what} {}", row.part_path.display()), e);
    let note = |detail: &str| registry.add_event(id, EventKind::Reconciled, detail);
    match *decision {
        Decision::Resume => Ok(()),
        Decision::RestartMissingPart => {
            note(&format!(
                ".part missing with {} bytes recorded: restart from 0",
                row.downloaded_bytes
            ))?;
            registry.record_restart(id, "part_missing").map(drop)
        }
        Decision::TruncateToDurable { len, durable } => {
            truncate(&row.part_path, durable).map_err(|e| io("truncate", e))?;
            note(&format!(
                ".part had {len} bytes, {durable} durable: truncated to {durable}"
            ))
        }
        Decision::KeepWritten { len, durable } => note(&format!(
            ".part has {len} bytes, {durable} durable, the rest written in this boot: kept"
        )),
        Decision::TruncateToWritten { len, written } => {
            truncate(&row.part_path, written).map_err(|e| io("truncate", e))?;
            note(&format!(
                ".part had {len} bytes, {written} written in this boot: truncated to {written}"
            ))
        }
        Decision::ResumeFromPart { len, durable } => {
            log::warn!(
                "data lost id={id} part_bytes={len} recorded_bytes={durable}: resuming from the .part"
            );
            registry.set_progress(id, len)?;
            note(&format!(
                ".part has {len} bytes but {durable} were recorded (data lost): resume from {len}"
            ))
        }
        Decision::TruncateTooLong { len } => {
            // The registry lets go of the bytes before the file does.
            registry.record_restart(id, "part_too_long")?;
            truncate(&row.part_path, 0).map_err(|e| io("truncate", e))?;
            note(&format!(
                ".part had {len} bytes, more than the {} expected",
                row.expected_bytes
            ))
        }
        Decision::Finalize => note("complete .part: finalize without a request"),
        Decision::AdoptFinal => {
            let detail = "final file present, .part gone: the hand-off completed before the stop";
            registry.transition(id, Status::Completed, None, EventKind::Reconciled, detail)
        }
        Decision::FinishHandOff => {
            std::fs::remove_file(&row.part_path).map_err(|e| io("remove", e))?;
            if let Some(dir) = row.part_path.parent() {
                sync_dir(dir).map_err(|e| io("sync the folder of", e))?;
            }
            let detail = "the hand-off had placed the final file; its .part name is removed";
            registry.transition(id, Status::Completed, None, EventKind::Reconciled, detail)
        }
        Decision::DestinationExists => {
            let detail = format!(
                "{} exists and jack did not put it there: left untouched",
                row.dest_path.display()
            );
            registry.transition(
                id,
                Status::Failed,
                Some(DESTINATION_EXISTS),
                EventKind::Reconciled,
                &detail,
            )?;
            crate::download::watch::set_aside(&config.watch_dir, &row.stub_name, "failed");
            Ok(())
        }
    }
}

/// Truncates `path` to `len` bytes and syncs it (its written record first
/// lowered: see `download::written`).
pub fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    written::cut(path, len);
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Moves every file of `incomplete` that no row owns into `orphaned/`.
fn move_orphans(incomplete: &Path, owned: &HashSet<&Path>) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(incomplete) else {
        return Ok(Vec::new());
    };
    let orphanage = incomplete.join("orphaned");
    let mut moved = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || owned.contains(path.as_path()) {
            continue;
        }
        if entry.file_name().to_str().is_some_and(handoff::is_own_temp) {
            // An empty probe file of a start that stopped mid-probe.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if let Some(part) = entry
            .file_name()
            .to_str()
            .filter(|n| written::is_sidecar(n))
            .and_then(|n| n.strip_suffix(".written"))
        {
            // A written record: kept beside its `.part`, and useless (so
            // removed) without it.
            let part = incomplete.join(part);
            if !(owned.contains(part.as_path()) && part.exists()) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        std::fs::create_dir_all(&orphanage)
            .map_err(|e| Error::io(format!("cannot create {}", orphanage.display()), e))?;
        let name = entry.file_name();
        let mut target = orphanage.join(&name);
        let mut n = 1;
        while target.exists() {
            target = orphanage.join(format!("{}.{n}", name.to_string_lossy()));
            n += 1;
        }
        std::fs::rename(&path, &target)
            .map_err(|e| Error::io(format!("cannot move orphan {}", path.display()), e))?;
        log::warn!(
            "orphaned .part with no download moved path={}",
            target.display()
        );
        moved.push(target);
    }
    Ok(moved)
}

/// Files in `incomplete_dir/orphaned/` (shown by `jack status`).
pub fn orphans(incomplete: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(incomplete.join("orphaned"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(durable: u64, expected: u64) -> Download {
        Download {
            id: 1,
            stub_name: String::new(),
            info_hash: String::new(),
            peer: String::new(),
            item_id: String::new(),
            title: String::new(),
            file_name: String::new(),
            part_path: PathBuf::new(),
            dest_path: PathBuf::new(),
            etag: None,
            expected_bytes: expected,
            downloaded_bytes: durable,
            status: Status::Downloading,
            attempts: 0,
            restarts: 0,
            error: None,
            created_at: String::new(),
            updated_at: String::new(),
            completed_at: None,
            handoff_file: None,
            generation: 0,
            high_water: 0,
            sha256: None,
            verified_bytes: 0,
            hash_state: None,
            search: None,
        }
    }

    fn disk(part: Option<u64>, dest: Option<u64>, dest_ours: bool) -> OnDisk {
        OnDisk {
            part,
            dest,
            dest_ours,
            written: 0,
        }
    }

    /// A `.part` of `len` bytes whose written record vouches for `written`.
    fn written(len: u64, written: u64) -> OnDisk {
        OnDisk {
            written,
            ..disk(Some(len), None, false)
        }
    }

    #[test]
    fn the_start_up_table() {
        use Decision::*;
        let cases = [
            (row(0, 100), disk(None, None, false), Resume),
            (row(40, 100), disk(None, None, false), RestartMissingPart),
            (
                row(40, 100),
                disk(Some(60), None, false),
                TruncateToDurable {
                    len: 60,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                disk(Some(30), None, false),
                ResumeFromPart {
                    len: 30,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                disk(Some(150), None, false),
                TruncateTooLong { len: 150 },
            ),
            (row(100, 100), disk(Some(100), None, false), Finalize),
            (
                row(60, 100),
                disk(Some(100), None, false),
                TruncateToDurable {
                    len: 100,
                    durable: 60,
                },
            ),
            (row(40, 100), disk(Some(40), None, false), Resume),
            // A process of this boot wrote past the checkpoint (its record).
            (
                row(40, 100),
                written(60, 60),
                KeepWritten {
                    len: 60,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                written(60, 70),
                KeepWritten {
                    len: 60,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                written(90, 60),
                TruncateToWritten {
                    len: 90,
                    written: 60,
                },
            ),
            (
                row(40, 100),
                written(60, 30),
                TruncateToDurable {
                    len: 60,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                written(100, 100),
                KeepWritten {
                    len: 100,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                written(30, 60),
                ResumeFromPart {
                    len: 30,
                    durable: 40,
                },
            ),
            (
                row(40, 100),
                written(150, 150),
                TruncateTooLong { len: 150 },
            ),
            // The hand-off placed the file (the registry named it first).
            (row(100, 100), disk(None, Some(100), true), AdoptFinal),
            (
                row(100, 100),
                disk(Some(100), Some(100), true),
                FinishHandOff,
            ),
            // Rule 13: somebody else's file at the destination is never
            // adopted, whatever its size, and never replaced.
            (
                row(100, 100),
                disk(None, Some(100), false),
                DestinationExists,
            ),
            (row(0, 100), disk(None, Some(100), false), DestinationExists),
            (row(40, 100), disk(None, Some(7), false), DestinationExists),
            (
                row(100, 100),
                disk(Some(100), Some(100), false),
                DestinationExists,
            ),
            // Named as ours, but not every byte was durable: not adopted.
            (row(60, 100), disk(None, Some(100), true), DestinationExists),
            (row(100, 100), disk(None, Some(99), true), DestinationExists),
        ];
        for (r, d, want) in cases {
            assert_eq!(decide(&r, d), want, "{d:?} durable={}", r.downloaded_bytes);
        }
    }
}
