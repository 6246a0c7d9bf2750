//! The control lane against the real binary: file bodies read at 1 byte/s
//! never hold up `/ping`, the qBittorrent API or Torznab; a body slower than
//! `min_send_rate` is cut within about a window; a friend at 1 Mbit/s is
//! served byte-exact; one key cannot take every stream.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{KEY, enc, item_id, pattern, request, serving_site};

const NAME: &str = "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv";
const MIB: usize = 1024 * 1024;

/// A client with a 4 KiB receive buffer (so the node's send buffer fills
/// after a little) that asks for `url` with `key`.
fn slow_client(addr: SocketAddr, url: &str, key: &str) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut s: TcpStream = s.into();
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n\r\n"
    )
    .unwrap();
    s
}

/// Reads the status line's code (the first 12 bytes) within `limit`.
fn status_within(s: &mut TcpStream, limit: Duration) -> Option<u16> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut line = [0u8; 12];
    s.read_exact(&mut line).ok()?;
    std::str::from_utf8(&line[9..12]).ok()?.parse().ok()
}

/// Reads what is left of a short answer (a refusal) as text.
fn rest(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one byte a second from `s` until `stop`; returns the bytes read.
fn trickle(mut s: TcpStream, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut got = 0;
        let mut last = Instant::now() - Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) {
            if last.elapsed() >= Duration::from_secs(1) {
                let mut b = [0u8; 1];
                match s.read(&mut b) {
                    Ok(0) => return got,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return got,
                }
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        got
    })
}

/// The slowest of three rounds of `/ping`, `/api/v2/app/webapiVersion`
/// (403 without a session: the answer *arr probes for) and Torznab caps.
fn slowest_control_answer(addr: SocketAddr) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        for (path, status) in [
            ("/ping", 200),
            ("/api/v2/app/webapiVersion", 403),
            ("/torznab/api?t=caps", 200),
        ] {
            let t = Instant::now();
            let r = request(addr, "GET", path, &[]);
            slowest = slowest.max(t.elapsed());
            assert_eq!(r.status, status, "{path}");
        }
    }
    slowest
}

/// `jack_served_bytes_total` of the node's `/metrics`.
fn served_bytes(addr: SocketAddr) -> u64 {
    let r = request(addr, "GET", "/metrics", &[("X-Api-Key", KEY)]);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("jack_served_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no served bytes in /metrics:\n{text}"))
}

const QBIT: &str = "[qbittorrent]\nusername = \"u\"\npassword = \"p\"\n";

/// Eight file bodies read at 1 byte/s (twice the handler threads) never
/// hold the threads the control answers need; nor do more bodies than
/// `stream_threads`: four are sent, four wait their turn, and the rest get
/// a quick 503 with `Retry-After`. On a node without the lane the eight took
/// every handler thread and `/ping` waited for `write_timeout_ms`.
#[test]
fn slow_readers_never_hold_the_control_answers() {
    let data = pattern(8 * MIB);
    let (_site, node) = serving_site(
        &format!("stream_threads = 4\nmax_streams_per_key = 64\nmin_send_rate = 0\n{QBIT}"),
        &[(NAME, &data)],
    );
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    // Four sent at once: each gets its head.
    for _ in 0..4 {
        let mut s = slow_client(node.addr, &url, KEY);
        assert_eq!(status_within(&mut s, Duration::from_secs(5)), Some(200));
        readers.push(trickle(s, stop.clone()));
    }
    // Four more wait in the queue (no head yet).
    let queued: Vec<TcpStream> = (0..4).map(|_| slow_client(node.addr, &url, KEY)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let slowest = slowest_control_answer(node.addr);
    assert!(slowest < support::at_once(), "{slowest:?}");
    // The pool and its queue are full: a quick, retryable refusal.
    for _ in 0..2 {
        let t = Instant::now();
        let mut s = slow_client(node.addr, &url, KEY);
        assert_eq!(status_within(&mut s, Duration::from_secs(2)), Some(503));
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        let text = rest(&mut s);
        assert!(text.contains("Retry-After: 5\r\n"), "{text}");
        assert!(text.contains("\"UNAVAILABLE\""), "{text}");
    }
    for s in queued {
        readers.push(trickle(s, stop.clone()));
    }
    let slowest = slowest_control_answer(node.addr);
    assert!(slowest < support::at_once(), "{slowest:?}");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

/// A reader slower than `min_send_rate` (here 100 KB/s over 1 s) is cut
/// within about a window, and never sees a body that looks complete.
#[test]
fn a_body_slower_than_the_minimum_rate_is_cut_within_a_window() {
    let data = pattern(8 * MIB);
    let (_site, node) = serving_site(
        "min_send_rate = 100000\nsend_rate_window_ms = 1000\n",
        &[(NAME, &data)],
    );
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let mut s = slow_client(node.addr, &url, KEY);
    let t = Instant::now();
    assert_eq!(status_within(&mut s, Duration::from_secs(5)), Some(200));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = trickle(s, stop.clone());
    // The node cuts the body (and frees its stream thread) within about a
    // window; the client never gets the whole file.
    node.wait_log(
        "file body cut: slower than min_send_rate",
        Duration::from_secs(4),
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    let got = reader.join().unwrap();
    assert!(got < data.len(), "{got}");
    // Still serving.
    assert_eq!(request(node.addr, "GET", "/ping", &[]).status, 200);
}

/// A friend on a 1 Mbit/s uplink (125 KB/s) is served whole and byte-exact,
/// even with a 1 s window (the default is 30 s).
#[test]
fn a_reader_at_one_megabit_completes_byte_exact() {
    let data = pattern(MIB);
    let (_site, node) = serving_site("send_rate_window_ms = 1000\n", &[(NAME, &data)]);
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let mut s = slow_client(node.addr, &url, KEY);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 12_500];
    loop {
        // 12,500 bytes every 100 ms at most: 125 KB/s.
        let due = Duration::from_millis(100) * (raw.len() / buf.len()) as u32;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {} bytes: {e}", raw.len()),
        }
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(h) = head_end
            && raw.len() - h - 4 >= data.len()
        {
            break;
        }
    }
    let h = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200 "));
    assert!(raw[h + 4..] == data[..], "byte-exact");
    assert!(
        start.elapsed() > Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
}

/// `max_streams_per_key = 2`: a friend's third body at once gets a quick
/// 503 with `Retry-After` while another key is served, and the key has its
/// place back when one of its bodies ends.
/// A long body counts in `/metrics` (and the page's served rate) as it
/// goes, not only at its end: half-way through a 32 MiB body read at
/// 8 MiB/s (more than the socket buffers hold), part of it is counted.
#[test]
fn served_bytes_are_counted_while_a_body_is_sent() {
    let data = pattern(32 * MIB);
    let (_site, node) = serving_site("", &[(NAME, &data)]);
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let mut s = slow_client(node.addr, &url, KEY);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let (mut got, mut midway) = (0usize, None);
    let mut buf = vec![0u8; 64 * 1024];
    while got < data.len() {
        // 64 KiB every 8 ms at most: 8 MiB/s.
        let due = Duration::from_millis(8) * (got / buf.len()) as u32;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
        if midway.is_none() && got > data.len() / 2 {
            midway = Some(served_bytes(node.addr));
        }
    }
    let midway = midway.expect("the body was read past half-way");
    assert!(
        midway > 0 && midway < data.len() as u64,
        "served bytes half-way through a {} byte body: {midway}",
        data.len()
    );
    let after = Instant::now() + Duration::from_secs(5);
    while served_bytes(node.addr) < data.len() as u64 && Instant::now() < after {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(served_bytes(node.addr), data.len() as u64);
}

#[test]
fn one_key_cannot_take_every_stream() {
    let data = pattern(8 * MIB);
    let small = pattern(100_000);
    let (_site, node) = serving_site(
        "max_streams_per_key = 2\n\
         [[server.peer_keys]]\nname = \"alice\"\nkey = \"alice-key\"\n",
        &[(NAME, &data), ("Small.2001.1080p.mkv", &small)],
    );
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let small_url = format!(
        "/peer/items/{}/file",
        enc(&item_id(node.addr, "Small.2001.1080p.mkv"))
    );
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = slow_client(node.addr, &url, "alice-key");
            assert_eq!(status_within(&mut s, Duration::from_secs(5)), Some(200));
            s
        })
        .collect();
    let t = Instant::now();
    let mut third = slow_client(node.addr, &url, "alice-key");
    assert_eq!(status_within(&mut third, Duration::from_secs(2)), Some(503));
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    let text = rest(&mut third);
    assert!(text.contains("Retry-After: 5\r\n"), "{text}");
    assert!(text.contains("for this key"), "{text}");
    // The node's own key is another key: served whole.
    let r = request(node.addr, "GET", &small_url, &[("X-Api-Key", KEY)]);
    assert_eq!(r.status, 200);
    assert!(r.body == small, "byte-exact");
    // One of alice's bodies ends: she has a place again.
    drop(held.pop());
    let start = Instant::now();
    loop {
        let r = request(node.addr, "GET", &small_url, &[("X-Api-Key", "alice-key")]);
        if r.status == 200 {
            assert!(r.body == small);
            break;
        }
        assert_eq!(r.status, 503);
        assert!(start.elapsed() < Duration::from_secs(5), "no place back");
        std::thread::sleep(Duration::from_millis(50));
    }
}
