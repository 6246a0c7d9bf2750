//! Routes of the node's HTTP API: `/ping` and the peer API (`PROTOCOL.md`
//! §1 and §2).
//!
//! Translates requests into calls on the catalogue and results into JSON
//! or file replies. Authentication is checked here, before anything under
//! `/peer/` or `/handshake` is looked at, with one uniform 401 (with
//! `WWW-Authenticate`); every answer there carries `Cache-Control: private`.
//! Holds no state of its own beyond shared handles, and never touches SQL.

use std::sync::Arc;

use parking_lot::RwLock;
use sha2::Digest;
use tiny_http::{Method, Request};

use crate::config::{KeyCheck, PeerKey, Secret, diff_by_name};
use crate::http::gate::{Gate, Verdict, constant_time_eq};
use crate::http::request::{
    content_disposition, header, header_list, method_not_allowed, not_found, percent_decode,
    query_pairs, split_url,
};
use crate::http::server::{Handler, Reply};
use crate::metrics::AuthRoute;
use crate::naming::imdb_number;
use crate::serve::catalogue::{Catalogue, Query, etag, tag};
use crate::serve::range::{self, Conditions, Precondition, Selection};

/// The peer protocol version this node speaks.
pub const PROTOCOL_VERSION: &str = "0.1.0";

/// Item ids longer than this are not looked up (`PROTOCOL.md` §2.2).
const MAX_ID_LEN: usize = 200;

/// The keys that may call the peer API: the node's own and the friends'
/// (`[[server.peer_keys]]`), which a `SIGHUP` replaces whole.
#[derive(Debug)]
pub struct KeyRing {
    node: Secret,
    peers: RwLock<Arc<Vec<PeerKey>>>,
}

impl KeyRing {
    pub fn new(node: Secret, peers: Vec<PeerKey>) -> KeyRing {
        KeyRing {
            node,
            peers: RwLock::new(Arc::new(peers)),
        }
    }

    /// Swaps in `peers` and says what changed, by name only:
    /// `(added, removed, changed)`.
    pub fn replace(&self, peers: Vec<PeerKey>) -> (Vec<String>, Vec<String>, Vec<String>) {
        let old = self.peers.read().clone();
        let diff = diff_by_name(&old, &peers, |k| &k.name, |a, b| a.check.same(&b.check));
        *self.peers.write() = Arc::new(peers);
        diff
    }

    /// The owner of `presented`: `node` for the node's own key, else the
    /// friend's name. Every key is compared, so the time taken does not
    /// tell which matched.
    pub fn owner(&self, presented: &[u8]) -> Option<String> {
        let mut owner = None;
        if constant_time_eq(presented, self.node.expose().as_bytes()) {
            owner = Some("node".to_string());
        }
        let peers = self.peers.read().clone();
        let digest: [u8; 32] = sha2::Sha256::digest(presented).into();
        for k in peers.iter() {
            let ok = match &k.check {
                KeyCheck::Key(s) => constant_time_eq(presented, s.expose().as_bytes()),
                KeyCheck::Sha256(d) => constant_time_eq(&digest, d),
            };
            if ok && owner.is_none() {
                owner = Some(k.name.clone());
            }
        }
        owner
    }
}

#[derive(Debug)]
pub struct Api {
    keys: Arc<KeyRing>,
    catalogue: Arc<Catalogue>,
    gate: Arc<Gate>,
}

impl Api {
    pub fn new(keys: Arc<KeyRing>, catalogue: Arc<Catalogue>, gate: Arc<Gate>) -> Api {
        Api {
            keys,
            catalogue,
            gate,
        }
    }

    fn route(&self, req: &Request) -> Reply {
        let (path, query) = split_url(req.url());
        let method = req.method();
        if path == "/ping" {
            return match method {
                Method::Get | Method::Head => {
                    Reply::json(200, &serde_json::json!({"status": "OK"}))
                }
                _ => method_not_allowed("GET, HEAD"),
            };
        }
        // A person who opens the node's address in a browser gets the
        // status page; a program asking `/` still gets JSON.
        let browser = header(req, "Accept").is_some_and(|a| a.contains("text/html"));
        if path == "/" && browser && matches!(method, Method::Get | Method::Head) {
            return Reply::empty(303).with_header("Location", "/ui/");
        }
        if path != "/handshake" && !path.starts_with("/peer/") {
            return not_found();
        }
        // Key-protected answers, 401s included, are never for shared caches.
        self.peer(req, path, query)
            .with_header("Cache-Control", "private")
    }

    /// `/handshake` and `/peer/*`: the key first, then the route.
    fn peer(&self, req: &Request, path: &str, query: &str) -> Reply {
        let method = req.method();
        // `X-Api-Key` first, else `Authorization: Bearer`; never the query.
        let owner = match self
            .gate
            .key(AuthRoute::Peer, req, |k| self.keys.owner(k.as_bytes()))
        {
            Verdict::Pass(owner) => owner,
            Verdict::Busy(wait) => return crate::http::gate::too_many(wait),
            Verdict::Missing | Verdict::Wrong => {
                return Reply::error(401, "UNAUTHORIZED", "Unauthorized")
                    .with_header("WWW-Authenticate", "Bearer realm=\"jack\"");
            }
        };
        log::debug!("peer request caller={owner} method={method} path={path}");
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match segments.as_slice() {
            ["handshake"] => get_only(method, || {
                Reply::json(
                    200,
                    &serde_json::json!({
                        "name": "jack",
                        "version": PROTOCOL_VERSION,
                        "implementation": format!("jack-rs/{}", env!("CARGO_PKG_VERSION")),
                        "features": ["ranges", "etag", "bearer", "sha256"],
                    }),
                )
            }),
            ["peer", "search"] => get_only(method, || self.search(query)),
            ["peer", "items", id] => get_only(method, || match decode_id(id) {
                Some(id) => self.item(&id),
                None => not_found(),
            }),
            ["peer", "items", id, "pieces"] => get_only(method, || match decode_id(id) {
                Some(id) => self.pieces(&id),
                None => not_found(),
            }),
            ["peer", "items", id, "file"] => match method {
                Method::Get | Method::Head => match decode_id(id) {
                    Some(id) => {
                        let reply = self.file(req, &id).streamed_for(&owner);
                        // Who fetches what, by the key's owner (never the key).
                        log::info!(
                            "peer file request caller={owner} id={id:?} status={}",
                            reply.status
                        );
                        reply
                    }
                    None => not_found(),
                },
                _ => method_not_allowed("GET, HEAD"),
            },
            _ => not_found(),
        }
    }

    fn search(&self, query: &str) -> Reply {
        let q = match parse_search(query) {
            Ok(q) => q,
            Err(key) => {
                return Reply::error(400, "BAD_REQUEST", &format!("{key} must be a number"));
            }
        };
        let items: Vec<serde_json::Value> = self
            .catalogue
            .search(&q)
            .iter()
            .map(|r| r.to_json())
            .collect();
        Reply::json(200, &serde_json::json!({ "items": items }))
    }

    /// `GET /peer/items/{id}`: the release, with the size and ETag the
    /// file endpoint serves right now.
    fn item(&self, id: &str) -> Reply {
        match self.catalogue.get(id) {
            Ok(Some(release)) => Reply::json(200, &release.to_json()),
            Ok(None) => not_found(),
            Err(e) => cannot_read(id, &e),
        }
    }

    /// `GET /peer/items/{id}/pieces` (§2.6): the digests of the version the
    /// file endpoint serves now, or 404 while the hasher has none for it.
    fn pieces(&self, id: &str) -> Reply {
        let meta = match self.catalogue.stat(id) {
            Ok(Some(m)) => m,
            Ok(None) => return not_found(),
            Err(e) => return cannot_read(id, &e),
        };
        let digests = self.catalogue.digests().get(&tag(&meta));
        match digests.filter(|p| p.size == meta.len()) {
            Some(p) => Reply::json(200, &p.to_json(Some(&etag(&meta)))),
            None => Reply::error(
                404,
                "NOT_FOUND",
                "No digest of this file yet: it has not been hashed since it last changed",
            ),
        }
    }

    /// `GET`/`HEAD /peer/items/{id}/file`: the preconditions, then the
    /// byte-range table of §2.3.
    fn file(&self, req: &Request, id: &str) -> Reply {
        let opened = match self.catalogue.open(id) {
            Ok(Some(f)) => f,
            Ok(None) => return not_found(),
            Err(e) => return cannot_read(id, &e),
        };
        let size = opened.size;
        let last_modified = httpdate::fmt_http_date(opened.modified);
        let validators = |mut r: Reply| {
            r.headers.push(("ETag".into(), opened.etag.clone()));
            r.headers
                .push(("Last-Modified".into(), last_modified.clone()));
            r
        };
        let (if_match, if_none_match) = (
            header_list(req, "If-Match"),
            header_list(req, "If-None-Match"),
        );
        let (if_unmodified_since, if_modified_since) = (
            header_list(req, "If-Unmodified-Since"),
            header_list(req, "If-Modified-Since"),
        );
        let conditions = Conditions {
            if_match: if_match.as_deref(),
            if_unmodified_since: if_unmodified_since.as_deref(),
            if_none_match: if_none_match.as_deref(),
            if_modified_since: if_modified_since.as_deref(),
        };
        match range::preconditions(&conditions, &opened.etag, opened.modified) {
            Precondition::Proceed => {}
            Precondition::NotModified => return validators(Reply::not_modified()),
            Precondition::Failed => return Reply::empty(412),
        }
        // More than one `Range` field is ignored, as one field with two
        // ranges is. Counted, not joined: joined, `bytes=0-1` and an empty
        // field would read as the one range `bytes=0-1, `.
        let range_fields = req
            .headers()
            .iter()
            .filter(|h| h.field.equiv("Range"))
            .count();
        let mut range_header =
            header(req, "Range").filter(|_| range_fields == 1 && *req.method() == Method::Get);
        if let Some(if_range) = header(req, "If-Range")
            && !range::if_range_allows(if_range, &opened.etag, &last_modified)
        {
            range_header = None;
        }
        let common = |mut r: Reply| {
            r.headers.push(("Accept-Ranges".into(), "bytes".into()));
            r.headers
                .push(("Content-Type".into(), "application/octet-stream".into()));
            r.headers.push((
                "Content-Disposition".into(),
                content_disposition(&opened.filename),
            ));
            validators(r)
        };
        // The digest of exactly the version this descriptor reads (RFC
        // 9530: of the whole representation, on a 206 too).
        let digest = |r: Reply| match &opened.sha256 {
            Some(d) => r.with_header("Repr-Digest", &crate::digest::repr_digest(d)),
            None => r,
        };
        match range::select(range_header, size) {
            Selection::Full => digest(common(Reply::file(200, opened.file, 0, size))),
            Selection::Partial { first, last } => digest(common(Reply::file(
                206,
                opened.file,
                first,
                last - first + 1,
            )))
            .with_header("Content-Range", &range::content_range(first, last, size)),
            Selection::Unsatisfiable => common(Reply::empty(416))
                .with_header("Content-Range", &range::unsatisfied_range(size)),
        }
    }
}

impl Handler for Api {
    fn handle(&self, req: &mut Request) -> Reply {
        self.route(req)
    }
}

/// The parameters of `/peer/search` (§2.1); `Err(key)` for a number that
/// is not one. Unknown parameters are ignored.
fn parse_search(query: &str) -> Result<Query, String> {
    fn number<T: std::str::FromStr>(k: &str, v: &str) -> Result<Option<T>, String> {
        crate::lexical::decimal(v)
            .map(Some)
            .ok_or_else(|| k.to_string())
    }
    let mut q = Query::default();
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "tmdbId" => q.tmdb_id = number(&k, &v)?,
            "tvdbId" => q.tvdb_id = number(&k, &v)?,
            "season" => q.season = number(&k, &v)?,
            "episode" => q.episode = number(&k, &v)?,
            // An IMDb id that cannot exist matches nothing.
            "imdbId" => q.imdb_num = Some(imdb_number(&v).unwrap_or(u64::MAX)),
            _ => {}
        }
    }
    Ok(q)
}

fn cannot_read(id: &str, e: &std::io::Error) -> Reply {
    log::warn!("cannot open a library file id={id} error={e}");
    Reply::error(500, "INTERNAL", "Cannot read the file")
}

fn get_only(method: &Method, f: impl FnOnce() -> Reply) -> Reply {
    match method {
        Method::Get => f(),
        _ => method_not_allowed("GET"),
    }
}

/// Percent-decodes one path segment into an item id; `None` when the
/// encoding is broken, the result is not UTF-8, or it is too long to be an id.
fn decode_id(raw: &str) -> Option<String> {
    if raw.len() > 3 * MAX_ID_LEN {
        return None;
    }
    let id = percent_decode(raw, false)?;
    (!id.is_empty() && id.len() <= MAX_ID_LEN && !id.contains('\0')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_are_not_numbers() {
        assert_eq!(
            parse_search("tmdbId=%2B949").err().as_deref(),
            Some("tmdbId")
        );
        assert_eq!(parse_search("season=%2B1").err().as_deref(), Some("season"));
        assert!(parse_search("tmdbId=949").is_ok());
        assert_eq!(decode_id("%+A"), None);
        assert_eq!(percent_decode("%+A", true), None);
        assert_eq!(percent_decode("%4a%4A", false).as_deref(), Some("JJ"));
    }

    #[test]
    fn ids_decode_strictly() {
        assert_eq!(
            decode_id("movies%3Amovie%3Aab").as_deref(),
            Some("movies:movie:ab")
        );
        assert_eq!(
            decode_id("movies:movie:ab").as_deref(),
            Some("movies:movie:ab")
        );
        assert_eq!(decode_id("%2e%2e%2f").as_deref(), Some("../"));
        assert_eq!(
            decode_id("%252e").as_deref(),
            Some("%2e"),
            "decoded once only"
        );
        assert_eq!(decode_id("%00"), None);
        assert_eq!(decode_id("%"), None);
        assert_eq!(decode_id("%zz"), None);
        assert_eq!(decode_id("%ff"), None, "not UTF-8");
        assert_eq!(decode_id(""), None);
        assert_eq!(decode_id(&"a".repeat(5000)), None);
        assert_eq!(decode_id(&"a".repeat(201)), None);
        assert!(decode_id(&"a".repeat(200)).is_some());
        assert_eq!(decode_id("%C3%A9"), Some("é".into()));
    }
}
