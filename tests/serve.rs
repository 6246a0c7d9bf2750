//! Serving the library to peers, against the real binary: the range table,
//! real download clients, a 5 GiB sparse file, authentication, traversal
//! attempts, and the server's hardening.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use support::{
    KEY, connect_from, enc, item_id, need_tool, pattern, request, request_from, serving_site,
};

const NAME: &str = "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv";

fn auth() -> Vec<(&'static str, &'static str)> {
    vec![("X-Api-Key", KEY)]
}

#[test]
fn range_table_row_by_row() {
    let data = pattern(1000);
    let (_site, node) = serving_site("", &[(NAME, &data), ("Empty.2000.mkv", b"")]);
    let id = item_id(node.addr, NAME);
    let url = format!("/peer/items/{}/file", enc(&id));
    let get = |range: Option<&str>| {
        let mut h = auth();
        if let Some(r) = range {
            h.push(("Range", r));
        }
        request(node.addr, "GET", &url, &h)
    };
    // (Range, status, Content-Range, body slice)
    type Row<'a> = (
        Option<&'a str>,
        u16,
        Option<&'a str>,
        Option<(usize, usize)>,
    );
    let rows: &[Row] = &[
        (None, 200, None, Some((0, 1000))),
        (
            Some("bytes=0-9"),
            206,
            Some("bytes 0-9/1000"),
            Some((0, 10)),
        ),
        (
            Some("bytes=990-5000"),
            206,
            Some("bytes 990-999/1000"),
            Some((990, 1000)),
        ),
        (
            Some("bytes=500-"),
            206,
            Some("bytes 500-999/1000"),
            Some((500, 1000)),
        ),
        (
            Some("bytes=-100"),
            206,
            Some("bytes 900-999/1000"),
            Some((900, 1000)),
        ),
        (
            Some("bytes=-5000"),
            206,
            Some("bytes 0-999/1000"),
            Some((0, 1000)),
        ),
        (Some("bytes=1000-"), 416, Some("bytes */1000"), None),
        (Some("bytes=-0"), 416, Some("bytes */1000"), None),
        (Some("bytes=5-1"), 416, Some("bytes */1000"), None),
        (Some("bytes=abc"), 416, Some("bytes */1000"), None),
        (Some("bytes=1-2-3"), 416, Some("bytes */1000"), None),
        (Some("bytes=="), 416, Some("bytes */1000"), None),
        (Some("bytes=-"), 416, Some("bytes */1000"), None),
        (
            Some("bytes=0-99999999999999999999999"),
            206,
            Some("bytes 0-999/1000"),
            Some((0, 1000)),
        ),
        (Some("items=0-5"), 200, None, Some((0, 1000))),
        (Some("bytes=0-1,5-6"), 200, None, Some((0, 1000))),
        (
            Some("bytes=0-5,,"),
            206,
            Some("bytes 0-5/1000"),
            Some((0, 6)),
        ),
        (Some("Bytes=0-5"), 206, Some("bytes 0-5/1000"), Some((0, 6))),
        (
            Some("bytes= 0-5"),
            206,
            Some("bytes 0-5/1000"),
            Some((0, 6)),
        ),
    ];
    let full = get(None);
    let etag = full.header("ETag").unwrap();
    let last_modified = full.header("Last-Modified").unwrap();
    for &(range, status, content_range, slice) in rows {
        let r = get(range);
        assert_eq!(r.status, status, "{range:?}");
        assert_eq!(
            r.header("Content-Range").as_deref(),
            content_range,
            "{range:?}"
        );
        assert!(r.header("Transfer-Encoding").is_none(), "{range:?}");
        assert!(r.header("Content-Encoding").is_none(), "{range:?}");
        match slice {
            Some((a, b)) => {
                assert_eq!(r.body, &data[a..b], "{range:?}");
                assert_eq!(
                    r.header("Content-Length").unwrap(),
                    (b - a).to_string(),
                    "{range:?}"
                );
                assert_eq!(r.header("Accept-Ranges").as_deref(), Some("bytes"));
                assert_eq!(r.header("ETag").as_deref(), Some(etag.as_str()));
                assert_eq!(
                    r.header("Last-Modified").as_deref(),
                    Some(last_modified.as_str())
                );
                assert_eq!(
                    r.header("Content-Type").as_deref(),
                    Some("application/octet-stream")
                );
                assert_eq!(
                    r.header("Content-Disposition").unwrap(),
                    format!("attachment; filename=\"{NAME}\"; filename*=UTF-8''{NAME}")
                );
            }
            None => assert!(r.body.is_empty(), "416 has no body: {range:?}"),
        }
    }
    // Any range on an empty file is 416 */0.
    let empty = format!(
        "/peer/items/{}/file",
        enc(&item_id(node.addr, "Empty.2000.mkv"))
    );
    for range in ["bytes=0-", "bytes=-5", "bytes=0-0"] {
        let r = request(
            node.addr,
            "GET",
            &empty,
            &[("X-Api-Key", KEY), ("Range", range)],
        );
        assert_eq!(
            (r.status, r.header("Content-Range").as_deref()),
            (416, Some("bytes */0"))
        );
    }
    // Two Range fields are ignored like two ranges in one: 200, whole file.
    let two = request(
        node.addr,
        "GET",
        &url,
        &[
            ("X-Api-Key", KEY),
            ("Range", "bytes=0-1"),
            ("Range", "bytes=5-6"),
        ],
    );
    assert_eq!(two.status, 200);
    assert!(two.body == data, "the whole file");
    // Even when the second field is empty (joined, it would read as one range).
    let two = request(
        node.addr,
        "GET",
        &url,
        &[("X-Api-Key", KEY), ("Range", "bytes=0-1"), ("Range", "")],
    );
    assert_eq!(two.status, 200);
    assert!(two.body == data, "the whole file");
    // A Range header over 1 KiB is 416 without parsing.
    let long = format!("bytes={}0-1", " ".repeat(1100));
    assert_eq!(get(Some(&long)).status, 416);

    // If-Range: the current strong ETag or the exact Last-Modified honours the range.
    let with = |extra: (&'static str, &str)| {
        request(
            node.addr,
            "GET",
            &url,
            &[("X-Api-Key", KEY), ("Range", "bytes=0-9"), extra],
        )
    };
    assert_eq!(with(("If-Range", &etag)).status, 206);
    assert_eq!(with(("If-Range", &last_modified)).status, 206);
    assert_eq!(with(("If-Range", "\"other\"")).status, 200);
    assert_eq!(with(("If-Range", &format!("W/{etag}"))).status, 200);
    assert_eq!(
        with(("If-Range", "Thu, 01 Jan 1970 00:00:00 GMT")).status,
        200
    );
    assert_eq!(with(("If-Range", "\"other\"")).body, data);
    // If-None-Match: 304 without a body.
    let r = with(("If-None-Match", &etag));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("ETag").as_deref(), Some(etag.as_str()));
    // HEAD ignores Range and answers the full 200's headers without a body.
    let r = request(
        node.addr,
        "HEAD",
        &url,
        &[("X-Api-Key", KEY), ("Range", "bytes=0-9")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length").as_deref(), Some("1000"));
    assert!(r.body.is_empty());
}

#[test]
fn etag_changes_when_the_file_is_replaced_in_the_same_second() {
    let (site, node) = serving_site("", &[(NAME, &pattern(4096))]);
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let before = request(node.addr, "HEAD", &url, &auth())
        .header("ETag")
        .unwrap();
    let path = site.path().join("media/movies").join(NAME);
    let tmp = path.with_extension("tmp");
    let mut replacement = pattern(4096);
    replacement.reverse();
    std::fs::write(&tmp, &replacement).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let r = request(
        node.addr,
        "GET",
        &url,
        &[
            ("X-Api-Key", KEY),
            ("Range", "bytes=0-9"),
            ("If-Range", &before),
        ],
    );
    assert_ne!(r.header("ETag").unwrap(), before);
    assert_eq!(r.status, 200, "a stale If-Range gets the whole new file");
    assert_eq!(r.body, replacement);
}

#[test]
fn curl_wget_and_aria2c_fetch_identical_files() {
    for tool in ["curl", "wget", "aria2c"] {
        need_tool(tool);
    }
    let data = pattern(24 * 1024 * 1024);
    let (site, node) = serving_site("", &[(NAME, &data)]);
    let url = format!(
        "http://{}/peer/items/{}/file",
        node.addr,
        enc(&item_id(node.addr, NAME))
    );
    let hdr = format!("X-Api-Key: {KEY}");
    let out = site.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };

    // curl -r: one range.
    let f = out.join("curl-range");
    run(Command::new("curl")
        .args(["-sf", "-H", &hdr, "-r", "1000-1999", "-o"])
        .arg(&f)
        .arg(&url));
    assert_eq!(std::fs::read(&f).unwrap(), &data[1000..2000]);

    // curl, interrupted (killed mid-transfer), then curl -C - resumes it.
    let f = out.join("curl-resume");
    let mut slow = Command::new("curl")
        .args(["-sf", "-H", &hdr, "--limit-rate", "4M", "-o"])
        .arg(&f)
        .arg(&url)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    slow.kill().unwrap();
    slow.wait().unwrap();
    let partial = std::fs::metadata(&f).unwrap().len();
    assert!(
        partial > 0 && partial < data.len() as u64,
        "interrupted at {partial}"
    );
    run(Command::new("curl")
        .args(["-sf", "-H", &hdr, "-C", "-", "-o"])
        .arg(&f)
        .arg(&url));
    assert!(
        std::fs::read(&f).unwrap() == data,
        "curl -C - result differs"
    );

    // wget -c continues a partial file.
    let f = out.join("wget-resume");
    std::fs::write(&f, &data[..5_000_000]).unwrap();
    run(Command::new("wget")
        .args(["-q", "-c", "--header", &hdr, "-O"])
        .arg(&f)
        .arg(&url));
    assert!(std::fs::read(&f).unwrap() == data, "wget -c result differs");

    // aria2c with four parallel ranges.
    run(Command::new("aria2c")
        .args([
            "-q",
            "-x4",
            "-s4",
            "-k1M",
            "--file-allocation=none",
            "--allow-overwrite=true",
        ])
        .args(["--header", &hdr, "-d"])
        .arg(&out)
        .args(["-o", "aria2c.mkv", &url]));
    assert!(
        std::fs::read(out.join("aria2c.mkv")).unwrap() == data,
        "aria2c result differs"
    );
}

#[test]
fn a_sparse_5_gib_file_is_served_with_u64_offsets() {
    let (site, node) = serving_site("", &[]);
    let path = site.path().join("media/movies/Big.2020.2160p.mkv");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(5 * 1024 * 1024 * 1024).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(4_294_967_296)).unwrap();
    f.write_all(b"0123456789abcdef").unwrap();
    drop(f);
    // A second node on the same library sees the file at start-up.
    drop(node);
    let node = site.start();
    node.wait_log("catalogue scanned", Duration::from_secs(10));
    let url = format!(
        "/peer/items/{}/file",
        enc(&item_id(node.addr, "Big.2020.2160p.mkv"))
    );
    let head = request(node.addr, "HEAD", &url, &auth());
    assert_eq!(head.header("Content-Length").as_deref(), Some("5368709120"));
    // On the 32-bit boundary, and at 4 GiB + 10, past it.
    for (range, body) in [
        ("4294967296-4294967305", &b"0123456789"[..]),
        ("4294967306-4294967311", b"abcdef"),
    ] {
        let r = request(
            node.addr,
            "GET",
            &url,
            &[("X-Api-Key", KEY), ("Range", &format!("bytes={range}"))],
        );
        assert_eq!(r.status, 206);
        let expected = format!("bytes {range}/5368709120");
        assert_eq!(r.header("Content-Range"), Some(expected));
        assert_eq!(r.body, body);
    }
}

#[test]
fn authentication_matrix() {
    // 40 wrong keys on purpose: past the default guess budget of 10.
    let (_site, node) = serving_site(
        "auth_failures_per_minute = 1000\n",
        &[(NAME, b"secret movie bytes")],
    );
    let id = enc(&item_id(node.addr, NAME));
    let paths = [
        "/handshake".to_string(),
        "/peer/search".into(),
        format!("/peer/items/{id}"),
        format!("/peer/items/{id}/file"),
    ];
    let wrong: &[&[(&str, &str)]] = &[
        &[],
        &[("X-Api-Key", "")],
        &[("X-Api-Key", "wrong")],
        &[("X-Api-Key", "test")],
        &[("X-Api-Key", "est-key")],
        &[("X-Api-Key", "test-key2")],
        &[("X-Api-Key", "TEST-KEY")],
        &[("Authorization", "Bearer TEST-KEY")],
        &[("Authorization", "Basic test-key")],
        &[("Authorization", "test-key")],
        &[("X-Api-Key", "wrong"), ("Authorization", "Bearer test-key")],
    ];
    let mut bodies = std::collections::HashSet::new();
    for path in &paths {
        for headers in wrong {
            let r = request(node.addr, "GET", path, headers);
            assert_eq!(r.status, 401, "{path} {headers:?}");
            bodies.insert(r.body.clone());
            assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
        }
        // The key in the query string is never accepted on the peer API.
        let r = request(node.addr, "GET", &format!("{path}?apikey={KEY}"), &[]);
        assert_eq!(r.status, 401, "{path}?apikey");
        bodies.insert(r.body);
        // Both header forms work.
        assert_eq!(
            request(node.addr, "GET", path, &[("X-Api-Key", KEY)]).status,
            200,
            "{path}"
        );
        assert_eq!(
            request(
                node.addr,
                "GET",
                path,
                &[("Authorization", "Bearer test-key")]
            )
            .status,
            200,
            "{path}"
        );
    }
    assert_eq!(bodies.len(), 1, "one uniform 401 body");
    assert_eq!(
        bodies.into_iter().next().unwrap(),
        br#"{"error":{"code":"UNAUTHORIZED","message":"Unauthorized"},"ok":false}"#
    );
    let hs: serde_json::Value =
        serde_json::from_slice(&request(node.addr, "GET", "/handshake", &auth()).body).unwrap();
    assert_eq!(
        (hs["name"].as_str(), hs["version"].as_str()),
        (Some("jack"), Some("0.1.0"))
    );
}

#[test]
fn traversal_attempts_never_reach_outside_the_library() {
    let (site, node) = serving_site("", &[(NAME, b"inside")]);
    std::fs::write(site.path().join("secret.txt"), b"TOPSECRET").unwrap();
    std::os::unix::fs::symlink(
        site.path().join("secret.txt"),
        site.path().join("media/movies/Leak.2000.mkv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(site.path(), site.path().join("media/movies/up")).unwrap();
    // Rescan so the links are seen (and refused) by the catalogue.
    drop(node);
    let node = site.start();
    node.wait_log("catalogue scanned", Duration::from_secs(10));
    let r = request(node.addr, "GET", "/peer/search", &auth());
    let listing = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        !listing.contains("Leak")
            && !listing.contains("secret")
            && !listing.contains(site.path().to_str().unwrap())
    );
    let long = "a".repeat(5000);
    let ids = [
        "..",
        "%2e%2e%2f",
        "..%2f..%2fsecret.txt",
        "%2e%2e%2fsecret.txt",
        "%252e%252e%252fsecret.txt",
        "%00",
        "movies%3Amovie%3A%00",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "..\\..\\secret.txt",
        long.as_str(),
        "movies:movie:0000000000000000",
    ];
    for id in ids {
        for suffix in ["", "/file"] {
            let r = request(
                node.addr,
                "GET",
                &format!("/peer/items/{id}{suffix}"),
                &auth(),
            );
            assert_eq!(r.status, 404, "{id}{suffix}");
            let body = String::from_utf8_lossy(&r.body);
            assert!(
                !body.contains("TOPSECRET") && !body.contains("root:"),
                "{id}{suffix}: {body}"
            );
        }
    }
    let r = request(
        node.addr,
        "GET",
        "/peer/items/../../secret.txt/file",
        &auth(),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn idle_connections_do_not_starve_requests_and_threads_return_to_baseline() {
    // All from 127.0.0.1, so its per-address cap is raised past them.
    let (_site, node) = serving_site(
        "read_timeout_ms = 1000\nmax_connections_per_ip = 256\n",
        &[],
    );
    std::thread::sleep(Duration::from_millis(300));
    let baseline = node.threads();
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(node.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(request(node.addr, "GET", "/ping", &[]).status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        t.elapsed()
    );
    assert!(
        node.threads() > baseline + 100,
        "one thread per connection while they are open"
    );
    // After the read timeout the connections are closed, and tiny_http's
    // connection threads end 5 s after they go idle.
    let start = Instant::now();
    while node.threads() > baseline && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        node.threads() <= baseline,
        "threads {} > baseline {baseline}",
        node.threads()
    );
    drop(idle);
}

#[test]
fn above_the_connection_cap_new_connections_get_a_quick_503() {
    let (_site, node) = serving_site("max_connections = 8\n", &[]);
    // Busy connections (each in the middle of its request head): an idle
    // one would be closed to make room (tests/hardening.rs).
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(node.addr).unwrap();
            s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = request(node.addr, "GET", "/ping", &[]);
    assert_eq!(r.status, 503);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(r.header("Retry-After").as_deref(), Some("5"));
    assert!(String::from_utf8_lossy(&r.body).contains("UNAVAILABLE"));
    drop(idle);
    let start = Instant::now();
    while request(node.addr, "GET", "/ping", &[]).status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still refused after the idle ones closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One address with 40 slow connections (a scanner, a misbehaving peer)
/// takes its 8 places and no more: the rest are answered 503 at once by the
/// accept thread, without a thread, while 127.0.0.1 is served as usual.
#[test]
fn one_address_cannot_take_every_connection() {
    const SLOW: usize = 40;
    const PER_IP: usize = 8;
    let (_site, node) = serving_site(
        "max_connections = 256\nmax_connections_per_ip = 8\nread_timeout_ms = 30000\n",
        &[],
    );
    let baseline = node.threads();
    let start = Instant::now();
    let mut slow: Vec<(TcpStream, Vec<u8>, bool)> = (0..SLOW)
        .map(|_| {
            let s = connect_from("127.0.0.2", node.addr);
            s.set_nonblocking(true).unwrap();
            (s, Vec::new(), false)
        })
        .collect();
    // Those over the cap get the whole 503 and the end of the connection.
    let mut refused = 0;
    while refused < SLOW - PER_IP && start.elapsed() < Duration::from_secs(10) {
        for (s, answer, closed) in slow.iter_mut().filter(|(_, _, closed)| !*closed) {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => {
                    *closed = true;
                    refused += 1;
                }
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused_in = start.elapsed();
    assert_eq!(refused, SLOW - PER_IP, "refused in {refused_in:?}");
    assert!(refused_in < Duration::from_secs(2), "{refused_in:?}");
    for (_, answer, _) in slow.iter().filter(|(_, _, closed)| *closed) {
        let text = String::from_utf8_lossy(answer);
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(text.contains("Retry-After: 5\r\n"), "{text}");
        assert!(text.ends_with("\"Too many connections\"}}"), "{text}");
    }
    slow.retain(|(_, _, closed)| !*closed);
    // The 8 it holds trickle half a request head, and nothing more.
    for (s, answer, _) in &mut slow {
        assert!(answer.is_empty());
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    assert!(
        node.threads() < baseline + 2 * PER_IP,
        "a thread per connection held, none for those refused: {} threads, {baseline} before",
        node.threads()
    );
    // Another address is served at once; 127.0.0.2 is still refused.
    let t = Instant::now();
    assert_eq!(request(node.addr, "GET", "/ping", &[]).status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let again = request_from("127.0.0.2", node.addr, "GET", "/ping");
    assert_eq!(again.status, 503);
    // /metrics counts every refusal, by cap, and the 503s with the 5xx.
    let metrics = request(node.addr, "GET", "/metrics", &[("X-Api-Key", KEY)]);
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    let sample = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    let over_ip = sample("jack_connections_refused_total{reason=\"max_connections_per_ip\"}");
    assert_eq!(over_ip, (SLOW - PER_IP + 1) as f64);
    assert_eq!(
        sample("jack_connections_refused_total{reason=\"max_connections\"}"),
        0.0
    );
    assert!(sample("jack_http_requests_total{class=\"5xx\"}") >= over_ip);
    // Once the slow ones close, 127.0.0.2 has its places back.
    drop(slow);
    let start = Instant::now();
    while request_from("127.0.0.2", node.addr, "GET", "/ping").status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "127.0.0.2 still refused after its connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let held: Vec<TcpStream> = (0..PER_IP)
        .map(|_| connect_from("127.0.0.2", node.addr))
        .collect();
    // The accept thread counts a connection when it takes it, a moment
    // after `connect` returns: wait for the count, which must reach the cap
    // (a count that went below would let a connection through forever).
    let start = Instant::now();
    while request_from("127.0.0.2", node.addr, "GET", "/ping").status != 503 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the count is back to what is open, not below"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
}

#[test]
fn oversized_request_lines_and_headers_are_refused() {
    let (_site, node) = serving_site("", &[]);
    let r = request(
        node.addr,
        "GET",
        &format!("/ping?{}", "a".repeat(10_000)),
        &[],
    );
    assert_eq!(r.status, 414);
    let big = "b".repeat(10_000);
    assert_eq!(
        request(node.addr, "GET", "/ping", &[("X-Big", &big)]).status,
        431
    );
    let mut s = TcpStream::connect(node.addr).unwrap();
    let mut req = String::from("GET /ping HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 431"), "{buf}");
    // The node still serves.
    assert_eq!(request(node.addr, "GET", "/ping", &[]).status, 200);
}

#[test]
fn a_file_that_shrinks_while_being_sent_cuts_the_connection() {
    let size = 64 * 1024 * 1024;
    let (site, node) = serving_site("", &[(NAME, &vec![1u8; size])]);
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let mut s = TcpStream::connect(node.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 1024 * 1024];
    s.read_exact(&mut first).unwrap();
    let head_end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        String::from_utf8_lossy(&first[..head_end]).contains(&format!("Content-Length: {size}"))
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(site.path().join("media/movies").join(NAME))
        .unwrap()
        .set_len(2 * 1024 * 1024)
        .unwrap();
    let mut rest = Vec::new();
    let t = Instant::now();
    let _ = s.read_to_end(&mut rest); // ends with EOF or a reset
    let body = first.len() - head_end + rest.len();
    assert!(
        body < size,
        "the response must not look complete ({body} bytes)"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut, not left hanging"
    );
}

#[test]
fn search_answers_by_id_and_rejects_non_numbers() {
    let files: &[(&str, &[u8])] = &[
        (
            "The Matrix (1999) {tmdb-603} {imdb-tt0133093}/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv",
            b"m",
        ),
        ("Heat.1995.2160p.WEB-DL.mkv", b"h"),
    ];
    let (_site, node) = serving_site("", files);
    let count = |q: &str| {
        let r = request(node.addr, "GET", &format!("/peer/search{q}"), &auth());
        assert_eq!(r.status, 200, "{q}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["items"].as_array().unwrap().len()
    };
    assert_eq!(count(""), 2);
    assert_eq!(count("?tmdbId=603"), 1);
    assert_eq!(count("?imdbId=tt0133093"), 1);
    assert_eq!(count("?imdbId=0133093"), 1);
    assert_eq!(count("?tmdbId=604"), 0);
    assert_eq!(count("?unknown=1"), 2);
    for bad in ["?tmdbId=abc", "?tvdbId=1x", "?season=-1", "?episode=one"] {
        let r = request(node.addr, "GET", &format!("/peer/search{bad}"), &auth());
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[test]
fn shutdown_cuts_a_slow_reader_instead_of_waiting_for_it() {
    let size = 64 * 1024 * 1024;
    let (_site, mut node) = serving_site("", &[(NAME, &vec![3u8; size])]);
    let url = format!("/peer/items/{}/file", enc(&item_id(node.addr, NAME)));
    let mut s = TcpStream::connect(node.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    s.read_exact(&mut first).unwrap();
    // The client stops reading; the server's sendfile blocks on a full socket.
    std::thread::sleep(Duration::from_millis(300));
    let took = node.stop_gracefully("TERM");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        first.len() + rest.len() < size,
        "the body was cut, not completed"
    );
}

/// One answer as `curl -s -D -` saw it: status, head, and the body bytes
/// curl counted.
struct Curled {
    status: u16,
    head: String,
    body_bytes: u64,
}

impl Curled {
    fn header(&self, name: &str) -> Option<String> {
        support::header_in(&self.head, name)
    }
}

/// Runs the real `curl` (`-I` for HEAD) with `headers` against `url`.
fn curl(method: &str, url: &str, headers: &[String]) -> Curled {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-o", "/dev/null", "-D", "-"])
        .args(["-w", "\n%{size_download}"]);
    if method == "HEAD" {
        cmd.arg("-I");
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().unwrap();
    assert!(out.status.success(), "curl {url} {headers:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, size) = text.rsplit_once('\n').unwrap();
    Curled {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head: head.trim_end().to_string(),
        body_bytes: size.trim().parse().unwrap(),
    }
}

/// RFC 9110 §13.2.2 against a running node, with curl: every precondition
/// alone and in combination, and the headers of each kind of answer
/// (`PROTOCOL.md` §1 and §2.3).
#[test]
fn conditional_requests_and_answer_headers_with_curl() {
    need_tool("curl");
    let (_site, node) = serving_site("", &[(NAME, &pattern(1000))]);
    let id = enc(&item_id(node.addr, NAME));
    let base = format!("http://{}", node.addr);
    let file = format!("{base}/peer/items/{id}/file");
    let key = format!("X-Api-Key: {KEY}");
    let head = curl("HEAD", &file, std::slice::from_ref(&key));
    let etag = head.header("ETag").unwrap();
    let lm = head.header("Last-Modified").unwrap();
    let shift = |secs: u64, later: bool| {
        let t = httpdate::parse_http_date(&lm).unwrap();
        let d = Duration::from_secs(secs);
        httpdate::fmt_http_date(if later { t + d } else { t - d })
    };
    let (before, after) = (shift(1, false), shift(1, true));
    let (etag, lm, before, after) = (etag.as_str(), lm.as_str(), before.as_str(), after.as_str());
    let (weak, list) = (format!("W/{etag}"), format!("\"x\", {etag}"));
    let (weak, list) = (weak.as_str(), list.as_str());
    const OLD: &str = "\"old\"";
    const R: (&str, &str) = ("Range", "bytes=0-9");
    const IM: &str = "If-Match";
    const IUS: &str = "If-Unmodified-Since";
    const INM: &str = "If-None-Match";
    const IMS: &str = "If-Modified-Since";
    // (method, status, headers besides the key), on the file.
    type Row<'a> = (&'a str, u16, &'a [(&'a str, &'a str)]);
    let rows: &[Row] = &[
        ("GET", 200, &[]),
        // If-Match: strong comparison; `*`; lists.
        ("GET", 412, &[(IM, OLD), R]),
        ("HEAD", 412, &[(IM, OLD)]),
        ("GET", 206, &[(IM, etag), R]),
        ("GET", 200, &[(IM, "*")]),
        ("GET", 200, &[(IM, list)]),
        ("GET", 412, &[(IM, weak)]),
        // If-Unmodified-Since, and If-Match taking its place.
        ("GET", 412, &[(IUS, before)]),
        ("GET", 200, &[(IUS, lm)]),
        ("GET", 200, &[(IUS, "soon")]),
        ("GET", 200, &[(IM, etag), (IUS, before)]),
        // If-None-Match: weak comparison; `*`; before Range.
        ("GET", 304, &[(INM, etag)]),
        ("HEAD", 304, &[(INM, etag)]),
        ("GET", 304, &[(INM, weak)]),
        ("GET", 304, &[(INM, "*")]),
        ("GET", 200, &[(INM, OLD)]),
        ("GET", 304, &[(INM, etag), R]),
        // If-Modified-Since, and If-None-Match taking its place.
        ("GET", 304, &[(IMS, lm)]),
        ("HEAD", 304, &[(IMS, lm)]),
        ("GET", 304, &[(IMS, after)]),
        ("GET", 200, &[(IMS, before)]),
        ("GET", 200, &[(IMS, "yesterday")]),
        ("GET", 200, &[(INM, OLD), (IMS, lm)]),
        // 412 is decided before 304; If-Range comes last.
        ("GET", 412, &[(IM, OLD), (INM, etag)]),
        ("GET", 412, &[(IUS, before), (IMS, lm)]),
        ("GET", 206, &[(IM, etag), (INM, OLD), ("If-Range", etag), R]),
        ("GET", 416, &[("Range", "bytes=1000-")]),
    ];
    for &(method, status, extra) in rows {
        let mut headers = vec![key.clone()];
        headers.extend(extra.iter().map(|(k, v)| format!("{k}: {v}")));
        let r = curl(method, &file, &headers);
        let what = format!("{method} {extra:?}");
        assert_eq!(r.status, status, "{what}:\n{}", r.head);
        assert!(r.header("Server").unwrap().starts_with("jack/"), "{what}");
        assert_eq!(
            r.header("Cache-Control").as_deref(),
            Some("private"),
            "{what}"
        );
        match status {
            304 => {
                assert_eq!(r.body_bytes, 0, "{what}");
                let length = r.header("Content-Length");
                assert!(
                    length.as_deref().is_none_or(|l| l == "1000"),
                    "{what}: {length:?}"
                );
                assert_eq!(r.header("ETag").as_deref(), Some(etag), "{what}");
                assert_eq!(r.header("Last-Modified").as_deref(), Some(lm), "{what}");
            }
            412 => {
                assert_eq!(r.body_bytes, 0, "{what}");
                assert!(
                    r.header("Content-Length").is_none_or(|l| l == "0"),
                    "{what}"
                );
            }
            206 => assert_eq!(r.header("Content-Range").as_deref(), Some("bytes 0-9/1000")),
            416 => assert_eq!(r.header("Content-Range").as_deref(), Some("bytes */1000")),
            _ => assert_eq!(r.body_bytes, 1000, "{what}"),
        }
    }
    // Every answer on the peer API: never for a shared cache, from jack;
    // a 401 with its challenge.
    let unknown = "/peer/items/movies%3Amovie%3A0000000000000000";
    let peer = [
        ("/handshake".to_string(), 200),
        ("/peer/search".into(), 200),
        (format!("/peer/items/{id}"), 200),
        (unknown.into(), 404),
        (format!("{unknown}/file"), 404),
    ];
    for (path, status) in peer {
        let bad_key = "Authorization: Bearer wrong".to_string();
        for (headers, status) in [
            (vec![key.clone()], status),
            (vec![], 401),
            (vec![bad_key], 401),
        ] {
            let r = curl("GET", &format!("{base}{path}"), &headers);
            assert_eq!(r.status, status, "{path} {headers:?}");
            assert!(r.header("Server").unwrap().starts_with("jack/"), "{path}");
            assert_eq!(
                r.header("Cache-Control").as_deref(),
                Some("private"),
                "{path}"
            );
            let challenge = r.header("WWW-Authenticate");
            assert_eq!(challenge.is_some(), status == 401, "{path} {headers:?}");
            if status == 401 {
                assert_eq!(challenge.as_deref(), Some("Bearer realm=\"jack\""));
            }
        }
    }
    // Outside the peer API, and tiny_http's own answers, say jack too.
    let long = format!("/ping?{}", "a".repeat(9000));
    for (path, status) in [("/ping", 200), ("/nope", 404), (long.as_str(), 414)] {
        let r = curl("GET", &format!("{base}{path}"), &[]);
        assert_eq!(r.status, status);
        assert!(
            r.header("Server").unwrap().starts_with("jack/"),
            "{status}:\n{}",
            r.head
        );
    }
}

/// `/peer/items/{id}` reports the file as the file endpoint serves it now,
/// not as the last library scan saw it.
#[test]
fn an_item_reports_the_size_and_etag_of_its_file_now() {
    let (site, node) = serving_site("library_rescan_secs = 3600\n", &[(NAME, &pattern(1000))]);
    let id = enc(&item_id(node.addr, NAME));
    let item = |node: &support::Node| {
        let r = request(node.addr, "GET", &format!("/peer/items/{id}"), &auth());
        assert_eq!(r.status, 200);
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
    };
    let file = format!("/peer/items/{id}/file");
    let before = item(&node);
    assert_eq!(before["size"], 1000);
    std::fs::write(site.path().join("media/movies").join(NAME), pattern(3000)).unwrap();
    let now = item(&node);
    let head = request(node.addr, "HEAD", &file, &auth());
    assert_eq!(head.header("Content-Length").as_deref(), Some("3000"));
    assert_eq!(now["size"], 3000);
    assert_eq!(now["etag"].as_str(), head.header("ETag").as_deref());
    assert_ne!(now["etag"], before["etag"]);
    // Gone from disk: both answer 404.
    std::fs::remove_file(site.path().join("media/movies").join(NAME)).unwrap();
    assert_eq!(request(node.addr, "HEAD", &file, &auth()).status, 404);
    assert_eq!(
        request(node.addr, "GET", &format!("/peer/items/{id}"), &auth()).status,
        404
    );
}

/// A file dated 1960: httpdate panics on a time before 1970, which made every
/// request for the file a 500. It is served, shown as modified at the epoch,
/// and its ETag still follows its real time.
#[test]
fn a_file_dated_before_1970_is_served() {
    let data = pattern(1000);
    let (site, node) = serving_site("", &[(NAME, &data)]);
    let id = enc(&item_id(node.addr, NAME));
    let date_file = |years_before_1970: u64| {
        let before = Duration::from_secs(years_before_1970 * 365 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(site.path().join("media/movies").join(NAME))
            .unwrap()
            .set_modified(UNIX_EPOCH - before)
            .unwrap();
    };
    date_file(10);
    let file = format!("/peer/items/{id}/file");
    let r = request(node.addr, "GET", &file, &auth());
    assert_eq!(r.status, 200, "{}", node.log_text());
    assert!(r.body == data, "the whole file");
    let last_modified = r.header("Last-Modified").unwrap();
    assert_eq!(
        httpdate::parse_http_date(&last_modified).ok(),
        Some(UNIX_EPOCH)
    );
    let item = request(node.addr, "GET", &format!("/peer/items/{id}"), &auth());
    assert_eq!(item.status, 200);
    let item: serde_json::Value = serde_json::from_slice(&item.body).unwrap();
    // publishDate is when the node first offered the file (PROTOCOL.md
    // §2.2), not its 1960 modification time.
    let offered = jack::clock::parse_rfc3339(item["publishDate"].as_str().unwrap()).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(offered)
        .unwrap();
    assert!(age < Duration::from_secs(60), "{item}");
    assert_eq!(item["etag"].as_str(), r.header("ETag").as_deref());
    let ranged = request(
        node.addr,
        "GET",
        &file,
        &[("X-Api-Key", KEY), ("Range", "bytes=0-9")],
    );
    assert_eq!((ranged.status, &ranged.body[..]), (206, &data[..10]));
    date_file(9);
    let moved = request(node.addr, "HEAD", &file, &auth());
    assert_eq!(moved.status, 200);
    assert_eq!(moved.header("Last-Modified"), Some(last_modified));
    assert_ne!(moved.header("ETag"), r.header("ETag"));
}
