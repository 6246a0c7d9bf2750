//! The whole loop as Radarr drives it, with two real jack nodes: node B's
//! Torznab search by TMDB id finds node A's film; the stub link B hands
//! out, added through B's qBittorrent-compatible API, downloads;
//! `torrents/info` goes from `downloading` to `pausedUP` with progress 1
//! and the right `content_path`; the file is byte-identical. A throttling
//! proxy between the nodes (a slow home uplink) keeps the transfer long
//! enough to be seen in flight.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{KEY, Site, pattern, serving_site, throttle};

const FILE: &str = "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv";

/// One request with a body; the response's status, headers and body.
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, headers, raw[split + 4..].to_vec())
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", support::enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn a_torznab_grab_added_through_the_qbittorrent_api_downloads_and_completes() {
    let data = pattern(6 * 1024 * 1024 + 7);
    let rel = format!("The Matrix (1999) {{tmdb-603}}/{FILE}");
    let (_a, alice) = serving_site("", &[(&rel, &data)]);
    let slow = throttle(alice.addr, 3 * 1024 * 1024);
    let port = support::free_port();
    let b = Site::new(&format!(
        "[downloads]\nscan_interval_ms = 100\n\
         [qbittorrent]\nusername = \"radarr\"\npassword = \"secret\"\n\
         [[peers]]\nname = \"alice\"\nurl = \"http://{slow}\"\napi_key = \"{KEY}\"\n"
    ));
    let config = std::fs::read_to_string(b.config()).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\""),
    );
    std::fs::write(b.config(), config).unwrap();
    let bob = b.start();

    // Radarr searches its indexer by TMDB id.
    let search = format!("/torznab/api?t=movie&tmdbid=603&apikey={KEY}");
    let r = support::get(bob.addr, &search);
    assert_eq!(r.status, 200);
    let xml = String::from_utf8(r.body).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let items: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .collect();
    assert_eq!(items.len(), 1, "{xml}");
    let title = items[0]
        .children()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(title.contains("Matrix"), "{title}");
    let link = items[0]
        .children()
        .find(|n| n.has_tag_name("enclosure"))
        .and_then(|n| n.attribute("url"))
        .unwrap()
        .to_string();

    // Radarr's download client: login, add the link, watch the queue.
    let body = form(&[("username", "radarr"), ("password", "secret")]);
    let (status, headers, text) = exchange(
        bob.addr,
        "POST /api/v2/auth/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    assert_eq!((status, text.as_slice()), (200, b"Ok.".as_slice()));
    let sid = headers
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let body = form(&[("urls", &link), ("category", "radarr")]);
    let (status, _, text) = exchange(
        bob.addr,
        &format!(
            "POST /api/v2/torrents/add HTTP/1.1\r\nCookie: {sid}\r\nContent-Type: application/x-www-form-urlencoded"
        ),
        body.as_bytes(),
    );
    assert_eq!((status, text.as_slice()), (200, b"Ok.".as_slice()));

    let mut seen = Vec::new();
    let start = Instant::now();
    let done = loop {
        let (status, _, text) = exchange(
            bob.addr,
            &format!("GET /api/v2/torrents/info?category=radarr HTTP/1.1\r\nCookie: {sid}"),
            b"",
        );
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        if let Some(t) = v.as_array().and_then(|a| a.first()) {
            let state = t["state"].as_str().unwrap().to_string();
            let progress = t["progress"].as_f64().unwrap();
            if seen.last().map(|(s, _): &(String, f64)| s) != Some(&state) || state == "downloading"
            {
                seen.push((state.clone(), progress));
            }
            if state == "pausedUP" {
                break t.clone();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never completed: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        seen.iter()
            .any(|(s, p)| s == "downloading" && *p > 0.0 && *p < 1.0),
        "seen in flight with partial progress: {seen:?}"
    );
    assert_eq!(done["progress"].as_f64(), Some(1.0));
    assert_eq!(done["amount_left"].as_u64(), Some(0));
    assert_eq!(done["size"].as_u64(), Some(data.len() as u64));
    let dest = b.path().join("data/completed").join(FILE);
    let dest = std::fs::canonicalize(dest).unwrap();
    let content = std::fs::canonicalize(done["content_path"].as_str().unwrap()).unwrap();
    assert_eq!(content, dest);
    assert_ne!(done["content_path"], done["save_path"]);
    assert!(std::fs::read(&dest).unwrap() == data, "byte-identical");
    // The same link again starts nothing new (one release, one download).
    let (status, _, _) = exchange(
        bob.addr,
        &format!(
            "POST /api/v2/torrents/add HTTP/1.1\r\nCookie: {sid}\r\nContent-Type: application/x-www-form-urlencoded"
        ),
        form(&[("urls", &link)]).as_bytes(),
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let (_, _, text) = exchange(
        bob.addr,
        &format!("GET /api/v2/torrents/info HTTP/1.1\r\nCookie: {sid}"),
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    drop(bob);
}
