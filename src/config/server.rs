//! `[server]` and `[[server.peer_keys]]`: where the node listens, its key,
//! its friends' keys ([`PeerKey`], [`KeyCheck`]) and the limits of the
//! serving plane, each scalar key declared once in [`ServerConfig`]. This
//! module must not open a socket: it only says what the server is to be.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::limits::MAX_RATE;
use super::schema::{Key, section};
use super::secret::{Secret, SecretOrigin};
use super::walk::{Cx, Table, check_url};

const LIMIT_THREADS: u64 = 1024;

/// `hash_rate`'s default: 32 MiB/s, a fraction of a disk's sequential rate.
const HASH_RATE: u64 = 32 << 20;

/// The lowest `hash_rate` but 0: 1 MiB/s (one read of the hasher's
/// buffer a second); below it a 4 GB film takes more than an hour.
pub const MIN_HASH_RATE: u64 = 1 << 20;

section! {
    #[derive(Debug, Clone)]
    pub struct ServerConfig {
        pub listen: SocketAddr,
        pub public_url: String,
        pub api_key: Secret,
        /// Friends' own keys (`[[server.peer_keys]]`): `/handshake` and `/peer/*` only.
        pub peer_keys: Vec<PeerKey>,
        /// Reverse proxies whose `X-Forwarded-For` names the client
        /// (`http::gate`); empty: the header is never read.
        pub trusted_proxies: Vec<Network>,
    }
    keys {
        pub handler_threads: usize = Key::count(
            "handler_threads", 8, 1..=LIMIT_THREADS,
            "threads answering HTTP requests: how many requests are served at once",
        ),
        /// Read timeout of every accepted connection (idle keep-alive, slow senders).
        pub read_timeout: std::time::Duration = Key::millis(
            "read_timeout_ms", 30_000, 100..=3_600_000,
            "a connection idle (no request bytes) this long is closed",
        ),
        /// Write timeout of every accepted connection (slow readers).
        pub write_timeout: std::time::Duration = Key::millis(
            "write_timeout_ms", 60_000, 100..=3_600_000,
            "a client that accepts no response bytes this long is disconnected",
        ),
        /// Total time a client has to send a whole request head.
        pub header_timeout: std::time::Duration = Key::millis(
            "header_timeout_ms", 10_000, 100..=600_000,
            "total time a client has to send a whole request head",
        ),
        /// Open connections above which new ones get a quick 503.
        pub max_connections: usize = Key::count(
            "max_connections", 256, 1..=65_536,
            "open connections at most; above it new ones get a quick 503",
        ),
        /// Open connections from one client address above which its new ones
        /// get the same 503 (a value above `max_connections` changes nothing).
        pub max_connections_per_ip: usize = Key::count(
            "max_connections_per_ip", 32, 1..=65_536,
            "open connections at most from one client address",
        ),
        /// Threads that send file bodies.
        pub stream_threads: usize = Key::count(
            "stream_threads", 16, 1..=LIMIT_THREADS,
            "threads sending file bodies: how many files are sent at once",
        ),
        /// File bodies one key may have in flight at once.
        pub max_streams_per_key: usize = Key::count(
            "max_streams_per_key", 4, 1..=1024,
            "file bodies one key may have in flight at once",
        ),
        /// Bytes per second: a file body whose average rate over
        /// `send_rate_window_ms` falls below it is cut; 0 disables.
        pub min_send_rate: u64 = Key::count(
            "min_send_rate", 8192, 0..=1 << 30,
            "bytes per second a file body must average over send_rate_window_ms (0: no minimum)",
        ),
        /// The window `min_send_rate` is averaged over, in milliseconds.
        pub send_rate_window: std::time::Duration = Key::millis(
            "send_rate_window_ms", 30_000, 1000..=3_600_000,
            "the window min_send_rate is averaged over",
        ),
        /// Bytes per second all friends together may take from this node
        /// (library file bodies); 0: no limit (`limits`, `rate::UPLOAD`).
        pub max_upload_rate: u64 = Key::count(
            "max_upload_rate", 0, 0..=MAX_RATE,
            "bytes per second all friends together may take from this node (0: no limit)",
        ),
        /// Wrong credentials one client address (IPv6: its /64) may present
        /// per minute before every credential check from it gets 429 until
        /// it cools down.
        pub auth_failures_per_minute: u64 = Key::count(
            "auth_failures_per_minute", 10, 1..=100_000,
            "wrong credentials one client address may present per minute before 429",
        ),
        /// How often the libraries are rescanned.
        pub library_rescan: std::time::Duration = Key::secs(
            "library_rescan_secs", 300, 1..=604_800,
            "how often the libraries are rescanned, in seconds",
        ),
        /// Most items the catalogue holds (its memory bound).
        pub max_catalogue_items: usize = Key::count(
            "max_catalogue_items", 200_000, 1..=10_000_000,
            "most video files the catalogue holds",
        ),
        /// Bytes per second the background hasher reads library files at
        /// (content digests, `serve/hasher`); 0: as fast as the disk goes.
        pub hash_rate: u64 = Key::count(
            "hash_rate", HASH_RATE, 0..=MAX_RATE,
            "bytes per second the content digests of library files are computed at (0: no cap)",
        ),
    }
    hand [
        Key::hand("listen", Some("\"127.0.0.1:5225\""), "address and port to bind"),
        Key::hand("public_url", Some("\"http://127.0.0.1:5225\""), "how Radarr/Sonarr and peers reach this node"),
        Key::hand("api_key", None, "the key peers and Radarr/Sonarr present (a secret)"),
        Key::hand("peer_keys", None, "friends' own keys ([[server.peer_keys]])"),
        Key::hand("trusted_proxies", Some("[]"), "reverse proxies whose X-Forwarded-For names the client"),
    ]
}

/// An address or a network (`10.0.0.0/8`, `fd00::/8`): a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    /// `addr` or `addr/prefix`; `None` when it is neither.
    pub fn parse(s: &str) -> Option<Network> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => bits,
            Some(p) => crate::lexical::decimal::<u8>(p).filter(|&n| n <= bits)?,
        };
        // An IPv4-mapped IPv6 entry is its IPv4 network (a prefix short of
        // the mapping would name IPv6 addresses and IPv4 ones at once).
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return (prefix >= 96).then(|| Network {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
        Some(Network { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix.min(32)))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A friend's key: its owner's name (for logs) and how to recognise it.
#[derive(Debug, Clone)]
pub struct PeerKey {
    pub name: String,
    pub check: KeyCheck,
}

impl PeerKey {
    /// The keys of a `[[server.peer_keys]]` entry.
    pub const KEYS: &'static [Key] = &[
        Key::hand("name", None, "the friend's name, for logs: unique"),
        Key::hand("key", None, "the friend's key (a secret)"),
        Key::hand("key_sha256", None, "instead of key: its SHA-256, 64 hex"),
    ];
}

/// A per-peer key as written (`key`) or only its SHA-256 (`key_sha256`).
#[derive(Debug, Clone)]
pub enum KeyCheck {
    Key(Secret),
    Sha256([u8; 32]),
}

impl KeyCheck {
    /// Whether two entries let in the same key the same way.
    pub fn same(&self, other: &KeyCheck) -> bool {
        match (self, other) {
            (KeyCheck::Key(a), KeyCheck::Key(b)) => a.expose() == b.expose(),
            (KeyCheck::Sha256(a), KeyCheck::Sha256(b)) => a == b,
            _ => false,
        }
    }
}

fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl ServerConfig {
    /// `[server]` as TOML (`check-config`), the api key redacted and the
    /// friends' keys shown by their hash.
    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[server]")?;
        writeln!(f, "listen = \"{}\"", self.listen)?;
        writeln!(f, "public_url = {:?}", self.public_url)?;
        writeln!(f, "api_key = {}", self.api_key)?;
        let proxies: Vec<String> = self
            .trusted_proxies
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        writeln!(f, "trusted_proxies = [{}]", proxies.join(", "))?;
        self.show_keys(f)?;
        for k in &self.peer_keys {
            writeln!(f, "\n[[server.peer_keys]]\nname = {:?}", k.name)?;
            match &k.check {
                KeyCheck::Key(secret) => writeln!(f, "key = {secret}")?,
                KeyCheck::Sha256(d) => writeln!(f, "key_sha256 = \"{}\"", crate::keys::hex(d))?,
            }
        }
        Ok(())
    }
}

impl Cx<'_> {
    pub(super) fn server(&mut self, top: &mut Table<'_, '_>) -> ServerConfig {
        self.section(top, "server", ServerConfig::KEYS, |cx, t| {
            let listen = cx.listen(t);
            let public_url = match cx.string(t, "public_url") {
                None => format!("http://{listen}"),
                Some((s, span)) => check_url(&s, &["http", "https"]).unwrap_or_else(|msg| {
                    cx.problem(t.key("public_url"), Some(span), msg);
                    s
                }),
            };
            let api_key = cx
                .secret(t, "api_key")
                .unwrap_or_else(|| Secret::new("", SecretOrigin::Inline));
            let peer_keys = cx.peer_keys(t);
            let trusted_proxies = cx.trusted_proxies(t);
            let server = ServerConfig::walk(
                cx,
                t,
                listen,
                public_url,
                api_key,
                peer_keys,
                trusted_proxies,
            );
            cx.rate(t, "max_upload_rate", server.max_upload_rate, None);
            if (1..MIN_HASH_RATE).contains(&server.hash_rate) {
                let msg = format!(
                    "must be 0 (no cap) or at least {MIN_HASH_RATE} bytes per second (1 MiB/s)"
                );
                cx.problem(t.key("hash_rate"), t.span_of("hash_rate"), msg);
            }
            server
        })
    }

    fn listen(&mut self, t: &mut Table<'_, '_>) -> SocketAddr {
        let default = SocketAddr::from(([127, 0, 0, 1], 5225));
        let Some((s, span)) = self.string(t, "listen") else {
            return default;
        };
        s.parse().unwrap_or_else(|_| {
            let msg = format!("{s:?} is not an address:port such as 127.0.0.1:5225 or [::1]:5225");
            self.problem(t.key("listen"), Some(span), msg);
            default
        })
    }

    /// `trusted_proxies`: addresses or networks, each checked.
    fn trusted_proxies(&mut self, t: &mut Table<'_, '_>) -> Vec<Network> {
        let span = t.span_of("trusted_proxies");
        let mut out = Vec::new();
        for entry in self.string_list(t, "trusted_proxies") {
            match Network::parse(&entry) {
                Some(n) => out.push(n),
                None => {
                    let msg = format!(
                        "{entry:?} is not an address or a network such as 127.0.0.1, 10.0.0.0/8 or fd00::/8"
                    );
                    self.problem(t.key("trusted_proxies"), span.clone(), msg);
                }
            }
        }
        out
    }

    /// `[[server.peer_keys]]`: a unique `name` and exactly one of `key` or
    /// `key_sha256`.
    fn peer_keys(&mut self, server: &mut Table<'_, '_>) -> Vec<PeerKey> {
        let mut out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (mut t, span) in self.array_of_tables(server, "peer_keys", PeerKey::KEYS) {
            let name = self.unique_name(&mut t, &mut names, "peer key");
            let has_key = t.span_of("key").is_some();
            let has_hash = t.span_of("key_sha256").is_some();
            let check = match (has_key, has_hash) {
                (true, false) => self.secret(&mut t, "key").map(KeyCheck::Key),
                (false, true) => match self.string(&mut t, "key_sha256") {
                    Some((h, hspan)) => match parse_sha256_hex(&h) {
                        Some(d) => Some(KeyCheck::Sha256(d)),
                        None => {
                            let msg = "must be 64 hexadecimal characters (the SHA-256 of the key)";
                            self.problem(t.key("key_sha256"), Some(hspan), msg);
                            None
                        }
                    },
                    None => None,
                },
                (true, true) => {
                    t.get("key");
                    t.get("key_sha256");
                    let msg = "set key or key_sha256, not both";
                    self.problem(t.key("key"), Some(span.clone()), msg);
                    None
                }
                (false, false) => {
                    let msg = "required: key or key_sha256";
                    self.problem(t.key("key"), Some(span.clone()), msg);
                    None
                }
            };
            self.finish(t);
            if let (Some((name, _)), Some(check)) = (name, check) {
                out.push(PeerKey { name, check });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;
    use crate::config::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_server_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\nheader_timeout_ms = 99\n",
                "server.header_timeout_ms",
                Some(3),
                "must be at least 100, got 99",
            ),
            (
                "[server]\napi_key = \"k\"\nheader_timeout_ms = 600001\n",
                "server.header_timeout_ms",
                Some(3),
                "must be at most 600000",
            ),
            (
                "[server]\napi_key = \"k\"\nstream_threads = 0\n",
                "server.stream_threads",
                Some(3),
                "must be at least 1, got 0",
            ),
            (
                "[server]\napi_key = \"k\"\nstream_threads = 1025\n",
                "server.stream_threads",
                Some(3),
                "must be at most 1024",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_streams_per_key = 0\n",
                "server.max_streams_per_key",
                Some(3),
                "must be at least 1, got 0",
            ),
            (
                "[server]\napi_key = \"k\"\nmin_send_rate = -1\n",
                "server.min_send_rate",
                Some(3),
                "must be at least 0, got -1",
            ),
            (
                "[server]\napi_key = \"k\"\nmin_send_rate = 1073741825\n",
                "server.min_send_rate",
                Some(3),
                "must be at most 1073741824",
            ),
            (
                "[server]\napi_key = \"k\"\nsend_rate_window_ms = 999\n",
                "server.send_rate_window_ms",
                Some(3),
                "must be at least 1000",
            ),
            (
                "[server]\napi_key = \"k\"\nauth_failures_per_minute = 0\n",
                "server.auth_failures_per_minute",
                Some(3),
                "must be at least 1, got 0",
            ),
            (
                "[server]\napi_key = \"k\"\nauth_failures_per_minute = \"10\"\n",
                "server.auth_failures_per_minute",
                Some(3),
                "expected an integer, found string",
            ),
            (
                "[server]\napi_key = \"k\"\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/33\"]\n",
                "server.trusted_proxies",
                Some(3),
                "\"10.0.0.0/33\" is not an address or a network",
            ),
            (
                "[server]\napi_key = \"k\"\ntrusted_proxies = \"127.0.0.1\"\n",
                "server.trusted_proxies",
                Some(3),
                "expected an array of strings",
            ),
            (
                "[server]\napi_key = \"k\"\nlisten = \"nowhere\"\n",
                "server.listen",
                Some(3),
                "is not an address:port",
            ),
            (
                "[server]\napi_key = \"k\"\nlistne = \"127.0.0.1:1\"\n",
                "server.listne",
                Some(3),
                "unknown key",
            ),
            (
                "[server]\napi_key = \"k\"\nhandler_threads = 0\n",
                "server.handler_threads",
                Some(3),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_connections_per_ip = 0\n",
                "server.max_connections_per_ip",
                Some(3),
                "must be at least 1, got 0",
            ),
            (
                "[server]\napi_key = \"k\"\n\nmax_connections_per_ip = 65537\n",
                "server.max_connections_per_ip",
                Some(4),
                "must be at most 65536, got 65537",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_connections_per_ip = \"8\"\n",
                "server.max_connections_per_ip",
                Some(3),
                "expected an integer, found string",
            ),
            (
                "[server]\napi_key = \"k\"\nhandler_threads = \"8\"\n",
                "server.handler_threads",
                Some(3),
                "expected an integer, found string",
            ),
            (
                "[server]\napi_key = \"k\"\npublic_url = \"ftp://x\"\n",
                "server.public_url",
                Some(3),
                "scheme must be",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"bad name\"\nkey = \"x\"\n",
                "server.peer_keys[0].name",
                Some(4),
                "must be 1 to 64 characters",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"x\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"y\"\n",
                "server.peer_keys[1].name",
                Some(7),
                "duplicate peer key name",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nkey = \"x\"\n",
                "server.peer_keys[0].name",
                None,
                "required key is missing",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\n",
                "server.peer_keys[0].key",
                Some(3),
                "required: key or key_sha256",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"x\"\nkey_sha256 = \"00\"\n",
                "server.peer_keys[0].key",
                Some(3),
                "not both",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey_sha256 = \"abc\"\n",
                "server.peer_keys[0].key_sha256",
                Some(5),
                "64 hexadecimal characters",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = { env = \"JACK_TEST_UNSET\" }\n",
                "server.peer_keys[0].key",
                Some(5),
                "JACK_TEST_UNSET is not set",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"\"\n",
                "server.peer_keys[0].key",
                Some(5),
                "must not be empty",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"x\"\nkye = 1\n",
                "server.peer_keys[0].kye",
                Some(6),
                "unknown key",
            ),
            (
                "[server]\napi_key = \"k\"\npeer_keys = \"x\"\n",
                "server.peer_keys",
                Some(3),
                "expected an array of tables",
            ),
        ]);
    }

    /// The keys of issue 19 read as written, each within its range.
    #[test]
    fn the_serving_limits_are_read() {
        let c = parse(
            "[server]\napi_key = \"k\"\nheader_timeout_ms = 100\nstream_threads = 1024\n\
             max_streams_per_key = 1\nmin_send_rate = 0\nsend_rate_window_ms = 3600000\n\
             auth_failures_per_minute = 100000\n\
             trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let s = &c.server;
        let proxies: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(proxies, ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]);
        assert!(s.trusted_proxies[1].contains("10.200.3.4".parse().unwrap()));
        assert!(!s.trusted_proxies[1].contains("11.0.0.1".parse().unwrap()));
        assert!(s.trusted_proxies[0].contains("::ffff:127.0.0.1".parse().unwrap()));
        // A mapped entry is its IPv4 address or network, never all of IPv4.
        let mapped = Network::parse("::ffff:127.0.0.1").unwrap();
        assert_eq!(mapped, Network::parse("127.0.0.1").unwrap());
        assert!(!mapped.contains("198.51.100.7".parse().unwrap()));
        let mapped_net = Network::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped_net.to_string(), "10.0.0.0/8");
        assert_eq!(Network::parse("::ffff:10.0.0.0/95"), None);
        let all = Network::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(s.header_timeout, std::time::Duration::from_millis(100));
        assert_eq!(s.stream_threads, 1024);
        assert_eq!(s.max_streams_per_key, 1);
        assert_eq!(s.min_send_rate, 0, "0 disables the minimum");
        assert_eq!(s.send_rate_window, std::time::Duration::from_secs(3600));
        assert_eq!(s.auth_failures_per_minute, 100_000);
        let shown = c.to_string();
        assert!(
            shown.contains("\nmin_send_rate = 0\nsend_rate_window_ms = 3600000\n"),
            "{shown}"
        );
        assert!(
            shown
                .contains("\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"fd00::/8\"]\n"),
            "{shown}"
        );
    }

    #[test]
    fn peer_keys_take_a_key_or_its_sha256() {
        let text = format!(
            "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"alice\"\nkey = \"alice-key\"\n\
             [[server.peer_keys]]\nname = \"bob\"\nkey_sha256 = \"{}\"\n",
            crate::keys::sha256_hex("bob-key").to_uppercase()
        );
        let c = parse(&text).unwrap();
        let k = &c.server.peer_keys;
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].name, "alice");
        assert!(matches!(&k[0].check, KeyCheck::Key(s) if s.expose() == "alice-key"));
        assert!(
            matches!(&k[1].check, KeyCheck::Sha256(d) if crate::keys::hex(d) == crate::keys::sha256_hex("bob-key"))
        );
        // The effective configuration shows the hash, never the key.
        let shown = c.to_string();
        assert!(shown.contains("[[server.peer_keys]]\nname = \"bob\"\nkey_sha256 = "));
        assert!(!shown.contains("alice-key"));
    }
}
