//! The client side of the peer API: one `ureq` agent for the process.
//!
//! The agent never follows redirects (the key must not travel to another
//! host), never turns a status into an error (416 and 429 carry headers we
//! need), asks for `identity` encoding, and has connect and per-read
//! timeouts but no total deadline, so a slow but healthy 50 GB transfer is
//! never cut. Keys go in `X-Api-Key` only.

use std::time::Duration;

use ureq::Agent;
use ureq::http::Response;

use crate::config::Peer;

/// What a download needs from a peer's `Release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRelease {
    pub title: String,
    pub filename: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// A failed exchange with a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// Worth trying again later (network, timeout, 5xx, 429).
    Transient(String),
    /// Will not get better by itself (401, 404, incompatible peer, bad data).
    Permanent(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Transient(m) | PeerError::Permanent(m) => f.write_str(m),
        }
    }
}

/// Largest JSON body read from a peer.
const MAX_JSON: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct PeerClient {
    agent: Agent,
}

impl PeerClient {
    /// `idle` bounds connecting and every single read (stall detection).
    pub fn new(idle: Duration) -> PeerClient {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .accept_encoding("identity")
            .user_agent(concat!("jack/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(idle))
            .timeout_per_read(Some(idle))
            .timeout_recv_response(Some(idle))
            .timeout_per_write(Some(idle))
            .build()
            .into();
        PeerClient { agent }
    }

    pub fn item_url(peer: &Peer, item_id: &str) -> String {
        format!("{}/peer/items/{}", peer.url, percent_encode(item_id))
    }

    fn get_json(&self, peer: &Peer, url: &str) -> Result<serde_json::Value, PeerError> {
        let mut resp = self
            .agent
            .get(url)
            .header("X-Api-Key", peer.api_key.expose())
            .call()
            .map_err(|e| PeerError::Transient(format!("cannot reach peer {}: {e}", peer.name)))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            429 | 500..=599 => {
                return Err(PeerError::Transient(format!(
                    "peer {} answered {status}",
                    peer.name
                )));
            }
            _ => {
                return Err(PeerError::Permanent(format!(
                    "peer {} answered {status}",
                    peer.name
                )));
            }
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|e| {
                PeerError::Transient(format!("cannot read the answer of peer {}: {e}", peer.name))
            })?;
        serde_json::from_slice(&body)
            .map_err(|e| PeerError::Permanent(format!("peer {} sent invalid JSON: {e}", peer.name)))
    }

    /// `GET /handshake`: the peer must speak protocol 0.1.0 or later.
    pub fn handshake(&self, peer: &Peer) -> Result<(), PeerError> {
        let v = self
            .get_json(peer, &format!("{}/handshake", peer.url))
            .map_err(|e| match e {
                PeerError::Permanent(m) if m.ends_with("404") => PeerError::Permanent(format!(
                    "peer {} is not a compatible jack node (no /handshake)",
                    peer.name
                )),
                other => other,
            })?;
        let version = v.get("version").and_then(|v| v.as_str()).unwrap_or("");
        match parse_version(version) {
            Some(ver) if ver >= (0, 1, 0) => Ok(()),
            _ => Err(PeerError::Permanent(format!(
                "peer {} speaks protocol version {version:?}, not 0.1.0 or later",
                peer.name
            ))),
        }
    }

    /// `GET /peer/items/{id}`.
    pub fn release(&self, peer: &Peer, item_id: &str) -> Result<RemoteRelease, PeerError> {
        let v = self.get_json(peer, &Self::item_url(peer, item_id))?;
        let bad = |what: &str| {
            PeerError::Permanent(format!(
                "peer {} sent a release without a valid {what}",
                peer.name
            ))
        };
        Ok(RemoteRelease {
            title: v
                .get("title")
                .and_then(|x| x.as_str())
                .ok_or_else(|| bad("title"))?
                .to_string(),
            filename: v
                .get("filename")
                .and_then(|x| x.as_str())
                .ok_or_else(|| bad("filename"))?
                .to_string(),
            size: v
                .get("size")
                .and_then(|x| x.as_u64())
                .ok_or_else(|| bad("size"))?,
            etag: v.get("etag").and_then(|x| x.as_str()).map(str::to_string),
        })
    }

    /// `GET /peer/items/{id}/file` from `offset`, with `If-Range` when an
    /// ETag is known. The response comes back whatever its status.
    pub fn file(
        &self,
        peer: &Peer,
        item_id: &str,
        offset: u64,
        etag: Option<&str>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut req = self
            .agent
            .get(format!("{}/file", Self::item_url(peer, item_id)))
            .header("X-Api-Key", peer.api_key.expose())
            .header("Accept-Encoding", "identity")
            .header("Range", format!("bytes={offset}-"));
        if let Some(tag) = etag {
            req = req.header("If-Range", tag);
        }
        req.call()
    }
}

/// `MAJOR.MINOR.PATCH`, compared numerically.
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    let parsed = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(parsed)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.1.0"), Some((0, 1, 0)));
        assert_eq!(parse_version("1.10.2"), Some((1, 10, 2)));
        assert!(parse_version("0.1.0").unwrap() < parse_version("0.10.0").unwrap());
        assert_eq!(parse_version("0.1"), None);
        assert_eq!(parse_version("0.1.0.1"), None);
        assert_eq!(parse_version("v0.1.0"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn ids_are_encoded() {
        assert_eq!(
            percent_encode("lib1:movie:4f/2 é"),
            "lib1%3Amovie%3A4f%2F2%20%C3%A9"
        );
    }
}
