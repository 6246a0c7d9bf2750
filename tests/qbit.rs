//! The qBittorrent-compatible API (`PROTOCOL.md` §5): driven end to end by
//! a real third-party client library (the `qbittorrent-api` Python
//! package, which `make test` installs into target/py) against the real
//! binary, and by raw requests against the API in process (a test clock
//! for session expiry, `Downloads` against a fake peer) for the 403 probe,
//! login, both body encodings on every POST, the multipart limits, adds
//! and deletes.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jack::arr::qbit::QbitApi;
use jack::config::Config;
use jack::db::{NewDownload, Registry, Status};
use jack::download::downloads::{Downloads, Pool};
use jack::download::retry::SeededRng;
use jack::http::server::{self, HttpServer};
use support::fake_peer::{self, FakePeer};
use support::{OffsetClock, Resp, pattern, wait_for};

const USER: &str = "admin";
const PASS: &str = "s3cret pass";

/// The API in process: a registry, `Downloads` against `peer`, the
/// handler on 127.0.0.1, and a clock the test moves.
struct Bed {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    clock: Arc<OffsetClock>,
    registry: Arc<Registry>,
    downloads: Arc<Downloads>,
    parts: Option<(HttpServer, QbitApi, Pool)>,
}

impl Bed {
    fn start(peer: SocketAddr) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\napi_key = \"k\"\n[qbittorrent]\nusername = \"{USER}\"\npassword = \"{PASS}\"\n\
             [downloads]\nretry_base_delay_ms = 1\nretry_max_delay_ms = 20\nidle_timeout_ms = 2000\n\
             [[peers]]\nname = \"alice\"\nurl = \"http://{peer}\"\napi_key = \"{}\"\n",
            support::KEY
        );
        let config = Config::parse(&text, &dir.path().join("jack.toml"), &|_| None).unwrap();
        config.create_dirs().unwrap();
        let registry = Arc::new(Registry::open(&config.database.path).unwrap());
        let clock = Arc::new(OffsetClock::default());
        let rng = Box::new(SeededRng::new(7));
        let (downloads, pool) =
            Downloads::start(registry.clone(), &config, rng, clock.clone()).unwrap();
        let listener = server::bind(
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(jack::http::gate::Gate::new(
            config.server.auth_failures_per_minute,
            clock.clone(),
            config.server.trusted_proxies.clone(),
        ));
        let api = QbitApi::start(&config, addr, downloads.clone(), clock.clone(), gate)
            .unwrap()
            .unwrap();
        let caps = server::Caps {
            total: 64,
            per_ip: 64,
            header_timeout: Duration::from_secs(10),
        };
        let http = HttpServer::start(listener, 4, caps, Default::default(), api.handler()).unwrap();
        Bed {
            dir,
            addr,
            clock,
            registry,
            downloads,
            parts: Some((http, api, pool)),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Logs in (urlencoded); returns the `Cookie` header value.
    fn login(&self) -> String {
        let r = post_form(
            self.addr,
            "auth/login",
            "",
            &[("username", USER), ("password", PASS)],
        );
        assert_eq!((r.status, r.body.as_slice()), (200, &b"Ok."[..]), "{r:?}");
        let cookie = r.header("Set-Cookie").expect("a session cookie");
        cookie.split(';').next().unwrap().to_string()
    }

    fn get(&self, endpoint: &str, cookie: &str) -> Resp {
        let headers = [("Cookie", cookie)];
        support::request(self.addr, "GET", &format!("/api/v2/{endpoint}"), &headers)
    }

    fn info(&self, cookie: &str) -> Vec<serde_json::Value> {
        let r = self.get("torrents/info", cookie);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_slice(&r.body).unwrap()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some((http, api, pool)) = self.parts.take() {
            http.shutdown();
            api.stop(Duration::from_secs(1));
            pool.shutdown(Duration::from_secs(2));
        }
    }
}

/// Sends one request with `body` (`Content-Length` set unless `headers`
/// carry their own framing) and reads the whole answer.
fn raw(
    addr: SocketAddr,
    method: &str,
    endpoint: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head =
        format!("{method} /api/v2/{endpoint} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(s)
}

fn read_response(mut s: TcpStream) -> Resp {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8(out[..split].to_vec()).unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Resp {
        status,
        head,
        body: out[split + 4..].to_vec(),
    }
}

fn urlencode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", support::enc(k), support::enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

const BOUNDARY: &str = "----jackTestBoundary7MA4YWxk";

/// A `multipart/form-data` body of `fields` and `files` (name, file name, bytes).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .bytes(),
        );
    }
    for (k, name, data) in files {
        b.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n\
                 Content-Type: application/x-bittorrent\r\n\r\n"
            )
            .bytes(),
        );
        b.extend_from_slice(data);
        b.extend(b"\r\n");
    }
    b.extend(format!("--{BOUNDARY}--\r\n").bytes());
    b
}

fn post_form(addr: SocketAddr, endpoint: &str, cookie: &str, fields: &[(&str, &str)]) -> Resp {
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    raw(
        addr,
        "POST",
        endpoint,
        &[ct, ("Cookie", cookie)],
        urlencode(fields).as_bytes(),
    )
}

fn post_multipart(
    addr: SocketAddr,
    endpoint: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> Resp {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let headers = [("Content-Type", ct.as_str()), ("Cookie", cookie)];
    raw(addr, "POST", endpoint, &headers, &multipart(fields, files))
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn the_403_probe_login_and_logout() {
    let bed = Bed::start("127.0.0.1:9".parse().unwrap());
    // How *arr tells API v2 apart: 403 without a session.
    let probe = bed.get("app/webapiVersion", "");
    assert_eq!((probe.status, text(&probe).as_str()), (403, "Forbidden"));
    for endpoint in ["torrents/info", "app/version", "no/such/endpoint"] {
        assert_eq!(
            bed.get(endpoint, "SID=0123456789abcdef0123456789abcdef")
                .status,
            403
        );
    }
    assert_eq!(
        post_form(bed.addr, "torrents/delete", "", &[("hashes", "all")]).status,
        403
    );

    // Wrong credentials: 200 Fails., and no cookie.
    for (user, pass) in [(USER, "nope"), ("root", PASS), ("", ""), (USER, "")] {
        let r = post_form(
            bed.addr,
            "auth/login",
            "",
            &[("username", user), ("password", pass)],
        );
        assert_eq!(
            (r.status, text(&r).as_str()),
            (200, "Fails."),
            "{user}/{pass}"
        );
        assert_eq!(r.header("Set-Cookie"), None);
    }
    // Credentials only by POST.
    let query = format!("auth/login?username={USER}&password=x");
    assert_eq!(bed.get(&query, "").status, 405);

    let r = post_multipart(
        bed.addr,
        "auth/login",
        "",
        &[("username", USER), ("password", PASS)],
        &[],
    );
    assert_eq!(text(&r), "Ok.");
    let set = r.header("Set-Cookie").unwrap();
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(
        attrs[0].starts_with("SID=") && attrs[0].len() == 4 + 32,
        "{set}"
    );
    for want in ["HttpOnly", "SameSite=Strict", "path=/"] {
        assert!(attrs.contains(&want), "{set} lacks {want}");
    }
    let cookie = attrs[0].to_string();
    let both = format!("theme=dark; {cookie}");
    assert_eq!(text(&bed.get("app/webapiVersion", &both)), "2.9.2");
    assert_eq!(text(&bed.get("app/version", &cookie)), "v4.6.4");
    assert_eq!(bed.get("no/such/endpoint", &cookie).status, 404);
    assert_eq!(
        bed.get("torrents/delete?hashes=all", &cookie).status,
        405,
        "changes need POST"
    );
    assert_eq!(
        raw(bed.addr, "PUT", "app/version", &[("Cookie", &cookie)], b"").status,
        405
    );
    let prefs: serde_json::Value =
        serde_json::from_slice(&bed.get("app/preferences", &cookie).body).unwrap();
    assert_eq!(
        prefs["save_path"],
        bed.path("data/completed").display().to_string()
    );
    for (key, want) in [
        ("dht", serde_json::json!(true)),
        ("max_ratio_enabled", true.into()),
        ("max_ratio", 0.into()),
        ("max_seeding_time_enabled", false.into()),
        ("max_seeding_time", (-1).into()),
        ("max_ratio_act", 0.into()),
    ] {
        assert_eq!(prefs[key], want, "{key}");
    }
    assert!(prefs["queueing_enabled"].is_boolean());

    assert_eq!(post_form(bed.addr, "auth/logout", &cookie, &[]).status, 200);
    assert_eq!(bed.get("app/version", &cookie).status, 403, "logged out");
}

#[test]
fn a_session_ends_after_an_hour_unused() {
    let bed = Bed::start("127.0.0.1:9".parse().unwrap());
    let cookie = bed.login();
    let minutes = |m: u64| Duration::from_secs(60 * m);
    bed.clock.advance(minutes(59));
    assert_eq!(bed.get("app/version", &cookie).status, 200);
    bed.clock.advance(minutes(59));
    assert_eq!(
        bed.get("app/version", &cookie).status,
        200,
        "each use keeps it"
    );
    bed.clock.advance(minutes(61));
    assert_eq!(
        bed.get("app/version", &cookie).status,
        403,
        "an hour unused"
    );
    let again = bed.login();
    assert_ne!(again, cookie);
    assert_eq!(bed.get("app/version", &again).status, 200);
}

#[test]
fn multipart_edge_cases_and_body_limits() {
    let bed = Bed::start("127.0.0.1:9".parse().unwrap());
    let cookie = bed.login();
    let mp = format!("multipart/form-data; boundary={BOUNDARY}");
    let many = multipart(&vec![("category", "x"); 65], &[]);
    let long_header = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"category\"\r\nX-Pad: {}\r\n\r\nx\r\n--{BOUNDARY}--",
        "p".repeat(5000)
    );
    let unclosed =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\nx");
    let no_name =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "multipart/form-data",
            multipart(&[("category", "x")], &[]),
            400,
            "without a boundary",
        ),
        (&mp, many, 413, "more than 64 parts"),
        (
            &mp,
            long_header.into_bytes(),
            413,
            "headers exceed 4096 bytes",
        ),
        (&mp, unclosed.into_bytes(), 400, "closing boundary"),
        (&mp, no_name.into_bytes(), 400, "without a name"),
        (
            &mp,
            b"not multipart at all".to_vec(),
            400,
            "no multipart boundary",
        ),
        (
            "application/json",
            b"{\"category\":\"x\"}".to_vec(),
            415,
            "application/json",
        ),
    ];
    for (ct, body, status, msg) in cases {
        let r = raw(
            bed.addr,
            "POST",
            "torrents/createCategory",
            &[("Content-Type", ct), ("Cookie", &cookie)],
            &body,
        );
        assert_eq!(r.status, status, "{msg}: {r:?}");
        assert!(text(&r).contains(msg), "{msg}: {}", text(&r));
        assert_eq!(r.header("Connection").as_deref(), Some("close"), "{msg}");
    }

    // A Content-Length over the limit: refused at once, nothing read.
    let start = Instant::now();
    let big = (5 * 1024 * 1024).to_string();
    let r = raw(
        bed.addr,
        "POST",
        "torrents/add",
        &[
            ("Content-Type", &mp),
            ("Cookie", &cookie),
            ("Content-Length", &big),
        ],
        b"",
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert!(
        text(&r).contains("over the limit of 4194304"),
        "{}",
        text(&r)
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "answered without waiting for the body"
    );

    // A body that ends before its Content-Length: 400, never a shorter form.
    let mut s = TcpStream::connect(bed.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v2/torrents/add HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: {mp}\r\nContent-Length: 3000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&multipart(&[("urls", &"u".repeat(2000))], &[])[..1000])
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let r = read_response(s);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        text(&r).contains("ends after 1000 of its 3000 bytes"),
        "{}",
        text(&r)
    );

    // A chunked body (no Content-Length) is read within the limit too.
    let body = multipart(&[("category", "chunked")], &[]);
    let chunked = format!(
        "{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        String::from_utf8(body).unwrap()
    );
    let r = raw(
        bed.addr,
        "POST",
        "torrents/createCategory",
        &[
            ("Content-Type", &mp),
            ("Cookie", &cookie),
            ("Transfer-Encoding", "chunked"),
        ],
        chunked.as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");

    // Nothing above broke the server.
    assert_eq!(bed.get("app/version", &cookie).status, 200);
    let cats: serde_json::Value =
        serde_json::from_slice(&bed.get("torrents/categories", &cookie).body).unwrap();
    assert_eq!(
        cats,
        serde_json::json!({"chunked": {"name": "chunked", "savePath": ""}})
    );
}

#[test]
fn every_post_takes_both_encodings() {
    let data = pattern(64 * 1024);
    let peer = FakePeer::one("item-1", &data);
    let bed = Bed::start(peer.addr);
    let cookie = bed.login();
    let link = format!(
        "http://{}/torznab/download/alice%3Aitem-1.torrent?apikey=k",
        bed.addr
    );
    // (endpoint, fields, status, body) for each encoding; `{enc}` names the encoding.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "torrents/createCategory",
            vec![("category", "cat-{enc}".into())],
            200,
            "",
        ),
        (
            "torrents/createCategory",
            vec![("category", "cat-{enc}".into())],
            409,
            "Unable to create category",
        ),
        (
            "torrents/createCategory",
            vec![("category", "/bad".into())],
            409,
            "Incorrect category name",
        ),
        (
            "torrents/createCategory",
            vec![("category", "".into())],
            400,
            "Category cannot be empty",
        ),
        (
            "torrents/setCategory",
            vec![("hashes", "all".into()), ("category", "cat-{enc}".into())],
            200,
            "",
        ),
        (
            "torrents/setCategory",
            vec![("hashes", "all".into()), ("category", "nope".into())],
            409,
            "Incorrect category name",
        ),
        (
            "torrents/info",
            vec![("category", "cat-{enc}".into())],
            200,
            "[",
        ),
        (
            "torrents/properties",
            vec![("hash", "0".repeat(40))],
            404,
            "Not Found",
        ),
        (
            "torrents/files",
            vec![("hash", "0".repeat(40))],
            404,
            "Not Found",
        ),
        ("torrents/categories", vec![], 200, "\"cat-{enc}\""),
        (
            "torrents/setShareLimits",
            vec![("hashes", "all".into()), ("ratioLimit", "-1".into())],
            200,
            "Ok.",
        ),
        (
            "torrents/topPrio",
            vec![("hashes", "all".into())],
            200,
            "Ok.",
        ),
        (
            "torrents/setForceStart",
            vec![("hashes", "all".into()), ("value", "true".into())],
            200,
            "Ok.",
        ),
        (
            "torrents/addTags",
            vec![("hashes", "all".into()), ("tags", "a-{enc},b".into())],
            200,
            "",
        ),
        ("torrents/createTags", vec![("tags", "c".into())], 200, ""),
        ("torrents/tags", vec![], 200, "\"a-{enc}\""),
        (
            "torrents/removeTags",
            vec![("hashes", "all".into()), ("tags", "b".into())],
            200,
            "",
        ),
        ("torrents/deleteTags", vec![("tags", "c".into())], 200, ""),
        // As qBittorrent: an empty 200.
        ("torrents/pause", vec![("hashes", "all".into())], 200, ""),
        ("torrents/stop", vec![("hashes", "all".into())], 200, ""),
        ("torrents/resume", vec![("hashes", "all".into())], 200, ""),
        ("torrents/start", vec![("hashes", "all".into())], 200, ""),
        (
            "torrents/add",
            vec![("urls", "magnet:?xt=urn:btih:00".into())],
            415,
            "not a /torznab/download/ link",
        ),
        (
            "torrents/add",
            vec![(
                "urls",
                "http://elsewhere:1/torznab/download/alice:item-1.torrent".into(),
            )],
            415,
            "not a /torznab/download/ link",
        ),
        (
            "torrents/add",
            vec![("urls", link.clone()), ("category", "cat-{enc}".into())],
            200,
            "Ok.",
        ),
        (
            "torrents/delete",
            vec![("hashes", "f".repeat(40)), ("deleteFiles", "true".into())],
            200,
            "",
        ),
        ("app/version", vec![], 200, "v4.6.4"),
        (
            "auth/login",
            vec![("username", USER.into()), ("password", PASS.into())],
            200,
            "Ok.",
        ),
    ];
    for enc in ["urlencoded", "multipart"] {
        for (endpoint, fields, status, want) in &cases {
            let fields: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.replace("{enc}", enc)))
                .collect();
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = match enc {
                "urlencoded" => post_form(bed.addr, endpoint, &cookie, &fields),
                _ => post_multipart(bed.addr, endpoint, &cookie, &fields, &[]),
            };
            let want = want.replace("{enc}", enc);
            assert_eq!(
                r.status,
                *status,
                "{enc} {endpoint} {fields:?}: {}",
                text(&r)
            );
            assert!(
                text(&r).contains(&want),
                "{enc} {endpoint}: {} lacks {want}",
                text(&r)
            );
        }
    }
    // Both links named one release: one download, in the last category set.
    wait_for("the download", Duration::from_secs(20), || {
        bed.info(&cookie)
            .first()
            .is_some_and(|t| t["state"] == "pausedUP")
    });
    let info = bed.info(&cookie);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["category"], "cat-multipart");
    assert_eq!(bed.registry.list().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(bed.path("data/completed/item-1.mkv")).unwrap(),
        data
    );
    // auth/logout takes both encodings too.
    for enc in ["urlencoded", "multipart"] {
        let c = bed.login();
        let r = match enc {
            "urlencoded" => post_form(bed.addr, "auth/logout", &c, &[]),
            _ => post_multipart(bed.addr, "auth/logout", &c, &[("x", "y")], &[]),
        };
        assert_eq!(r.status, 200, "{enc}");
        assert_eq!(bed.get("app/version", &c).status, 403, "{enc}");
    }
}

#[test]
fn an_add_shows_at_once_runs_in_the_background_and_a_delete_cancels_it() {
    let data = pattern(4 * 1024 * 1024);
    let file = fake_peer::File {
        id: "slow".into(),
        filename: "Slow.Movie.2024.mkv".into(),
        data: data.clone(),
    };
    // 256 KiB/s: 16 s for the file, far longer than this test runs.
    let peer = FakePeer::start(vec![file], vec![], Some(256 * 1024));
    let bed = Bed::start(peer.addr);
    let cookie = bed.login();
    let stub = jack::stub::build("alice", "slow", "Slow.Movie.2024", data.len() as u64);
    let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
    let add = |name: &str| {
        let r = post_multipart(
            bed.addr,
            "torrents/add",
            &cookie,
            &[("category", "radarr")],
            &[("torrents", name, &stub)],
        );
        assert_eq!((r.status, text(&r).as_str()), (200, "Ok."), "{r:?}");
    };
    add("Slow.Movie.torrent");
    // Seen at once (from the recorded add, or already as its download).
    let t = &bed.info(&cookie)[0];
    assert_eq!(
        (t["hash"].as_str(), t["category"].as_str()),
        (Some(hash.as_str()), Some("radarr"))
    );
    assert_eq!(t["name"], "Slow.Movie.2024");
    let props = bed.get(
        &format!("torrents/properties?hash={}", hash.to_uppercase()),
        &cookie,
    );
    assert_eq!(props.status, 200, "{props:?}");
    // The same stub again (another file name): still one download.
    add("Slow.Movie (again).torrent");
    wait_for("bytes in flight", Duration::from_secs(20), || {
        let t = &bed.info(&cookie)[0];
        t["state"] == "downloading" && t["completed"].as_u64().unwrap() > 0
    });
    let t = &bed.info(&cookie)[0];
    let progress = t["progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 1.0, "{t}");
    assert_eq!(
        t["amount_left"].as_u64().unwrap() + t["completed"].as_u64().unwrap(),
        data.len() as u64
    );
    assert_eq!(
        bed.registry.list().unwrap().len(),
        1,
        "one release, one download"
    );
    assert!(
        bed.registry.grabs().unwrap().is_empty(),
        "both adds settled"
    );
    let id = bed.registry.list().unwrap()[0].id;
    let part = bed.path(&format!("data/incomplete/{hash}.{id}.part"));
    assert!(part.exists());

    // Paused by its owner: paused to the *arr, not an error.
    assert!(bed.downloads.pause(id).unwrap());
    wait_for("the pause", Duration::from_secs(10), || {
        bed.info(&cookie)[0]["state"] == "pausedDL"
    });
    let row = bed.registry.get(id).unwrap().unwrap();
    assert_eq!((row.status, row.error), (Status::Paused, None));
    // A new stub for the release takes the row again and resumes it.
    add("Slow.Movie (third).torrent");
    wait_for("the resume", Duration::from_secs(20), || {
        bed.info(&cookie)[0]["state"] == "downloading"
    });
    let row = bed.registry.get(id).unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (Status::Downloading, 0));
    assert_eq!(bed.registry.list().unwrap().len(), 1);

    let r = post_form(
        bed.addr,
        "torrents/delete",
        &cookie,
        &[("hashes", &hash), ("deleteFiles", "true")],
    );
    assert_eq!(r.status, 200);
    assert!(bed.info(&cookie).is_empty(), "gone from the list at once");
    wait_for("the row to go", Duration::from_secs(5), || {
        bed.registry.get(id).unwrap().is_none()
    });
    assert!(!part.exists(), "the .part is jack's: removed");
    assert!(bed.downloads.live_bytes(id).is_none());
    let asked = peer
        .record
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    let later = peer
        .record
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        later - asked <= 256 * 1024,
        "the transfer stopped ({asked} then {later})"
    );
    assert_eq!(
        std::fs::read_dir(bed.path("data/completed"))
            .unwrap()
            .count(),
        0
    );
}

/// Sonarr/Radarr with Initial State "Stop" add with `paused=True` (API
/// below 2.11; `stopped=True` from 2.11), as `AddTorrentDownloadFormParameters`
/// sends it: the download is listed `pausedDL`, asks the peer for no byte
/// and holds no worker; `torrents/resume` starts it, `torrents/pause` (or
/// `stop`) stops it keeping its bytes, and `start` goes on where it stopped.
#[test]
fn pause_and_resume_are_real_and_an_add_can_start_paused() {
    let data = pattern(4 * 1024 * 1024);
    let file = fake_peer::File {
        id: "slow".into(),
        filename: "Slow.Movie.2024.mkv".into(),
        data: data.clone(),
    };
    let peer = FakePeer::start(vec![file], vec![], Some(512 * 1024));
    let bed = Bed::start(peer.addr);
    let cookie = bed.login();
    let stub = jack::stub::build("alice", "slow", "Slow.Movie.2024", data.len() as u64);
    let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
    // C#'s `true.ToString()` is "True".
    let r = post_multipart(
        bed.addr,
        "torrents/add",
        &cookie,
        &[("category", "tv-sonarr"), ("paused", "True")],
        &[("torrents", "Slow.Movie.2024.torrent", &stub)],
    );
    assert_eq!((r.status, text(&r).as_str()), (200, "Ok."), "{r:?}");
    // Paused from the first answer on, while the add is made and after.
    let t = &bed.info(&cookie)[0];
    assert_eq!(
        (t["hash"].as_str(), t["state"].as_str()),
        (Some(hash.as_str()), Some("pausedDL"))
    );
    wait_for("the download", Duration::from_secs(10), || {
        bed.registry.grabs().unwrap().is_empty() && !bed.registry.list().unwrap().is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let row = &bed.registry.list().unwrap()[0];
    assert_eq!((row.status, row.error.as_deref()), (Status::Paused, None));
    assert_eq!(bed.info(&cookie)[0]["state"], "pausedDL");
    assert!(
        peer.file_requests().is_empty(),
        "a paused add asks for no byte"
    );
    assert!(
        bed.downloads.live_bytes(row.id).is_none(),
        "and holds no worker"
    );
    let id = row.id;

    // `torrents/resume`: it runs.
    let r = post_form(bed.addr, "torrents/resume", &cookie, &[("hashes", &hash)]);
    assert_eq!((r.status, text(&r).as_str()), (200, ""));
    wait_for("bytes in flight", Duration::from_secs(20), || {
        let t = &bed.info(&cookie)[0];
        t["state"] == "downloading" && t["completed"].as_u64().unwrap() > 256 * 1024
    });
    // `torrents/stop` (qBittorrent 5's name): paused, its bytes kept.
    let r = post_form(
        bed.addr,
        "torrents/stop",
        &cookie,
        &[("hashes", &hash.to_uppercase())],
    );
    assert_eq!(r.status, 200);
    wait_for("the pause", Duration::from_secs(10), || {
        bed.info(&cookie)[0]["state"] == "pausedDL"
            && bed.registry.get(id).unwrap().unwrap().status == Status::Paused
    });
    assert!(bed.downloads.live_bytes(id).is_none(), "the worker let go");
    let part = bed.registry.get(id).unwrap().unwrap().part_path;
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0);
    // The peer may still push what the closed connection's buffers took;
    // then nothing moves while paused.
    let sent = || {
        peer.record
            .body_bytes
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    std::thread::sleep(Duration::from_millis(600));
    let before = sent();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sent(), before, "nothing moves while paused");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), kept);
    let t = &bed.info(&cookie)[0];
    assert!(
        t["completed"].as_u64().unwrap() > 0,
        "progress is shown: {t}"
    );
    // `torrents/start` with `all`: on where it stopped, byte-exact.
    let r = post_form(bed.addr, "torrents/start", &cookie, &[("hashes", "all")]);
    assert_eq!(r.status, 200);
    let dest = bed.path("data/completed/Slow.Movie.2024.mkv");
    wait_for("the completed file", Duration::from_secs(30), || {
        dest.exists()
    });
    assert!(std::fs::read(&dest).unwrap() == data);
    let ranges: Vec<Option<String>> = peer
        .file_requests()
        .into_iter()
        .map(|(_, r, _)| r)
        .collect();
    assert!(
        ranges
            .iter()
            .any(|r| r.as_deref().is_some_and(|r| r != "bytes=0-")),
        "resumed with a range: {ranges:?}"
    );
    let total = peer
        .record
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        total < data.len() as u64 + 1024 * 1024,
        "not fetched again: {total}"
    );
    // The final name appears before the row is marked completed (the
    // folders are synced in between).
    wait_for("pausedUP", Duration::from_secs(10), || {
        bed.info(&cookie)[0]["state"] == "pausedUP"
    });
}

/// An add made with `stopped=True` (API 2.11+) is paused too; one made
/// with `paused=False` runs.
#[test]
fn stopped_adds_are_paused_and_unpaused_ones_run() {
    let data = pattern(64 * 1024);
    let peer = FakePeer::start(
        vec![
            fake_peer::File::mkv("a", &data),
            fake_peer::File::mkv("b", &data),
        ],
        vec![],
        None,
    );
    let bed = Bed::start(peer.addr);
    let cookie = bed.login();
    let add = |item: &str, fields: &[(&str, &str)]| {
        let stub = jack::stub::build("alice", item, item, data.len() as u64);
        let r = post_form(bed.addr, "torrents/add", &cookie, fields);
        assert_eq!(r.status, 400, "no torrents: {r:?}");
        let r = post_multipart(
            bed.addr,
            "torrents/add",
            &cookie,
            fields,
            &[("torrents", "x.torrent", &stub)],
        );
        assert_eq!(r.status, 200, "{r:?}");
        jack::stub::parse(&stub, u64::MAX).unwrap().info_hash
    };
    let a = add("a", &[("stopped", "True")]);
    let b = add("b", &[("paused", "False")]);
    let dest = bed.path("data/completed/b.mkv");
    wait_for("b to complete", Duration::from_secs(20), || dest.exists());
    let state = |hash: &str| {
        bed.info(&cookie)
            .into_iter()
            .find(|t| t["hash"] == hash)
            .map(|t| t["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state(&a).as_deref(), Some("pausedDL"));
    assert_eq!(state(&b).as_deref(), Some("pausedUP"));
    assert!(peer.file_requests().iter().all(|(id, _, _)| id == "b"));
}

#[test]
fn delete_files_removes_only_what_jack_put_there() {
    let data = pattern(100 * 1024);
    let peer = FakePeer::one("taken", &data);
    let bed = Bed::start(peer.addr);
    let cookie = bed.login();
    // The final name is taken by a file jack did not put there.
    let theirs = bed.path("data/completed/taken.mkv");
    std::fs::write(&theirs, b"the operator's own file").unwrap();
    let stub = jack::stub::build("alice", "taken", "taken", data.len() as u64);
    let r = post_multipart(
        bed.addr,
        "torrents/add",
        &cookie,
        &[],
        &[("torrents", "t.torrent", &stub)],
    );
    assert_eq!(r.status, 200);
    wait_for("the failed download", Duration::from_secs(10), || {
        bed.info(&cookie)
            .first()
            .is_some_and(|t| t["state"] == "error")
    });
    let r = post_form(
        bed.addr,
        "torrents/delete",
        &cookie,
        &[("hashes", "all"), ("deleteFiles", "true")],
    );
    assert_eq!(r.status, 200);
    assert!(bed.registry.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read(&theirs).unwrap(),
        b"the operator's own file",
        "untouched"
    );
}

#[test]
fn a_removal_asked_before_a_stop_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[server]\napi_key = \"k\"\n[[peers]]\nname = \"alice\"\nurl = \"http://127.0.0.1:9\"\napi_key = \"k\"\n";
    let config = Config::parse(text, &dir.path().join("jack.toml"), &|_| None).unwrap();
    config.create_dirs().unwrap();
    let registry = Arc::new(Registry::open(&config.database.path).unwrap());
    let part = config.downloads.incomplete_dir.join("ab.part");
    let new = NewDownload {
        stub_name: "api/x.torrent".into(),
        info_hash: "ab".into(),
        peer: "alice".into(),
        item_id: "m:1".into(),
        title: "X".into(),
        file_name: "X.mkv".into(),
        part_path: part.clone(),
        dest_path: config.downloads.completed_dir.join("X.mkv"),
        etag: None,
        expected_bytes: 10,
        sha256: None,
        search: None,
    };
    let id = registry.insert(&new).unwrap();
    std::fs::write(&part, b"12345").unwrap();
    registry.set_progress(id, 5).unwrap();
    registry.request_removal(id, true).unwrap();
    assert!(
        registry.by_info_hash("ab").unwrap().is_empty(),
        "no longer the release's"
    );
    let clock = Arc::new(OffsetClock::default());
    let (_downloads, pool) = Downloads::start(
        registry.clone(),
        &config,
        Box::new(SeededRng::new(1)),
        clock,
    )
    .unwrap();
    assert!(registry.get(id).unwrap().is_none());
    assert!(!part.exists());
    pool.shutdown(Duration::from_secs(2));
}

#[test]
fn a_node_without_the_table_offers_no_api() {
    let site = support::Site::new("");
    let node = site.start();
    let r = support::get(node.addr, "/api/v2/app/webapiVersion");
    assert_eq!(r.status, 404);
}

/// Where `make test` installs the client library.
fn python_path() -> String {
    std::env::var("JACK_TEST_PYTHONPATH")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/py").to_string())
}

#[test]
fn the_qbittorrent_api_library_drives_a_real_node() {
    support::need_tool("python3");
    let py = python_path();
    let found = std::process::Command::new("python3")
        .args(["-c", "import qbittorrentapi"])
        .env("PYTHONPATH", &py)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the qbittorrent-api package is not in {py}: run `make test` (it installs it) or scripts/ensure-qbittorrent-api.sh"
    );
    let (a, b) = (pattern(3 * 1024 * 1024 + 11), pattern(2 * 1024 * 1024 + 7));
    let files = vec![
        fake_peer::File {
            id: "movies:a".into(),
            filename: "Alpha.Movie.2024.mkv".into(),
            data: a.clone(),
        },
        fake_peer::File {
            id: "movies:b".into(),
            filename: "Beta.Movie.2023.mkv".into(),
            data: b.clone(),
        },
    ];
    // 1 MiB/s per transfer: a few seconds each, long enough to watch.
    let peer = FakePeer::start(files, vec![], Some(1024 * 1024));
    let site = support::downloader(
        peer.addr,
        &format!("[qbittorrent]\nusername = \"{USER}\"\npassword = \"{PASS}\"\n"),
    );
    let node = site.start();
    let stub = jack::stub::build("alice", "movies:a", "Alpha.Movie.2024", a.len() as u64);
    let stub_file = site.path().join("alpha.torrent");
    std::fs::write(&stub_file, &stub).unwrap();
    let link = format!(
        "http://{}/torznab/download/alice%3Amovies%3Ab.torrent?apikey={}",
        node.addr,
        support::KEY
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/qbit_client.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &node.addr.port().to_string(), USER, PASS])
        .arg(&stub_file)
        .arg(&link)
        .env("PYTHONPATH", &py)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed:\n{}\n{stdout}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log_text()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let completed = site.path().join("data/completed");
    assert_eq!(seen["bad_login"], "LoginFailed");
    assert_eq!(
        (seen["version"].as_str(), seen["webapi"].as_str()),
        (Some("v4.6.4"), Some("2.9.2"))
    );
    assert_eq!(seen["prefs"]["save_path"], completed.display().to_string());
    assert_eq!(seen["categories"], serde_json::json!(["radarr"]));
    for add in ["add_file", "add_file_again", "add_link"] {
        assert_eq!(seen[add], "Ok.", "{add}");
    }
    assert_eq!(seen["add_magnet"], 415);

    // While downloading: live progress and a speed.
    let d = &seen["downloading"];
    assert!(d.is_object(), "never saw a torrent downloading: {seen}");
    assert!(
        d["dlspeed"].as_u64().unwrap() > 0 && d["eta"].as_u64().unwrap() < 8_640_000,
        "{d}"
    );

    // After: both complete, each with its final file.
    let done = seen["done"].as_array().unwrap();
    assert_eq!(done.len(), 2, "{seen}");
    for t in done {
        assert_eq!(t["state"], "pausedUP", "{t}");
        assert_eq!(
            (t["progress"].as_f64(), t["eta"].as_u64()),
            (Some(1.0), Some(0)),
            "{t}"
        );
        assert_eq!(
            (t["ratio_limit"].as_i64(), t["seeding_time_limit"].as_i64()),
            (Some(-2), Some(-2))
        );
        assert_eq!(t["save_path"], completed.display().to_string());
        assert_ne!(t["content_path"], t["save_path"]);
        assert!(
            t["completion_on"].as_i64().unwrap() >= t["added_on"].as_i64().unwrap(),
            "{t}"
        );
    }
    let alpha = completed.join("Alpha.Movie.2024.mkv");
    let beta = completed.join("Beta.Movie.2023.mkv");
    let sha1 = |d: &[u8]| sha1_smol::Sha1::from(d).digest().to_string();
    let mut files: Vec<(&str, &str)> = done
        .iter()
        .map(|t| {
            (
                t["content_path"].as_str().unwrap(),
                t["sha1"].as_str().unwrap(),
            )
        })
        .collect();
    files.sort();
    let (a_sha, b_sha) = (sha1(&a), sha1(&b));
    let want = [
        (alpha.to_str().unwrap(), a_sha.as_str()),
        (beta.to_str().unwrap(), b_sha.as_str()),
    ];
    assert_eq!(files, want, "each final file, whole");
    assert_eq!(seen["other_category"], serde_json::json!([]));
    assert_eq!(seen["by_hash"].as_array().unwrap().len(), 1);
    assert_eq!(
        seen["properties"]["save_path"],
        completed.display().to_string()
    );
    assert_eq!(seen["files"].as_array().unwrap().len(), 1);
    assert_eq!(seen["unknown_properties"], 404);

    // Delete: Alpha's file kept (deleteFiles=false), Beta's removed (jack's own).
    assert_eq!(seen["deleted"]["kept_files"], alpha.to_str().unwrap());
    assert_eq!(seen["after_delete"], serde_json::json!([]));
    assert_eq!(std::fs::read(&alpha).unwrap(), a, "final bytes");
    assert!(!beta.exists(), "deleteFiles=true removed jack's file");
    let status = support::status_json(&site);
    assert_eq!(
        status["downloads"],
        serde_json::json!([]),
        "the rows went: {status}"
    );
    drop(node);
}

/// Logs in to a real node (urlencoded); returns the `Cookie` header value.
fn login(addr: SocketAddr) -> String {
    let r = post_form(
        addr,
        "auth/login",
        "",
        &[("username", USER), ("password", PASS)],
    );
    assert_eq!(text(&r), "Ok.", "{r:?}");
    let cookie = r.header("Set-Cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// `GET /api/v2/<endpoint>` of a real node as JSON.
fn get_json(addr: SocketAddr, endpoint: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let r = support::request(addr, "GET", &format!("/api/v2/{endpoint}"), headers);
    assert_eq!(r.status, 200, "{endpoint}: {r:?}");
    serde_json::from_slice(&r.body).unwrap()
}

/// `torrents/add` of one stub (multipart, as Radarr/Sonarr send a file)
/// with `fields`, answered `Ok.`.
fn add_stub(addr: SocketAddr, cookie: &str, fields: &[(&str, &str)], name: &str, stub: &[u8]) {
    let r = post_multipart(
        addr,
        "torrents/add",
        cookie,
        fields,
        &[("torrents", name, stub)],
    );
    assert_eq!(text(&r), "Ok.", "{r:?}");
}

/// A pause that reaches an add while it is being made a download (its
/// peer asked; the window widened to 1.5 s) leaves the new download
/// paused: the add was read unpaused, its download queued, and the pause
/// is applied when the add is settled.
#[test]
fn a_pause_while_the_add_is_made_leaves_the_download_paused() {
    let data = pattern(4 * 1024 * 1024);
    let peer = FakePeer::start(
        vec![fake_peer::File::mkv("m", &data)],
        vec![],
        Some(512 * 1024),
    );
    let site = support::downloader(peer.addr, &qbit_table(""));
    let node = start_with(&site, &[("JACK_FAULT_PAUSE", "qbit:before_add:1500")]);
    let cookie = login(node.addr);
    let stub = jack::stub::build("alice", "m", "m", data.len() as u64);
    let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
    add_stub(
        node.addr,
        &cookie,
        &[("category", "radarr")],
        "m.torrent",
        &stub,
    );
    node.wait_log("fault pause point=qbit:before_add", Duration::from_secs(10));
    let r = post_form(node.addr, "torrents/pause", &cookie, &[("hashes", &hash)]);
    assert_eq!(r.status, 200);
    let auth = [("Cookie", cookie.as_str())];
    let state = || get_json(node.addr, "torrents/info?category=radarr", &auth)[0]["state"].clone();
    assert_eq!(state(), "pausedDL", "the pending add shows paused");
    node.wait_log("add done stub=", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(state(), "pausedDL", "{}", node.log_text());
    assert_eq!(
        support::status_json(&site)["downloads"][0]["status"],
        "paused"
    );
    assert!(!site.path().join("data/completed/m.mkv").exists());
}

/// A qBittorrent table for `support::downloader`.
fn qbit_table(extra: &str) -> String {
    format!("[qbittorrent]\nusername = \"{USER}\"\npassword = \"{PASS}\"\n{extra}")
}

/// Starts `site` with `env` set for the node.
fn start_with(site: &support::Site, env: &[(&str, &str)]) -> support::Node {
    let mut cmd = site.command(&["--config", site.config().to_str().unwrap(), "run"]);
    cmd.envs(env.iter().copied());
    support::Node::spawn(cmd)
}

/// Radarr polls `torrents/info?category=radarr` right after each add (and
/// Sonarr asks `torrents/properties` for the hash): a download added a
/// moment ago is in every answer, with its category, even when the
/// `qbit-add` thread makes it a download while the answer is being read
/// (`JACK_FAULT_PAUSE=qbit:view:30` widens that window to 30 ms, so a
/// view read in two steps misses it every time).
#[test]
fn a_new_add_is_listed_at_once_in_every_answer() {
    let n = 40;
    let size = |i: usize| 1000 + i;
    let files = (0..n)
        .map(|i| fake_peer::File::mkv(&format!("m{i}"), &pattern(size(i))))
        .collect();
    let peer = FakePeer::start(files, vec![], None);
    let site = support::downloader(peer.addr, &qbit_table(""));
    let node = start_with(&site, &[("JACK_FAULT_PAUSE", "qbit:view:30")]);
    let cookie = login(node.addr);
    let auth = [("Cookie", cookie.as_str())];
    for i in 0..n {
        let stub = jack::stub::build("alice", &format!("m{i}"), &format!("m{i}"), size(i) as u64);
        let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
        add_stub(
            node.addr,
            &cookie,
            &[("category", "radarr")],
            &format!("m{i}.torrent"),
            &stub,
        );
        for endpoint in ["torrents/info?category=radarr", "torrents/info"] {
            let list = get_json(node.addr, endpoint, &auth);
            let listed = list.as_array().unwrap().iter().find(|t| t["hash"] == hash);
            assert_eq!(
                listed.map(|t| &t["category"]),
                Some(&serde_json::json!("radarr")),
                "add {i} not listed with its category by {endpoint}: {list}"
            );
        }
    }
    wait_for("every add a download", Duration::from_secs(20), || {
        let list = get_json(node.addr, "torrents/info?category=radarr", &auth);
        let list = list.as_array().unwrap().clone();
        list.len() == n && list.iter().all(|t| t["state"] == "pausedUP")
    });
}

/// Radarr v5's and Sonarr v4's `QBittorrentPreferences`, the fields their
/// removal decision reads, as Newtonsoft fills them (absent: the default).
#[derive(serde::Deserialize)]
struct ArrPreferences {
    #[serde(default)]
    max_ratio_enabled: bool,
    #[serde(default)]
    max_ratio: f32,
    #[serde(default)]
    max_seeding_time_enabled: bool,
    #[serde(default)]
    max_seeding_time: i64,
    #[serde(default)]
    max_inactive_seeding_time_enabled: bool,
    #[serde(default)]
    max_inactive_seeding_time: i64,
    #[serde(default)]
    max_ratio_act: i64,
}

/// Their `QBittorrentTorrent` (the limits default to -2 when absent).
#[derive(serde::Deserialize)]
struct ArrTorrent {
    hash: String,
    state: String,
    ratio: f32,
    #[serde(default = "use_global_f32")]
    ratio_limit: f32,
    seeding_time: Option<i64>,
    #[serde(default = "use_global")]
    seeding_time_limit: i64,
    #[serde(default = "use_global")]
    inactive_seeding_time_limit: i64,
    last_activity: i64,
    content_path: String,
}

fn use_global_f32() -> f32 {
    -2.0
}

fn use_global() -> i64 {
    -2
}

impl ArrTorrent {
    /// `GetItems`: `CanBeRemoved` (and `CanMoveFiles`) of an item, with the
    /// download client's "Remove Completed" on (its default).
    fn can_be_removed(&self, config: &ArrPreferences) -> bool {
        matches!(self.state.as_str(), "pausedUP" | "stoppedUP")
            && self.has_reached_seed_limit(config)
    }

    /// `HasReachedSeedLimit`.
    fn has_reached_seed_limit(&self, config: &ArrPreferences) -> bool {
        if self.ratio_limit >= 0.0 {
            if self.ratio_limit - self.ratio <= 0.001 {
                return true;
            }
        } else if self.ratio_limit == -2.0
            && config.max_ratio_enabled
            && config.max_ratio - self.ratio <= 0.001
        {
            return true;
        }
        self.seeding_time_reached(config) || self.inactive_seeding_time_reached(config)
    }

    /// `HasReachedSeedingTimeLimit` (`seeding_time` is in the list here,
    /// so `torrents/properties` is not asked).
    fn seeding_time_reached(&self, config: &ArrPreferences) -> bool {
        let limit = if self.seeding_time_limit >= 0 {
            self.seeding_time_limit * 60
        } else if self.seeding_time_limit == -2 && config.max_seeding_time_enabled {
            config.max_seeding_time * 60
        } else {
            return false;
        };
        self.seeding_time.expect("seeding_time in torrents/info") >= limit
    }

    /// `HasReachedInactiveSeedingTimeLimit`.
    fn inactive_seeding_time_reached(&self, config: &ArrPreferences) -> bool {
        let limit = if self.inactive_seeding_time_limit >= 0 {
            self.inactive_seeding_time_limit * 60
        } else if self.inactive_seeding_time_limit == -2 && config.max_inactive_seeding_time_enabled
        {
            config.max_inactive_seeding_time * 60
        } else {
            return false;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        now - self.last_activity > limit
    }
}

impl ArrPreferences {
    /// `RemovesCompletedDownloads`: what their download client test
    /// complains about (the client removing torrents itself at the limit).
    fn removes_completed_downloads(&self) -> bool {
        let two_weeks = 60 * 24 * 14;
        (self.max_ratio_enabled
            || (self.max_seeding_time_enabled && self.max_seeding_time < two_weeks))
            && (self.max_ratio_act == 1 || self.max_ratio_act == 3)
    }
}

/// What Radarr/Sonarr judge of the torrents in `category` of a node, read
/// as their `GetItems` reads them: (hash, state, removable).
fn arr_items(addr: SocketAddr, cookie: &str, category: &str) -> Vec<ArrTorrent> {
    let auth = [("Cookie", cookie)];
    let list = get_json(addr, &format!("torrents/info?category={category}"), &auth);
    serde_json::from_value(list).unwrap()
}

fn arr_preferences(addr: SocketAddr, cookie: &str) -> ArrPreferences {
    let prefs = get_json(addr, "app/preferences", &[("Cookie", cookie)]);
    serde_json::from_value(prefs).unwrap()
}

/// "Remove Completed" as Radarr and Sonarr run it against a node: a
/// finished download is removable by their own rule (`CanBeRemoved`:
/// `pausedUP` and a seed limit reached), their client test has nothing
/// to warn about, and the removal after import (`torrents/delete` with
/// `deleteFiles=true`) works whether they moved the file out (which
/// `CanMoveFiles` lets them) or hard-linked it; with
/// `remove_after_import = false` they keep it.
#[test]
fn finished_downloads_are_removed_after_import_as_radarr_does() {
    let (a, b) = (pattern(300 * 1024 + 1), pattern(200 * 1024 + 3));
    let files = vec![fake_peer::File::mkv("a", &a), fake_peer::File::mkv("b", &b)];
    let peer = FakePeer::start(files, vec![], None);
    let site = support::downloader(peer.addr, &qbit_table(""));
    let node = site.start();
    let cookie = login(node.addr);
    let mut hashes = Vec::new();
    for (id, data) in [("a", &a), ("b", &b)] {
        let stub = jack::stub::build("alice", id, id, data.len() as u64);
        hashes.push(jack::stub::parse(&stub, u64::MAX).unwrap().info_hash);
        add_stub(
            node.addr,
            &cookie,
            &[("category", "radarr")],
            &format!("{id}.torrent"),
            &stub,
        );
    }
    wait_for("both finished", Duration::from_secs(20), || {
        let items = arr_items(node.addr, &cookie, "radarr");
        items.len() == 2 && items.iter().all(|t| t.state == "pausedUP")
    });
    let config = arr_preferences(node.addr, &cookie);
    assert!(!config.removes_completed_downloads(), "no test warning");
    let items = arr_items(node.addr, &cookie, "radarr");
    for t in &items {
        assert!(t.can_be_removed(&config), "{} removable", t.hash);
    }

    // Imported: `a` moved into the library, `b` hard-linked there.
    let library = site.path().join("library");
    std::fs::create_dir_all(&library).unwrap();
    let path_of = |hash: &str| {
        let t = items.iter().find(|t| t.hash == *hash).unwrap();
        PathBuf::from(&t.content_path)
    };
    std::fs::rename(path_of(&hashes[0]), library.join("a.mkv")).unwrap();
    std::fs::hard_link(path_of(&hashes[1]), library.join("b.mkv")).unwrap();
    // `RemoveItem(item, deleteData: true)`, one call per download.
    for hash in &hashes {
        let r = post_form(
            node.addr,
            "torrents/delete",
            &cookie,
            &[("hashes", hash), ("deleteFiles", "true")],
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert!(
        arr_items(node.addr, &cookie, "radarr").is_empty(),
        "removed"
    );
    assert!(!path_of(&hashes[1]).exists(), "jack's own link is gone");
    assert_eq!(std::fs::read(library.join("a.mkv")).unwrap(), a);
    assert_eq!(std::fs::read(library.join("b.mkv")).unwrap(), b);
    drop(node);
    assert_eq!(
        support::status_json(&site)["downloads"],
        serde_json::json!([])
    );

    // Kept listed when the operator says so.
    let table = qbit_table("remove_after_import = false\n");
    let site = support::downloader(peer.addr, &table);
    let node = site.start();
    let cookie = login(node.addr);
    let stub = jack::stub::build("alice", "a", "a", a.len() as u64);
    add_stub(
        node.addr,
        &cookie,
        &[("category", "radarr")],
        "a.torrent",
        &stub,
    );
    wait_for("the download", Duration::from_secs(20), || {
        let items = arr_items(node.addr, &cookie, "radarr");
        items.len() == 1 && items[0].state == "pausedUP"
    });
    let config = arr_preferences(node.addr, &cookie);
    assert!(!config.removes_completed_downloads());
    assert!(!arr_items(node.addr, &cookie, "radarr")[0].can_be_removed(&config));
}

/// A `application/x-www-form-urlencoded` POST with `headers`.
fn post_form_with(
    addr: SocketAddr,
    endpoint: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> Resp {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    raw(addr, "POST", endpoint, &all, urlencode(fields).as_bytes())
}

/// `jack_auth_failures_total{route="qbit"}` of a node.
fn qbit_failures(addr: SocketAddr) -> u64 {
    let m = support::request(addr, "GET", "/metrics", &[("X-Api-Key", support::KEY)]);
    let text = String::from_utf8(m.body).unwrap();
    let line = "jack_auth_failures_total{route=\"qbit\"} ";
    let at = text.find(line).expect("the qbit failure counter") + line.len();
    text[at..].lines().next().unwrap().parse().unwrap()
}

/// Recent Sonarr with an API key (qBittorrent 5.2's, Sonarr's `ApiKey`
/// setting) sends `Authorization: Bearer <key>` on every request, with no
/// login and no cookie: the node's owner key is that key, so setting jack
/// up needs one secret. A wrong key is qBittorrent's `403` (Sonarr reads
/// it as an authentication failure) and is charged to the guess budget;
/// `auth/` is refused with a key, as there. With a username and password
/// Sonarr now sends them as `Authorization: Basic` on every request too,
/// beside the session cookie: not a key, and nothing is charged.
#[test]
fn sonarr_with_the_owner_key_as_api_key() {
    let data = pattern(64 * 1024 + 5);
    let peer = FakePeer::start(vec![fake_peer::File::mkv("e1", &data)], vec![], None);
    let site = support::downloader(peer.addr, &qbit_table(""));
    let node = site.start();
    let addr = node.addr;
    let bearer = format!("Bearer {}", support::KEY);
    let key = [("Authorization", bearer.as_str())];
    let get = |endpoint: &str| raw(addr, "GET", endpoint, &key, b"");

    // Test(): the version (200 is API v2 as much as the 403 probe is),
    // the preferences, the category, the list.
    let r = get("app/webapiVersion");
    assert_eq!((r.status, text(&r).as_str()), (200, "2.9.2"));
    assert_eq!(get("app/preferences").status, 200);
    assert_eq!(text(&get("torrents/categories")), "{}");
    let r = post_form_with(
        addr,
        "torrents/createCategory",
        &key,
        &[("category", "tv-sonarr")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(text(&get("torrents/info?category=tv-sonarr")), "[]");

    // Download(): the add (multipart: a file), the wait for the torrent,
    // then the removal once done.
    let stub = jack::stub::build("alice", "e1", "e1", data.len() as u64);
    let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let fields = [("category", "tv-sonarr"), ("paused", "false")];
    let body = multipart(&fields, &[("torrents", "e1.torrent", &stub)]);
    let headers = [key[0], ("Content-Type", ct.as_str())];
    let r = raw(addr, "POST", "torrents/add", &headers, &body);
    assert_eq!(text(&r), "Ok.", "{r:?}");
    assert_eq!(get(&format!("torrents/properties?hash={hash}")).status, 200);
    // "Add Series Tags": the series' tag labels, joined by commas.
    let fields = [("hashes", hash.as_str()), ("tags", "anime,tv")];
    let r = post_form_with(addr, "torrents/addTags", &key, &fields);
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("the download", Duration::from_secs(20), || {
        let list: serde_json::Value =
            serde_json::from_slice(&get("torrents/info?category=tv-sonarr").body).unwrap();
        list[0]["state"] == "pausedUP"
    });
    let list: serde_json::Value = serde_json::from_slice(&get("torrents/info").body).unwrap();
    assert_eq!(list[0]["tags"], "anime, tv", "kept on the download");
    assert_eq!(text(&get("torrents/tags")), r#"["anime","tv"]"#);
    let fields = [("hashes", hash.as_str()), ("deleteFiles", "true")];
    assert_eq!(
        post_form_with(addr, "torrents/delete", &key, &fields).status,
        200
    );
    assert_eq!(text(&get("torrents/info")), "[]");

    // Username and password: Basic on every request, and the cookie.
    let basic = format!("Basic {}", "YWRtaW46czNjcmV0IHBhc3M=");
    let r = post_form_with(
        addr,
        "auth/login",
        &[("Authorization", &basic)],
        &[("username", USER), ("password", PASS)],
    );
    assert_eq!(text(&r), "Ok.");
    let cookie = r.header("Set-Cookie").unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let both = [("Authorization", basic.as_str()), ("Cookie", cookie)];
    assert_eq!(raw(addr, "GET", "app/version", &both, b"").status, 200);
    assert_eq!(qbit_failures(addr), 0, "nothing charged so far");

    // A wrong key: 403, charged, whatever cookie comes with it; `auth/`
    // with the right key: 403, not charged.
    let wrong = [("Authorization", "Bearer not-the-key"), ("Cookie", cookie)];
    let r = raw(addr, "GET", "app/version", &wrong, b"");
    assert_eq!((r.status, text(&r).as_str()), (403, "Forbidden"));
    let r = post_form_with(
        addr,
        "auth/login",
        &key,
        &[("username", USER), ("password", PASS)],
    );
    assert_eq!((r.status, r.header("Set-Cookie")), (403, None));
    assert_eq!(qbit_failures(addr), 1);
    // A key of another scheme, or an empty one, is not a key: the cookie
    // is read.
    for auth in ["Bearer ", "Token x"] {
        let r = raw(
            addr,
            "GET",
            "app/version",
            &[("Authorization", auth), ("Cookie", cookie)],
            b"",
        );
        assert_eq!(r.status, 200, "{auth}");
    }
    assert_eq!(qbit_failures(addr), 1);
}

/// Tags as qBittorrent 4.6 keeps them, driven as clients drive them: set
/// on `torrents/add` (`tags=a,b`), added and taken off by hash (the tags
/// made on the way), listed, filtered by (`torrents/info?tag=`), made and
/// deleted; a tag with a control character is refused with the reason.
#[test]
fn tags_are_kept_per_download() {
    let data = pattern(10 * 1024);
    let peer = FakePeer::start(vec![fake_peer::File::mkv("m", &data)], vec![], None);
    let bed = Bed::start(peer.addr);
    let cookie = bed.login();
    let stub = jack::stub::build("alice", "m", "m", data.len() as u64);
    let hash = jack::stub::parse(&stub, u64::MAX).unwrap().info_hash;
    add_stub(
        bed.addr,
        &cookie,
        &[("category", "radarr"), ("tags", "4k, jack,")],
        "m.torrent",
        &stub,
    );
    let tags_of = |bed: &Bed| {
        let list = bed.info(&cookie);
        list.iter().find(|t| t["hash"] == hash.as_str()).unwrap()["tags"].clone()
    };
    assert_eq!(tags_of(&bed), "4k, jack", "at once, from the add");
    wait_for("the download", Duration::from_secs(20), || {
        bed.info(&cookie)[0]["state"] == "pausedUP"
    });
    assert_eq!(tags_of(&bed), "4k, jack", "the download's own");
    let post = |endpoint: &str, fields: &[(&str, &str)]| {
        let r = post_form(bed.addr, endpoint, &cookie, fields);
        (r.status, text(&r))
    };
    let upper = hash.to_uppercase();
    assert_eq!(
        post("torrents/addTags", &[("hashes", &upper), ("tags", "tv")]).0,
        200
    );
    assert_eq!(tags_of(&bed), "4k, jack, tv");
    assert_eq!(
        post(
            "torrents/removeTags",
            &[("hashes", "all"), ("tags", "jack")]
        )
        .0,
        200
    );
    assert_eq!(tags_of(&bed), "4k, tv");
    let listed = |query: &str| {
        bed.get(&format!("torrents/info?{query}"), &cookie)
            .body
            .len()
            > 2
    };
    assert!(listed("tag=tv") && listed("tag=4k") && !listed("tag=jack") && !listed("tag="));
    assert_eq!(post("torrents/createTags", &[("tags", "spare,x")]).0, 200);
    assert_eq!(post("torrents/deleteTags", &[("tags", "x,tv")]).0, 200);
    assert_eq!(tags_of(&bed), "4k");
    let r = bed.get("torrents/tags", &cookie);
    assert_eq!(text(&r), r#"["4k","jack","spare"]"#);
    assert_eq!(
        post("torrents/removeTags", &[("hashes", &hash)]).0,
        200,
        "every tag"
    );
    assert_eq!(tags_of(&bed), "");
    assert!(listed("tag="));

    // Bad input: the reason, nothing changed.
    let (status, body) = post(
        "torrents/addTags",
        &[("hashes", &hash), ("tags", "ok,b\u{1}d")],
    );
    assert_eq!(status, 400);
    assert!(
        body.starts_with("Incorrect tag name \"b\\u{1}d\""),
        "{body}"
    );
    assert_eq!(
        post("torrents/addTags", &[("hashes", &hash)]).0,
        400,
        "no tags"
    );
    assert_eq!(
        post("torrents/addTags", &[("tags", "a")]).0,
        400,
        "no hashes"
    );
    assert_eq!(post("torrents/createTags", &[]).0, 400);
    assert_eq!(tags_of(&bed), "");
    assert_eq!(
        bed.get("torrents/addTags?hashes=all&tags=a", &cookie)
            .status,
        405
    );
}

/// A transfer trickled at 512 KiB/s shows a speed and an ETA from its
/// first second, to the first client that asks (`torrents/info`, and the
/// status API with its own sampling), and within 30 % of the truth after
/// 3 s: no `8640000`, no estimate warming up from zero.
#[test]
fn the_eta_is_right_from_the_first_seconds() {
    let rate: u64 = 512 * 1024;
    let data = pattern(8 * 1024 * 1024); // 16 s at that rate
    let peer = FakePeer::start(
        vec![fake_peer::File::mkv("slow", &data)],
        vec![],
        Some(rate),
    );
    let site = support::downloader(peer.addr, &qbit_table(""));
    let node = site.start();
    let cookie = login(node.addr);
    let stub = jack::stub::build("alice", "slow", "slow", data.len() as u64);
    add_stub(
        node.addr,
        &cookie,
        &[("category", "radarr")],
        "slow.torrent",
        &stub,
    );
    // The first bytes on the wire (nothing has asked the node yet).
    let sent = || {
        peer.record
            .body_bytes
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    wait_for("the first bytes", Duration::from_secs(10), || sent() > 0);
    let first = Instant::now();
    // (eta, the ETA its own bytes done make true) of the API and the status API.
    let etas = || {
        let auth = [("Cookie", cookie.as_str())];
        let t = &get_json(node.addr, "torrents/info?category=radarr", &auth)[0];
        let truth = |done: u64| (data.len() as u64 - done) as f64 / rate as f64;
        let qbit = (
            t["eta"].as_u64().unwrap(),
            truth(t["completed"].as_u64().unwrap()),
        );
        let key = [("X-Api-Key", support::KEY)];
        let r = support::request(node.addr, "GET", "/api/v1/downloads", &key);
        let d = &serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["downloads"][0];
        let status = (
            d["eta_seconds"].as_u64().unwrap_or(8_640_000),
            truth(d["done_bytes"].as_u64().unwrap()),
        );
        [qbit, status]
    };
    std::thread::sleep(Duration::from_secs(1).saturating_sub(first.elapsed()));
    for (eta, truth) in etas() {
        assert!(
            eta != 8_640_000 && (eta as f64 - truth).abs() <= truth * 0.5,
            "a second in: eta {eta}, truth {truth:.1}"
        );
    }
    std::thread::sleep(Duration::from_secs(3).saturating_sub(first.elapsed()));
    for (eta, truth) in etas() {
        assert!(
            (eta as f64 - truth).abs() <= truth * 0.3,
            "3 s in: eta {eta}, truth {truth:.1}"
        );
    }
}
