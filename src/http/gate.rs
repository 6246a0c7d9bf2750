//! The one door every credential goes through (`PROTOCOL.md` §1): the
//! owner key, friends' keys, the Torznab `apikey`, status-page logins and
//! the qBittorrent password.
//!
//! Owns the constant-time comparison, reading a key from a request's
//! headers, and the guess budget: per client address (IPv4; IPv6 by its
//! /64; an IPv4-mapped IPv6 address as its IPv4 address) at most
//! `server.auth_failures_per_minute` wrong credentials at once, then one
//! more every `60/N` seconds (a GCRA token bucket: one instant per
//! address). Over budget, a check is answered at once with a `Retry-After`
//! and nothing is compared. A missing credential is no guess; only a
//! presented-and-wrong one is charged. At most [`MAX_TRACKED`] addresses
//! are remembered (cooled ones go first, then the nearest to cooling).
//! Failures and refusals are counted in `/metrics` and logged at warn
//! (the client address and the route, never the key): one line per
//! address a minute, at most [`LOG_LINES_PER_MINUTE`] lines a minute in
//! all, each saying how many of that address's were left out since, so a
//! friend with an outdated key shows in the log at once without a
//! guesser filling it. Time comes from the
//! [`Clock`] seam. Must not: sleep, compare a credential for an address
//! over budget, log or label a key.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tiny_http::Request;

use crate::clock::Clock;
use crate::config::Network;
use crate::http::request::{header, header_list};
use crate::http::server::Reply;
use crate::metrics::{AuthRoute, METRICS};

/// Client addresses whose failures are remembered at most (~100 KiB).
pub const MAX_TRACKED: usize = 4096;

/// Warn lines about refused credentials at most a minute (the rest are
/// counted, and the next line says how many were left out).
pub const LOG_LINES_PER_MINUTE: u64 = 10;

/// What a credential check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<T> {
    /// The credential is right: what it names.
    Pass(T),
    /// No credential was presented (not a guess: nothing charged).
    Missing,
    /// A wrong credential (charged to the address).
    Wrong,
    /// The address is over its budget: nothing was compared. Seconds until
    /// a guess is allowed again.
    Busy(u64),
}

/// The `429` of an address over budget (JSON, as `PROTOCOL.md` §1).
pub fn too_many(retry_after: u64) -> Reply {
    Reply::error(
        429,
        "TOO_MANY_REQUESTS",
        "Too many wrong credentials from this address",
    )
    .with_header("Retry-After", &retry_after.to_string())
}

/// The budget's key of a client address: IPv4 as is, an IPv4-mapped IPv6
/// address as its IPv4 address, any other IPv6 address as its /64 (one
/// household or server is usually given a whole /64): the key the
/// connection caps count by too.
pub use tiny_http::client_key;

/// Per-address failure budgets (pure: time is a parameter).
#[derive(Debug)]
pub struct Budget {
    /// Theoretical arrival time per address: the budget is whole again
    /// then. An address absent (or with an instant past) has its whole
    /// budget.
    tat: HashMap<IpAddr, Instant>,
    /// One failure's cost: a minute over the budget.
    interval: Duration,
    /// The whole budget: `per_minute` failures.
    burst: Duration,
    max_tracked: usize,
}

impl Budget {
    pub fn new(per_minute: u64, max_tracked: usize) -> Budget {
        let n = u32::try_from(per_minute.max(1)).unwrap_or(u32::MAX);
        let interval = Duration::from_secs(60) / n;
        Budget {
            tat: HashMap::new(),
            interval,
            burst: interval * n,
            max_tracked: max_tracked.max(1),
        }
    }

    /// Charges one guess to `client` at `now`: `Err(seconds)` when the
    /// address is over budget (nothing charged).
    pub fn take(&mut self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let tat = self.tat.get(&client).copied().unwrap_or(now).max(now);
        let after = tat + self.interval;
        let debt = after - now;
        if debt > self.burst {
            let wait = debt - self.burst;
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        if !self.tat.contains_key(&client) && self.tat.len() >= self.max_tracked {
            self.make_room(now);
        }
        self.tat.insert(client, after);
        Ok(())
    }

    /// Gives back a guess charged by [`Budget::take`] (the credential was
    /// right after all).
    pub fn give_back(&mut self, client: IpAddr, now: Instant) {
        if let Some(tat) = self.tat.get_mut(&client) {
            match tat.checked_sub(self.interval) {
                Some(t) if t > now => *tat = t,
                _ => {
                    self.tat.remove(&client);
                }
            }
        }
    }

    /// Forgets the cooled addresses, and if none was, the one nearest to
    /// cooling.
    fn make_room(&mut self, now: Instant) {
        self.tat.retain(|_, tat| *tat > now);
        if self.tat.len() >= self.max_tracked
            && let Some(first) = self.tat.iter().min_by_key(|(_, t)| **t).map(|(ip, _)| *ip)
        {
            self.tat.remove(&first);
        }
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.tat.len()
    }
}

/// Rate limit of the warn lines: one per address a minute, and
/// [`LOG_LINES_PER_MINUTE`] in all (pure: time is a parameter).
#[derive(Debug)]
struct LogLimit {
    per_address: Budget,
    overall: Budget,
    /// Lines left out since each address's last one.
    suppressed: HashMap<IpAddr, u64>,
}

impl LogLimit {
    fn new() -> LogLimit {
        LogLimit {
            per_address: Budget::new(1, MAX_TRACKED),
            overall: Budget::new(LOG_LINES_PER_MINUTE, 1),
            suppressed: HashMap::new(),
        }
    }

    /// Whether a line about `client` may be written at `now`: `Some(n)`,
    /// with `n` lines about it left out since its last one; else `None`
    /// (counted).
    fn admit(&mut self, client: IpAddr, now: Instant) -> Option<u64> {
        let any = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        if self.per_address.take(client, now).is_ok() && self.overall.take(any, now).is_ok() {
            return Some(self.suppressed.remove(&client).unwrap_or(0));
        }
        if self.suppressed.len() >= MAX_TRACKED && !self.suppressed.contains_key(&client) {
            // Bounded: the counts of the others are lost, not the lines.
            self.suppressed.clear();
        }
        *self.suppressed.entry(client).or_insert(0) += 1;
        None
    }
}

/// The gate: one per process, shared by every route that checks a
/// credential.
pub struct Gate {
    budget: Mutex<Budget>,
    log: Mutex<LogLimit>,
    clock: Arc<dyn Clock>,
    /// `server.trusted_proxies`: peers whose `X-Forwarded-For` is believed.
    proxies: Vec<Network>,
}

/// Who presents a credential, as the gate counts it: the client address
/// (the TCP peer, or behind a trusted proxy the address it forwarded for)
/// and the proxy it came through. Made only by [`Gate::client`], so no
/// route can charge a guess to an address of its own choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    ip: Option<IpAddr>,
    via: Option<IpAddr>,
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{ip}")?,
            None => f.write_str("-")?,
        }
        match self.via {
            Some(proxy) => write!(f, " via={proxy}"),
            None => Ok(()),
        }
    }
}

/// The client behind `peer` given its `X-Forwarded-For` list: walking
/// from the right (the hop nearest to this node), trusted proxies are
/// skipped and the first other address is the client. An entry that is
/// not an address stops the walk at the last trusted hop (a forged list
/// never names a client of the forger's choice beyond it); a list of
/// trusted hops only gives its leftmost one.
fn forwarded_client(peer: IpAddr, forwarded: Option<&str>, proxies: &[Network]) -> Client {
    let trusted = |ip: IpAddr| proxies.iter().any(|n| n.contains(ip));
    let direct = Client {
        ip: Some(peer),
        via: None,
    };
    let Some(list) = forwarded.filter(|_| trusted(peer)) else {
        return direct;
    };
    let mut last = peer;
    for entry in list.rsplit(',') {
        let Some(ip) = forwarded_address(crate::lexical::trim_ows(entry)) else {
            break;
        };
        last = ip;
        if !trusted(ip) {
            break;
        }
    }
    if last == peer {
        return direct;
    }
    Client {
        ip: Some(last),
        via: Some(peer),
    }
}

/// An `X-Forwarded-For` entry as an address: `a.b.c.d`, `a.b.c.d:port`,
/// a bare IPv6 address or `[v6]` / `[v6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    entry.parse::<SocketAddr>().ok().map(|a| a.ip())
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Gate {
    pub fn new(per_minute: u64, clock: Arc<dyn Clock>, proxies: Vec<Network>) -> Gate {
        Gate {
            budget: Mutex::new(Budget::new(per_minute, MAX_TRACKED)),
            log: Mutex::new(LogLimit::new()),
            clock,
            proxies,
        }
    }

    /// Who `req` comes from, as every credential check counts it.
    pub fn client(&self, req: &Request) -> Client {
        let Some(peer) = req.remote_addr().map(|a| a.ip()) else {
            return Client {
                ip: None,
                via: None,
            };
        };
        if self.proxies.is_empty() {
            return Client {
                ip: Some(peer),
                via: None,
            };
        }
        let forwarded = header_list(req, "X-Forwarded-For");
        forwarded_client(peer, forwarded.as_deref(), &self.proxies)
    }

    /// Checks `presented` from `client` with `verify` (which compares in
    /// constant time and says what the credential names): `Missing`
    /// without a credential; `Busy` at once for an address over budget;
    /// else `Pass` or `Wrong` (charged).
    pub fn check<T>(
        &self,
        route: AuthRoute,
        client: Client,
        presented: Option<&str>,
        verify: impl FnOnce(&str) -> Option<T>,
    ) -> Verdict<T> {
        let Some(presented) = presented.filter(|p| !p.is_empty()) else {
            return Verdict::Missing;
        };
        let ip = client
            .ip
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let key = client_key(ip);
        // Charged before comparing, so concurrent guesses cannot overrun
        // the budget; given back when the credential is right.
        if let Err(wait) = self.budget.lock().take(key, self.clock.now()) {
            METRICS.auth_refused(route);
            self.warn(key, |suppressed| {
                format!(
                    "credential check refused: too many wrong credentials route={} client={client} retry_after_secs={wait}{suppressed}",
                    route.as_str()
                )
            });
            return Verdict::Busy(wait);
        }
        match verify(presented) {
            Some(t) => {
                self.budget.lock().give_back(key, self.clock.now());
                Verdict::Pass(t)
            }
            None => {
                METRICS.auth_failed(route);
                self.warn(key, |suppressed| {
                    format!(
                        "wrong credential route={} client={client}{suppressed}",
                        route.as_str()
                    )
                });
                Verdict::Wrong
            }
        }
    }

    /// The key in `req`'s headers (`X-Api-Key`, else `Authorization:
    /// Bearer`), checked as [`Gate::check`] does.
    pub fn key<T>(
        &self,
        route: AuthRoute,
        req: &Request,
        verify: impl FnOnce(&str) -> Option<T>,
    ) -> Verdict<T> {
        self.check(route, self.client(req), presented_key(req), verify)
    }

    /// Logs `line` about the address `key` unless its line of this minute,
    /// or this minute's lines, are spent.
    fn warn(&self, key: IpAddr, line: impl FnOnce(&str) -> String) {
        let admitted = self.log.lock().admit(key, self.clock.now());
        if let Some(left_out) = admitted {
            let suppressed = match left_out {
                0 => String::new(),
                n => format!(" suppressed_lines={n}"),
            };
            log::warn!("{}", line(&suppressed));
        }
    }
}

/// Whether a request is cross-site, as qBittorrent's Web API judges it:
/// its `Origin` (else its `Referer`) names a host and port other than the
/// one it was sent to (`X-Forwarded-Host` when present, else `Host`).
/// Neither header (Radarr, Sonarr, scripts): not cross-site. Hosts compare
/// without case; ports as written (`host` and `host:80` differ, as there).
pub fn cross_site(
    host: Option<&str>,
    forwarded_host: Option<&str>,
    origin: Option<&str>,
    referer: Option<&str>,
) -> bool {
    fn nonempty(v: Option<&str>) -> Option<&str> {
        v.map(crate::lexical::trim_ows).filter(|v| !v.is_empty())
    }
    let Some(source) = nonempty(origin).or(nonempty(referer)) else {
        return false;
    };
    let target = nonempty(forwarded_host).or(nonempty(host)).unwrap_or("");
    let target = target.split_once("://").map_or(target, |(_, rest)| rest);
    match (authority(target), source.split_once("://")) {
        (Some(t), Some((_, rest))) => authority(rest).is_none_or(|s| !same_authority(s, t)),
        _ => true,
    }
}

/// (host, port) of the authority that starts `s` (up to `/`, `?` or `#`),
/// without user information; `None` when there is no host.
fn authority(s: &str) -> Option<(&str, Option<&str>)> {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    let auth = &s[..end];
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a);
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    (!host.is_empty()).then_some((host, port.filter(|p| !p.is_empty())))
}

fn same_authority(a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
    a.0.eq_ignore_ascii_case(b.0) && a.1 == b.1
}

/// The key a request presents: `X-Api-Key`, else `Authorization: Bearer`.
pub fn presented_key(req: &Request) -> Option<&str> {
    match header(req, "X-Api-Key") {
        Some(k) => Some(k),
        None => bearer(header(req, "Authorization")?),
    }
}

/// The token of a request's `Authorization: Bearer <token>` (the
/// qBittorrent API's key: it reads no `X-Api-Key`); `None` without one or
/// with another scheme (`Basic`).
pub fn bearer_key(req: &Request) -> Option<&str> {
    bearer(header(req, "Authorization")?).filter(|k| !k.is_empty())
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = crate::lexical::trim_ows(value).split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| crate::lexical::trim_ows(token))
}

/// Compares two secrets in time that depends on neither's content nor
/// length: both are hashed first, then the digests compared without an
/// early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = sha1_smol::Sha1::from(a).digest().bytes();
    let db = sha1_smol::Sha1::from(b).digest().bytes();
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::Manual;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> Client {
        Client {
            ip: Some(ip(s)),
            via: None,
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_client_counts() {
        let proxies: Vec<Network> = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]
            .iter()
            .map(|n| Network::parse(n).unwrap())
            .collect();
        let via = |client: &str, proxy: &str| Client {
            ip: Some(ip(client)),
            via: Some(ip(proxy)),
        };
        // (peer, X-Forwarded-For, the client counted)
        let cases = [
            // A trusted proxy: the address it forwarded for.
            (
                "127.0.0.1",
                Some("198.51.100.7"),
                via("198.51.100.7", "127.0.0.1"),
            ),
            // Hops of trusted proxies are skipped from the right; what the
            // client itself wrote on the left is never believed.
            (
                "127.0.0.1",
                Some("6.6.6.6, 198.51.100.7, 10.1.2.3"),
                via("198.51.100.7", "127.0.0.1"),
            ),
            (
                "127.0.0.1",
                Some("198.51.100.7:4711"),
                via("198.51.100.7", "127.0.0.1"),
            ),
            (
                "127.0.0.1",
                Some("[2001:db8::5]:4711"),
                via("2001:db8::5", "127.0.0.1"),
            ),
            (
                "127.0.0.1",
                Some("2001:db8::5"),
                via("2001:db8::5", "127.0.0.1"),
            ),
            ("fd00::1", Some("192.0.2.9"), via("192.0.2.9", "fd00::1")),
            // Garbage stops the walk at the last trusted hop.
            (
                "127.0.0.1",
                Some("198.51.100.7, unknown"),
                addr("127.0.0.1"),
            ),
            (
                "127.0.0.1",
                Some("198.51.100.7, garbage, 10.0.0.2"),
                via("10.0.0.2", "127.0.0.1"),
            ),
            // Only trusted hops: the leftmost.
            (
                "127.0.0.1",
                Some("10.0.0.9, 10.0.0.2"),
                via("10.0.0.9", "127.0.0.1"),
            ),
            // No header, or a peer that is not trusted: the peer itself.
            ("127.0.0.1", None, addr("127.0.0.1")),
            ("192.0.2.50", Some("198.51.100.7"), addr("192.0.2.50")),
            ("127.0.0.2", Some("198.51.100.7"), addr("127.0.0.2")),
        ];
        for (peer, list, want) in cases {
            assert_eq!(
                forwarded_client(ip(peer), list, &proxies),
                want,
                "{peer} {list:?}"
            );
        }
        // A forwarded IPv6 client is budgeted by its /64.
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let gate = Gate::new(1, clock, proxies.clone());
        let first = forwarded_client(ip("127.0.0.1"), Some("2001:db8:1:2::5"), &proxies);
        let sibling = forwarded_client(ip("127.0.0.1"), Some("2001:db8:1:2::6"), &proxies);
        let other = forwarded_client(ip("127.0.0.1"), Some("2001:db8:9::6"), &proxies);
        let right = |p: &str| (p == "right").then_some(());
        assert_eq!(
            gate.check(AuthRoute::Peer, first, Some("wrong"), right),
            Verdict::Wrong
        );
        assert!(matches!(
            gate.check(AuthRoute::Peer, sibling, Some("right"), right),
            Verdict::Busy(_)
        ));
        assert_eq!(
            gate.check(AuthRoute::Peer, other, Some("right"), right),
            Verdict::Pass(())
        );
    }

    #[test]
    fn ten_at_once_then_one_every_six_seconds() {
        let t0 = Instant::now();
        let mut b = Budget::new(10, 100);
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert_eq!(b.take(a, t0), Ok(()));
        }
        assert_eq!(b.take(a, t0), Err(6));
        assert_eq!(b.take(a, t0 + Duration::from_millis(5500)), Err(1));
        assert_eq!(b.take(ip("192.0.2.2"), t0), Ok(()), "another address");
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(b.take(a, t1), Ok(()));
        assert_eq!(b.take(a, t1), Err(6));
        // A whole minute later the budget is whole again.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(b.take(a, t2), Ok(()));
        }
        assert!(b.take(a, t2).is_err());
    }

    #[test]
    fn a_right_credential_costs_nothing() {
        let t0 = Instant::now();
        let mut b = Budget::new(2, 100);
        let a = ip("192.0.2.1");
        for _ in 0..100 {
            b.take(a, t0).unwrap();
            b.give_back(a, t0);
        }
        assert_eq!(b.tracked(), 0);
        b.take(a, t0).unwrap();
        b.take(a, t0).unwrap();
        assert_eq!(b.take(a, t0), Err(30));
    }

    #[test]
    fn addresses_are_grouped_as_the_budget_counts_them() {
        let cases = [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::"),
            ("::1", "::"),
        ];
        for (given, want) in cases {
            assert_eq!(client_key(ip(given)), ip(want), "{given}");
        }
    }

    #[test]
    fn memory_is_bounded_and_the_cooled_go_first() {
        let t0 = Instant::now();
        let mut b = Budget::new(10, 4);
        let banned = ip("192.0.2.1");
        for _ in 0..10 {
            b.take(banned, t0).unwrap();
        }
        for i in 2..200u8 {
            // Each new address guesses once: a flood of addresses.
            b.take(
                ip(&format!("192.0.2.{i}")),
                t0 + Duration::from_millis(u64::from(i)),
            )
            .unwrap();
            assert!(b.tracked() <= 4);
        }
        assert!(
            b.take(banned, t0 + Duration::from_secs(1)).is_err(),
            "the address nearest to cooling went, not the banned one"
        );
        // Cooled entries go before any other.
        let later = t0 + Duration::from_secs(600);
        b.take(ip("198.51.100.1"), later).unwrap();
        assert_eq!(b.tracked(), 1);
    }

    #[test]
    fn the_gate_charges_wrong_credentials_only() {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let gate = Gate::new(3, clock.clone(), Vec::new());
        let right = |p: &str| (p == "right").then_some("owner");
        let from = addr("2001:db8::1");
        let neighbour = addr("2001:db8::2");
        for _ in 0..20 {
            assert_eq!(
                gate.check(AuthRoute::Status, from, None, right),
                Verdict::Missing
            );
            assert_eq!(
                gate.check(AuthRoute::Status, from, Some(""), right),
                Verdict::Missing
            );
            assert_eq!(
                gate.check(AuthRoute::Status, from, Some("right"), right),
                Verdict::Pass("owner")
            );
        }
        for _ in 0..3 {
            assert_eq!(
                gate.check(AuthRoute::Qbit, from, Some("wrong"), right),
                Verdict::Wrong
            );
        }
        let mut compared = false;
        let v = gate.check(AuthRoute::Peer, neighbour, Some("right"), |_| {
            compared = true;
            Some(())
        });
        assert_eq!(v, Verdict::Busy(20), "the same /64, and nothing compared");
        assert!(!compared);
        assert_eq!(
            gate.check(AuthRoute::Peer, addr("192.0.2.1"), Some("right"), right),
            Verdict::Pass("owner"),
            "another address is not affected"
        );
        *clock.0.lock() += Duration::from_secs(20);
        assert_eq!(
            gate.check(AuthRoute::Peer, from, Some("right"), right),
            Verdict::Pass("owner")
        );
    }

    #[test]
    fn cross_site_requests_as_qbittorrent_judges_them() {
        let host = Some("127.0.0.1:8080");
        /// Host, X-Forwarded-Host, Origin, Referer, and whether cross-site.
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: &[Case] = &[
            (host, None, None, None, false),
            (host, None, Some(""), Some(""), false),
            (host, None, Some("http://127.0.0.1:8080"), None, false),
            (host, None, Some("https://127.0.0.1:8080"), None, false),
            (
                host,
                None,
                None,
                Some("http://127.0.0.1:8080/api/v2/x?y#z"),
                false,
            ),
            (host, None, Some("http://evil.example"), None, true),
            (host, None, Some("http://evil.example:8080"), None, true),
            (host, None, Some("http://127.0.0.1:9090"), None, true),
            (host, None, Some("http://127.0.0.1"), None, true),
            (host, None, Some("null"), None, true),
            (
                host,
                None,
                None,
                Some("http://evil.example/?h=127.0.0.1:8080"),
                true,
            ),
            (
                host,
                None,
                None,
                Some("http://127.0.0.1:8080@evil.example/"),
                true,
            ),
            // The Origin decides when both are there.
            (
                host,
                None,
                Some("http://evil.example"),
                Some("http://127.0.0.1:8080/"),
                true,
            ),
            (
                host,
                None,
                Some("http://127.0.0.1:8080"),
                Some("http://evil.example/"),
                false,
            ),
            (Some("Jack.LAN"), None, Some("http://jack.lan"), None, false),
            (
                Some("[::1]:5225"),
                None,
                Some("http://[::1]:5225"),
                None,
                false,
            ),
            (
                Some("[::1]:5225"),
                None,
                Some("http://[::2]:5225"),
                None,
                true,
            ),
            (
                Some("proxy:80"),
                Some("jack.example"),
                Some("https://jack.example"),
                None,
                false,
            ),
            (
                Some("jack.example"),
                Some("proxy:80"),
                Some("https://jack.example"),
                None,
                true,
            ),
            (None, None, Some("http://127.0.0.1:8080"), None, true),
        ];
        for &(host, fwd, origin, referer, want) in cases {
            assert_eq!(
                cross_site(host, fwd, origin, referer),
                want,
                "{host:?} {fwd:?} {origin:?} {referer:?}"
            );
        }
    }

    /// One warn line per address a minute, the next one saying how many
    /// were left out; another address has its own line at once; at most
    /// `LOG_LINES_PER_MINUTE` lines a minute in all.
    #[test]
    fn refusals_are_logged_once_per_address_a_minute() {
        let mut limit = LogLimit::new();
        let t0 = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert_eq!(limit.admit(a, t0), Some(0));
        assert_eq!(limit.admit(a, t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.admit(a, t0 + Duration::from_secs(30)), None);
        assert_eq!(limit.admit(b, t0 + Duration::from_secs(30)), Some(0));
        assert_eq!(limit.admit(a, t0 + Duration::from_secs(59)), None);
        assert_eq!(limit.admit(a, t0 + Duration::from_secs(60)), Some(3));
        assert_eq!(limit.admit(a, t0 + Duration::from_secs(61)), None);
        // Many addresses at once: ten lines (two written above), the
        // others counted.
        let t1 = t0 + Duration::from_secs(120);
        let logged = (1..=20)
            .filter(|n| limit.admit(ip(&format!("198.51.100.{n}")), t1).is_some())
            .count();
        assert_eq!(logged as u64, LOG_LINES_PER_MINUTE);
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn secrets_compare() {
        assert!(constant_time_eq(b"key", b"key"));
        assert!(!constant_time_eq(b"key", b"Key"));
        assert!(!constant_time_eq(b"key", b"key2"));
        assert!(!constant_time_eq(b"", b"key"));
    }
}
