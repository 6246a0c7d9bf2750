//! Peers over https with the real binary: a TLS front (rustls, a
//! self-signed certificate made by rcgen) before a real jack node. With the
//! certificate as the peer's `ca_file` the download completes byte for
//! byte; without it the row fails at once with `certificate` in its error,
//! the handshake is tried once and no request reaches the node.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use support::{
    KEY, Site, drop_grab, item_id, pattern, request, serving_site, status_json, wait_for,
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

/// A TLS front for `target` with a fresh self-signed certificate for
/// 127.0.0.1; its address, the certificate (PEM) and the counters.
fn tls_front(target: SocketAddr) -> (SocketAddr, String, Arc<Seen>) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
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
    (addr, made.cert.pem(), seen)
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
    let data = pattern(3 * 1024 * 1024 + 5);
    let (_a, alice) = serving_site("", &[(FILE, &data)]);
    let id = item_id(alice.addr, FILE);
    let (front, pem, seen) = tls_front(alice.addr);
    let b = downloader_of(&format!("https://{front}"), "ca_file = \"alice-ca.pem\"\n");
    std::fs::write(b.path().join("alice-ca.pem"), &pem).unwrap();
    let check = b.run_cli(&["check-config"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bob = b.start();
    drop_grab(&b, "Some.Movie.torrent", "alice", &id, TITLE, data.len());
    let dest = b.path().join("data/completed").join(FILE);
    wait_for("the completed file", Duration::from_secs(30), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
    assert_eq!(status_json(&b)["downloads"][0]["attempts"], 1);
    assert!(seen.forwarded.load(Ordering::SeqCst) > 0);
    assert!(!bob.log_text().contains("in clear text"));
    // A TLS body is never taken from the socket (it is ciphertext there).
    let metrics = request(bob.addr, "GET", "/metrics", &[("X-Api-Key", KEY)]);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("\njack_downloaded_direct_bytes_total 0\n"),
        "{text}"
    );
}

#[test]
fn an_https_peer_with_an_untrusted_certificate_fails_at_once_unasked() {
    let (_a, alice) = serving_site("", &[(FILE, b"0123456789")]);
    let id = item_id(alice.addr, FILE);
    let (front, _pem, seen) = tls_front(alice.addr);
    // No ca_file: the bundled roots do not know a self-signed certificate.
    let b = downloader_of(&format!("https://{front}"), "");
    let bob = b.start();
    drop_grab(&b, "Some.Movie.torrent", "alice", &id, TITLE, 10);
    wait_for("a failed row", Duration::from_secs(15), || {
        status_json(&b)["downloads"][0]["status"] == "failed"
    });
    let row = &status_json(&b)["downloads"][0];
    let error = row["error"].as_str().unwrap();
    assert!(error.contains("certificate"), "{error}");
    assert!(error.contains("peer alice"), "{error}");
    assert!(
        b.path()
            .join("data/watch/Some.Movie.torrent.failed")
            .exists()
    );
    // Not tried again: one connection, and not one request byte got through.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen.forwarded.load(Ordering::SeqCst), 0);
    let log = bob.log_text();
    assert!(log.contains("certificate"), "{log}");
    assert!(!log.contains("download retry"), "{log}");
    assert!(!log.contains(KEY), "{log}");
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
