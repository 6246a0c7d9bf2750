//! `jack status` (text, JSON, `--watch` under a pseudo-terminal), the
//! owner's status API and its authorization, and `/metrics` parsed as
//! Prometheus text while a transfer moves its counters.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use jack::db::{EventKind, NewDownload, Registry, Status};
use support::{
    KEY, Site, connect_from, downloader, drop_stub, free_port, item_id, pattern, request,
    serving_site, wait_for,
};

/// A site listening on a known port (so `jack status` finds its daemon).
fn site_on_a_port() -> (Site, SocketAddr) {
    let site = Site::new("");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(
        site.config(),
        format!("[server]\nlisten = \"{addr}\"\napi_key = \"{KEY}\"\nhandler_threads = 4\n"),
    )
    .unwrap();
    (site, addr)
}

/// A registry at the site's default path with one row in every state.
fn rows_in_every_state(site: &Site) -> Vec<i64> {
    let db = site.path().join("data/jack.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let reg = Registry::open(&db).unwrap();
    let mut ids = Vec::new();
    for (i, status) in Status::ALL.into_iter().enumerate() {
        let name = format!("Film.{i}.2024.1080p");
        let id = reg
            .insert(&NewDownload {
                stub_name: format!("{name}.torrent"),
                info_hash: format!("{i:02}").repeat(20),
                peer: "alice".into(),
                item_id: format!("lib1:movie:{i}"),
                title: name.clone(),
                file_name: format!("{name}.mkv"),
                part_path: site.path().join(format!("data/incomplete/{i}.part")),
                dest_path: site.path().join(format!("data/completed/{name}.mkv")),
                etag: None,
                expected_bytes: 1_000_000,
                sha256: None,
                search: None,
            })
            .unwrap();
        reg.set_progress(id, 250_000 * (i as u64 % 5)).unwrap();
        let error =
            matches!(status, Status::Failed | Status::Retrying).then_some("peer answered HTTP 503");
        if status != Status::Queued {
            reg.transition(id, status, error, EventKind::Started, "test")
                .unwrap();
        }
        ids.push(id);
    }
    ids
}

fn run_status(site: &Site, args: &[&str]) -> String {
    support::cli_output(site, args)
}

#[test]
fn status_shows_rows_in_every_state_as_text_and_json() {
    let site = Site::new("");
    let ids = rows_in_every_state(&site);

    let text = run_status(&site, &["status"]);
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap().starts_with("source: registry "),
        "{text}"
    );
    let head = lines.next().unwrap();
    for column in jack::owner::status::COLUMNS {
        assert!(head.contains(column), "{head}");
    }
    // Under the table, the free space of the download folders' disks (never
    // started: the folders are not there yet, and it says so).
    let rows: Vec<&str> = lines.take_while(|l| !l.starts_with("disk of ")).collect();
    assert_eq!(rows.len(), Status::ALL.len(), "{text}");
    assert!(
        text.ends_with("/data/watch: free space unknown: the folder does not exist\n"),
        "{text}"
    );
    for (row, status) in rows.iter().zip(Status::ALL) {
        assert!(row.contains(status.as_str()), "{row}");
        assert!(row.contains("alice"), "{row}");
    }
    // The second row (250,000 of 1,000,000) has a quarter bar.
    assert!(rows[1].contains("[###...........]  25.0%"), "{text}");
    assert!(rows[1].contains("244.1 KiB/976.6 KiB"), "{text}");
    assert!(rows[5].contains("peer answered HTTP 503"), "{text}");

    let v: serde_json::Value =
        serde_json::from_str(&run_status(&site, &["status", "--json"])).unwrap();
    assert_eq!(v["source"], "registry");
    let downloads = v["downloads"].as_array().unwrap();
    let states: Vec<&str> = downloads
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(states, all);
    for (d, id) in downloads.iter().zip(&ids) {
        assert_eq!(d["id"], *id);
        assert_eq!(d["expected_bytes"], 1_000_000);
        // Not running: no speed, no ETA, done = durable.
        assert!(d["speed"].is_null() && d["eta_seconds"].is_null());
        assert_eq!(d["done_bytes"], d["downloaded_bytes"]);
    }
    assert_eq!(downloads[2]["progress"], 0.5);
}

#[test]
fn status_reads_the_daemon_when_it_runs() {
    let (site, addr) = site_on_a_port();
    let text = run_status(&site, &["status"]);
    assert!(text.starts_with("source: registry "), "{text}");
    assert!(text.contains("daemon not answering"), "{text}");
    rows_in_every_state(&site);
    let node = site.start();
    assert_eq!(node.addr, addr);
    let text = run_status(&site, &["status"]);
    assert!(
        text.starts_with(&format!("source: daemon at http://{addr}\n")),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&run_status(&site, &["status", "--json"])).unwrap();
    assert_eq!(v["source"], "daemon");
    assert_eq!(v["downloads"].as_array().unwrap().len(), Status::ALL.len());
    // The daemon's text is the same table.
    let head = text.lines().nth(1).unwrap();
    assert!(
        jack::owner::status::COLUMNS
            .iter()
            .all(|c| head.contains(c)),
        "{text}"
    );
    let table = text.lines().take_while(|l| !l.starts_with("disk of "));
    assert_eq!(table.count(), 2 + Status::ALL.len(), "{text}");
}

#[test]
fn watch_refreshes_in_place_under_a_pty_until_ctrl_c() {
    let site = Site::new("");
    rows_in_every_state(&site);
    // python3's pty: a real terminal for `jack status --watch`; two frames,
    // then SIGINT, and the exit status.
    let script = r#"
import os, pty, select, signal, sys, time
config, jack = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(jack[0], jack + ["status", "--watch", "--config", config])
buf = b""
deadline = time.time() + 15
while buf.count(b"\x1b[H\x1b[2J") < 2 and time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            buf += os.read(fd, 65536)
        except OSError:
            break
os.kill(pid, signal.SIGINT)
end = time.time() + 5
status = None
while time.time() < end:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -os.WTERMSIG(st)
        break
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            buf += os.read(fd, 65536)
        except OSError:
            pass
if status is None:
    os.kill(pid, signal.SIGKILL)
print(buf.count(b"\x1b[H\x1b[2J"), status)
print(buf.decode("utf-8", "replace"))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, site.config().to_str().unwrap()])
        .args(support::jack_argv())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    let (frames, status) = first.split_once(' ').unwrap();
    assert!(frames.parse::<u32>().unwrap() >= 2, "{text}");
    assert_eq!(status, "0", "exits cleanly on Ctrl-C: {text}");
    assert!(text.contains("source: registry"), "{text}");
    assert!(text.contains("completed"), "{text}");
}

fn call(addr: SocketAddr, method: &str, path: &str, key: Option<&str>) -> support::Resp {
    let headers: Vec<(&str, &str)> = key.map(|k| ("X-Api-Key", k)).into_iter().collect();
    let mut h = headers;
    h.push(("Content-Length", "0"));
    request(addr, method, path, &h)
}

#[test]
fn the_status_api_answers_the_owner_key_only() {
    let site = Site::new("");
    let node = site.start();
    let bearer = format!("Bearer {KEY}");
    for path in ["/api/v1/downloads", "/api/v1/downloads/1", "/metrics"] {
        assert_eq!(call(node.addr, "GET", path, None).status, 401, "{path}");
        let wrong = call(node.addr, "GET", path, Some("not-the-key"));
        assert_eq!(wrong.status, 401, "{path}");
        assert_eq!(
            wrong.header("WWW-Authenticate").as_deref(),
            Some("Bearer realm=\"jack\"")
        );
        let r = request(node.addr, "GET", path, &[("Authorization", &bearer)]);
        assert_ne!(r.status, 401, "{path}");
    }
    for (method, path) in [
        ("POST", "/api/v1/downloads/1/retry"),
        ("POST", "/api/v1/downloads/1/cancel"),
        ("POST", "/api/v1/downloads/1/pause"),
        ("POST", "/api/v1/downloads/1/resume"),
        ("DELETE", "/api/v1/downloads/1"),
    ] {
        assert_eq!(call(node.addr, method, path, None).status, 401);
        assert_eq!(call(node.addr, method, path, Some("x")).status, 401);
        assert_eq!(call(node.addr, method, path, Some(KEY)).status, 404);
    }
    let r = call(node.addr, "GET", "/api/v1/downloads", Some(KEY));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["source"], "daemon");
    // The key never reaches the log.
    assert!(!node.log_text().contains(KEY));
}

#[test]
fn resume_pause_and_delete_through_the_api() {
    let site = Site::new("");
    let ids = rows_in_every_state(&site);
    let node = site.start();
    let addr = node.addr;
    // No peer `alice` here: every live row fails at once (unknown peer).
    wait_for("every live row to fail", Duration::from_secs(20), || {
        let r = call(addr, "GET", "/api/v1/downloads", Some(KEY));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| ["completed", "failed", "paused"].contains(&d["status"].as_str().unwrap()))
    });
    let completed = ids[4];
    let one = call(
        addr,
        "GET",
        &format!("/api/v1/downloads/{completed}"),
        Some(KEY),
    );
    assert_eq!(one.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(v["status"], "completed");
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "started")
    );
    // A completed row is neither resumed nor paused.
    let path = |id: i64, action: &str| format!("/api/v1/downloads/{id}{action}");
    assert_eq!(
        call(addr, "POST", &path(completed, "/retry"), Some(KEY)).status,
        409
    );
    assert_eq!(
        call(addr, "POST", &path(completed, "/pause"), Some(KEY)).status,
        409
    );
    // A failed row is retried (and fails again: still no peer).
    let failed = ids[5];
    let r = call(addr, "POST", &path(failed, "/retry"), Some(KEY));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    node.wait_log(
        &format!("download resumed id={failed} was=failed"),
        Duration::from_secs(5),
    );
    // So is a paused one (`resume`), which was no failure.
    let paused = ids[3];
    let r = call(addr, "POST", &path(paused, "/resume"), Some(KEY));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["was"].as_str(), v["status"].as_str()),
        (Some("paused"), Some("queued"))
    );
    // DELETE keeps files jack did not put there: the completed row's
    // destination was never written by jack.
    let dest = site.path().join("data/completed/Film.4.2024.1080p.mkv");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, b"not jack's").unwrap();
    let r = call(addr, "DELETE", &path(completed, ""), Some(KEY));
    assert_eq!(r.status, 200);
    assert_eq!(
        call(addr, "GET", &path(completed, ""), Some(KEY)).status,
        404
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"not jack's");
}

/// A strict reader of the Prometheus text format (0.0.4): every sample's
/// family has `# HELP` and `# TYPE` before it, names and label names are
/// valid, label values quoted, values numbers, no family twice.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    fn name_ok(n: &str) -> bool {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut helped = std::collections::HashSet::new();
    let mut typed = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(name_ok(name) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helped.contains(name), "HELP before TYPE: {line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "{line}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line: {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
            let name = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').expect("closed labels");
                    for pair in labels.split(',') {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        assert!(name_ok(k), "{line}");
                        assert!(
                            v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                            "{line}"
                        );
                        assert!(!v[1..v.len() - 1].contains(['"', '\\', '\n']), "{line}");
                    }
                    name
                }
                None => series,
            };
            assert!(name_ok(name), "{line}");
            let kind = typed
                .get(name)
                .unwrap_or_else(|| panic!("TYPE before samples: {line}"));
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
                assert!(value >= 0.0, "{line}");
            }
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "twice: {line}"
            );
        }
    }
    samples
}

fn metrics(addr: SocketAddr) -> BTreeMap<String, f64> {
    let r = call(addr, "GET", "/metrics", Some(KEY));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(!text.contains(KEY));
    parse_prometheus(&text)
}

#[test]
fn metrics_parse_and_move_with_a_transfer() {
    let data = pattern(3 * 1024 * 1024 + 5);
    let name = "Some.Movie.2024.1080p.WEB-DL.x264-GRP.mkv";
    let (_a, alice) = serving_site("", &[(name, &data)]);
    let id = item_id(alice.addr, name);
    let b = downloader(alice.addr, "");
    let bob = b.start();

    // An idle keep-alive connection is an open one.
    let idle = std::net::TcpStream::connect(bob.addr).unwrap();
    wait_for(
        "the idle connection to count",
        Duration::from_secs(5),
        || metrics(bob.addr)["jack_open_connections"] >= 1.0,
    );
    drop(idle);
    let (a0, b0) = (metrics(alice.addr), metrics(bob.addr));
    for m in [&a0, &b0] {
        for family in [
            "jack_served_bytes_total",
            "jack_downloaded_bytes_total",
            "jack_downloaded_direct_bytes_total",
            "jack_transfers_active",
            "jack_transfers_queued",
            "jack_downloads_completed_total",
            "jack_open_connections",
            "jack_connections_refused_total{reason=\"max_connections\"}",
            "jack_connections_refused_total{reason=\"max_connections_per_ip\"}",
            "jack_downloads_failed_total{reason=\"network\"}",
            "jack_download_retries_total{reason=\"http_5xx\"}",
            "jack_download_restarts_total{reason=\"other\"}",
            "jack_http_requests_total{class=\"2xx\"}",
        ] {
            assert!(m.contains_key(family), "{family}");
        }
    }
    let stub = jack::stub::build("alice", &id, "Some.Movie.2024.1080p", data.len() as u64);
    drop_stub(&b, "Some.Movie.torrent", &stub);
    let dest = b.path().join("data/completed").join(name);
    wait_for("the completed file", Duration::from_secs(30), || {
        dest.exists()
    });
    wait_for("the completion to count", Duration::from_secs(10), || {
        metrics(bob.addr)["jack_downloads_completed_total"] == 1.0
    });
    // The status API's JSON (a generated document) is not a served file.
    assert_eq!(downloads(alice.addr).len(), 0);
    let (a1, b1) = (metrics(alice.addr), metrics(bob.addr));
    let size = data.len() as f64;
    let delta = |m1: &BTreeMap<String, f64>, m0: &BTreeMap<String, f64>, k: &str| m1[k] - m0[k];
    assert_eq!(delta(&b1, &b0, "jack_downloaded_bytes_total"), size);
    // A plain-HTTP peer's body comes straight from the socket, all but
    // what ureq read along with the head (at most its input buffer).
    let direct = delta(&b1, &b0, "jack_downloaded_direct_bytes_total");
    let buffered = jack::download::transfer::READ_BUFFER as f64;
    assert!(
        direct >= size - buffered && direct <= size,
        "{direct} of {size} direct"
    );
    assert_eq!(delta(&a1, &a0, "jack_served_bytes_total"), size);
    assert_eq!(delta(&b1, &b0, "jack_downloads_completed_total"), 1.0);
    assert_eq!(b1["jack_transfers_active"], 0.0);
    assert!(delta(&a1, &a0, "jack_http_requests_total{class=\"2xx\"}") >= 2.0);
    let failed: f64 = b1
        .iter()
        .filter(|(k, _)| k.starts_with("jack_downloads_failed_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(failed, 0.0);
}

/// The connections the accept thread refuses are counted by cap, and their
/// 503s with the 5xx answers.
#[test]
fn refused_connections_are_counted_by_cap() {
    use std::io::Read;
    let (_site, node) = serving_site("max_connections = 4\nmax_connections_per_ip = 2\n", &[]);
    let refused_from = |ip: &str| {
        let mut answer = String::new();
        connect_from(ip, node.addr)
            .read_to_string(&mut answer)
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    };
    // A fresh node: nothing refused, no 5xx, no connection open yet (so
    // none that could still count when the next ones arrive).
    // Held connections are busy (mid-head): idle ones would make room.
    let busy_from = |ip: &str| {
        use std::io::Write;
        let mut s = connect_from(ip, node.addr);
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n").unwrap();
        s
    };
    // 127.0.0.2 takes its 2 places, a third is over its own cap.
    let mut held: Vec<_> = (0..2).map(|_| busy_from("127.0.0.2")).collect();
    refused_from("127.0.0.2");
    // 127.0.0.3 takes the last 2 of 4: a new address is over the node's cap.
    held.extend((0..2).map(|_| busy_from("127.0.0.3")));
    // Their heads reach their threads (busy from then on).
    std::thread::sleep(Duration::from_millis(200));
    refused_from("127.0.0.4");
    drop(held);
    // Until the accept thread sees them closed, /metrics may be refused too.
    let mut more = 0.0;
    let text = loop {
        let r = call(node.addr, "GET", "/metrics", Some(KEY));
        match r.status {
            200 => break String::from_utf8(r.body).unwrap(),
            503 => more += 1.0,
            other => panic!("/metrics answered {other}"),
        }
        assert!(more < 100.0, "the held connections never closed");
        std::thread::sleep(Duration::from_millis(20));
    };
    let m = parse_prometheus(&text);
    let over_ip = "jack_connections_refused_total{reason=\"max_connections_per_ip\"}";
    let over_all = "jack_connections_refused_total{reason=\"max_connections\"}";
    assert_eq!(m[over_ip], 1.0);
    assert_eq!(m[over_all], 1.0 + more);
    // Each refusal's 503 is a 5xx answer, and there was no other.
    assert_eq!(m["jack_http_requests_total{class=\"5xx\"}"], 2.0 + more);
}

fn downloads(addr: SocketAddr) -> Vec<serde_json::Value> {
    let r = call(addr, "GET", "/api/v1/downloads", Some(KEY));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["downloads"].as_array().unwrap().clone()
}

#[test]
fn live_progress_then_a_pause_frees_the_worker_and_a_resume_goes_on_where_it_stopped() {
    use support::fake_peer::{self, FakePeer};
    let data = pattern(8 * 1024 * 1024);
    let small = pattern(64 * 1024);
    let files = vec![
        fake_peer::File {
            id: "f".into(),
            filename: "f.mkv".into(),
            data: data.clone(),
        },
        fake_peer::File {
            id: "g".into(),
            filename: "g.mkv".into(),
            data: small.clone(),
        },
    ];
    // 512 KiB/s: the transfer runs for seconds, long enough to watch.
    let peer = FakePeer::start(files, vec![], Some(512 * 1024));
    // One worker: a paused download must let it go for another to run.
    let b = downloader(peer.addr, "max_concurrent_downloads = 1");
    b.listen_on_a_free_port();
    let bob = b.start();
    let stub = jack::stub::build("alice", "f", "Film.2024", data.len() as u64);
    drop_stub(&b, "f.torrent", &stub);
    // Live bytes (ahead of the durable checkpoints), a speed and an ETA.
    let mut seen = serde_json::Value::Null;
    wait_for("a live speed", Duration::from_secs(15), || {
        let d = downloads(bob.addr);
        seen = d.first().cloned().unwrap_or_default();
        seen["status"] == "downloading"
            && seen["speed"].as_u64().unwrap_or(0) > 0
            && seen["done_bytes"].as_u64().unwrap_or(0) > seen["downloaded_bytes"].as_u64().unwrap()
    });
    assert!(seen["eta_seconds"].as_u64().is_some(), "{seen}");
    let speed = seen["speed"].as_u64().unwrap();
    assert!(speed < 4 * 512 * 1024, "about the peer's rate: {speed}");
    let m = metrics(bob.addr);
    assert_eq!(m["jack_transfers_active"], 1.0);
    assert!(m["jack_downloaded_bytes_total"] > 0.0);

    // `jack pause ID`, through the running node.
    let id = seen["id"].as_i64().unwrap();
    let out = b.run_cli(&["pause", &id.to_string()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("paused (by the node"), "{said}");
    wait_for("the pause", Duration::from_secs(10), || {
        downloads(bob.addr)[0]["status"] == "paused"
    });
    let row = downloads(bob.addr)[0].clone();
    // A state of its own, not an error; an event says who.
    assert!(row["error"].is_null(), "{row}");
    let one = call(
        bob.addr,
        "GET",
        &format!("/api/v1/downloads/{id}"),
        Some(KEY),
    );
    let one: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    let last = one["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["detail"].as_str()),
        (Some("paused"), Some("paused by the owner")),
        "{one}"
    );
    // `jack status`, from the daemon: text and JSON.
    let text = run_status(&b, &["status"]);
    let line = text.lines().find(|l| l.contains("alice")).unwrap();
    assert!(
        line.contains("paused") && !line.contains("failed"),
        "{text}"
    );
    assert_eq!(support::status_json(&b)["downloads"][0]["status"], "paused");
    // Its .part stays; its stub is not set aside as failed.
    let part = row["part_path"].as_str().unwrap().to_string();
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0, "the paused download keeps its bytes");
    let watch = b.path().join("data/watch");
    assert!(watch.join("f.torrent").exists());
    assert!(!watch.join("f.torrent.failed").exists());
    let m = metrics(bob.addr);
    assert_eq!(m["jack_downloads_paused_total"], 1.0);
    assert!(!m.contains_key("jack_downloads_failed_total{reason=\"paused\"}"));
    let failures: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("jack_downloads_failed_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(failures, 0.0, "a pause is no failure");
    assert_eq!(m["jack_transfers_active"], 0.0);

    // It holds no worker: with the one worker, another download runs
    // and completes while it stays paused, its bytes untouched.
    let other = jack::stub::build("alice", "g", "Other.2024", small.len() as u64);
    drop_stub(&b, "g.torrent", &other);
    let g = b.path().join("data/completed/g.mkv");
    wait_for("the other download", Duration::from_secs(20), || g.exists());
    assert!(std::fs::read(&g).unwrap() == small);
    std::thread::sleep(Duration::from_millis(500));
    let still = downloads(bob.addr)
        .into_iter()
        .find(|d| d["id"] == id)
        .unwrap();
    assert_eq!(still["status"], "paused");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), kept);
    // Paused again: nothing live to pause.
    let r = call(
        bob.addr,
        "POST",
        &format!("/api/v1/downloads/{id}/pause"),
        Some(KEY),
    );
    assert_eq!(r.status, 409);

    // `jack resume ID`: it goes on where it stopped, byte-exact, without
    // the peer sending the file again from 0.
    let sent_of_f = || {
        let sent = peer.record.item_bytes.lock().unwrap();
        sent.get("f").copied().unwrap_or(0)
    };
    let before = sent_of_f();
    let out = b.run_cli(&["resume", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = b.path().join("data/completed/f.mkv");
    wait_for("the resumed download", Duration::from_secs(40), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
    let after = sent_of_f();
    let resumed = call(
        bob.addr,
        "GET",
        &format!("/api/v1/downloads/{id}"),
        Some(KEY),
    );
    let resumed: serde_json::Value = serde_json::from_slice(&resumed.body).unwrap();
    let events = resumed["events"].as_array().unwrap();
    let at = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "resumed")
        .and_then(|e| {
            e["detail"]
                .as_str()?
                .strip_prefix("at byte ")?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no resume event: {resumed}"));
    assert!(at > 0, "resumed at byte {at}");
    assert_eq!(
        after - before,
        data.len() as u64 - at,
        "only the rest was sent"
    );
    assert!(
        events.iter().any(|e| e["detail"] == "resumed by the owner"),
        "{resumed}"
    );
}

/// The node of `b`, started with `JACK_FAULT_PAUSE` at `point` for 1.5 s.
fn paused_at(b: &Site, point: &str) -> support::Node {
    let mut cmd = b.command(&["--config", b.config().to_str().unwrap(), "run"]);
    cmd.env("JACK_FAULT_PAUSE", format!("{point}:1500"));
    support::Node::spawn(cmd)
}

fn act(node: &support::Node, id: i64, verb: &str) -> u16 {
    call(
        node.addr,
        "POST",
        &format!("/api/v1/downloads/{id}/{verb}"),
        Some(KEY),
    )
    .status
}

/// The owner's last word stands and the download stays paused, its file
/// not completed, for 3 s.
fn stays_paused(node: &support::Node, dest: &Path) {
    wait_for("the pause", Duration::from_secs(10), || {
        downloads(node.addr)[0]["status"] == "paused"
    });
    std::thread::sleep(Duration::from_secs(3));
    let row = downloads(node.addr)[0].clone();
    assert_eq!(row["status"], "paused", "{row}\n{}", node.log_text());
    assert!(!dest.exists(), "a paused download completed");
}

/// Pause, resume and pause again while the worker still holds the
/// download (its pause recorded, the worker not yet let go: a window
/// widened to 1.5 s): the last pause stands (it was answered 409 and the
/// resume queued the download again).
#[test]
fn pause_resume_pause_while_the_worker_lets_go_ends_paused() {
    use support::fake_peer::{self, FakePeer};
    let data = pattern(8 * 1024 * 1024);
    let file = fake_peer::File::mkv("f", &data);
    let peer = FakePeer::start(vec![file], vec![], Some(512 * 1024));
    let b = downloader(peer.addr, "");
    let node = paused_at(&b, "worker:before_release");
    drop_stub(
        &b,
        "f.torrent",
        &jack::stub::build("alice", "f", "f", data.len() as u64),
    );
    wait_for("the transfer", Duration::from_secs(15), || {
        downloads(node.addr)
            .first()
            .is_some_and(|d| d["status"] == "downloading")
    });
    let id = downloads(node.addr)[0]["id"].as_i64().unwrap();
    assert_eq!(act(&node, id, "pause"), 200);
    wait_for("the pause recorded", Duration::from_secs(10), || {
        downloads(node.addr)[0]["status"] == "paused"
    });
    assert_eq!(act(&node, id, "resume"), 200);
    assert_eq!(act(&node, id, "pause"), 200);
    stays_paused(&node, &b.path().join("data/completed/f.mkv"));
}

/// A pause that comes after an attempt's outcome (a stalled read: retry)
/// was decided, while it is recorded (widened to 1.5 s), is not answered
/// "paused" and dropped: the download ends paused, not retried.
#[test]
fn a_pause_while_an_outcome_is_recorded_is_not_lost() {
    use support::fake_peer::{self, FakePeer, Mode};
    let data = pattern(1024 * 1024);
    let file = fake_peer::File::mkv("f", &data);
    let stall = Mode::Stall(64 * 1024, Duration::from_secs(6));
    let peer = FakePeer::start(vec![file], vec![stall], None);
    let b = downloader(peer.addr, "idle_timeout_ms = 1000");
    let node = paused_at(&b, "worker:before_record");
    drop_stub(
        &b,
        "f.torrent",
        &jack::stub::build("alice", "f", "f", data.len() as u64),
    );
    node.wait_log(
        "fault pause point=worker:before_record",
        Duration::from_secs(15),
    );
    let id = downloads(node.addr)[0]["id"].as_i64().unwrap();
    assert_eq!(act(&node, id, "pause"), 200);
    stays_paused(&node, &b.path().join("data/completed/f.mkv"));
    let events = call(
        node.addr,
        "GET",
        &format!("/api/v1/downloads/{id}"),
        Some(KEY),
    );
    let events: serde_json::Value = serde_json::from_slice(&events.body).unwrap();
    let last = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["detail"], "paused by the owner", "{events}");
}

#[test]
fn a_pause_of_a_waiting_retry_ends_it_without_counting_an_attempt() {
    use support::fake_peer::{self, FakePeer, Mode};
    let data = pattern(64 * 1024);
    let file = fake_peer::File {
        id: "f".into(),
        filename: "f.mkv".into(),
        data: data.clone(),
    };
    // 503 with Retry-After: 60: the row waits in the delay queue.
    let peer = FakePeer::start(vec![file], vec![Mode::Status(503, Some("60".into()))], None);
    let b = downloader(peer.addr, "");
    let bob = b.start();
    let stub = jack::stub::build("alice", "f", "Film.2024", data.len() as u64);
    drop_stub(&b, "f.torrent", &stub);
    wait_for("the retry to be scheduled", Duration::from_secs(15), || {
        downloads(bob.addr)
            .first()
            .is_some_and(|d| d["status"] == "retrying")
    });
    let row = downloads(bob.addr)[0].clone();
    let id = row["id"].as_i64().unwrap();
    let r = call(
        bob.addr,
        "POST",
        &format!("/api/v1/downloads/{id}/pause"),
        Some(KEY),
    );
    assert_eq!(r.status, 200);
    // Under load the worker may still hold the row for a moment after it
    // shows `retrying`: the pause then lands on its run and the row ends
    // as the worker lets go.
    wait_for("the pause to end the row", Duration::from_secs(10), || {
        downloads(bob.addr)[0]["status"] == "paused"
    });
    let after = downloads(bob.addr)[0].clone();
    assert!(after["error"].is_null(), "{after}");
    assert_eq!(after["attempts"], row["attempts"]);
    let m = metrics(bob.addr);
    assert_eq!(m["jack_download_retries_total{reason=\"http_5xx\"}"], 1.0);
    assert_eq!(m["jack_downloads_paused_total"], 1.0);
}

/// What `statvfs` says of `folder`'s filesystem: (free for an unprivileged
/// writer, size), in bytes.
fn statvfs(folder: &Path) -> (u64, u64) {
    let v = rustix::fs::statvfs(folder).unwrap();
    (v.f_bavail * v.f_frsize, v.f_blocks * v.f_frsize)
}

/// `disks` of a report: each filesystem's folders, free bytes, size and
/// whether it is low; the free bytes checked against `statvfs` (other
/// builds write beside the test: within 256 MiB), the size exactly.
fn disks_of(v: &serde_json::Value) -> Vec<(Vec<String>, bool)> {
    v["disks"]
        .as_array()
        .unwrap_or_else(|| panic!("no disks: {v}"))
        .iter()
        .map(|d| {
            let folders: Vec<String> = d["folders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            let (free, total) = statvfs(Path::new(&folders[0]));
            assert_eq!(d["total_bytes"].as_u64(), Some(total), "{d}");
            let shown = d["free_bytes"].as_u64().unwrap();
            assert!(
                shown.abs_diff(free) <= 256 << 20,
                "{d}: statvfs says {free}"
            );
            assert!(d["error"].is_null(), "{d}");
            (folders, d["low"].as_bool().unwrap())
        })
        .collect()
}

#[test]
fn the_free_space_of_the_download_folders_and_a_warning_under_min_free_bytes() {
    // completed_dir on a filesystem of its own (tmpfs) when the machine
    // has one: two lines then, else one.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let (site, addr) = site_on_a_port();
    let data = site.path().join("data");
    let config = |min_free: u64| {
        format!(
            "[server]\nlisten = \"{addr}\"\napi_key = \"{KEY}\"\nhandler_threads = 4\n\
             [downloads]\nmin_free_bytes = {min_free}\ncompleted_dir = \"{}\"\n",
            shm.path().join("completed").display()
        )
    };
    std::fs::write(site.config(), config(0)).unwrap();
    let node = site.start();
    let dir = |d: &str| data.join(d).display().to_string();
    let completed = shm.path().join("completed").display().to_string();
    let r = call(node.addr, "GET", "/api/v1/downloads", Some(KEY));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let one_filesystem = {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
        dev(&data) == dev(shm.path())
    };
    let want = if one_filesystem {
        vec![(
            vec![dir("incomplete"), completed.clone(), dir("watch")],
            false,
        )]
    } else {
        vec![
            (vec![dir("incomplete"), dir("watch")], false),
            (vec![completed.clone()], false),
        ]
    };
    assert_eq!(disks_of(&v), want, "{v}");
    let text = run_status(&site, &["status"]);
    assert!(text.starts_with("source: daemon"), "{text}");
    assert!(
        text.contains(&format!("disk of {}, ", dir("incomplete"))),
        "{text}"
    );
    assert!(text.contains(" free of "), "{text}");
    assert!(!text.contains("warning"), "{text}");
    drop(node);

    // A reserve above any real free space: every disk is low, and said so
    // by the daemon and by the registry path alike.
    let huge = i64::MAX as u64;
    std::fs::write(site.config(), config(huge)).unwrap();
    let from_registry = run_status(&site, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&from_registry).unwrap();
    assert_eq!(v["source"], "registry");
    assert!(disks_of(&v).iter().all(|(_, low)| *low), "{v}");
    assert_eq!(v["min_free_bytes"].as_u64(), Some(huge));
    let node = site.start();
    let r = call(node.addr, "GET", "/api/v1/downloads", Some(KEY));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(disks_of(&v).iter().all(|(_, low)| *low), "{v}");
    let text = run_status(&site, &["status"]);
    assert!(text.starts_with("source: daemon"), "{text}");
    assert!(text.contains("warning: only "), "{text}");
    assert!(
        text.contains(&format!("free on the disk of {}, ", dir("incomplete")))
            && text.contains(
                "under [downloads] min_free_bytes (8192.0 PiB): downloads wait for room; \
             free some space there or lower min_free_bytes"
            ),
        "{text}"
    );
    drop(node);
}

#[test]
fn a_download_waiting_to_try_again_says_when() {
    use support::fake_peer::{self, FakePeer, Mode};
    let data = pattern(64 * 1024);
    let peer = FakePeer::start(
        vec![fake_peer::File::mkv("f", &data)],
        vec![Mode::Status(503, Some("60".into()))],
        None,
    );
    let site = Site::new(&format!(
        "[downloads]\nscan_interval_ms = 100\nretry_max_delay_ms = 600000\n\
         [[peers]]\nname = \"alice\"\nurl = \"http://{}\"\napi_key = \"{KEY}\"\n",
        peer.addr
    ));
    let node = site.start();
    drop_stub(
        &site,
        "f.torrent",
        &jack::stub::build("alice", "f", "Film.2024", data.len() as u64),
    );
    let mut row = serde_json::Value::Null;
    wait_for("the retry", Duration::from_secs(15), || {
        row = downloads(node.addr).first().cloned().unwrap_or_default();
        row["status"] == "retrying"
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Retry-After: 60 from the peer: the next try is a minute away.
    let at = row["next_try_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("{row}"));
    assert!(
        (now + 55_000..=now + 60_000).contains(&at),
        "next try in {} ms: {row}",
        at as i64 - now as i64
    );
    let id = row["id"].as_i64().unwrap();
    let one = call(
        node.addr,
        "GET",
        &format!("/api/v1/downloads/{id}"),
        Some(KEY),
    );
    let one: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    let again = one["next_try_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("{one}"));
    assert!(
        again.abs_diff(at) < 100,
        "the same instant on the wall clock: {one}"
    );
    // Paused, it waits for nothing.
    assert_eq!(
        call(
            node.addr,
            "POST",
            &format!("/api/v1/downloads/{id}/pause"),
            Some(KEY)
        )
        .status,
        200
    );
    wait_for("the pause", Duration::from_secs(10), || {
        downloads(node.addr)[0]["status"] == "paused"
    });
    assert!(downloads(node.addr)[0]["next_try_at"].is_null());
}
