//! A fake Radarr/Sonarr: a real HTTP server on 127.0.0.1 answering the
//! v3 API calls jack makes (movie, series, episodefile, episode,
//! rootfolder, command, indexer and downloadclient with their schemas),
//! recording every request, with switches to fail or stall. Like Radarr v5
//! and Sonarr v4, it shows keys and passwords as `********`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub const ARR_KEY: &str = "arr-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Radarr,
    Sonarr,
}

/// How the next requests are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    /// Every request gets this status.
    Fail(u16),
    /// The next `n` requests get this status, then `Normal`.
    FailNext(usize, u16),
    /// Every request waits this long, then the connection closes unanswered.
    Stall(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub key: Option<String>,
    pub body: Option<Value>,
}

#[derive(Default)]
struct Data {
    movies: Vec<Value>,
    series: Vec<Value>,
    episode_files: HashMap<u64, Vec<Value>>,
    episodes: HashMap<u64, Vec<Value>>,
    root_folders: Vec<String>,
    indexers: Vec<Value>,
    download_clients: Vec<Value>,
    next_id: i64,
}

struct State {
    kind: Kind,
    data: Mutex<Data>,
    requests: Mutex<Vec<Req>>,
    behaviour: Mutex<Behaviour>,
}

pub struct FakeArr {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl FakeArr {
    pub fn start(kind: Kind) -> FakeArr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            kind,
            data: Mutex::new(Data {
                next_id: 1,
                ..Data::default()
            }),
            requests: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour::Normal),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stopping) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        FakeArr { addr, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a movie; `file` is where Radarr says its file is (`None`: no file).
    pub fn add_movie(
        &self,
        id: u64,
        title: &str,
        year: u32,
        tmdb: u64,
        imdb: &str,
        file: Option<&Path>,
    ) {
        let mut movie = json!({
            "id": id, "title": title, "year": year, "tmdbId": tmdb, "imdbId": imdb,
            "hasFile": file.is_some(), "monitored": true,
            "images": [{"coverType": "poster", "url": "/x.jpg"}],
            "ratings": {"imdb": {"votes": 1, "value": 8.7}},
        });
        if let Some(path) = file {
            movie["path"] = json!(path.parent().unwrap());
            movie["movieFile"] = json!({
                "id": 1000 + id, "movieId": id,
                "relativePath": path.file_name().unwrap().to_str(),
                "path": path, "size": 1, "dateAdded": "2026-01-02T03:04:05Z",
                "releaseGroup": "GRP",
                "quality": {"quality": {"id": 7, "name": "Bluray-1080p", "source": "bluray",
                                        "resolution": 1080, "modifier": "none"},
                            "revision": {"version": 1, "real": 0, "isRepack": false}},
                "languages": [{"id": 1, "name": "English"}],
            });
        }
        self.state.data.lock().unwrap().movies.push(movie);
    }

    /// Adds a series and its episode files: `(file id, season, episodes, path)`.
    pub fn add_series(&self, id: u64, title: &str, tvdb: u64, files: &[(u64, u32, &[u32], &Path)]) {
        let mut data = self.state.data.lock().unwrap();
        data.series.push(json!({
            "id": id, "title": title, "year": 2008, "tvdbId": tvdb, "imdbId": "tt0903747",
            "path": "/not/used", "statistics": {"episodeFileCount": files.len()},
        }));
        let mut eps = Vec::new();
        let mut efs = Vec::new();
        for (file_id, season, numbers, path) in files {
            efs.push(json!({
                "id": file_id, "seriesId": id, "seasonNumber": season, "path": path,
                "relativePath": path.file_name().unwrap().to_str(), "size": 1,
                "quality": {"quality": {"id": 3, "name": "WEBDL-1080p", "source": "web", "resolution": 1080}},
            }));
            for n in *numbers {
                eps.push(json!({
                    "id": file_id * 100 + u64::from(*n), "seriesId": id, "episodeFileId": file_id,
                    "seasonNumber": season, "episodeNumber": n, "hasFile": true, "title": "x",
                }));
            }
        }
        eps.push(
            json!({"id": 1, "seriesId": id, "episodeFileId": 0, "seasonNumber": 9,
                        "episodeNumber": 1, "hasFile": false}),
        );
        data.episode_files.insert(id, efs);
        data.episodes.insert(id, eps);
    }

    pub fn set_root_folders(&self, paths: &[&Path]) {
        self.state.data.lock().unwrap().root_folders = paths
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
    }

    pub fn behave(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    pub fn requests(&self) -> Vec<Req> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests whose method is `method` and whose path (without query)
    /// is `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.split('?').next() == Some(path))
            .count()
    }

    /// Requests that change something (POST, PUT, DELETE).
    pub fn writes(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// The stored (unmasked) resources of `indexer` or `downloadclient`.
    pub fn stored(&self, resource: &str) -> Vec<Value> {
        let data = self.state.data.lock().unwrap();
        match resource {
            "indexer" => data.indexers.clone(),
            _ => data.download_clients.clone(),
        }
    }

    /// Runs `edit` on every stored entry of `resource`.
    fn edit(&self, resource: &str, edit: impl Fn(&mut Value)) {
        let mut data = self.state.data.lock().unwrap();
        let list = match resource {
            "indexer" => &mut data.indexers,
            _ => &mut data.download_clients,
        };
        list.iter_mut().for_each(edit);
    }

    /// Sets a top-level key of every stored entry of `resource`.
    pub fn edit_top(&self, resource: &str, key: &str, value: Value) {
        self.edit(resource, |r| r[key] = value.clone());
    }

    /// Changes a field of a stored resource, as a person in the UI would.
    pub fn edit_field(&self, resource: &str, name: &str, value: Value) {
        self.edit(resource, |r| {
            for f in r["fields"].as_array_mut().unwrap() {
                if f["name"] == name {
                    f["value"] = value.clone();
                }
            }
        });
    }
}

impl Drop for FakeArr {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// The value of field `name` of a resource.
pub fn field(resource: &Value, name: &str) -> Value {
    resource["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {resource}"))["value"]
        .clone()
}

fn serve(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let (mut length, mut key) = (0usize, None);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("x-api-key") {
                key = Some(v.trim().to_string());
            }
        }
    }
    let mut raw = vec![0u8; length];
    reader.read_exact(&mut raw)?;
    let body = serde_json::from_slice(&raw).ok();
    st.requests.lock().unwrap().push(Req {
        method: method.clone(),
        path: path.clone(),
        key: key.clone(),
        body: body.clone(),
    });
    let mut out = conn;
    let status = {
        let mut b = st.behaviour.lock().unwrap();
        match b.clone() {
            Behaviour::Normal => None,
            Behaviour::Fail(code) => Some(code),
            Behaviour::FailNext(n, code) => {
                *b = if n > 1 {
                    Behaviour::FailNext(n - 1, code)
                } else {
                    Behaviour::Normal
                };
                Some(code)
            }
            Behaviour::Stall(d) => {
                drop(b);
                std::thread::sleep(d);
                return Ok(());
            }
        }
    };
    if let Some(code) = status {
        return reply(&mut out, code, &json!({"message": "failing on purpose"}));
    }
    if key.as_deref() != Some(ARR_KEY) {
        return reply(&mut out, 401, &json!({"message": "Unauthorized"}));
    }
    let (code, answer) = route(st, &method, &path, body);
    reply(&mut out, code, &answer)
}

fn route(st: &State, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let series_id = || -> u64 {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("seriesId="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut data = st.data.lock().unwrap();
    let segments: Vec<&str> = route.trim_start_matches("/api/v3/").split('/').collect();
    match (method, st.kind, segments.as_slice()) {
        ("GET", _, ["rootfolder"]) => (
            200,
            data.root_folders
                .iter()
                .enumerate()
                .map(|(i, p)| json!({"id": i + 1, "path": p, "accessible": true, "freeSpace": 1}))
                .collect(),
        ),
        ("GET", Kind::Radarr, ["movie"]) => (200, Value::Array(data.movies.clone())),
        ("GET", Kind::Sonarr, ["series"]) => (200, Value::Array(data.series.clone())),
        ("GET", Kind::Sonarr, ["episodefile"]) => {
            let id = series_id();
            (
                200,
                Value::Array(data.episode_files.get(&id).cloned().unwrap_or_default()),
            )
        }
        ("GET", Kind::Sonarr, ["episode"]) => {
            let id = series_id();
            (
                200,
                Value::Array(data.episodes.get(&id).cloned().unwrap_or_default()),
            )
        }
        ("POST", _, ["command"]) => {
            let name = body.as_ref().map_or(Value::Null, |b| b["name"].clone());
            (201, json!({"id": 1, "name": name, "status": "queued"}))
        }
        ("GET", kind, [resource, "schema"]) => (200, schema(kind, resource)),
        ("GET", _, [resource]) if is_provider(resource) => {
            let list = provider_list(&mut data, resource);
            (200, Value::Array(list.iter().map(masked).collect()))
        }
        ("POST", _, [resource]) if is_provider(resource) => {
            let Some(mut new) = body else {
                return (400, json!({"message": "no body"}));
            };
            let id = data.next_id;
            data.next_id += 1;
            new["id"] = json!(id);
            provider_list(&mut data, resource).push(new.clone());
            (201, masked(&new))
        }
        ("PUT", _, [resource, id]) if is_provider(resource) => {
            let Some(mut new) = body else {
                return (400, json!({"message": "no body"}));
            };
            let id: i64 = id.parse().unwrap_or(-1);
            let list = provider_list(&mut data, resource);
            let Some(old) = list.iter_mut().find(|r| r["id"] == id) else {
                return (404, json!({"message": "not found"}));
            };
            new["id"] = json!(id);
            // A masked secret sent back keeps the stored one, as the *arrs do.
            for f in new["fields"].as_array_mut().into_iter().flatten() {
                if f["value"] == "********" {
                    f["value"] = field(old, f["name"].as_str().unwrap());
                }
            }
            *old = new.clone();
            (202, masked(&new))
        }
        _ => (404, json!({"message": "NotFound"})),
    }
}

fn is_provider(resource: &str) -> bool {
    resource == "indexer" || resource == "downloadclient"
}

fn provider_list<'d>(data: &'d mut Data, resource: &str) -> &'d mut Vec<Value> {
    match resource {
        "indexer" => &mut data.indexers,
        _ => &mut data.download_clients,
    }
}

fn masked(resource: &Value) -> Value {
    let mut r = resource.clone();
    for f in r["fields"].as_array_mut().into_iter().flatten() {
        let secret = f["name"] == "apiKey" || f["name"] == "password";
        if secret && f["value"].as_str().is_some_and(|v| !v.is_empty()) {
            f["value"] = json!("********");
        }
    }
    r
}

fn f(name: &str, value: Value) -> Value {
    json!({"order": 0, "name": name, "label": name, "value": value, "type": "textbox", "advanced": false})
}

/// The templates of `GET /api/v3/{indexer,downloadclient}/schema`, cut
/// down to two implementations each, with the *arr's defaults.
fn schema(kind: Kind, resource: &str) -> Value {
    let movies = kind == Kind::Radarr;
    let cats = if movies {
        json!([2000, 2010, 2020])
    } else {
        json!([5030, 5040])
    };
    let provider = |implementation: &str, contract: &str, protocol: &str, fields: Vec<Value>| {
        let mut t = json!({
            "id": 0, "name": "", "implementation": implementation,
            "implementationName": implementation, "configContract": contract,
            "infoLink": "https://wiki.servarr.com", "tags": [], "presets": [],
            "protocol": protocol, "priority": 25, "fields": fields,
        });
        if resource == "indexer" {
            t["enableRss"] = json!(true);
            t["enableAutomaticSearch"] = json!(true);
            t["enableInteractiveSearch"] = json!(true);
            t["supportsRss"] = json!(true);
            t["supportsSearch"] = json!(true);
            t["downloadClientId"] = json!(0);
        } else {
            t["enable"] = json!(true);
            t["priority"] = json!(1);
            t["removeCompletedDownloads"] = json!(true);
            t["removeFailedDownloads"] = json!(true);
        }
        t
    };
    let newznab = || {
        vec![
            f("baseUrl", Value::Null),
            f("apiPath", json!("/api")),
            f("apiKey", Value::Null),
            f("categories", cats.clone()),
            f("additionalParameters", Value::Null),
        ]
    };
    if resource == "indexer" {
        let mut torznab = newznab();
        torznab.push(f("minimumSeeders", json!(1)));
        torznab.push(f("seedCriteria.seedRatio", Value::Null));
        return json!([
            provider("Newznab", "NewznabSettings", "usenet", newznab()),
            provider("Torznab", "TorznabSettings", "torrent", torznab),
        ]);
    }
    let category = if movies {
        "movieCategory"
    } else {
        "tvCategory"
    };
    let default_category = if movies { "radarr" } else { "tv-sonarr" };
    // Sonarr (since 2026) can log in to qBittorrent 5.2 with an API key;
    // this Radarr cannot.
    let key_login = (!movies).then(|| f("apiKey", Value::Null));
    let mut list = json!([
        provider(
            "Transmission",
            "TransmissionSettings",
            "torrent",
            vec![f("host", json!("localhost"))]
        ),
        provider(
            "QBittorrent",
            "QBittorrentSettings",
            "torrent",
            vec![
                f("host", json!("localhost")),
                f("port", json!(8080)),
                f("useSsl", json!(false)),
                f("urlBase", Value::Null),
                f("username", Value::Null),
                f("password", Value::Null),
                f(category, json!(default_category)),
                f("recentPriority", json!(0)),
                f("initialState", json!(0)),
            ]
        ),
    ]);
    if let Some(field) = key_login {
        list[1]["fields"].as_array_mut().unwrap().push(field);
    }
    list
}

fn reply(out: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let text = body.to_string();
    write!(
        out,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}
