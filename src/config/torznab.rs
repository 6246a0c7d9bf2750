//! `[torznab]`: the indexer Radarr/Sonarr search. This module must not ask
//! a peer (that is `arr/torznab`).

use std::time::Duration;

use super::schema::{Key, section};
use super::walk::{Cx, Table};

section! {
    #[derive(Debug, Clone)]
    pub struct TorznabConfig {}
    keys {
        /// The longest a search waits for one peer's answer.
        pub peer_timeout: Duration = Key::millis(
            "peer_timeout_ms", 10_000, 100..=600_000,
            "the longest a search waits for one peer's answer",
        ),
    }
    hand []
}

impl Cx<'_> {
    pub(super) fn torznab(&mut self, top: &mut Table<'_, '_>) -> TorznabConfig {
        self.section(top, "torznab", TorznabConfig::KEYS, TorznabConfig::walk)
    }
}
