//! The Torznab indexer (`PROTOCOL.md` §4), what the operator's Radarr and
//! Sonarr search and grab through: `GET /torznab/api` answers `t=caps` and
//! searches; `GET /torznab/download/<peer:item>.torrent` hands out the stub
//! built from the peer's current release.
//!
//! A search asks every configured peer's `/peer/search` at once, one
//! `torznab-N` thread each, and waits at most `[torznab] peer_timeout_ms`.
//! Each thread's exchange carries that same total deadline
//! (`PeerClient::search`), so a thread left behind by a slow or dead peer
//! ends by itself: such a peer costs at most the timeout, contributes
//! nothing, and is logged. These threads are not joined at shutdown; they
//! are gone within one timeout.
//!
//! Keys: the `apikey` query parameter is accepted here and nowhere else,
//! only the node's own key, compared in constant time; logs show paths
//! without their query. A wrong key on `/torznab/api` is Torznab's error
//! 100 (HTTP 200, which Radarr/Sonarr read); on a download it is a `401`
//! with the peer API's JSON error, because a `200` there would be taken
//! for a `.torrent`. The pure half (parameters, filtering, documents) is
//! `feed`; this module must not write XML itself.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tiny_http::{Method, Request};

use crate::arr::feed::{self, DOWNLOAD_PREFIX, Found, Function, Links, Search, TorznabError};
use crate::arr::{StubFailure, stub_for};
use crate::config::{Config, Peers, Secret};
use crate::download::peer::PeerClient;
use crate::http::gate::{Gate, Verdict, constant_time_eq};
use crate::http::request::{
    content_disposition, method_not_allowed, not_found, query_pairs, split_url,
};
use crate::http::server::{Body, Handler, Reply};
use crate::metrics::AuthRoute;

const XML: &str = "application/xml; charset=utf-8";
const RSS: &str = "application/rss+xml; charset=utf-8";

/// The `/torznab/` routes.
#[derive(Debug)]
pub struct Torznab {
    client: PeerClient,
    peers: Peers,
    key: Secret,
    public_url: String,
    timeout: Duration,
    max_file_size: u64,
    gate: Arc<Gate>,
}

impl Torznab {
    pub fn new(config: &Config, gate: Arc<Gate>) -> Torznab {
        let timeout = config.torznab.peer_timeout;
        Torznab {
            // Connecting and every read are bounded by the timeout too: a
            // download link is answered within it as well.
            client: PeerClient::new(timeout),
            peers: config.peers.clone(),
            key: config.server.api_key.clone(),
            public_url: config.server.public_url.clone(),
            timeout,
            max_file_size: config.downloads.max_file_size,
            gate,
        }
    }

    /// Whether the query's `apikey` is the node's key, through the gate.
    fn key_matches(&self, req: &Request, pairs: &[(String, String)]) -> Verdict<()> {
        let presented = pairs
            .iter()
            .find(|(k, _)| k == "apikey")
            .map(|(_, v)| v.as_str());
        self.gate
            .check(AuthRoute::Torznab, self.gate.client(req), presented, |k| {
                constant_time_eq(k.as_bytes(), self.key.expose().as_bytes()).then_some(())
            })
    }

    fn route(&self, req: &Request) -> Reply {
        let (path, query) = split_url(req.url());
        if *req.method() != Method::Get {
            return method_not_allowed("GET");
        }
        if path == "/torznab/api" || path == "/torznab/api/" {
            self.api(req, query)
        } else if path.starts_with(DOWNLOAD_PREFIX) {
            self.download(req, path, query)
        } else {
            not_found()
        }
    }

    /// `/torznab/api`: `t=caps` for anyone, the rest with the key.
    fn api(&self, req: &Request, query: &str) -> Reply {
        let pairs = query_pairs(query);
        let function = Function::of(&pairs);
        if function == Ok(Function::Caps) {
            return document(XML, feed::caps());
        }
        match self.key_matches(req, &pairs) {
            Verdict::Pass(()) => {}
            Verdict::Busy(wait) => return crate::http::gate::too_many(wait),
            Verdict::Missing | Verdict::Wrong => {
                log::info!("torznab request refused: missing or wrong apikey");
                return document(XML, TorznabError::invalid_key().xml());
            }
        }
        match function.and_then(|f| Search::parse(f, &pairs)) {
            Ok(search) => self.search(&search),
            Err(e) => {
                log::info!(
                    "torznab request refused code={} reason={:?}",
                    e.code,
                    e.description
                );
                document(XML, e.xml())
            }
        }
    }

    fn search(&self, search: &Search) -> Reply {
        let started = Instant::now();
        let found = if search.matches_nothing {
            Vec::new()
        } else {
            self.ask_peers(&search.peer_query)
        };
        let listed = found.len();
        let now = SystemTime::now();
        let (matching, page) = feed::select(search, found, self.max_file_size, now);
        log::info!(
            "torznab search t={} peers={} listed={listed} matching={matching} shown={} elapsed_ms={}",
            search.function.as_str(),
            self.peers.current().len(),
            page.len(),
            started.elapsed().as_millis()
        );
        let links = Links {
            public_url: &self.public_url,
            api_key: self.key.expose(),
        };
        document(RSS, feed::feed(links, &page, now))
    }

    /// What the peers list for `query`: one thread per peer, each bounded
    /// by the timeout; whoever has not answered when it is up is left out.
    fn ask_peers(&self, query: &[(&'static str, String)]) -> Vec<Found> {
        let deadline = Instant::now() + self.timeout;
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut waiting: Vec<&str> = Vec::new();
        let peers = self.peers.current();
        for (i, peer) in peers.iter().enumerate() {
            let (tx, client, peer_copy) = (tx.clone(), self.client.clone(), peer.clone());
            let (query, timeout) = (query.to_vec(), self.timeout);
            let spawned = std::thread::Builder::new()
                .name(format!("torznab-{}", i + 1))
                .spawn(move || {
                    let started = Instant::now();
                    let result = client.search(&peer_copy, &query, timeout);
                    // Nobody listens any more when this peer was too slow.
                    let _ = tx.send((peer_copy.name, result, started.elapsed()));
                });
            match spawned {
                Ok(_) => waiting.push(&peer.name),
                Err(e) => log::warn!(
                    "torznab cannot start a search thread peer={} error={e}",
                    peer.name
                ),
            }
        }
        drop(tx);
        let mut found = Vec::new();
        while !waiting.is_empty() {
            let Ok((name, result, took)) = rx.recv_deadline(deadline) else {
                break;
            };
            waiting.retain(|p| *p != name);
            let elapsed_ms = took.as_millis();
            match result {
                Ok(listing) => {
                    if listing.skipped > 0 {
                        log::warn!(
                            "torznab peer listed invalid releases peer={name} skipped={}",
                            listing.skipped
                        );
                    }
                    log::debug!(
                        "torznab peer answered peer={name} releases={} elapsed_ms={elapsed_ms}",
                        listing.releases.len()
                    );
                    found.extend(listing.releases.into_iter().map(|r| Found::new(&name, r)));
                }
                Err(e) => {
                    log::warn!("torznab peer failed peer={name} elapsed_ms={elapsed_ms} error={e}")
                }
            }
        }
        for name in waiting {
            log::warn!(
                "torznab peer did not answer in time peer={name} timeout_ms={}",
                self.timeout.as_millis()
            );
        }
        found
    }

    /// `/torznab/download/<peer:item>.torrent`: the stub of the peer's
    /// current release. Unknown peer or item `404`, peer unreachable `503`.
    fn download(&self, req: &Request, path: &str, query: &str) -> Reply {
        match self.key_matches(req, &query_pairs(query)) {
            Verdict::Pass(()) => {}
            Verdict::Busy(wait) => return crate::http::gate::too_many(wait),
            Verdict::Missing | Verdict::Wrong => {
                log::info!("torznab download refused: missing or wrong apikey");
                return Reply::error(401, "UNAUTHORIZED", "Unauthorized");
            }
        }
        let Some((peer, item)) = feed::parse_download_path(path) else {
            return not_found();
        };
        match stub_for(
            &self.client,
            &self.peers.current(),
            &peer,
            &item,
            self.max_file_size,
        ) {
            Ok(bytes) => {
                // Read back for its name and hash: `stub_for` checked the size.
                let (name, hash) = match crate::stub::parse(&bytes, self.max_file_size) {
                    Ok(s) => (format!("{}.torrent", s.title), s.info_hash),
                    Err(_) => ("release.torrent".to_string(), String::new()),
                };
                log::info!(
                    "torznab stub handed out peer={peer} item={item} info_hash={hash} bytes={}",
                    bytes.len()
                );
                Reply {
                    status: 200,
                    headers: vec![
                        ("Content-Type".into(), feed::TORRENT_TYPE.into()),
                        ("Content-Disposition".into(), content_disposition(&name)),
                    ],
                    body: Body::Bytes(bytes),
                }
            }
            Err(failure) => {
                log::warn!("torznab no stub peer={peer} item={item} reason={failure}");
                match failure {
                    StubFailure::UnknownPeer(_) | StubFailure::Gone(_) => not_found(),
                    StubFailure::Unavailable(_) => {
                        Reply::error(503, "UNAVAILABLE", "The peer cannot be reached")
                    }
                }
            }
        }
    }
}

/// A `200` XML document.
fn document(content_type: &str, text: String) -> Reply {
    Reply {
        status: 200,
        headers: vec![("Content-Type".into(), content_type.into())],
        body: Body::Bytes(text.into_bytes()),
    }
}

impl Handler for Torznab {
    fn handle(&self, req: &mut Request) -> Reply {
        // Answers carry the key (feed links) or need it: never cached.
        self.route(req).with_header("Cache-Control", "private")
    }
}
