//! `torrents/add` after the answer: the `qbit-add` thread turns each add
//! the API recorded (`grabs` in the registry) into a download through
//! `Downloads::add_stub`, the one entry point, off the request path (the
//! peer lookup in it can take up to the idle timeout).
//!
//! An add is recorded before the API answers `Ok.` and removed only once
//! `add_stub` has decided, so a restart loses none: the thread starts with
//! every add left. A link (`/torznab/download/<peerId:itemId>.torrent` of
//! this node, parsed by [`parse_link`]) gets its stub from the peer's
//! current release (`arr::stub_for`), never from an HTTP call to this node.
//! A peer that cannot be asked right now is asked again after [`LATER`].
//! The channel only wakes the thread; the registry holds the adds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded, select};

use crate::arr::{StubFailure, stub_for};
use crate::clock::Clock;
use crate::config::Peers;
use crate::db::Grab;
use crate::download::downloads::{Added, Downloads, Start};
use crate::download::peer::PeerClient;
use crate::error::Result;
use crate::http::request::percent_decode;
use crate::worker::Background;

/// An add whose peer could not be asked is tried again after this long.
pub const LATER: Duration = Duration::from_secs(15);

/// Item ids are at most this long (`PROTOCOL.md` §2.2).
const MAX_ITEM_ID: usize = 200;

/// The `(peerId, itemId)` of a link to this node's
/// `/torznab/download/<percent-encoded peerId:itemId>.torrent` (query
/// ignored), where `bases` are the node's own URLs (`server.public_url`,
/// `http://<listen>`), without a trailing `/`. `None` for anything else.
pub fn parse_link(url: &str, bases: &[String]) -> Option<(String, String)> {
    let url = url.trim();
    let path = url.split(['?', '#']).next()?;
    let rest = bases.iter().find_map(|base| {
        let head = path.get(..base.len())?;
        head.eq_ignore_ascii_case(base).then(|| &path[base.len()..])
    })?;
    let name = rest.strip_prefix("/torznab/download/")?;
    let name = name.strip_suffix(".torrent")?;
    let decoded = percent_decode(name, false)?;
    let (peer, item) = decoded.split_once(':')?;
    let peer_ok = (1..=64).contains(&peer.len())
        && peer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let item_ok =
        !item.is_empty() && item.len() <= MAX_ITEM_ID && !item.chars().any(char::is_control);
    (peer_ok && item_ok).then(|| (peer.to_string(), item.to_string()))
}

/// This node's own base URLs: `public_url`, and `http://<listen>` (with
/// `127.0.0.1` and `localhost` when it listens on every or a loopback
/// address).
pub fn own_bases(public_url: &str, listen: SocketAddr) -> Vec<String> {
    let mut bases = vec![public_url.trim_end_matches('/').to_string()];
    let port = listen.port();
    let mut push = |b: String| {
        if !bases.contains(&b) {
            bases.push(b);
        }
    };
    push(format!("http://{listen}"));
    if listen.ip().is_unspecified() || listen.ip().is_loopback() {
        push(format!("http://127.0.0.1:{port}"));
        push(format!("http://localhost:{port}"));
    }
    bases
}

/// What the `qbit-add` thread works with.
struct Work {
    downloads: Arc<Downloads>,
    client: PeerClient,
    peers: Peers,
    max_file_size: u64,
    clock: Arc<dyn Clock>,
}

/// The `qbit-add` thread.
pub struct Adder {
    wake: Sender<()>,
    thread: Background,
}

impl Adder {
    pub fn start(
        downloads: Arc<Downloads>,
        peers: Peers,
        max_file_size: u64,
        idle_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Adder> {
        let (wake, woken) = bounded::<()>(1);
        let work = Work {
            downloads,
            client: PeerClient::new(idle_timeout),
            peers,
            max_file_size,
            clock,
        };
        let thread = Background::spawn("qbit-add", move |stopped, flag| {
            let mut later: HashMap<i64, Instant> = HashMap::new();
            while !flag.load(Ordering::SeqCst) {
                work.pass(&mut later, &flag);
                select! {
                    recv(woken) -> _ => {}
                    recv(stopped) -> _ => break,
                    default(Duration::from_secs(1)) => {}
                }
            }
        })?;
        Ok(Adder { wake, thread })
    }

    /// Something to wake the thread with after recording an add.
    pub fn waker(&self) -> Sender<()> {
        self.wake.clone()
    }

    /// Stops the thread, waiting at most `limit`: one waiting on a peer is
    /// left behind (the add it holds stays recorded for the next start).
    pub fn stop(self, limit: Duration) {
        self.thread.stop(limit);
    }
}

impl Work {
    /// One pass over the recorded adds, oldest first.
    fn pass(&self, later: &mut HashMap<i64, Instant>, stopping: &AtomicBool) {
        let grabs = match self.downloads.registry().grabs() {
            Ok(g) => g,
            Err(e) => {
                log::error!("cannot read the adds: {}", e.chain());
                return;
            }
        };
        later.retain(|id, _| grabs.iter().any(|g| g.id == *id));
        for grab in grabs {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            if later.get(&grab.id).is_some_and(|t| self.clock.now() < *t) {
                continue;
            }
            if let Err(why) = self.add(&grab) {
                log::info!(
                    "add postponed grab={} stub={} in_ms={} reason={why}",
                    grab.id,
                    grab.stub_name,
                    LATER.as_millis()
                );
                later.insert(grab.id, self.clock.now() + LATER);
            }
        }
    }

    /// Makes `grab` a download; `Err(reason)` to try again later.
    fn add(&self, grab: &Grab) -> std::result::Result<(), String> {
        let registry = self.downloads.registry();
        let stub = match (registry.grab_stub(grab.id), &grab.info_hash) {
            (Err(e), _) => return Err(e.to_string()),
            (Ok(Some(stub)), _) => stub,
            (Ok(None), Some(_)) => return Ok(()), // deleted meanwhile
            (Ok(None), None) => {
                let built = stub_for(
                    &self.client,
                    &self.peers.current(),
                    &grab.peer,
                    &grab.item_id,
                    self.max_file_size,
                );
                match built {
                    Ok(stub) => stub,
                    Err(StubFailure::Unavailable(e)) => return Err(e),
                    Err(e) => {
                        log::warn!(
                            "add dropped stub={} peer={} item={}: {e}",
                            grab.stub_name,
                            grab.peer,
                            grab.item_id
                        );
                        return self.settle(grab, None);
                    }
                }
            }
        };
        crate::fault::pause("qbit:before_add");
        let start = if grab.paused {
            Start::Paused
        } else {
            Start::Now
        };
        match self.downloads.add_stub(&grab.stub_name, &stub, start) {
            Err(e) => Err(e.chain()),
            Ok(Added::Later(e)) => Err(e),
            Ok(Added::Invalid(e)) => {
                log::warn!("add dropped stub={}: {e}", grab.stub_name);
                self.settle(grab, None)
            }
            Ok(added) => {
                let (Added::Queued(id)
                | Added::Duplicate(id)
                | Added::Regrabbed(id)
                | Added::Failed(id, _)) = added
                else {
                    unreachable!("handled above")
                };
                log::info!(
                    "add done stub={} download={id} category={:?} outcome={added:?}",
                    grab.stub_name,
                    grab.category
                );
                let kept = registry
                    .settle_grab(grab.id, Some(id))
                    .map_err(|e| e.chain())?;
                match kept {
                    None if matches!(added, Added::Queued(_)) => {
                        // Deleted while it was being added: it goes too.
                        self.downloads.remove(id, true).map_err(|e| e.chain())?;
                    }
                    // Paused while it was being added: paused now.
                    Some(true) if !grab.paused => {
                        self.downloads.pause(id).map_err(|e| e.chain())?;
                    }
                    // Resumed while it was being added paused: resumed now.
                    Some(false) if grab.paused => {
                        self.downloads.resume(id).map_err(|e| e.chain())?;
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }

    fn settle(&self, grab: &Grab, download: Option<i64>) -> std::result::Result<(), String> {
        self.downloads
            .registry()
            .settle_grab(grab.id, download)
            .map(drop)
            .map_err(|e| e.chain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_this_node_only() {
        let bases = own_bases("http://jack.lan:5225/", "0.0.0.0:5225".parse().unwrap());
        assert_eq!(
            bases,
            [
                "http://jack.lan:5225",
                "http://0.0.0.0:5225",
                "http://127.0.0.1:5225",
                "http://localhost:5225"
            ]
        );
        let ok = |peer: &str, item: &str| Some((peer.to_string(), item.to_string()));
        let cases = [
            (
                "http://jack.lan:5225/torznab/download/alice%3Amovies%3Amovie%3Aab12.torrent?apikey=k",
                ok("alice", "movies:movie:ab12"),
            ),
            (
                "HTTP://JACK.LAN:5225/torznab/download/alice:m%20x.torrent",
                ok("alice", "m x"),
            ),
            (
                "http://127.0.0.1:5225/torznab/download/bob_2:i.torrent#frag",
                ok("bob_2", "i"),
            ),
            (
                " http://localhost:5225/torznab/download/a:b.torrent\r",
                ok("a", "b"),
            ),
            ("http://evil.example/torznab/download/alice:m.torrent", None),
            (
                "http://jack.lan:52250/torznab/download/alice:m.torrent",
                None,
            ),
            ("http://jack.lan:5225/torznab/api?t=caps", None),
            ("http://jack.lan:5225/torznab/download/alice:m", None),
            ("http://jack.lan:5225/torznab/download/alice.torrent", None),
            ("http://jack.lan:5225/torznab/download/:m.torrent", None),
            ("http://jack.lan:5225/torznab/download/alice:.torrent", None),
            (
                "http://jack.lan:5225/torznab/download/al%2Fice:m.torrent",
                None,
            ),
            (
                "http://jack.lan:5225/torznab/download/alice:m%00.torrent",
                None,
            ),
            (
                "http://jack.lan:5225/torznab/download/alice:m%zz.torrent",
                None,
            ),
            (
                "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
                None,
            ),
            ("https://tracker.example/file.torrent", None),
            ("", None),
        ];
        for (url, want) in cases {
            assert_eq!(parse_link(url, &bases), want, "{url}");
        }
        let long = format!(
            "http://jack.lan:5225/torznab/download/a:{}.torrent",
            "i".repeat(201)
        );
        assert_eq!(parse_link(&long, &bases), None);
    }
}
