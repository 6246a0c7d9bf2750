//! The written record: how far this process has written a `.part`, kept
//! beside it (`<hash>.part.written`) and never synced, so that a crash of
//! the process re-fetches nothing while a power cut still costs at most
//! one checkpoint.
//!
//! The registry's `downloaded_bytes` is the durable checkpoint: bytes
//! `fdatasync`ed, true after anything, a power cut included. Bytes written
//! after it sit in the page cache: a crashed process (kill -9, the OOM
//! killer, a panic, a container restart) leaves them to the kernel, which
//! writes them out; only the machine going down loses them. So the record
//! holds the kernel's boot id (`/proc/sys/kernel/random/boot_id`), the
//! `.part`'s inode, the download row and the generation of its bytes
//! (`downloads.generation`) it was written for, and the count of bytes
//! written, rewritten in place with one `pwrite` every [`STEP`] and never
//! synced.
//!
//! **When it is trusted** ([`read`]): only when its boot id is the running
//! kernel's (the machine never went down since those bytes were written),
//! its inode is the `.part`'s (not a file deleted and made again), its row
//! and generation are exactly the row's now (the bytes are still the ones
//! that row wrote for the version it expects: a restart from 0, a new
//! version, a failed write or sync and a new row all change one of them),
//! and the `.part` lives on a local filesystem ([`local_fs`]: NFS, SMB/CIFS, FUSE,
//! 9p and the like write back on their own terms, so there the checkpoint
//! alone counts). A resume then starts at `min(.part length, max(durable,
//! written))`; anything past it (garbage a crash or anything else appended)
//! is cut away, and the kept bytes are synced and checkpointed before a new
//! byte is asked for, so the registry still never claims a byte that is not
//! durable. Otherwise (a reboot, a power cut, no record, an unreadable or
//! foreign record) the resume starts at the durable checkpoint, as before.
//!
//! **Keeping it true**: the record is raised only after the bytes it counts
//! are written, and lowered before the `.part` is cut shorter (or removed,
//! [`forget`], by whoever truncates or deletes the `.part` outside an
//! attempt); for an unsized body it stops one byte short of the end until
//! the end is proven (rule 12). Every byte below a trusted record was
//! therefore written by jack, in this boot, by this row, for the
//! generation the row names, or for the one before it in the same attempt
//! and for the same version: bytes a round of several sources kept past a
//! piece that failed (`transfer::multi::Kept`), which the record reaches
//! once the prefix does. None of them is proven by this: a resume reads
//! back and checks every byte past the last proof.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The record is rewritten at least every this many bytes: a process crash
/// re-fetches at most this much (plus one read buffer).
pub const STEP: u64 = 1024 * 1024;

/// `<boot id> <inode> <row> <generation> <written>`: fixed width, so each
/// `pwrite` replaces the whole record.
const RECORD_LEN: usize = 36 + 4 * (1 + 20) + 1;

/// Whose bytes a record counts: a download row and the generation of its
/// `.part`'s bytes (`downloads.id`, `downloads.generation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub row: i64,
    pub generation: u64,
}

impl Owner {
    /// The owner a row names now.
    pub fn of(row: &crate::db::Download) -> Owner {
        Owner {
            row: row.id,
            generation: row.generation,
        }
    }
}

/// The record's file for a `.part`.
pub fn sidecar(part: &Path) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".written");
    PathBuf::from(name)
}

/// Whether `name` is a record's file name (for the orphan sweep).
pub fn is_sidecar(name: &str) -> bool {
    name.ends_with(".part.written")
}

/// The running kernel's boot id; `JACK_FAULT_BOOT_ID` replaces it in debug
/// builds (a test's "the machine went down"). Empty when unreadable, and
/// then no record is written or trusted.
pub fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        crate::fault::boot_id().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        })
    })
}

/// The record's text.
fn format(boot: &str, ino: u64, owner: Owner, written: u64) -> Option<[u8; RECORD_LEN]> {
    let row = u64::try_from(owner.row).ok()?;
    let generation = owner.generation;
    let text = format!("{boot} {ino:020} {row:020} {generation:020} {written:020}\n");
    text.as_bytes().try_into().ok()
}

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Said<'a> {
    boot: &'a str,
    ino: u64,
    owner: Owner,
    written: u64,
}

/// A record's bytes read back, or `None`.
fn parse(bytes: &[u8]) -> Option<Said<'_>> {
    let text = std::str::from_utf8(bytes.get(..RECORD_LEN)?).ok()?;
    let text = text.strip_suffix('\n')?;
    let mut parts = text.split(' ');
    let boot = parts.next()?;
    let mut numbers = [0u64; 4];
    for n in &mut numbers {
        let digits = parts.next()?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *n = digits.parse().ok()?;
    }
    if parts.next().is_some() || boot.len() != 36 {
        return None;
    }
    let [ino, row, generation, written] = numbers;
    Some(Said {
        boot,
        ino,
        owner: Owner {
            row: i64::try_from(row).ok()?,
            generation,
        },
        written,
    })
}

/// The bytes the record vouches for, when it can be trusted: same boot,
/// same inode as `part` (the `.part`'s metadata), and exactly `owner` (the
/// row and generation the registry names now). The caller decides whether
/// the filesystem is local.
pub fn read(part_path: &Path, part: &std::fs::Metadata, owner: Owner) -> Option<u64> {
    read_for(part_path, part, owner, boot_id())
}

fn read_for(part_path: &Path, part: &std::fs::Metadata, owner: Owner, boot: &str) -> Option<u64> {
    if boot.len() != 36 {
        return None;
    }
    let bytes = std::fs::read(sidecar(part_path)).ok()?;
    let said = parse(&bytes)?;
    (said.boot == boot && said.ino == part.ino() && said.owner == owner).then_some(said.written)
}

/// Removes a `.part`'s record (before the `.part` is truncated or deleted
/// outside an attempt). A missing record is fine; any other error is
/// logged: the record then names bytes that may be gone, so the `.part`
/// is cut to the checkpoint at the next start (its inode or length tells).
pub fn forget(part_path: &Path) {
    match std::fs::remove_file(sidecar(part_path)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            log::warn!("cannot remove {}: {e}", sidecar(part_path).display());
        }
        _ => {}
    }
}

/// The `.part` at `part_path` is about to be cut to `len` bytes outside an
/// attempt: a record that vouches for more (or cannot be read) goes.
pub fn cut(part_path: &Path, len: u64) {
    let keep = std::fs::read(sidecar(part_path))
        .ok()
        .and_then(|b| parse(&b).map(|said| said.written <= len));
    if keep != Some(true) {
        forget(part_path);
    }
}

/// The writer of one `.part`'s record during an attempt. Writing is best
/// effort: a record that cannot be written is simply not trusted later
/// (its bytes are re-fetched), so a failure is logged once and ignored.
#[derive(Debug)]
pub struct Record {
    file: Option<File>,
    ino: u64,
    owner: Owner,
    /// The value last written.
    last: u64,
    /// Bytes between two rewrites ([`STEP`], or a test's knob).
    step: u64,
}

impl Record {
    /// A record for the open `.part` at `path`, owned by `owner`; `enabled`
    /// is false where the record would not be trusted (not a local
    /// filesystem), and then nothing is written.
    pub fn open(path: &Path, part: &File, owner: Owner, enabled: bool) -> Record {
        let ino = part.metadata().map(|m| m.ino()).unwrap_or(0);
        let file = (enabled && boot_id().len() == 36 && ino != 0)
            .then(|| {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(sidecar(path))
            })
            .and_then(|r| {
                r.map_err(|e| log::warn!("cannot open {}: {e}", sidecar(path).display()))
                    .ok()
            });
        Record {
            file,
            ino,
            owner,
            last: u64::MAX,
            step: crate::fault::scaled("JACK_FAULT_RECORD_STEP", STEP),
        }
    }

    /// Bytes up to `pos` are written: rewrites the record once `pos` is a
    /// [`STEP`] past the last value.
    pub fn advance(&mut self, pos: u64) {
        if self.last == u64::MAX || pos >= self.last.saturating_add(self.step) {
            self.set(pos);
        }
    }

    /// The registry gave the `.part`'s bytes a new generation (a restart
    /// from 0): the record says so, at 0, before the `.part` is cut.
    pub fn restart(&mut self, generation: u64) {
        self.owner.generation = generation;
        self.set(0);
    }

    /// Writes `pos` now: after bytes up to it are written, or before the
    /// `.part` is cut to it.
    pub fn set(&mut self, pos: u64) {
        let Some(file) = &self.file else { return };
        let Some(bytes) = format(boot_id(), self.ino, self.owner, pos) else {
            return;
        };
        if let Err(e) = file.write_all_at(&bytes, 0) {
            log::warn!("cannot update a written record: {e}");
            self.file = None;
            return;
        }
        self.last = pos;
    }
}

/// Whether the written record is trusted for `.part` files in `dir`: a
/// local filesystem, where the page cache a crashed process leaves behind
/// is written out by this kernel. Network and FUSE filesystems, and any
/// whose type cannot be read, are not.
pub fn local_fs(dir: &Path) -> bool {
    match rustix::fs::statfs(dir) {
        // The magic numbers fit 32 bits; `f_type` is 32 bits wide on armv7.
        Ok(st) => !NOT_LOCAL.contains(&(st.f_type as u32)),
        Err(_) => false,
    }
}

/// `statfs` magic numbers of filesystems whose writes another machine or a
/// user-space daemon completes (linux/magic.h and the filesystems' own).
const NOT_LOCAL: &[u32] = &[
    0x6969,      // NFS
    0x517B,      // SMB
    0xFE53_4D42, // SMB2
    0xFF53_4D42, // CIFS
    0x6573_5546, // FUSE (sshfs, rclone, mergerfs, ...)
    0x0102_1997, // 9p (v9fs: WSL and VM shares)
    0x00C3_6400, // Ceph
    0x5346_414F, // AFS
    0x7375_7245, // Coda
    0x564C,      // NCP
    0x0BD0_0BD0, // Lustre
    0x4750_4653, // GPFS
];

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "0b4c6c9e-7f7e-4d5b-9d8a-1f2e3d4c5b6a";

    const OWNER: Owner = Owner {
        row: 7,
        generation: 3,
    };

    #[test]
    fn records_round_trip_and_reject_anything_else() {
        let r = format(BOOT, 42, OWNER, 5_000_000_000).unwrap();
        let said = Said {
            boot: BOOT,
            ino: 42,
            owner: OWNER,
            written: 5_000_000_000,
        };
        assert_eq!(parse(&r), Some(said));
        assert_eq!(r.len(), RECORD_LEN);
        let text = std::str::from_utf8(&r).unwrap().to_string();
        for bad in [
            String::new(),
            text.replace('\n', ""),
            text.replacen(' ', "_", 1),
            text.replacen(" 0", " +", 1),
            text.replacen(" 0", " x", 1),
            text[1..].to_string() + "0",
            // A record of the previous format (no row, no generation).
            format!("{BOOT} {:020} {:020}\n", 42, 5),
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        // Bytes after a whole record (a longer earlier record) are ignored.
        assert!(parse(format!("{text}extra").as_bytes()).is_some());
        assert_eq!(format("short", 1, OWNER, 1), None);
    }

    #[test]
    fn a_record_is_trusted_only_in_its_boot_for_its_inode_row_and_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.part");
        let part = File::create(&path).unwrap();
        let meta = part.metadata().unwrap();
        let mut rec = Record {
            file: Some(File::create(sidecar(&path)).unwrap()),
            ino: meta.ino(),
            owner: OWNER,
            last: u64::MAX,
            step: STEP,
        };
        rec.advance(10);
        assert_eq!(rec.last, 10);
        rec.advance(10 + STEP - 1);
        assert_eq!(rec.last, 10, "not a step yet");
        rec.advance(10 + STEP);
        let boot = boot_id();
        assert_eq!(read_for(&path, &meta, OWNER, boot), Some(10 + STEP));
        assert_eq!(read_for(&path, &meta, OWNER, BOOT), None, "another boot");
        let other_row = Owner { row: 8, ..OWNER };
        assert_eq!(read_for(&path, &meta, other_row, boot), None, "another row");
        let next = Owner {
            generation: 4,
            ..OWNER
        };
        assert_eq!(
            read_for(&path, &meta, next, boot),
            None,
            "another generation"
        );
        rec.restart(4);
        assert_eq!(read_for(&path, &meta, next, boot), Some(0), "restarted");
        assert_eq!(read_for(&path, &meta, OWNER, boot), None);
        rec.set(3);
        assert_eq!(read_for(&path, &meta, next, boot), Some(3), "lowered");
        // The same name made again: another inode.
        drop(part);
        std::fs::remove_file(&path).unwrap();
        let _keep = File::create(dir.path().join("other")).unwrap();
        let again = File::create(&path).unwrap().metadata().unwrap();
        if again.ino() != meta.ino() {
            assert_eq!(read_for(&path, &again, next, boot), None);
        }
        cut(&path, 3);
        assert_eq!(
            read_for(&path, &meta, next, boot),
            Some(3),
            "kept: not past the cut"
        );
        cut(&path, 2);
        assert_eq!(
            read_for(&path, &meta, next, boot),
            None,
            "it vouched for more"
        );
        rec.set(3);
        forget(&path);
        assert_eq!(read_for(&path, &meta, next, boot), None);
        forget(&path);
    }

    #[test]
    fn sidecar_names() {
        let p = Path::new("/x/incomplete/abc.part");
        assert_eq!(sidecar(p), Path::new("/x/incomplete/abc.part.written"));
        assert!(is_sidecar("abc.part.written"));
        assert!(!is_sidecar("abc.part"));
        assert!(local_fs(&std::env::temp_dir()) || cfg!(not(target_os = "linux")));
    }
}
