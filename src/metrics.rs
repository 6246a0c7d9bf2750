//! Process-wide counters for `GET /metrics`, and their Prometheus text.
//!
//! Plain atomics in one static ([`METRICS`]), bumped where things happen
//! (file bodies in `http/server`, appends in `download/transfer`, reads
//! of the background hasher in `serve/hasher`,
//! outcomes in `download/downloads`, answers in the `Router`). Labels come
//! from fixed vocabularies ([`Reason`], status classes, the two connection
//! caps), never from data: an error message, a peer's words, a key or a
//! client's address never becomes a label. What the HTTP server counts
//! itself (open connections, and the connections its accept thread refused,
//! inside tiny_http) is read when `/metrics` is asked ([`ConnectionCounts`]).
//! Must not: hold locks, do I/O, allocate on the counting path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a download failed, retried or restarted: a small fixed vocabulary
/// (the `reason` label), mapped from the error text by [`Reason::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Network,
    Timeout,
    Http4xx,
    Http429,
    Http5xx,
    Certificate,
    Disk,
    Registry,
    DestinationExists,
    RetriesExhausted,
    Changed,
    Length,
    Release,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::Network,
        Reason::Timeout,
        Reason::Http4xx,
        Reason::Http429,
        Reason::Http5xx,
        Reason::Certificate,
        Reason::Disk,
        Reason::Registry,
        Reason::DestinationExists,
        Reason::RetriesExhausted,
        Reason::Changed,
        Reason::Length,
        Reason::Release,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Network => "network",
            Reason::Timeout => "timeout",
            Reason::Http4xx => "http_4xx",
            Reason::Http429 => "http_429",
            Reason::Http5xx => "http_5xx",
            Reason::Certificate => "certificate",
            Reason::Disk => "disk",
            Reason::Registry => "registry",
            Reason::DestinationExists => "destination_exists",
            Reason::RetriesExhausted => "retries_exhausted",
            Reason::Changed => "changed",
            Reason::Length => "length",
            Reason::Release => "release",
            Reason::Other => "other",
        }
    }

    /// The reason of an error or restart message (first match wins).
    pub fn of(message: &str) -> Reason {
        let m = message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if has(&["gave up after"]) {
            Reason::RetriesExhausted
        } else if has(&["certificate", "tls"]) {
            Reason::Certificate
        } else if has(&["destination exists"]) {
            Reason::DestinationExists
        } else if has(&["timed out", "timeout"]) {
            Reason::Timeout
        } else if has(&["429"]) {
            Reason::Http429
        } else if has(&["http 5", "status 5", " 500", " 502", " 503", " 504"]) {
            Reason::Http5xx
        } else if has(&["http 4", "status 4", " 404", " 410", " 416", " 401", " 403"]) {
            Reason::Http4xx
        } else if has(&["no space", "quota", "disk", "write", "truncate", "seek"]) {
            Reason::Disk
        } else if has(&["registry", "database", "sqlite"]) {
            Reason::Registry
        } else if has(&["etag", "changed"]) {
            Reason::Changed
        } else if has(&["length", "too_long", "too long", "size"]) {
            Reason::Length
        } else if has(&["release", "item", "unknown peer", "stub"]) {
            Reason::Release
        } else if has(&[
            "connect",
            "connection",
            "body ended",
            "reset",
            "refused",
            "network",
        ]) {
            Reason::Network
        } else {
            Reason::Other
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const REASONS: usize = Reason::ALL.len();

/// Where a credential was checked (the `route` label of the
/// authentication counters, `crate::gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRoute {
    /// `/handshake` and `/peer/*`.
    Peer,
    /// `/torznab/` (`apikey`).
    Torznab,
    /// `/api/v1/` and `/metrics`.
    Status,
    /// `POST /ui/login`.
    Ui,
    /// `POST /api/v2/auth/login`.
    Qbit,
}

impl AuthRoute {
    pub const ALL: [AuthRoute; 5] = [
        AuthRoute::Peer,
        AuthRoute::Torznab,
        AuthRoute::Status,
        AuthRoute::Ui,
        AuthRoute::Qbit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthRoute::Peer => "peer",
            AuthRoute::Torznab => "torznab",
            AuthRoute::Status => "status",
            AuthRoute::Ui => "ui",
            AuthRoute::Qbit => "qbit",
        }
    }
}

const AUTH_ROUTES: usize = AuthRoute::ALL.len();
/// `1xx`..`5xx`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug)]
pub struct Metrics {
    bytes_served: AtomicU64,
    bytes_downloaded: AtomicU64,
    bytes_direct: AtomicU64,
    pieces_failed: AtomicU64,
    bytes_hashed: AtomicU64,
    files_hashed: AtomicU64,
    completed: AtomicU64,
    paused: AtomicU64,
    failed: [AtomicU64; REASONS],
    retries: [AtomicU64; REASONS],
    restarts: [AtomicU64; REASONS],
    requests: [AtomicU64; CLASSES.len()],
    auth_failures: [AtomicU64; AUTH_ROUTES],
    auth_refused: [AtomicU64; AUTH_ROUTES],
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// The process's counters.
pub static METRICS: Metrics = Metrics {
    bytes_served: AtomicU64::new(0),
    bytes_downloaded: AtomicU64::new(0),
    bytes_direct: AtomicU64::new(0),
    pieces_failed: AtomicU64::new(0),
    bytes_hashed: AtomicU64::new(0),
    files_hashed: AtomicU64::new(0),
    completed: AtomicU64::new(0),
    paused: AtomicU64::new(0),
    failed: [ZERO; REASONS],
    retries: [ZERO; REASONS],
    restarts: [ZERO; REASONS],
    requests: [ZERO; CLASSES.len()],
    auth_failures: [ZERO; AUTH_ROUTES],
    auth_refused: [ZERO; AUTH_ROUTES],
};

impl Metrics {
    pub fn served(&self, bytes: u64) {
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn downloaded(&self, bytes: u64) {
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Of the downloaded bytes, those taken straight from the socket
    /// (`download::direct`), not through the HTTP client.
    pub fn downloaded_direct(&self, bytes: u64) {
        self.bytes_direct.fetch_add(bytes, Ordering::Relaxed);
    }
    /// A downloaded piece (or whole file) failed its digest check.
    pub fn piece_failed(&self) {
        self.pieces_failed.fetch_add(1, Ordering::Relaxed);
    }
    /// Bytes taken straight from the socket since the process started.
    pub fn direct_total(&self) -> u64 {
        self.bytes_direct.load(Ordering::Relaxed)
    }
    /// (downloaded, served) bytes since the process started.
    pub fn byte_totals(&self) -> (u64, u64) {
        (
            self.bytes_downloaded.load(Ordering::Relaxed),
            self.bytes_served.load(Ordering::Relaxed),
        )
    }
    /// Library file bytes read by the background hasher (`serve/hasher`).
    pub fn hashed(&self, bytes: u64) {
        self.bytes_hashed.fetch_add(bytes, Ordering::Relaxed);
    }
    /// A library file whose digests the hasher recorded.
    pub fn hashed_file(&self) {
        self.files_hashed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
    /// A download paused by its owner (not a failure).
    pub fn paused(&self) {
        self.paused.fetch_add(1, Ordering::Relaxed);
    }
    pub fn failed(&self, error: &str) {
        self.failed[Reason::of(error).index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn retried(&self, error: &str) {
        self.retries[Reason::of(error).index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn restarted(&self, reason: &str) {
        self.restarts[Reason::of(reason).index()].fetch_add(1, Ordering::Relaxed);
    }
    /// An answer with HTTP status `status`.
    pub fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
    }
    /// A wrong credential presented on `route`.
    pub fn auth_failed(&self, route: AuthRoute) {
        self.auth_failures[route as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// A credential check answered `429` at once (its address over budget).
    pub fn auth_refused(&self, route: AuthRoute) {
        self.auth_refused[route as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// What `/metrics` shows besides these counters, read when asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub active: u64,
    pub queued: u64,
    pub connections: ConnectionCounts,
}

/// What the HTTP server counts of its connections (`HttpServer::connection_counter`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Open now.
    pub open: u64,
    /// Answered 503 and closed by the accept thread since start, because
    /// `server.max_connections` were open.
    pub refused_max_connections: u64,
    /// The same, because `server.max_connections_per_ip` were open from
    /// that client's address.
    pub refused_max_connections_per_ip: u64,
    /// Idle connections closed at `server.max_connections` to make room
    /// for a new one.
    pub evicted_idle: u64,
}

impl ConnectionCounts {
    /// Every connection refused with a 503, whichever cap.
    pub fn refused(&self) -> u64 {
        self.refused_max_connections + self.refused_max_connections_per_ip
    }
}

/// The Prometheus text exposition (format 0.0.4) of `m` and `g`.
pub fn render(m: &Metrics, g: Gauges) -> String {
    let mut s = String::with_capacity(4096);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            s,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    one(
        "jack_served_bytes_total",
        "counter",
        "File body bytes sent to peers.",
        load(&m.bytes_served),
    );
    one(
        "jack_downloaded_bytes_total",
        "counter",
        "Bytes received from peers and written to .part files.",
        load(&m.bytes_downloaded),
    );
    one(
        "jack_downloaded_direct_bytes_total",
        "counter",
        "Of those, bytes moved straight from the socket (splice), not through the HTTP client.",
        load(&m.bytes_direct),
    );
    one(
        "jack_pieces_failed_total",
        "counter",
        "Downloaded pieces (or whole files) that failed their SHA-256 check and were fetched again.",
        load(&m.pieces_failed),
    );
    one(
        "jack_hashed_bytes_total",
        "counter",
        "Library file bytes read to compute their content digests.",
        load(&m.bytes_hashed),
    );
    one(
        "jack_hashed_files_total",
        "counter",
        "Library files whose content digests were computed and recorded.",
        load(&m.files_hashed),
    );
    one(
        "jack_transfers_active",
        "gauge",
        "Downloads being transferred now.",
        g.active,
    );
    one(
        "jack_transfers_queued",
        "gauge",
        "Downloads waiting for a worker (status queued).",
        g.queued,
    );
    one(
        "jack_downloads_completed_total",
        "counter",
        "Downloads completed since start.",
        load(&m.completed),
    );
    one(
        "jack_downloads_paused_total",
        "counter",
        "Downloads paused by their owner since start (not failures).",
        load(&m.paused),
    );
    one(
        "jack_open_connections",
        "gauge",
        "HTTP connections open now.",
        g.connections.open,
    );
    one(
        "jack_http_connections_evicted_total",
        "counter",
        "Idle HTTP connections closed at max_connections to make room for a new one.",
        g.connections.evicted_idle,
    );
    let c = &g.connections;
    let _ = write!(
        s,
        "# HELP jack_connections_refused_total Connections answered 503 and closed at once, by the cap they were over.\n# TYPE jack_connections_refused_total counter\n\
         jack_connections_refused_total{{reason=\"max_connections\"}} {}\n\
         jack_connections_refused_total{{reason=\"max_connections_per_ip\"}} {}\n",
        c.refused_max_connections, c.refused_max_connections_per_ip
    );
    let mut labelled = |name: &str, help: &str, values: &[AtomicU64; REASONS]| {
        let values = Reason::ALL.map(|r| (r.as_str(), load(&values[r.index()])));
        family(&mut s, name, help, "reason", values);
    };
    labelled(
        "jack_downloads_failed_total",
        "Downloads failed for good, by reason.",
        &m.failed,
    );
    labelled(
        "jack_download_retries_total",
        "Download attempts scheduled again, by reason.",
        &m.retries,
    );
    labelled(
        "jack_download_restarts_total",
        "Downloads restarted from byte 0, by reason.",
        &m.restarts,
    );
    let mut by_route = |name: &str, help: &str, values: &[AtomicU64; AUTH_ROUTES]| {
        let values = AuthRoute::ALL.map(|r| (r.as_str(), load(&values[r as usize])));
        family(&mut s, name, help, "route", values);
    };
    by_route(
        "jack_auth_failures_total",
        "Wrong credentials presented, by route.",
        &m.auth_failures,
    );
    by_route(
        "jack_auth_refused_total",
        "Credential checks answered 429 at once (the address over its failure budget), by route.",
        &m.auth_refused,
    );
    let _ = write!(
        s,
        "# HELP jack_http_requests_total HTTP answers, by status class (5xx includes the 503s of refused connections).\n# TYPE jack_http_requests_total counter\n"
    );
    for (i, class) in CLASSES.iter().enumerate() {
        // A refused connection's 503 is an answer too, written by the
        // accept thread instead of a handler.
        let refused = if *class == "5xx" { c.refused() } else { 0 };
        let _ = writeln!(
            s,
            "jack_http_requests_total{{class=\"{class}\"}} {}",
            load(&m.requests[i]) + refused
        );
    }
    s
}

/// One counter family with one label: its `# HELP` and `# TYPE` lines,
/// then a line per (label value, count).
fn family<const N: usize>(
    s: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: [(&str, u64); N],
) {
    let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} counter\n");
    for (value, count) in values {
        let _ = writeln!(s, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_a_fixed_vocabulary() {
        let cases = [
            (
                "gave up after 5 attempts: connection refused",
                "retries_exhausted",
            ),
            ("invalid peer certificate: UnknownIssuer", "certificate"),
            ("destination exists", "destination_exists"),
            ("peer timed out", "timeout"),
            ("peer answered HTTP 429", "http_429"),
            ("peer answered HTTP 503", "http_5xx"),
            ("peer answered HTTP 404", "http_4xx"),
            ("cannot write: no space left on device", "disk"),
            ("etag_changed", "changed"),
            ("part_too_long: 10 bytes, expected 5", "length"),
            ("body ended at byte 5 of 10", "network"),
            ("key=secret something odd", "other"),
        ];
        for (message, want) in cases {
            assert_eq!(Reason::of(message).as_str(), want, "{message}");
        }
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn the_text_has_help_and_type_before_each_family() {
        let m = Metrics {
            bytes_served: AtomicU64::new(7),
            bytes_downloaded: AtomicU64::new(0),
            bytes_direct: AtomicU64::new(5),
            pieces_failed: AtomicU64::new(0),
            bytes_hashed: AtomicU64::new(0),
            files_hashed: AtomicU64::new(0),
            completed: AtomicU64::new(1),
            paused: AtomicU64::new(0),
            failed: [ZERO; REASONS],
            retries: [ZERO; REASONS],
            restarts: [ZERO; REASONS],
            requests: [ZERO; CLASSES.len()],
            auth_failures: [ZERO; AUTH_ROUTES],
            auth_refused: [ZERO; AUTH_ROUTES],
        };
        m.answered(200);
        m.answered(404);
        m.answered(999);
        m.failed("gave up after 3 attempts: x");
        m.paused();
        m.auth_failed(AuthRoute::Torznab);
        m.auth_refused(AuthRoute::Qbit);
        m.hashed(1 << 20);
        m.hashed(5);
        m.hashed_file();
        let text = render(
            &m,
            Gauges {
                active: 2,
                queued: 3,
                connections: ConnectionCounts {
                    open: 4,
                    refused_max_connections: 5,
                    refused_max_connections_per_ip: 6,
                    evicted_idle: 8,
                },
            },
        );
        assert!(text.contains("jack_served_bytes_total 7\n"));
        assert!(text.contains("jack_hashed_bytes_total 1048581\n"));
        assert!(text.contains("jack_hashed_files_total 1\n"));
        assert!(text.contains("jack_transfers_queued 3\n"));
        assert!(text.contains("jack_downloaded_direct_bytes_total 5\n"));
        assert!(text.contains("jack_open_connections 4\n"));
        assert!(text.contains("jack_http_connections_evicted_total 8\n"));
        assert!(text.contains("jack_http_requests_total{class=\"2xx\"} 1\n"));
        // 1 answered by a handler, 11 by the accept thread.
        assert!(text.contains("jack_http_requests_total{class=\"5xx\"} 12\n"));
        assert!(text.contains(
            "# TYPE jack_connections_refused_total counter\njack_connections_refused_total{reason=\"max_connections\"} 5\njack_connections_refused_total{reason=\"max_connections_per_ip\"} 6\n"
        ));
        assert!(text.contains("jack_downloads_failed_total{reason=\"retries_exhausted\"} 1\n"));
        assert!(text.contains("jack_downloads_paused_total 1\n"));
        assert!(
            !text.contains("reason=\"paused\""),
            "a pause is no failure reason"
        );
        assert!(text.contains("jack_auth_failures_total{route=\"torznab\"} 1\n"));
        assert!(text.contains("jack_auth_failures_total{route=\"peer\"} 0\n"));
        assert!(text.contains("jack_auth_refused_total{route=\"qbit\"} 1\n"));
        for (i, r) in AuthRoute::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert!(text.ends_with('\n'));
    }
}
