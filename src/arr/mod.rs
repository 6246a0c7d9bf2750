//! The *arr plane: what the operator's own Radarr/Sonarr talk to. The
//! Torznab indexer (search across the peers, stubs handed out), the
//! qBittorrent-compatible download client, and the Radarr/Sonarr client
//! (library source, import scans, `jack arr register`).
//!
//! Every stub this plane hands out or takes in goes through [`stub_for`]
//! and `Downloads::add_stub`, the same path as the watch folder.

pub mod client;
pub mod feed;
pub mod library;
pub mod notify;
pub mod qbit;
pub mod qbit_add;
pub mod qbit_view;
pub mod register;
pub mod torznab;
pub mod xml;

use crate::config::Peer;
use crate::download::peer::{PeerClient, PeerError};
use crate::naming::file_name_problem;
use crate::stub;

/// Why no stub could be built for `peerId:itemId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubFailure {
    /// No `[[peers]]` entry has that name.
    UnknownPeer(String),
    /// The peer says the item does not exist, or sent a release that fails
    /// a check (its size is zero or above the guard, its file name unsafe).
    Gone(String),
    /// The peer could not be asked right now.
    Unavailable(String),
}

impl std::fmt::Display for StubFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StubFailure::UnknownPeer(p) => write!(f, "unknown peer {p:?}"),
            StubFailure::Gone(m) | StubFailure::Unavailable(m) => f.write_str(m),
        }
    }
}

/// The stub (`PROTOCOL.md` §3) for item `item_id` of peer `peer_id`, built
/// from the peer's current `Release` (its title and size now).
pub fn stub_for(
    client: &PeerClient,
    peers: &[Peer],
    peer_id: &str,
    item_id: &str,
    max_file_size: u64,
) -> Result<Vec<u8>, StubFailure> {
    let peer = peers
        .iter()
        .find(|p| p.name == peer_id)
        .ok_or_else(|| StubFailure::UnknownPeer(peer_id.to_string()))?;
    let release = client.release(peer, item_id).map_err(|e| match e {
        PeerError::Transient(m) => StubFailure::Unavailable(m),
        PeerError::Permanent(m) => StubFailure::Gone(m),
    })?;
    if let Some(problem) = file_name_problem(&release.filename) {
        return Err(StubFailure::Gone(format!(
            "peer {peer_id} offers the unsafe file name {:?}: {problem}",
            release.filename
        )));
    }
    if release.size == 0 || release.size > max_file_size {
        return Err(StubFailure::Gone(format!(
            "peer {peer_id} offers {} bytes, outside 1..={max_file_size}",
            release.size
        )));
    }
    Ok(stub::build(peer_id, item_id, &release.title, release.size))
}
