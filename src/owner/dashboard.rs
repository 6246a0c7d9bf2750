//! What the status page (`owner/ui`) shows beyond the registry: the
//! throughput of the last minutes, what each peer answered to its last
//! handshake, and the last library scan.
//!
//! Two threads fill it: `ui-sample` reads the byte counters of
//! `metrics::METRICS` once a second into a ring of [`SAMPLES`], and
//! `peer-probe` handshakes every `[[peers]]` entry and counts what it
//! offers, at most every [`PROBE_EVERY`] and only while a page is open
//! ([`Dashboard::viewed`]): friends are not asked for a page nobody reads
//! (one peer after the other, each exchange bounded). The catalogue thread hands each scan's stats to
//! [`Dashboard::scanned`]. Readers take a copy under a short lock; nothing
//! here waits on the network with a lock held. Must not: ask a peer on a
//! request's path, or keep a key.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::Peers;
use crate::download::peer::{PeerClient, PeerError};
use crate::error::Result;
use crate::serve::catalogue::ScanStats;
use crate::worker::Background;

/// Samples kept: five minutes at one a second.
pub const SAMPLES: usize = 300;

/// How often the peers are asked again.
pub const PROBE_EVERY: Duration = Duration::from_secs(60);

/// Longest wait on one peer's answer while probing (handshake, then the
/// listing).
const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// One throughput sample: the bytes moved in the second before `at`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// Bytes per second downloaded from peers.
    pub down: u64,
    /// Bytes per second of library files served to peers.
    pub up: u64,
}

/// Rates from two readings of the (downloaded, served) totals `elapsed`
/// apart. Pure.
pub fn rate(before: (u64, u64), after: (u64, u64), elapsed: Duration, at: u64) -> Sample {
    let ms = elapsed.as_millis().max(1) as u64;
    let per_second = |a: u64, b: u64| b.saturating_sub(a).saturating_mul(1000) / ms;
    Sample {
        at,
        down: per_second(before.0, after.0),
        up: per_second(before.1, after.1),
    }
}

/// A peer as its last probe found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerState {
    pub name: String,
    /// The peer's base URL (keys never are in it: they travel in a header).
    pub url: String,
    pub reachable: bool,
    pub version: Option<String>,
    /// Round-trip time of the handshake, milliseconds.
    pub rtt_ms: Option<u64>,
    /// Releases its `/peer/search` lists.
    pub releases: Option<usize>,
    /// What went wrong at the latest contact, in plain words.
    pub error: Option<String>,
    /// When it was last asked, by anyone (ms since the epoch); `None`:
    /// not yet.
    pub checked_at: Option<u64>,
    /// What that latest contact was: `handshake`, `search`, `download`.
    pub contact: Option<&'static str>,
}

impl PeerState {
    /// `reachable`, `error` and `checked_at` from `peer`'s latest contact
    /// (`download/contact`): whatever asked last, a search, a download or
    /// the probe, says whether it is reachable now.
    fn with_latest_contact(mut self) -> PeerState {
        if let Some(c) = crate::download::contact::CONTACTS.latest(&self.name) {
            self.reachable = c.ok();
            self.error = c
                .failure
                .as_deref()
                .map(|f| crate::plain::say(&self.name, f));
            self.checked_at =
                c.at.duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as u64);
            self.contact = Some(c.exchange.as_str());
        }
        self
    }
}

/// One library as the last scan found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryState {
    pub name: String,
    pub items: usize,
    pub folders: usize,
    /// Files that are not videos of the library or cannot be read as one.
    pub skipped: usize,
    /// Videos left out: the catalogue is full (`server.max_catalogue_items`).
    pub over_limit: usize,
    /// Folders or files that could not be read.
    pub errors: usize,
    /// 1: the *arr could not be asked (its previous items are kept).
    pub unavailable: usize,
    pub elapsed_ms: u64,
}

/// The last scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanState {
    /// When it ended, ms since the epoch.
    pub at: u64,
    pub elapsed_ms: u64,
    pub items: usize,
    pub libraries: Vec<LibraryState>,
}

/// Everything the page reads at once.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub throughput: Vec<Sample>,
    pub peers: Vec<PeerState>,
    pub scan: Option<ScanState>,
}

#[derive(Debug, Default)]
pub struct Dashboard {
    /// A page asked for the state since the prober last looked.
    viewed: AtomicBool,
    samples: Mutex<VecDeque<Sample>>,
    peers: Mutex<HashMap<String, PeerState>>,
    scan: Mutex<Option<ScanState>>,
}

impl Dashboard {
    /// Records one sample, dropping the oldest past [`SAMPLES`].
    pub fn sample(&self, s: Sample) {
        let mut samples = self.samples.lock();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    /// A page is open: the peers are probed when they are due.
    pub fn viewed(&self) {
        self.viewed.store(true, Ordering::Relaxed);
    }

    /// Keeps the stats of the scan that just ended.
    pub fn scanned(&self, stats: &ScanStats) {
        let libraries = stats
            .libraries
            .iter()
            .map(|l| LibraryState {
                name: l.name.clone(),
                items: l.items,
                folders: l.folders,
                skipped: l.skipped,
                over_limit: l.over_limit,
                errors: l.errors,
                unavailable: l.unavailable,
                elapsed_ms: l.elapsed.as_millis() as u64,
            })
            .collect();
        *self.scan.lock() = Some(ScanState {
            at: now_ms(),
            elapsed_ms: stats.elapsed.as_millis() as u64,
            items: stats.items,
            libraries,
        });
    }

    fn probed(&self, state: PeerState) {
        self.peers.lock().insert(state.name.clone(), state);
    }

    /// A copy of everything, the peers in `peers`' order (one never asked
    /// yet shows as such; one no longer configured is left out).
    pub fn snapshot(&self, peers: &Peers) -> Snapshot {
        let known = self.peers.lock().clone();
        let peers = peers
            .current()
            .iter()
            .map(|p| match known.get(&p.name) {
                Some(s) if s.url == p.url => s.clone(),
                _ => PeerState {
                    name: p.name.clone(),
                    url: p.url.clone(),
                    reachable: false,
                    version: None,
                    rtt_ms: None,
                    releases: None,
                    error: None,
                    checked_at: None,
                    contact: None,
                },
            })
            .map(PeerState::with_latest_contact)
            .collect();
        Snapshot {
            throughput: self.samples.lock().iter().copied().collect(),
            peers,
            scan: self.scan.lock().clone(),
        }
    }
}

/// The wall clock, ms since the Unix epoch (what the page's times are in).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `ui-sample` and `peer-probe` threads.
pub struct Observers {
    sampler: Background,
    prober: Background,
}

impl Observers {
    pub fn start(dashboard: Arc<Dashboard>, peers: Peers) -> Result<Observers> {
        let board = dashboard.clone();
        let sampler = Background::spawn("ui-sample", move |stop, _| {
            let mut last = (Instant::now(), crate::metrics::METRICS.byte_totals());
            while stop.recv_timeout(Duration::from_secs(1))
                == Err(crossbeam_channel::RecvTimeoutError::Timeout)
            {
                let now = (Instant::now(), crate::metrics::METRICS.byte_totals());
                board.sample(rate(last.1, now.1, now.0 - last.0, now_ms()));
                last = now;
            }
        })?;
        let prober = Background::spawn("peer-probe", move |stop, stopping| {
            let client = PeerClient::new(PROBE_DEADLINE);
            let mut last: Option<Instant> = None;
            while stop.recv_timeout(Duration::from_secs(1))
                == Err(crossbeam_channel::RecvTimeoutError::Timeout)
            {
                let due = last.is_none_or(|t| t.elapsed() >= PROBE_EVERY);
                if !(due && dashboard.viewed.swap(false, Ordering::Relaxed)) {
                    continue;
                }
                last = Some(Instant::now());
                for peer in peers.current().iter() {
                    if stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    dashboard.probed(probe(&client, peer, &stopping));
                }
            }
        })?;
        Ok(Observers { sampler, prober })
    }

    /// Stops both; a probe waiting on a peer is left behind after `limit`.
    pub fn stop(self, limit: Duration) {
        self.sampler.stop(limit);
        self.prober.stop(limit);
    }
}

/// Handshakes `peer` (timed) and counts the releases it lists.
fn probe(client: &PeerClient, peer: &crate::config::Peer, stopping: &AtomicBool) -> PeerState {
    let started = Instant::now();
    let shake = client.handshake(peer);
    let rtt = started.elapsed().as_millis() as u64;
    let mut state = PeerState {
        name: peer.name.clone(),
        url: peer.url.clone(),
        reachable: false,
        version: None,
        rtt_ms: None,
        releases: None,
        error: None,
        checked_at: Some(now_ms()),
        contact: Some("handshake"),
    };
    let text = |e: PeerError| match e {
        PeerError::Transient(m) | PeerError::Permanent(m) => m,
    };
    match shake {
        Ok(version) => {
            state.reachable = true;
            state.version = Some(version);
            state.rtt_ms = Some(rtt);
        }
        Err(e) => {
            state.error = Some(text(e));
            return state;
        }
    }
    if !stopping.load(Ordering::Relaxed) {
        match client.search(peer, &[], PROBE_DEADLINE) {
            Ok(listing) => state.releases = Some(listing.releases.len()),
            Err(e) => state.error = Some(text(e)),
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bytes_per_second_whatever_the_interval() {
        let cases = [
            ((0, 0), (1000, 500), 1000, (1000, 500)),
            ((0, 0), (1000, 500), 500, (2000, 1000)),
            ((10, 10), (10, 10), 1000, (0, 0)),
            // A counter that went back (never: they start at 0) reads 0.
            ((10, 10), (5, 5), 1000, (0, 0)),
            ((0, 0), (7, 7), 0, (7000, 7000)),
        ];
        for (before, after, ms, (down, up)) in cases {
            let s = rate(before, after, Duration::from_millis(ms), 42);
            assert_eq!(
                (s.down, s.up, s.at),
                (down, up, 42),
                "{before:?} {after:?} {ms}"
            );
        }
    }

    #[test]
    fn the_ring_keeps_the_last_five_minutes() {
        let d = Dashboard::default();
        for i in 0..(SAMPLES as u64 + 10) {
            d.sample(Sample {
                at: i,
                down: i,
                up: 0,
            });
        }
        let snap = d.snapshot(&Peers::default());
        assert_eq!(snap.throughput.len(), SAMPLES);
        assert_eq!(snap.throughput[0].at, 10);
        assert_eq!(snap.throughput.last().unwrap().at, SAMPLES as u64 + 9);
    }
}
