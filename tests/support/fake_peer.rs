//! A fake peer: a real HTTP server on 127.0.0.1 that serves one or more
//! files the way a jack node does, except when a switch tells it to
//! misbehave. It records what it was asked and what it sent.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one file request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A correct 206 from the requested offset.
    Honest,
    /// 200 with the whole file, whatever the Range.
    IgnoreRange,
    /// 206 whose Content-Range starts one byte after the asked offset.
    WrongStart,
    /// 206 whose Content-Range total is one more than the size.
    WrongTotal,
    /// 416 `bytes */(size + 5)`.
    Changed416,
    /// A correct 206 for only the next `n` bytes.
    Subset(u64),
    /// A correct 206 head, then only `n` body bytes, then the connection closes.
    Cut(u64),
    /// A correct 206 head, `n` body bytes, then silence for `stall`.
    Stall(u64, Duration),
    /// A correct 206 with another ETag.
    ChangedEtag,
    /// 206 with `Content-Type: multipart/byteranges`.
    Multipart,
    /// 206 with `Content-Encoding: gzip`.
    Gzip,
    /// This status with an empty body (and `Retry-After` when given).
    Status(u16, Option<String>),
    /// 200 without `Content-Length` (the body ends when the connection
    /// closes), another ETag, and this body instead of the file's.
    Unsized(Vec<u8>),
    /// Like `Unsized`, then silence for this long before the connection
    /// closes: a read past the body's end fails (times out).
    UnsizedStall(Vec<u8>, Duration),
    /// Like `Cut(n)`, then the file is replaced by these bytes (a new
    /// version: another ETag) before the connection closes.
    CutAndReplace(u64, Vec<u8>),
    /// The item is gone from now on (its lookups and requests answer 404),
    /// and this request is answered like `WrongTotal` (the file changed).
    Vanish,
    /// A correct 206 whose head and first `n` body bytes leave in one
    /// write (the client reads them with the head); the rest follows 50 ms
    /// later in odd-sized pieces.
    Glued(u64),
    /// A correct 206 with `Content-Length` and `Transfer-Encoding: chunked`
    /// both: the body is in chunked framing (RFC 9112 §6.3: the
    /// transfer coding wins, the length is ignored).
    ChunkedWithLength,
    /// A peer whose uplink cuts at byte `cut_at` and whose cache answers
    /// every resume with an earlier start, aligned down to `block` (one
    /// block before the asked offset when it is aligned already): a `206`
    /// from byte 0 ends at `cut_at`, a `206` from elsewhere starts early.
    EarlierStart { cut_at: u64, block: u64 },
    /// 200 without `Content-Length` carrying the whole current file (its
    /// ETag), then silence for the duration before the connection closes:
    /// the client's read one byte past the end fails by its idle timeout.
    UnsizedHold(Duration),
    /// A 200 without `Content-Length` and with another ETag whose body is
    /// the first `size` bytes of another, longer version (the file's bytes
    /// XOR 0x5A, and one byte more), with silence for `hold` before its
    /// last byte: a client that cannot prove the end must not take the
    /// first `size` bytes for a whole file (rule 12).
    UnsizedLongerHold(Duration),
    /// A correct 206 whose byte at this offset of the file (when the
    /// answer carries it) is flipped: a friend's failing disk.
    Corrupt(u64),
    /// A correct 206 whose `Repr-Digest` is another version's.
    OtherDigest,
    /// A correct 206 whose first byte is flipped (as a fallback: every
    /// answer of a corrupting source).
    CorruptFirst,
    /// Reviewer: an answer to a range that starts inside a piece (a split
    /// remainder) waits this long, then is a correct 206 whose first byte
    /// is flipped; answers from a piece boundary are honest.
    CorruptSplitLate(Duration),
    /// Reviewer: a correct 206 sent in bursts of 512 KiB, each after this
    /// pause (a bursty uplink: the client's read waits, then returns a
    /// full buffer).
    Bursty(Duration),
    /// A correct 206 sent at this many bytes per second, whatever the
    /// peer's rate (a friend's uplink that has all but stopped).
    Trickle(u64),
}

pub struct File {
    pub id: String,
    pub filename: String,
    pub data: Vec<u8>,
}

impl File {
    /// Item `id`, served as `<id>.mkv`.
    pub fn mkv(id: &str, data: &[u8]) -> File {
        File {
            id: id.into(),
            filename: format!("{id}.mkv"),
            data: data.to_vec(),
        }
    }
}

#[derive(Default)]
pub struct Record {
    /// Every request of any kind (handshake, release, file).
    pub all_requests: AtomicUsize,
    /// (file id, Range header) of every file request, in order.
    pub requests: Mutex<Vec<(String, Option<String>, Instant)>>,
    pub body_bytes: AtomicU64,
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
    /// Body bytes sent per file id.
    pub item_bytes: Mutex<std::collections::HashMap<String, u64>>,
}

pub struct FakePeer {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
    script: Arc<Mutex<VecDeque<Mode>>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

/// What the serving threads share besides the record.
struct Shared {
    files: Mutex<Vec<Served>>,
    /// The mode of a file request once the script is used up.
    fallback: Mutex<Mode>,
    /// Every file request first replaces the file by a new version, 1000
    /// bytes longer (a file that changes all the time).
    grow: AtomicBool,
    /// The Release JSON carries no `etag` (the file answers still do).
    hide_etag: AtomicBool,
    /// Digests (§2.6): the Release's `sha256`, `/pieces` and the file
    /// answers' `Repr-Digest`, of the version served.
    digests: AtomicBool,
    /// With digests: this whole-file digest instead of the file's, and
    /// no `/pieces` (a peer whose digest is stale or wrong).
    false_digest: Mutex<Option<[u8; 32]>>,
    /// The node went away: bodies under way stop, new connections are
    /// refused.
    gone: AtomicBool,
}

/// A file as served now: its bytes and ETag change when it is replaced.
#[derive(Clone)]
struct Served {
    id: String,
    filename: String,
    data: Arc<Vec<u8>>,
    etag: String,
    version: u64,
}

impl Shared {
    fn get(&self, id: &str) -> Option<Served> {
        let files = self.files.lock().unwrap();
        files.iter().find(|f| f.id == id).cloned()
    }

    fn replace(&self, id: &str, data: Vec<u8>) {
        let mut files = self.files.lock().unwrap();
        if let Some(f) = files.iter_mut().find(|f| f.id == id) {
            f.version += 1;
            f.etag = format!("\"fake-etag-{}\"", f.version);
            f.data = Arc::new(data);
        }
    }
}

pub const ETAG: &str = "\"fake-etag-1\"";

/// The film id of every release a peer with digests offers (its
/// `/peer/search` lists them all).
pub const TMDB_ID: u64 = 603;

impl FakePeer {
    /// Serves `files`; each file request takes the next mode of `script`
    /// (then `Honest`). `rate` limits each transfer (bytes per second).
    pub fn start(files: Vec<File>, script: Vec<Mode>, rate: Option<u64>) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Record::default());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let stop = Arc::new(AtomicBool::new(false));
        let served = files
            .into_iter()
            .map(|f| Served {
                id: f.id,
                filename: f.filename,
                data: Arc::new(f.data),
                etag: ETAG.to_string(),
                version: 1,
            })
            .collect();
        let shared = Arc::new(Shared {
            files: Mutex::new(served),
            fallback: Mutex::new(Mode::Honest),
            grow: AtomicBool::new(false),
            hide_etag: AtomicBool::new(false),
            digests: AtomicBool::new(false),
            false_digest: Mutex::new(None),
            gone: AtomicBool::new(false),
        });
        let (rec, scr, st, sh) = (record.clone(), script.clone(), stop.clone(), shared.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (rec, scr, sh) = (rec.clone(), scr.clone(), sh.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &sh, &scr, &rec, rate);
                });
            }
        });
        FakePeer {
            addr,
            record,
            script,
            shared,
            stop,
        }
    }

    /// The mode of every file request once the script is used up (`Honest`
    /// unless set).
    pub fn set_fallback(&self, mode: Mode) {
        *self.shared.fallback.lock().unwrap() = mode;
    }

    /// Replaces file `id` by a new version (another ETag).
    pub fn replace(&self, id: &str, data: Vec<u8>) {
        self.shared.replace(id, data);
    }

    /// From now on every file request first replaces the file by a new
    /// version 1000 bytes longer.
    pub fn change_on_every_request(&self) {
        self.shared.grow.store(true, Ordering::SeqCst);
    }

    /// Whether the Release JSON (`/peer/items/{id}`) leaves `etag` out.
    pub fn hide_etag_in_release(&self, hide: bool) {
        self.shared.hide_etag.store(hide, Ordering::SeqCst);
    }

    /// Whether it offers digests (§2.6) of what it serves: `sha256` in
    /// releases, `/pieces`, `Repr-Digest`.
    pub fn offer_digests(&self, on: bool) {
        // Computed now, not within an answer (a client's read timeout is
        // short, and hashing is slow under qemu).
        if on {
            for f in self.shared.files.lock().unwrap().iter() {
                digest_of(&f.data);
            }
        }
        self.shared.digests.store(on, Ordering::SeqCst);
    }

    /// With digests on: offers `digest` as every file's whole-file SHA-256
    /// (release and `Repr-Digest`) and no piece digests.
    pub fn offer_false_digest(&self, digest: [u8; 32]) {
        *self.shared.false_digest.lock().unwrap() = Some(digest);
    }

    /// The node goes away at once: every body under way stops (its
    /// connection closes), and new connections are refused from now on
    /// (what it sent stays recorded).
    pub fn vanish(&self) {
        self.shared.gone.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }

    /// The ETag file `id` is served with now.
    pub fn etag(&self, id: &str) -> Option<String> {
        self.shared.get(id).map(|f| f.etag)
    }

    /// Body bytes sent so far for file `id`.
    pub fn bytes_sent(&self, id: &str) -> u64 {
        let sent = self.record.item_bytes.lock().unwrap();
        sent.get(id).copied().unwrap_or(0)
    }

    /// Serves `file` too (again, after a [`FakePeer::remove`]).
    pub fn add(&self, file: File) {
        if self.shared.digests.load(Ordering::SeqCst) {
            digest_of(&file.data);
        }
        self.shared.files.lock().unwrap().push(Served {
            id: file.id,
            filename: file.filename,
            data: Arc::new(file.data),
            etag: ETAG.to_string(),
            version: 1,
        });
    }

    /// Removes file `id`: its item and file answer 404 from now on.
    pub fn remove(&self, id: &str) {
        self.shared.files.lock().unwrap().retain(|f| f.id != id);
    }

    /// Serves one file, `<id>.mkv`, honestly.
    pub fn one(id: &str, data: &[u8]) -> FakePeer {
        FakePeer::start(vec![File::mkv(id, data)], vec![], None)
    }

    pub fn file_requests(&self) -> Vec<(String, Option<String>, Instant)> {
        self.record.requests.lock().unwrap().clone()
    }

    pub fn push(&self, mode: Mode) {
        self.script.lock().unwrap().push_back(mode);
    }

    /// Drops the modes of the script no request has taken yet.
    pub fn clear_script(&self) {
        self.script.lock().unwrap().clear();
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    conn: TcpStream,
    shared: &Shared,
    script: &Mutex<VecDeque<Mode>>,
    rec: &Record,
    rate: Option<u64>,
) -> std::io::Result<()> {
    let (path, headers) = read_head(&conn)?;
    let range = header(&headers, "range");
    let mut out = conn;
    if shared.gone.load(Ordering::SeqCst) {
        // Accepted just before it went away: closed unanswered.
        return Ok(());
    }
    rec.all_requests.fetch_add(1, Ordering::SeqCst);
    if path == "/handshake" {
        return json(&mut out, r#"{"name":"jack","version":"0.1.0"}"#);
    }
    let digests = shared.digests.load(Ordering::SeqCst);
    let false_digest = *shared.false_digest.lock().unwrap();
    let whole = |data: &[u8]| false_digest.unwrap_or_else(|| digest_of(data).sha256);
    if path.starts_with("/peer/search") && digests {
        // Every file as a release with the film's id (tests ask by it).
        let files = shared.files.lock().unwrap().clone();
        let items: Vec<serde_json::Value> = files
            .iter()
            .map(|f| {
                serde_json::json!({"id": f.id, "title": f.filename.trim_end_matches(".mkv"),
                    "filename": f.filename, "size": f.data.len(), "category": 2000,
                    "tmdbId": TMDB_ID, "sha256": jack::digest::hex(&whole(&f.data))})
            })
            .collect();
        return json(&mut out, &serde_json::json!({ "items": items }).to_string());
    }
    let decoded = path.replace("%3A", ":");
    let Some(rest) = decoded.strip_prefix("/peer/items/") else {
        return status(&mut out, 404, None);
    };
    let (id, is_file) = match rest.strip_suffix("/file") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    if let Some(id) = rest.strip_suffix("/pieces") {
        return match shared.get(id) {
            Some(f) if digests && false_digest.is_none() => {
                let doc = digest_of(&f.data).to_json(Some(&f.etag));
                json(&mut out, &doc.to_string())
            }
            _ => status(&mut out, 404, None),
        };
    }
    if is_file
        && shared.grow.load(Ordering::SeqCst)
        && let Some(f) = shared.get(id)
    {
        let mut d = f.data.as_ref().clone();
        d.extend(std::iter::repeat_n(7u8, 1000));
        shared.replace(id, d);
    }
    let found = shared.get(id);
    let Some(file) = found else {
        return status(&mut out, 404, None);
    };
    let size = file.data.len() as u64;
    if !is_file {
        let mut body = serde_json::json!({"id": file.id, "title": file.filename.trim_end_matches(".mkv"), "filename": file.filename, "size": size, "category": 2000, "etag": file.etag});
        if shared.hide_etag.load(Ordering::SeqCst) {
            body.as_object_mut().unwrap().remove("etag");
        }
        if digests {
            body["sha256"] = jack::digest::hex(&whole(&file.data)).into();
            body["tmdbId"] = TMDB_ID.into();
        }
        return json(&mut out, &body.to_string());
    }
    rec.requests
        .lock()
        .unwrap()
        .push((id.to_string(), range.clone(), Instant::now()));
    let fallback = || shared.fallback.lock().unwrap().clone();
    let mode = script.lock().unwrap().pop_front().unwrap_or_else(fallback);
    // `bytes=F-` or `bytes=F-L` (several sources ask for closed ranges).
    let (offset, asked_last): (u64, Option<u64>) = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(f, l)| Some((f.parse().ok()?, l.parse().ok())))
        .unwrap_or((0, None));
    let n = rec.active.fetch_add(1, Ordering::SeqCst) + 1;
    rec.max_active.fetch_max(n, Ordering::SeqCst);
    if mode == Mode::Vanish {
        shared.files.lock().unwrap().retain(|f| f.id != id);
    }
    let replace = match &mode {
        Mode::CutAndReplace(_, data) => Some(data.clone()),
        _ => None,
    };
    let sent = Sent { rec, id };
    let repr = match (digests, &mode) {
        (true, Mode::OtherDigest) => format!(
            "Repr-Digest: {}\r\n",
            jack::digest::repr_digest(&jack::digest::sha256(b"another version"))
        ),
        (true, _) => format!(
            "Repr-Digest: {}\r\n",
            jack::digest::repr_digest(&whole(&file.data))
        ),
        (false, _) => String::new(),
    };
    let result = answer(
        &mut out,
        &shared.gone,
        &file.data,
        &file.etag,
        &repr,
        (offset, asked_last),
        size,
        mode,
        &sent,
        rate,
    );
    if let Some(data) = replace {
        shared.replace(id, data);
    }
    rec.active.fetch_sub(1, Ordering::SeqCst);
    result
}

/// The digests of `data`, computed once per content (a test serves a few
/// files, each many times).
fn digest_of(data: &[u8]) -> jack::digest::Pieces {
    static CACHE: Mutex<Vec<(usize, [u8; 32], jack::digest::Pieces)>> = Mutex::new(Vec::new());
    // Keyed by where the bytes are, their length and samples of them (a
    // test's versions differ there or are other buffers).
    let sample = |at: usize| &data[at.min(data.len())..(at + 4096).min(data.len())];
    let mut probe = Vec::new();
    for at in [0, data.len() / 2, data.len().saturating_sub(4096)] {
        probe.extend_from_slice(sample(at));
    }
    probe.extend_from_slice(&(data.as_ptr() as usize).to_le_bytes());
    let key = jack::digest::sha256(&probe);
    let known = CACHE
        .lock()
        .unwrap()
        .iter()
        .find(|(len, k, _)| *len == data.len() && *k == key)
        .map(|(_, _, p)| p.clone());
    if let Some(p) = known {
        return p;
    }
    // Hashed without the lock: other peers' answers go on meanwhile.
    let p = jack::digest::Pieces::of(data);
    CACHE.lock().unwrap().push((data.len(), key, p.clone()));
    p
}

/// Counts the body bytes of one file request as they leave: in all and
/// for its file id.
struct Sent<'a> {
    rec: &'a Record,
    id: &'a str,
}

impl Sent<'_> {
    fn add(&self, n: u64) {
        self.rec.body_bytes.fetch_add(n, Ordering::SeqCst);
        let mut per_item = self.rec.item_bytes.lock().unwrap();
        *per_item.entry(self.id.to_string()).or_default() += n;
    }
}

#[allow(clippy::too_many_arguments)]
fn answer(
    out: &mut TcpStream,
    gone: &AtomicBool,
    data: &[u8],
    etag: &str,
    repr: &str,
    (offset, asked_last): (u64, Option<u64>),
    size: u64,
    mode: Mode,
    sent: &Sent,
    rate: Option<u64>,
) -> std::io::Result<()> {
    let last = asked_last.map_or(size - 1, |l| l.min(size - 1));
    let head206 = |first: u64, last: u64, total: u64, extra: &str| {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {first}-{last}/{total}\r\nETag: {etag}\r\nConnection: close\r\n{repr}{extra}\r\n",
            // A lying range may end before it starts (`WrongStart` at the
            // last byte): no body then.
            (last + 1).saturating_sub(first)
        )
    };
    let mut flip = None;
    let mut rate = rate;
    let (head, from, to, limit) = match mode {
        Mode::Honest | Mode::OtherDigest => {
            (head206(offset, last, size, ""), offset, last + 1, None)
        }
        Mode::Trickle(r) => {
            rate = Some(r);
            (head206(offset, last, size, ""), offset, last + 1, None)
        }
        Mode::CorruptSplitLate(d) => {
            if offset % jack::digest::PIECE_SIZE != 0 {
                std::thread::sleep(d);
                if last + 1 - offset <= 512 * 1024 {
                    flip = Some(offset);
                }
            }
            (head206(offset, last, size, ""), offset, last + 1, None)
        }
        Mode::Bursty(d) => {
            out.write_all(head206(offset, last, size, "").as_bytes())?;
            let mut pos = offset;
            while pos < last + 1 {
                std::thread::sleep(d);
                let end = (pos + 512 * 1024).min(last + 1);
                out.write_all(&data[pos as usize..end as usize])?;
                sent.add(end - pos);
                pos = end;
            }
            return Ok(());
        }
        Mode::CorruptFirst => {
            flip = Some(offset);
            (head206(offset, last, size, ""), offset, last + 1, None)
        }
        Mode::Corrupt(at) => {
            flip = Some(at);
            (head206(offset, last, size, ""), offset, last + 1, None)
        }
        Mode::IgnoreRange => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
            ),
            0,
            size,
            None,
        ),
        Mode::WrongStart => (head206(offset + 1, last, size, ""), offset + 1, size, None),
        Mode::WrongTotal | Mode::Vanish => {
            (head206(offset, last, size + 1, ""), offset, size, None)
        }
        Mode::Changed416 => {
            let h = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                size + 5
            );
            (h, 0, 0, None)
        }
        Mode::Subset(n) => {
            let end = (offset + n).min(size);
            (head206(offset, end - 1, size, ""), offset, end, None)
        }
        Mode::Cut(n) | Mode::CutAndReplace(n, _) => {
            (head206(offset, last, size, ""), offset, size, Some(n))
        }
        Mode::Stall(n, d) => {
            out.write_all(head206(offset, last, size, "").as_bytes())?;
            let end = (offset + n).min(size);
            out.write_all(&data[offset as usize..end as usize])?;
            sent.add(end - offset);
            std::thread::sleep(d);
            return Ok(());
        }
        Mode::ChangedEtag => (
            head206(offset, last, size, "").replace(etag, "\"another-etag\""),
            offset,
            size,
            None,
        ),
        Mode::Multipart => (
            head206(
                offset,
                last,
                size,
                "Content-Type: multipart/byteranges; boundary=x\r\n",
            ),
            offset,
            size,
            None,
        ),
        Mode::Gzip => (
            head206(offset, last, size, "Content-Encoding: gzip\r\n"),
            offset,
            size,
            None,
        ),
        Mode::Status(code, retry_after) => return status(out, code, retry_after),
        Mode::Glued(n) => {
            let split = (offset + n).min(size);
            let mut first = head206(offset, last, size, "").into_bytes();
            first.extend_from_slice(&data[offset as usize..split as usize]);
            out.write_all(&first)?;
            sent.add(split - offset);
            std::thread::sleep(Duration::from_millis(50));
            for piece in data[split as usize..].chunks(7919) {
                out.write_all(piece)?;
                sent.add(piece.len() as u64);
            }
            return Ok(());
        }
        Mode::ChunkedWithLength => {
            let head = head206(offset, last, size, "Transfer-Encoding: chunked\r\n");
            out.write_all(head.as_bytes())?;
            for piece in data[offset as usize..].chunks(100_003) {
                write!(out, "{:x}\r\n", piece.len())?;
                out.write_all(piece)?;
                out.write_all(b"\r\n")?;
                sent.add(piece.len() as u64);
            }
            out.write_all(b"0\r\n\r\n")?;
            return Ok(());
        }
        Mode::EarlierStart { cut_at, block } => {
            let first = match offset {
                0 => 0,
                o if o % block == 0 => o - block,
                o => o - o % block,
            };
            let end = cut_at.clamp(first, size);
            (head206(first, last, size, ""), first, end, None)
        }
        Mode::UnsizedLongerHold(hold) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nETag: \"another-etag\"\r\nConnection: close\r\n\r\n"
            )?;
            let other: Vec<u8> = data.iter().map(|b| b ^ 0x5A).collect();
            out.write_all(&other)?;
            sent.add(size);
            std::thread::sleep(hold);
            out.write_all(&[0x5A])?;
            return Ok(());
        }
        Mode::UnsizedHold(hold) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(data)?;
            sent.add(size);
            std::thread::sleep(hold);
            return Ok(());
        }
        Mode::Unsized(ref body) | Mode::UnsizedStall(ref body, _) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nETag: \"another-etag\"\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(body)?;
            sent.add(body.len() as u64);
            if let Mode::UnsizedStall(_, d) = mode {
                std::thread::sleep(d);
            }
            return Ok(());
        }
    };
    out.write_all(head.as_bytes())?;
    let end = limit.map_or(to, |n| (from + n).min(to));
    let mut pos = from;
    while pos < end {
        if gone.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A slow rate in small chunks (a pause never near a client's read
        // timeout): a trickle, not silence.
        let step = rate.map_or(64 * 1024, |r| (r / 8).clamp(1024, 64 * 1024));
        let chunk = (end - pos).min(step);
        if let Some(r) = rate {
            std::thread::sleep(Duration::from_secs_f64(chunk as f64 / r as f64));
        }
        let bytes = &data[pos as usize..(pos + chunk) as usize];
        match flip.filter(|&at| (pos..pos + chunk).contains(&at)) {
            Some(at) => {
                let mut bad = bytes.to_vec();
                bad[(at - pos) as usize] ^= 0x01;
                out.write_all(&bad)?;
            }
            None => out.write_all(bytes)?,
        }
        sent.add(chunk);
        pos += chunk;
    }
    Ok(())
}

/// The request target and the header fields (name, trimmed value) of the
/// request head waiting on `conn`.
pub fn read_head(conn: &TcpStream) -> std::io::Result<(String, Vec<(String, String)>)> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            return Ok((target, headers));
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// The value of the first field `name` (case-insensitive).
pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn json(out: &mut TcpStream, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn status(out: &mut TcpStream, code: u16, retry_after: Option<String>) -> std::io::Result<()> {
    let extra = retry_after
        .map(|v| format!("Retry-After: {v}\r\n"))
        .unwrap_or_default();
    let location = if (300..400).contains(&code) {
        "Location: http://127.0.0.1:1/elsewhere\r\n"
    } else {
        ""
    };
    write!(
        out,
        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n{extra}{location}Connection: close\r\n\r\n"
    )
}
