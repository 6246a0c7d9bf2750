//! The control lane: file bodies and other long answers are sent by their
//! own bounded pool of `stream-N` threads, so the `http-N` handler threads
//! that answer `/ping`, `/handshake`, `/peer/search`, Torznab, `/api/v2`,
//! `/api/v1`, `/metrics` and `/ui` never wait on a client that reads slowly.
//!
//! A handler thread decides the answer (status, head, range), takes a place
//! for the caller's key ([`StreamLimits::per_key`]: a friend's key, else the
//! client's address) and hands the request's writer, socket and body to the
//! pool through a bounded channel; when the key has its streams in flight,
//! or the pool and its queue are full, it answers a quick `503` with
//! `Retry-After` itself and waits on nothing. A stream thread writes the
//! head and the body under a short socket write timeout (so a trickle cannot
//! re-arm a long one) and cuts the connection when the body's average rate
//! over a window falls below `min_send_rate`, when no byte is accepted for
//! `write_timeout_ms`, when the file ends early, or at shutdown: a body never
//! ends early while looking complete. A library file's bytes are taken from
//! the upload limit's bucket (`rate::UPLOAD`) chunk by chunk before each
//! `sendfile`; time spent waiting there is excused from the pace. The
//! library bodies in flight are counted ([`library_bodies`]), so work that
//! yields to friends (the background hasher) can wait. This module must not know a route, nor
//! send a body on a handler thread.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::http::server::Shared;
use crate::rate::UPLOAD;

/// How many bodies the lane sends at once, per key, and how slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// `server.stream_threads`: bodies sent at once (as many may queue).
    pub threads: usize,
    /// `server.max_streams_per_key`: bodies of one key in flight.
    pub per_key: usize,
    /// `server.min_send_rate` in bytes/s (0: no minimum).
    pub min_rate: u64,
    /// `server.send_rate_window_ms`.
    pub window: Duration,
    /// `server.write_timeout_ms`: no byte accepted this long cuts a body.
    pub stall: Duration,
}

impl StreamLimits {
    /// The limits of `[server]`.
    pub fn of(server: &crate::config::ServerConfig) -> StreamLimits {
        StreamLimits {
            threads: server.stream_threads,
            per_key: server.max_streams_per_key,
            min_rate: server.min_send_rate,
            window: server.send_rate_window,
            stall: server.write_timeout,
        }
    }

    /// The socket write timeout inside the send loop: short, so the rate
    /// and a stop are looked at between two waits.
    fn slice(&self) -> Duration {
        (self.window / 4)
            .min(self.stall)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10))
    }
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            threads: 16,
            per_key: 4,
            min_rate: 8192,
            window: Duration::from_secs(30),
            stall: Duration::from_secs(60),
        }
    }
}

/// Bytes asked of one `sendfile` call.
const FILE_CHUNK: u64 = 8 * 1024 * 1024;

/// What a stream sends after its head.
pub(crate) enum Payload {
    /// Nothing more: the answer is all in `Stream::bytes`.
    None,
    /// `len` bytes of `file` from `offset`.
    File { file: File, offset: u64, len: u64 },
}

/// One answer handed to the lane: tiny_http's writer (held until the body
/// is out, so the connection's next answer waits), the socket, the head
/// (and for an answer in memory its body), then the file's slice.
pub(crate) struct Stream {
    pub writer: Box<dyn Write + Send>,
    pub socket: Option<TcpStream>,
    pub bytes: Vec<u8>,
    pub payload: Payload,
    /// A library file's bytes count as served in `/metrics`.
    pub library: bool,
    pub slot: KeySlot,
}

/// Why the lane refused an answer: both get a quick `503` with
/// `Retry-After` (retried by a jack downloader, `PROTOCOL.md` §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The key has `per_key` bodies in flight.
    Key,
    /// Every stream thread is busy and as many answers wait.
    Full,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Key => "Too many downloads at once for this key",
            Refusal::Full => "Too many downloads at once",
        }
    }
}

type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// A key's place in the lane, given back when the stream ends however it
/// ends.
pub(crate) struct KeySlot {
    counts: Counts,
    key: String,
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The handler threads' end of the lane.
pub(crate) struct Lane {
    jobs: Sender<Stream>,
    counts: Counts,
    per_key: usize,
}

impl Lane {
    /// Starts `limits.threads` stream threads; they end once every `Lane`
    /// is dropped and their channel is empty.
    pub fn start(
        limits: StreamLimits,
        shared: &Arc<Shared>,
    ) -> Result<(Lane, Vec<JoinHandle<()>>)> {
        let (jobs, queue) = crossbeam_channel::bounded(limits.threads.max(1));
        let mut handles = Vec::with_capacity(limits.threads);
        for i in 1..=limits.threads {
            let (queue, shared): (Receiver<Stream>, _) = (queue.clone(), shared.clone());
            let handle = std::thread::Builder::new()
                .name(format!("stream-{i}"))
                .spawn(move || {
                    for stream in queue.iter() {
                        deliver(stream, &shared, limits);
                    }
                })
                .map_err(|e| Error::io("cannot start a stream thread", e))?;
            handles.push(handle);
        }
        let lane = Lane {
            jobs,
            counts: Counts::default(),
            per_key: limits.per_key,
        };
        Ok((lane, handles))
    }

    /// A place for `key`, if it has fewer than `per_key` streams in flight.
    pub fn admit(&self, key: &str) -> Option<KeySlot> {
        let mut counts = self.counts.lock();
        let n = counts.entry(key.to_string()).or_insert(0);
        if *n >= self.per_key {
            return None;
        }
        *n += 1;
        Some(KeySlot {
            counts: self.counts.clone(),
            key: key.to_string(),
        })
    }

    /// Hands `stream` to a stream thread, or gives it back when the pool
    /// and its queue are full (never waits).
    pub fn send(&self, stream: Stream) -> std::result::Result<(), Stream> {
        match self.jobs.try_send(stream) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => Err(s),
        }
    }
}

/// Judges a body's pace: cut when the bytes accepted over a window average
/// below the minimum rate, or when none were accepted for `stall`. Pure:
/// the time comes in.
#[derive(Debug)]
pub(crate) struct Pace {
    min_rate: u64,
    window: Duration,
    stall: Duration,
    mark: Instant,
    at_mark: u64,
    last_progress: Instant,
    sent: u64,
}

impl Pace {
    pub fn new(limits: &StreamLimits, now: Instant) -> Pace {
        Pace {
            min_rate: limits.min_rate,
            window: limits.window,
            stall: limits.stall,
            mark: now,
            at_mark: 0,
            last_progress: now,
            sent: 0,
        }
    }

    /// Takes `waited` (time spent on the upload limit, not on the client)
    /// out of the judgement: the window and the stall start that much later.
    pub fn excuse(&mut self, waited: Duration) {
        self.mark += waited;
        self.last_progress += waited;
    }

    /// `sent` bytes accepted in all by `now`; `Err(why)` to cut.
    pub fn check(&mut self, now: Instant, sent: u64) -> std::result::Result<(), &'static str> {
        if sent > self.sent {
            self.sent = sent;
            self.last_progress = now;
        }
        if now.saturating_duration_since(self.last_progress) >= self.stall {
            return Err("no byte accepted for write_timeout_ms");
        }
        let elapsed = now.saturating_duration_since(self.mark);
        if self.min_rate > 0 && elapsed >= self.window {
            let moved = u128::from(self.sent - self.at_mark) * 1000;
            if moved < u128::from(self.min_rate) * elapsed.as_millis() {
                return Err("slower than min_send_rate");
            }
            self.mark = now;
            self.at_mark = self.sent;
        }
        Ok(())
    }
}

/// Library file bodies being sent right now, by every lane of the process
/// (the background hasher waits while there are any: `serve/hasher`).
static LIBRARY_BODIES: AtomicUsize = AtomicUsize::new(0);

/// How many library file bodies are being sent to clients right now: one
/// relaxed load.
pub fn library_bodies() -> usize {
    LIBRARY_BODIES.load(Ordering::Relaxed)
}

/// One library file body being sent, counted in [`LIBRARY_BODIES`] until
/// dropped.
struct LibraryBody;

impl LibraryBody {
    fn start() -> LibraryBody {
        LIBRARY_BODIES.fetch_add(1, Ordering::Relaxed);
        LibraryBody
    }
}

impl Drop for LibraryBody {
    fn drop(&mut self) {
        LIBRARY_BODIES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends one stream on a stream thread: the head (and an answer in
/// memory), then the file's slice with `sendfile(2)`; cuts the connection
/// on any shortfall.
fn deliver(mut stream: Stream, shared: &Shared, limits: StreamLimits) {
    let _sending = stream.library.then(LibraryBody::start);
    let socket = stream.socket.take();
    let _in_flight = socket.as_ref().and_then(|s| shared.track(s));
    // Wait for the connection's earlier answers (none, as tiny_http reads
    // the next request only after this one's writer is dropped).
    let ready = !shared.stopping() && stream.writer.flush().is_ok();
    let (complete, body) = match (&socket, ready) {
        (_, false) => (false, 0),
        (Some(sock), true) => {
            let before = sock.write_timeout().ok().flatten();
            let _ = sock.set_write_timeout(Some(limits.slice()));
            let library = stream.library;
            let done = send(
                sock,
                &stream.bytes,
                &stream.payload,
                library,
                shared,
                &limits,
            );
            if done.0 {
                let _ = sock.set_write_timeout(before);
            }
            done
        }
        (None, true) => {
            let done = copy_through(&mut stream, shared);
            if stream.library {
                crate::metrics::METRICS.served(done.1);
            }
            done
        }
    };
    // `tests/crash.rs` and `scripts/bench-crash.sh` add these lines up.
    match &stream.payload {
        Payload::File { offset, len, .. } => {
            log::debug!("file body sent offset={offset} bytes={body} of={len} complete={complete}")
        }
        Payload::None => log::debug!(
            "answer sent bytes={} complete={complete}",
            stream.bytes.len()
        ),
    }
    if !complete && let Some(sock) = &socket {
        // A reset, not a FIN behind the bytes still queued: a slow reader
        // learns at once that the body was cut.
        let _ = socket2::SockRef::from(sock).set_linger(Some(Duration::ZERO));
        let _ = sock.shutdown(Shutdown::Both);
    }
    drop(stream.writer);
}

/// The head (`bytes`), then the file: (every byte reached the socket, file
/// bytes sent). A `library` file's bytes are counted as served as they go.
fn send(
    mut sock: &TcpStream,
    bytes: &[u8],
    payload: &Payload,
    library: bool,
    shared: &Shared,
    limits: &StreamLimits,
) -> (bool, u64) {
    let mut pace = Pace::new(limits, Instant::now());
    let mut written = 0usize;
    while written < bytes.len() {
        if shared.stopping() {
            return (false, 0);
        }
        match sock.write(&bytes[written..]) {
            Ok(0) => return (false, 0),
            Ok(n) => written += n,
            Err(e) if waited(&e) => {}
            Err(_) => return (false, 0),
        }
        if let Err(why) = pace.check(Instant::now(), written as u64) {
            log::info!("answer cut: {why} bytes={written}");
            return (false, 0);
        }
    }
    let Payload::File { file, offset, len } = payload else {
        return (true, 0);
    };
    let (offset, len) = (*offset, *len);
    let head = written as u64;
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        if shared.stopping() {
            return (false, pos - offset);
        }
        let mut chunk = (end - pos).min(FILE_CHUNK);
        // A library file's bytes come out of the upload limit's bucket
        // (`rate`); the time waiting there is not the client's slowness.
        if library && UPLOAD.limited() {
            let waited = Instant::now();
            match UPLOAD.take(chunk, || shared.stopping()) {
                Some(granted) => chunk = granted,
                None => return (false, pos - offset),
            }
            pace.excuse(waited.elapsed());
        }
        let before = pos;
        let sent = rustix::fs::sendfile(
            sock,
            file,
            Some(&mut pos),
            usize::try_from(chunk).unwrap_or(usize::MAX),
        );
        if library {
            UPLOAD.refund(chunk - (pos - before));
        }
        match sent {
            Ok(0) => return (false, pos - offset), // the file shrank
            // `pos` has moved on; a library file's bytes count in
            // `/metrics` (and the page's served rate) as they go.
            Ok(n) if library => crate::metrics::METRICS.served(n as u64),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            // The client left.
            Err(_) => return (false, pos - offset),
        }
        if pos < end
            && let Err(why) = pace.check(Instant::now(), head + (pos - offset))
        {
            log::info!("file body cut: {why} bytes={} of={len}", pos - offset);
            return (false, pos - offset);
        }
    }
    (true, len)
}

/// Whether a write error is the short timeout running out.
fn waited(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// The same through tiny_http's writer (connections that are not TCP):
/// no short timeout there, the connection's own bounds it.
fn copy_through(stream: &mut Stream, shared: &Shared) -> (bool, u64) {
    let out = &mut stream.writer;
    if out.write_all(&stream.bytes).is_err() {
        return (false, 0);
    }
    let Payload::File { file, offset, len } = &stream.payload else {
        return (out.flush().is_ok(), 0);
    };
    let (mut file, len) = (file, *len);
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return (false, 0);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut remaining = len;
    while remaining > 0 && !shared.stopping() {
        let want = usize::try_from(remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        match file.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return (false, len - remaining),
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    return (false, len - remaining);
                }
                remaining -= n as u64;
            }
        }
    }
    (remaining == 0 && out.flush().is_ok(), len - remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(min_rate: u64, window_ms: u64, stall_ms: u64) -> StreamLimits {
        StreamLimits {
            threads: 1,
            per_key: 1,
            min_rate,
            window: Duration::from_millis(window_ms),
            stall: Duration::from_millis(stall_ms),
        }
    }

    #[test]
    fn pace_cuts_a_body_slower_than_the_minimum_over_a_window() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // 1000 B/s over 2 s windows: 1999 bytes in the first window is too few.
        let mut p = Pace::new(&limits(1000, 2000, 60_000), t0);
        assert_eq!(p.check(ms(1000), 1500), Ok(()));
        assert_eq!(p.check(ms(2000), 1999), Err("slower than min_send_rate"));
        // 2000 bytes is enough; the next window starts there.
        let mut p = Pace::new(&limits(1000, 2000, 60_000), t0);
        assert_eq!(p.check(ms(2000), 2000), Ok(()));
        assert_eq!(p.check(ms(3900), 2001), Ok(()), "the window is not over");
        assert_eq!(p.check(ms(4000), 3999), Err("slower than min_send_rate"));
        // A burst then nothing: judged on the window, not the whole body.
        let mut p = Pace::new(&limits(1000, 2000, 60_000), t0);
        assert_eq!(p.check(ms(2000), 1 << 30), Ok(()));
        assert_eq!(p.check(ms(4000), 1 << 30), Err("slower than min_send_rate"));
        // No minimum: only the stall.
        let mut p = Pace::new(&limits(0, 2000, 5000), t0);
        assert_eq!(p.check(ms(4000), 1), Ok(()));
        assert_eq!(p.check(ms(8999), 1), Ok(()));
        assert_eq!(
            p.check(ms(9000), 1),
            Err("no byte accepted for write_timeout_ms")
        );
    }

    #[test]
    fn time_waiting_on_the_upload_limit_is_not_the_clients_slowness() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // 1000 B/s over 2 s windows; the body waited 1.5 s on the bucket
        // and moved 600 bytes in the 0.5 s it was let go.
        let mut p = Pace::new(&limits(1000, 2000, 1000), t0);
        p.excuse(Duration::from_millis(1500));
        assert_eq!(p.check(ms(2000), 600), Ok(()));
        assert_eq!(p.check(ms(2900), 600), Ok(()), "the stall starts later too");
        // Without the excuse, the same is cut.
        let mut p = Pace::new(&limits(1000, 2000, 60_000), t0);
        assert_eq!(p.check(ms(2000), 600), Err("slower than min_send_rate"));
    }

    #[test]
    fn the_send_loop_timeout_is_short() {
        assert_eq!(StreamLimits::default().slice(), Duration::from_secs(1));
        assert_eq!(limits(1, 1000, 60_000).slice(), Duration::from_millis(250));
        assert_eq!(limits(1, 30_000, 100).slice(), Duration::from_millis(100));
    }

    #[test]
    fn a_key_gets_its_places_back_when_its_streams_end() {
        let lane = Lane {
            jobs: crossbeam_channel::bounded(1).0,
            counts: Counts::default(),
            per_key: 2,
        };
        let a = lane.admit("alice").unwrap();
        let b = lane.admit("alice").unwrap();
        assert!(lane.admit("alice").is_none());
        assert!(lane.admit("bob").is_some());
        drop(a);
        let _c = lane.admit("alice").unwrap();
        drop(b);
        assert_eq!(lane.counts.lock().get("alice"), Some(&1));
    }
}
