//! jack patch: what the server knows of one open connection while it
//! lives: whether it waits for the first byte of a request (idle, and may
//! be closed to make room at the connection cap), is reading a request head
//! (which must arrive whole before the head deadline), or is being answered;
//! and the socket, to move its read timeout and to close it.

use std::convert::TryFrom; // jack patch
use std::collections::HashMap;
use std::io::{Error as IoError, ErrorKind, Result as IoResult};
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// Waiting for the first byte of a request (a fresh connection, or a
/// keep-alive one between requests).
const AWAITING: u8 = 0;
/// Reading a request head, or draining a body left unread: the deadline runs.
const HEAD: u8 = 1;
/// A request was read and is being answered.
const ANSWERING: u8 = 2;
/// Closed by the accept thread to make room.
const EVICTED: u8 = 3;

pub(crate) struct ConnState {
    id: u64,
    /// The client's address key (`client_key`); `None` for a Unix socket.
    key: Option<IpAddr>,
    socket: Connection,
    /// The socket's read timeout when accepted: what governs an idle
    /// connection.
    idle_timeout: Option<Duration>,
    /// How long a whole request head may take from its first byte.
    head_timeout: Option<Duration>,
    phase: AtomicU8,
    /// `Some` while the socket's read timeout is not `idle_timeout`.
    deadline: Mutex<Option<Instant>>,
    /// Milliseconds since `epoch` when the connection last became idle.
    idle_since: AtomicU64,
    epoch: Instant,
    /// Requests read whose answer is not written yet.
    pending: AtomicUsize,
}

impl ConnState {
    pub(crate) fn new(
        id: u64,
        key: Option<IpAddr>,
        socket: Connection,
        head_timeout: Option<Duration>,
        epoch: Instant,
    ) -> ConnState {
        let idle_timeout = socket.read_timeout().ok().flatten();
        let state = ConnState {
            id,
            key,
            socket,
            idle_timeout,
            head_timeout,
            phase: AtomicU8::new(AWAITING),
            deadline: Mutex::new(None),
            idle_since: AtomicU64::new(0),
            epoch,
            pending: AtomicUsize::new(0),
        };
        state.touch();
        state
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since.store(ms, Ordering::Relaxed);
    }

    /// The connection waits for the first byte of its next request.
    pub(crate) fn await_head(&self) -> IoResult<()> {
        self.touch();
        self.disarm();
        self.set_phase(AWAITING)
    }

    /// A request head (or a body left unread) is being read: the deadline
    /// starts now.
    pub(crate) fn begin_head(&self) -> IoResult<()> {
        self.set_phase(HEAD)?;
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) =
            self.head_timeout.map(|t| Instant::now() + t);
        Ok(())
    }

    /// The head is read: the request is being answered.
    pub(crate) fn answering(&self) -> IoResult<()> {
        self.disarm();
        self.set_phase(ANSWERING)
    }

    fn set_phase(&self, to: u8) -> IoResult<()> {
        let mut now = self.phase.load(Ordering::Acquire);
        loop {
            if now == EVICTED {
                return Err(evicted());
            }
            match self
                .phase
                .compare_exchange(now, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(seen) => now = seen,
            }
        }
    }

    /// Back to the idle read timeout.
    fn disarm(&self) {
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        if deadline.take().is_some() {
            let _ = self.socket.set_read_timeout(self.idle_timeout);
        }
    }

    /// Before a read from the socket: while a head is read, the socket's
    /// read timeout is what is left of the deadline (none left: `TimedOut`).
    pub(crate) fn before_read(&self) -> IoResult<()> {
        match self.phase.load(Ordering::Acquire) {
            EVICTED => Err(evicted()),
            HEAD => {
                let deadline = *self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
                match deadline {
                    None => Ok(()),
                    Some(at) => {
                        let left = at.saturating_duration_since(Instant::now());
                        if left < Duration::from_millis(1) {
                            return Err(IoError::new(ErrorKind::TimedOut, "request head too slow"));
                        }
                        let left = self.idle_timeout.map_or(left, |idle| left.min(idle));
                        self.socket.set_read_timeout(Some(left))
                    }
                }
            }
            _ => Ok(()),
        }
    }

    /// After a read of `n` bytes: the first byte of a request starts its
    /// head (and its deadline).
    pub(crate) fn after_read(&self, n: usize) -> IoResult<()> {
        if n > 0 && self.phase.load(Ordering::Acquire) == AWAITING {
            self.begin_head()?;
        }
        Ok(())
    }

    /// One more request whose answer is not written yet.
    pub(crate) fn request_read(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// An answer is written (its writer dropped).
    pub(crate) fn answered(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.touch();
    }

    /// Idle: waiting for a request, with no answer being written.
    fn idle(&self) -> bool {
        self.phase.load(Ordering::Acquire) == AWAITING && self.pending.load(Ordering::Acquire) == 0
    }

    /// Closes the connection if it is idle; whether it was.
    fn evict(&self) -> bool {
        if !self.idle()
            || self
                .phase
                .compare_exchange(AWAITING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        let _ = self.socket.shutdown(Shutdown::Both);
        true
    }

    /// Writes `bytes` (a complete answer) and closes the connection.
    pub(crate) fn refuse(&self, bytes: &[u8]) {
        use std::io::Write as _;
        let _ = (&self.socket).write_all(bytes);
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

fn evicted() -> IoError {
    IoError::new(ErrorKind::ConnectionAborted, "closed to make room")
}

impl<'a> std::io::Write for &'a Connection {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Connection::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Connection::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        Ok(())
    }
}

/// The address key connections are counted by: an IPv4 address (an
/// IPv4-mapped IPv6 address is its IPv4 address), or an IPv6 address's /64
/// (one subscriber's network: a client has all of it).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The open connections, for making room at the cap.
#[derive(Clone, Default)]
pub(crate) struct Conns(Arc<Mutex<HashMap<u64, Arc<ConnState>>>>);

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Counts `state` until the guard drops (or it is evicted).
    pub(crate) fn insert(&self, state: Arc<ConnState>) -> ConnGuard {
        let id = state.id;
        self.lock().insert(id, state);
        ConnGuard {
            conns: self.clone(),
            id,
        }
    }

    /// Closes one idle connection: from the address key holding the most
    /// connections, the one idle longest. Whether one was closed.
    pub(crate) fn evict_one(&self) -> bool {
        let mut open = self.lock();
        let mut per_key: HashMap<Option<IpAddr>, usize> = HashMap::new();
        for c in open.values() {
            *per_key.entry(c.key).or_insert(0) += 1;
        }
        let mut candidates: Vec<(usize, u64, u64)> = open
            .values()
            .filter(|c| c.idle())
            .map(|c| {
                let n = per_key.get(&c.key).copied().unwrap_or(0);
                (n, c.idle_since.load(Ordering::Relaxed), c.id)
            })
            .collect();
        // Most connections first, then the oldest idle.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, id) in candidates {
            if let Some(c) = open.get(&id) {
                if c.evict() {
                    open.remove(&id);
                    return true;
                }
            }
        }
        false
    }
}

/// One connection counted in `Conns` until dropped.
pub(crate) struct ConnGuard {
    conns: Conns,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
    }
}
