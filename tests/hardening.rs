//! A node no one can knock over (issue 19), against the real binary: request
//! bodies no route takes, a slow request head, idle connections filling
//! the cap, and a thread that cannot be started. Every client binds
//! 127.0.0.0/8; every flood is bounded in time and bytes.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{Site, connect_from, emulated, get, request_from, wait_for};

/// Resident memory of `pid` in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Everything the server sends on `s` until it closes (or 10 s pass).
fn read_all(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "connection not closed: {e}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of the first response on `s` (`None`: closed without one),
/// the connection left open.
fn first_status(s: &mut TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) if got.is_empty() => return None,
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    statuses(&String::from_utf8_lossy(&got))
        .first()
        .map(|s| s.to_string())
}

/// The status line of every response in `text`.
fn statuses(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect()
}

#[test]
fn a_body_no_route_takes_is_refused_unread_and_costs_no_memory() {
    let site = Site::new("");
    let node = site.start();
    let addr = node.addr;

    // 1 TiB announced to a route that takes no body: 413 at once, nothing
    // allocated, the connection closed.
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n"
    )
    .unwrap();
    let answer = read_all(&mut s);
    assert_eq!(statuses(&answer), ["413"], "{answer}");
    assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(get(addr, "/ping").status, 200, "the node keeps serving");

    // Six clients send 50 MiB each to routes that take no body.
    let before = rss_kib(node.pid());
    let senders: Vec<_> = ["/ping", "/handshake", "/peer/search"]
        .iter()
        .cycle()
        .take(6)
        .map(|path| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                let len: u64 = 50 << 20;
                write!(
                    s,
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"
                )
                .unwrap();
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0u64;
                while sent < len {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                    sent += chunk.len() as u64;
                }
                let answer = read_all(&mut s);
                (sent, answer)
            })
        })
        .collect();
    for t in senders {
        let (sent, answer) = t.join().unwrap();
        assert!(sent < 50 << 20, "the node read a whole 50 MiB body");
        assert!(
            answer.is_empty() || statuses(&answer) == ["413"],
            "{answer}"
        );
    }
    let after = rss_kib(node.pid());
    if !emulated() {
        assert!(
            after < before + 8 * 1024,
            "RSS went from {before} KiB to {after} KiB"
        );
    }
    assert_eq!(get(addr, "/ping").status, 200);

    // A short chunked body left unread is drained: the connection goes on.
    let mut s = TcpStream::connect(addr).unwrap();
    let chunk = format!("400\r\n{}\r\n", "y".repeat(0x400));
    let mut req =
        "POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
    for _ in 0..8 {
        req.push_str(&chunk);
    }
    req.push_str("0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let answer = read_all(&mut s);
    assert_eq!(statuses(&answer).len(), 2, "{answer}");

    // An endless chunked body: cut after the cap, one answer and no other
    // (the rest is never read as a request).
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut writer = s.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let flood = std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        // GET-looking chunks: read as requests, they would be answered.
        let data = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n".repeat(32);
        let chunk = format!("{:x}\r\n{data}\r\n", data.len());
        while start.elapsed() < Duration::from_secs(10) {
            if writer.write_all(chunk.as_bytes()).is_err() {
                return (true, sent);
            }
            sent += chunk.len() as u64;
        }
        (false, sent)
    });
    let answer = read_all(&mut s);
    let (cut, sent) = flood.join().unwrap();
    assert!(cut, "the endless body was read for 10 s ({sent} bytes)");
    assert_eq!(statuses(&answer).len(), 1, "{answer}");
    assert_eq!(get(addr, "/ping").status, 200);
}

#[test]
fn a_request_head_must_arrive_within_the_header_timeout() {
    let site = Site::new("header_timeout_ms = 1000\nread_timeout_ms = 30000\n");
    let node = site.start();
    let addr = node.addr;
    let mut slow = TcpStream::connect(addr).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let start = Instant::now();
    let dripping = std::thread::spawn(move || {
        // One byte every 200 ms, for at most 10 s.
        let head = "GET /ping HTTP/1.1\r\nHost: x\r\n".to_string() + &"X-A: b\r\n".repeat(10);
        for b in head.bytes() {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // Meanwhile a normal request is answered.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(addr, "/ping").status, 200);
    let answer = read_all(&mut slow);
    let took = start.elapsed();
    // The 408, or a reset when the next dripped byte reached the closed
    // socket before the client read it.
    assert!(
        answer.is_empty() || statuses(&answer) == ["408"],
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "cut after {took:?}"
    );
    dripping.join().unwrap();
}

/// `n` connections from `from` that send nothing.
fn idle_from(from: &str, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| connect_from(from, addr)).collect()
}

#[test]
fn idle_connections_make_room_and_busy_ones_do_not() {
    let site =
        Site::new("max_connections = 24\nmax_connections_per_ip = 4\nheader_timeout_ms = 20000\n");
    let node = site.start();
    let addr = node.addr;
    // Six addresses hold four idle connections each: the cap.
    let mut idle: Vec<TcpStream> = (2..=7)
        .flat_map(|i| idle_from(&format!("127.0.0.{i}"), addr, 4))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..3 {
        let start = Instant::now();
        let r = request_from("127.0.0.1", addr, "GET", "/ping");
        assert_eq!(r.status, 200, "round {round}: {}", r.head);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
    // Idle connections were closed to make room.
    let mut closed = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        if s.read(&mut [0u8; 1]).is_ok_and(|n| n == 0) {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed");
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));

    // Every connection busy (each in the middle of its request head, within
    // the header deadline): a newcomer gets the quick 503.
    let busy: Vec<TcpStream> = (2..=7)
        .flat_map(|i| idle_from(&format!("127.0.0.{i}"), addr, 4))
        .map(|mut s| {
            s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let r = request_from("127.0.0.1", addr, "GET", "/ping");
    assert_eq!(r.status, 503, "{}", r.head);
    assert!(start.elapsed() < Duration::from_secs(2));
    drop(busy);
    wait_for("served again", Duration::from_secs(5), || {
        request_from("127.0.0.1", addr, "GET", "/ping").status == 200
    });
    let metrics = support::request(addr, "GET", "/metrics", &[("X-Api-Key", support::KEY)]);
    let text = String::from_utf8_lossy(&metrics.body);
    let evicted: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("jack_http_connections_evicted_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(evicted >= 1, "{text}");
}

#[test]
fn a_thread_that_cannot_start_refuses_one_connection_and_accepting_goes_on() {
    let site = Site::new("");
    let mut cmd = site.command(&["--config", site.config().to_str().unwrap(), "run"]);
    cmd.env("JACK_FAULT_SPAWN_FAILS", "3");
    let node = support::Node::spawn(cmd);
    let addr = node.addr;
    // Each connection keeps its thread (keep-alive, held open), so past the
    // pool's idle threads each new one needs a thread started: whichever
    // three starts fail, exactly three connections are refused, and the
    // accept loop goes on serving the others.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = write!(s, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
        match first_status(&mut s).as_deref() {
            None | Some("503") => refused += 1,
            Some(status) => assert_eq!(status, "200", "connection {i}"),
        }
        held.push(s);
    }
    assert_eq!(refused, 3);
    assert_eq!(get(addr, "/ping").status, 200);
    node.wait_log(
        "cannot start a thread for a connection",
        Duration::from_secs(2),
    );
}
