//! The status page: `GET /ui/`, the owner's view of the node in a browser.
//!
//! One document (`ui.html`: HTML, CSS and script inline, embedded with
//! `include_str!`) under a strict `Content-Security-Policy` whose
//! `script-src` and `style-src` are the SHA-256 of the inline script and
//! style, so nothing else runs. Routes:
//!
//! * `GET /ui/`: the page (the same bytes for everyone; it holds no data).
//! * `POST /ui/login` (`key=<owner key>`, urlencoded): a session cookie
//!   (`jack_ui`, `HttpOnly; SameSite=Strict; Path=/ui; Max-Age=3600`) and
//!   the session's anti-forgery token; a wrong key or a friend's is the
//!   uniform `401` at once, charged to the address's guess budget
//!   (`crate::http::gate`: `429` with `Retry-After` past it).
//! * `GET /ui/session`: `{"active": bool}`, whether the cookie names a
//!   live session (the page asks it first, rather than meet a `401`).
//! * `GET /ui/state`: the downloads (the status API's report, the table's
//!   columns), throughput samples, peers and the last scan, for polling.
//! * `/ui/api/v1/downloads...`: the owner's status API itself
//!   (`StatusApi::route`), with the session's rights; anything but `GET`
//!   needs the token in `X-CSRF-Token`.
//! * `POST /ui/logout` (token needed): ends the session.
//!
//! Every answer carries the security headers ([`SECURITY_HEADERS`]) and
//! `Cache-Control: no-store`. Must not: take the key from a URL, let a
//! friend's key in, or hold state beyond the sessions.

use std::sync::{Arc, OnceLock};

use sha2::Digest;
use tiny_http::{Method, Request};

use crate::config::Peers;
use crate::http::form;
use crate::http::gate::{Gate, Verdict, constant_time_eq};
use crate::http::request::{header, method_not_allowed, not_found, split_url};
use crate::http::server::{Handler, Reply};
use crate::http::sessions::{Sessions, TTL, cookie_value};
use crate::metrics::AuthRoute;
use crate::owner::dashboard::Dashboard;
use crate::owner::status_api::{Caller, StatusApi, json};

/// The page.
pub const PAGE: &str = include_str!("ui.html");

/// The session cookie's name.
pub const COOKIE: &str = "jack_ui";

/// A login body larger than this is refused unread.
const MAX_LOGIN_BODY: u64 = 4096;

/// Headers of every answer under `/ui`.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
];

/// The policy of answers that are not the page (JSON).
const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

pub struct Ui {
    status: Arc<StatusApi>,
    sessions: Sessions,
    dashboard: Arc<Dashboard>,
    peers: Peers,
    /// `Secure` on the cookie (the node's public URL is https).
    secure: bool,
    gate: Arc<Gate>,
}

impl Ui {
    pub fn new(
        status: Arc<StatusApi>,
        dashboard: Arc<Dashboard>,
        peers: Peers,
        clock: Arc<dyn crate::clock::Clock>,
        secure: bool,
        gate: Arc<Gate>,
    ) -> Ui {
        Ui {
            status,
            sessions: Sessions::new(clock),
            dashboard,
            peers,
            secure,
            gate,
        }
    }

    fn route(&self, req: &mut Request) -> Reply {
        let (path, query) = split_url(req.url());
        let (path, query) = (path.to_string(), query.to_string());
        let method = req.method().clone();
        match (path.as_str(), &method) {
            ("/ui", _) => Reply::empty(308).with_header("Location", "/ui/"),
            ("/ui/", Method::Get | Method::Head) => page(),
            ("/ui/", _) => method_not_allowed("GET, HEAD"),
            ("/ui/login", Method::Post) => self.login(req),
            ("/ui/login", _) => method_not_allowed("POST"),
            // Whether to show the login form, without a 401 in the console.
            ("/ui/session", Method::Get) => {
                let active = self.session(req).is_some();
                Reply::json(200, &serde_json::json!({ "active": active }))
            }
            _ => {
                let Some(sid) = self.session(req) else {
                    return unauthorized();
                };
                let token = csrf_token(&sid);
                let changes = !matches!(method, Method::Get | Method::Head);
                let presented = header(req, "X-CSRF-Token").unwrap_or("");
                if changes && !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
                    log::warn!("status page refused a change without its token path={path}");
                    return Reply::error(403, "FORBIDDEN", "Missing or wrong anti-forgery token");
                }
                match (path.as_str(), &method) {
                    ("/ui/state", Method::Get) => self.state(&token),
                    ("/ui/state", _) => method_not_allowed("GET"),
                    ("/ui/logout", Method::Post) => {
                        self.sessions.close(&sid);
                        Reply::json(200, &serde_json::json!({"ok": true}))
                            .with_header("Set-Cookie", &self.cookie("", 0))
                    }
                    ("/ui/logout", _) => method_not_allowed("POST"),
                    (p, m) => match p.strip_prefix("/ui") {
                        Some(api)
                            if api.starts_with("/api/v1/downloads")
                                || api.starts_with("/api/v1/stubs")
                                || api == "/api/v1/limits" =>
                        {
                            self.status.route(m, api, &query)
                        }
                        _ => not_found(),
                    },
                }
            }
        }
    }

    /// The live session id the request's cookie names.
    fn session(&self, req: &Request) -> Option<String> {
        let sid = header(req, "Cookie").and_then(|c| cookie_value(c, COOKIE))?;
        self.sessions.check(sid).then(|| sid.to_string())
    }

    fn cookie(&self, sid: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={max_age}{secure}")
    }

    /// `POST /ui/login`: the owner key in the body, never in the URL.
    fn login(&self, req: &mut Request) -> Reply {
        let length = req.body_length().map(|n| n as u64);
        let content_type = header(req, "Content-Type").map(str::to_string);
        let body = match form::read_body(req.as_reader(), length, MAX_LOGIN_BODY) {
            Ok(b) => b,
            Err(e) => return Reply::error(e.status(), "BAD_REQUEST", e.message()),
        };
        // The query is not read: a key there would be in logs and history.
        let key = match form::parse(content_type.as_deref(), &body, "") {
            Ok(f) => f.get("key").unwrap_or("").to_string(),
            Err(e) => return Reply::error(e.status(), "BAD_REQUEST", e.message()),
        };
        // A refusal answers at once: a sleeping handler would be a thread
        // an attacker holds; the gate bounds the guesses instead.
        let verdict = self.gate.check(
            AuthRoute::Ui,
            self.gate.client(req),
            Some(key.as_str()),
            |k| match self.status.resolve(k) {
                Caller::Owner => Some(()),
                Caller::Peer(name) => {
                    log::info!("status page refused peer={name}: owner key only");
                    None
                }
                Caller::Nobody => None,
            },
        );
        match verdict {
            Verdict::Pass(()) => match self.sessions.open() {
                Ok(sid) => {
                    log::info!("status page login");
                    Reply::json(200, &serde_json::json!({"csrf": csrf_token(&sid)}))
                        .with_header("Set-Cookie", &self.cookie(&sid, TTL.as_secs()))
                }
                Err(e) => {
                    log::error!("cannot make a session id: {e}");
                    Reply::error(500, "INTERNAL", "Internal error")
                }
            },
            Verdict::Busy(wait) => crate::http::gate::too_many(wait),
            Verdict::Missing | Verdict::Wrong => unauthorized(),
        }
    }

    /// `GET /ui/state`: everything the page shows, in one answer.
    fn state(&self, token: &str) -> Reply {
        self.dashboard.viewed();
        let board = self.dashboard.snapshot(&self.peers);
        self.status.table_report(|report| {
            json(
                200,
                &serde_json::json!({
                    "csrf": token,
                    "downloads": report.downloads,
                    "invalid_stubs": report.invalid_stubs,
                    "set_aside": report.set_aside,
                    "set_aside_error": report.set_aside_error,
                    "throughput": board.throughput,
                    "peers": board.peers,
                    "scan": board.scan,
                    "disks": report.disks,
                    "min_free_bytes": report.min_free_bytes,
                    "now": crate::owner::dashboard::now_ms(),
                    "limits": self.status.limits_view(),
                }),
            )
        })
    }
}

impl Handler for Ui {
    /// Only the login takes a body.
    fn body_limit(&self, req: &Request) -> u64 {
        let login = split_url(req.url()).0 == "/ui/login" && *req.method() == Method::Post;
        if login { MAX_LOGIN_BODY } else { 0 }
    }

    fn handle(&self, req: &mut Request) -> Reply {
        let mut reply = self.route(req);
        if !reply
            .headers
            .iter()
            .any(|(k, _)| k == "Content-Security-Policy")
        {
            reply = reply.with_header("Content-Security-Policy", DATA_POLICY);
        }
        for (name, value) in SECURITY_HEADERS {
            reply = reply.with_header(name, value);
        }
        reply
    }
}

fn unauthorized() -> Reply {
    Reply::error(401, "UNAUTHORIZED", "Unauthorized")
        .with_header("WWW-Authenticate", "Bearer realm=\"jack\"")
}

/// The anti-forgery token of session `sid`: derived from the id (which
/// only the cookie carries), so nothing more is kept, and no other page
/// can compute it.
pub fn csrf_token(sid: &str) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(b"jack-ui-csrf\0")
        .chain_update(sid.as_bytes())
        .finalize();
    crate::keys::hex(&digest)
}

/// The page with its policy.
fn page() -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/html; charset=utf-8".into()),
            ("Content-Security-Policy".into(), page_policy().into()),
        ],
        body: crate::http::server::Body::Bytes(PAGE.as_bytes().to_vec()),
    }
}

/// `Content-Security-Policy` of the page: its own inline script and style
/// by hash, requests to this node only, no frames, no plugins.
pub fn page_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let hash = |open: &str, close: &str| {
            let start = PAGE.find(open).map_or(0, |i| i + open.len());
            let end = PAGE[start..].find(close).map_or(start, |i| start + i);
            crate::digest::base64(&sha2::Sha256::digest(&PAGE.as_bytes()[start..end]))
        };
        format!(
            "default-src 'self'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_by_session() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a").len(), 64);
    }
}
