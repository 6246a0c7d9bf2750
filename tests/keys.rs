//! Per-peer keys with the real binary: each friend's key opens `/handshake`
//! and `/peer/*` and nothing else; `SIGHUP` swaps the keys without cutting a
//! transfer in flight, and a config that fails validation is refused with
//! the running keys kept; `jack key new` prints a key and entries that work.

mod support;

use std::time::Duration;

use support::{
    KEY, Node, Site, drop_grab, get, item_id, pattern, request, serving_site, status_json,
    throttle, wait_for,
};

const FILE: &str = "Some.Movie.2024.1080p.WEB-DL.x264-GRP.mkv";

fn keys_toml(entries: &[(&str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, key)| format!("[[server.peer_keys]]\nname = \"{name}\"\nkey = \"{key}\"\n"))
        .collect()
}

fn status_with(node: &Node, path: &str, key: &str) -> u16 {
    request(node.addr, "GET", path, &[("X-Api-Key", key)]).status
}

/// Rewrites the `[[server.peer_keys]]` of a serving site's config, the rest kept.
fn rewrite_keys(site: &Site, entries: &str) {
    let text = std::fs::read_to_string(site.config()).unwrap();
    let kept: String = text
        .split("\n[[library]]")
        .nth(1)
        .map(|rest| format!("\n[[library]]{rest}"))
        .unwrap();
    let head = "[server]\nlisten = \"127.0.0.1:0\"\napi_key = \"test-key\"\nhandler_threads = 4\n";
    std::fs::write(site.config(), format!("{head}{entries}{kept}")).unwrap();
}

#[test]
fn a_friends_key_opens_the_peer_api_and_nothing_else() {
    let (_site, node) = serving_site(
        &format!(
            "[log]\nlevel = \"debug\"\n{}",
            keys_toml(&[("bob", "bob-key"), ("carol", "carol-key")])
        ),
        &[(FILE, b"0123456789")],
    );
    let id = item_id(node.addr, FILE);
    for key in ["bob-key", "carol-key", KEY] {
        assert_eq!(status_with(&node, "/handshake", key), 200, "{key}");
        assert_eq!(status_with(&node, "/peer/search", key), 200, "{key}");
        let file = format!("/peer/items/{}/file", support::enc(&id));
        let r = request(
            node.addr,
            "GET",
            &file,
            &[("Authorization", &format!("Bearer {key}"))],
        );
        assert_eq!(r.status, 200, "{key}");
        assert_eq!(r.body, b"0123456789");
    }
    assert_eq!(status_with(&node, "/peer/search", "bob-key2"), 401);
    assert_eq!(status_with(&node, "/peer/search", "bob"), 401);
    // Torznab answers a wrong key with error 100; a friend's key is wrong there.
    let torznab = get(node.addr, "/torznab/api?t=search&apikey=bob-key");
    assert!(
        String::from_utf8_lossy(&torznab.body).contains("<error code=\"100\""),
        "{}",
        String::from_utf8_lossy(&torznab.body)
    );
    let own = get(node.addr, &format!("/torznab/api?t=search&apikey={KEY}"));
    assert!(!String::from_utf8_lossy(&own.body).contains("<error"));
    let dl = get(
        node.addr,
        "/torznab/download/alice%3Ax.torrent?apikey=bob-key",
    );
    assert_eq!(dl.status, 401);
    // The owner-only APIs never take a friend's key; the node's own works.
    for path in ["/api/v1/downloads", "/metrics"] {
        let r = request(node.addr, "GET", path, &[("X-Api-Key", "bob-key")]);
        assert_eq!(r.status, 401, "{path}");
        let r = request(node.addr, "GET", path, &[("X-Api-Key", KEY)]);
        assert_eq!(r.status, 200, "{path}");
    }
    node.wait_log("peer file request caller=bob", Duration::from_secs(5));
    node.wait_log("peer request caller=carol", Duration::from_secs(5));
    let log = node.log_text();
    assert!(
        !log.contains("bob-key") && !log.contains("carol-key"),
        "{log}"
    );
}

#[test]
fn sighup_revokes_a_key_while_a_transfer_it_started_completes() {
    let data = pattern(6 * 1024 * 1024);
    let (a, alice) = serving_site(
        &format!(
            "[log]\nlevel = \"debug\"\n{}",
            keys_toml(&[("bob", "bob-key"), ("carol", "carol-key")])
        ),
        &[(FILE, &data)],
    );
    let id = item_id(alice.addr, FILE);
    // Bob downloads from Alice with his own key, through a 2 MiB/s link.
    let slow = throttle(alice.addr, 2 * 1024 * 1024);
    let b = Site::new(&format!(
        "[downloads]\nscan_interval_ms = 100\nretry_base_delay_ms = 10\nretry_max_delay_ms = 100\n\
         [[peers]]\nname = \"alice\"\nurl = \"http://{slow}\"\napi_key = \"bob-key\"\n"
    ));
    let bob = b.start();
    let title = "Some.Movie.2024.1080p.WEB-DL.x264-GRP";
    drop_grab(&b, "Some.Movie.torrent", "alice", &id, title, data.len());
    bob.wait_log("download started", Duration::from_secs(15));

    // Alice drops Bob's key and adds Dave's.
    rewrite_keys(
        &a,
        &keys_toml(&[("carol", "carol-key"), ("dave", "dave-key")]),
    );
    alice.signal("HUP");
    alice.wait_log("reload done", Duration::from_secs(5));
    let log = alice.log_text();
    assert!(
        log.contains("peer_keys_added=[dave] peer_keys_removed=[bob]"),
        "{log}"
    );
    assert_eq!(status_with(&alice, "/peer/search", "bob-key"), 401);
    assert_eq!(status_with(&alice, "/peer/search", "dave-key"), 200);
    assert_eq!(status_with(&alice, "/peer/search", "carol-key"), 200);
    assert_eq!(status_with(&alice, "/peer/search", KEY), 200);
    assert!(
        status_json(&b)["downloads"][0]["status"] == "downloading",
        "the transfer was still running when the key went"
    );
    // Bob points alice elsewhere: the running transfer keeps the peer it had.
    let text = std::fs::read_to_string(b.config()).unwrap();
    std::fs::write(b.config(), text.replace(&slow.to_string(), "127.0.0.1:9")).unwrap();
    bob.signal("HUP");
    bob.wait_log("peers_changed=[alice]", Duration::from_secs(5));

    // The transfer Bob's key started runs to its end, once.
    let dest = b.path().join("data/completed").join(FILE);
    wait_for("the completed file", Duration::from_secs(30), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data, "final bytes differ");
    let row = &status_json(&b)["downloads"][0];
    assert_eq!(row["status"], "completed");
    assert_eq!(row["attempts"], 1);
    assert!(!alice.log_text().contains("bob-key"));
}

#[test]
fn a_config_that_fails_on_sighup_is_refused_and_the_old_keys_kept() {
    let (site, node) = serving_site(&keys_toml(&[("bob", "bob-key")]), &[(FILE, b"x")]);
    rewrite_keys(
        &site,
        "[[server.peer_keys]]\nname = \"bad name\"\nkey = \"new-key\"\n\
         [[server.peer_keys]]\nname = \"carol\"\nkey_sha256 = \"nothex\"\n",
    );
    node.signal("HUP");
    node.wait_log("reload refused:", Duration::from_secs(5));
    let log = node.log_text();
    assert!(log.contains("key=server.peer_keys[0].name line=6"), "{log}");
    assert!(
        log.contains("key=server.peer_keys[1].key_sha256 line=10"),
        "{log}"
    );
    assert!(log.contains("2 problem(s)"), "{log}");
    assert!(!log.contains("new-key"), "{log}");
    assert_eq!(status_with(&node, "/peer/search", "bob-key"), 200);
    assert_eq!(status_with(&node, "/peer/search", "new-key"), 401);
    // The node keeps serving, and a good file afterwards is taken.
    rewrite_keys(&site, &keys_toml(&[("carol", "carol-key")]));
    node.signal("HUP");
    node.wait_log("reload done", Duration::from_secs(5));
    assert_eq!(status_with(&node, "/peer/search", "bob-key"), 401);
    assert_eq!(status_with(&node, "/peer/search", "carol-key"), 200);
}

#[test]
fn key_new_prints_a_key_and_entries_that_validate_and_work() {
    let site = Site::new("");
    let out = site.command(&["key", "new", "erin"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The key: the first line that is not a comment.
    let key = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 64, "{text}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    // The two entries, as printed: the `key` one, and the commented hash one.
    let entries: Vec<&str> = text.split("\n\n").skip(1).collect();
    assert_eq!(entries.len(), 2, "{text}");
    let plain = entries[0]
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let hashed = entries[1]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with("or,"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plain.contains(&format!("key = \"{key}\"")), "{plain}");
    assert!(hashed.contains("key_sha256 = "), "{hashed}");
    for entry in [plain, hashed] {
        let (s, node) = serving_site(&format!("{entry}\n"), &[(FILE, b"x")]);
        let check = s.run_cli(&["check-config"]);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(!String::from_utf8_lossy(&check.stdout).contains(&key));
        assert_eq!(status_with(&node, "/handshake", &key), 200, "{entry}");
        assert_eq!(status_with(&node, "/peer/search", "wrong"), 401);
    }
    // Each run gives a new key.
    let again = site.command(&["key", "new", "erin"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&again.stdout).contains(&key));
}

#[test]
fn sighup_adds_a_peer_for_new_downloads() {
    let data = pattern(64 * 1024);
    let (_a, alice) = serving_site(&keys_toml(&[("bob", "bob-key")]), &[(FILE, &data)]);
    let id = item_id(alice.addr, FILE);
    let b = Site::new("[downloads]\nscan_interval_ms = 100\n");
    let bob = b.start();
    let entry = format!(
        "\n[[peers]]\nname = \"alice\"\nurl = \"http://{}\"\napi_key = \"bob-key\"\n",
        alice.addr
    );
    let text = std::fs::read_to_string(b.config()).unwrap();
    std::fs::write(b.config(), format!("{text}{entry}")).unwrap();
    bob.signal("HUP");
    bob.wait_log("peers_added=[alice]", Duration::from_secs(5));
    assert!(!bob.log_text().contains("apply at the next start"));
    // Anything else waits for a restart, and says so.
    let text = std::fs::read_to_string(b.config()).unwrap();
    std::fs::write(
        b.config(),
        text.replace("handler_threads = 4", "handler_threads = 5"),
    )
    .unwrap();
    bob.signal("HUP");
    bob.wait_log("they apply at the next start", Duration::from_secs(5));
    drop_grab(&b, "New.torrent", "alice", &id, "Some.Movie", data.len());
    let dest = b.path().join("data/completed").join(FILE);
    wait_for("the completed file", Duration::from_secs(15), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data);
}
