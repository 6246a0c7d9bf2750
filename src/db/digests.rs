//! The content digests of files this node has (`PROTOCOL.md` §2.6), under
//! each file's identity: what the background hasher found for a library
//! file, and what a download computed while its bytes arrived.
//!
//! Part of `db`: SQL only, under the same rules (the mutex held only around
//! SQL). A digest is returned only for the exact version it was made of:
//! the same device, inode, size and modification time in nanoseconds.

use rusqlite::{OptionalExtension, params};

use super::{Registry, db_err, query_all, to_i64};
use crate::digest::{Pieces, Sha256};
use crate::error::Result;

/// A file's identity: which file (device, inode) in which version (size,
/// modification time in nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileId {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
        }
    }
}

/// Device and inode numbers are stored as SQLite's signed integers, bit
/// for bit.
fn key(n: u64) -> i64 {
    n.cast_signed()
}

fn join(pieces: &[Sha256]) -> Vec<u8> {
    pieces.iter().flatten().copied().collect()
}

fn split(blob: &[u8]) -> Vec<Sha256> {
    blob.chunks_exact(32)
        .map(|c| c.try_into().unwrap_or([0; 32]))
        .collect()
}

impl Registry {
    /// The digests of exactly this version of the file, if known.
    pub fn digest_of(&self, id: &FileId) -> Result<Option<Pieces>> {
        Ok(self.digest_recorded(id)?.map(|(p, _)| p))
    }

    /// [`Registry::digest_of`], with when they were recorded (Unix
    /// seconds, the `at` of [`Registry::put_digest`]).
    pub fn digest_recorded(&self, id: &FileId) -> Result<Option<(Pieces, u64)>> {
        let conn = self.conn.lock();
        let row = conn
            .prepare_cached(
                "SELECT sha256, pieces, hashed_at FROM digests \
                 WHERE dev = ?1 AND ino = ?2 AND size = ?3 AND mtime_ns = ?4",
            )
            .and_then(|mut q| {
                q.query_row(
                    params![
                        key(id.dev),
                        key(id.ino),
                        to_i64(id.size).unwrap_or(-1),
                        id.mtime_ns
                    ],
                    |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()
            })
            .map_err(db_err("read a file's digest"))?;
        Ok(row.and_then(|(whole, pieces, at)| {
            let sha256: Sha256 = whole.try_into().ok()?;
            let pieces = split(&pieces);
            (pieces.len() as u64 == crate::digest::piece_count(id.size)).then_some((
                Pieces {
                    size: id.size,
                    sha256,
                    pieces,
                },
                u64::try_from(at).unwrap_or(0),
            ))
        }))
    }

    /// Records the digests of `id` (replacing what was known of another
    /// version of the same file). `at`: Unix seconds.
    pub fn put_digest(&self, id: &FileId, p: &Pieces, at: u64) -> Result<()> {
        if p.size != id.size || p.pieces.len() as u64 != crate::digest::piece_count(id.size) {
            return Err(crate::error::Error::Runtime(format!(
                "digest of {} bytes in {} pieces does not describe a file of {} bytes",
                p.size,
                p.pieces.len(),
                id.size
            )));
        }
        let conn = self.conn.lock();
        conn.prepare_cached(
            "INSERT INTO digests (dev, ino, size, mtime_ns, sha256, pieces, hashed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (dev, ino) DO UPDATE SET \
             size = ?3, mtime_ns = ?4, sha256 = ?5, pieces = ?6, hashed_at = ?7",
        )
        .and_then(|mut q| {
            q.execute(params![
                key(id.dev),
                key(id.ino),
                to_i64(id.size).unwrap_or(-1),
                id.mtime_ns,
                p.sha256.as_slice(),
                join(&p.pieces),
                to_i64(at).unwrap_or(0),
            ])
        })
        .map_err(db_err("record a file's digest"))?;
        Ok(())
    }

    /// Every identity with a digest (device, inode), for forgetting files
    /// that are gone.
    pub fn digested_files(&self) -> Result<Vec<(u64, u64)>> {
        let conn = self.conn.lock();
        query_all(
            &conn,
            "SELECT dev, ino FROM digests",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?.cast_unsigned(),
                    r.get::<_, i64>(1)?.cast_unsigned(),
                ))
            },
            "read digested files",
        )
    }

    /// Forgets the digests of these files (device, inode).
    pub fn forget_digests(&self, files: &[(u64, u64)]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("forget digests"))?;
        {
            let mut del = tx
                .prepare_cached("DELETE FROM digests WHERE dev = ?1 AND ino = ?2")
                .map_err(db_err("forget digests"))?;
            for &(dev, ino) in files {
                del.execute(params![key(dev), key(ino)])
                    .map_err(db_err("forget digests"))?;
            }
        }
        tx.commit().map_err(db_err("forget digests"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_returned_for_its_exact_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let data = vec![9u8; 1000];
        let p = Pieces::of(&data);
        let id = FileId {
            dev: u64::MAX,
            ino: 42,
            size: 1000,
            mtime_ns: 1_700_000_000_123_456_789,
        };
        assert_eq!(reg.digest_of(&id).unwrap(), None);
        reg.put_digest(&id, &p, 5).unwrap();
        assert_eq!(reg.digest_of(&id).unwrap(), Some(p.clone()));
        assert_eq!(reg.digest_recorded(&id).unwrap(), Some((p.clone(), 5)));
        let touched = FileId {
            mtime_ns: id.mtime_ns + 1,
            ..id
        };
        assert_eq!(reg.digest_of(&touched).unwrap(), None, "another version");
        assert!(reg.put_digest(&FileId { size: 5, ..id }, &p, 5).is_err());
        assert_eq!(reg.digested_files().unwrap(), [(u64::MAX, 42)]);
        reg.forget_digests(&[(u64::MAX, 42)]).unwrap();
        assert_eq!(reg.digest_of(&id).unwrap(), None);
    }
}
