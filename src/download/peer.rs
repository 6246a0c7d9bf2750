//! The client side of the peer API: one `ureq` agent for the process.
//!
//! The agent never follows redirects (the key must not travel to another
//! host), never turns a status into an error (416 and 429 carry headers we
//! need), asks for `identity` encoding, and has connect and per-read
//! timeouts but no total deadline, so a slow but healthy 50 GB transfer is
//! never cut. Only [`PeerClient::search`] (the Torznab fan-out) sets a total
//! deadline on its one exchange, body included, so a peer that trickles
//! bytes cannot keep it past the deadline. Keys go in `X-Api-Key` only.
//!
//! `https://` peers are checked against the bundled Mozilla roots
//! (webpki-roots, so a NAS without a CA bundle verifies too) or, with a
//! `ca_file`, against that file's certificates only: one of them presented
//! exactly is trusted, else they are the roots (`download/pinned`). A
//! certificate that is not trusted is [`certificate_error`]: a permanent
//! failure, never retried.

use std::time::Duration;

use ureq::Agent;
use ureq::http::Response;

use crate::config::Peer;
use crate::download::contact::{CONTACTS, Exchange};
use crate::naming::{AirDate, safe_file_name};

/// What a download needs from a peer's `Release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRelease {
    pub title: String,
    pub filename: String,
    pub size: u64,
    pub etag: Option<String>,
    /// The whole file's SHA-256, lower-case hex (§2.6), when the peer has
    /// it; a malformed one counts as absent.
    pub sha256: Option<String>,
    /// The `/peer/search` query that finds the release on other nodes
    /// (§2.1: `tmdbId`, else `imdbId`, else `tvdbId` with `season` and
    /// `episode`); empty when it has no ids.
    pub ids: Vec<(&'static str, String)>,
}

/// §2.6's search for the same release elsewhere, from a release's ids.
fn search_ids(v: &serde_json::Value) -> Vec<(&'static str, String)> {
    let number = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    if let Some(id) = number("tmdbId") {
        return vec![("tmdbId", id.to_string())];
    }
    if let Some(id) = v.get("imdbId").and_then(|x| x.as_str()) {
        return vec![("imdbId", id.to_string())];
    }
    let Some(tvdb) = number("tvdbId") else {
        return Vec::new();
    };
    let mut q = vec![("tvdbId", tvdb.to_string())];
    for k in ["season", "episode"] {
        if let Some(n) = number(k) {
            q.push((k, n.to_string()));
        }
    }
    q
}

/// `sha256` of a release: 64 hex digits, kept lower-case; anything else
/// is absent.
fn release_sha256(v: &serde_json::Value) -> Option<String> {
    let d = crate::digest::parse_hex(v.get("sha256")?.as_str()?)?;
    Some(crate::digest::hex(&d))
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

/// A release as `/peer/search` lists it (`PROTOCOL.md` §2.2): what the
/// Torznab feed shows of it. Fields a feed does not need are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRelease {
    pub id: String,
    pub title: String,
    pub category: u32,
    pub size: u64,
    pub tmdb_id: Option<u64>,
    /// As the peer sent it (`tt0133093` or `0133093`).
    pub imdb_id: Option<String>,
    pub tvdb_id: Option<u64>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    /// RFC 3339, unchecked.
    pub publish_date: Option<String>,
    /// A daily show's `airDate` (`YYYY-MM-DD`; anything else is absent).
    pub air_date: Option<AirDate>,
    /// The whole file's SHA-256 (lower-case hex), when the peer has it.
    pub sha256: Option<String>,
}

/// Item ids longer than this are not ids (`PROTOCOL.md` §2.2).
const MAX_ITEM_ID: usize = 200;

impl ListedRelease {
    /// One element of a search answer's `items`; `None` when a required
    /// field (`id` of 1 to 200 bytes, a non-empty `title`, a `filename`
    /// [`safe_file_name`] allows, `category`, `size`) is missing or of the
    /// wrong type. An optional field of the
    /// wrong type counts as absent.
    pub fn from_json(v: &serde_json::Value) -> Option<ListedRelease> {
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let number = |k: &str| v.get(k).and_then(|x| x.as_u64());
        let small = |k: &str| number(k).and_then(|n| u32::try_from(n).ok());
        let id = text("id").filter(|id| (1..=MAX_ITEM_ID).contains(&id.len()))?;
        let title = text("title").filter(|t| !t.is_empty())?;
        text("filename").filter(|f| safe_file_name(f))?;
        Some(ListedRelease {
            id,
            title,
            category: small("category")?,
            size: number("size")?,
            tmdb_id: number("tmdbId"),
            imdb_id: text("imdbId"),
            tvdb_id: number("tvdbId"),
            season: small("season"),
            episode: small("episode"),
            publish_date: text("publishDate"),
            air_date: text("airDate").as_deref().and_then(AirDate::parse_iso),
            sha256: release_sha256(v),
        })
    }
}

/// What one peer's `/peer/search` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub releases: Vec<ListedRelease>,
    /// Items left out because they are not valid releases.
    pub skipped: usize,
}

/// Largest JSON body read from a peer.
const MAX_JSON: u64 = 1024 * 1024;
/// The pieces document of a file this large is read whole (1 TiB: far
/// above any size guard a node uses).
const MAX_PIECES_FILE: u64 = 1 << 40;
/// Largest `/peer/search` answer read: about 45,000 releases of ~350
/// bytes. A whole catalogue can be asked for (no id given), so this is
/// larger than [`MAX_JSON`]; a larger answer is a failed search.
const MAX_SEARCH_JSON: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct PeerClient {
    agent: Agent,
    idle: Duration,
}

impl PeerClient {
    /// `idle` bounds connecting and every single read (stall detection).
    pub fn new(idle: Duration) -> PeerClient {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .accept_encoding("identity")
            .user_agent(concat!("jack/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(idle))
            .timeout_per_read(Some(idle))
            .timeout_recv_response(Some(idle))
            .timeout_per_write(Some(idle))
            // Bodies are read in large pieces (fewer reads per GiB); the
            // transfer's own buffer matches it (`transfer::READ_BUFFER`).
            .input_buffer_size(crate::download::transfer::READ_BUFFER)
            .build();
        // Its TCP sockets can be taken over by a transfer (`direct`).
        let agent = crate::download::direct::agent(config);
        PeerClient { agent, idle }
    }

    /// How long one read may wait for bytes (stall detection).
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// `GET url` with the peer's key, its TLS roots (`ca_file`) and `total`
    /// as the deadline of the whole exchange.
    fn get(
        &self,
        peer: &Peer,
        url: &str,
        total: Option<Duration>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut config = self.agent.get(url).config().timeout_global(total);
        if let Some(tls) = &peer.tls {
            config = config.tls_config(tls.clone());
        }
        config.build().header("X-Api-Key", peer.api_key.expose())
    }

    pub fn item_url(peer: &Peer, item_id: &str) -> String {
        format!("{}/peer/items/{}", peer.url, percent_encode(item_id))
    }

    /// `GET url` as JSON of at most `limit` bytes; `total` bounds the whole
    /// exchange, body included. Its outcome is `peer`'s latest contact.
    fn get_json(
        &self,
        peer: &Peer,
        url: &str,
        total: Option<Duration>,
        exchange: Exchange,
        limit: u64,
    ) -> Result<serde_json::Value, PeerError> {
        let answer = self.get_json_once(peer, url, total, limit);
        match &answer {
            Ok(_) => CONTACTS.ok(&peer.name, exchange),
            Err(e) => CONTACTS.failed(&peer.name, exchange, &e.to_string()),
        }
        answer
    }

    fn get_json_once(
        &self,
        peer: &Peer,
        url: &str,
        total: Option<Duration>,
        limit: u64,
    ) -> Result<serde_json::Value, PeerError> {
        let mut resp = self.get(peer, url, total).call().map_err(|e| {
            match certificate_error(&e) {
                // Will not pass by itself, and nothing was sent.
                Some(why) => PeerError::Permanent(format!("peer {}: {why}", peer.name)),
                None => PeerError::Transient(format!("cannot reach peer {}: {e}", peer.name)),
            }
        })?;
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
            .limit(limit)
            .read_to_vec()
            .map_err(|e| {
                PeerError::Transient(format!("cannot read the answer of peer {}: {e}", peer.name))
            })?;
        serde_json::from_slice(&body)
            .map_err(|e| PeerError::Permanent(format!("peer {} sent invalid JSON: {e}", peer.name)))
    }

    /// `GET /handshake`: the peer must speak protocol 0.1.0 or later.
    pub fn handshake(&self, peer: &Peer) -> Result<String, PeerError> {
        let v = self
            .get_json(
                peer,
                &format!("{}/handshake", peer.url),
                None,
                Exchange::Handshake,
                MAX_JSON,
            )
            .map_err(|e| match e {
                PeerError::Permanent(m) if m.ends_with("404") => PeerError::Permanent(format!(
                    "peer {} is not a compatible jack node (no /handshake)",
                    peer.name
                )),
                other => other,
            })?;
        let version = v.get("version").and_then(|v| v.as_str()).unwrap_or("");
        match parse_version(version) {
            Some(ver) if ver >= (0, 1, 0) => Ok(version.to_string()),
            _ => Err(PeerError::Permanent(format!(
                "peer {} speaks protocol version {version:?}, not 0.1.0 or later",
                peer.name
            ))),
        }
    }

    /// `GET /peer/items/{id}`.
    pub fn release(&self, peer: &Peer, item_id: &str) -> Result<RemoteRelease, PeerError> {
        let v = self.get_json(
            peer,
            &Self::item_url(peer, item_id),
            None,
            Exchange::Download,
            MAX_JSON,
        )?;
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
            sha256: release_sha256(&v),
            ids: search_ids(&v),
        })
    }

    /// `GET /peer/items/{id}/pieces` (§2.6): the digests of the peer's
    /// current version, checked (`Pieces::from_json`); `Ok(None)` when the
    /// peer has none (`404`: not computed yet, or an older node).
    pub fn pieces(
        &self,
        peer: &Peer,
        item_id: &str,
    ) -> Result<Option<crate::digest::Pieces>, PeerError> {
        let url = format!("{}/pieces", Self::item_url(peer, item_id));
        // 64 hex digits and their quotes per piece, for the largest file.
        let limit = MAX_JSON.max(crate::digest::piece_count(MAX_PIECES_FILE) * 70);
        let v = match self.get_json(peer, &url, None, Exchange::Download, limit) {
            Ok(v) => v,
            Err(PeerError::Permanent(e)) if e.ends_with("answered 404") => return Ok(None),
            Err(e) => return Err(e),
        };
        crate::digest::Pieces::from_json(&v)
            .map(Some)
            .map_err(|why| {
                PeerError::Permanent(format!(
                    "peer {} sent piece digests that do not hold: {why}",
                    peer.name
                ))
            })
    }

    /// `GET /peer/search` with `query` (§2.1 names: `tmdbId`, `imdbId`,
    /// `tvdbId`, `season`, `episode`), the whole exchange bounded by
    /// `deadline`: a thread calling this returns within about `deadline`
    /// whatever the peer does.
    pub fn search(
        &self,
        peer: &Peer,
        query: &[(&str, String)],
        deadline: Duration,
    ) -> Result<Listing, PeerError> {
        let mut url = format!("{}/peer/search", peer.url);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(&percent_encode(value));
        }
        let v = self.get_json(
            peer,
            &url,
            Some(deadline),
            Exchange::Search,
            MAX_SEARCH_JSON,
        )?;
        let items = v.get("items").and_then(|i| i.as_array()).ok_or_else(|| {
            PeerError::Permanent(format!(
                "peer {} sent a search answer without an items list",
                peer.name
            ))
        })?;
        let releases: Vec<ListedRelease> =
            items.iter().filter_map(ListedRelease::from_json).collect();
        Ok(Listing {
            skipped: items.len() - releases.len(),
            releases,
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
        self.file_range(peer, item_id, (offset, None), etag)
    }

    /// `GET /peer/items/{id}/file` for bytes `first..=last` (`last` `None`:
    /// to the end), with `If-Range` when an ETag is known.
    pub fn file_range(
        &self,
        peer: &Peer,
        item_id: &str,
        (first, last): (u64, Option<u64>),
        etag: Option<&str>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let url = format!("{}/file", Self::item_url(peer, item_id));
        let range = match last {
            Some(last) => format!("bytes={first}-{last}"),
            None => format!("bytes={first}-"),
        };
        let mut req = self
            .get(peer, &url, None)
            .header("Accept-Encoding", "identity")
            .header("Range", range);
        if let Some(tag) = etag {
            req = req.header("If-Range", tag);
        }
        let answer = req.call();
        match &answer {
            Ok(resp) => match resp.status().as_u16() {
                200 | 206 | 416 => CONTACTS.ok(&peer.name, Exchange::Download),
                status => CONTACTS.failed(
                    &peer.name,
                    Exchange::Download,
                    &format!("peer {} answered {status}", peer.name),
                ),
            },
            Err(e) => CONTACTS.failed(
                &peer.name,
                Exchange::Download,
                &format!("cannot reach peer {}: {e}", peer.name),
            ),
        }
        answer
    }
}

/// `certificate ...`: why the peer's TLS certificate was refused, when that
/// is what `e` is (the handshake failed before any request was sent).
pub fn certificate_error(e: &ureq::Error) -> Option<String> {
    let tls = match e {
        ureq::Error::Rustls(t) => t,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    match tls {
        rustls::Error::InvalidCertificate(_) => Some(format!("certificate not trusted: {tls}")),
        _ => None,
    }
}

/// `MAJOR.MINOR.PATCH`, compared numerically.
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(crate::lexical::decimal::<u64>);
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
        assert_eq!(parse_version("+1.2.3"), None);
        assert_eq!(parse_version("1.+2.3"), None);
        assert_eq!(parse_version("1.2. 3"), None);
    }

    #[test]
    fn listed_releases_keep_valid_items_only() {
        use serde_json::json;
        let full = json!({
            "id": "lib1:movie:4f2a", "title": "The.Matrix.1999", "filename": "m.mkv",
            "category": 2000, "size": 8_547_483_648u64, "tmdbId": 603,
            "imdbId": "tt0133093", "tvdbId": 81189, "season": 1, "episode": 2,
            "publishDate": "2026-01-02T03:04:05Z", "quality": {"name": "Bluray-1080p"},
            "airDate": "2011-03-15"
        });
        assert_eq!(
            ListedRelease::from_json(&full),
            Some(ListedRelease {
                id: "lib1:movie:4f2a".into(),
                title: "The.Matrix.1999".into(),
                category: 2000,
                size: 8_547_483_648,
                tmdb_id: Some(603),
                imdb_id: Some("tt0133093".into()),
                tvdb_id: Some(81189),
                season: Some(1),
                episode: Some(2),
                publish_date: Some("2026-01-02T03:04:05Z".into()),
                air_date: AirDate::new(2011, 3, 15),
                sha256: None,
            })
        );
        let minimal =
            json!({"id": "x", "title": "T", "filename": "x.mkv", "category": 5000, "size": 0});
        let r = ListedRelease::from_json(&minimal).unwrap();
        assert_eq!((r.tmdb_id, r.imdb_id, r.season), (None, None, None));
        let wrong_optional = json!({"id": "x", "title": "T", "filename": "x.mkv", "category": 2000, "size": 1,
            "tmdbId": "603", "season": -1, "episode": 4_294_967_296u64, "imdbId": 7,
            "airDate": "2011-02-30"});
        let r = ListedRelease::from_json(&wrong_optional).unwrap();
        assert_eq!(
            (r.tmdb_id, r.season, r.episode, r.imdb_id, r.air_date),
            (None, None, None, None, None)
        );
        let rejected = [
            json!({"title": "T", "filename": "x.mkv", "category": 2000, "size": 1}),
            json!({"id": "", "title": "T", "filename": "x.mkv", "category": 2000, "size": 1}),
            json!({"id": "a".repeat(201), "title": "T", "filename": "x.mkv", "category": 2000, "size": 1}),
            json!({"id": 5, "title": "T", "filename": "x.mkv", "category": 2000, "size": 1}),
            json!({"id": "x", "title": "", "filename": "x.mkv", "category": 2000, "size": 1}),
            json!({"id": "x", "filename": "x.mkv", "category": 2000, "size": 1}),
            json!({"id": "x", "title": "T", "filename": "x.mkv", "size": 1}),
            json!({"id": "x", "title": "T", "filename": "x.mkv", "category": "2000", "size": 1}),
            json!({"id": "x", "title": "T", "filename": "x.mkv", "category": 2000, "size": -1}),
            json!({"id": "x", "title": "T", "filename": "x.mkv", "category": 2000, "size": 1.5}),
            json!({"id": "x", "title": "T", "filename": "x.mkv", "category": 2000}),
            json!({"id": "x", "title": "T", "category": 2000, "size": 1}),
            json!({"id": "x", "title": "T", "filename": 7, "category": 2000, "size": 1}),
            json!({"id": "x", "title": "T", "filename": ".hidden.mkv", "category": 2000, "size": 1}),
            json!({"id": "x", "title": "T", "filename": "  spaced.mkv  ", "category": 2000, "size": 1}),
            json!({"id": "x", "title": "T", "filename": ".jack-x.partial~", "category": 2000, "size": 1}),
            json!({"id": "x", "title": "T", "filename": "a/b.mkv", "category": 2000, "size": 1}),
            json!("not an object"),
        ];
        for v in rejected {
            assert_eq!(ListedRelease::from_json(&v), None, "{v}");
        }
        let longest = json!({"id": "a".repeat(200), "title": "T", "filename": "x.mkv",
            "category": 2000, "size": 1});
        assert!(ListedRelease::from_json(&longest).is_some());
    }

    #[test]
    fn ids_are_encoded() {
        assert_eq!(
            percent_encode("lib1:movie:4f/2 é"),
            "lib1%3Amovie%3A4f%2F2%20%C3%A9"
        );
    }
}
