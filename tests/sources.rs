//! What the owner and Radarr/Sonarr see of a download's sources and
//! pieces (issue 22, `PROTOCOL.md` §2.6), on the real binary: two fake
//! friends offering the same file with digests, each throttled, one
//! download drawing from both; the status API, `jack status` (from the
//! daemon and from the registry) and the qBittorrent API while it runs,
//! paused, and once it is done.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use jack::digest::PIECE_SIZE;
use serde_json::Value;
use support::fake_peer::{FakePeer, File};
use support::{KEY, Site, request, wait_for};

/// Three pieces, the last one short.
const SIZE: usize = 2 * PIECE_SIZE as usize + 4096 + 7;
/// Each friend's uplink: the download takes a few seconds.
const UPLINK: u64 = 3 * 1024 * 1024;

fn friend(data: &[u8]) -> FakePeer {
    let peer = FakePeer::start(vec![File::mkv("m", data)], vec![], Some(UPLINK));
    peer.offer_digests(true);
    peer
}

fn get_json(addr: SocketAddr, path: &str, auth: (&str, &str)) -> Value {
    let r = request(addr, "GET", path, &[auth]);
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap()
}

fn status(addr: SocketAddr) -> Value {
    let v = get_json(addr, "/api/v1/downloads", ("X-Api-Key", KEY));
    v["downloads"][0].clone()
}

fn qbit(addr: SocketAddr, path: &str) -> Value {
    let bearer = format!("Bearer {KEY}");
    get_json(addr, &format!("/api/v2/{path}"), ("Authorization", &bearer))
}

fn jack_status(site: &Site) -> String {
    support::cli_output(site, &["status"])
}

/// `POST /api/v1/downloads/{id}/{action}`, answered 200.
fn act(addr: SocketAddr, id: i64, action: &str) {
    let path = format!("/api/v1/downloads/{id}/{action}");
    let r = request(addr, "POST", &path, &[("X-Api-Key", KEY)]);
    assert_eq!(r.status, 200, "{path}");
}

#[test]
fn each_source_with_its_rate_and_the_pieces_proven_and_received() {
    let data = support::pattern(SIZE);
    let (alice, bob) = (friend(&data), friend(&data));
    let digest = jack::digest::hex(&jack::digest::sha256(&data));
    let site = support::downloader(
        alice.addr,
        &format!(
            "[qbittorrent]\nusername = \"u\"\npassword = \"a-long-password\"\n\
             [[peers]]\nname = \"bob\"\nurl = \"http://{}\"\napi_key = \"{KEY}\"\n",
            bob.addr
        ),
    );
    site.listen_on_a_free_port();
    let mut node = site.start();
    let addr = node.addr;
    support::drop_grab(&site, "m.torrent", "alice", "m", "m", SIZE);

    // Running: both friends listed, each sending at its own rate.
    wait_for("two sources sending", Duration::from_secs(20), || {
        let d = status(addr);
        let sources = d["sources"].as_array().cloned().unwrap_or_default();
        sources.len() == 2 && sources.iter().all(|s| s["rate"].as_u64() > Some(0))
    });
    let d = status(addr);
    assert_eq!(d["status"], "downloading");
    assert_eq!(d["digest"], digest.as_str());
    let peers: Vec<&str> = d["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["peer"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["alice", "bob"], "{d}");
    for s in d["sources"].as_array().unwrap() {
        let rate = s["rate"].as_u64().unwrap();
        assert!(rate <= 2 * UPLINK, "{s}: at most about its uplink");
        assert_eq!(
            (s["bad_pieces"].as_u64(), s["state"].is_string()),
            (Some(0), true)
        );
    }
    let pieces = &d["pieces"];
    assert_eq!(pieces["total"], 3, "{d}");
    assert!(
        pieces["verified"].as_u64() <= pieces["received"].as_u64(),
        "{d}"
    );

    // `jack status` through the daemon: a line of sources with rates.
    let text = jack_status(&site);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("from alice "))
        .unwrap_or_else(|| panic!("no sources line in:\n{text}"));
    assert!(
        line.contains("/s, bob ") && line.contains(" verified, "),
        "{line}"
    );
    assert!(
        line.contains("pieces: ") && line.contains(" of 3 verified"),
        "{line}"
    );

    // qBittorrent: both friends are seeds known, those sending now seeds.
    let info = qbit(addr, "torrents/info");
    let t = &info[0];
    assert_eq!(t["state"], "downloading");
    assert_eq!(t["num_complete"], 2, "{t}");
    assert!((1..=2).contains(&t["num_seeds"].as_u64().unwrap()), "{t}");
    let names: Vec<&str> = t["jack_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["peer"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(t["jack_sources"][0]["dlspeed"].is_u64());
    let hash = t["hash"].as_str().unwrap().to_string();
    let props = qbit(addr, &format!("torrents/properties?hash={hash}"));
    assert_eq!(
        (
            &props["piece_size"],
            &props["pieces_num"],
            &props["seeds_total"]
        ),
        (&16_777_216.into(), &3.into(), &2.into())
    );
    assert!(props["pieces_have"].as_u64() < Some(3));
    let states = qbit(addr, &format!("torrents/pieceStates?hash={hash}"));
    assert_eq!(states.as_array().unwrap().len(), 3, "{states}");
    assert!(
        states.as_array().unwrap().iter().any(|s| s != 2),
        "{states}"
    );

    // Paused, then the daemon stopped: `jack status` from the registry
    // shows the pieces and no rates.
    let id = d["id"].as_i64().unwrap();
    act(addr, id, "pause");
    wait_for("the pause", Duration::from_secs(10), || {
        status(addr)["sources"] == Value::Array(vec![])
    });
    let held = status(addr)["pieces"].clone();
    node.stop_gracefully("TERM");
    let text = jack_status(&site);
    assert!(text.starts_with("source: registry"), "{text}");
    let want = format!(
        "       pieces: {} of 3 verified, {} received",
        held["verified"], held["received"]
    );
    assert!(text.lines().any(|l| l == want), "{want:?} not in:\n{text}");
    assert!(!text.contains("/s,"), "no rates from the registry:\n{text}");

    // Resumed to its end: every piece proven.
    let node = site.start();
    let addr = node.addr;
    act(addr, id, "resume");
    wait_for("completion", Duration::from_secs(30), || {
        status(addr)["status"] == "completed"
    });
    assert!(std::fs::read(site.path().join("data/completed/m.mkv")).unwrap() == data);
    let d = status(addr);
    assert_eq!(
        d["pieces"],
        serde_json::json!({"total": 3, "verified": 3, "received": 3})
    );
    assert_eq!(d["digest"], digest.as_str());
    assert_eq!(d["sources"], serde_json::json!([]));
    let t = qbit(addr, "torrents/info")[0].clone();
    assert_eq!(
        (&t["state"], &t["num_seeds"]),
        (&"pausedUP".into(), &0.into()),
        "{t}"
    );
    assert_eq!(t["jack_sources"], serde_json::json!([]));
    let props = qbit(addr, &format!("torrents/properties?hash={hash}"));
    assert_eq!(props["pieces_have"], 3);
    let states = qbit(addr, &format!("torrents/pieceStates?hash={hash}"));
    assert_eq!(states, serde_json::json!([2, 2, 2]));
    // `jack status --json` from the daemon has them too.
    let j = support::status_json(&site);
    assert_eq!(j["downloads"][0]["pieces"]["verified"], 3);
}
