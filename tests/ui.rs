//! The status page (`GET /ui/`): the login and its session cookie, the
//! anti-forgery token, the security headers, all over real HTTP; then the
//! page itself in a real headless Chromium driven by selenium
//! (`tests/support/ui_browser.py`, installed by `make test`).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use jack::db::{EventKind, NewDownload, Registry, Status};
use support::{KEY, Resp, Site, request, request_with_body};

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// A node with one friend's key (`bob`), so a peer key can be tried.
fn node_with_a_friend() -> (Site, support::Node) {
    let site = Site::new("[[server.peer_keys]]\nname = \"bob\"\nkey = \"bob-key\"\n");
    let node = site.start();
    (site, node)
}

fn login(addr: SocketAddr, key: &str) -> Resp {
    request_with_body(
        addr,
        "POST",
        "/ui/login",
        &[FORM],
        format!("key={key}").as_bytes(),
    )
}

/// The `jack_ui=<id>` pair of a successful login, and its token.
fn session(addr: SocketAddr) -> (String, String) {
    let r = login(addr, KEY);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cookie = r.header("Set-Cookie").unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    (pair, v["csrf"].as_str().unwrap().to_string())
}

#[test]
fn the_page_and_every_answer_under_ui_carry_the_security_headers() {
    let (_site, node) = node_with_a_friend();
    let page = request(node.addr, "GET", "/ui/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.len() < 40 * 1024, "{} bytes", page.body.len());
    assert_eq!(
        page.header("Content-Type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("Content-Security-Policy").unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let (cookie, _) = session(node.addr);
    let answers = [
        page,
        request(node.addr, "GET", "/ui/state", &[]),
        request(node.addr, "GET", "/ui/state", &[("Cookie", &cookie)]),
        request(node.addr, "GET", "/ui/session", &[]),
        login(node.addr, "wrong"),
    ];
    for r in &answers {
        assert_eq!(
            r.header("X-Content-Type-Options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(r.header("Referrer-Policy").as_deref(), Some("no-referrer"));
        assert_eq!(r.header("X-Frame-Options").as_deref(), Some("DENY"));
        assert_eq!(r.header("Cache-Control").as_deref(), Some("no-store"));
        assert!(r.header("Content-Security-Policy").is_some());
    }
    let moved = request(node.addr, "GET", "/ui", &[]);
    assert_eq!(
        (moved.status, moved.header("Location").as_deref()),
        (308, Some("/ui/"))
    );
    // The node's address opened in a browser (Firefox's and Chromium's
    // Accept) goes to the page; a program asking `/` still gets JSON.
    for accept in [
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ] {
        let r = request(node.addr, "GET", "/", &[("Accept", accept)]);
        assert_eq!(
            (r.status, r.header("Location").as_deref()),
            (303, Some("/ui/"))
        );
    }
    for accept in [None, Some("application/json"), Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = request(node.addr, "GET", "/", &headers);
        assert_eq!(r.status, 404, "{accept:?}");
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("application/json")
        );
    }
}

#[test]
fn login_sets_a_strict_expiring_cookie_and_refuses_wrong_and_peer_keys() {
    let (_site, node) = node_with_a_friend();
    let ok = login(node.addr, KEY);
    assert_eq!(ok.status, 200);
    let cookie = ok.header("Set-Cookie").unwrap();
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("jack_ui=") && attrs[0].len() == "jack_ui=".len() + 32);
    for a in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=3600"] {
        assert!(attrs.contains(&a), "{cookie}");
    }
    assert!(!cookie.contains(KEY));
    let (pair, _) = (attrs[0].to_string(), ());
    let state = request(node.addr, "GET", "/ui/state", &[("Cookie", &pair)]);
    assert_eq!(state.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&state.body).unwrap();
    for k in ["csrf", "downloads", "throughput", "peers", "scan"] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }

    // A wrong key, a friend's key, the key in the URL, the key as a
    // header: each the uniform 401, at once (the gate bounds guesses;
    // `tests/gate.rs` holds that line).
    for key in ["wrong", "bob-key", ""] {
        let r = login(node.addr, key);
        assert_eq!(r.status, 401, "{key}");
        assert_eq!(
            r.header("WWW-Authenticate").as_deref(),
            Some("Bearer realm=\"jack\"")
        );
        assert!(r.header("Set-Cookie").is_none());
    }
    let in_url = request(node.addr, "POST", &format!("/ui/login?key={KEY}"), &[FORM]);
    assert_eq!(in_url.status, 401);
    for (h, v) in [
        ("X-Api-Key", KEY.to_string()),
        ("Authorization", format!("Bearer {KEY}")),
        ("Cookie", "jack_ui=00000000000000000000000000000000".into()),
    ] {
        let r = request(node.addr, "GET", "/ui/state", &[(h, &v)]);
        assert_eq!(r.status, 401, "{h}");
    }
    let s: serde_json::Value =
        serde_json::from_slice(&request(node.addr, "GET", "/ui/session", &[]).body).unwrap();
    assert_eq!(s["active"], false);
    assert!(node.log_text().contains("status page refused peer=bob"));
    assert!(!node.log_text().contains("bob-key") && !node.log_text().contains(KEY));
}

#[test]
fn changes_need_the_anti_forgery_token() {
    let (_site, node) = node_with_a_friend();
    let (cookie, token) = session(node.addr);
    let other_session_token = session(node.addr).1;
    for (method, path) in [
        ("POST", "/ui/api/v1/downloads/7/retry"),
        ("POST", "/ui/api/v1/downloads/7/pause"),
        ("POST", "/ui/api/v1/downloads/7/resume"),
        ("DELETE", "/ui/api/v1/downloads/7"),
        ("POST", "/ui/logout"),
    ] {
        let none = request(node.addr, method, path, &[("Cookie", &cookie)]);
        assert_eq!(none.status, 403, "{method} {path}");
        let wrong = request(
            node.addr,
            method,
            path,
            &[("Cookie", &cookie), ("X-CSRF-Token", &other_session_token)],
        );
        assert_eq!(wrong.status, 403, "{method} {path}");
        // Without the cookie the token is worth nothing.
        let no_cookie = request(node.addr, method, path, &[("X-CSRF-Token", &token)]);
        assert_eq!(no_cookie.status, 401, "{method} {path}");
    }
    // With both, the status API answers (there is no download 7).
    let through = request(
        node.addr,
        "POST",
        "/ui/api/v1/downloads/7/retry",
        &[("Cookie", &cookie), ("X-CSRF-Token", &token)],
    );
    assert_eq!(through.status, 404);
    let listed = request(
        node.addr,
        "GET",
        "/ui/api/v1/downloads",
        &[("Cookie", &cookie)],
    );
    assert_eq!(listed.status, 200);
    // Logging out ends the session.
    let out = request(
        node.addr,
        "POST",
        "/ui/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &token)],
    );
    assert_eq!(out.status, 200);
    assert!(out.header("Set-Cookie").unwrap().contains("Max-Age=0"));
    let after = request(node.addr, "GET", "/ui/state", &[("Cookie", &cookie)]);
    assert_eq!(after.status, 401);
}

/// Inserts `n` failed rows into the registry a site's node will open, the
/// first one with a hostile title and error, the last `paused` of them
/// paused by their owner instead.
fn fill_registry(site: &Site, n: usize, hostile: &str, paused: usize) {
    let db = site.path().join("data/jack.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let reg = Registry::open(&db).unwrap();
    for i in 0..n {
        let name = if i == 0 {
            hostile.to_string()
        } else {
            format!("Film.{i}.2024.1080p")
        };
        let id = reg
            .insert(&NewDownload {
                stub_name: format!("{i}.torrent"),
                info_hash: format!("{i:040x}"),
                peer: "alice".into(),
                item_id: format!("lib1:movie:{i}"),
                title: name,
                file_name: format!("{i}.mkv"),
                part_path: site.path().join(format!("data/incomplete/{i}.part")),
                dest_path: site.path().join(format!("data/completed/{i}.mkv")),
                etag: None,
                expected_bytes: 1_000_000,
                sha256: None,
                search: None,
            })
            .unwrap();
        reg.set_progress(id, (i as u64 * 7919) % 1_000_000).unwrap();
        // Failed and paused rows only: the pool leaves them be (queued
        // rows would be asked of a peer that does not exist).
        if i + paused >= n {
            let detail = jack::db::PAUSED;
            reg.transition(id, Status::Paused, None, EventKind::Paused, detail)
                .unwrap();
            continue;
        }
        if i == 0 {
            // A friend sent it a bad piece (the page names that source).
            let bob = [("bob", "lib1:movie:0")];
            reg.piece_failed(id, 0, &bob, "piece 0 from bob").unwrap();
        }
        let error = if i == 0 {
            hostile
        } else {
            "peer answered HTTP 503"
        };
        reg.transition(id, Status::Failed, Some(error), EventKind::Failed, error)
            .unwrap();
    }
}

/// A completed 2 GiB download whose history resumed at 1 GiB, for the
/// page's sizes in the events.
fn add_completed(site: &Site) {
    let reg = Registry::open(&site.path().join("data/jack.db")).unwrap();
    let id = reg
        .insert(&NewDownload {
            stub_name: "Done.Film.2020.1080p.torrent".into(),
            info_hash: "d".repeat(40),
            peer: "alice".into(),
            item_id: "lib1:movie:done".into(),
            title: "Done.Film.2020.1080p".into(),
            file_name: "Done.Film.2020.1080p.mkv".into(),
            part_path: site.path().join("data/incomplete/done.part"),
            dest_path: site.path().join("data/completed/Done.Film.2020.1080p.mkv"),
            etag: None,
            expected_bytes: 2 << 30,
            // Proven whole: its 128 pieces verified.
            sha256: Some("ab".repeat(32)),
            search: None,
        })
        .unwrap();
    reg.set_progress(id, 2 << 30).unwrap();
    reg.add_event(id, EventKind::Resumed, "at byte 1073741824")
        .unwrap();
    reg.transition(id, Status::Completed, None, EventKind::Completed, "done")
        .unwrap();
}

fn python_path() -> String {
    let sel = concat!(env!("CARGO_MANIFEST_DIR"), "/target/selenium");
    assert!(
        Path::new(sel).join("selenium").is_dir() && Path::new("/usr/bin/chromedriver").exists(),
        "the browser tests need chromium, chromium-driver and selenium in target/selenium: \
         run `make test` (scripts/ensure-browser.sh installs them)"
    );
    sel.to_string()
}

/// axe-core's script (`scripts/ensure-browser.sh` puts it there).
fn axe_path() -> String {
    let axe = concat!(env!("CARGO_MANIFEST_DIR"), "/target/axe-core/axe.min.js");
    assert!(
        Path::new(axe).is_file(),
        "the browser tests need axe-core in target/axe-core: run `make test` \
         (scripts/ensure-browser.sh installs it)"
    );
    axe.to_string()
}

/// The browser test's rule for what a page asked (`browser_requests.py`):
/// the browser's requests for itself (`chrome-untrusted://new-tab-page/`,
/// which Chromium 148 makes at start-up, `chrome://`, `devtools://`,
/// `data:`, `blob:`, ...) are not the page's; an http(s) request to any
/// origin but the nodes' is. Checked against its table, without a browser.
#[test]
fn the_browsers_own_requests_are_not_the_pages() {
    support::need_tool("python3");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/browser_requests.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_page_in_a_real_browser() {
    let py = python_path();
    // alice serves three films, one through a throttle so its bar moves.
    let slow = support::pattern(10 * 1024 * 1024);
    let quick = support::pattern(200 * 1024);
    let (alice_site, alice) = support::serving_site(
        "",
        &[
            ("Slow.Film.2021.1080p.mkv", &slow),
            ("Retry.Film.2022.1080p.mkv", &quick),
        ],
    );
    let throttled = support::throttle(alice.addr, 1024 * 1024);
    let hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    let site = support::downloader(
        throttled,
        "[[server.peer_keys]]\nname = \"bob\"\nkey = \"bob-key\"\n",
    );
    // The hostile failed row, Film.1 and Film.2 paused by their owner (the
    // test resumes Film.1), and a completed one.
    fill_registry(&site, 3, hostile, 2);
    add_completed(&site);
    // An upload rate that is not a whole number of KiB/s: the limits form
    // must keep it exact when the owner changes another rate.
    let config = std::fs::read_to_string(site.config()).unwrap();
    let config = config.replacen("[server]\n", "[server]\nmax_upload_rate = 100000\n", 1);
    std::fs::write(site.config(), config).unwrap();
    let node = site.start();
    // The stubs the script drops into the watch folder when it is ready.
    let stubs = site.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    for (name, len) in [
        ("Slow.Film.2021.1080p.mkv", slow.len()),
        ("Retry.Film.2022.1080p.mkv", quick.len()),
    ] {
        let id = support::item_id(alice.addr, name);
        let stub = jack::stub::build("alice", &id, name, len as u64);
        std::fs::write(stubs.join(format!("{name}.torrent")), stub).unwrap();
    }
    // The retry film is moved away first: its lookup fails until it is
    // back (the catalogue re-checks the file on every request).
    let retry_file = alice_site
        .path()
        .join("media/movies/Retry.Film.2022.1080p.mkv");
    let retry_away = alice_site.path().join("Retry.away");

    // A second node with 1,000 rows, for the time to first paint.
    // Its reserve is above any disk's free space: the page warns.
    let big = Site::new("[downloads]\nmin_free_bytes = 9223372036854775807\n");
    fill_registry(&big, 1000, hostile, 0);
    let big_node = big.start();

    let args = serde_json::json!({
        "base": format!("http://{}", node.addr),
        "big": format!("http://{}", big_node.addr),
        "key": KEY,
        "peer_key": "bob-key",
        "hostile": hostile,
        "stubs": stubs,
        "watch": site.path().join("data/watch"),
        "big_watch": big.path().join("data/watch"),
        "retry_file": retry_file,
        "retry_away": retry_away,
        "profile": site.path().join("chromium-profile"),
        "axe": axe_path(),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ui_browser.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(args.to_string())
        .env("PYTHONPATH", &py)
        .env("SE_OFFLINE", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the script's own steps wait at most 30 s each.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            panic!("the browser script ran past 240 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "browser script failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nnode log:\n{}",
        node.log_text()
    );
    eprintln!("{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // A page of 1,000 rows paints within a second; under qemu the node
    // answers several times slower (1.16 s seen on aarch64), and the figure
    // measures the emulator, so the bound is 3 s there.
    let paint_bound = if support::emulated() { 3000.0 } else { 1000.0 };
    assert!(
        report["first_paint_ms"].as_f64().unwrap() < paint_bound,
        "{report}"
    );
    // What the browser did shows in the registry too.
    let st = support::status_json(&site);
    let done: Vec<&str> = st["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "completed")
        .map(|d| d["title"].as_str().unwrap())
        .collect();
    assert_eq!(done.len(), 3, "{st}");
}
