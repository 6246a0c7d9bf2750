//! `[database]`: where the SQLite registry lives. This module must not open
//! it (that is `db`).

use std::path::PathBuf;

use super::schema::{Key, section};
use super::walk::{Cx, Table};

section! {
    #[derive(Debug, Clone)]
    pub struct DatabaseConfig {}
    keys {
        pub path: PathBuf = Key::path(
            "path", "data/jack.db",
            "the SQLite download registry, on a local disk",
        ),
    }
    hand []
}

impl Cx<'_> {
    pub(super) fn database(&mut self, top: &mut Table<'_, '_>) -> DatabaseConfig {
        self.section(top, "database", DatabaseConfig::KEYS, DatabaseConfig::walk)
    }
}
