//! What a download holds of its 16 MiB pieces (`PROTOCOL.md` §2.6), as
//! the status, the page and the qBittorrent API show it: how many pieces
//! the file has, how many are proven against the source's digest, how
//! many are whole on disk, and the state of each piece.
//!
//! Pure: a row's figures in, counts out. Must not read the registry or
//! the disk; must not be used to decide anything about the bytes (the
//! verifier does).

use serde::Serialize;

use crate::digest::{PIECE_SIZE, piece_count};

/// The pieces of a download whose version has a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    /// Hashed and checked against the digest.
    pub verified: u64,
    /// Whole on disk (durable), proven or not.
    pub received: u64,
}

/// What a row says of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The version's size.
    pub expected: u64,
    /// Durable bytes of the `.part`.
    pub durable: u64,
    /// Bytes proven (a piece boundary or the end, never past `durable`).
    pub verified: u64,
    /// Handed off: a download with a digest passed its whole-file check.
    pub completed: bool,
}

impl Held {
    /// The whole pieces of the first `bytes` (the last, short one counts
    /// once `bytes` reach the end).
    fn whole(&self, bytes: u64) -> u64 {
        if bytes >= self.expected {
            piece_count(self.expected)
        } else {
            bytes / PIECE_SIZE
        }
    }

    /// The counts of a download with a digest (`None` without one: its
    /// pieces are not checked, so none is told verified).
    pub fn counts(&self, has_digest: bool) -> Option<Counts> {
        if !has_digest {
            return None;
        }
        let total = piece_count(self.expected);
        if self.completed {
            return Some(Counts {
                total,
                verified: total,
                received: total,
            });
        }
        let received = self.whole(self.durable);
        Some(Counts {
            total,
            verified: self.whole(self.verified.min(self.durable)).min(received),
            received,
        })
    }
}

/// Not yet received (`torrents/pieceStates`, as qBittorrent).
pub const MISSING: u8 = 0;
/// Coming in, or received and not yet proven.
pub const DOWNLOADING: u8 = 1;
/// Proven (with a digest), or whole on disk (without one).
pub const HAVE: u8 = 2;

/// The state of every piece: the proven ones [`HAVE`], then those
/// received but not proven and, while it runs (`live`: its bytes now), the
/// one coming in [`DOWNLOADING`], the rest [`MISSING`]. Without a digest a
/// whole piece is [`HAVE`].
pub fn states(held: &Held, has_digest: bool, live: Option<u64>) -> Vec<u8> {
    let total = piece_count(held.expected);
    let (have, received) = match held.counts(has_digest) {
        Some(c) => (c.verified, c.received),
        None if held.completed => (total, total),
        None => {
            let r = held.whole(held.durable);
            (r, r)
        }
    };
    // Up to the piece the live bytes are in, while not all are there.
    let coming = match live {
        Some(b) if !held.completed && b < held.expected => {
            (held.whole(b) + 1).max(received).min(total)
        }
        _ => received,
    };
    (0..total)
        .map(|i| match i {
            i if i < have => HAVE,
            i if i < coming => DOWNLOADING,
            _ => MISSING,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PIECE_SIZE;

    fn held(expected: u64, durable: u64, verified: u64, completed: bool) -> Held {
        Held {
            expected,
            durable,
            verified,
            completed,
        }
    }

    #[test]
    fn counts_of_whole_pieces() {
        let c = |h: Held| h.counts(true).map(|c| (c.total, c.verified, c.received));
        // 12 pieces, the last short.
        let size = 11 * P + 5;
        let cases = [
            (held(size, 0, 0, false), (12, 0, 0)),
            (held(size, 7 * P + 3, 5 * P, false), (12, 5, 7)),
            (held(size, size, 11 * P, false), (12, 11, 12)),
            (held(size, size, size, false), (12, 12, 12)),
            (held(size, 3 * P, 0, true), (12, 12, 12)),
            // A proof is never told past the durable bytes.
            (held(size, P, 2 * P, false), (12, 1, 1)),
            (held(0, 0, 0, false), (0, 0, 0)),
            (held(5, 5, 5, false), (1, 1, 1)),
            (held(5, 4, 0, false), (1, 0, 0)),
        ];
        for (h, want) in cases {
            assert_eq!(c(h), Some(want), "{h:?}");
        }
        assert_eq!(held(size, size, 0, true).counts(false), None);
    }

    #[test]
    fn piece_states_as_qbittorrent_tells_them() {
        let size = 4 * P + 1; // five pieces
        // Two proven, three received, the fourth coming in.
        let h = held(size, 3 * P, 2 * P, false);
        assert_eq!(states(&h, true, Some(3 * P + 9)), [2, 2, 1, 1, 0]);
        // Not running: nothing is coming in.
        assert_eq!(states(&h, true, None), [2, 2, 1, 0, 0]);
        // Without a digest a whole piece is had.
        assert_eq!(states(&h, false, Some(3 * P + 9)), [2, 2, 2, 1, 0]);
        assert_eq!(states(&held(size, 0, 0, true), true, None), [2; 5]);
        assert_eq!(states(&held(size, 0, 0, true), false, None), [2; 5]);
        assert_eq!(
            states(&held(size, 0, 0, false), true, Some(0)),
            [1, 0, 0, 0, 0]
        );
        // All received, the last proof to come.
        assert_eq!(
            states(&held(size, size, 4 * P, false), true, Some(size)),
            [2, 2, 2, 2, 1]
        );
        assert!(states(&held(0, 0, 0, false), true, Some(0)).is_empty());
    }
}
