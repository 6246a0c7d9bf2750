//! Plain-HTTP file bodies straight from the socket into the `.part`.
//!
//! ureq reads a body into its input buffer and the transfer copies it out
//! again: two copies of every byte (kernel to ureq, ureq to the transfer)
//! before the `write` makes the third. On a NAS CPU, and on loopback where
//! copying is all there is, those copies are most of a download's cost. So
//! for an `http://` peer whose answer is `Content-Length`-delimited (no
//! `Transfer-Encoding`), the transfer takes the socket over once ureq's
//! buffer is drained and moves the rest with `splice(2)`: socket to a pipe
//! (the kernel hands the received pages along) and pipe to the `.part`
//! (one copy, into the page cache). Where `splice` is refused (a
//! filesystem without it), it falls back to `read`/`write` on the socket,
//! which still saves ureq's copy. TLS peers keep the ureq path.
//!
//! How the socket changes hands: the peer client's agent opens its TCP
//! connections with [`DirectTcp`], whose transport (a plain TCP transport
//! like ureq's own) can give a clone of its socket away. ureq is synchronous: a body is read, and the transport's
//! `await_input` called, on the thread that reads the body, and only once
//! ureq's input buffer has nothing left it can use. While that thread is
//! [`arm`]ed and the buffer is empty, the transport does not read: it
//! leaves a clone of the socket in the thread's slot and answers with an
//! error, which the transfer takes as "the socket is yours"
//! ([`Armed::take`]). No byte is lost (the hand-over happens only with the
//! buffer empty) and the connection never goes back to ureq's pool (ureq
//! saw an error). The socket keeps ureq's per-read timeout (`SO_RCVTIMEO`,
//! which `splice` honours too), so a stall is still a stall.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use rustix::pipe::{SpliceFlags, fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, splice};
use ureq::unversioned::resolver::DefaultResolver;

use crate::download::pinned::PinnedTls;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    RustlsConnector, Transport,
};

/// What the armed transport answers instead of reading (never seen by a
/// caller that did not arm).
const HANDED_OVER: &str = "body handed over to the transfer";

/// Bytes moved per `splice` from the socket: the pipe's capacity is asked
/// to be this (it holds page references, not copies).
const PIPE_BYTES: usize = crate::download::transfer::READ_BUFFER;

thread_local! {
    static SLOT: RefCell<Slot> = const { RefCell::new(Slot::Off) };
}

enum Slot {
    /// Transports read as usual.
    Off,
    /// The next transport asked for input with an empty buffer hands its
    /// socket over.
    Armed,
    /// Handed over, not yet taken.
    Handed(TcpStream),
}

/// While alive, this thread's next body read that would wait on a
/// [`DirectTcp`] socket hands the socket over instead. Disarms when dropped.
#[derive(Debug)]
pub struct Armed(());

/// Arms this thread: see [`Armed`]. Arm only after the response head is
/// read, for a `Content-Length`-delimited body on a plain TCP connection.
pub fn arm() -> Armed {
    SLOT.with(|s| *s.borrow_mut() = Slot::Armed);
    Armed(())
}

impl Armed {
    /// The socket, if the last failed read was the hand-over; the bytes
    /// still to come are on it, in order, after everything already read.
    pub fn take(&self) -> Option<TcpStream> {
        SLOT.with(|s| {
            let mut slot = s.borrow_mut();
            match std::mem::replace(&mut *slot, Slot::Off) {
                Slot::Handed(socket) => Some(socket),
                other => {
                    *slot = other;
                    None
                }
            }
        })
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        SLOT.with(|s| *s.borrow_mut() = Slot::Off);
    }
}

/// An agent with ureq's default connector chain (CONNECT proxies, TCP,
/// rustls), its TCP connector swapped for [`DirectTcp`] and [`PinnedTls`]
/// before ureq's rustls (it takes the requests with a peer's `ca_file`).
/// Every agent of the process is made here, so one chain is compiled in
/// (the ARM binaries are kept under 5 MiB).
pub fn agent(config: ureq::config::Config) -> ureq::Agent {
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(DirectTcp)
            .chain(PinnedTls)
            .chain(RustlsConnector::default());
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

/// Takes the place of ureq's `TcpConnector` in the agent's chain: the same
/// connection, through a transport that can hand its socket over.
#[derive(Debug, Default)]
pub struct DirectTcp;

impl<In: Transport> Connector<In> for DirectTcp {
    type Out = Either<In, DirectTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(inner) = chained {
            // A proxy connector made the connection already.
            return Ok(Some(Either::A(inner)));
        }
        let config = details.config;
        let stream = connect(details)?;
        if config.no_delay() {
            stream.set_nodelay(true)?;
        }
        let stream = Arc::new(stream);
        (details.register_shutdown)(Arc::downgrade(&stream) as _)?;
        Ok(Some(Either::B(DirectTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            read_timeout: None,
            write_timeout: None,
        })))
    }
}

/// Tries each resolved address in turn within the connect timeout.
fn connect(details: &ConnectionDetails) -> Result<TcpStream, ureq::Error> {
    let deadline = details
        .timeout
        .not_zero()
        .map(|t| std::time::Instant::now() + *t);
    let mut last = None;
    for addr in &details.addrs {
        let attempt = match deadline {
            Some(at) => {
                let left = at.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                TcpStream::connect_timeout(addr, left)
            }
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut => {
            ureq::Error::Timeout(ureq::Timeout::Connect)
        }
        Some(e) => ureq::Error::Io(e),
        None => ureq::Error::Timeout(ureq::Timeout::Connect),
    })
}

/// A plain TCP transport, as ureq's own (which is not public) does it, plus
/// a clone of its socket to hand over.
#[derive(Debug)]
pub struct DirectTransport {
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// The socket's timeouts as last set, to skip the syscall when unchanged.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl DirectTransport {
    fn armed_and_drained(&self) -> bool {
        self.buffers.input().is_empty() && SLOT.with(|s| matches!(*s.borrow(), Slot::Armed))
    }
}

/// The timeout `timeout` allows for one read or write, or the error that it
/// has run out.
fn budget(timeout: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if !timeout.after.is_not_happening() && timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|t| *t))
}

/// A socket timeout is `TimedOut` or `WouldBlock`: ureq's timeout error.
fn io_error(e: io::Error, timeout: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for DirectTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let limit = budget(timeout)?;
        if limit != self.write_timeout {
            self.stream.set_write_timeout(limit)?;
            self.write_timeout = limit;
        }
        let output = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(output)
            .map_err(|e| io_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if self.armed_and_drained() {
            let socket = self.stream.try_clone()?;
            SLOT.with(|s| *s.borrow_mut() = Slot::Handed(socket));
            return Err(ureq::Error::Io(io::Error::other(HANDED_OVER)));
        }
        let timeout = timeout.for_read();
        let limit = budget(timeout)?;
        if limit != self.read_timeout {
            self.stream.set_read_timeout(limit)?;
            self.read_timeout = limit;
        }
        let input = self.buffers.input_append_buf();
        let n = loop {
            match (&*self.stream).read(input) {
                Ok(n) => break n,
                // A signal: the read is tried again, with the whole budget.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, timeout)),
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    /// Open when nothing is waiting to be read and the peer has not closed
    /// (a pooled connection is checked before it is used again).
    fn is_open(&mut self) -> bool {
        let stream = &*self.stream;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut one = [0u8; 1];
        let idle = matches!(
            (&*stream).read(&mut one),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        stream.set_nonblocking(false).is_ok() && idle
    }
}

/// Why a move from the socket stopped.
#[derive(Debug)]
pub enum Failed {
    /// Reading the socket (a reset, a stall past the read timeout).
    Net(io::Error),
    /// Writing the `.part`.
    Disk(io::Error),
}

/// A handed-over socket and how its bytes reach the file.
#[derive(Debug)]
pub struct Socket {
    stream: TcpStream,
    /// `(read end, write end)`; `None` once `splice` was refused (or no
    /// pipe could be made): `read`/`write` from then on.
    pipe: Option<(OwnedFd, OwnedFd)>,
    chunk: usize,
    idle: Duration,
}

impl Socket {
    /// `idle`: the read timeout, kept on the socket.
    pub fn new(stream: TcpStream, idle: Duration) -> Socket {
        // ureq set it already; set it again so nothing depends on that.
        let _ = stream.set_read_timeout(Some(idle));
        let pipe = pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok();
        let chunk = match &pipe {
            Some((_, w)) => fcntl_setpipe_size(w, PIPE_BYTES)
                .or_else(|_| fcntl_getpipe_size(w))
                .unwrap_or(PIPE_BYTES)
                .min(PIPE_BYTES),
            None => PIPE_BYTES,
        };
        Socket {
            stream,
            pipe,
            chunk,
            idle,
        }
    }

    /// The socket, for what comes after the bytes asked for.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether bytes move with `splice` (the pipe is still in use).
    pub fn splicing(&self) -> bool {
        self.pipe.is_some()
    }

    /// Moves up to `want` bytes from the socket into `part` at `at`; `Ok(0)`
    /// at the end of the stream. `check(n)` runs before `n` bytes are
    /// written (the fault seam). `buf` serves the `read`/`write` fallback.
    pub fn move_into(
        &mut self,
        part: &File,
        at: u64,
        want: usize,
        buf: &mut [u8],
        check: impl FnOnce(usize) -> io::Result<()>,
    ) -> Result<usize, Failed> {
        if self.pipe.is_some() {
            match self.splice_into(part, at, want, buf, check) {
                Splice::Moved(r) => return r,
                // Nothing was taken from the socket: read it instead.
                Splice::Refused(check) => {
                    self.pipe = None;
                    return self.copy_into(part, at, want, buf, check);
                }
            }
        }
        self.copy_into(part, at, want, buf, check)
    }

    fn splice_into<C: FnOnce(usize) -> io::Result<()>>(
        &mut self,
        part: &File,
        at: u64,
        want: usize,
        buf: &mut [u8],
        check: C,
    ) -> Splice<C> {
        let Some((read_end, write_end)) = &self.pipe else {
            return Splice::Refused(check);
        };
        let n = loop {
            match splice(
                &self.stream,
                None,
                write_end,
                None,
                want.min(self.chunk),
                SpliceFlags::MOVE,
            ) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                    return Splice::Refused(check);
                }
                Err(e) => return Splice::Moved(Err(Failed::Net(self.net_error(e.into())))),
            }
        };
        if n == 0 {
            return Splice::Moved(Ok(0));
        }
        if let Err(e) = check(n) {
            return Splice::Moved(Err(Failed::Disk(e)));
        }
        let mut done = 0;
        while done < n {
            let mut off = at + done as u64;
            match splice(
                read_end,
                None,
                part,
                Some(&mut off),
                n - done,
                SpliceFlags::MOVE,
            ) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "splice wrote nothing");
                    return Splice::Moved(Err(Failed::Disk(e)));
                }
                Ok(k) => done += k,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                    // This filesystem takes no splice: the bytes in the
                    // pipe go by read and write, and so does the rest.
                    let result = drain(read_end, part, at + done as u64, n - done, buf);
                    self.pipe = None;
                    return Splice::Moved(result.map(|()| n).map_err(Failed::Disk));
                }
                Err(e) => return Splice::Moved(Err(Failed::Disk(e.into()))),
            }
        }
        Splice::Moved(Ok(n))
    }

    fn copy_into(
        &mut self,
        part: &File,
        at: u64,
        want: usize,
        buf: &mut [u8],
        check: impl FnOnce(usize) -> io::Result<()>,
    ) -> Result<usize, Failed> {
        let want = want.min(buf.len());
        let n = loop {
            match (&self.stream).read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failed::Net(self.net_error(e))),
            }
        };
        if n == 0 {
            return Ok(0);
        }
        check(n).map_err(Failed::Disk)?;
        part.write_all_at(&buf[..n], at).map_err(Failed::Disk)?;
        Ok(n)
    }

    /// A read that timed out says so in the words of a stall.
    fn net_error(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no bytes from the peer for {} ms", self.idle.as_millis()),
            ),
            _ => e,
        }
    }
}

enum Splice<C> {
    /// Bytes moved (or the move failed after the socket was read).
    Moved(Result<usize, Failed>),
    /// `splice` from the socket was refused before anything moved; the
    /// check was not used.
    Refused(C),
}

/// Writes the `n` bytes waiting in the pipe to `part` at `at` by `read`
/// and `write`.
fn drain(pipe: &OwnedFd, part: &File, mut at: u64, mut n: usize, buf: &mut [u8]) -> io::Result<()> {
    while n > 0 {
        let want = n.min(buf.len());
        let k = match rustix::io::read(pipe, &mut buf[..want]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "pipe ran dry")),
            Ok(k) => k,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        part.write_all_at(&buf[..k], at)?;
        at += k as u64;
        n -= k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn agent() -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .input_buffer_size(4096)
            .timeout_per_read(Some(std::time::Duration::from_secs(5)))
            .build();
        let connector = ().chain(DirectTcp);
        ureq::Agent::with_parts(
            config,
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        )
    }

    /// Reads a request head off `conn`.
    fn read_request(conn: &mut TcpStream) {
        let mut head = Vec::new();
        let mut one = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut one).unwrap(), 1);
            head.push(one[0]);
        }
    }

    #[test]
    fn an_armed_read_hands_over_the_socket_after_what_ureq_buffered() {
        let body = pattern(1000);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f", listener.local_addr().unwrap());
        let (go, went) = crossbeam_channel::bounded::<()>(1);
        let sent = body.clone();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            read_request(&mut conn);
            let mut first = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
            first.extend_from_slice(&sent[..300]);
            conn.write_all(&first).unwrap();
            // The rest only once the client holds the socket.
            went.recv().unwrap();
            conn.write_all(&sent[300..]).unwrap();
        });
        let mut resp = agent().get(&url).call().unwrap();
        let armed = arm();
        let mut reader = resp.body_mut().as_reader();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let socket = loop {
            match reader.read(&mut buf) {
                Ok(0) => panic!("the body ended before the hand-over"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break armed.take().expect("the socket was handed over"),
            }
        };
        assert!(
            got.len() <= 300,
            "read {} bytes before the hand-over",
            got.len()
        );
        go.send(()).unwrap();
        let mut rest = Vec::new();
        (&socket)
            .take(1000 - got.len() as u64)
            .read_to_end(&mut rest)
            .unwrap();
        got.extend_from_slice(&rest);
        assert!(got == body, "the bytes differ across the hand-over");
        drop(armed);
        server.join().unwrap();
    }

    #[test]
    fn unarmed_it_is_a_plain_transport_and_keeps_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            // Both requests on the one connection (keep-alive).
            let (mut conn, _) = listener.accept().unwrap();
            for body in ["first", "second"] {
                read_request(&mut conn);
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                conn.write_all(head.as_bytes()).unwrap();
                conn.write_all(body.as_bytes()).unwrap();
            }
        });
        let agent = agent();
        for want in ["first", "second"] {
            let mut resp = agent.get(&url).call().unwrap();
            assert_eq!(resp.body_mut().read_to_string().unwrap(), want);
        }
        server.join().unwrap();
    }

    /// A connected pair over loopback: the server side writes `data` and
    /// closes, or holds the connection silent when `data` is `None`.
    fn socket_with(data: Option<Vec<u8>>) -> (TcpStream, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            match data {
                Some(d) => conn.write_all(&d).unwrap(),
                None => std::thread::sleep(std::time::Duration::from_millis(1500)),
            }
        });
        (TcpStream::connect(addr).unwrap(), server)
    }

    fn move_all(socket: &mut Socket, part: &File, at: u64) -> u64 {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pos = at;
        loop {
            match socket.move_into(part, pos, 1 << 20, &mut buf, |_| Ok(())) {
                Ok(0) => return pos - at,
                Ok(n) => pos += n as u64,
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn bytes_land_at_their_offset_by_splice_and_by_read_and_write() {
        let data = pattern(3 * 1024 * 1024 + 5);
        for splice in [true, false] {
            let (stream, server) = socket_with(Some(data.clone()));
            let mut socket = Socket::new(stream, std::time::Duration::from_secs(5));
            if !splice {
                socket.pipe = None;
            }
            assert_eq!(socket.splicing(), splice);
            let part = tempfile::tempfile().unwrap();
            part.write_all_at(b"kept", 0).unwrap();
            let moved = move_all(&mut socket, &part, 1000);
            assert_eq!(moved, data.len() as u64);
            assert_eq!(socket.splicing(), splice, "splice was refused");
            let mut back = vec![0u8; data.len()];
            part.read_exact_at(&mut back, 1000).unwrap();
            assert!(back == data, "splice {splice}: bytes differ");
            let mut head = [0u8; 4];
            part.read_exact_at(&mut head, 0).unwrap();
            assert_eq!(&head, b"kept");
            server.join().unwrap();
        }
    }

    #[test]
    fn a_refused_write_writes_nothing_and_says_disk() {
        for splice in [true, false] {
            let (stream, server) = socket_with(Some(pattern(100_000)));
            let mut socket = Socket::new(stream, std::time::Duration::from_secs(5));
            if !splice {
                socket.pipe = None;
            }
            let part = tempfile::tempfile().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let full = |_| Err(io::Error::new(io::ErrorKind::StorageFull, "no space"));
            match socket.move_into(&part, 0, 1 << 20, &mut buf, full) {
                Err(Failed::Disk(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
                other => panic!("splice {splice}: {other:?}"),
            }
            assert_eq!(part.metadata().unwrap().len(), 0);
            server.join().unwrap();
        }
    }

    #[test]
    fn a_silent_peer_is_a_stall_after_the_read_timeout() {
        for splice in [true, false] {
            let (stream, server) = socket_with(None);
            let mut socket = Socket::new(stream, std::time::Duration::from_millis(200));
            if !splice {
                socket.pipe = None;
            }
            let part = tempfile::tempfile().unwrap();
            let mut buf = vec![0u8; 1024];
            let started = Instant::now();
            match socket.move_into(&part, 0, 1024, &mut buf, |_| Ok(())) {
                Err(Failed::Net(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                    assert!(
                        e.to_string().contains("no bytes from the peer for 200 ms"),
                        "{e}"
                    );
                }
                other => panic!("splice {splice}: {other:?}"),
            }
            assert!(started.elapsed() < std::time::Duration::from_millis(1400));
            server.join().unwrap();
        }
    }
}
