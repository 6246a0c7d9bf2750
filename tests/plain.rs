//! Problems in plain words (issue 21), on the real binary: a friend's node
//! refusing our key says so on both sides (the refusing node's log, once
//! per address a minute; the asking node's log, `jack status`, the status
//! API and the page's Peers table); a peer that stopped answering shows as
//! "alice's node is not answering (connection refused); next try in ..."
//! with no OS error text, and its latest contact (failed, when, during a
//! download) beside it; stubs the watch folder set aside are listed with
//! why and put back by the status API and `jack retry-stub`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::fake_peer::{FakePeer, File, Mode};
use support::{
    KEY, Node, Site, drop_grab, drop_stub, get, pattern, request, request_with_body, serving_site,
    status_json, wait_for,
};

/// A downloading site whose peer `alice` is at `peer`, with `key`.
fn asking(peer: SocketAddr, key: &str, downloads: &str) -> Site {
    let site = Site::new(&format!(
        "[downloads]\nscan_interval_ms = 100\n{downloads}\n[[peers]]\nname = \"alice\"\nurl = \"http://{peer}\"\napi_key = \"{key}\"\n"
    ));
    site.listen_on_a_free_port();
    site
}

/// Waits until the download of the peer's item `id` completed.
fn completed(site: &Site, id: &str) {
    wait_for(&format!("{id} completed"), Duration::from_secs(15), || {
        status_json(site)["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["item_id"] == id && d["status"] == "completed")
    });
}

/// The page's state, logged in with the owner key.
fn page_state(addr: SocketAddr) -> serde_json::Value {
    let r = request_with_body(
        addr,
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("key={KEY}").as_bytes(),
    );
    assert_eq!(r.status, 200);
    let cookie = r.header("Set-Cookie").unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    let token: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let token = token["csrf"].as_str().unwrap();
    let state = request(
        addr,
        "GET",
        "/ui/state",
        &[("Cookie", &pair), ("X-CSRF-Token", token)],
    );
    assert_eq!(state.status, 200);
    serde_json::from_slice(&state.body).unwrap()
}

#[test]
fn a_wrong_friend_key_is_told_on_both_nodes() {
    let (_a_site, a) = serving_site(
        "[[server.peer_keys]]\nname = \"bob\"\nkey = \"bobs-right-key\"\n",
        &[("Film (2001)/Film.2001.1080p.WEB-DL.x264-GRP.mkv", b"film")],
    );
    let b_site = asking(a.addr, "an-outdated-key", "");
    let b = b_site.start();
    for _ in 0..3 {
        let r = get(b.addr, &format!("/torznab/api?t=search&apikey={KEY}"));
        assert_eq!(r.status, 200);
    }
    // The refusing node: one line for the address (not one per refusal),
    // with the route, never the key.
    a.wait_log(
        "wrong credential route=peer client=127.0.0.1",
        Duration::from_secs(5),
    );
    let a_log = a.log_text();
    assert_eq!(
        a_log
            .matches("wrong credential route=peer client=127.0.0.1")
            .count(),
        1,
        "{a_log}"
    );
    assert!(!a_log.contains("an-outdated-key"), "{a_log}");

    // The asking node: its log, the status API, `jack status`, the page.
    let said = "alice refused our key (401): check `api_key` of `[[peers]] alice`";
    b.wait_log(said, Duration::from_secs(5));
    assert!(!b.log_text().contains("an-outdated-key"));
    let v = status_json(&b_site);
    let contact = &v["peers"][0]["contact"];
    assert_eq!(v["peers"][0]["name"], "alice", "{v}");
    assert_eq!(contact["ok"], false, "{v}");
    assert_eq!(contact["exchange"], "search", "{v}");
    assert_eq!(contact["problem"], said, "{v}");
    assert!(contact["at"].as_str().unwrap().ends_with('Z'), "{v}");
    let text = String::from_utf8(b_site.run_cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains(&format!("peer alice (http://{}): failed ", a.addr)) && text.contains(said),
        "{text}"
    );
    let page = page_state(b.addr);
    let peer = &page["peers"][0];
    assert_eq!(peer["reachable"], false, "{page}");
    assert_eq!(peer["error"], said, "{page}");
    assert_eq!(peer["contact"], "search", "{page}");
    assert!(peer["checked_at"].as_u64().is_some(), "{page}");
}

#[test]
fn a_peer_that_stopped_answering_is_said_in_plain_words() {
    // Its first answer asks for a second's patience; then it is gone.
    let peer = FakePeer::start(
        vec![File::mkv("m", &pattern(4096))],
        vec![Mode::Status(503, Some("1".into()))],
        None,
    );
    let site = asking(
        peer.addr,
        KEY,
        "retry_base_delay_ms = 30000\nretry_max_delay_ms = 60000\n",
    );
    let node = site.start();
    drop_grab(&site, "M.torrent", "alice", "m", "M", 4096);
    wait_for("the first file request", Duration::from_secs(10), || {
        !peer.file_requests().is_empty()
    });
    drop(peer);
    wait_for("a refused connection", Duration::from_secs(15), || {
        status_json(&site)["downloads"][0]["error_detail"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused"))
    });
    let v = status_json(&site);
    let d = &v["downloads"][0];
    let error = d["error"].as_str().unwrap();
    assert!(
        error.starts_with("alice's node is not answering (connection refused); "),
        "{error}"
    );
    assert!(
        error.contains("; next try in ") || error.ends_with("; trying again now"),
        "{error}"
    );
    assert!(!error.contains("os error"), "{error}");
    assert!(
        d["error_detail"].as_str().unwrap().contains("os error"),
        "the technical text is kept: {d}"
    );
    // Its latest contact: failed, during the download, not an older
    // "reachable" from the lookup that went through.
    let contact = &v["peers"][0]["contact"];
    assert_eq!(contact["ok"], false, "{v}");
    assert_eq!(contact["exchange"], "download", "{v}");
    assert_eq!(
        contact["problem"],
        "alice's node is not answering (connection refused)"
    );
    let text = String::from_utf8(site.run_cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains("alice's node is not answering (connection refused)"),
        "{text}"
    );
    assert!(!text.contains("os error"), "{text}");
    let page = page_state(node.addr);
    assert_eq!(page["peers"][0]["reachable"], false, "{page}");
    assert!(
        !page["downloads"][0]["error"]
            .as_str()
            .unwrap()
            .contains("os error"),
        "{page}"
    );
}

#[test]
fn stubs_set_aside_are_listed_with_why_and_put_back() {
    let peer = FakePeer::start(
        vec![
            File::mkv("m", &pattern(4096)),
            File::mkv("gone", &pattern(4096)),
        ],
        vec![],
        None,
    );
    let site = asking(peer.addr, KEY, "stub_settle_ms = 200\nmax_attempts = 1\n");
    let node = site.start();
    let watch = site.path().join("data/watch");
    // Not a stub at all: set aside `.invalid` once settled.
    drop_stub(&site, "Broken.torrent", b"not bencode");
    // A release the peer does not have (its file answers 404): `.failed`.
    peer.remove("gone");
    drop_grab(&site, "Gone.torrent", "alice", "gone", "Gone", 4096);
    // The same release twice: the second `.duplicate`.
    drop_grab(&site, "M.torrent", "alice", "m", "M", 4096);
    completed(&site, "m");
    drop_grab(&site, "M again.torrent", "alice", "m", "M", 4096);
    wait_for("three stubs set aside", Duration::from_secs(15), || {
        status_json(&site)["set_aside"].as_array().unwrap().len() == 3
    });
    let v = status_json(&site);
    let aside = v["set_aside"].as_array().unwrap();
    let find = |file: &str| {
        aside
            .iter()
            .find(|a| a["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in {aside:?}"))
    };
    let broken = find("Broken.torrent.invalid");
    assert_eq!(broken["kind"], "invalid");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a valid stub: "),
        "{broken}"
    );
    let gone = find("Gone.torrent.failed");
    assert!(
        gone["reason"]
            .as_str()
            .unwrap()
            .contains("alice no longer offers this file (404)"),
        "{gone}"
    );
    let dup = find("M again.torrent.duplicate");
    assert!(
        dup["reason"]
            .as_str()
            .unwrap()
            .starts_with("a download of this release is already there (#"),
        "{dup}"
    );
    let text = String::from_utf8(site.run_cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains("stub set aside Gone.torrent.failed (")
            && text.contains("retry: jack retry-stub \"Gone.torrent.failed\""),
        "{text}"
    );
    let page = page_state(node.addr);
    assert_eq!(page["set_aside"].as_array().unwrap().len(), 3, "{page}");

    // A duplicate stays one, with why.
    let retry = |file: &str| {
        request_with_body(
            node.addr,
            "POST",
            &format!("/api/v1/stubs/{}/retry", support::enc(file)),
            &[("X-Api-Key", KEY)],
            b"",
        )
    };
    let r = retry("M again.torrent.duplicate");
    assert_eq!(r.status, 409);
    assert!(
        String::from_utf8_lossy(&r.body).contains("is still a duplicate: download #"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(watch.join("M again.torrent.duplicate").exists());
    assert_eq!(retry("Nothing.torrent.failed").status, 404);

    // The failed one, put back once the peer has the file: downloaded.
    peer.add(File::mkv("gone", &pattern(4096)));
    let out = site.run_cli(&["retry-stub", "Gone.torrent.failed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("put back as Gone.torrent"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    completed(&site, "gone");
    assert_eq!(
        std::fs::read(site.path().join("data/completed/gone.mkv")).unwrap(),
        pattern(4096)
    );
    let again = site.run_cli(&["retry-stub", "Gone.torrent.failed"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no stub set aside as Gone.torrent.failed")
    );
    // The invalid one, through the API: read again, set aside again.
    assert_eq!(retry("Broken.torrent.invalid").status, 200);
    assert!(!watch.join("Broken.torrent.invalid").exists());
    wait_for("Broken set aside again", Duration::from_secs(15), || {
        watch.join("Broken.torrent.invalid").exists()
    });
    drop(node);
}

/// Radarr/Sonarr write the stub and own it (a rename to `.failed` keeps
/// its owner); jack runs as another user who may write in the watch
/// folder. Such a stub, one jack may not write, is put back by the status
/// API and by `jack retry-stub`, as a new file the watch folder reads
/// again, and downloaded. Run as root (the usual test run), the node and
/// the CLI run as uid 65534 and the stubs stay root's, mode 0644;
/// otherwise they are made read-only (0444).
#[test]
fn a_stub_another_user_owns_is_put_back() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let root = rustix::process::getuid().is_root();
    let peer = FakePeer::start(
        vec![
            File::mkv("a", &pattern(4096)),
            File::mkv("b", &pattern(4096)),
        ],
        vec![],
        None,
    );
    peer.remove("a");
    peer.remove("b");
    let site = asking(peer.addr, KEY, "max_attempts = 1\n");
    let watch = site.path().join("data/watch");
    std::fs::create_dir_all(&watch).unwrap();
    let as_jack = |mut cmd: std::process::Command| {
        if root {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        cmd
    };
    if root {
        for p in [
            site.path(),
            &site.config(),
            &site.path().join("data"),
            &watch,
        ] {
            std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    // Written by the *arr (root here).
    drop_grab(&site, "A.torrent", "alice", "a", "A", 4096);
    drop_grab(&site, "B.torrent", "alice", "b", "B", 4096);
    let config = site.config();
    let node = Node::spawn(as_jack(site.command(&[
        "--config",
        config.to_str().unwrap(),
        "run",
    ])));
    wait_for("both set aside as failed", Duration::from_secs(15), || {
        watch.join("A.torrent.failed").exists() && watch.join("B.torrent.failed").exists()
    });
    for f in ["A.torrent.failed", "B.torrent.failed"] {
        let f = watch.join(f);
        if !root {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f).unwrap()),
            rustix::process::getuid().as_raw()
        );
    }
    peer.add(File::mkv("a", &pattern(4096)));
    peer.add(File::mkv("b", &pattern(4096)));
    let r = request_with_body(
        node.addr,
        "POST",
        "/api/v1/stubs/A.torrent.failed/retry",
        &[("X-Api-Key", KEY)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = as_jack(site.command(&[
        "retry-stub",
        "B.torrent.failed",
        "--config",
        config.to_str().unwrap(),
    ]))
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in ["a", "b"] {
        completed(&site, id);
    }
    // Both stubs read again and removed by their completions; nothing set
    // aside left, no copy left behind.
    wait_for("the watch folder empty", Duration::from_secs(10), || {
        std::fs::read_dir(&watch).unwrap().count() == 0
    });
    drop(node);
}

/// A watch folder that cannot be read (here: replaced by a file) costs
/// the list of stubs set aside only: the status API, `jack status` and
/// the page still answer, and say why in plain words.
#[test]
fn an_unreadable_watch_folder_leaves_the_status_standing() {
    let peer = FakePeer::start(vec![File::mkv("m", &pattern(4096))], vec![], None);
    let site = asking(peer.addr, KEY, "");
    let node = site.start();
    let watch = site.path().join("data/watch");
    drop_grab(&site, "M.torrent", "alice", "m", "M", 4096);
    completed(&site, "m");
    std::fs::remove_dir_all(&watch).unwrap();
    std::fs::write(&watch, b"not a folder").unwrap();
    let said = "stubs set aside cannot be shown: cannot read the watch folder";
    let r = request(node.addr, "GET", "/api/v1/downloads", &[("X-Api-Key", KEY)]);
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["downloads"].as_array().unwrap().len(), 1, "{v}");
    let why = v["set_aside_error"].as_str().unwrap();
    assert!(why.starts_with(said) && !why.contains("os error"), "{why}");
    let out = site.run_cli(&["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(said) && text.contains("completed"), "{text}");
    let page = page_state(node.addr);
    assert!(
        page["set_aside_error"].as_str().unwrap().starts_with(said),
        "{page}"
    );
    assert_eq!(page["downloads"].as_array().unwrap().len(), 1, "{page}");
    let r = request(node.addr, "GET", "/api/v1/stubs", &[("X-Api-Key", KEY)]);
    assert_eq!(r.status, 200);
    drop(node);
    // From the registry (no node): the same.
    let out = site.run_cli(&["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().contains(said));
}
