//! The Radarr/Sonarr side against `tests/support/fake_arr.rs`, a real
//! HTTP server: *arr libraries served to peers (asked at start-up and on
//! rescan, never per request; kept while the *arr is down), the scan
//! command after a completed download, and `jack arr register`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use jack::arr::notify::{Backoff, Notifier};
use jack::config::{Arr, ArrKind, Secret, SecretOrigin};
use jack::db::{NewDownload, Registry};
use serde_json::{Value, json};
use support::fake_arr::{ARR_KEY, Behaviour, FakeArr, Kind, field};
use support::fake_peer::FakePeer;
use support::{KEY, Node, Site, downloader, drop_stub, enc, pattern, request, wait_for};

fn auth() -> [(&'static str, &'static str); 1] {
    [("X-Api-Key", KEY)]
}

/// A site serving one *arr library, `kind` `radarr` or `sonarr`, rescanned
/// every second.
fn arr_site(kind: &str, arr: &FakeArr) -> Site {
    Site::new(&format!(
        "library_rescan_secs = 1\n[[library]]\nname = \"{kind}lib\"\nkind = \"{kind}\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n",
        arr.url()
    ))
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn search(addr: SocketAddr, query: &str) -> Vec<Value> {
    let r = request(addr, "GET", &format!("/peer/search?{query}"), &auth());
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["items"].as_array().unwrap().clone()
}

/// The file of item `id` downloads byte-exact, whole and in ranges.
fn assert_served(addr: SocketAddr, id: &str, data: &[u8]) {
    let path = format!("/peer/items/{}/file", enc(id));
    let whole = request(addr, "GET", &path, &auth());
    assert_eq!(whole.status, 200);
    assert!(whole.body == data, "whole file differs");
    let mut range = auth().to_vec();
    range.push(("Range", "bytes=1000-1999"));
    let part = request(addr, "GET", &path, &range);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("Content-Range").unwrap(),
        format!("bytes 1000-1999/{}", data.len())
    );
    assert!(part.body == data[1000..2000], "range differs");
    range[1] = ("Range", "bytes=-100");
    let tail = request(addr, "GET", &path, &range);
    assert_eq!(tail.status, 206);
    assert!(
        tail.body == data[data.len() - 100..],
        "suffix range differs"
    );
    let head = request(addr, "HEAD", &path, &auth());
    assert_eq!(
        head.header("Content-Length").unwrap(),
        data.len().to_string()
    );
    assert!(head.header("ETag").is_some());
}

fn scans(node: &Node) -> usize {
    node.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("catalogue scanned"))
        .count()
}

/// Many peer requests, then: the *arr was asked once per scan (one more
/// for a scan under way), not once per request.
fn assert_asked_per_scan_only(node: &Node, arr: &FakeArr, path: &str, id: &str) {
    for _ in 0..20 {
        search(node.addr, "");
        let item = request(
            node.addr,
            "GET",
            &format!("/peer/items/{}", enc(id)),
            &auth(),
        );
        assert_eq!(item.status, 200);
        request(
            node.addr,
            "HEAD",
            &format!("/peer/items/{}/file", enc(id)),
            &auth(),
        );
    }
    let (asked, scanned) = (arr.count("GET", path), scans(node));
    assert!(
        asked == scanned || asked == scanned + 1,
        "{path} asked {asked} times for {scanned} scans and 60 peer requests"
    );
}

/// Sets `behaviour` and waits until the *arr has been asked at least twice
/// more (a whole scan saw it).
fn behave_and_wait(arr: &FakeArr, behaviour: Behaviour, node: &Node) {
    let before = arr.count("GET", "/api/v3/rootfolder");
    arr.behave(behaviour);
    wait_for("two more scans", Duration::from_secs(15), || {
        arr.count("GET", "/api/v3/rootfolder") >= before + 2
    });
    let _ = node;
}

#[test]
fn a_radarr_library_is_served_by_tmdb_id_and_kept_while_radarr_is_down() {
    let media = tempfile::tempdir().unwrap();
    let root = media.path().join("movies");
    let matrix = root.join("The Matrix (1999)/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv");
    let data = pattern(300_000);
    write(&matrix, &data);
    let outside = media.path().join("outside/Secret.2000.mkv");
    write(&outside, b"secret");
    let leak = root.join("Leak (2001)/Leak.2001.mkv");
    std::fs::create_dir_all(leak.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &leak).unwrap();

    let radarr = FakeArr::start(Kind::Radarr);
    radarr.set_root_folders(&[&root]);
    radarr.add_movie(1, "The Matrix", 1999, 603, "tt0133093", Some(&matrix));
    radarr.add_movie(2, "Secret", 2000, 5, "tt0000005", Some(&outside));
    radarr.add_movie(3, "Leak", 2001, 6, "tt0000006", Some(&leak));
    radarr.add_movie(4, "Wanted", 2020, 7, "tt0000007", None);
    radarr.add_movie(
        5,
        "Gone",
        2021,
        8,
        "",
        Some(&root.join("Gone (2021)/Gone.mkv")),
    );

    let site = arr_site("radarr", &radarr);
    let mut node = site.start();
    node.wait_log("catalogue scanned", Duration::from_secs(10));
    assert_eq!(
        search(node.addr, "").len(),
        1,
        "outside the root folders, a link out of them, no file, a missing file: not served"
    );
    let found = search(node.addr, "tmdbId=603");
    assert_eq!(found.len(), 1);
    let m = &found[0];
    assert_eq!(m["title"], "The Matrix (1999) Bluray-1080p");
    assert_eq!(m["filename"], "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv");
    assert_eq!(m["category"], 2000);
    assert_eq!(m["size"], data.len());
    assert_eq!(m["tmdbId"], 603);
    assert_eq!(m["imdbId"], "tt0133093");
    assert_eq!(m["year"], 1999);
    assert_eq!(m["releaseGroup"], "GRP");
    assert_eq!(
        m["quality"],
        json!({"name": "Bluray-1080p", "source": "bluray", "resolution": 1080})
    );
    let id = m["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("radarrlib:movie:") && id.len() <= 200,
        "{id}"
    );
    assert!(!id.contains('/') && !id.contains("Matrix"), "{id}");
    assert_eq!(search(node.addr, "imdbId=tt0133093")[0]["id"], id.as_str());
    assert!(search(node.addr, "tmdbId=5").is_empty());
    assert_served(node.addr, &id, &data);
    assert_asked_per_scan_only(&node, &radarr, "/api/v3/movie", &id);

    // A rescan sees what Radarr imported since.
    let heat = root.join("Heat (1995)/Heat.1995.mkv");
    write(&heat, b"heat heat heat");
    radarr.add_movie(9, "Heat", 1995, 949, "tt0113277", Some(&heat));
    wait_for("the rescan to find Heat", Duration::from_secs(15), || {
        search(node.addr, "tmdbId=949").len() == 1
    });

    // Radarr down: the items stay, and are still served.
    behave_and_wait(&radarr, Behaviour::Fail(503), &node);
    node.wait_log(
        "library source unavailable, keeping its 2 items",
        Duration::from_secs(10),
    );
    assert_eq!(search(node.addr, "").len(), 2);
    assert_served(node.addr, &id, &data);

    // Radarr stalls: shutdown still keeps its budget.
    let before = radarr.requests().len();
    radarr.behave(Behaviour::Stall(Duration::from_secs(30)));
    wait_for("a stalled request", Duration::from_secs(10), || {
        radarr.requests().len() > before
    });
    let took = node.stop_gracefully("TERM");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Ids survive a restart.
    radarr.behave(Behaviour::Normal);
    let node = site.start();
    node.wait_log("catalogue scanned", Duration::from_secs(10));
    assert_eq!(search(node.addr, "tmdbId=603")[0]["id"], id.as_str());
}

#[test]
fn a_radarr_down_at_start_up_is_asked_again_and_then_served() {
    let media = tempfile::tempdir().unwrap();
    let root = media.path().join("movies");
    let file = root.join("Heat (1995)/Heat.1995.mkv");
    write(&file, b"heat");
    let radarr = FakeArr::start(Kind::Radarr);
    radarr.set_root_folders(&[&root]);
    radarr.add_movie(9, "Heat", 1995, 949, "tt0113277", Some(&file));
    radarr.behave(Behaviour::FailNext(2, 500));
    let site = arr_site("radarr", &radarr);
    let node = site.start();
    node.wait_log(
        "library source unavailable, keeping its 0 items",
        Duration::from_secs(10),
    );
    wait_for("Heat once Radarr answers", Duration::from_secs(15), || {
        search(node.addr, "tmdbId=949").len() == 1
    });
}

#[test]
fn a_sonarr_library_is_served_by_tvdb_id_season_and_episode() {
    let media = tempfile::tempdir().unwrap();
    let root = media.path().join("tv");
    let e1 = root.join("Breaking Bad/Season 01/Breaking.Bad.S01E01.mkv");
    let e23 = root.join("Breaking Bad/Season 01/Breaking.Bad.S01E02E03.mkv");
    let s2 = root.join("Breaking Bad/Season 02/Breaking.Bad.S02E01.mkv");
    let data = pattern(200_000);
    write(&e1, b"one");
    write(&e23, &data);
    write(&s2, b"two one");
    let sonarr = FakeArr::start(Kind::Sonarr);
    sonarr.set_root_folders(&[&root]);
    sonarr.add_series(
        7,
        "Breaking Bad",
        81189,
        &[
            (10, 1, &[1], &e1),
            (11, 1, &[2, 3], &e23),
            (12, 2, &[1], &s2),
        ],
    );
    sonarr.add_series(8, "Nothing Yet", 99, &[]);

    let site = arr_site("sonarr", &sonarr);
    let node = site.start();
    node.wait_log("catalogue scanned", Duration::from_secs(10));
    let q = |query: &str| search(node.addr, &format!("tvdbId=81189&{query}"));
    assert_eq!(q("").len(), 3);
    assert_eq!(q("season=1").len(), 2);
    assert_eq!(q("season=2").len(), 1);
    let third = q("season=1&episode=3");
    assert_eq!(
        third.len(),
        1,
        "a multi-episode file is found by its last episode"
    );
    assert_eq!(q("season=1&episode=2")[0]["id"], third[0]["id"]);
    let ep = &third[0];
    assert_eq!(ep["title"], "Breaking Bad - S01E02E03 - WEBDL-1080p");
    assert_eq!(ep["filename"], "Breaking.Bad.S01E02E03.mkv");
    assert_eq!(ep["category"], 5000);
    assert_eq!(
        (ep["season"].clone(), ep["episode"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(ep["seriesTitle"], "Breaking Bad");
    assert_eq!(ep["tvdbId"], 81189);
    assert_eq!(ep["quality"]["source"], "webdl");
    assert_eq!(
        q("season=1&episode=1")[0]["filename"],
        "Breaking.Bad.S01E01.mkv"
    );
    let id = ep["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sonarrlib:episode:"), "{id}");
    assert_served(node.addr, &id, &data);
    assert_asked_per_scan_only(&node, &sonarr, "/api/v3/episodefile", &id);
    assert!(
        sonarr
            .requests()
            .iter()
            .all(|r| !r.path.contains("seriesId=8")),
        "a series without files is not asked for them"
    );

    behave_and_wait(&sonarr, Behaviour::Fail(500), &node);
    node.wait_log(
        "library source unavailable, keeping its 3 items",
        Duration::from_secs(10),
    );
    assert_eq!(q("").len(), 3);
    assert_served(node.addr, &id, &data);
}

#[test]
fn a_completed_download_makes_each_arr_scan_its_folder() {
    let data = pattern(100_000);
    let peer = FakePeer::one("m1", &data);
    let radarr = FakeArr::start(Kind::Radarr);
    let sonarr = FakeArr::start(Kind::Sonarr);
    // Sonarr fails once: the scan is asked for again (after 2 s).
    sonarr.behave(Behaviour::FailNext(1, 503));
    let site = downloader(
        peer.addr,
        &format!(
            "[[arr]]\nname = \"radarr\"\nkind = \"radarr\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n\
             [[arr]]\nname = \"sonarr\"\nkind = \"sonarr\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n",
            radarr.url(),
            sonarr.url()
        ),
    );
    let node = site.start();
    let stub = jack::stub::build("alice", "m1", "m1", data.len() as u64);
    drop_stub(&site, "m1.torrent", &stub);
    let dest = site.path().join("data/completed/m1.mkv");
    wait_for("the scan commands", Duration::from_secs(20), || {
        radarr.count("POST", "/api/v3/command") == 1 && sonarr.count("POST", "/api/v3/command") == 2
    });
    assert!(std::fs::read(&dest).unwrap() == data);
    let folder = site.path().join("data/completed");
    let sent = |arr: &FakeArr| {
        let r = arr.writes().pop().unwrap();
        assert_eq!(r.key.as_deref(), Some(ARR_KEY));
        r.body.unwrap()
    };
    assert_eq!(
        sent(&radarr),
        json!({"name": "DownloadedMoviesScan", "path": folder.to_str().unwrap()})
    );
    assert_eq!(
        sent(&sonarr),
        json!({"name": "DownloadedEpisodesScan", "path": folder.to_str().unwrap()})
    );
    node.wait_log("arr scan requested arr=sonarr", Duration::from_secs(5));
    assert!(
        node.log_text()
            .contains("arr scan failed, trying again arr=sonarr")
    );
}

fn arr(name: &str, kind: ArrKind, fake: &FakeArr) -> Arr {
    Arr {
        name: name.into(),
        kind,
        url: fake.url(),
        api_key: Secret::new(ARR_KEY, SecretOrigin::Inline),
    }
}

/// A registry with one download whose final file is `dest`.
fn one_download(dir: &Path, dest: &Path) -> (Arc<Registry>, i64) {
    let registry = Arc::new(Registry::open(&dir.join("jack.db")).unwrap());
    let id = registry
        .insert(&NewDownload {
            stub_name: "x.torrent".into(),
            info_hash: "a".repeat(40),
            peer: "alice".into(),
            item_id: "x".into(),
            title: "x".into(),
            file_name: "x.mkv".into(),
            part_path: dir.join("x.part"),
            dest_path: dest.to_path_buf(),
            etag: None,
            expected_bytes: 1,
            sha256: None,
            search: None,
        })
        .unwrap();
    (registry, id)
}

#[test]
fn scan_requests_back_off_give_up_and_stop_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, id) = one_download(dir.path(), Path::new("/data/completed/x.mkv"));
    let down = FakeArr::start(Kind::Radarr);
    down.behave(Behaviour::Fail(503));
    let refusing = FakeArr::start(Kind::Sonarr);
    refusing.behave(Behaviour::Fail(400));
    let arrs = [
        arr("down", ArrKind::Radarr, &down),
        arr("refusing", ArrKind::Sonarr, &refusing),
    ];
    let backoff = Backoff {
        attempts: 3,
        base: Duration::from_millis(50),
        max: Duration::from_millis(100),
    };
    let (tx, rx) = unbounded();
    let notifier = Notifier::start(&arrs, registry.clone(), rx, backoff).unwrap();
    let started = Instant::now();
    tx.send(id).unwrap();
    wait_for("three tries", Duration::from_secs(10), || {
        down.count("POST", "/api/v3/command") == 3
    });
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "50 + 100 ms between"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(down.count("POST", "/api/v3/command"), 3, "then it gives up");
    assert_eq!(
        refusing.count("POST", "/api/v3/command"),
        1,
        "a 400 is not retried"
    );
    notifier.stop(Duration::from_secs(1));

    // Waiting out a long delay, a stop ends the thread at once.
    let slow = Backoff {
        attempts: 5,
        base: Duration::from_secs(60),
        max: Duration::from_secs(60),
    };
    let (tx, rx) = unbounded();
    let notifier = Notifier::start(&arrs[..1], registry, rx, slow).unwrap();
    let before = down.count("POST", "/api/v3/command");
    tx.send(id).unwrap();
    wait_for("the first try", Duration::from_secs(10), || {
        down.count("POST", "/api/v3/command") == before + 1
    });
    let t = Instant::now();
    notifier.stop(Duration::from_secs(3));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

fn register(site: &Site) -> (Option<i32>, String) {
    let out = site.run_cli(&["arr", "register"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn arr_register_adds_indexer_and_download_client_once() {
    let radarr = FakeArr::start(Kind::Radarr);
    let sonarr = FakeArr::start(Kind::Sonarr);
    let site = Site::new(&format!(
        "public_url = \"http://192.168.1.20:5225\"\n\
         [qbittorrent]\nusername = \"admin\"\npassword = \"qbit-pw\"\n\
         [[arr]]\nname = \"radarr\"\nkind = \"radarr\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n\
         [[arr]]\nname = \"sonarr\"\nkind = \"sonarr\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n",
        radarr.url(),
        sonarr.url()
    ));
    let (code, out) = register(&site);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches(": added").count(), 4, "{out}");
    assert!(
        !out.contains("qbit-pw") && !out.contains("test-key"),
        "{out}"
    );
    for (fake, categories, category_field) in [
        (&radarr, json!([2000]), "movieCategory"),
        (&sonarr, json!([5000]), "tvCategory"),
    ] {
        let dc = &fake.stored("downloadclient")[0];
        assert_eq!(dc["name"], "jack");
        assert_eq!(dc["implementation"], "QBittorrent");
        assert_eq!(dc["enable"], true);
        assert_eq!(field(dc, "host"), "192.168.1.20");
        assert_eq!(field(dc, "port"), 5225);
        assert_eq!(field(dc, "useSsl"), false);
        if category_field == "movieCategory" {
            // This Radarr logs in with the username and password...
            assert_eq!(field(dc, "username"), "admin");
            assert_eq!(field(dc, "password"), "qbit-pw");
        } else {
            // ...this Sonarr with the node's owner key: one secret.
            assert_eq!(field(dc, "apiKey"), KEY);
            assert_eq!(field(dc, "username"), "");
            assert_eq!(field(dc, "password"), "");
        }
        // Removed once imported (jack reports share limits reached).
        assert_eq!(dc["removeCompletedDownloads"], true);
        assert_eq!(field(dc, category_field), "jack");
        assert_eq!(
            field(dc, "initialState"),
            0,
            "the template's default is kept"
        );
        let ix = &fake.stored("indexer")[0];
        assert_eq!(ix["name"], "jack");
        assert_eq!(ix["implementation"], "Torznab");
        assert_eq!(ix["configContract"], "TorznabSettings");
        assert_eq!(ix["protocol"], "torrent");
        assert_eq!(ix["downloadClientId"], dc["id"]);
        assert_eq!(ix["enableAutomaticSearch"], true);
        assert!(ix.get("presets").is_none());
        assert_eq!(field(ix, "baseUrl"), "http://192.168.1.20:5225/torznab");
        assert_eq!(field(ix, "apiPath"), "/api");
        assert_eq!(field(ix, "apiKey"), KEY);
        assert_eq!(field(ix, "categories"), categories);
        assert_eq!(field(ix, "minimumSeeders"), 1);
        let posts: Vec<String> = fake.writes().iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            posts,
            [
                "/api/v3/downloadclient?forceSave=true",
                "/api/v3/indexer?forceSave=true"
            ]
        );
    }

    // Again: nothing changes, and it says so.
    let (code, out) = register(&site);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches(": unchanged").count(), 4, "{out}");
    assert_eq!(radarr.writes().len(), 2, "no POST or PUT the second time");
    assert_eq!(sonarr.writes().len(), 2, "no POST or PUT the second time");

    // Someone changed jack's indexer in Radarr: the third run puts it back.
    radarr.edit_field("indexer", "baseUrl", json!("http://old:1/torznab"));
    let (code, out) = register(&site);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("indexer \"jack\" (Torznab at http://192.168.1.20:5225/torznab/api): updated"),
        "{out}"
    );
    let last = radarr.writes().pop().unwrap();
    assert_eq!(last.method, "PUT");
    let ix = &radarr.stored("indexer")[0];
    assert_eq!(field(ix, "baseUrl"), "http://192.168.1.20:5225/torznab");
    assert_eq!(field(ix, "apiKey"), KEY, "the masked key was sent in clear");
    assert_eq!(radarr.stored("indexer").len(), 1);

    // A download client an older jack registered (username and password,
    // "Remove Completed" off) is brought up to date in place.
    let id = sonarr.stored("downloadclient")[0]["id"].clone();
    sonarr.edit_field("downloadclient", "apiKey", json!(""));
    sonarr.edit_field("downloadclient", "username", json!("admin"));
    sonarr.edit_field("downloadclient", "password", json!("qbit-pw"));
    sonarr.edit_top("downloadclient", "removeCompletedDownloads", json!(false));
    let (code, out) = register(&site);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "download client \"jack\" (qBittorrent API at http://192.168.1.20:5225): updated"
        ),
        "{out}"
    );
    let put = sonarr.writes().pop().unwrap();
    assert_eq!(
        (put.method.as_str(), put.path.clone()),
        ("PUT", format!("/api/v3/downloadclient/{id}?forceSave=true"))
    );
    let dc = &sonarr.stored("downloadclient")[0];
    assert_eq!(sonarr.stored("downloadclient").len(), 1);
    assert_eq!(dc["id"], id);
    assert_eq!(
        (
            field(dc, "apiKey"),
            field(dc, "username"),
            field(dc, "password")
        ),
        (json!(KEY), json!(""), json!(""))
    );
    assert_eq!(dc["removeCompletedDownloads"], true);
    // And with `remove_after_import = false`, turned off there.
    let text = std::fs::read_to_string(site.config()).unwrap();
    let text = text.replace(
        "password = \"qbit-pw\"\n",
        "password = \"qbit-pw\"\nremove_after_import = false\n",
    );
    std::fs::write(site.config(), text).unwrap();
    let (code, out) = register(&site);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        radarr.stored("downloadclient")[0]["removeCompletedDownloads"],
        false
    );
    assert_eq!(
        sonarr.stored("downloadclient")[0]["removeCompletedDownloads"],
        false
    );
}

#[test]
fn arr_register_reports_an_arr_it_cannot_reach_and_still_does_the_others() {
    let radarr = FakeArr::start(Kind::Radarr);
    let gone = FakeArr::start(Kind::Sonarr);
    gone.behave(Behaviour::Fail(401));
    let site = Site::new(&format!(
        "[[arr]]\nname = \"sonarr\"\nkind = \"sonarr\"\nurl = \"{}\"\napi_key = \"wrong\"\n\
         [[arr]]\nname = \"radarr\"\nkind = \"radarr\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n",
        gone.url(),
        radarr.url()
    ));
    let (code, out) = register(&site);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("answered 401") && out.contains("check its api_key"),
        "{out}"
    );
    assert!(out.contains("download client: skipped"), "{out}");
    assert!(
        out.contains("indexer \"jack\" (Torznab at http://127.0.0.1:0/torznab/api): added"),
        "{out}"
    );
    assert!(
        out.contains("could not register with 1 of 2 *arr: sonarr"),
        "{out}"
    );
    assert_eq!(radarr.stored("indexer").len(), 1);
    assert!(radarr.stored("downloadclient").is_empty());

    let none = Site::new("");
    let (code, out) = register(&none);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no [[arr]]"), "{out}");
}

/// `jack scan`: each library announced on stderr as its scan starts (live:
/// while Radarr stalls, its line is already out and the scan still runs),
/// then what friends will see per library on stdout; a library that could
/// not be read makes it exit 1 and says which.
#[test]
fn jack_scan_shows_each_library_as_it_goes_and_what_friends_will_see() {
    use std::io::{BufRead, BufReader};
    let media = tempfile::tempdir().unwrap();
    let films = media.path().join("films");
    for rel in [
        "A (2001)/A.2001.mkv",
        "B (2002)/B.2002.mkv",
        "B (2002)/B.2002.extra.mp4",
    ] {
        write(&films.join(rel), b"film");
    }
    write(&films.join("notes.txt"), b"not a video");
    let root = media.path().join("movies");
    let heat = root.join("Heat (1995)/Heat.1995.mkv");
    write(&heat, b"heat");
    let radarr = FakeArr::start(Kind::Radarr);
    radarr.set_root_folders(&[&root]);
    radarr.add_movie(9, "Heat", 1995, 949, "tt0113277", Some(&heat));
    let site = Site::new(&format!(
        "[[library]]\nname = \"films\"\npath = \"{}\"\n\
         [[library]]\nname = \"radarrlib\"\nkind = \"radarr\"\nurl = \"{}\"\napi_key = \"{ARR_KEY}\"\n",
        films.display(),
        radarr.url()
    ));
    let config = site.config();
    let scan = || {
        let mut cmd = site.command(&["scan", "--config", config.to_str().unwrap()]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };

    // Radarr stalls: its line is out while the scan waits on it.
    radarr.behave(Behaviour::Stall(Duration::from_secs(3)));
    let mut child = scan();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("scanning radarrlib"))
    {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "{seen:?}");
        seen.push(line);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still scanning: {seen:?}"
    );
    assert_eq!(
        seen[0].trim(),
        format!("scanning films (folder {})", films.display())
    );
    assert_eq!(
        seen.last().unwrap().trim(),
        format!("scanning radarrlib (radarr at {})", radarr.url())
    );
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(out.status.code(), Some(1), "{rest}");
    assert!(
        rest.contains("1 of 2 libraries could not be read in full: radarrlib"),
        "{rest}"
    );
    let table = String::from_utf8(out.stdout).unwrap();
    // A library's row: name, items, folders, skipped, errors, time.
    let row = |table: &str, name: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row(&table, "films")[1..4], ["3", "3", "0"], "{table}");
    assert_eq!(row(&table, "radarrlib")[1..5], ["0", "0", "0", "down"]);

    // Radarr answers: every library read, exit 0.
    radarr.behave(Behaviour::Normal);
    let out = scan().wait_with_output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.starts_with("library "), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("4 items in ")),
        "{table}"
    );
    assert_eq!(row(&table, "radarrlib")[1..5], ["1", "0", "0", "0"]);
}
