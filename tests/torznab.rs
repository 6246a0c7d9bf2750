//! The Torznab indexer end to end (PROTOCOL.md §4): the real binary as the
//! operator's node, its peers real HTTP servers on 127.0.0.1 (jack nodes,
//! or fakes that answer, sleep past the timeout or fail). Every document
//! is parsed with a real XML parser (roxmltree).

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{KEY, Node, Resp, Site, fake_peer, get, serving_site, wait_for};

const TORZNAB_NS: &str = "http://torznab.com/schemas/2015/feed";
const PUBLIC: &str = "http://jack.test:5225";

/// How a fake peer answers `/peer/search`.
#[derive(Clone)]
enum Answer {
    /// `{"items": items}` at once.
    Items(Value),
    /// The same, after sleeping this long.
    Late(Duration, Value),
    /// This status, empty body.
    Status(u16),
    /// `200` with an empty list, its body sent one byte every `gap`: each
    /// read is quick, the whole answer is not.
    Trickle(Duration),
}

/// (request target, `X-Api-Key`) of each request a fake peer received.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A fake peer: `/peer/search` answers as told, `/peer/items/{id}` finds
/// the item in the same list. Records every request target and key.
struct FakeSearchPeer {
    addr: SocketAddr,
    seen: Seen,
    stop: Arc<AtomicBool>,
}

impl FakeSearchPeer {
    fn start(answer: Answer) -> FakeSearchPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, halt) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (rec, answer) = (rec.clone(), answer.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &answer, &rec);
                });
            }
        });
        FakeSearchPeer { addr, seen, stop }
    }

    fn items(items: Value) -> FakeSearchPeer {
        FakeSearchPeer::start(Answer::Items(items))
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request targets received so far.
    fn targets(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}

impl Drop for FakeSearchPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    conn: TcpStream,
    answer: &Answer,
    seen: &Mutex<Vec<(String, Option<String>)>>,
) -> std::io::Result<()> {
    let (target, headers) = fake_peer::read_head(&conn)?;
    let key = fake_peer::header(&headers, "x-api-key");
    seen.lock().unwrap().push((target.clone(), key));
    let mut out = conn;
    let items = match answer {
        Answer::Items(items) => items.clone(),
        Answer::Late(sleep, items) => {
            std::thread::sleep(*sleep);
            items.clone()
        }
        Answer::Status(code) => {
            return write!(
                out,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Answer::Trickle(gap) => {
            let body = format!("{:<50}", "{\"items\":[]}");
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            for b in body.bytes() {
                out.write_all(&[b])?;
                std::thread::sleep(*gap);
            }
            return Ok(());
        }
    };
    let body = if target.starts_with("/peer/search") {
        Some(json!({ "items": items }))
    } else if let Some(id) = target.strip_prefix("/peer/items/") {
        let id = percent_decode(id);
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id.as_str())
            .cloned()
    } else {
        None
    };
    match body {
        Some(b) => {
            let b = b.to_string();
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            )
        }
        None => write!(
            out,
            "HTTP/1.1 404 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A URL nobody listens on: connections are refused.
fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// The operator's node: the indexer, asking `peers` (name, URL) with
/// `peer_timeout_ms`.
fn indexer(peers: &[(&str, String)], timeout_ms: u64) -> (Site, Node) {
    let mut extra =
        format!("public_url = \"{PUBLIC}\"\n[torznab]\npeer_timeout_ms = {timeout_ms}\n");
    for (name, url) in peers {
        extra.push_str(&format!(
            "[[peers]]\nname = \"{name}\"\nurl = \"{url}\"\napi_key = \"{KEY}\"\n"
        ));
    }
    let site = Site::new(&extra);
    let node = site.start();
    (site, node)
}

/// `GET /torznab/api?<query>` (the key added unless `query` has one).
fn api(node: &Node, query: &str) -> Resp {
    let query = if query.contains("apikey=") {
        query.to_string()
    } else {
        format!("{query}&apikey={KEY}")
    };
    get(node.addr, &format!("/torznab/api?{query}"))
}

/// A release as `/peer/search` lists it.
fn release(id: &str, title: &str, category: u32, date: &str) -> Value {
    json!({"id": id, "title": title, "filename": format!("{id}.mkv"),
           "category": category, "size": 1000 + title.len(), "publishDate": date})
}

/// One `<item>` of a feed.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    title: String,
    guid: String,
    link: String,
    size: String,
    pub_date: String,
    enclosure: (String, String, String),
    attrs: Vec<(String, String)>,
}

impl Item {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The items of a feed, which must be well-formed RSS 2.0 with the
/// Torznab namespace.
fn items(resp: &Resp) -> Vec<Item> {
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type").as_deref(),
        Some("application/rss+xml; charset=utf-8")
    );
    let text = std::str::from_utf8(&resp.body).unwrap();
    let doc = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let rss = doc.root_element();
    assert_eq!(rss.tag_name().name(), "rss");
    assert_eq!(rss.attribute("version"), Some("2.0"));
    assert_eq!(rss.lookup_namespace_uri(Some("torznab")), Some(TORZNAB_NS));
    let text_of = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children()
            .find(|c| c.has_tag_name(name))
            .unwrap_or_else(|| panic!("item without {name}"))
            .text()
            .unwrap_or("")
            .to_string()
    };
    rss.descendants()
        .filter(|n| n.has_tag_name("item"))
        .map(|n| {
            let enc = n.children().find(|c| c.has_tag_name("enclosure")).unwrap();
            Item {
                title: text_of(n, "title"),
                guid: text_of(n, "guid"),
                link: text_of(n, "link"),
                size: text_of(n, "size"),
                pub_date: text_of(n, "pubDate"),
                enclosure: (
                    enc.attribute("url").unwrap().into(),
                    enc.attribute("length").unwrap().into(),
                    enc.attribute("type").unwrap().into(),
                ),
                attrs: n
                    .children()
                    .filter(|c| c.has_tag_name((TORZNAB_NS, "attr")))
                    .map(|c| {
                        (
                            c.attribute("name").unwrap().into(),
                            c.attribute("value").unwrap().into(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

fn titles(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.title.as_str()).collect()
}

/// (code, description) of a Torznab error document.
fn torznab_error(resp: &Resp) -> (String, String) {
    assert_eq!(resp.status, 200, "Torznab errors are answered 200");
    let text = std::str::from_utf8(&resp.body).unwrap();
    let doc = roxmltree::Document::parse(text).unwrap();
    let e = doc.root_element();
    assert_eq!(e.tag_name().name(), "error", "{text}");
    (
        e.attribute("code").unwrap().into(),
        e.attribute("description").unwrap().into(),
    )
}

/// Names of the process's threads.
fn thread_names(node: &Node) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{}/task", node.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn caps_lists_search_modes_and_categories() {
    let (_site, node) = indexer(&[], 800);
    let resp = get(node.addr, "/torznab/api?t=caps");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type").as_deref(),
        Some("application/xml; charset=utf-8")
    );
    let text = std::str::from_utf8(&resp.body).unwrap();
    let doc = roxmltree::Document::parse(text).unwrap();
    let caps = doc.root_element();
    assert_eq!(caps.tag_name().name(), "caps");
    let element = |name: &str| {
        caps.descendants()
            .find(|n| n.has_tag_name(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let searching = element("searching");
    let modes: Vec<(&str, &str, Vec<&str>)> = searching
        .children()
        .filter(|n| n.is_element())
        .map(|n| {
            let mut params: Vec<&str> =
                n.attribute("supportedParams").unwrap().split(',').collect();
            params.sort();
            (
                n.tag_name().name(),
                n.attribute("available").unwrap(),
                params,
            )
        })
        .collect();
    assert_eq!(
        modes,
        [
            ("search", "yes", vec!["q"]),
            ("tv-search", "yes", vec!["ep", "q", "season", "tvdbid"]),
            ("movie-search", "yes", vec!["imdbid", "q", "tmdbid"]),
        ]
    );
    let categories: Vec<(&str, &str)> = element("categories")
        .children()
        .filter(|n| n.has_tag_name("category"))
        .map(|n| (n.attribute("id").unwrap(), n.attribute("name").unwrap()))
        .collect();
    assert_eq!(categories, [("2000", "Movies"), ("5000", "TV")]);
    // Radarr's and Sonarr's indexer test (`TestCapabilities`): every id of a
    // `<category>` and of its `<subcat>`s is supported; a default category
    // missing from them is a warning ("does not support the following
    // categories").
    let supported: Vec<u32> = element("categories")
        .children()
        .filter(|n| n.has_tag_name("category"))
        .flat_map(|c| std::iter::once(c).chain(c.children().filter(|n| n.has_tag_name("subcat"))))
        .map(|n| {
            assert!(!n.attribute("name").unwrap().is_empty());
            n.attribute("id").unwrap().parse().unwrap()
        })
        .collect();
    let radarr_defaults = [2000, 2010, 2020, 2030, 2040, 2045, 2050, 2060];
    let sonarr_defaults = [5030, 5040];
    let anime = [5070];
    for id in radarr_defaults.iter().chain(&sonarr_defaults).chain(&anime) {
        assert!(supported.contains(id), "{id} not in {supported:?}");
    }
    let limits = element("limits");
    let max: usize = limits.attribute("max").unwrap().parse().unwrap();
    let default: usize = limits.attribute("default").unwrap().parse().unwrap();
    assert!(0 < default && default <= max, "{default} {max}");
    // With a key it is the same document.
    assert_eq!(api(&node, "t=caps").body, resp.body);
}

#[test]
fn search_answers_within_the_timeout_with_the_healthy_peer() {
    let (_healthy_site, healthy) = serving_site(
        "",
        &[
            ("The.Matrix.1999.1080p.BluRay.x264-GRP.mkv", b"matrix"),
            ("Heat.1995.720p.WEB-DL.mkv", b"heat!"),
        ],
    );
    let slow = FakeSearchPeer::start(Answer::Late(
        Duration::from_secs(5),
        json!([release("s1", "Slow.Release", 2000, "2026-01-01T00:00:00Z")]),
    ));
    let trickling = FakeSearchPeer::start(Answer::Trickle(Duration::from_millis(100)));
    let failing = FakeSearchPeer::start(Answer::Status(500));
    let timeout = Duration::from_millis(800);
    let (_site, node) = indexer(
        &[
            ("healthy", format!("http://{}", healthy.addr)),
            ("slow", slow.url()),
            ("trickling", trickling.url()),
            ("failing", failing.url()),
            ("dead", refused_url()),
        ],
        800,
    );

    let started = Instant::now();
    let resp = api(&node, "t=search");
    let took = started.elapsed();
    let found = items(&resp);
    let mut got = titles(&found);
    got.sort();
    assert_eq!(
        got,
        [
            "Heat.1995.720p.WEB-DL",
            "The.Matrix.1999.1080p.BluRay.x264-GRP"
        ]
    );
    assert!(found.iter().all(|i| i.guid.starts_with("healthy:")));
    assert!(
        took >= timeout - Duration::from_millis(50),
        "answered in {took:?}: the slow peer was not waited for"
    );
    assert!(
        took < timeout + Duration::from_millis(1000),
        "answered in {took:?}, timeout {timeout:?}"
    );
    assert_eq!(slow.targets(), ["/peer/search"]);
    assert_eq!(failing.targets(), ["/peer/search"]);

    // Every thread left behind ends by itself, long before the slow peer
    // would have answered or the trickling one finished its body.
    wait_for(
        "the search threads to end",
        Duration::from_millis(1500),
        || !thread_names(&node).iter().any(|n| n.starts_with("torznab")),
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    let log = node.log_text();
    // A late peer is logged as not answering in time, or, when its own
    // deadline fired just before the search's, as failed with a timeout.
    for peer in ["slow", "trickling", "failing", "dead"] {
        let logged = log.lines().any(|l| {
            l.contains(&format!(" peer={peer} "))
                && (l.contains("torznab peer did not answer in time")
                    || l.contains("torznab peer failed"))
        });
        assert!(logged, "peer {peer} not logged:\n{log}");
    }
    assert!(log.contains("torznab search t=search peers=5 listed=2 matching=2 shown=2"));
    assert!(!log.contains(KEY), "a key in the log:\n{log}");
}

#[test]
fn hostile_titles_stay_well_formed_and_round_trip() {
    let hostile = [
        (
            "Tom & Jerry <1940> \"Cat\" 'Mouse'",
            "Tom & Jerry <1940> \"Cat\" 'Mouse'",
        ),
        (
            "Ctrl\u{1}Chars\u{1b}\u{7f}\u{0}Here\u{fffe}",
            "CtrlCharsHere",
        ),
        ("]]></title><evil/>&amp;", "]]></title><evil/>&amp;"),
        (
            "Tab\tand\nnewline\rCR Amélie 日本",
            "Tab\tand\nnewline\rCR Amélie 日本",
        ),
    ];
    let listed: Vec<Value> = hostile
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            release(
                &format!("lib:<&>\"'{i}"),
                title,
                2000,
                "2026-01-01T00:00:00Z",
            )
        })
        .collect();
    let peer = FakeSearchPeer::items(Value::Array(listed));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    let found = items(&api(&node, "t=search"));
    let mut got: Vec<(String, String)> = found
        .iter()
        .map(|i| (i.guid.clone(), i.title.clone()))
        .collect();
    got.sort();
    let want: Vec<(String, String)> = hostile
        .iter()
        .enumerate()
        .map(|(i, (_, shown))| (format!("alice:lib:<&>\"'{i}"), shown.to_string()))
        .collect();
    assert_eq!(got, want);
    // The parser used above does reject what the escaping prevents.
    assert!(roxmltree::Document::parse("<a>\u{1}</a>").is_err());
    assert!(roxmltree::Document::parse("<a>&</a>").is_err());
    assert!(roxmltree::Document::parse("<a b=\"\"\"/>").is_err());
}

#[test]
fn a_wrong_key_or_function_is_a_torznab_error() {
    let peer = FakeSearchPeer::items(json!([release("1", "T", 2000, "2026-01-01T00:00:00Z")]));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    let cases = [
        ("t=search&apikey=", ("100", "Invalid API Key")),
        ("t=search&apikey=wrong", ("100", "Invalid API Key")),
        ("t=movie&apikey=test-ke", ("100", "Invalid API Key")),
        ("t=tvsearch&apikey=TEST-KEY", ("100", "Invalid API Key")),
        ("t=nonsense&apikey=wrong", ("100", "Invalid API Key")),
        ("t=nonsense", ("202", "No such function (nonsense)")),
        ("q=x", ("200", "Missing parameter (t)")),
        (
            "t=movie&tmdbid=abc",
            ("201", "Incorrect parameter (tmdbid)"),
        ),
        ("t=search&cat=movies", ("201", "Incorrect parameter (cat)")),
    ];
    for (query, (code, description)) in cases {
        let (got_code, got_description) = torznab_error(&api(&node, query));
        assert_eq!(
            (got_code.as_str(), got_description.as_str()),
            (code, description),
            "{query}"
        );
    }
    let missing = get(node.addr, "/torznab/api?t=search");
    assert_eq!(torznab_error(&missing).0, "100");
    // The key travels only in the query here; the header does not count.
    let header_only = support::request(
        node.addr,
        "GET",
        "/torznab/api?t=search",
        &[("X-Api-Key", KEY)],
    );
    assert_eq!(torznab_error(&header_only).0, "100");
    assert!(
        peer.targets().is_empty(),
        "no peer is asked without the key"
    );
    assert_eq!(items(&api(&node, "t=search")).len(), 1);
    assert!(!node.log_text().contains("apikey="), "{}", node.log_text());
}

#[test]
fn cat_filters_by_parent_category() {
    let peer = FakeSearchPeer::items(json!([
        release("m1", "Movie.One", 2000, "2026-01-01T00:00:00Z"),
        release("m2", "Movie.Two", 2000, "2026-01-02T00:00:00Z"),
        release("t1", "Show.S01E01", 5000, "2026-01-03T00:00:00Z"),
    ]));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    let cases: &[(&str, &[&str])] = &[
        ("t=search", &["Show.S01E01", "Movie.Two", "Movie.One"]),
        ("t=movie&cat=2000", &["Movie.Two", "Movie.One"]),
        ("t=movie&cat=2040,2045", &["Movie.Two", "Movie.One"]),
        ("t=tvsearch&cat=5000", &["Show.S01E01"]),
        ("t=tvsearch&cat=5030,5040", &["Show.S01E01"]),
        (
            "t=search&cat=2000,5000",
            &["Show.S01E01", "Movie.Two", "Movie.One"],
        ),
        ("t=search&cat=3000", &[]),
    ];
    for (query, want) in cases {
        assert_eq!(titles(&items(&api(&node, query))), *want, "{query}");
    }
}

/// Releases a peer files under a subcategory: a search for the parent
/// shows them, one for that subcategory shows them with the parent's,
/// one for another subcategory does not. The queries are Radarr's and
/// Sonarr's, as their request generators write them (default categories,
/// `extended=1`, the key, then paging).
#[test]
fn subcategories_match_their_parent() {
    let peer = FakeSearchPeer::items(json!([
        release("m", "Movie.Plain", 2000, "2026-01-05T00:00:00Z"),
        release("hd", "Movie.HD", 2040, "2026-01-04T00:00:00Z"),
        release("uhd", "Movie.UHD", 2045, "2026-01-03T00:00:00Z"),
        release("t", "Show.S01E01", 5000, "2026-01-02T00:00:00Z"),
        release("anime", "Anime.S01E01", 5070, "2026-01-01T00:00:00Z"),
    ]));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    let radarr = format!(
        "t=movie&cat=2000,2010,2020,2030,2040,2045,2050,2060&extended=1&apikey={KEY}&offset=0&limit=100"
    );
    let sonarr = format!("t=tvsearch&cat=5030,5040&extended=1&apikey={KEY}&offset=0&limit=100");
    let cases: &[(&str, &[&str])] = &[
        (&radarr, &["Movie.Plain", "Movie.HD", "Movie.UHD"]),
        (
            &format!("{radarr}&tmdbid=603"),
            &["Movie.Plain", "Movie.HD", "Movie.UHD"],
        ),
        (
            "t=movie&cat=2000",
            &["Movie.Plain", "Movie.HD", "Movie.UHD"],
        ),
        ("t=movie&cat=2040", &["Movie.Plain", "Movie.HD"]),
        ("t=movie&cat=2030", &["Movie.Plain"]),
        (&sonarr, &["Show.S01E01"]),
        ("t=tvsearch&cat=5000", &["Show.S01E01", "Anime.S01E01"]),
        ("t=tvsearch&cat=5070", &["Show.S01E01", "Anime.S01E01"]),
    ];
    for (query, want) in cases {
        assert_eq!(titles(&items(&api(&node, query))), *want, "{query}");
    }
}

/// PROTOCOL.md §2.2: a release whose file name no node may take (hidden,
/// jack's own temporary names, spaces at either end) is not listed, and
/// its download link gives no stub.
#[test]
fn releases_with_bad_file_names_are_not_offered() {
    let named = |id: &str, filename: &str| {
        let mut r = release(id, &format!("Movie.{id}"), 2000, "2026-01-01T00:00:00Z");
        r["filename"] = json!(filename);
        r
    };
    let peer = FakeSearchPeer::items(json!([
        named("good", "Movie.good.mkv"),
        named("temp", ".jack-x.partial~"),
        named("hidden", ".hidden.mkv"),
        named("spaced", "  spaced.mkv  "),
    ]));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    assert_eq!(
        titles(&items(&api(&node, "t=movie&cat=2000"))),
        ["Movie.good"]
    );
    let link = |id: &str| {
        let target = support::enc(&format!("alice:{id}"));
        get(
            node.addr,
            &format!("/torznab/download/{target}.torrent?apikey={KEY}"),
        )
        .status
    };
    assert_eq!(link("good"), 200);
    for id in ["temp", "hidden", "spaced"] {
        assert_eq!(link(id), 404, "{id}");
    }
}

#[test]
fn limit_and_offset_page_the_merged_feed_newest_first() {
    let alice: Vec<Value> = (0..5)
        .map(|i| {
            release(
                &format!("a{i}"),
                &format!("Alice.{i}"),
                2000,
                &format!("2026-01-0{}T00:00:00Z", 2 * i + 1),
            )
        })
        .collect();
    let bob: Vec<Value> = (0..4)
        .map(|i| {
            release(
                &format!("b{i}"),
                &format!("Bob.{i}"),
                2000,
                &format!("2026-01-0{}T00:00:00Z", 2 * i + 2),
            )
        })
        .collect();
    let (pa, pb) = (
        FakeSearchPeer::items(Value::Array(alice)),
        FakeSearchPeer::items(Value::Array(bob)),
    );
    let (_site, node) = indexer(&[("alice", pa.url()), ("bob", pb.url())], 2000);
    let everything = titles(&items(&api(&node, "t=search"))).join(" ");
    assert_eq!(
        everything,
        "Alice.4 Bob.3 Alice.3 Bob.2 Alice.2 Bob.1 Alice.1 Bob.0 Alice.0"
    );
    let mut paged = Vec::new();
    for offset in (0..10).step_by(4) {
        let page = items(&api(&node, &format!("t=search&limit=4&offset={offset}")));
        assert!(page.len() <= 4);
        paged.extend(page.into_iter().map(|i| i.title));
    }
    assert_eq!(paged.join(" "), everything);
    assert!(items(&api(&node, "t=search&offset=9")).is_empty());
    assert_eq!(
        titles(&items(&api(&node, "t=search&limit=1&offset=2"))),
        ["Alice.3"]
    );
    assert_eq!(items(&api(&node, "t=search&limit=1000")).len(), 9);
}

#[test]
fn q_matches_every_word_of_the_title() {
    let peer = FakeSearchPeer::items(json!([
        release(
            "1",
            "The.Matrix.1999.1080p.BluRay",
            2000,
            "2026-01-03T00:00:00Z"
        ),
        release(
            "2",
            "The.Matrix.Reloaded.2003.720p",
            2000,
            "2026-01-02T00:00:00Z"
        ),
        release("3", "Heat.1995.2160p", 2000, "2026-01-01T00:00:00Z"),
    ]));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    let cases: &[(&str, &[&str])] = &[
        (
            "t=search&q=matrix",
            &[
                "The.Matrix.1999.1080p.BluRay",
                "The.Matrix.Reloaded.2003.720p",
            ],
        ),
        (
            "t=search&q=THE+MATRIX+1999",
            &["The.Matrix.1999.1080p.BluRay"],
        ),
        (
            "t=movie&q=matrix%20reloaded",
            &["The.Matrix.Reloaded.2003.720p"],
        ),
        ("t=search&q=heat", &["Heat.1995.2160p"]),
        ("t=search&q=mat", &[]),
        (
            "t=search&q=",
            &[
                "The.Matrix.1999.1080p.BluRay",
                "The.Matrix.Reloaded.2003.720p",
                "Heat.1995.2160p",
            ],
        ),
    ];
    for (query, want) in cases {
        assert_eq!(titles(&items(&api(&node, query))), *want, "{query}");
    }
    assert!(
        peer.targets().iter().all(|t| t == "/peer/search"),
        "q is not sent to peers: {:?}",
        peer.targets()
    );
}

#[test]
fn ids_are_mapped_to_peer_parameters_and_attributes() {
    let mut movie = release("m", "The.Matrix.1999", 2000, "2026-01-02T03:04:05Z");
    movie["tmdbId"] = json!(603);
    movie["imdbId"] = json!("tt0133093");
    let mut episode = release("e", "Show.S02E03", 5000, "2026-01-01T00:00:00Z");
    episode["tvdbId"] = json!(81189);
    episode["season"] = json!(2);
    episode["episode"] = json!(3);
    let peer = FakeSearchPeer::items(json!([movie, episode]));
    let (_site, node) = indexer(&[("alice", peer.url())], 2000);
    let cases = [
        ("t=movie&tmdbid=603", "/peer/search?tmdbId=603"),
        ("t=movie&imdbid=tt0133093", "/peer/search?imdbId=tt0133093"),
        (
            "t=movie&imdbid=133093&q=matrix",
            "/peer/search?imdbId=tt0133093",
        ),
        (
            "t=tvsearch&tvdbid=81189&season=2&ep=3",
            "/peer/search?tvdbId=81189&season=2&episode=3",
        ),
        (
            "t=tvsearch&tvdbid=81189&season=2",
            "/peer/search?tvdbId=81189&season=2",
        ),
        (
            "t=search&q=x&cat=2000&limit=5&offset=0&extended=1",
            "/peer/search",
        ),
    ];
    for (query, target) in cases {
        let before = peer.targets().len();
        items(&api(&node, query));
        assert_eq!(peer.targets()[before..], [target.to_string()], "{query}");
    }
    let keys: Vec<Option<String>> = peer
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, k)| k.clone())
        .collect();
    assert!(
        keys.iter().all(|k| k.as_deref() == Some(KEY)),
        "the peer's key in X-Api-Key"
    );

    // Sonarr's daily-show form: the peer is asked by the show alone.
    let before = peer.targets().len();
    assert!(items(&api(&node, "t=tvsearch&tvdbid=81189&season=2026&ep=01/02")).is_empty());
    assert_eq!(peer.targets()[before..], ["/peer/search?tvdbId=81189"]);
    // A day that does not exist: nothing can match, no peer is asked.
    let before = peer.targets().len();
    assert!(items(&api(&node, "t=tvsearch&tvdbid=81189&season=2026&ep=02/30")).is_empty());
    assert_eq!(peer.targets().len(), before, "no peer asked");

    let all = items(&api(&node, "t=search"));
    let m = all.iter().find(|i| i.guid == "alice:m").unwrap();
    let e = all.iter().find(|i| i.guid == "alice:e").unwrap();
    for (item, name, want) in [
        (m, "category", Some("2000")),
        (m, "tmdbid", Some("603")),
        (m, "imdb", Some("0133093")),
        (m, "imdbid", Some("tt0133093")),
        (m, "tvdbid", None),
        (m, "season", None),
        (m, "seeders", Some("1")),
        (m, "peers", Some("1")),
        (m, "downloadvolumefactor", Some("0")),
        (m, "uploadvolumefactor", Some("1")),
        (e, "category", Some("5000")),
        (e, "tvdbid", Some("81189")),
        (e, "season", Some("2")),
        (e, "episode", Some("3")),
        (e, "imdb", None),
        (e, "tmdbid", None),
    ] {
        assert_eq!(item.attr(name), want, "{} {name}", item.guid);
    }
    assert_eq!(m.pub_date, "Fri, 02 Jan 2026 03:04:05 GMT");
    assert_eq!(m.size, (1000 + "The.Matrix.1999".len()).to_string());
    assert_eq!(m.attr("size"), Some(m.size.as_str()));
    assert_eq!(
        m.link,
        format!("{PUBLIC}/torznab/download/alice%3Am.torrent?apikey={KEY}")
    );
    assert_eq!(
        m.enclosure,
        (
            m.link.clone(),
            m.size.clone(),
            "application/x-bittorrent".to_string()
        )
    );
}

/// Sonarr v4's daily episode search against a real peer node whose TV
/// library holds two days of a daily show (one named by scene rules, one
/// by Sonarr's own daily format) and a regular `SxxEyy` episode of it.
/// Both search tiers, as `NewznabRequestGenerator` writes them (the
/// `tvdbid` tier, then the `q` tier; `ep` as `MM/dd` with its `/` as is,
/// and percent-encoded as a proxy may rewrite it): only the asked day.
#[test]
fn daily_episodes_are_found_by_air_date() {
    let peer_site =
        Site::new("[[library]]\nname = \"tv\"\npath = \"media/tv\"\ncategory = \"tv\"\n");
    let show = peer_site
        .path()
        .join("media/tv/The Daily Show {tvdb-71256}");
    for (folder, name) in [
        (
            "Season 2011",
            "The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP.mkv",
        ),
        (
            "Season 2011",
            "The Daily Show - 2011-03-16 - Guest HDTV-720p.mkv",
        ),
        ("Season 01", "The.Daily.Show.S01E03.720p.HDTV.x264-GRP.mkv"),
    ] {
        std::fs::create_dir_all(show.join(folder)).unwrap();
        std::fs::write(show.join(folder).join(name), b"episode").unwrap();
    }
    let peer = peer_site.start();
    peer.wait_log("catalogue scanned", Duration::from_secs(10));
    let listed = support::request(peer.addr, "GET", "/peer/search", &[("X-Api-Key", KEY)]);
    let listed: Value = serde_json::from_slice(&listed.body).unwrap();
    let mut air_dates: Vec<(String, Value)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap().to_string(),
                i["airDate"].clone(),
            )
        })
        .collect();
    air_dates.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        air_dates,
        [
            (
                "The Daily Show - 2011-03-16 - Guest HDTV-720p".into(),
                json!("2011-03-16")
            ),
            (
                "The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP".into(),
                json!("2011-03-15")
            ),
            (
                "The.Daily.Show.S01E03.720p.HDTV.x264-GRP".into(),
                Value::Null
            ),
        ],
        "the peer's releases carry airDate (PROTOCOL.md §2.2)"
    );

    let (_site, node) = indexer(&[("alice", format!("http://{}", peer.addr))], 5000);
    let sonarr = |ids: &str, date: &str| {
        format!(
            "t=tvsearch&cat=5000&extended=1&apikey={KEY}&offset=0&limit=100{ids}&season=2011&ep={date}"
        )
    };
    let tvdb = "&tvdbid=71256";
    let title = "&q=The%20Daily%20Show";
    let cases: &[(String, &[&str])] = &[
        (
            sonarr(tvdb, "03/15"),
            &["The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP"],
        ),
        (
            sonarr(title, "03/15"),
            &["The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP"],
        ),
        (
            sonarr(tvdb, "03%2F15"),
            &["The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP"],
        ),
        (
            sonarr(tvdb, "03/16"),
            &["The Daily Show - 2011-03-16 - Guest HDTV-720p"],
        ),
        (
            sonarr(title, "03/16"),
            &["The Daily Show - 2011-03-16 - Guest HDTV-720p"],
        ),
        (sonarr(tvdb, "03/17"), &[]),
        (sonarr(title, "03/17"), &[]),
        (sonarr("&tvdbid=1", "03/15"), &[]),
    ];
    for (query, want) in cases {
        let found = items(&api(&node, query));
        assert_eq!(titles(&found), *want, "{query}");
        for item in &found {
            assert_eq!(item.attr("tvdbid"), Some("71256"));
        }
    }
    // The regular episode is still found the regular way.
    assert_eq!(
        titles(&items(&api(&node, "t=tvsearch&tvdbid=71256&season=1&ep=3"))),
        ["The.Daily.Show.S01E03.720p.HDTV.x264-GRP"]
    );
}

/// PROTOCOL.md §2.2/§4: `pubDate` is when the peer first offered the
/// file, not its modification time. A file copied in with a timestamp ten
/// years old (`cp -p`, `rsync -a`) is the newest release of the feed, so
/// RSS sync sees it; its date holds across rescans and a restart of the
/// peer; a file replaced by other content (again with an old timestamp)
/// is offered anew and comes first.
#[test]
fn pub_date_is_when_the_peer_first_offered_the_file() {
    let port = support::free_port();
    let peer_site = Site::new(
        "library_rescan_secs = 1\n[[library]]\nname = \"movies\"\npath = \"media/movies\"\ncategory = \"movies\"\n",
    );
    let config = std::fs::read_to_string(peer_site.config()).unwrap();
    let config = config.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(peer_site.config(), config).unwrap();
    let movies = peer_site.path().join("media/movies");
    std::fs::create_dir_all(&movies).unwrap();
    let years_ago = std::time::SystemTime::now() - Duration::from_secs(10 * 365 * 86_400);
    let put = |name: &str, bytes: &[u8], modified: Option<std::time::SystemTime>| {
        let path = movies.join(name);
        std::fs::write(&path, bytes).unwrap();
        if let Some(t) = modified {
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(t).unwrap();
        }
    };
    put("Fresh.Movie.2020.1080p.mkv", b"fresh", None);
    let mut peer = peer_site.start();
    peer.wait_log("catalogue scanned", Duration::from_secs(10));
    let (_site, node) = indexer(&[("alice", format!("http://127.0.0.1:{port}"))], 5000);
    let feed = || -> Vec<(String, std::time::SystemTime)> {
        items(&api(
            &node,
            &format!("t=movie&cat=2000&extended=1&apikey={KEY}&offset=0&limit=100"),
        ))
        .into_iter()
        .map(|i| (i.title, httpdate::parse_http_date(&i.pub_date).unwrap()))
        .collect()
    };
    let scans = |peer: &Node| peer.log_text().matches("catalogue scanned").count();
    let rescanned = |peer: &Node| {
        let before = scans(peer);
        wait_for("a rescan", Duration::from_secs(10), || scans(peer) > before);
    };
    // pubDate shows whole seconds: the copy comes a second later.
    std::thread::sleep(Duration::from_millis(1100));
    put("Old.Copy.2001.720p.mkv", b"an old copy", Some(years_ago));
    wait_for("the copy offered", Duration::from_secs(10), || {
        feed().len() == 2
    });
    let first = feed();
    let names: Vec<&str> = first.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        ["Old.Copy.2001.720p", "Fresh.Movie.2020.1080p"],
        "newest offer first"
    );
    let age = std::time::SystemTime::now()
        .duration_since(first[0].1)
        .unwrap();
    assert!(
        age < Duration::from_secs(60),
        "pubDate {:?} is not the mtime",
        first[0].1
    );
    assert!(first[0].1 > first[1].1);

    rescanned(&peer);
    assert_eq!(feed(), first, "the same after a rescan");
    peer.signal("TERM");
    assert!(peer.wait_exit(Duration::from_secs(10)).is_some());
    let peer = peer_site.start();
    peer.wait_log("catalogue scanned", Duration::from_secs(10));
    assert_eq!(feed(), first, "the same after a restart");

    std::thread::sleep(Duration::from_millis(1100));
    put(
        "Fresh.Movie.2020.1080p.mkv",
        b"a re-encode, bigger",
        Some(years_ago),
    );
    rescanned(&peer);
    rescanned(&peer);
    let replaced = feed();
    let names: Vec<&str> = replaced.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        ["Fresh.Movie.2020.1080p", "Old.Copy.2001.720p"],
        "offered anew"
    );
    assert!(replaced[0].1 > first[0].1, "{replaced:?}");
    assert_eq!(replaced[1], first[0]);
}

/// `GET` of a feed link against `node` (its path and query, whatever host
/// the link names).
fn fetch_link(node: &Node, link: &str) -> Resp {
    let path = link.strip_prefix(PUBLIC).unwrap();
    get(node.addr, path)
}

#[test]
fn download_links_serve_the_current_stub() {
    let (serving, peer) = serving_site("", &[("Heat.1995.720p.WEB-DL.mkv", &[7; 1000])]);
    let (_site, node) = indexer(
        &[
            ("alice", format!("http://{}", peer.addr)),
            ("dead", refused_url()),
        ],
        1000,
    );
    let found = items(&api(&node, "t=movie&cat=2000"));
    assert_eq!(found.len(), 1);
    let id = support::item_id(peer.addr, "Heat.1995.720p.WEB-DL.mkv");
    assert_eq!(found[0].guid, format!("alice:{id}"));

    let resp = fetch_link(&node, &found[0].link);
    assert_eq!(resp.status, 200, "{}", node.log_text());
    assert_eq!(
        resp.header("Content-Type").as_deref(),
        Some("application/x-bittorrent")
    );
    let stub = jack::stub::parse(&resp.body, u64::MAX).unwrap();
    assert_eq!(
        (
            stub.peer.as_str(),
            stub.item_id.as_str(),
            stub.title.as_str(),
            stub.length
        ),
        ("alice", id.as_str(), "Heat.1995.720p.WEB-DL", 1000)
    );
    assert_eq!(
        resp.body,
        jack::stub::build("alice", &id, "Heat.1995.720p.WEB-DL", 1000)
    );

    // The stub names the file as it is now, not as the last scan saw it.
    let file = serving
        .path()
        .join("media/movies/Heat.1995.720p.WEB-DL.mkv");
    std::fs::write(&file, [8; 2500]).unwrap();
    let again = jack::stub::parse(&fetch_link(&node, &found[0].link).body, u64::MAX).unwrap();
    assert_eq!(again.length, 2500);
    assert_ne!(again.info_hash, stub.info_hash);

    let enc = |s: &str| support::enc(s);
    let status = |path: String| get(node.addr, &path).status;
    let with_key = |target: &str| format!("/torznab/download/{}.torrent?apikey={KEY}", enc(target));
    assert_eq!(status(with_key("nobody:x")), 404, "unknown peer");
    assert_eq!(
        status(with_key("alice:movies:movie:0000000000000000")),
        404,
        "gone item"
    );
    assert_eq!(status(with_key("dead:x")), 503, "unreachable peer");
    assert_eq!(status(with_key("alice")), 404, "no item id");
    assert_eq!(
        status(format!(
            "/torznab/download/{}.torrent",
            enc(&format!("alice:{id}"))
        )),
        401
    );
    let wrong = format!(
        "/torznab/download/{}.torrent?apikey=nope",
        enc(&format!("alice:{id}"))
    );
    let refused = get(node.addr, &wrong);
    assert_eq!(refused.status, 401);
    assert!(!refused.body.starts_with(b"d7:comment"));
    assert_eq!(status(format!("/torznab/elsewhere?apikey={KEY}")), 404);
    let post = support::request(node.addr, "POST", &with_key(&format!("alice:{id}")), &[]);
    assert_eq!(post.status, 405);
    let log = node.log_text();
    assert!(log.contains("torznab no stub peer=dead item=x"), "{log}");
    assert!(!log.contains(KEY), "a key in the log:\n{log}");
}
