//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]
// jack patch: built as a path dependency, so rustc would show its warnings in every jack build.
#![allow(unused)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
// jack patch: the per-address cap and the refusal counters.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use client::ClientConnection;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
// jack patch: the default `Server` header (see `set_server_name`).
pub use response::set_server_name;
// jack patch: the key connections are counted by per client address, and
// the spawn fault hook.
pub use util::client_key;
pub use util::set_spawn_fault;
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // jack patch: connections currently open (accepted and not yet closed)
    active: Arc<std::sync::atomic::AtomicUsize>,

    // jack patch: connections open per client address, and the connections
    // the accept thread refused
    per_ip: PerIp,
    refused: Arc<RefusedCounters>,

    // jack patch: idle connections closed to make room at the cap
    evicted: Arc<AtomicU64>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_impl(listener.into(), ssl_config, None)
    }

    /// jack patch: like `from_listener`, but at most `max_connections` are
    /// open at once, and at most `max_connections_per_ip` from one client
    /// address key (`client_key`: an IPv4 address, an IPv6 /64). At
    /// `max_connections`, an idle connection (waiting for a request, no
    /// answer in progress) from the key with the most connections, idle
    /// longest, is closed to make room. A connection accepted above the
    /// per-address cap, or at `max_connections` with none idle, is answered
    /// with the raw bytes `overload_response` (a complete HTTP response) by
    /// the accept thread and closed, without a thread of its own, and
    /// counted (`refused_connections`). A request head must arrive whole
    /// within `header_timeout` of its first byte, else `408` and close.
    pub fn from_listener_capped<L: Into<Listener>>(
        listener: L,
        max_connections: usize,
        max_connections_per_ip: usize,
        header_timeout: Duration,
        overload_response: Vec<u8>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_impl(
            listener.into(),
            None,
            Some(Cap {
                max_connections,
                max_connections_per_ip,
                header_timeout,
                overload_response,
            }),
        )
    }

    fn from_listener_impl(
        listener: Listener,
        ssl_config: Option<SslConfig>,
        cap: Option<Cap>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inside_active = active.clone();
        // jack patch: open connections per address, refusals by cap
        let per_ip = PerIp::default();
        let inside_per_ip = per_ip.clone();
        let refused = Arc::new(RefusedCounters::default());
        let inside_refused = refused.clone();
        // jack patch: every open connection's state, for eviction
        let conns = util::Conns::default();
        let evicted = Arc::new(AtomicU64::new(0));
        let inside_evicted = evicted.clone();
        let epoch = std::time::Instant::now();
        let mut next_id = 0u64;
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        // jack patch: a thread that cannot start is an error, not a panic
        thread::Builder::new().spawn(move || {
            // a tasks pool is used to dispatch the connections into threads
            let tasks_pool = util::TaskPool::new();

            log::debug!("Running accept thread");
            while !inside_close_trigger.load(Relaxed) {
                let new_client = match server.accept() {
                    Ok((mut sock, peer)) => {
                        use util::RefinedTcpStream;
                        // jack patch: the caps. A connection over one is
                        // answered and closed here, without a thread.
                        let mut ip_guard = None;
                        let mut conn = None;
                        if let Some(ref cap) = cap {
                            match cap.admit(&conns, &inside_per_ip, peer) {
                                Ok((guard, evicted)) => {
                                    ip_guard = guard;
                                    if evicted {
                                        inside_evicted.fetch_add(1, Relaxed);
                                    }
                                }
                                Err(reason) => {
                                    inside_refused.count(reason);
                                    refuse(&mut sock, &cap.overload_response);
                                    continue;
                                }
                            }
                            let Ok(socket) = sock.try_clone() else {
                                continue;
                            };
                            next_id += 1;
                            let state = Arc::new(util::ConnState::new(
                                next_id,
                                peer.map(|a| client_key(a.ip())),
                                socket,
                                Some(cap.header_timeout),
                                epoch,
                            ));
                            conn = Some((conns.insert(state.clone()), state));
                        }
                        let abort_handle = sock.try_clone().ok().map(Arc::new);
                        let (read_closable, write_closable) = match ssl {
                            None => RefinedTcpStream::new(sock),
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        // jack patch: the address's count goes with the connection.
                        let state = conn.as_ref().map(|(_, s)| s.clone());
                        let client = ClientConnection::new(write_closable, read_closable, state)
                            .with_abort_handle(abort_handle);
                        Ok((client, ip_guard, conn))
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok((client, ip_guard, conn)) => {
                        let messages = inside_messages.clone();
                        let mut client = Some(client);
                        // jack patch: the counts last as long as this
                        // task, however it ends (unwinding included).
                        let active_guard = ActiveGuard::new(inside_active.clone());
                        let state = conn.as_ref().map(|(_, s)| s.clone());
                        let conn_guard = conn.map(|(g, _)| g);
                        let mut guard = Some((active_guard, ip_guard, conn_guard));
                        let spawned = tasks_pool.spawn(Box::new(move || {
                            let _guard = guard.take();
                            if let Some(client) = client.take() {
                                // Synchronization is needed for HTTPS requests to avoid a deadlock
                                if client.secure() {
                                    let (sender, receiver) = mpsc::channel();
                                    for rq in client {
                                        messages.push(rq.with_notify_sender(sender.clone()).into());
                                        receiver.recv().unwrap();
                                    }
                                } else {
                                    for rq in client {
                                        messages.push(rq.into());
                                    }
                                }
                            }
                        }));
                        // jack patch: a thread that cannot start refuses this
                        // connection (the overload answer), and the loop goes on.
                        if let Err((e, task)) = spawned {
                            log::warn!("cannot start a thread for a connection, refused: {}", e);
                            if let (Some(state), Some(cap)) = (&state, &cap) {
                                state.refuse(&cap.overload_response);
                            }
                            drop(task);
                        }
                    }

                    // jack patch: only a broken listener ends the accept loop.
                    // A timeout (SO_RCVTIMEO on the listener, inherited by the
                    // accepted sockets), an aborted connection or a passing
                    // shortage of descriptors or memory used to stop the server
                    // for good (upstream issue #283).
                    Err(e) if accept_error_is_transient(&e) => {
                        if !matches!(
                            e.kind(),
                            IoErrorKind::WouldBlock | IoErrorKind::TimedOut | IoErrorKind::Interrupted
                        ) {
                            log::warn!("accept failed, retrying: {}", e);
                            thread::sleep(Duration::from_millis(50));
                        }
                        continue;
                    }
                    Err(e) => {
                        log::error!("Error accepting new client: {}", e);
                        inside_messages.push(e.into());
                        break;
                    }
                }
            }
            log::debug!("Terminating accept thread");
        })?;

        // result
        Ok(Server {
            messages,
            active,
            per_ip,
            refused,
            evicted,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        // jack patch: upstream left this `unimplemented!()`.
        self.active.load(Relaxed)
    }

    /// jack patch: connections open now from `ip`'s key (`client_key`: an
    /// IPv4-mapped IPv6 address is its IPv4 address, an IPv6 address counts
    /// with its /64).
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_ip.open(ip)
    }

    /// jack patch: idle connections the accept thread closed to make room at
    /// `max_connections` since the server started.
    pub fn evicted_connections(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// jack patch: connections the accept thread refused since the server
    /// started, by cap.
    pub fn refused_connections(&self) -> RefusedConnections {
        RefusedConnections {
            max_connections: self.refused.max_connections.load(Relaxed),
            max_connections_per_ip: self.refused.max_connections_per_ip.load(Relaxed),
        }
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

/// jack patch: counts one open connection for as long as it lives.
struct ActiveGuard(Arc<std::sync::atomic::AtomicUsize>);

impl ActiveGuard {
    fn new(active: Arc<std::sync::atomic::AtomicUsize>) -> ActiveGuard {
        active.fetch_add(1, Relaxed);
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// jack patch: the caps `from_listener_capped` sets, and the answer above them.
struct Cap {
    max_connections: usize,
    max_connections_per_ip: usize,
    header_timeout: Duration,
    overload_response: Vec<u8>,
}

/// jack patch: which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Cap {
    /// Whether a new connection from `peer` (`None`: a Unix socket, not
    /// counted per address) may have a thread: the address's cap first
    /// (whose count it takes when it passes), then the node-wide cap, where
    /// an idle connection makes room if there is one (then `true`).
    fn admit(
        &self,
        conns: &util::Conns,
        per_ip: &PerIp,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<(Option<IpGuard>, bool), Over> {
        let guard = match peer {
            None => None,
            Some(addr) => Some(
                per_ip
                    .acquire(addr.ip(), self.max_connections_per_ip)
                    .ok_or(Over::MaxConnectionsPerIp)?,
            ),
        };
        if conns.len() < self.max_connections {
            return Ok((guard, false));
        }
        if conns.evict_one() {
            return Ok((guard, true));
        }
        Err(Over::MaxConnections)
    }
}

/// jack patch: writes the overload answer on a connection over a cap and
/// closes it, in the accept thread (the write goes into an empty socket
/// buffer: it does not wait on the client).
fn refuse(sock: &mut Connection, overload_response: &[u8]) {
    use std::io::Write as _;
    let _ = sock.write_all(overload_response);
    let _ = sock.shutdown(Shutdown::Both);
}

/// jack patch: connections the accept thread refused since the server
/// started (`Server::refused_connections`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedConnections {
    /// Accepted while `max_connections` were open.
    pub max_connections: u64,
    /// Accepted while `max_connections_per_ip` were open from that address.
    pub max_connections_per_ip: u64,
}

/// jack patch: the counters behind `RefusedConnections`.
#[derive(Default)]
struct RefusedCounters {
    max_connections: AtomicU64,
    max_connections_per_ip: AtomicU64,
}

impl RefusedCounters {
    fn count(&self, reason: Over) {
        let counter = match reason {
            Over::MaxConnections => &self.max_connections,
            Over::MaxConnectionsPerIp => &self.max_connections_per_ip,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// jack patch: open connections per client address. An address is in the
/// map only while it has a connection open, so the map holds at most
/// `max_connections` entries.
#[derive(Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerIp {
    /// Counts one more connection from `ip`'s key unless `max` are open
    /// from it.
    fn acquire(&self, ip: IpAddr, max: usize) -> Option<IpGuard> {
        let ip = client_key(ip);
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.get(&ip).copied().unwrap_or(0);
        if n >= max {
            return None;
        }
        open.insert(ip, n + 1);
        Some(IpGuard {
            per_ip: self.clone(),
            ip,
        })
    }

    fn open(&self, ip: IpAddr) -> usize {
        let open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

/// jack patch: one open connection from `ip`, counted until dropped.
struct IpGuard {
    per_ip: PerIp,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut open = self.per_ip.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// jack patch: errors from `accept` after which the listener still works.
fn accept_error_is_transient(e: &IoError) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO, EPERM (firewall) on Linux.
    const TRANSIENT_ERRNO: [i32; 6] = [24, 23, 105, 12, 71, 1];
    matches!(
        e.kind(),
        IoErrorKind::WouldBlock
            | IoErrorKind::TimedOut
            | IoErrorKind::Interrupted
            | IoErrorKind::ConnectionAborted
            | IoErrorKind::ConnectionReset
    ) || e.raw_os_error().is_some_and(|n| TRANSIENT_ERRNO.contains(&n))
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
