//! The owner's status API and `/metrics`, on the peers' listener.
//!
//! `GET /api/v1/downloads` (the [`crate::owner::status::Report`] `jack status`
//! prints, with live bytes and speeds), `GET /api/v1/downloads/{id}` (one
//! download and its events), `POST .../{id}/retry`, `POST .../{id}/cancel`,
//! `DELETE .../{id}` (`Downloads::remove`: only jack's own files; with
//! `?delete_files=false` none), `GET /api/v1/limits` and `POST
//! /api/v1/limits?...` (the speed limits: [`crate::limits::Limits`]; a
//! change lasts until a restart or `SIGHUP`), and `GET /metrics`
//! (Prometheus text).
//! **Owner key only**: every key is resolved to a [`Caller`] first and only
//! [`Caller::Owner`] passes [`authorized`]; a friend's key is a
//! [`Caller::Peer`] and gets the same 401 as a wrong key or none.
//! Must not: hold SQL (it asks `db` through `Downloads`), log or label a key.

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tiny_http::{Method, Request};

use crate::arr::qbit_view::Speedometer;
use crate::config::Secret;
use crate::db::Status;
use crate::download::downloads::Downloads;
use crate::http::gate::{Gate, Verdict, constant_time_eq};
use crate::http::request::{not_found, query_pairs, split_url};
use crate::http::server::{Body, Handler, Reply};
use crate::limits::{Change, Limits};
use crate::metrics::{self, AuthRoute, ConnectionCounts, Gauges, METRICS};
use crate::serve::api::KeyRing;

/// Who a request's key says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// `server.api_key`.
    Owner,
    /// A friend's key (per-peer keys): never allowed here.
    Peer(String),
    /// A wrong key, or none.
    Nobody,
}

/// The one rule of this API: the owner, nobody else.
pub fn authorized(caller: &Caller) -> bool {
    matches!(caller, Caller::Owner)
}

/// Reads the server's connection counts (`HttpServer::connection_counter`),
/// set once the server runs.
pub type Connections = Box<dyn Fn() -> ConnectionCounts + Send + Sync>;

pub struct StatusApi {
    owner: Secret,
    /// Every key, so a friend's can be told apart from the owner's (and
    /// refused, by name in the log).
    keys: Arc<KeyRing>,
    downloads: Arc<Downloads>,
    incomplete_dir: std::path::PathBuf,
    /// Where the stubs set aside are (`download/aside`).
    watch_dir: std::path::PathBuf,
    /// Their listing, kept while the folder is unchanged (each poll of
    /// the page would read the folder and the registry again).
    set_aside: crate::download::aside::Listing,
    speeds: Mutex<Speedometer>,
    connections: OnceLock<Connections>,
    limits: OnceLock<Arc<Limits>>,
    gate: Arc<Gate>,
}

impl StatusApi {
    pub fn new(
        owner: Secret,
        keys: Arc<KeyRing>,
        downloads: Arc<Downloads>,
        (incomplete_dir, watch_dir): (std::path::PathBuf, std::path::PathBuf),
        gate: Arc<Gate>,
    ) -> StatusApi {
        StatusApi {
            owner,
            keys,
            downloads,
            incomplete_dir,
            watch_dir,
            set_aside: crate::download::aside::Listing::default(),
            speeds: Mutex::new(Speedometer::default()),
            connections: OnceLock::new(),
            limits: OnceLock::new(),
            gate,
        }
    }

    /// Where `/metrics` reads the connection counts from.
    pub fn set_connections(&self, count: Connections) {
        let _ = self.connections.set(count);
    }

    /// The node's speed limits, for `/api/v1/limits` and the page.
    pub fn set_limits(&self, limits: Arc<Limits>) {
        let _ = self.limits.set(limits);
    }

    /// The speed limits as `GET /api/v1/limits` shows them (`null` in a
    /// node without them: tests that build the API alone).
    pub fn limits_view(&self) -> Option<crate::limits::View> {
        let wall = self.downloads.clock().wall();
        self.limits.get().map(|l| l.view(wall))
    }

    /// Who `presented` is (the status page's login form asks this too);
    /// every key is compared, so the time taken does not tell which
    /// matched. Only through the gate.
    pub fn resolve(&self, presented: &str) -> Caller {
        let is_owner = constant_time_eq(presented.as_bytes(), self.owner.expose().as_bytes());
        match (is_owner, self.keys.owner(presented.as_bytes())) {
            (true, _) => Caller::Owner,
            (false, Some(friend)) => Caller::Peer(friend),
            (false, None) => Caller::Nobody,
        }
    }

    /// Answers an authorized request for `path` (the status page calls
    /// this with its session's owner rights).
    pub fn route(&self, method: &Method, path: &str, query: &str) -> Reply {
        let method = method.clone();
        if path == "/metrics" {
            return match method {
                Method::Get => self.metrics(),
                _ => crate::http::request::method_not_allowed("GET"),
            };
        }
        if let Some(rest) = path.strip_prefix("/api/v1/stubs") {
            return self.stubs(rest, &method);
        }
        if path == "/api/v1/limits" {
            return match method {
                Method::Get => self.limits_reply(),
                Method::Post => self.change_limits(query),
                _ => crate::http::request::method_not_allowed("GET, POST"),
            };
        }
        let Some(rest) = path.strip_prefix("/api/v1/downloads") else {
            return not_found();
        };
        let segments: Vec<&str> = rest.split('/').skip(1).collect();
        match (segments.as_slice(), &method) {
            ([], Method::Get) => self.list(query),
            ([], _) => crate::http::request::method_not_allowed("GET"),
            ([id], m) => match (crate::lexical::decimal::<i64>(id).ok_or(()), m) {
                (Ok(id), Method::Get) => self.one(id),
                (Ok(id), Method::Delete) => self.delete(id, query),
                (Ok(_), _) => crate::http::request::method_not_allowed("GET, DELETE"),
                (Err(_), _) => not_found(),
            },
            ([id, action], m) => match (crate::lexical::decimal::<i64>(id).ok_or(()), *action, m) {
                (Ok(id), "resume" | "retry", Method::Post) => self.resume(id),
                (Ok(id), "pause" | "cancel", Method::Post) => self.pause(id),
                (Ok(_), "resume" | "retry" | "pause" | "cancel", _) => {
                    crate::http::request::method_not_allowed("POST")
                }
                _ => not_found(),
            },
            _ => not_found(),
        }
    }

    /// The report as JSON, or with `format=text` as `jack status` prints it
    /// (the table's columns only are read for it).
    fn list(&self, query: &str) -> Reply {
        let text = query_pairs(query)
            .iter()
            .any(|(k, v)| k == "format" && v == "text");
        let reg = self.downloads.registry();
        if text {
            return self.report(reg.table_rows(), |report| Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: Body::Bytes(crate::owner::status::text(report).into_bytes()),
            });
        }
        self.report(reg.list(), |report| json(200, report))
    }

    /// The report with the table's columns only (no paths, hashes or
    /// times), answered by `reply` (the status page's list).
    pub fn table_report(
        &self,
        reply: impl FnOnce(&crate::owner::status::Report) -> Reply,
    ) -> Reply {
        self.report(self.downloads.registry().table_rows(), reply)
    }

    /// The report of `rows` (read first), the invalid stubs, the live
    /// bytes and speeds and the orphaned `.part` files, answered by `reply`.
    fn report<R: crate::owner::status::Row>(
        &self,
        rows: crate::error::Result<Vec<R>>,
        reply: impl FnOnce(&crate::owner::status::Report) -> Reply,
    ) -> Reply {
        let reg = self.downloads.registry();
        let (rows, invalid) = match rows.and_then(|r| Ok((r, reg.invalid_stubs()?))) {
            Ok(both) => both,
            Err(e) => return internal(&e),
        };
        let running = self.downloads.running();
        let now = self.downloads.clock().now();
        let speeds = self.speeds.lock().update(now, &running);
        let figures = crate::owner::status::Figures {
            live: crate::arr::qbit_view::live_bytes(&running),
            speeds,
            next_tries: self.next_tries(),
            peers: crate::owner::status::peer_views(self.downloads.peers()),
            sources: self.sources(&running),
        };
        let orphans = crate::download::reconcile::orphans(&self.incomplete_dir);
        let mut report = crate::owner::status::report("daemon", &rows, &figures, &invalid, orphans);
        // Best effort: a watch folder that cannot be read says so in the
        // report, and the rest of it is shown.
        crate::owner::status::add_set_aside(&mut report, self.set_aside.list(&self.watch_dir, reg));
        crate::owner::status::measure_disks(&mut report, self.downloads.config());
        reply(&report)
    }

    /// When each download waiting to try again is tried next, in ms since
    /// the Unix epoch (the pool's clock's instant placed on the wall clock).
    fn next_tries(&self) -> std::collections::HashMap<i64, u64> {
        let now = self.downloads.clock().now();
        let wall = crate::owner::dashboard::now_ms();
        self.downloads
            .next_tries()
            .into_iter()
            .map(|(id, due)| {
                let ahead = due.saturating_duration_since(now).as_millis();
                (
                    id,
                    wall.saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX)),
                )
            })
            .collect()
    }

    /// The sources of every download: the running ones' from the pool,
    /// the others' bad pieces from the registry (none if it cannot be
    /// read: the rest of the status stands).
    fn sources(
        &self,
        running: &std::collections::HashMap<i64, crate::download::downloads::Progress>,
    ) -> std::collections::HashMap<i64, Vec<crate::owner::status::SourceView>> {
        let bad = self
            .downloads
            .registry()
            .all_bad_pieces()
            .unwrap_or_else(|e| {
                log::warn!("cannot read the bad pieces error={}", e.chain());
                Default::default()
            });
        crate::owner::status::source_views(running, bad)
    }

    /// `GET /api/v1/stubs`: the stubs set aside; `POST
    /// /api/v1/stubs/<file>/retry`: one put back for the watch folder to
    /// read again (`409` with why when it cannot be: a duplicate whose
    /// download is still there, a stub of that name already back).
    fn stubs(&self, rest: &str, method: &Method) -> Reply {
        let reg = self.downloads.registry();
        let segments: Vec<&str> = rest.split('/').skip(1).collect();
        match (segments.as_slice(), method) {
            ([], Method::Get) => match self.set_aside.list(&self.watch_dir, reg) {
                Ok(list) => Reply::json(200, &serde_json::json!({ "set_aside": list })),
                Err(e) => Reply::json(
                    200,
                    &serde_json::json!({ "set_aside": [], "set_aside_error": e.to_string() }),
                ),
            },
            ([], _) => crate::http::request::method_not_allowed("GET"),
            ([file, "retry"], Method::Post) => {
                let Some(file) = crate::http::request::percent_decode(file, false) else {
                    return not_found();
                };
                let retried = crate::download::aside::retry(&self.watch_dir, reg, &file);
                self.set_aside.forget();
                match retried {
                    Ok(Ok(stub)) => Reply::json(
                        200,
                        &serde_json::json!({"file": file, "stub": stub, "status": "put back"}),
                    ),
                    Ok(Err(crate::download::aside::Refused::NotFound)) => not_found(),
                    Ok(Err(crate::download::aside::Refused::Conflict(why))) => {
                        Reply::error(409, "CONFLICT", &why)
                    }
                    // Said in plain words (a folder jack may not write in).
                    Err(e) => Reply::error(500, "INTERNAL", &e.to_string()),
                }
            }
            ([_, "retry"], _) => crate::http::request::method_not_allowed("POST"),
            _ => not_found(),
        }
    }

    fn one(&self, id: i64) -> Reply {
        let reg = self.downloads.registry();
        let row = match reg.get(id) {
            Ok(Some(row)) => row,
            Ok(None) => return not_found(),
            Err(e) => return internal(&e),
        };
        let events = match reg.events(id) {
            Ok(events) => events,
            Err(e) => return internal(&e),
        };
        let running = self.downloads.running();
        let now = self.downloads.clock().now();
        let speed = self.speeds.lock().update(now, &running).get(&id).copied();
        let now = crate::owner::status::Now {
            live: running.get(&id).map(|p| p.bytes),
            speed,
            next_try: self.next_tries().get(&id).copied(),
        };
        let mut view = crate::owner::status::view(&row, now);
        view.sources = self.sources(&running).remove(&id).unwrap_or_default();
        let events: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::json!({"at": e.at, "kind": e.kind, "detail": e.detail}))
            .collect();
        let mut v = serde_json::to_value(view).unwrap_or_default();
        v["events"] = events.into();
        Reply::json(200, &v)
    }

    /// `POST .../resume` (or `retry`): a paused or failed download is
    /// queued again and resumes where it stopped.
    fn resume(&self, id: i64) -> Reply {
        let row = match self.downloads.registry().get(id) {
            Ok(None) => return not_found(),
            Err(e) => return internal(&e),
            Ok(Some(row)) => row,
        };
        match self.downloads.resume(id) {
            Ok(Some(was)) => Reply::json(
                200,
                &serde_json::json!({"id": id, "was": was.as_str(), "status": "queued"}),
            ),
            Ok(None) => {
                let msg = format!("download {id} is {}, not paused or failed", row.status);
                Reply::error(409, "CONFLICT", &msg)
            }
            Err(e) => internal(&e),
        }
    }

    /// `POST .../pause` (or `cancel`, its older name): a live download
    /// stops, keeps its bytes and holds no worker until it is resumed.
    fn pause(&self, id: i64) -> Reply {
        let row = match self.downloads.registry().get(id) {
            Ok(None) => return not_found(),
            Err(e) => return internal(&e),
            Ok(Some(row)) => row,
        };
        match self.downloads.pause(id) {
            Ok(true) => Reply::json(200, &serde_json::json!({"id": id, "paused": true})),
            Ok(false) => {
                let msg = format!("download {id} is {}, not queued or running", row.status);
                Reply::error(409, "CONFLICT", &msg)
            }
            Err(e) => internal(&e),
        }
    }

    fn delete(&self, id: i64, query: &str) -> Reply {
        match self.downloads.registry().get(id) {
            Ok(None) => return not_found(),
            Err(e) => return internal(&e),
            Ok(Some(_)) => {}
        }
        let keep = query_pairs(query)
            .iter()
            .any(|(k, v)| k == "delete_files" && v == "false");
        match self.downloads.remove(id, !keep) {
            Ok(now) => Reply::json(
                200,
                &serde_json::json!({"id": id, "removed": now, "stopping": !now, "delete_files": !keep}),
            ),
            Err(e) => internal(&e),
        }
    }

    fn limits_reply(&self) -> Reply {
        match self.limits_view() {
            Some(view) => Reply::json(200, &serde_json::json!(view)),
            None => not_found(),
        }
    }

    /// `POST /api/v1/limits?upload_rate=&download_rate=&alt_upload_rate=
    /// &alt_download_rate=&alt=true|false|toggle`: rates in bytes per
    /// second (0: no limit), each optional; checked whole, then applied at
    /// once to transfers under way, until a restart or `SIGHUP`.
    fn change_limits(&self, query: &str) -> Reply {
        let Some(limits) = self.limits.get() else {
            return not_found();
        };
        let change = match parse_change(query, limits.alt()) {
            Ok(c) => c,
            Err(msg) => return Reply::error(400, "BAD_REQUEST", &msg),
        };
        match limits.change(change) {
            Ok(()) => self.limits_reply(),
            Err(msg) => Reply::error(400, "BAD_REQUEST", &msg),
        }
    }

    fn metrics(&self) -> Reply {
        let queued = match self.downloads.registry().ids_with_status(Status::Queued) {
            Ok(ids) => ids.len() as u64,
            Err(e) => return internal(&e),
        };
        let gauges = Gauges {
            active: self.downloads.running().len() as u64,
            queued,
            connections: self.connections.get().map(|c| c()).unwrap_or_default(),
        };
        Reply {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "text/plain; version=0.0.4; charset=utf-8".into(),
            )],
            body: Body::Bytes(metrics::render(&METRICS, gauges).into_bytes()),
        }
    }
}

impl Handler for StatusApi {
    fn handle(&self, req: &mut Request) -> Reply {
        // A friend's key is a wrong credential here, charged as any other.
        let verdict = self.gate.key(AuthRoute::Status, req, |k| {
            let caller = self.resolve(k);
            if let Caller::Peer(name) = &caller {
                log::info!("status API refused peer={name}: owner key only");
            }
            authorized(&caller).then_some(())
        });
        let reply = match verdict {
            Verdict::Pass(()) => {
                let (path, query) = split_url(req.url());
                self.route(req.method(), path, query)
            }
            Verdict::Busy(wait) => crate::http::gate::too_many(wait),
            Verdict::Missing | Verdict::Wrong => Reply::error(401, "UNAUTHORIZED", "Unauthorized")
                .with_header("WWW-Authenticate", "Bearer realm=\"jack\""),
        };
        reply.with_header("Cache-Control", "no-store")
    }
}

/// `value` as JSON, written into an in-memory file (`memfd`) and sent with
/// `sendfile`, as `torrents/info` is: 10,000 downloads are ~8 MiB of JSON,
/// never one heap buffer.
pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Reply {
    let written = (|| -> std::io::Result<(std::fs::File, u64)> {
        let fd = rustix::fs::memfd_create("jack-status", rustix::fs::MemfdFlags::CLOEXEC)?;
        let file = std::fs::File::from(fd);
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &file);
        serde_json::to_writer(&mut out, value)?;
        std::io::Write::flush(&mut out)?;
        drop(out);
        let len = file.metadata()?.len();
        Ok((file, len))
    })();
    match written {
        Ok((file, len)) => {
            Reply::document(status, file, len).with_header("Content-Type", "application/json")
        }
        Err(e) => internal(&crate::error::Error::io("cannot write the status", e)),
    }
}

/// The parameters of `POST /api/v1/limits`; `alt` is whether the
/// alternative rates are on now (for `alt=toggle`).
pub fn parse_change(query: &str, alt: bool) -> Result<Change, String> {
    let mut c = Change::default();
    for (k, v) in query_pairs(query) {
        let rate = || {
            crate::lexical::decimal::<u64>(&v)
                .filter(|r| *r <= crate::config::MAX_RATE)
                .ok_or_else(|| {
                    format!(
                        "{k} must be a whole number of bytes per second (0: no limit), not {v:?}"
                    )
                })
        };
        match k.as_str() {
            "upload_rate" => c.upload = Some(rate()?),
            "download_rate" => c.download = Some(rate()?),
            "alt_upload_rate" => c.alt_upload = Some(rate()?),
            "alt_download_rate" => c.alt_download = Some(rate()?),
            "alt" => {
                c.alt = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    "toggle" => !alt,
                    _ => return Err(format!("alt must be true, false or toggle, not {v:?}")),
                })
            }
            _ => {
                return Err(format!(
                    "unknown parameter {k:?}: upload_rate, download_rate, alt_upload_rate, alt_download_rate or alt"
                ));
            }
        }
    }
    if c == Change::default() {
        return Err("nothing to change: give upload_rate, download_rate, alt_upload_rate, alt_download_rate or alt".into());
    }
    Ok(c)
}

pub fn internal(e: &crate::error::Error) -> Reply {
    log::error!("status API error={}", e.chain());
    Reply::error(500, "INTERNAL", "Internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_changes_are_read_strictly() {
        let c = parse_change("upload_rate=1048576&alt=toggle", false).unwrap();
        assert_eq!(
            (c.upload, c.download, c.alt),
            (Some(1 << 20), None, Some(true))
        );
        assert_eq!(parse_change("alt=toggle", true).unwrap().alt, Some(false));
        for (bad, why) in [
            ("", "nothing to change"),
            ("upload_rate=1M", "whole number of bytes per second"),
            ("upload_rate=+5", "whole number"),
            ("download_rate=99999999999999999999", "whole number"),
            ("alt=yes", "true, false or toggle"),
            ("speed=1", "unknown parameter"),
        ] {
            let e = parse_change(bad, false).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn only_the_owner_is_authorized() {
        assert!(authorized(&Caller::Owner));
        assert!(!authorized(&Caller::Peer("alice".into())));
        assert!(!authorized(&Caller::Nobody));
    }
}
