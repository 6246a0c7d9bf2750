//! Room on the disk before bytes on the wire: before a transfer starts or
//! resumes, what is still to come (and, when the hand-off copies, a second
//! whole file in `completed_dir`) plus the reserve `min_free_bytes` must fit
//! in the free space of each filesystem written to (`statvfs`, the blocks
//! an unprivileged writer may use). `shortfall` is the pure decision;
//! `check` asks the disk. Once a transfer starts, `reserve` asks the
//! filesystem to set the rest of the file aside (`fallocate` with
//! `FALLOC_FL_KEEP_SIZE`: the `.part` length still means bytes received).
//!
//! `disks` tells the owner (the status page, the status API, `jack status`)
//! the free space of each filesystem the download folders are on, and
//! whether it is under the reserve.
//!
//! Must not: ask the peer anything, or fail a download (a full disk is a
//! pause; what a check cannot foresee is still the `ENOSPC` pause).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One filesystem's demand: `need` bytes to write, `free` bytes free
/// (including space the `.part` already holds past its received bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub dev: u64,
    pub need: u64,
    pub free: u64,
}

/// A filesystem that is short: `need` (with the reserve) against `have`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    pub need: u64,
    pub have: u64,
}

impl Short {
    /// `waiting for disk space: need 3.0 MiB, have 1.0 MiB`.
    pub fn message(&self) -> String {
        format!(
            "{WAITING}: need {}, have {}",
            crate::format::human_bytes(self.need),
            crate::format::human_bytes(self.have)
        )
    }
}

/// The start of a paused download's error while the disk is short.
pub const WAITING: &str = "waiting for disk space";

/// Demands on one filesystem add up (a copy into a `completed_dir` on the
/// `.part`'s filesystem needs the room twice); the reserve is kept on
/// each. The first filesystem short of room, if any. Saturating u64.
pub fn shortfall(demands: &[Demand], reserve: u64) -> Option<Short> {
    let mut seen: Vec<u64> = Vec::new();
    for d in demands {
        if seen.contains(&d.dev) {
            continue;
        }
        seen.push(d.dev);
        let on_it = demands.iter().filter(|o| o.dev == d.dev);
        let need = on_it
            .clone()
            .fold(reserve, |sum, o| sum.saturating_add(o.need));
        let have = on_it.map(|o| o.free).max().unwrap_or(0);
        if need > have {
            return Some(Short { need, have });
        }
    }
    None
}

/// The free space of the filesystem holding `folder` for an unprivileged
/// writer (`f_bavail × f_frsize`), and its device.
fn free_space(folder: &Path) -> std::io::Result<(u64, u64)> {
    let vfs = rustix::fs::statvfs(folder)?;
    let dev = std::fs::metadata(folder)?.dev();
    Ok((dev, vfs.f_bavail.saturating_mul(vfs.f_frsize)))
}

/// One filesystem the download folders are on, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disk {
    /// The folders on it, in the order asked (incomplete, completed, watch).
    pub folders: Vec<PathBuf>,
    /// Free for an unprivileged writer (`f_bavail × f_frsize`).
    pub free_bytes: u64,
    /// Its size (`f_blocks × f_frsize`).
    pub total_bytes: u64,
    /// `free_bytes` is under `min_free_bytes`: downloads wait for room.
    pub low: bool,
    /// Why it could not be measured, in words (`free_bytes` is then 0).
    pub error: Option<String>,
}

/// One folder's filesystem: its device, free and total bytes.
pub type Measure = std::io::Result<(u64, u64, u64)>;

/// Asks `statvfs` about the filesystem of each of `folders` (one line per
/// distinct filesystem), `low` when under `reserve`.
pub fn disks(folders: &[&Path], reserve: u64) -> Vec<Disk> {
    let measured: Vec<(&Path, Measure)> = folders
        .iter()
        .map(|f| {
            let m = rustix::fs::statvfs(*f)
                .map_err(std::io::Error::from)
                .and_then(|vfs| {
                    let dev = std::fs::metadata(f)?.dev();
                    let size = |blocks: u64| blocks.saturating_mul(vfs.f_frsize);
                    Ok((dev, size(vfs.f_bavail), size(vfs.f_blocks)))
                });
            (*f, m)
        })
        .collect();
    group(&measured, reserve)
}

/// The folders grouped by filesystem (device), in the order first seen; a
/// folder that could not be measured is a line of its own. Pure.
pub fn group(measured: &[(&Path, Measure)], reserve: u64) -> Vec<Disk> {
    let mut out: Vec<(Option<u64>, Disk)> = Vec::new();
    for (folder, m) in measured {
        match m {
            Ok((dev, free, total)) => {
                if let Some((_, disk)) = out.iter_mut().find(|(d, _)| *d == Some(*dev)) {
                    disk.folders.push(folder.to_path_buf());
                    continue;
                }
                out.push((
                    Some(*dev),
                    Disk {
                        folders: vec![folder.to_path_buf()],
                        free_bytes: *free,
                        total_bytes: *total,
                        low: *free < reserve,
                        error: None,
                    },
                ));
            }
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "the folder does not exist".to_string(),
                    std::io::ErrorKind::PermissionDenied => {
                        "jack may not read the folder (permission denied)".to_string()
                    }
                    // Plain words on the page, never "(os error N)".
                    _ => match crate::plain::io_phrase(e) {
                        "error" => format!(
                            "cannot measure the folder's free space ({})",
                            crate::plain::without_os_error(&e.to_string()).to_lowercase()
                        ),
                        phrase => format!("cannot measure the folder's free space ({phrase})"),
                    },
                };
                out.push((
                    None,
                    Disk {
                        folders: vec![folder.to_path_buf()],
                        free_bytes: 0,
                        total_bytes: 0,
                        low: false,
                        error: Some(why),
                    },
                ));
            }
        }
    }
    out.into_iter().map(|(_, d)| d).collect()
}

/// Whether a download of `expected` bytes whose `.part` (in `incomplete`)
/// holds `offset` received bytes fits, with `copy_to` the `completed_dir`
/// when the hand-off copies. A folder that cannot be asked is not judged
/// (the write itself will tell).
pub fn check(
    part: &Path,
    incomplete: &Path,
    offset: u64,
    expected: u64,
    copy_to: Option<&Path>,
    reserve: u64,
) -> Option<Short> {
    let mut demands = Vec::with_capacity(2);
    if let Ok((dev, free)) = free_space(incomplete) {
        // Blocks the `.part` already holds past its received bytes (set
        // aside by `reserve` in an earlier attempt) are its own room.
        let held = std::fs::metadata(part)
            .map(|m| m.blocks().saturating_mul(512).saturating_sub(offset))
            .unwrap_or(0);
        demands.push(Demand {
            dev,
            need: expected.saturating_sub(offset),
            free: free.saturating_add(held),
        });
    }
    if let Some(folder) = copy_to
        && let Ok((dev, free)) = free_space(folder)
    {
        demands.push(Demand {
            dev,
            need: expected,
            free,
        });
    }
    shortfall(&demands, reserve)
}

/// Sets aside the blocks from `offset` to `expected` without changing the
/// file's length, where the filesystem can. Best effort: only `ENOSPC` and
/// `EDQUOT` (another writer took the room since the check) are errors;
/// `EOPNOTSUPP` and any other refusal leave the writes to find out.
pub fn reserve(part: &File, offset: u64, expected: u64) -> std::io::Result<()> {
    use rustix::{fs::FallocateFlags, io::Errno};
    if expected <= offset {
        return Ok(());
    }
    match rustix::fs::fallocate(part, FallocateFlags::KEEP_SIZE, offset, expected - offset) {
        Err(e) if e == Errno::NOSPC || e == Errno::DQUOT => Err(e.into()),
        Err(e) => {
            log::debug!("no space reserved ahead error={e}");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn d(dev: u64, need: u64, free: u64) -> Demand {
        Demand { dev, need, free }
    }

    #[test]
    fn shortfall_table() {
        let short = |need, have| Some(Short { need, have });
        let cases: &[(&[Demand], u64, Option<Short>)] = &[
            (&[], MIB, None),
            (&[d(1, 3 * MIB, 4 * MIB)], 0, None),
            (&[d(1, 3 * MIB, 3 * MIB)], 0, None),
            (&[d(1, 3 * MIB, MIB)], 0, short(3 * MIB, MIB)),
            (&[d(1, 3 * MIB, 4 * MIB)], MIB, None),
            (
                &[d(1, 3 * MIB, 4 * MIB)],
                MIB + 1,
                short(4 * MIB + 1, 4 * MIB),
            ),
            // A copy on the same filesystem needs the room twice.
            (&[d(1, MIB, 3 * MIB), d(1, 2 * MIB, 3 * MIB)], 0, None),
            (
                &[d(1, 2 * MIB, 3 * MIB), d(1, 2 * MIB, 3 * MIB)],
                0,
                short(4 * MIB, 3 * MIB),
            ),
            // On another filesystem, each on its own, the reserve on each.
            (&[d(1, 2 * MIB, 3 * MIB), d(2, 2 * MIB, 3 * MIB)], 0, None),
            (
                &[d(1, 2 * MIB, 3 * MIB), d(2, 2 * MIB, 3 * MIB)],
                MIB + 1,
                short(3 * MIB + 1, 3 * MIB),
            ),
            (&[d(1, 0, 0)], 0, None),
            (&[d(1, u64::MAX, u64::MAX)], 0, None),
            (
                &[d(1, u64::MAX - 1, u64::MAX - 1)],
                2,
                short(u64::MAX, u64::MAX - 1),
            ),
        ];
        for (i, &(demands, reserve, want)) in cases.iter().enumerate() {
            assert_eq!(shortfall(demands, reserve), want, "case {i}");
        }
    }

    #[test]
    fn the_message_is_for_people() {
        let s = Short {
            need: 3 * MIB + 4096,
            have: MIB,
        };
        assert_eq!(
            s.message(),
            "waiting for disk space: need 3.0 MiB, have 1.0 MiB"
        );
    }

    #[test]
    fn disks_group_folders_by_filesystem() {
        let (a, b, c) = (Path::new("/a"), Path::new("/b"), Path::new("/c"));
        let gone = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        let got = group(
            &[
                (a, Ok((1, 5 * MIB, 10 * MIB))),
                (b, Ok((2, MIB, 10 * MIB))),
                (c, Ok((1, 5 * MIB, 10 * MIB))),
            ],
            2 * MIB,
        );
        let folders: Vec<Vec<&Path>> = got
            .iter()
            .map(|d| d.folders.iter().map(PathBuf::as_path).collect())
            .collect();
        assert_eq!(folders, [vec![a, c], vec![b]]);
        assert_eq!(
            got.iter()
                .map(|d| (d.free_bytes, d.low))
                .collect::<Vec<_>>(),
            [(5 * MIB, false), (MIB, true)]
        );
        // At the reserve exactly is not under it; no reserve is never low.
        assert!(!group(&[(a, Ok((1, MIB, MIB)))], MIB)[0].low);
        assert!(!group(&[(a, Ok((1, 0, MIB)))], 0)[0].low);
        let missing = group(&[(a, gone()), (b, gone())], MIB);
        assert_eq!(missing.len(), 2, "each unmeasured folder is its own line");
        assert_eq!(
            missing[0].error.as_deref(),
            Some("the folder does not exist")
        );
        assert!(!missing[0].low);
        // Other errors in plain words, without the OS's "(os error N)".
        let os = |n| Err(std::io::Error::from_raw_os_error(n));
        let errors: Vec<_> = group(&[(a, os(5)), (b, os(40))], MIB)
            .into_iter()
            .map(|d| d.error.unwrap())
            .collect();
        assert_eq!(
            errors,
            [
                "cannot measure the folder's free space (input/output error: the disk may be failing)",
                "cannot measure the folder's free space (a loop of symbolic links)",
            ]
        );
    }

    #[test]
    fn disks_are_measured_by_statvfs() {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = (dir.path().join("x"), dir.path().join("y"));
        std::fs::create_dir(&x).unwrap();
        std::fs::create_dir(&y).unwrap();
        let got = disks(&[&x, &y], 0);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].folders, [x.clone(), y]);
        let vfs = rustix::fs::statvfs(&x).unwrap();
        assert_eq!(got[0].total_bytes, vfs.f_blocks * vfs.f_frsize);
        assert!(got[0].free_bytes > 0 && got[0].free_bytes <= got[0].total_bytes);
        assert!(disks(&[&x], u64::MAX)[0].low);
    }

    #[test]
    fn a_real_folder_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        assert_eq!(check(&part, dir.path(), 0, 0, None, 0), None);
        let huge = u64::MAX / 2;
        let short = check(&part, dir.path(), 0, huge, None, 0).unwrap();
        assert_eq!(short.need, huge);
        assert!(short.have < huge);
        let f = File::create(&part).unwrap();
        reserve(&f, 0, 4096).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0, "the length is unchanged");
    }
}
