//! `[[peers]]`: the friends this node downloads from ([`Peer`]) and
//! [`Peers`], the one handle on their list that downloads, Torznab and the
//! qBittorrent API share and `SIGHUP` replaces whole; a peer's `ca_file`
//! read and parsed into its TLS roots here, at validation. This module must
//! not connect to a peer (that is `download/peer`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use super::schema::Key;
use super::secret::Secret;
use super::walk::{Cx, Table};

#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    /// Base URL without a trailing slash.
    pub url: String,
    pub api_key: Secret,
    /// `ca_file`: a PEM file whose certificates are this peer's only
    /// trusted roots and are trusted themselves when presented exactly (a
    /// friend's self-signed certificate: `download/pinned`); `None` trusts
    /// the bundled Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// The TLS settings `ca_file` makes (its certificates as the roots,
    /// which tells `download/pinned` to take the connection).
    pub tls: Option<ureq::tls::TlsConfig>,
}

/// The `[[peers]]` entries, a handle shared by every part that asks peers
/// (clones share one list). `SIGHUP` replaces the list whole; a lookup,
/// search or transfer takes the list as it is then ([`Peers::current`])
/// and keeps its `Peer` to its end.
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<RwLock<Arc<Vec<Peer>>>>);

impl Peers {
    pub fn new(list: Vec<Peer>) -> Peers {
        Peers(Arc::new(RwLock::new(Arc::new(list))))
    }

    /// The list as it is now.
    pub fn current(&self) -> Arc<Vec<Peer>> {
        self.0.read().clone()
    }

    /// The peer named `name`, as it is now.
    pub fn get(&self, name: &str) -> Option<Peer> {
        self.current().iter().find(|p| p.name == name).cloned()
    }

    /// Swaps in `list` and says what changed, by name only:
    /// `(added, removed, changed)` (a changed url, key or `ca_file`).
    pub fn replace(&self, list: Vec<Peer>) -> (Vec<String>, Vec<String>, Vec<String>) {
        let old = self.current();
        let diff = diff_by_name(
            &old,
            &list,
            |p| &p.name,
            |a, b| {
                a.url == b.url && a.api_key.expose() == b.api_key.expose() && a.ca_file == b.ca_file
            },
        );
        *self.0.write() = Arc::new(list);
        diff
    }
}

/// What changed from `old` to `new`, by name: `(added, removed, changed)`.
pub fn diff_by_name<T>(
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for n in new {
        match old.iter().find(|o| name(o) == name(n)) {
            None => added.push(name(n).to_string()),
            Some(o) if !same(o, n) => changed.push(name(n).to_string()),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| name(n) == name(o)) {
            removed.push(name(o).to_string());
        }
    }
    (added, removed, changed)
}

impl Peer {
    /// A plain `http://` peer whose host is not a loopback, private,
    /// link-local or shared (CGNAT, Tailscale) address, nor a local name:
    /// the key travels in clear text across networks jack cannot vouch for.
    pub fn in_clear_text_beyond_the_lan(&self) -> bool {
        let Some(rest) = self.url.strip_prefix("http://") else {
            return false;
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        !local_host(host)
    }
}

/// Whether `host` (a name or an address) is on this machine or a private
/// network.
fn local_host(host: &str) -> bool {
    use std::net::IpAddr;
    let host = host.to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let [o1, o2, ..] = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || (o1 == 100 && (64..128).contains(&o2))
        }
        Ok(IpAddr::V6(a)) => {
            let first = a.segments()[0];
            a.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
        Err(_) => {
            host == "localhost"
                || [
                    ".localhost",
                    ".local",
                    ".lan",
                    ".internal",
                    ".home.arpa",
                    ".ts.net",
                ]
                .iter()
                .any(|suffix| host.ends_with(suffix))
        }
    }
}

impl Peer {
    /// The keys of a `[[peers]]` entry.
    pub const KEYS: &'static [Key] = &[
        Key::hand(
            "name",
            None,
            "your name for this friend: unique, stubs carry it",
        ),
        Key::hand("url", None, "the friend's node: http:// or https://"),
        Key::hand("api_key", None, "the key the friend gave you (a secret)"),
        Key::hand(
            "ca_file",
            None,
            "https only: a PEM file, its certificates pinned and the only roots",
        ),
    ];

    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[[peers]]\nname = {:?}", self.name)?;
        writeln!(f, "url = {:?}", self.url)?;
        writeln!(f, "api_key = {}", self.api_key)?;
        if let Some(ca) = &self.ca_file {
            writeln!(f, "ca_file = {:?}", ca.display())?;
        }
        Ok(())
    }
}

impl Cx<'_> {
    pub(super) fn peers(&mut self, top: &mut Table<'_, '_>) -> Vec<Peer> {
        let mut out: Vec<Peer> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (mut t, _) in self.array_of_tables(top, "peers", Peer::KEYS) {
            let name = self.unique_name(&mut t, &mut names, "peer");
            let url = self.required_string(&mut t, "url");
            let api_key = self.secret(&mut t, "api_key");
            let url = self.url(&mut t, url, &["http", "https"]);
            let ca = self.ca_file(&mut t, url.as_deref());
            self.finish(t);
            if let (Some((name, _)), Some(url), Some(api_key), Some((ca_file, tls))) =
                (name, url, api_key, ca)
            {
                out.push(Peer {
                    name,
                    url,
                    api_key,
                    ca_file,
                    tls,
                });
            }
        }
        out
    }

    /// A peer's `ca_file` (https only): a readable PEM file with at least one
    /// certificate, which becomes the peer's only trusted roots. `None`
    /// when it is set but wrong (reported); `Some((None, None))` when unset.
    #[allow(clippy::type_complexity)]
    fn ca_file(
        &mut self,
        t: &mut Table<'_, '_>,
        url: Option<&str>,
    ) -> Option<(Option<PathBuf>, Option<ureq::tls::TlsConfig>)> {
        let Some((raw, span)) = self.string(t, "ca_file") else {
            return Some((None, None));
        };
        let key = t.key("ca_file");
        if url.is_some_and(|u| !u.starts_with("https://")) {
            self.problem(key, Some(span), "applies only to an https:// url");
            return None;
        }
        let path = self.resolve(&raw);
        let pem = match std::fs::read(&path) {
            Ok(pem) => pem,
            Err(e) => {
                let msg = format!("cannot read {}: {e}", path.display());
                self.problem(key, Some(span), msg);
                return None;
            }
        };
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("{} is not valid PEM: {e}", path.display());
                    self.problem(key, Some(span), msg);
                    return None;
                }
            }
        }
        if certs.is_empty() {
            let msg = format!("{} holds no PEM certificate", path.display());
            self.problem(key, Some(span), msg);
            return None;
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        Some((Some(path), Some(tls)))
    }
}

#[cfg(test)]
mod tests {

    use crate::config::testing::*;
    use crate::config::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_peers_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"bad name\"\nurl = \"http://x\"\napi_key = \"p\"\n",
                "peers[0].name",
                Some(4),
                "1 to 64 characters",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"http://x\"\napi_key = \"p\"\n[[peers]]\nname = \"a\"\nurl = \"http://y\"\napi_key = \"q\"\n",
                "peers[1].name",
                Some(8),
                "duplicate peer name",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"ftp://x\"\napi_key = \"p\"\n",
                "peers[0].url",
                Some(5),
                "scheme must be http or https",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"http://x\"\napi_key = \"p\"\nca_file = \"/etc/hostname\"\n",
                "peers[0].ca_file",
                Some(7),
                "applies only to an https:// url",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"https://x\"\napi_key = \"p\"\nca_file = \"/nonexistent/ca.pem\"\n",
                "peers[0].ca_file",
                Some(7),
                "cannot read /nonexistent/ca.pem",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"https://x\"\napi_key = \"p\"\nca_file = \"/proc/self/cmdline\"\n",
                "peers[0].ca_file",
                Some(7),
                "holds no PEM certificate",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"https://x\"\napi_key = \"p\"\nca_file = 3\n",
                "peers[0].ca_file",
                Some(7),
                "expected a string",
            ),
        ]);
    }

    #[test]
    fn https_peers_and_their_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["nas.example".to_string()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), made.cert.pem()).unwrap();
        let text = "[server]\napi_key = \"k\"\n\
            [[peers]]\nname = \"a\"\nurl = \"https://nas.example/jack/\"\napi_key = \"p\"\nca_file = \"ca.pem\"\n\
            [[peers]]\nname = \"b\"\nurl = \"https://b.example\"\napi_key = \"q\"\n";
        let c = Config::parse(text, &dir.path().join("jack.toml"), &no_env).unwrap();
        assert_eq!(c.peers.current()[0].url, "https://nas.example/jack");
        assert_eq!(
            c.peers.current()[0].ca_file.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
        assert!(c.peers.current()[0].tls.is_some());
        assert!(c.peers.current()[1].ca_file.is_none() && c.peers.current()[1].tls.is_none());
        assert!(c.to_string().contains("ca_file = "));
    }

    #[test]
    fn plain_http_beyond_the_lan_is_spotted() {
        let peer = |url: &str| Peer {
            name: "a".into(),
            url: url.into(),
            api_key: Secret::new("k", SecretOrigin::Inline),
            ca_file: None,
            tls: None,
        };
        for near in [
            "http://127.0.0.1:5225",
            "http://10.0.0.2",
            "http://172.16.5.4:80/jack",
            "http://192.168.1.20:5225",
            "http://100.101.102.103:5225",
            "http://169.254.1.1",
            "http://[::1]:5225",
            "http://[fd7a:115c:a1e0::1]:5225",
            "http://localhost:5225",
            "http://nas.local:5225",
            "http://nas.tail1234.ts.net",
            "https://203.0.113.7",
            "https://friend.example.com",
        ] {
            assert!(!peer(near).in_clear_text_beyond_the_lan(), "{near}");
        }
        for far in [
            "http://203.0.113.7:5225",
            "http://friend.example.com",
            "http://[2001:db8::1]:5225",
            "http://100.128.0.1",
            "http://172.32.0.1",
        ] {
            assert!(peer(far).in_clear_text_beyond_the_lan(), "{far}");
        }
    }
}
