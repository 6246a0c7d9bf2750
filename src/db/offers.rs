//! When this node first offered each file it serves (`PROTOCOL.md` §2.2
//! `publishDate`), kept so the date survives restarts and rescans: one row
//! per catalogue item, with the version it was offered as.
//!
//! Part of `db`: SQL only, under the same rules (the mutex held only around
//! SQL, one transaction per change). The catalogue thread decides what
//! changes (`serve::catalogue`); nothing here is asked on a request's path.

use rusqlite::params;

use super::{Registry, db_err, query_all, to_i64};
use crate::error::Result;

/// One item as the registry remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The hash part of the item's id.
    pub item: u64,
    /// The version offered: size in bytes and modification time in whole
    /// seconds since the epoch.
    pub size: u64,
    pub modified: u64,
    /// When a scan first found this version, seconds since the epoch.
    pub first_offered: u64,
    /// Since when scans no longer find the item, seconds since the epoch.
    pub gone_since: Option<u64>,
}

/// What one scan changes, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferChanges {
    /// Rows written whole (a new item, a new version, an item back).
    pub offered: Vec<Offer>,
    /// Items a scan no longer found, with the time it noticed.
    pub gone: Vec<(u64, u64)>,
    /// Items gone long enough to forget.
    pub forget: Vec<u64>,
}

impl OfferChanges {
    pub fn is_empty(&self) -> bool {
        self.offered.is_empty() && self.gone.is_empty() && self.forget.is_empty()
    }
}

/// Item hashes are stored as SQLite's signed integers, bit for bit.
fn item_key(item: u64) -> i64 {
    item.cast_signed()
}

fn secs(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Registry {
    /// Every remembered item.
    pub fn offers(&self) -> Result<Vec<Offer>> {
        let conn = self.conn.lock();
        query_all(
            &conn,
            "SELECT item, size, modified, first_offered, gone_since FROM offers",
            [],
            |r| {
                Ok(Offer {
                    item: r.get::<_, i64>(0)?.cast_unsigned(),
                    size: secs(r.get(1)?),
                    modified: secs(r.get(2)?),
                    first_offered: secs(r.get(3)?),
                    gone_since: r.get::<_, Option<i64>>(4)?.map(secs),
                })
            },
            "read offered files",
        )
    }

    /// Records one scan's changes, all or nothing.
    pub fn record_offers(&self, changes: &OfferChanges) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err("record offered files"))?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO offers (item, size, modified, first_offered, gone_since) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (item) DO UPDATE SET \
                     size = ?2, modified = ?3, first_offered = ?4, gone_since = ?5",
                )
                .map_err(db_err("record offered files"))?;
            for o in &changes.offered {
                put.execute(params![
                    item_key(o.item),
                    to_i64(o.size)?,
                    to_i64(o.modified)?,
                    to_i64(o.first_offered)?,
                    o.gone_since.map(to_i64).transpose()?,
                ])
                .map_err(db_err("record offered files"))?;
            }
            let mut gone = tx
                .prepare_cached("UPDATE offers SET gone_since = ?2 WHERE item = ?1")
                .map_err(db_err("record offered files"))?;
            for &(item, at) in &changes.gone {
                gone.execute(params![item_key(item), to_i64(at)?])
                    .map_err(db_err("record offered files"))?;
            }
            let mut forget = tx
                .prepare_cached("DELETE FROM offers WHERE item = ?1")
                .map_err(db_err("record offered files"))?;
            for &item in &changes.forget {
                forget
                    .execute([item_key(item)])
                    .map_err(db_err("record offered files"))?;
            }
        }
        tx.commit().map_err(db_err("record offered files"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("jack.db")).unwrap();
        assert_eq!(reg.offers().unwrap(), []);
        let offer = |item, first_offered| Offer {
            item,
            size: 8_547_483_648,
            modified: 1_000,
            first_offered,
            gone_since: None,
        };
        // Hashes above i64::MAX are kept bit for bit.
        let (a, b) = (u64::MAX - 1, 7);
        reg.record_offers(&OfferChanges {
            offered: vec![offer(a, 10), offer(b, 20)],
            ..OfferChanges::default()
        })
        .unwrap();
        reg.record_offers(&OfferChanges {
            offered: vec![offer(b, 30)],
            gone: vec![(a, 40)],
            ..OfferChanges::default()
        })
        .unwrap();
        let mut all = reg.offers().unwrap();
        all.sort_by_key(|o| o.item);
        let gone_a = Offer {
            gone_since: Some(40),
            ..offer(a, 10)
        };
        assert_eq!(all, [offer(b, 30), gone_a]);
        reg.record_offers(&OfferChanges {
            forget: vec![a],
            ..OfferChanges::default()
        })
        .unwrap();
        assert_eq!(reg.offers().unwrap(), [offer(b, 30)]);
    }
}
