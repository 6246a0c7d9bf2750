//! The qBittorrent-compatible download client (`PROTOCOL.md` §5): what
//! Radarr and Sonarr call under `/api/v2/`, answered as qBittorrent 4.6.4
//! (WebAPI 2.9.2) would.
//!
//! Owns the routes, the login (`sessions`; or qBittorrent 5.2's API key,
//! `Authorization: Bearer`, which is the node's owner key here, checked by
//! the gate), reading parameters (`form`),
//! and turning registry rows into answers (`qbit_view`). An add is recorded
//! in the registry and answered `Ok.` at once; the `qbit-add` thread
//! (`qbit_add`) makes it a download. A delete goes through
//! `Downloads::remove`. Holds no download state of its own (the registry
//! does) and never touches SQL; never logs a password or a session id.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::ser::{SerializeSeq, Serializer};
use tiny_http::{Method, Request};

use crate::arr::qbit_add::{Adder, own_bases, parse_link};
use crate::arr::qbit_view::{self, Facts, Speedometer, Torrent};
use crate::clock::Clock;
use crate::config::{Config, Peers, Secret};
use crate::db::{ClientRow, Grab, NewGrab, Registry, TagEdit};
use crate::download::downloads::Downloads;
use crate::error::Result;
use crate::http::form::{self, Form, FormError, MAX_BODY};
use crate::http::gate::{Client, Gate, Verdict, bearer_key, constant_time_eq, cross_site};
use crate::http::request::{header, split_url};
use crate::http::server::{Handler, Reply};
use crate::http::sessions::{Sessions, sid_in_cookie};
use crate::metrics::AuthRoute;
use crate::stub;

/// The qBittorrent version jack answers as.
pub const APP_VERSION: &str = "v4.6.4";
/// The WebAPI version of qBittorrent 4.6.4.
pub const WEBAPI_VERSION: &str = "2.9.2";

/// Endpoints that change nothing in jack and answer `Ok.`.
const NO_OPS: [&str; 4] = [
    "torrents/setShareLimits",
    "torrents/topPrio",
    "torrents/setForceStart",
    "torrents/bottomPrio",
];

/// What the torrents of one answer are made of.
struct Sources {
    rows: Vec<ClientRow>,
    grabs: Vec<Grab>,
    running: HashMap<i64, crate::download::downloads::Progress>,
    rates: HashMap<i64, u64>,
    /// Unix seconds.
    now: u64,
}

impl Sources {
    fn facts<'a>(&self, save_path: &'a str) -> Facts<'a> {
        Facts {
            save_path,
            now: self.now,
        }
    }
}

/// The handler of `/api/v2/`.
pub struct Qbit {
    username: String,
    password: Secret,
    /// `server.api_key`, also taken as the API key (`Authorization: Bearer`).
    owner_key: Secret,
    sessions: Sessions,
    downloads: Arc<Downloads>,
    speeds: Mutex<Speedometer>,
    wake: Sender<()>,
    /// This node's own URLs (links in `urls` must start with one).
    bases: Vec<String>,
    save_path: PathBuf,
    peers: Peers,
    max_file_size: u64,
    max_active: usize,
    /// `[qbittorrent] remove_after_import`.
    remove_after_import: bool,
    clock: Arc<dyn Clock>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for Qbit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qbit")
            .field("username", &self.username)
            .finish()
    }
}

/// The API and its `qbit-add` thread.
pub struct QbitApi {
    handler: Arc<Qbit>,
    adder: Adder,
}

impl QbitApi {
    /// Starts the API when `[qbittorrent]` is configured (`None` without:
    /// nothing is served under `/api/v2`). `listen` is the address the
    /// node is bound to (links to it are this node's too).
    pub fn start(
        config: &Config,
        listen: std::net::SocketAddr,
        downloads: Arc<Downloads>,
        clock: Arc<dyn Clock>,
        gate: Arc<Gate>,
    ) -> Result<Option<QbitApi>> {
        let Some(q) = &config.qbittorrent else {
            return Ok(None);
        };
        let d = &config.downloads;
        let adder = Adder::start(
            downloads.clone(),
            config.peers.clone(),
            d.max_file_size,
            d.idle_timeout,
            clock.clone(),
        )?;
        let handler = Arc::new(Qbit {
            username: q.username.clone(),
            password: q.password.clone(),
            owner_key: config.server.api_key.clone(),
            sessions: Sessions::new(clock.clone()),
            downloads,
            speeds: Mutex::new(Speedometer::default()),
            wake: adder.waker(),
            bases: own_bases(&config.server.public_url, listen),
            save_path: d.completed_dir.clone(),
            peers: config.peers.clone(),
            max_file_size: d.max_file_size,
            max_active: d.max_concurrent_downloads,
            remove_after_import: q.remove_after_import,
            clock,
            gate,
        });
        Ok(Some(QbitApi { handler, adder }))
    }

    pub fn handler(&self) -> Arc<dyn Handler> {
        self.handler.clone()
    }

    /// Stops the `qbit-add` thread (at most `limit`).
    pub fn stop(self, limit: Duration) {
        self.adder.stop(limit);
    }
}

/// A `text/plain` answer, as qBittorrent gives them.
fn text(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=UTF-8".into())],
        body: crate::http::server::Body::Bytes(body.as_bytes().to_vec()),
    }
}

/// An address over its guess budget.
fn too_many(wait: u64) -> Reply {
    text(429, "Too many failed login attempts").with_header("Retry-After", &wait.to_string())
}

fn ok() -> Reply {
    text(200, "Ok.")
}

fn json(value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: crate::http::server::Body::Bytes(body),
        },
        Err(e) => internal(&e.to_string()),
    }
}

fn internal(error: &str) -> Reply {
    log::error!("qbittorrent api error={error}");
    text(500, "Internal error")
}

/// Answers `reply` and closes the connection without reading what is left
/// of the request body (a refused body is not drained).
fn closing(req: &Request, reply: Reply) -> Reply {
    if let Some(sock) = req.raw_socket() {
        let _ = sock.shutdown(Shutdown::Read);
    }
    reply.with_header("Connection", "close")
}

/// `reply` to a request refused before its body was read: the connection
/// closed when body bytes are left unread.
fn refuse(req: &Request, reply: Reply) -> Reply {
    if has_large_body(req) {
        closing(req, reply)
    } else {
        reply
    }
}

/// Whether a request still has body bytes unread (tiny_http reads bodies
/// of up to 1024 bytes before the handler runs).
fn has_large_body(req: &Request) -> bool {
    header(req, "Transfer-Encoding").is_some() || req.body_length().is_some_and(|n| n > 1024)
}

/// A category name qBittorrent accepts: not empty, no `/` at either end,
/// no `//`, no control characters.
pub fn valid_category(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && !name.chars().any(char::is_control)
}

impl Handler for Qbit {
    /// A POST's form (`MAX_BODY`); nothing else takes a body.
    fn body_limit(&self, req: &Request) -> u64 {
        if *req.method() == Method::Post {
            MAX_BODY
        } else {
            0
        }
    }

    fn handle(&self, req: &mut Request) -> Reply {
        let (path, query) = split_url(req.url());
        let endpoint = path.strip_prefix("/api/v2/").unwrap_or("").to_string();
        let query = query.to_string();
        let post = match req.method() {
            Method::Post => true,
            Method::Get => false,
            _ => return text(405, "Method Not Allowed").with_header("Allow", "GET, POST"),
        };
        log::debug!(
            "qbittorrent api method={} endpoint={endpoint}",
            req.method()
        );
        // As qBittorrent: a page of another site (or a DNS-rebound name)
        // open in the operator's browser is refused before anything else.
        if cross_site(
            header(req, "Host"),
            header(req, "X-Forwarded-Host"),
            header(req, "Origin"),
            header(req, "Referer"),
        ) {
            log::warn!(
                "qbittorrent api refused a cross-site request endpoint={endpoint} client={}",
                self.gate.client(req)
            );
            return refuse(req, text(401, "Unauthorized"));
        }
        let client = self.gate.client(req);
        let sid = match bearer_key(req) {
            // As qBittorrent 5.2: a request with an API key is that key's
            // session (its cookie is not read), and `auth/` is not for it.
            Some(key) => match self.api_key(client, key) {
                Verdict::Pass(()) if !endpoint.starts_with("auth/") => None,
                Verdict::Busy(wait) => return refuse(req, too_many(wait)),
                _ => return refuse(req, text(403, "Forbidden")),
            },
            None => {
                let sid = header(req, "Cookie")
                    .and_then(sid_in_cookie)
                    .map(str::to_string);
                let open = sid.as_deref().is_some_and(|s| self.sessions.check(s));
                if endpoint != "auth/login" && !open {
                    return refuse(req, text(403, "Forbidden"));
                }
                sid
            }
        };
        let form = match self.read_form(req, &query) {
            Ok(f) => f,
            Err(e) => {
                log::info!(
                    "qbittorrent api refused endpoint={endpoint} reason={}",
                    e.message()
                );
                return closing(req, text(e.status(), e.message()));
            }
        };
        if changes_something(&endpoint) && !post {
            return text(405, "Method Not Allowed").with_header("Allow", "POST");
        }
        match self.route(&endpoint, &form, sid.as_deref(), client) {
            Ok(reply) => reply,
            Err(e) => internal(&e.chain()),
        }
    }
}

/// The request's `tags` (`required`: a `400` without them), or the `400`
/// that refuses them.
fn tags(form: &Form, required: bool) -> std::result::Result<Vec<String>, Reply> {
    match form.get("tags") {
        None if required => Err(text(400, "Missing required parameter: tags")),
        tags => qbit_view::tag_list(tags.unwrap_or("")).map_err(|e| text(400, &e)),
    }
}

/// Endpoints that change state: POST only (a GET could be made by any web
/// page the operator opens).
fn changes_something(endpoint: &str) -> bool {
    matches!(
        endpoint,
        "auth/login"
            | "auth/logout"
            | "torrents/add"
            | "torrents/delete"
            | "torrents/createCategory"
            | "torrents/setCategory"
            | "torrents/pause"
            | "torrents/stop"
            | "torrents/resume"
            | "torrents/start"
            | "torrents/addTags"
            | "torrents/removeTags"
            | "torrents/createTags"
            | "torrents/deleteTags"
    ) || NO_OPS.contains(&endpoint)
}

impl Qbit {
    fn registry(&self) -> &Registry {
        self.downloads.registry()
    }

    /// The request's parameters: its body (POST), then its query.
    fn read_form(&self, req: &mut Request, query: &str) -> Result<Form, FormError> {
        if *req.method() != Method::Post {
            return form::parse(None, b"", query);
        }
        let content_type = header(req, "Content-Type").map(str::to_string);
        let length = req.body_length().map(|n| n as u64);
        let chunked = header(req, "Transfer-Encoding").is_some();
        if length.is_none() && !chunked {
            return form::parse(content_type.as_deref(), b"", query);
        }
        let body = form::read_body(req.as_reader(), length, MAX_BODY)?;
        form::parse(content_type.as_deref(), &body, query)
    }

    fn route(
        &self,
        endpoint: &str,
        form: &Form,
        sid: Option<&str>,
        client: Client,
    ) -> Result<Reply> {
        Ok(match endpoint {
            "auth/login" => self.login(form, client),
            "auth/logout" => {
                if let Some(sid) = sid {
                    self.sessions.close(sid);
                }
                text(200, "")
            }
            "app/version" => text(200, APP_VERSION),
            "app/webapiVersion" => text(200, WEBAPI_VERSION),
            "app/defaultSavePath" => text(200, &self.save_path.display().to_string()),
            "app/preferences" => json(&qbit_view::preferences(
                &self.save_path.display().to_string(),
                self.max_active,
                self.remove_after_import,
            )),
            "torrents/info" => self.info(form)?,
            "torrents/properties" => self.one(form, qbit_view::properties)?,
            "torrents/files" => self.one(form, qbit_view::files)?,
            "torrents/pieceStates" => self.one(form, qbit_view::piece_states)?,
            "torrents/categories" => self.categories()?,
            "torrents/createCategory" => self.create_category(form)?,
            "torrents/setCategory" => self.set_category(form)?,
            "torrents/tags" => json(&self.registry().tags()?),
            "torrents/addTags" | "torrents/removeTags" => self.edit_tags(endpoint, form)?,
            "torrents/createTags" | "torrents/deleteTags" => self.make_tags(endpoint, form)?,
            "torrents/add" => self.add(form)?,
            "torrents/delete" => self.delete(form)?,
            // qBittorrent 5 names them stop and start.
            "torrents/pause" | "torrents/stop" => self.pause(form, true)?,
            "torrents/resume" | "torrents/start" => self.pause(form, false)?,
            e if NO_OPS.contains(&e) => ok(),
            _ => text(404, "Not Found"),
        })
    }

    /// The API key of `Authorization: Bearer` (qBittorrent 5.2's, which
    /// recent Radarr/Sonarr send in place of a login): the node's owner
    /// key, through the gate (a wrong one is charged).
    fn api_key(&self, client: Client, key: &str) -> Verdict<()> {
        self.gate.check(AuthRoute::Qbit, client, Some(key), |key| {
            constant_time_eq(key.as_bytes(), self.owner_key.expose().as_bytes()).then_some(())
        })
    }

    /// `auth/login`: both fields compared in constant time, both always,
    /// through the gate (no password is no guess; a wrong one is charged).
    fn login(&self, form: &Form, client: Client) -> Reply {
        let user = form.get("username").unwrap_or("");
        let verdict = self
            .gate
            .check(AuthRoute::Qbit, client, form.get("password"), |pass| {
                let user_ok = constant_time_eq(user.as_bytes(), self.username.as_bytes());
                let pass_ok = constant_time_eq(pass.as_bytes(), self.password.expose().as_bytes());
                (user_ok & pass_ok).then_some(())
            });
        match verdict {
            Verdict::Pass(()) => {}
            Verdict::Busy(wait) => return too_many(wait),
            Verdict::Missing | Verdict::Wrong => return text(200, "Fails."),
        }
        match self.sessions.open() {
            Ok(sid) => ok().with_header(
                "Set-Cookie",
                &format!("SID={sid}; HttpOnly; SameSite=Strict; path=/"),
            ),
            Err(e) => internal(&format!("cannot make a session id: {e}")),
        }
    }

    /// What torrents are made of: rows (of `hash` and `category` only, when
    /// given), adds, live bytes and speeds sampled now, and the time.
    fn sources(&self, hash: Option<&str>, category: Option<&str>) -> Result<Sources> {
        let (rows, grabs) = self.registry().client_view(hash, category)?;
        let running = self.downloads.running();
        let rates = self.speeds.lock().update(self.clock.now(), &running);
        let now = self
            .clock
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Sources {
            rows,
            grabs,
            running,
            rates,
            now,
        })
    }

    /// `torrents/info?category=&tag=&hashes=a|b`. Made one torrent at a time
    /// into an in-memory file (`memfd`), sent with `sendfile`: a registry
    /// of 10,000 downloads never holds its ~10 MiB of JSON on the heap.
    fn info(&self, form: &Form) -> Result<Reply> {
        let category = form.get("category");
        let tag = form.get("tag");
        let hashes = qbit_view::hash_list(form.get("hashes"));
        let src = self.sources(None, category)?;
        let save_path = self.save_path.display().to_string();
        let facts = src.facts(&save_path);
        let fail = |e: std::io::Error| crate::error::Error::io("cannot write torrents/info", e);
        let file = File::from(
            rustix::fs::memfd_create("jack-torrents-info", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| fail(e.into()))?,
        );
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &file);
        let mut json = serde_json::Serializer::new(&mut out);
        let written = (|| {
            let mut seq = json.serialize_seq(None)?;
            for pick in qbit_view::picks(&src.rows, &src.grabs) {
                let t = qbit_view::torrent(
                    pick,
                    &src.rows,
                    &src.grabs,
                    &src.running,
                    &src.rates,
                    facts,
                );
                if qbit_view::selected(&t, category, tag, hashes.as_deref()) {
                    seq.serialize_element(&t)?;
                }
            }
            seq.end()
        })();
        written.map_err(|e| fail(e.into()))?;
        out.flush().map_err(fail)?;
        drop(out);
        let len = file.metadata().map_err(fail)?.len();
        Ok(Reply::document(200, file, len).with_header("Content-Type", "application/json"))
    }

    /// `properties`, `files` or `pieceStates` of `?hash=`; 404 when unknown.
    fn one(&self, form: &Form, show: fn(&Torrent<'_>) -> serde_json::Value) -> Result<Reply> {
        let Some(hash) = form.get("hash").map(str::to_ascii_lowercase) else {
            return Ok(text(400, "Missing hash"));
        };
        let src = self.sources(Some(&hash), None)?;
        let save_path = self.save_path.display().to_string();
        let all = qbit_view::torrents(
            &src.rows,
            &src.grabs,
            &src.running,
            &src.rates,
            src.facts(&save_path),
        );
        Ok(match all.iter().find(|t| t.hash == hash) {
            Some(t) => json(&show(t)),
            None => text(404, "Not Found"),
        })
    }

    fn categories(&self) -> Result<Reply> {
        let mut map = serde_json::Map::new();
        for (name, save_path) in self.registry().categories()? {
            let value = serde_json::json!({"name": name, "savePath": save_path});
            map.insert(name, value);
        }
        Ok(json(&map))
    }

    fn create_category(&self, form: &Form) -> Result<Reply> {
        let name = form.get("category").unwrap_or("").trim();
        if name.is_empty() {
            return Ok(text(400, "Category cannot be empty"));
        }
        if !valid_category(name) {
            return Ok(text(409, "Incorrect category name"));
        }
        let save_path = form.get("savePath").unwrap_or("");
        Ok(if self.registry().create_category(name, save_path)? {
            text(200, "")
        } else {
            text(409, "Unable to create category")
        })
    }

    fn set_category(&self, form: &Form) -> Result<Reply> {
        let (Some(hashes), Some(category)) = (form.get("hashes"), form.get("category")) else {
            return Ok(text(400, "Missing hashes or category"));
        };
        let category = category.trim();
        let known = self.registry().categories()?;
        if !category.is_empty() && !known.iter().any(|(n, _)| n == category) {
            return Ok(text(409, "Incorrect category name"));
        }
        let hashes = qbit_view::hash_list(Some(hashes));
        self.registry().set_category(hashes.as_deref(), category)?;
        Ok(text(200, ""))
    }

    /// `torrents/addTags` (`hashes`, `tags`: the tags made if new) and
    /// `torrents/removeTags` (`hashes`, and `tags`: every tag when absent
    /// or empty), as qBittorrent 4.6.
    fn edit_tags(&self, endpoint: &str, form: &Form) -> Result<Reply> {
        let Some(hashes) = form.get("hashes") else {
            return Ok(text(400, "Missing required parameter: hashes"));
        };
        let adding = endpoint == "torrents/addTags";
        let tags = match tags(form, adding) {
            Ok(tags) => tags,
            Err(refused) => return Ok(refused),
        };
        let edit = match (adding, tags.is_empty()) {
            (true, _) => TagEdit::Add(&tags),
            (false, false) => TagEdit::Remove(&tags),
            (false, true) => TagEdit::Clear,
        };
        let hashes = qbit_view::hash_list(Some(hashes));
        self.registry().edit_tags(hashes.as_deref(), edit)?;
        Ok(text(200, ""))
    }

    /// `torrents/createTags` and `torrents/deleteTags` (`tags`).
    fn make_tags(&self, endpoint: &str, form: &Form) -> Result<Reply> {
        let tags = match tags(form, true) {
            Ok(tags) => tags,
            Err(refused) => return Ok(refused),
        };
        if endpoint == "torrents/createTags" {
            self.registry().create_tags(&tags)?;
        } else {
            self.registry().delete_tags(&tags)?;
        }
        Ok(text(200, ""))
    }

    /// `torrents/add`: stubs (any uploaded file, as qBittorrent takes
    /// them; *arr names the part `torrents`) and links to this node's
    /// `/torznab/download/`. Everything is checked before anything is
    /// recorded; anything that is not a jack stub or such a link is `415`.
    fn add(&self, form: &Form) -> Result<Reply> {
        let category = form.get("category").unwrap_or("").trim();
        if !category.is_empty() && !valid_category(category) {
            return Ok(text(400, "Incorrect category name"));
        }
        let tags = match tags(form, false) {
            Ok(tags) => tags,
            Err(refused) => return Ok(refused),
        };
        let mut grabs = Vec::new();
        for (_, filename, bytes) in &form.files {
            let s = match stub::parse(bytes, self.max_file_size) {
                Ok(s) => s,
                Err(e) => {
                    let msg = format!("{filename:?} is not a jack stub: {e}");
                    return Ok(text(415, &msg));
                }
            };
            grabs.push(NewGrab {
                stub_name: format!("api/{}", filename.replace('/', "_")),
                stub: Some((bytes.clone(), s.info_hash)),
                title: s.title,
                size: s.length,
                peer: s.peer,
                item_id: s.item_id,
            });
        }
        let urls = form.get("urls").unwrap_or("");
        for url in urls.split('\n').map(str::trim).filter(|u| !u.is_empty()) {
            let shown = url.split('?').next().unwrap_or(""); // the query may hold a key
            let Some((peer, item_id)) = parse_link(url, &self.bases) else {
                let msg = format!("{shown:?} is not a /torznab/download/ link of this node");
                return Ok(text(415, &msg));
            };
            if self.peers.get(&peer).is_none() {
                let msg = format!("{shown:?} names an unknown peer {peer:?}");
                return Ok(text(415, &msg));
            }
            grabs.push(NewGrab {
                stub_name: format!("api/{peer}:{item_id}.torrent"),
                stub: None,
                title: String::new(),
                size: 0,
                peer,
                item_id,
            });
        }
        if grabs.is_empty() {
            return Ok(text(400, "No torrents or urls"));
        }
        // qBittorrent 4 says `paused`, 5 says `stopped`.
        let paused = ["paused", "stopped"].iter().any(|k| {
            form.get(k)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        });
        let ids = self
            .registry()
            .insert_grabs(&grabs, category, &tags, paused)?;
        log::info!(
            "qbittorrent api add recorded grabs={ids:?} category={category:?} tags={tags:?} paused={paused}"
        );
        let _ = self.wake.try_send(());
        Ok(ok())
    }

    /// `torrents/pause|stop` (`pause`) and `torrents/resume|start`
    /// (`hashes=a|b|all`): each download of those releases is paused (it
    /// lets its worker go, keeps its bytes) or resumed where it stopped;
    /// an add not yet made a download becomes one paused or not.
    fn pause(&self, form: &Form, pause: bool) -> Result<Reply> {
        let Some(hashes) = form.get("hashes") else {
            return Ok(text(400, "Missing hashes"));
        };
        let hashes = qbit_view::hash_list(Some(hashes));
        let chosen = |h: &str| hashes.as_ref().is_none_or(|l| l.iter().any(|x| x == h));
        match &hashes {
            None => drop(self.registry().pause_grabs(None, pause)?),
            Some(list) => {
                for hash in list {
                    self.registry().pause_grabs(Some(hash), pause)?;
                }
            }
        }
        for row in self.registry().client_view(None, None)?.0 {
            if !chosen(&row.info_hash) {
                continue;
            }
            let done = if pause {
                self.downloads.pause(row.id)?
            } else {
                self.downloads.resume(row.id)?.is_some()
            };
            let what = if pause { "pause" } else { "resume" };
            log::info!("qbittorrent api {what} id={} done={done}", row.id);
        }
        Ok(text(200, ""))
    }

    /// `torrents/delete?hashes=a|b|all&deleteFiles=`: every download of
    /// those releases (and adds not yet made downloads) goes; see
    /// `Downloads::remove` for what happens to files.
    fn delete(&self, form: &Form) -> Result<Reply> {
        let Some(hashes) = form.get("hashes") else {
            return Ok(text(400, "Missing hashes"));
        };
        let hashes = qbit_view::hash_list(Some(hashes));
        let chosen = |h: &str| hashes.as_ref().is_none_or(|l| l.iter().any(|x| x == h));
        let delete_files = form
            .get("deleteFiles")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (rows, grabs) = self.registry().client_view(None, None)?;
        for g in grabs {
            let all = hashes.is_none();
            if all || g.info_hash.as_deref().is_some_and(chosen) {
                self.registry().delete_grab(g.id)?;
            }
        }
        for row in rows {
            if chosen(&row.info_hash) {
                let now = self.downloads.remove(row.id, delete_files)?;
                log::info!(
                    "qbittorrent api delete id={} delete_files={delete_files} done_now={now}",
                    row.id
                );
            }
        }
        Ok(text(200, ""))
    }
}
