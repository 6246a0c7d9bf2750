//! The latest contact with each peer, whatever asked (a Torznab search, a
//! handshake, a download's look-up or file request): when, what, and
//! whether it went through, with the problem in plain words
//! (`crate::plain`) and its technical text. [`CONTACTS`] is filled by
//! `download/peer`'s `PeerClient` on every exchange and read by the status
//! API, `jack status` and the status page, so "reachable" there is the
//! last thing that happened, never an older probe's answer. A change of
//! state is logged once (a peer refusing our key at warn, with what to
//! fix), not every failed exchange. In memory only: a node that does not
//! run has asked nobody. Must not: keep a key, or do I/O.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::SystemTime;

use parking_lot::Mutex;

/// What the exchange was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Handshake,
    Search,
    /// A download's release look-up or file request.
    Download,
}

impl Exchange {
    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Handshake => "handshake",
            Exchange::Search => "search",
            Exchange::Download => "download",
        }
    }
}

/// One peer's latest contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub at: SystemTime,
    pub exchange: Exchange,
    /// `None`: it went through; else the technical text of what failed.
    pub failure: Option<String>,
}

impl Contact {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Every peer's latest contact, by `[[peers]]` name.
#[derive(Debug, Default)]
pub struct Contacts {
    latest: Mutex<HashMap<String, Contact>>,
}

/// The process's contacts.
pub static CONTACTS: LazyLock<Contacts> = LazyLock::new(Contacts::default);

impl Contacts {
    /// Records an exchange with `peer` that went through.
    pub fn ok(&self, peer: &str, exchange: Exchange) {
        self.record(peer, exchange, None);
    }

    /// Records an exchange with `peer` that failed with `technical`.
    pub fn failed(&self, peer: &str, exchange: Exchange, technical: &str) {
        self.record(peer, exchange, Some(technical.to_string()));
    }

    fn record(&self, peer: &str, exchange: Exchange, failure: Option<String>) {
        let contact = Contact {
            at: SystemTime::now(),
            exchange,
            failure,
        };
        let before = self.latest.lock().insert(peer.to_string(), contact.clone());
        let kind_of = |c: &Contact| c.failure.as_deref().map(crate::plain::kind);
        if before.as_ref().map(kind_of) == Some(kind_of(&contact)) {
            return;
        }
        match &contact.failure {
            None if before.is_some() => {
                log::info!(
                    "peer answers again peer={peer} exchange={}",
                    exchange.as_str()
                )
            }
            None => {}
            Some(technical) => {
                let said = crate::plain::say(peer, technical);
                let key = matches!(
                    crate::plain::kind(technical),
                    Some(crate::plain::Kind::KeyRefused(_))
                );
                if key {
                    log::warn!(
                        "{said} peer={peer} exchange={} detail=\"{technical}\"",
                        exchange.as_str()
                    );
                } else {
                    log::info!(
                        "{said} peer={peer} exchange={} detail=\"{technical}\"",
                        exchange.as_str()
                    );
                }
            }
        }
    }

    /// `peer`'s latest contact since the node started.
    pub fn latest(&self, peer: &str) -> Option<Contact> {
        self.latest.lock().get(peer).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_contact_wins_either_way() {
        let c = Contacts::default();
        assert_eq!(c.latest("alice"), None);
        c.ok("alice", Exchange::Handshake);
        assert!(c.latest("alice").unwrap().ok());
        c.failed(
            "alice",
            Exchange::Download,
            "cannot reach peer alice: io: Connection refused (os error 111)",
        );
        let last = c.latest("alice").unwrap();
        assert!(!last.ok());
        assert_eq!(last.exchange, Exchange::Download);
        c.ok("alice", Exchange::Search);
        assert_eq!(c.latest("alice").unwrap().exchange, Exchange::Search);
        assert!(c.latest("alice").unwrap().ok());
        assert_eq!(c.latest("bob"), None);
    }
}
