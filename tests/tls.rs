//! Peers over https with the real binary: a TLS front (rustls) before a
//! real jack node, its certificate made by rcgen or, as a friend makes it,
//! by the openssl CLI at test time. A `ca_file` certificate the front
//! presents exactly is trusted whatever its extensions (`CA:TRUE`), names
//! or dates, but not without its private key; otherwise the file's
//! certificates are roots (a small CA's leaf, its name checked). A
//! refused certificate fails the row at once with `certificate` in its
//! error, the handshake tried once and no request reaching the node.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use support::{
    KEY, Node, Site, drop_grab, item_id, need_tool, pattern, request, serving_site, status_json,
    wait_for,
};

const FILE: &str = "Some.Movie.2024.1080p.WEB-DL.x264-GRP.mkv";
const TITLE: &str = "Some.Movie.2024.1080p.WEB-DL.x264-GRP";

/// What the TLS front saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// Plain bytes passed on to the node (requests).
    forwarded: AtomicUsize,
}

/// What a front presents: a certificate chain and the key it signs the
/// handshake with (not necessarily the certificate's).
#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl ResolvesServerCert for Presents {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `chain` signed for with `key`.
fn presents(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Arc<CertifiedKey> {
    let key = provider().key_provider.load_private_key(key).unwrap();
    Arc::new(CertifiedKey::new(chain, key))
}

/// A TLS front for `target` presenting `certified`; its address and counters.
fn front(target: SocketAddr, certified: Arc<CertifiedKey>) -> (SocketAddr, Arc<Seen>) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Presents(certified)));
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counters = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            counters.connections.fetch_add(1, Ordering::SeqCst);
            let (config, counters) = (config.clone(), counters.clone());
            std::thread::spawn(move || relay(client, target, config, &counters));
        }
    });
    (addr, seen)
}

/// A fresh rcgen self-signed certificate for 127.0.0.1 (no `CA:TRUE`),
/// presented, and as PEM.
fn rcgen_self_signed() -> (Arc<CertifiedKey>, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    (
        presents(vec![made.cert.der().clone()], key),
        made.cert.pem(),
    )
}

/// Runs the openssl CLI in `dir` (a test tool only: jack links no OpenSSL).
fn openssl(dir: &Path, args: &[&str]) -> String {
    need_tool("openssl");
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A certificate and its key as PEM files (`<name>.pem`, `<name>.key`).
struct Made {
    pem: PathBuf,
    key: PathBuf,
}

impl Made {
    fn at(dir: &Path, name: &str) -> Made {
        Made {
            pem: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    fn cert(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.pem).unwrap()
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(&self.key).unwrap()
    }

    /// Presents this certificate alone, signing with its own key.
    fn presented(&self) -> Arc<CertifiedKey> {
        presents(vec![self.cert()], self.private_key())
    }
}

/// A self-signed certificate made the usual way, as README tells a friend
/// (`openssl req -x509 ...`: it carries `CA:TRUE`), naming `san`.
fn self_signed(dir: &Path, name: &str, san: &str) -> Made {
    let made = Made::at(dir, name);
    let (pem, key) = (made.pem.to_str().unwrap(), made.key.to_str().unwrap());
    let san = format!("subjectAltName={san}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-days",
            "3650", "-subj", "/CN=host", "-addext", &san,
        ],
    );
    made
}

/// A leaf naming `san`, signed by the self-signed `ca`.
fn leaf_of(dir: &Path, ca: &Made, name: &str, san: &str) -> Made {
    let made = Made::at(dir, name);
    let (pem, key) = (made.pem.to_str().unwrap(), made.key.to_str().unwrap());
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, format!("subjectAltName={san}\n")).unwrap();
    let (csr, ext) = (csr.to_str().unwrap(), ext.to_str().unwrap());
    let subj = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", &subj,
        ],
    );
    let (ca_pem, ca_key) = (ca.pem.to_str().unwrap(), ca.key.to_str().unwrap());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_pem,
            "-CAkey",
            ca_key,
            "-set_serial",
            "2",
            "-days",
            "365",
            "-extfile",
            ext,
            "-out",
            pem,
        ],
    );
    made
}

/// A download of a `size` bytes file from `alice` through a front
/// presenting `certified`, the peer's `ca_file` holding `ca_pem` (PEM).
struct Through {
    b: Site,
    bob: Node,
    seen: Arc<Seen>,
    data: Vec<u8>,
    _alice: (Site, Node),
}

fn download_through(certified: Arc<CertifiedKey>, ca_pem: Option<&[u8]>, size: usize) -> Through {
    let data = pattern(size);
    let (a, alice) = serving_site("", &[(FILE, &data)]);
    let id = item_id(alice.addr, FILE);
    let (front, seen) = front(alice.addr, certified);
    let url = format!("https://{front}");
    let b = match ca_pem {
        Some(pem) => {
            let b = downloader_of(&url, "ca_file = \"alice.pem\"\n");
            std::fs::write(b.path().join("alice.pem"), pem).unwrap();
            let check = b.run_cli(&["check-config"]);
            let stderr = String::from_utf8_lossy(&check.stderr);
            assert!(check.status.success(), "{stderr}");
            b
        }
        None => downloader_of(&url, ""),
    };
    let bob = b.start();
    drop_grab(&b, "Some.Movie.torrent", "alice", &id, TITLE, data.len());
    Through {
        b,
        bob,
        seen,
        data,
        _alice: (a, alice),
    }
}

impl Through {
    fn completes(&self) {
        let dest = self.b.path().join("data/completed").join(FILE);
        wait_for("the completed file", Duration::from_secs(30), || {
            dest.exists() || status_json(&self.b)["downloads"][0]["status"] == "failed"
        });
        let row = &status_json(&self.b)["downloads"][0];
        assert!(dest.exists(), "not completed: {row}");
        assert!(
            std::fs::read(&dest).unwrap() == self.data,
            "final bytes differ"
        );
        assert_eq!(row["attempts"], 1);
    }

    /// Failed at once as a certificate error: one handshake, no request.
    fn refused(&self) {
        wait_for("a failed row", Duration::from_secs(15), || {
            status_json(&self.b)["downloads"][0]["status"] == "failed"
        });
        let row = &status_json(&self.b)["downloads"][0];
        let error = row["error"].as_str().unwrap();
        assert!(error.contains("certificate"), "{error}");
        assert!(
            error.contains("set `ca_file` of `[[peers]] alice`"),
            "{error}"
        );
        let detail = row["error_detail"].as_str().unwrap();
        assert!(
            detail.contains("certificate") && detail.contains("peer alice"),
            "{detail}"
        );
        assert!(
            self.b
                .path()
                .join("data/watch/Some.Movie.torrent.failed")
                .exists()
        );
        // Not tried again: one connection, and not one request byte got through.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(self.seen.connections.load(Ordering::SeqCst), 1);
        assert_eq!(self.seen.forwarded.load(Ordering::SeqCst), 0);
        let log = self.bob.log_text();
        assert!(log.contains("certificate"), "{log}");
        assert!(!log.contains("download retry"), "{log}");
        assert!(!log.contains(KEY), "{log}");
    }
}

/// Decrypts what the client sends to `target` and encrypts the answers, on
/// one thread: each side is read with a short timeout in turn.
fn relay(client: TcpStream, target: SocketAddr, config: Arc<rustls::ServerConfig>, seen: &Seen) {
    let tick = Some(Duration::from_millis(5));
    client.set_read_timeout(tick).unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, client);
    let mut node: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let waiting =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    for _ in 0..20_000 {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let s = node.get_or_insert_with(|| {
                    let s = TcpStream::connect(target).unwrap();
                    s.set_read_timeout(tick).unwrap();
                    s
                });
                seen.forwarded.fetch_add(n, Ordering::SeqCst);
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if waiting(&e) => {}
            Err(_) => return, // the client refused the certificate, or left
        }
        if let Some(s) = node.as_mut() {
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                            return;
                        }
                    }
                    Err(e) if waiting(&e) => break,
                    Err(_) => return,
                }
            }
        }
    }
}

/// A downloading site whose peer `alice` is `url`, plus `extra` in its entry.
fn downloader_of(url: &str, extra: &str) -> Site {
    Site::new(&format!(
        "[downloads]\nscan_interval_ms = 100\nretry_base_delay_ms = 10\nretry_max_delay_ms = 100\n\
         [[peers]]\nname = \"alice\"\nurl = \"{url}\"\napi_key = \"{KEY}\"\n{extra}"
    ))
}

#[test]
fn a_download_from_an_https_peer_with_its_ca_file_completes() {
    let (certified, pem) = rcgen_self_signed();
    let t = download_through(certified, Some(pem.as_bytes()), 3 * 1024 * 1024 + 5);
    t.completes();
    assert!(t.seen.forwarded.load(Ordering::SeqCst) > 0);
    assert!(!t.bob.log_text().contains("in clear text"));
    // A TLS body is never taken from the socket (it is ciphertext there).
    let metrics = request(t.bob.addr, "GET", "/metrics", &[("X-Api-Key", KEY)]);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("\njack_downloaded_direct_bytes_total 0\n"),
        "{text}"
    );
}

#[test]
fn an_https_peer_with_an_untrusted_certificate_fails_at_once_unasked() {
    // No ca_file: the bundled roots do not know a self-signed certificate.
    download_through(rcgen_self_signed().0, None, 10).refused();
}

/// (a) The certificate a friend makes with `openssl req -x509` carries
/// `CA:TRUE`, which webpki refuses as an end entity (`CaUsedAsEndEntity`);
/// pinned as their `ca_file`, it is trusted.
#[test]
fn a_friends_own_openssl_certificate_as_ca_file_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let friend = self_signed(dir.path(), "friend", "IP:127.0.0.1");
    let text = openssl(
        dir.path(),
        &["x509", "-in", "friend.pem", "-noout", "-text"],
    );
    assert!(text.contains("CA:TRUE"), "{text}");
    let pem = std::fs::read(&friend.pem).unwrap();
    download_through(friend.presented(), Some(&pem), 64 * 1024 + 3).completes();
}

/// (b) A small CA as `ca_file` and the leaf it signed for the host.
#[test]
fn a_leaf_signed_by_a_small_ca_in_ca_file_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = self_signed(dir.path(), "ca", "DNS:friend-ca");
    let leaf = leaf_of(dir.path(), &ca, "leaf", "IP:127.0.0.1");
    let pem = std::fs::read(&ca.pem).unwrap();
    download_through(leaf.presented(), Some(&pem), 64 * 1024 + 3).completes();
}

/// (c) Another self-signed certificate than the pinned one: refused at once.
#[test]
fn another_certificate_than_the_pinned_one_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = self_signed(dir.path(), "pinned", "IP:127.0.0.1");
    let other = self_signed(dir.path(), "other", "IP:127.0.0.1");
    let pem = std::fs::read(&pinned.pem).unwrap();
    download_through(other.presented(), Some(&pem), 10).refused();
}

/// (d) A pinned certificate need not name the host the peer's url names
/// (ARCHITECTURE.md, "A pinned certificate"): the pin is the trust.
#[test]
fn a_pinned_certificate_is_trusted_whatever_host_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let friend = self_signed(dir.path(), "friend", "DNS:elsewhere.example");
    let pem = std::fs::read(&friend.pem).unwrap();
    download_through(friend.presented(), Some(&pem), 64 * 1024 + 3).completes();
}

/// A leaf of the `ca_file`'s CA is checked as before: it must name the host.
#[test]
fn a_leaf_of_the_ca_file_naming_another_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = self_signed(dir.path(), "ca", "DNS:friend-ca");
    let leaf = leaf_of(dir.path(), &ca, "leaf", "DNS:elsewhere.example");
    let pem = std::fs::read(&ca.pem).unwrap();
    download_through(leaf.presented(), Some(&pem), 10).refused();
}

/// The pinned certificate presented by a front that does not hold its
/// private key (the handshake signed with another key): refused.
#[test]
fn the_pinned_certificate_without_its_private_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = self_signed(dir.path(), "pinned", "IP:127.0.0.1");
    let impostor = self_signed(dir.path(), "impostor", "IP:127.0.0.1");
    let pem = std::fs::read(&pinned.pem).unwrap();
    let certified = presents(vec![pinned.cert()], impostor.private_key());
    download_through(certified, Some(&pem), 10).refused();
}

/// A pinned certificate past its dates is still the friend's (a pin
/// is withdrawn by taking it out of `ca_file`, not by a calendar).
#[test]
fn a_pinned_certificate_past_its_dates_is_trusted() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let certified = presents(vec![cert.der().clone()], der);
    download_through(certified, Some(cert.pem().as_bytes()), 64 * 1024 + 3).completes();
}

#[test]
fn a_plain_http_peer_beyond_the_lan_is_accepted_with_a_warning() {
    let far = downloader_of("http://203.0.113.7:5225", "");
    let node = far.start();
    node.wait_log(
        "peer alice is reached over plain http at http://203.0.113.7:5225",
        Duration::from_secs(5),
    );
    assert!(node.log_text().contains("key travels in clear text"));
    let near = downloader_of("http://192.168.1.20:5225", "");
    let node = near.start();
    assert!(!node.log_text().contains("clear text"));
}
