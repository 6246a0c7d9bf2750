//! The HTTP server: a prepared listener, tiny_http, and N named handler
//! threads.
//!
//! The listening socket is made here (socket2) with read and write timeouts,
//! which Linux copies onto every accepted socket: tiny_http has no timeouts
//! of its own, so this is what frees the thread of an idle keep-alive
//! connection or a client that stopped reading. (jack's vendored tiny_http
//! keeps accepting when `accept()` itself times out; see
//! `vendor/tiny_http/JACK-PATCHES.md`.)
//!
//! Handler threads (`http-1`..`http-N`) loop on `recv()`; a panic in a
//! handler is caught and answered `500`, and the thread goes on serving.
//! Every reply carries an exact `Content-Length`, never chunked encoding.
//! This module knows nothing of routes: it calls a [`Handler`].

use std::net::{SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tiny_http::{Header, Request, Response};

use crate::error::{Error, Result};

/// A complete response held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    /// The error body of the peer API (`PROTOCOL.md` §1).
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({"ok": false, "error": {"code": code, "message": message}}),
        )
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Answers requests; shared by every handler thread.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &mut Request) -> Reply;
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
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl HttpServer {
    /// Serves `listener` with `threads` handler threads.
    pub fn start(
        listener: TcpListener,
        threads: usize,
        handler: Arc<dyn Handler>,
    ) -> Result<HttpServer> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Runtime(format!("cannot start the HTTP server on {addr}: {e}")))?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for i in 1..=threads {
            let (server, stopping, handler) = (server.clone(), stopping.clone(), handler.clone());
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || serve(&server, &stopping, handler.as_ref()))
                .map_err(|e| Error::io("cannot start an HTTP handler thread", e))?;
            handles.push(handle);
        }
        Ok(HttpServer {
            server,
            threads: handles,
            stopping,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and joins every handler thread. A handler in
    /// the middle of a request finishes it first.
    pub fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
        // Dropping the last reference closes the listener.
    }
}

fn serve(server: &tiny_http::Server, stopping: &AtomicBool, handler: &dyn Handler) {
    loop {
        let request = server.recv();
        if stopping.load(Ordering::SeqCst) {
            if let Ok(req) = request {
                respond(req, Reply::error(503, "UNAVAILABLE", "Shutting down"));
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
        let reply = match catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req))) {
            Ok(reply) => reply,
            Err(_) => {
                log::error!(
                    "handler panicked method={} url={}",
                    req.method(),
                    redact_query(req.url())
                );
                Reply::error(500, "INTERNAL", "Internal error")
            }
        };
        respond(req, reply);
    }
}

fn respond(req: Request, reply: Reply) {
    let mut response = Response::from_data(reply.body)
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

/// The path of a URL without its query string (which may carry a key).
pub fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or("")
}
