//! The HTTP server: a prepared listener, tiny_http, and N named handler
//! threads.
//!
//! The listening socket is made here (socket2) with read and write timeouts,
//! which Linux copies onto every accepted socket: tiny_http has no timeouts
//! of its own, so this is what frees the thread of an idle keep-alive
//! connection or a client that stopped reading. (jack's vendored tiny_http
//! keeps accepting when `accept()` itself times out, and its accept thread
//! answers a connection over a cap, [`Caps`], with a 503 itself; see
//! `vendor/tiny_http/JACK-PATCHES.md`.)
//!
//! Before a handler runs, a request whose `Content-Length` is over what
//! its route takes ([`Handler::body_limit`], at least [`SMALL_BODY`]) is
//! answered `413` and its connection closed, without a byte of the body
//! read. Handler threads (`http-1`..`http-N`) loop on `recv()`; a panic in a
//! handler is caught and answered `500`, and the thread goes on serving.
//! Every reply carries an exact `Content-Length`, never chunked encoding
//! (a `304` none at all), and `Server: jack/<version>`.
//! File bodies and answers too long for one socket buffer go to the
//! control lane (`lane`, `stream-N` threads); a handler thread
//! never waits on a slow reader.
//! This module knows nothing of routes: it calls a [`Handler`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tiny_http::{Header, Method, Request, Response};

use crate::error::{Error, Result};
use crate::http::lane::{KeySlot, Lane, Payload, Refusal, Stream, StreamLimits};
use crate::metrics::ConnectionCounts;

/// The `Server` header of every response, tiny_http's own answers included.
pub const SERVER: &str = concat!("jack/", env!("CARGO_PKG_VERSION"));

/// A response: status, headers, and a body in memory or a slice of a file.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of `file` from `offset`, streamed with an exact
    /// `Content-Length` (u64 on every platform). A HEAD request gets the
    /// same headers without the bytes.
    File {
        file: File,
        offset: u64,
        len: u64,
        /// A library file (its bytes count as served in `/metrics`), not
        /// a document written into a `memfd`.
        library: bool,
        /// Whose stream this is for the lane's per-key limit (a key's
        /// owner); `None`: the client's address.
        key: Option<String>,
    },
    /// No body and no `Content-Length` (a `304`: RFC 9110 §8.6 allows no
    /// length but the full size's, which tiny_http would write as `0`).
    Absent,
}

/// Answers in memory longer than this go to the control lane: below it,
/// one socket send buffer takes the whole answer at once (Linux starts a
/// connection with 16 KiB, `tcp_wmem`), so a handler thread never waits.
const INLINE_BYTES: usize = 8 * 1024;

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Bytes(value.to_string().into_bytes()),
        }
    }

    /// A reply with an empty body and `Content-Length: 0` (412, 416).
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// `304 Not Modified`: headers only, no `Content-Length`.
    pub fn not_modified() -> Reply {
        Reply {
            status: 304,
            headers: Vec::new(),
            body: Body::Absent,
        }
    }

    /// `len` bytes of a library file from `offset`.
    pub fn file(status: u16, file: File, offset: u64, len: u64) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::File {
                file,
                offset,
                len,
                library: true,
                key: None,
            },
        }
    }

    /// A generated document of `len` bytes written into `file` (a `memfd`).
    pub fn document(status: u16, file: File, len: u64) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::File {
                file,
                offset: 0,
                len,
                library: false,
                key: None,
            },
        }
    }

    /// The error body of the peer API (`PROTOCOL.md` §1).
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({"ok": false, "error": {"code": code, "message": message}}),
        )
    }

    /// Counts a file body against `owner`'s streams (the lane's per-key
    /// limit).
    pub fn streamed_for(mut self, owner: &str) -> Reply {
        if let Body::File { key, .. } = &mut self.body {
            *key = Some(owner.to_string());
        }
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Answers requests; shared by every handler thread.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &mut Request) -> Reply;

    /// The largest body `request`'s route reads, in bytes (`0`: it takes
    /// none). The server refuses a `Content-Length` above it, or above
    /// [`SMALL_BODY`] if that is more, before `handle` runs.
    fn body_limit(&self, _request: &Request) -> u64 {
        0
    }
}

/// A body every route tolerates, read or not (tiny_http reads a body of at
/// most 1 KiB with its head); a longer one left unread is drained up to
/// 64 KiB by tiny_http, past that the connection is closed.
pub const SMALL_BODY: u64 = 1024;

/// Sends each request to the handler of the first route whose path prefix
/// it has (`/torznab/`, `/api/v2/`...), else to the fallback (the peer API),
/// and logs each answer (debug, the path without its query).
pub struct Router {
    routes: Vec<(&'static str, Arc<dyn Handler>)>,
    fallback: Arc<dyn Handler>,
}

impl Router {
    pub fn new(fallback: Arc<dyn Handler>) -> Router {
        Router {
            routes: Vec::new(),
            fallback,
        }
    }

    /// Requests whose path starts with `prefix` (which ends in `/`), or is
    /// `prefix` without its `/`, go to `handler`.
    pub fn route(mut self, prefix: &'static str, handler: Arc<dyn Handler>) -> Router {
        self.routes.push((prefix, handler));
        self
    }
}

impl Router {
    /// The handler of `path`.
    fn pick(&self, path: &str) -> &dyn Handler {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix) || path == prefix.trim_end_matches('/'))
            .map_or(self.fallback.as_ref(), |(_, handler)| handler.as_ref())
    }
}

impl Handler for Router {
    fn handle(&self, request: &mut Request) -> Reply {
        let path = redact_query(request.url()).to_string();
        let reply = self.pick(&path).handle(request);
        crate::metrics::METRICS.answered(reply.status);
        log::debug!(
            "http method={} path={path} status={}",
            request.method(),
            reply.status
        );
        reply
    }

    fn body_limit(&self, request: &Request) -> u64 {
        self.pick(redact_query(request.url())).body_limit(request)
    }
}

/// Binds `addr` with the given socket timeouts, inherited by every accepted
/// connection.
pub fn bind(
    addr: SocketAddr,
    read_timeout: Duration,
    write_timeout: Duration,
) -> Result<TcpListener> {
    let fail = |e| Error::io(format!("cannot listen on {addr}"), e);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_read_timeout(Some(read_timeout)).map_err(fail)?;
    socket
        .set_write_timeout(Some(write_timeout))
        .map_err(fail)?;
    socket.set_tcp_nodelay(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    Ok(socket.into())
}

pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    lane: Arc<Lane>,
    streams: Vec<JoinHandle<()>>,
}

/// What the handler threads share: the stop flag, and the sockets of the
/// file bodies being sent, so shutdown can cut them instead of waiting for
/// a slow reader.
#[derive(Default)]
pub(crate) struct Shared {
    stopping: AtomicBool,
    sends: parking_lot::Mutex<HashMap<u64, TcpStream>>,
    next_send: AtomicU64,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Registers a socket with a file body in flight until the guard drops.
    pub(crate) fn track(&self, sock: &TcpStream) -> Option<SendGuard<'_>> {
        let id = self.next_send.fetch_add(1, Ordering::Relaxed);
        self.sends.lock().insert(id, sock.try_clone().ok()?);
        Some(SendGuard { shared: self, id })
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for sock in self.sends.lock().values() {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

pub(crate) struct SendGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for SendGuard<'_> {
    fn drop(&mut self) {
        self.shared.sends.lock().remove(&self.id);
    }
}

/// How many connections may be open at once, and how long a request head
/// may take. At `total`, an idle connection is closed to make room; above
/// `per_ip`, or at `total` with none idle, a new connection gets a quick
/// 503 written by the accept thread, and no thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// `server.max_connections`: in all.
    pub total: usize,
    /// `server.max_connections_per_ip`: from one client address (an IPv6
    /// client's whole /64).
    pub per_ip: usize,
    /// `server.header_timeout_ms`: a request head's whole time from its
    /// first byte (then `408` and close).
    pub header_timeout: Duration,
}

impl Caps {
    /// The caps of `[server]`.
    pub fn of(server: &crate::config::ServerConfig) -> Caps {
        Caps {
            total: server.max_connections,
            per_ip: server.max_connections_per_ip,
            header_timeout: server.header_timeout,
        }
    }
}

impl HttpServer {
    /// Serves `listener` with `threads` handler threads within `caps`, and
    /// long bodies on the control lane within `streams`.
    pub fn start(
        listener: TcpListener,
        threads: usize,
        caps: Caps,
        streams: StreamLimits,
        handler: Arc<dyn Handler>,
    ) -> Result<HttpServer> {
        tiny_http::set_server_name(SERVER);
        tiny_http::set_spawn_fault(crate::fault::spawn_fails);
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        let server = tiny_http::Server::from_listener_capped(
            listener,
            caps.total,
            caps.per_ip,
            caps.header_timeout,
            overload_response(),
        )
        .map_err(|e| Error::Runtime(format!("cannot start the HTTP server on {addr}: {e}")))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared::default());
        let (lane, streams) = Lane::start(streams, &shared)?;
        let lane = Arc::new(lane);
        let mut handles = Vec::with_capacity(threads);
        for i in 1..=threads {
            let (server, shared, handler) = (server.clone(), shared.clone(), handler.clone());
            let lane = lane.clone();
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || serve(&server, &shared, &lane, handler.as_ref()))
                .map_err(|e| Error::io("cannot start an HTTP handler thread", e))?;
            handles.push(handle);
        }
        Ok(HttpServer {
            server,
            threads: handles,
            shared,
            addr,
            lane,
            streams,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open right now.
    pub fn connections(&self) -> usize {
        self.server.num_connections()
    }

    /// What the server counts of its connections, for a handler
    /// (`/metrics`): holds no reference to the server, and reads zeros once
    /// it is gone.
    pub fn connection_counter(&self) -> Box<dyn Fn() -> ConnectionCounts + Send + Sync> {
        let weak = Arc::downgrade(&self.server);
        Box::new(move || weak.upgrade().map_or_else(Default::default, |s| counts(&s)))
    }

    /// Stops taking requests and joins every handler thread. A handler in
    /// the middle of a request finishes it first.
    pub fn shutdown(self) {
        // Cut file bodies in flight: a slow reader must not hold shutdown.
        self.shared.stop();
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
        // The handlers' ends of the lane are gone with them: the stream
        // threads cut what is queued (stopping) and end.
        drop(self.lane);
        for t in self.streams {
            let _ = t.join();
        }
        // Dropping the last reference closes the listener.
    }
}

/// Open connections, and those the accept thread refused (tiny_http counts
/// both: JACK-PATCHES §2 and §7).
fn counts(server: &tiny_http::Server) -> ConnectionCounts {
    let refused = server.refused_connections();
    ConnectionCounts {
        open: server.num_connections() as u64,
        refused_max_connections: refused.max_connections,
        refused_max_connections_per_ip: refused.max_connections_per_ip,
        evicted_idle: server.evicted_connections(),
    }
}

fn serve(server: &tiny_http::Server, shared: &Shared, lane: &Lane, handler: &dyn Handler) {
    loop {
        let request = server.recv();
        if shared.stopping() {
            if let Ok(req) = request {
                respond(req, own_error(503, "UNAVAILABLE", "Shutting down"), lane);
            }
            return;
        }
        let mut req = match request {
            Ok(req) => req,
            Err(e) => {
                log::error!("http server cannot take requests: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if let Some(refusal) = over_body_limit(&req, handler) {
            respond(req, refusal, lane);
            continue;
        }
        let reply = match catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req))) {
            Ok(reply) => reply,
            Err(_) => {
                log::error!(
                    "handler panicked method={} url={}",
                    req.method(),
                    redact_query(req.url())
                );
                own_error(500, "INTERNAL", "Internal error")
            }
        };
        respond(req, reply, lane);
    }
}

/// Sends `reply`: short bytes through tiny_http's `Response` (which adds
/// `Date` and `Server`), no body with a head written here, and a file body
/// or a long answer through the control lane.
fn respond(req: Request, reply: Reply, lane: &Lane) {
    let body = match reply.body {
        // tiny_http drops a `Connection` header: a reply that closes the
        // connection (a refused request body left unread) is written here.
        Body::Bytes(b) if closes(&reply.headers) => {
            let headers: Vec<_> = reply
                .headers
                .into_iter()
                .filter(|(k, _)| !is_connection(k))
                .collect();
            return respond_written(req, reply.status, Some(&b), &headers, true);
        }
        Body::Bytes(b) if b.len() > INLINE_BYTES && *req.method() != Method::Head => {
            let key = client_key(&req);
            let long = Long {
                len: b.len() as u64,
                key,
                library: false,
                memory: b,
                payload: Payload::None,
            };
            return respond_streamed(req, reply.status, &reply.headers, long, lane);
        }
        Body::Bytes(b) => b,
        Body::File {
            file,
            offset,
            len,
            library,
            key,
        } => {
            if *req.method() == Method::Head {
                let close = wants_close(&req);
                let head = head(reply.status, Some(len), &reply.headers, close);
                let mut writer = req.into_writer();
                let _ = writer
                    .write_all(head.as_bytes())
                    .and_then(|()| writer.flush());
                return;
            }
            let key = key.unwrap_or_else(|| client_key(&req));
            let payload = Payload::File { file, offset, len };
            let long = Long {
                len,
                key,
                library,
                memory: Vec::new(),
                payload,
            };
            return respond_streamed(req, reply.status, &reply.headers, long, lane);
        }
        Body::Absent => {
            let close = wants_close(&req);
            return respond_written(req, reply.status, None, &reply.headers, close);
        }
    };
    let mut response = Response::from_data(body)
        .with_status_code(reply.status)
        .with_chunked_threshold(usize::MAX);
    for (name, value) in &reply.headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(e) = req.respond(response) {
        log::debug!("client went away before the response was sent: {e}");
    }
}

/// The `413` for a request whose `Content-Length` is over its route's
/// limit: the connection is closed without reading the body (its read side
/// shut first, so tiny_http drains nothing).
fn over_body_limit(req: &Request, handler: &dyn Handler) -> Option<Reply> {
    let length = req.content_length()?;
    let limit = handler.body_limit(req).max(SMALL_BODY);
    if length <= limit {
        return None;
    }
    log::info!(
        "request body refused method={} path={} length={length} limit={limit}",
        req.method(),
        redact_query(req.url())
    );
    if let Some(sock) = req.raw_socket() {
        let _ = sock.shutdown(Shutdown::Read);
    }
    let message = format!("request body of {length} bytes is over the limit of {limit}");
    Some(own_error(413, "PAYLOAD_TOO_LARGE", &message).with_header("Connection", "close"))
}

/// Whose stream an answer without a key's owner is: its client's address
/// (an IPv6 client's /64, as the connection caps count it).
fn client_key(req: &Request) -> String {
    match req.remote_addr() {
        Some(a) => format!("address {}", tiny_http::client_key(a.ip())),
        None => "address unknown".to_string(),
    }
}

/// A body for the control lane: `len` bytes, `memory` then `payload`,
/// counted against `key`.
struct Long {
    len: u64,
    key: String,
    library: bool,
    memory: Vec<u8>,
    payload: Payload,
}

/// Hands `long` to the control lane, or answers a quick `503` with
/// `Retry-After` on this thread when its key has its streams in flight or
/// the lane is full.
fn respond_streamed(
    req: Request,
    status: u16,
    headers: &[(String, String)],
    long: Long,
    lane: &Lane,
) {
    let close = wants_close(&req);
    let Some(slot) = lane.admit(&long.key) else {
        return refuse(req.into_writer(), Refusal::Key, close);
    };
    let socket = req.raw_socket();
    let writer = req.into_writer();
    let mut bytes = head(status, Some(long.len), headers, close).into_bytes();
    bytes.extend_from_slice(&long.memory);
    let stream = Stream {
        writer,
        socket,
        bytes,
        payload: long.payload,
        library: long.library,
        slot,
    };
    if let Err(stream) = lane.send(stream) {
        let Stream { writer, slot, .. } = stream;
        drop::<KeySlot>(slot);
        refuse(writer, Refusal::Full, close);
    }
}

/// The lane's quick refusal: `503` with `Retry-After` (retried by a jack
/// downloader, `PROTOCOL.md` §2.5), written on the handler thread.
fn refuse(mut writer: Box<dyn Write + Send>, why: Refusal, close: bool) {
    log::info!("stream refused: {}", why.message());
    let reply = own_error(503, "UNAVAILABLE", why.message()).with_header("Retry-After", "5");
    let Body::Bytes(body) = reply.body else {
        return;
    };
    let head = head(503, Some(body.len() as u64), &reply.headers, close);
    if let Err(e) = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(&body))
        .and_then(|()| writer.flush())
    {
        log::debug!("client went away before the refusal was sent: {e}");
    }
}

/// An error the server answers in the handler's place (it knows no route,
/// so the answer may be for a key-protected path: never for shared caches).
fn own_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::error(status, code, message).with_header("Cache-Control", "private")
}

/// The path of a URL without its query string (which may carry a key).
pub fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or("")
}

/// The complete response the accept thread writes when a connection cap
/// (`Caps`) is reached.
fn overload_response() -> Vec<u8> {
    let body = r#"{"ok":false,"error":{"code":"UNAVAILABLE","message":"Too many connections"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nServer: {SERVER}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: private\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes a response head and `body` here: without a body or
/// `Content-Length` (a `304`), or with `Connection: close`.
fn respond_written(
    req: Request,
    status: u16,
    body: Option<&[u8]>,
    headers: &[(String, String)],
    close: bool,
) {
    let mut writer = req.into_writer();
    let head = head(status, body.map(|b| b.len() as u64), headers, close);
    if let Err(e) = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body.unwrap_or_default()))
        .and_then(|()| writer.flush())
    {
        log::debug!("client went away before the response was sent: {e}");
    }
}

fn is_connection(name: &str) -> bool {
    name.eq_ignore_ascii_case("Connection")
}

/// Whether a reply says `Connection: close`.
fn closes(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| is_connection(k) && v.eq_ignore_ascii_case("close"))
}

/// The status line and headers of a response jack writes itself, with
/// `Date`, `Server` and, when given, a u64 `Content-Length`.
fn head(
    status: u16,
    content_length: Option<u64>,
    headers: &[(String, String)],
    close: bool,
) -> String {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nServer: {SERVER}\r\n",
        reason(status),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    if let Some(len) = content_length {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Whether the client will send no further request on this connection.
fn wants_close(req: &Request) -> bool {
    let connection = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Connection"))
        .map(|h| h.value.as_str().to_ascii_lowercase());
    let http10 = req.http_version() == &tiny_http::HTTPVersion(1, 0);
    match connection {
        Some(v) if v.contains("close") => true,
        Some(v) => http10 && !v.contains("keep-alive"),
        None => http10,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        415 => "Unsupported Media Type",
        304 => "Not Modified",
        416 => "Range Not Satisfiable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Flaky;

    impl Handler for Flaky {
        fn handle(&self, req: &mut Request) -> Reply {
            if req.url() == "/boom" {
                panic!("handler bug");
            }
            Reply::json(200, &serde_json::json!({"ok": true}))
        }
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// `Flaky` on 127.0.0.1 with two handler threads, within
    /// `total`/`per_ip` connections.
    fn flaky_server(read_timeout: Duration, total: usize, per_ip: usize) -> HttpServer {
        let at = "127.0.0.1:0".parse().unwrap();
        let listener = bind(at, read_timeout, Duration::from_secs(5)).unwrap();
        let caps = Caps {
            total,
            per_ip,
            header_timeout: Duration::from_secs(10),
        };
        HttpServer::start(listener, 2, caps, StreamLimits::default(), Arc::new(Flaky)).unwrap()
    }

    #[test]
    fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
        let server = flaky_server(Duration::from_secs(5), 16, 16);
        let addr = server.local_addr();
        for _ in 0..3 {
            let r = get(addr, "/boom");
            assert!(r.starts_with("HTTP/1.1 500"), "{r}");
            assert!(r.contains("\"INTERNAL\""), "{r}");
        }
        // Both handler threads survived their panics.
        for _ in 0..4 {
            assert!(get(addr, "/fine").starts_with("HTTP/1.1 200"));
        }
        server.shutdown();
    }

    /// A connection to `addr` from the local address `from` (any of
    /// 127.0.0.0/8 is this host).
    fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
        let from: SocketAddr = format!("{from}:0").parse().unwrap();
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&from.into()).unwrap();
        s.connect(&addr.into()).unwrap();
        s.into()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_per_ip_count_goes_down_however_a_connection_ends() {
        let server = flaky_server(Duration::from_millis(1000), 64, 2);
        let addr = server.local_addr();
        let counts = server.connection_counter();
        let from_2 = || server.server.connections_from(ip("127.0.0.2"));
        // Two idle connections take 127.0.0.2's two places.
        let first = connect_from("127.0.0.2", addr);
        let _second = connect_from("127.0.0.2", addr);
        wait_until("two open from 127.0.0.2", || from_2() == 2);
        // A third is answered by the accept thread and closed.
        let mut third = connect_from("127.0.0.2", addr);
        let mut answer = Vec::new();
        third.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, overload_response());
        assert_eq!(counts().refused_max_connections_per_ip, 1);
        assert_eq!(counts().refused_max_connections, 0);
        // Another address is served meanwhile.
        assert!(get(addr, "/fine").starts_with("HTTP/1.1 200"));
        // The client closes one; the read timeout closes the other.
        drop(first);
        wait_until("closed by the client", || from_2() <= 1);
        wait_until("closed by the read timeout", || from_2() == 0);
        // A handler that panics, then the client closes.
        let mut s = connect_from("127.0.0.2", addr);
        write!(s, "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 500");
        assert_eq!(from_2(), 1, "a keep-alive connection stays open");
        drop(s);
        wait_until("closed after a panic", || from_2() == 0);
        // A request tiny_http cannot read (400, closed).
        let mut s = connect_from("127.0.0.2", addr);
        s.write_all(b"NONSENSE\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        wait_until("closed after a bad request", || from_2() == 0);
        // Both places are free again.
        let held: Vec<_> = (0..2).map(|_| connect_from("127.0.0.2", addr)).collect();
        wait_until("two open again", || from_2() == 2);
        assert_eq!(counts().refused_max_connections_per_ip, 1);
        drop(held);
        server.shutdown();
    }

    #[test]
    fn an_ipv4_mapped_client_counts_as_its_ipv4_address() {
        // A dual-stack socket bound to 127.0.0.1's mapped address: an IPv4
        // client shows as ::ffff:127.0.0.2 there.
        let at: SocketAddr = "[::ffff:127.0.0.1]:0".parse().unwrap();
        let socket = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        socket.set_only_v6(false).unwrap();
        socket.bind(&at.into()).unwrap();
        socket.listen(16).unwrap();
        let caps = Caps {
            total: 64,
            per_ip: 1,
            header_timeout: Duration::from_secs(10),
        };
        let server = HttpServer::start(
            socket.into(),
            1,
            caps,
            StreamLimits::default(),
            Arc::new(Flaky),
        )
        .unwrap();
        let addr = server.local_addr();
        let _held = connect_from("127.0.0.2", addr);
        let tiny = &server.server;
        wait_until("one open", || tiny.connections_from(ip("127.0.0.2")) == 1);
        assert_eq!(tiny.connections_from(ip("::ffff:127.0.0.2")), 1);
        let mut refused = connect_from("127.0.0.2", addr);
        let mut answer = Vec::new();
        refused.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, overload_response());
        assert_eq!(tiny.refused_connections().max_connections_per_ip, 1);
        server.shutdown();
    }

    /// Connections are counted per IPv4 address and per IPv6 /64: one
    /// subscriber has a whole /64, so counting each IPv6 address would give
    /// one client 2^64 caps.
    #[test]
    fn clients_are_counted_per_ipv4_address_and_per_ipv6_slash_64() {
        let key = |s: &str| tiny_http::client_key(ip(s));
        let same = [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("::1", "::2"),
        ];
        for (a, b) in same {
            assert_eq!(key(a), key(b), "{a} and {b}");
        }
        let apart = [
            ("2001:db8:1:2::1", "2001:db8:1:3::1"),
            ("192.0.2.7", "192.0.2.8"),
            ("::ffff:192.0.2.7", "::ffff:192.0.2.8"),
            ("2001:db8::1", "2001:db9::1"),
        ];
        for (a, b) in apart {
            assert_ne!(key(a), key(b), "{a} and {b}");
        }
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), ip("2001:db8:1:2::"));
        assert_eq!(key("::ffff:10.1.2.3"), ip("10.1.2.3"));
    }

    /// tiny_http's pool once queued a burst of connections behind the few
    /// idle threads it had (it counted a thread woken for a task as idle
    /// until the thread ran); those blocked on their keep-alive connections,
    /// and the rest waited for a read timeout (JACK-PATCHES §8). A race, so
    /// five bursts, each on a fresh server whose four idle threads wait.
    #[test]
    fn every_connection_of_a_burst_gets_a_thread() {
        for round in 0..5 {
            let server = flaky_server(Duration::from_secs(5), 256, 256);
            let addr = server.local_addr();
            std::thread::sleep(Duration::from_millis(50));
            let start = std::time::Instant::now();
            let clients: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(move || {
                        let mut burst = Vec::new();
                        for _ in 0..10 {
                            let mut s = TcpStream::connect(addr).unwrap();
                            // Keep-alive: a connection holds its thread
                            // after its answer.
                            write!(s, "GET /fine HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                            burst.push(s);
                        }
                        burst
                    })
                })
                .collect();
            let mut burst: Vec<TcpStream> = clients
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            // All stay open until every one is answered.
            for (i, s) in burst.iter_mut().enumerate() {
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let mut status = [0u8; 12];
                s.read_exact(&mut status)
                    .unwrap_or_else(|e| panic!("round {round}: connection {i} not answered: {e}"));
                assert_eq!(&status, b"HTTP/1.1 200");
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{:?}",
                start.elapsed()
            );
            server.shutdown();
        }
    }
}
