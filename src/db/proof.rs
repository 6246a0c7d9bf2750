//! What a download has proven of its bytes (`PROTOCOL.md` §2.6): the
//! source's piece digests, how far the `.part` is hashed and checked with
//! the whole-file hash's state there, and the pieces that failed.
//!
//! Part of `db`: SQL only, under the same rules. `verified_bytes` never
//! passes `downloaded_bytes` (a `CHECK` says so): a proof is committed
//! with, or after, the checkpoint that made its bytes durable.

use rusqlite::{OptionalExtension, params};

use super::{EventKind, Registry, db_err, insert_event, to_i64};
use crate::clock::now_rfc3339;
use crate::digest::{Midstate, Sha256};
use crate::error::{Error, Result};

/// Bad pieces per source, by download id: (peer, item, count).
pub type BadPieces = std::collections::HashMap<i64, Vec<(String, String, u32)>>;

impl Registry {
    /// Progress and proof in one statement: `bytes` durable (the caller
    /// synced the `.part` to them) and, with `proof`, bytes up to
    /// `proof.bytes` (at most `bytes`) hashed and checked, the whole-file
    /// hash's state there.
    pub fn set_progress_proven(&self, id: i64, bytes: u64, proof: &Midstate) -> Result<()> {
        if proof.bytes > bytes {
            return Err(Error::Runtime(format!(
                "proof at {} is past the durable count {bytes}",
                proof.bytes
            )));
        }
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE downloads SET downloaded_bytes = ?2, high_water = max(high_water, ?2), \
             verified_bytes = ?3, hash_state = ?4, updated_at = ?5 WHERE id = ?1",
            params![
                id,
                to_i64(bytes)?,
                to_i64(proof.bytes)?,
                proof.state.as_slice(),
                now_rfc3339()
            ],
        )
        .map_err(db_err("record progress"))?;
        Ok(())
    }

    /// The source's piece digests for the row's version, once fetched.
    pub fn pieces_of(&self, id: i64) -> Result<Option<Vec<Sha256>>> {
        let conn = self.conn.lock();
        let blob: Option<Option<Vec<u8>>> = conn
            .query_row("SELECT pieces FROM downloads WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_err("read piece digests"))?;
        Ok(blob.flatten().map(|b| {
            b.chunks_exact(32)
                .map(|c| c.try_into().unwrap_or([0; 32]))
                .collect()
        }))
    }

    /// Keeps the source's piece digests for the row's version.
    pub fn set_pieces(&self, id: i64, pieces: &[Sha256]) -> Result<()> {
        let blob: Vec<u8> = pieces.iter().flatten().copied().collect();
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE downloads SET pieces = ?2 WHERE id = ?1",
            params![id, blob],
        )
        .map_err(db_err("record piece digests"))?;
        Ok(())
    }

    /// A piece starting at `start` failed its check: the durable count
    /// and the proof go back to it (no further), the bytes get a new
    /// generation (no written record vouches for the bad ones), each
    /// source that sent bytes of it (`culprits`: peer and item) counts one
    /// more bad piece, and the event says which piece and from whom
    /// (`detail`). Returns the new generation and each culprit's count.
    pub fn piece_failed(
        &self,
        id: i64,
        start: u64,
        culprits: &[(&str, &str)],
        detail: &str,
    ) -> Result<(u64, Vec<u32>)> {
        let now = now_rfc3339();
        let start = to_i64(start)?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("begin a failed piece"))?;
        let generation: i64 = tx
            .query_row(
                "UPDATE downloads SET downloaded_bytes = min(downloaded_bytes, ?2), \
                 verified_bytes = CASE WHEN verified_bytes <= ?2 THEN verified_bytes ELSE 0 END, \
                 hash_state = CASE WHEN verified_bytes <= ?2 THEN hash_state ELSE NULL END, \
                 generation = generation + 1, updated_at = ?3 \
                 WHERE id = ?1 RETURNING generation",
                params![id, start, now],
                |r| r.get(0),
            )
            .map_err(db_err("record a failed piece"))?;
        let mut counts = Vec::with_capacity(culprits.len());
        for (peer, item) in culprits {
            let n: u32 = tx
                .query_row(
                    "INSERT INTO download_sources (download_id, peer, item_id, bad_pieces) \
                     VALUES (?1, ?2, ?3, 1) ON CONFLICT (download_id, peer, item_id) \
                     DO UPDATE SET bad_pieces = bad_pieces + 1 RETURNING bad_pieces",
                    params![id, peer, item],
                    |r| r.get(0),
                )
                .map_err(db_err("count a bad piece"))?;
            counts.push(n);
        }
        insert_event(&tx, id, &now, EventKind::PieceFailed, detail)?;
        tx.commit().map_err(db_err("commit a failed piece"))?;
        Ok((generation.unsigned_abs(), counts))
    }

    /// Bad pieces per source (peer, item) of download `id`.
    pub fn bad_pieces(&self, id: i64) -> Result<Vec<(String, String, u32)>> {
        let conn = self.conn.lock();
        super::query_all(
            &conn,
            "SELECT peer, item_id, bad_pieces FROM download_sources WHERE download_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            "read bad pieces",
        )
    }

    /// Every download's sources that sent bad pieces, by download id:
    /// (peer, item, count), in one read (the status of every download).
    pub fn all_bad_pieces(&self) -> Result<BadPieces> {
        let conn = self.conn.lock();
        let rows = super::query_all(
            &conn,
            "SELECT download_id, peer, item_id, bad_pieces FROM download_sources \
             WHERE bad_pieces > 0 ORDER BY download_id, peer, item_id",
            [],
            |r| Ok((r.get::<_, i64>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
            "read bad pieces",
        )?;
        let mut by_id = std::collections::HashMap::<i64, Vec<_>>::new();
        for (id, source) in rows {
            by_id.entry(id).or_default().push(source);
        }
        Ok(by_id)
    }

    /// The sources of download `id` start again with no bad pieces (the
    /// owner's retry or resume).
    pub fn forget_bad_pieces(&self, id: i64) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute("DELETE FROM download_sources WHERE download_id = ?1", [id])
            .map_err(db_err("forget bad pieces"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NewDownload;

    #[test]
    fn a_proof_never_passes_the_durable_count_and_a_bad_piece_takes_both_back() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        let id = reg
            .insert_with_part(
                &NewDownload {
                    stub_name: "a.torrent".into(),
                    info_hash: "ab".repeat(20),
                    peer: "alice".into(),
                    item_id: "i".into(),
                    title: "A".into(),
                    file_name: "a.mkv".into(),
                    part_path: dir.path().join("a.part"),
                    dest_path: dir.path().join("a.mkv"),
                    etag: None,
                    expected_bytes: 100 << 20,
                    sha256: Some("0".repeat(64)),
                    search: None,
                },
                false,
                |_| dir.path().join("a.part"),
            )
            .unwrap();
        let state = Midstate {
            bytes: 16 << 20,
            state: [7; 32],
        };
        assert!(reg.set_progress_proven(id, 1 << 20, &state).is_err());
        reg.set_progress_proven(id, 20 << 20, &state).unwrap();
        let row = reg.get(id).unwrap().unwrap();
        assert_eq!(row.sha256.as_deref(), Some("0".repeat(64).as_str()));
        assert_eq!(
            (row.downloaded_bytes, row.verified_bytes),
            (20 << 20, 16 << 20)
        );
        assert_eq!(row.hash_state, Some(state));
        // Progress below the proof takes the proof away.
        reg.set_progress(id, 10 << 20).unwrap();
        let row = reg.get(id).unwrap().unwrap();
        assert_eq!((row.verified_bytes, row.hash_state), (0, None));
        reg.set_progress_proven(id, 40 << 20, &state).unwrap();
        let alice = [("alice", "i")];
        let (generation, bad) = reg.piece_failed(id, 32 << 20, &alice, "piece 2").unwrap();
        let row = reg.get(id).unwrap().unwrap();
        assert_eq!(
            (row.downloaded_bytes, row.verified_bytes),
            (32 << 20, 16 << 20)
        );
        assert_eq!((row.generation, bad), (generation, vec![1]));
        let both = [("alice", "i"), ("bob", "j")];
        let (_, bad) = reg.piece_failed(id, 32 << 20, &both, "piece 2").unwrap();
        assert_eq!(bad, [2, 1]);
        reg.pause(id).unwrap();
        reg.retry(id, "resumed").unwrap();
        assert_eq!(reg.bad_pieces(id).unwrap(), [], "a retry forgets them");
        reg.set_pieces(id, &[[1; 32], [2; 32]]).unwrap();
        assert_eq!(reg.pieces_of(id).unwrap(), Some(vec![[1; 32], [2; 32]]));
    }
}
