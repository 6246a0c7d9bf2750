//! `jack.toml`: parse the raw TOML, then validate it into [`Config`].
//!
//! Two layers, as in ripgrep: the TOML parser gives a spanned tree, and this
//! module walks it key by key, collecting **every** problem (unknown keys,
//! wrong types, bad values, unset secrets) with its key and line before
//! anything starts. Nothing here starts threads or opens sockets; the only
//! I/O is reading the file and reading `{ file = ... }` secrets. Directories are created by
//! [`Config::create_dirs`], which the daemon calls, never `check-config`.
//!
//! The environment comes in as a function so tests need not touch the
//! process environment.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{Error, Result};

/// Looks up an environment variable (`std::env::var` in the binary).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub file: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub libraries: Vec<Library>,
    pub downloads: DownloadsConfig,
    pub peers: Peers,
    pub torznab: TorznabConfig,
    /// The qBittorrent-compatible API; `None` (no `[qbittorrent]` table):
    /// not offered.
    pub qbittorrent: Option<QbitConfig>,
    /// The operator's own Radarr/Sonarr (`[[arr]]`).
    pub arrs: Vec<Arr>,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct TorznabConfig {
    /// The longest a search waits for one peer's answer.
    pub peer_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct QbitConfig {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrKind {
    Radarr,
    Sonarr,
}

impl ArrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArrKind::Radarr => "radarr",
            ArrKind::Sonarr => "sonarr",
        }
    }
}

/// A Radarr or Sonarr instance: `[[arr]]`, or the source of a library.
#[derive(Debug, Clone)]
pub struct Arr {
    pub name: String,
    pub kind: ArrKind,
    /// Base URL without a trailing slash.
    pub url: String,
    pub api_key: Secret,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub api_key: Secret,
    pub handler_threads: usize,
    /// Read timeout of every accepted connection (idle keep-alive, slow senders).
    pub read_timeout: Duration,
    /// Write timeout of every accepted connection (slow readers).
    pub write_timeout: Duration,
    /// Open connections above which new ones get a quick 503.
    pub max_connections: usize,
    /// Open connections from one client address above which its new ones
    /// get the same 503 (a value above `max_connections` changes nothing).
    pub max_connections_per_ip: usize,
    /// Wrong credentials one client address (IPv6: its /64) may present a
    /// minute before its credential checks get `429` (`crate::gate`).
    pub auth_failures_per_minute: u64,
    /// How often the libraries are rescanned.
    pub library_rescan: Duration,
    /// Most items the catalogue holds (its memory bound).
    pub max_catalogue_items: usize,
    /// Friends' own keys (`[[server.peer_keys]]`): `/handshake` and `/peer/*` only.
    pub peer_keys: Vec<PeerKey>,
}

/// A friend's key: its owner's name (for logs) and how to recognise it.
#[derive(Debug, Clone)]
pub struct PeerKey {
    pub name: String,
    pub check: KeyCheck,
}

/// A per-peer key as written (`key`) or only its SHA-256 (`key_sha256`).
#[derive(Debug, Clone)]
pub enum KeyCheck {
    Key(Secret),
    Sha256([u8; 32]),
}

impl KeyCheck {
    /// Whether two entries let in the same key the same way.
    pub fn same(&self, other: &KeyCheck) -> bool {
        match (self, other) {
            (KeyCheck::Key(a), KeyCheck::Key(b)) => a.expose() == b.expose(),
            (KeyCheck::Sha256(a), KeyCheck::Sha256(b)) => a == b,
            _ => false,
        }
    }
}

/// A secret file holds a key or a password: a few KiB at most.
pub const SECRET_FILE_LIMIT: u64 = 16 * 1024;

/// The text of a `{ file = ... }` secret: a regular file of at most
/// [`SECRET_FILE_LIMIT`] bytes of UTF-8. Opened without blocking (a FIFO
/// with no writer would hold the start-up forever) and read through the
/// limit (`/dev/zero` never ends); anything but a regular file is refused
/// before a byte is read.
fn read_secret_file(path: &Path) -> std::result::Result<String, String> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| std::io::Error::from(e).to_string())?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > SECRET_FILE_LIMIT {
        return Err(format!("larger than {SECRET_FILE_LIMIT} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Movies,
    Tv,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Movies => "movies",
            Category::Tv => "tv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Library {
    pub name: String,
    pub path: PathBuf,
    pub category: Category,
    /// Lower-case file extensions to serve; empty means the default video list.
    pub extensions: Vec<String>,
    /// Where the files come from: a folder (`path`), or the files a
    /// Radarr/Sonarr knows (`path` is then empty).
    pub source: LibrarySource,
}

#[derive(Debug, Clone)]
pub enum LibrarySource {
    /// `kind = "directory"` (the default): every video under `path`.
    Directory,
    /// `kind = "radarr"` or `"sonarr"`: the movies or episodes that have a file.
    Arr(Arr),
}

#[derive(Debug, Clone)]
pub struct DownloadsConfig {
    pub watch_dir: PathBuf,
    pub incomplete_dir: PathBuf,
    pub completed_dir: PathBuf,
    pub scan_interval: Duration,
    /// A stub that does not parse is read again whenever it changes, and
    /// set aside `.invalid` only once unchanged this long (a slow writer).
    pub stub_settle: Duration,
    pub max_concurrent_downloads: usize,
    /// Attempts in a row without progress before a download fails.
    pub max_attempts: u32,
    /// An attempt that made at least this many bytes durable (or committed
    /// a checkpoint during its body) made progress: it does not count
    /// against `max_attempts`, and the backoff starts again.
    pub progress_bytes: u64,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub idle_timeout: Duration,
    pub max_file_size: u64,
    /// A download paused on a full disk is tried again this often.
    pub disk_full_retry: Duration,
    /// Bytes kept free on each filesystem a download writes to: a transfer
    /// starts or resumes only when what is still to come fits beside them.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    /// Base URL without a trailing slash.
    pub url: String,
    pub api_key: Secret,
    /// `ca_file`: a PEM file whose certificates are this peer's only
    /// trusted roots (a friend's self-signed certificate); `None` trusts
    /// the bundled Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// The TLS settings `ca_file` makes (its certificates as the roots).
    pub tls: Option<ureq::tls::TlsConfig>,
}

/// The `[[peers]]` entries, a handle shared by every part that asks peers
/// (clones share one list). `SIGHUP` replaces the list whole; a lookup,
/// search or transfer takes the list as it is then ([`Peers::current`])
/// and keeps its `Peer` to its end.
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<RwLock<Arc<Vec<Peer>>>>);

impl Peers {
    pub fn new(list: Vec<Peer>) -> Peers {
        Peers(Arc::new(RwLock::new(Arc::new(list))))
    }

    /// The list as it is now.
    pub fn current(&self) -> Arc<Vec<Peer>> {
        self.0.read().clone()
    }

    /// The peer named `name`, as it is now.
    pub fn get(&self, name: &str) -> Option<Peer> {
        self.current().iter().find(|p| p.name == name).cloned()
    }

    /// Swaps in `list` and says what changed, by name only:
    /// `(added, removed, changed)` (a changed url, key or `ca_file`).
    pub fn replace(&self, list: Vec<Peer>) -> (Vec<String>, Vec<String>, Vec<String>) {
        let old = self.current();
        let diff = diff_by_name(
            &old,
            &list,
            |p| &p.name,
            |a, b| {
                a.url == b.url && a.api_key.expose() == b.api_key.expose() && a.ca_file == b.ca_file
            },
        );
        *self.0.write() = Arc::new(list);
        diff
    }
}

/// What changed from `old` to `new`, by name: `(added, removed, changed)`.
pub fn diff_by_name<T>(
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for n in new {
        match old.iter().find(|o| name(o) == name(n)) {
            None => added.push(name(n).to_string()),
            Some(o) if !same(o, n) => changed.push(name(n).to_string()),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| name(n) == name(o)) {
            removed.push(name(o).to_string());
        }
    }
    (added, removed, changed)
}

impl Peer {
    /// A plain `http://` peer whose host is not a loopback, private,
    /// link-local or shared (CGNAT, Tailscale) address, nor a local name:
    /// the key travels in clear text across networks jack cannot vouch for.
    pub fn in_clear_text_beyond_the_lan(&self) -> bool {
        let Some(rest) = self.url.strip_prefix("http://") else {
            return false;
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        !local_host(host)
    }
}

/// Whether `host` (a name or an address) is on this machine or a private
/// network.
fn local_host(host: &str) -> bool {
    use std::net::IpAddr;
    let host = host.to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let [o1, o2, ..] = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || (o1 == 100 && (64..128).contains(&o2))
        }
        Ok(IpAddr::V6(a)) => {
            let first = a.segments()[0];
            a.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
        Err(_) => {
            host == "localhost"
                || [
                    ".localhost",
                    ".local",
                    ".lan",
                    ".internal",
                    ".home.arpa",
                    ".ts.net",
                ]
                .iter()
                .any(|suffix| host.ends_with(suffix))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: log::LevelFilter,
    pub format: LogFormat,
    /// True when `JACK_LOG` overrode `log.level`.
    pub level_from_env: bool,
}

/// A key or password. Never printed: `Debug` and `Display` show only where it
/// came from.
#[derive(Clone)]
pub struct Secret {
    value: String,
    origin: SecretOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    Inline,
    Env(String),
    File(PathBuf),
}

impl Secret {
    pub fn new(value: impl Into<String>, origin: SecretOrigin) -> Secret {
        Secret {
            value: value.into(),
            origin,
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn origin(&self) -> &SecretOrigin {
        &self.origin
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            SecretOrigin::Inline => f.write_str("\"<redacted>\""),
            SecretOrigin::Env(var) => write!(f, "{{ env = {var:?} }} # <redacted>"),
            SecretOrigin::File(path) => write!(f, "{{ file = {:?} }} # <redacted>", path.display()),
        }
    }
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, `peers[1].name`, or the environment variable at fault.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone)]
pub struct Problems {
    pub file: PathBuf,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.list.len();
        write!(
            f,
            "invalid configuration {}: {n} problem{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.list {
            write!(f, "\n  {}", self.file.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path, env: Env<'_>) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(Problems {
                file: path.to_path_buf(),
                list: vec![Problem {
                    key: "(file)".into(),
                    line: None,
                    message: format!("cannot read: {e}"),
                }],
            })
        })?;
        Config::parse(&text, path, env).map_err(Error::Config)
    }

    /// Validates `text` as the contents of the file `file`; relative paths
    /// resolve against the directory of `file`.
    pub fn parse(text: &str, file: &Path, env: Env<'_>) -> Result<Config, Problems> {
        let base = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let mut cx = Cx {
            text,
            base,
            env,
            problems: Vec::new(),
        };
        let config = match DeTable::parse(text) {
            Ok(root) => Some(cx.config(file, root.get_ref())),
            Err(e) => {
                let line = e.span().map(|s| cx.line(&s));
                cx.problems.push(Problem {
                    key: "(syntax)".into(),
                    line,
                    message: e.message().trim().to_string(),
                });
                None
            }
        };
        match config {
            Some(c) if cx.problems.is_empty() => Ok(c),
            _ => Err(Problems {
                file: file.to_path_buf(),
                list: cx.problems,
            }),
        }
    }

    /// Creates every directory the daemon writes to.
    pub fn create_dirs(&self) -> Result<()> {
        let d = &self.downloads;
        let db_dir = self.database.path.parent().map(Path::to_path_buf);
        let dirs = [&d.watch_dir, &d.incomplete_dir, &d.completed_dir]
            .into_iter()
            .cloned()
            .chain(db_dir)
            .chain(
                self.libraries
                    .iter()
                    .filter(|l| matches!(l.source, LibrarySource::Directory))
                    .map(|l| l.path.clone()),
            );
        for dir in dirs {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create directory {}", dir.display()), e))?;
        }
        Ok(())
    }
}

/// The effective configuration as TOML, secrets redacted (`jack check-config`).
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.server;
        let d = &self.downloads;
        writeln!(f, "# effective configuration of {}", self.file.display())?;
        writeln!(f, "[server]")?;
        writeln!(f, "listen = \"{}\"", s.listen)?;
        writeln!(f, "public_url = {:?}", s.public_url)?;
        writeln!(f, "api_key = {}", s.api_key)?;
        writeln!(f, "handler_threads = {}", s.handler_threads)?;
        writeln!(f, "read_timeout_ms = {}", s.read_timeout.as_millis())?;
        writeln!(f, "write_timeout_ms = {}", s.write_timeout.as_millis())?;
        writeln!(f, "max_connections = {}", s.max_connections)?;
        writeln!(f, "max_connections_per_ip = {}", s.max_connections_per_ip)?;
        writeln!(
            f,
            "auth_failures_per_minute = {}",
            s.auth_failures_per_minute
        )?;
        writeln!(f, "library_rescan_secs = {}", s.library_rescan.as_secs())?;
        writeln!(f, "max_catalogue_items = {}", s.max_catalogue_items)?;
        for k in &s.peer_keys {
            writeln!(f, "\n[[server.peer_keys]]\nname = {:?}", k.name)?;
            match &k.check {
                KeyCheck::Key(secret) => writeln!(f, "key = {secret}")?,
                KeyCheck::Sha256(d) => writeln!(f, "key_sha256 = \"{}\"", crate::keys::hex(d))?,
            }
        }
        writeln!(f, "\n[database]\npath = {:?}", self.database.path.display())?;
        for l in &self.libraries {
            writeln!(f, "\n[[library]]\nname = {:?}", l.name)?;
            match &l.source {
                LibrarySource::Directory => writeln!(f, "path = {:?}", l.path.display())?,
                LibrarySource::Arr(a) => {
                    writeln!(f, "kind = \"{}\"", a.kind.as_str())?;
                    writeln!(f, "url = {:?}\napi_key = {}", a.url, a.api_key)?;
                }
            }
            writeln!(f, "category = \"{}\"", l.category.as_str())?;
            if !l.extensions.is_empty() {
                writeln!(f, "extensions = {:?}", l.extensions)?;
            }
        }
        writeln!(f, "\n[downloads]")?;
        writeln!(f, "watch_dir = {:?}", d.watch_dir.display())?;
        writeln!(f, "incomplete_dir = {:?}", d.incomplete_dir.display())?;
        writeln!(f, "completed_dir = {:?}", d.completed_dir.display())?;
        writeln!(f, "scan_interval_ms = {}", d.scan_interval.as_millis())?;
        writeln!(f, "stub_settle_ms = {}", d.stub_settle.as_millis())?;
        writeln!(
            f,
            "max_concurrent_downloads = {}",
            d.max_concurrent_downloads
        )?;
        writeln!(f, "max_attempts = {}", d.max_attempts)?;
        writeln!(f, "progress_bytes = {}", d.progress_bytes)?;
        writeln!(
            f,
            "retry_base_delay_ms = {}",
            d.retry_base_delay.as_millis()
        )?;
        writeln!(f, "retry_max_delay_ms = {}", d.retry_max_delay.as_millis())?;
        writeln!(f, "idle_timeout_ms = {}", d.idle_timeout.as_millis())?;
        writeln!(f, "max_file_size = {}", d.max_file_size)?;
        writeln!(f, "disk_full_retry_ms = {}", d.disk_full_retry.as_millis())?;
        writeln!(f, "min_free_bytes = {}", d.min_free_bytes)?;
        for p in self.peers.current().iter() {
            writeln!(f, "\n[[peers]]\nname = {:?}", p.name)?;
            writeln!(f, "url = {:?}", p.url)?;
            writeln!(f, "api_key = {}", p.api_key)?;
            if let Some(ca) = &p.ca_file {
                writeln!(f, "ca_file = {:?}", ca.display())?;
            }
        }
        writeln!(f, "\n[torznab]")?;
        let timeout = self.torznab.peer_timeout.as_millis();
        writeln!(f, "peer_timeout_ms = {timeout}")?;
        if let Some(q) = &self.qbittorrent {
            writeln!(f, "\n[qbittorrent]\nusername = {:?}", q.username)?;
            writeln!(f, "password = {}", q.password)?;
        }
        for a in &self.arrs {
            writeln!(f, "\n[[arr]]\nname = {:?}", a.name)?;
            writeln!(f, "kind = \"{}\"\nurl = {:?}", a.kind.as_str(), a.url)?;
            writeln!(f, "api_key = {}", a.api_key)?;
        }
        writeln!(f, "\n[log]")?;
        let level = self.log.level.as_str().to_ascii_lowercase();
        if self.log.level_from_env {
            writeln!(f, "level = \"{level}\" # from JACK_LOG")?;
        } else {
            writeln!(f, "level = \"{level}\"")?;
        }
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        writeln!(f, "format = \"{format}\"")
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// The validation walk: the source text for line numbers, and the problems
/// found so far.
struct Cx<'a> {
    text: &'a str,
    base: PathBuf,
    env: Env<'a>,
    problems: Vec<Problem>,
}

/// One TOML table being read: remembers which keys were asked for so the
/// rest can be reported as unknown.
struct Table<'t, 'i> {
    path: String,
    table: Option<&'t DeTable<'i>>,
    seen: BTreeSet<&'static str>,
}

impl<'t, 'i> Table<'t, 'i> {
    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn get(&mut self, k: &'static str) -> Option<&'t Value<'i>> {
        self.seen.insert(k);
        self.table?.get(k)
    }
}

const LIMIT_THREADS: u64 = 1024;

impl<'a> Cx<'a> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn problem(&mut self, key: String, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = span.map(|s| self.line(&s));
        self.problems.push(Problem {
            key,
            line,
            message: message.into(),
        });
    }

    /// Reports every key of `t` that was never asked for.
    fn finish(&mut self, t: Table<'_, '_>) {
        let Some(table) = t.table else { return };
        for (k, _) in table.iter() {
            if !t.seen.contains(k.get_ref().as_ref()) {
                let key = t.key(k.get_ref());
                self.problem(key, Some(k.span()), "unknown key");
            }
        }
    }

    fn table<'t, 'i>(&mut self, parent: &mut Table<'t, 'i>, k: &'static str) -> Table<'t, 'i> {
        let path = parent.key(k);
        let table = match parent.get(k) {
            None => None,
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => Some(t),
                other => {
                    let msg = format!("expected a table, found {}", other.type_str());
                    self.problem(path.clone(), Some(v.span()), msg);
                    None
                }
            },
        };
        Table {
            path,
            table,
            seen: BTreeSet::new(),
        }
    }

    /// An array of tables (`[[library]]`); each element comes back as a table.
    fn array_of_tables<'t, 'i>(
        &mut self,
        parent: &mut Table<'t, 'i>,
        k: &'static str,
    ) -> Vec<(Table<'t, 'i>, Range<usize>)> {
        let path = parent.key(k);
        let Some(v) = parent.get(k) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            let msg = format!(
                "expected an array of tables ([[{k}]]), found {}",
                v.get_ref().type_str()
            );
            self.problem(path, Some(v.span()), msg);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            match item.get_ref() {
                DeValue::Table(t) => out.push((
                    Table {
                        path: ipath,
                        table: Some(t),
                        seen: BTreeSet::new(),
                    },
                    item.span(),
                )),
                other => {
                    let msg = format!("expected a table, found {}", other.type_str());
                    self.problem(ipath, Some(item.span()), msg);
                }
            }
        }
        out
    }

    /// A string key; `None` when absent or of the wrong type (reported).
    fn string(&mut self, t: &mut Table<'_, '_>, k: &'static str) -> Option<(String, Range<usize>)> {
        let v = t.get(k)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            other => {
                let msg = format!("expected a string, found {}", other.type_str());
                self.problem(t.key(k), Some(v.span()), msg);
                None
            }
        }
    }

    /// An array of non-empty strings (e.g. file extensions), lower-cased.
    fn string_list(&mut self, t: &mut Table<'_, '_>, k: &'static str) -> Vec<String> {
        let Some(v) = t.get(k) else { return Vec::new() };
        let DeValue::Array(items) = v.get_ref() else {
            let msg = format!(
                "expected an array of strings, found {}",
                v.get_ref().type_str()
            );
            self.problem(t.key(k), Some(v.span()), msg);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) if !s.trim().is_empty() => {
                    out.push(s.trim().trim_start_matches('.').to_ascii_lowercase())
                }
                other => {
                    let msg = format!("expected non-empty strings, found {}", other.type_str());
                    self.problem(t.key(k), Some(item.span()), msg);
                }
            }
        }
        out
    }

    fn required_string(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
    ) -> Option<(String, Range<usize>)> {
        let seen_before = self.problems.len();
        let got = self.string(t, k);
        if got.is_none() && self.problems.len() == seen_before {
            self.problem(t.key(k), None, "required key is missing");
        }
        got
    }

    /// An integer key within `min..=max`, or `default` when absent.
    fn integer(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let Some(v) = t.get(k) else { return default };
        let DeValue::Integer(i) = v.get_ref() else {
            let msg = format!("expected an integer, found {}", v.get_ref().type_str());
            self.problem(t.key(k), Some(v.span()), msg);
            return default;
        };
        match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= i128::from(min) && n <= i128::from(max) => n as u64,
            Ok(n) if n < i128::from(min) => {
                self.problem(
                    t.key(k),
                    Some(v.span()),
                    format!("must be at least {min}, got {n}"),
                );
                default
            }
            _ => {
                let msg = format!("must be at most {max}, got {}", i.as_str());
                self.problem(t.key(k), Some(v.span()), msg);
                default
            }
        }
    }

    fn millis(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Duration {
        Duration::from_millis(self.integer(t, k, default, min, max))
    }

    fn path(&mut self, t: &mut Table<'_, '_>, k: &'static str, default: &str) -> PathBuf {
        let raw = match self.string(t, k) {
            Some((s, span)) if s.trim().is_empty() => {
                self.problem(t.key(k), Some(span), "must not be empty");
                default.to_string()
            }
            Some((s, _)) => s,
            None => default.to_string(),
        };
        self.resolve(&raw)
    }

    /// A path from the config, relative ones against the config's directory.
    fn resolve(&self, raw: &str) -> PathBuf {
        let joined = self.base.join(raw);
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// `"inline"`, `{ env = "VAR" }` or `{ file = "/abs/path" }`.
    fn secret(&mut self, t: &mut Table<'_, '_>, k: &'static str) -> Option<Secret> {
        let key = t.key(k);
        let Some(v) = t.get(k) else {
            self.problem(key, None, "required key is missing");
            return None;
        };
        let span = v.span();
        let secret = match v.get_ref() {
            DeValue::String(s) => Secret::new(s.to_string(), SecretOrigin::Inline),
            DeValue::Table(tbl) => {
                let mut inner = Table {
                    path: key.clone(),
                    table: Some(tbl),
                    seen: BTreeSet::new(),
                };
                let env = self.string(&mut inner, "env");
                let file = self.string(&mut inner, "file");
                let before = self.problems.len();
                self.finish(inner);
                let unknown_keys = self.problems.len() > before;
                match (env, file) {
                    (Some((var, _)), None) => match (self.env)(&var) {
                        Some(value) => Secret::new(value, SecretOrigin::Env(var)),
                        None => {
                            self.problem(
                                key,
                                Some(span),
                                format!("environment variable {var} is not set"),
                            );
                            return None;
                        }
                    },
                    (None, Some((path, _))) => {
                        let p = PathBuf::from(&path);
                        if !p.is_absolute() {
                            self.problem(
                                key,
                                Some(span),
                                format!("secret file {path:?} must be an absolute path"),
                            );
                            return None;
                        }
                        match read_secret_file(&p) {
                            Ok(text) => Secret::new(
                                text.trim_end_matches(['\n', '\r']).to_string(),
                                SecretOrigin::File(p),
                            ),
                            Err(why) => {
                                self.problem(
                                    key,
                                    Some(span),
                                    format!("cannot read secret file {path}: {why}"),
                                );
                                return None;
                            }
                        }
                    }
                    (None, None) if unknown_keys => return None,
                    _ => {
                        self.problem(
                            key,
                            Some(span),
                            "expected a string, { env = \"VAR\" } or { file = \"/absolute/path\" }",
                        );
                        return None;
                    }
                }
            }
            other => {
                let msg = format!(
                    "expected a string, {{ env = \"VAR\" }} or {{ file = \"/absolute/path\" }}, found {}",
                    other.type_str()
                );
                self.problem(key, Some(span), msg);
                return None;
            }
        };
        if secret.expose().trim().is_empty() {
            self.problem(key, Some(span), "must not be empty");
            return None;
        }
        let v = secret.expose();
        if v.chars().any(char::is_control) || v.trim() != v {
            self.problem(
                key,
                Some(span),
                "must not contain control characters or start or end with a space",
            );
            return None;
        }
        Some(secret)
    }

    fn config(&mut self, file: &Path, root: &DeTable<'_>) -> Config {
        let mut top = Table {
            path: String::new(),
            table: Some(root),
            seen: BTreeSet::new(),
        };
        let server = self.server(&mut top);
        let mut db = self.table(&mut top, "database");
        let database = DatabaseConfig {
            path: self.path(&mut db, "path", "data/jack.db"),
        };
        self.finish(db);
        let libraries = self.libraries(&mut top);
        let downloads = self.downloads(&mut top);
        let peers = Peers::new(self.peers(&mut top));
        let torznab = self.torznab(&mut top);
        let qbittorrent = self.qbittorrent(&mut top);
        let arrs = self.arrs(&mut top);
        let log = self.log(&mut top);
        self.finish(top);
        Config {
            file: std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()),
            server,
            database,
            libraries,
            downloads,
            peers,
            torznab,
            qbittorrent,
            arrs,
            log,
        }
    }

    fn server(&mut self, top: &mut Table<'_, '_>) -> ServerConfig {
        let mut t = self.table(top, "server");
        let listen = match self.string(&mut t, "listen") {
            None => SocketAddr::from(([127, 0, 0, 1], 5225)),
            Some((s, span)) => s.parse().unwrap_or_else(|_| {
                let msg =
                    format!("{s:?} is not an address:port such as 127.0.0.1:5225 or [::1]:5225");
                self.problem(t.key("listen"), Some(span), msg);
                SocketAddr::from(([127, 0, 0, 1], 5225))
            }),
        };
        let public_url = match self.string(&mut t, "public_url") {
            None => format!("http://{listen}"),
            Some((s, span)) => match check_url(&s, &["http", "https"]) {
                Ok(url) => url,
                Err(msg) => {
                    self.problem(t.key("public_url"), Some(span), msg);
                    s
                }
            },
        };
        let api_key = self.secret(&mut t, "api_key");
        let handler_threads = self.integer(&mut t, "handler_threads", 8, 1, LIMIT_THREADS) as usize;
        let read_timeout = self.millis(&mut t, "read_timeout_ms", 30_000, 100, 3_600_000);
        let write_timeout = self.millis(&mut t, "write_timeout_ms", 60_000, 100, 3_600_000);
        let max_connections = self.integer(&mut t, "max_connections", 256, 1, 65_536) as usize;
        let max_connections_per_ip =
            self.integer(&mut t, "max_connections_per_ip", 32, 1, 65_536) as usize;
        let auth_failures_per_minute =
            self.integer(&mut t, "auth_failures_per_minute", 10, 1, 100_000);
        let library_rescan_secs = self.integer(&mut t, "library_rescan_secs", 300, 1, 604_800);
        let max_catalogue_items =
            self.integer(&mut t, "max_catalogue_items", 200_000, 1, 10_000_000) as usize;
        let peer_keys = self.peer_keys(&mut t);
        self.finish(t);
        ServerConfig {
            listen,
            public_url,
            api_key: api_key.unwrap_or_else(|| Secret::new("", SecretOrigin::Inline)),
            handler_threads,
            read_timeout,
            write_timeout,
            max_connections,
            max_connections_per_ip,
            auth_failures_per_minute,
            library_rescan: Duration::from_secs(library_rescan_secs),
            max_catalogue_items,
            peer_keys,
        }
    }

    /// `[[server.peer_keys]]`: a unique `name` and exactly one of `key` or
    /// `key_sha256`.
    fn peer_keys(&mut self, server: &mut Table<'_, '_>) -> Vec<PeerKey> {
        let mut out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (mut t, span) in self.array_of_tables(server, "peer_keys") {
            let name = self.required_string(&mut t, "name");
            if let Some((n, nspan)) = &name {
                if !valid_name(n) {
                    self.problem(t.key("name"), Some(nspan.clone()), NAME_RULE);
                } else if names.contains(n) {
                    let msg = format!("duplicate peer key name {n:?}");
                    self.problem(t.key("name"), Some(nspan.clone()), msg);
                }
                names.push(n.clone());
            }
            let has_key = t.table.is_some_and(|tbl| tbl.get("key").is_some());
            let has_hash = t.table.is_some_and(|tbl| tbl.get("key_sha256").is_some());
            let check = match (has_key, has_hash) {
                (true, false) => self.secret(&mut t, "key").map(KeyCheck::Key),
                (false, true) => match self.string(&mut t, "key_sha256") {
                    Some((h, hspan)) => match parse_sha256_hex(&h) {
                        Some(d) => Some(KeyCheck::Sha256(d)),
                        None => {
                            let msg = "must be 64 hexadecimal characters (the SHA-256 of the key)";
                            self.problem(t.key("key_sha256"), Some(hspan), msg);
                            None
                        }
                    },
                    None => None,
                },
                (true, true) => {
                    t.get("key");
                    t.get("key_sha256");
                    let msg = "set key or key_sha256, not both";
                    self.problem(t.key("key"), Some(span.clone()), msg);
                    None
                }
                (false, false) => {
                    let msg = "required: key or key_sha256";
                    self.problem(t.key("key"), Some(span.clone()), msg);
                    None
                }
            };
            self.finish(t);
            if let (Some((name, _)), Some(check)) = (name, check) {
                out.push(PeerKey { name, check });
            }
        }
        out
    }

    fn libraries(&mut self, top: &mut Table<'_, '_>) -> Vec<Library> {
        let mut out: Vec<Library> = Vec::new();
        for (mut t, _) in self.array_of_tables(top, "library") {
            let name = self.required_string(&mut t, "name");
            let kind = self.one_of(
                &mut t,
                "kind",
                &[
                    ("directory", None),
                    ("radarr", Some(ArrKind::Radarr)),
                    ("sonarr", Some(ArrKind::Sonarr)),
                ],
                None,
            );
            let (path, source) = match kind {
                None => {
                    let path = self
                        .required_string(&mut t, "path")
                        .map(|(raw, _)| self.resolve(&raw));
                    (path, Some(LibrarySource::Directory))
                }
                Some(kind) => {
                    if let Some(v) = t.get("path") {
                        let msg = format!(
                            "not used with kind = \"{}\": the *arr says where its files are",
                            kind.as_str()
                        );
                        self.problem(t.key("path"), Some(v.span()), msg);
                    }
                    let endpoint =
                        self.arr_endpoint(&mut t, kind, name.as_ref().map(|n| n.0.clone()));
                    (Some(PathBuf::new()), endpoint.map(LibrarySource::Arr))
                }
            };
            let default_category = match kind {
                Some(ArrKind::Sonarr) => Category::Tv,
                _ => Category::Movies,
            };
            let category = self.one_of(
                &mut t,
                "category",
                &[("movies", Category::Movies), ("tv", Category::Tv)],
                default_category,
            );
            if let Some((name, nspan)) = &name {
                if !valid_name(name) {
                    self.problem(t.key("name"), Some(nspan.clone()), NAME_RULE);
                } else if out.iter().any(|l| &l.name == name) {
                    self.problem(
                        t.key("name"),
                        Some(nspan.clone()),
                        format!("duplicate library name {name:?}"),
                    );
                }
            }
            let extensions = self.string_list(&mut t, "extensions");
            self.finish(t);
            if let (Some((name, _)), Some(path), Some(source)) = (name, path, source) {
                out.push(Library {
                    name,
                    path,
                    category,
                    extensions,
                    source,
                });
            }
        }
        out
    }

    /// `url` and `api_key` of a Radarr/Sonarr (`[[arr]]` or an *arr library).
    fn arr_endpoint(
        &mut self,
        t: &mut Table<'_, '_>,
        kind: ArrKind,
        name: Option<String>,
    ) -> Option<Arr> {
        let url = self.required_string(t, "url");
        let api_key = self.secret(t, "api_key");
        let url = url.and_then(|(u, span)| match check_url(&u, &["http"]) {
            Ok(u) => Some(u),
            Err(msg) => {
                self.problem(t.key("url"), Some(span), msg);
                None
            }
        });
        Some(Arr {
            name: name?,
            kind,
            url: url?,
            api_key: api_key?,
        })
    }

    /// A string key that must be one of `choices` (`default` when absent).
    fn one_of<T: Copy>(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some((s, span)) = self.string(t, k) else {
            return default;
        };
        if let Some((_, v)) = choices.iter().find(|(c, _)| *c == s) {
            return *v;
        }
        let names: Vec<String> = choices.iter().map(|(c, _)| format!("{c:?}")).collect();
        let msg = format!("{s:?} is not one of {}", names.join(", "));
        self.problem(t.key(k), Some(span), msg);
        default
    }

    fn torznab(&mut self, top: &mut Table<'_, '_>) -> TorznabConfig {
        let mut t = self.table(top, "torznab");
        let peer_timeout = self.millis(&mut t, "peer_timeout_ms", 10_000, 100, 600_000);
        self.finish(t);
        TorznabConfig { peer_timeout }
    }

    fn qbittorrent(&mut self, top: &mut Table<'_, '_>) -> Option<QbitConfig> {
        top.get("qbittorrent")?;
        let mut t = self.table(top, "qbittorrent");
        let username = self.required_string(&mut t, "username");
        let password = self.secret(&mut t, "password");
        if let Some((u, span)) = &username
            && (u.is_empty() || u.chars().any(char::is_control))
        {
            let msg = "must not be empty or contain control characters";
            self.problem(t.key("username"), Some(span.clone()), msg);
        }
        self.finish(t);
        Some(QbitConfig {
            username: username?.0,
            password: password?,
        })
    }

    fn arrs(&mut self, top: &mut Table<'_, '_>) -> Vec<Arr> {
        let mut out: Vec<Arr> = Vec::new();
        for (mut t, _) in self.array_of_tables(top, "arr") {
            let name = self.required_string(&mut t, "name");
            let kind = match t.get("kind") {
                None => {
                    self.problem(t.key("kind"), None, "required key is missing");
                    None
                }
                Some(_) => {
                    let choices = [
                        ("radarr", Some(ArrKind::Radarr)),
                        ("sonarr", Some(ArrKind::Sonarr)),
                    ];
                    self.one_of(&mut t, "kind", &choices, None)
                }
            };
            if let Some((n, span)) = &name {
                if !valid_name(n) {
                    self.problem(t.key("name"), Some(span.clone()), NAME_RULE);
                } else if out.iter().any(|a| &a.name == n) {
                    let msg = format!("duplicate arr name {n:?}");
                    self.problem(t.key("name"), Some(span.clone()), msg);
                }
            }
            let endpoint =
                self.arr_endpoint(&mut t, kind.unwrap_or(ArrKind::Radarr), name.map(|n| n.0));
            self.finish(t);
            if let (Some(_), Some(arr)) = (kind, endpoint) {
                out.push(arr);
            }
        }
        out
    }

    fn downloads(&mut self, top: &mut Table<'_, '_>) -> DownloadsConfig {
        let mut t = self.table(top, "downloads");
        let watch_dir = self.path(&mut t, "watch_dir", "data/watch");
        let incomplete_dir = self.path(&mut t, "incomplete_dir", "data/incomplete");
        let completed_dir = self.path(&mut t, "completed_dir", "data/completed");
        let scan_interval = self.millis(&mut t, "scan_interval_ms", 2000, 50, 3_600_000);
        let stub_settle = self.millis(&mut t, "stub_settle_ms", 30_000, 0, 86_400_000);
        let max_concurrent_downloads =
            self.integer(&mut t, "max_concurrent_downloads", 3, 1, 64) as usize;
        let max_attempts = self.integer(&mut t, "max_attempts", 13, 1, 1000) as u32;
        let progress_bytes = self.integer(&mut t, "progress_bytes", 65_536, 1, i64::MAX as u64);
        let retry_base_delay = self.millis(&mut t, "retry_base_delay_ms", 1000, 1, 86_400_000);
        let retry_max_delay = self.millis(&mut t, "retry_max_delay_ms", 1_800_000, 1, 86_400_000);
        let idle_timeout = self.millis(&mut t, "idle_timeout_ms", 60_000, 100, 3_600_000);
        let max_file_size =
            self.integer(&mut t, "max_file_size", 107_374_182_400, 1, i64::MAX as u64);
        let disk_full_retry = self.millis(&mut t, "disk_full_retry_ms", 30_000, 10, 86_400_000);
        let min_free_bytes = self.integer(&mut t, "min_free_bytes", 1 << 30, 0, i64::MAX as u64);
        if retry_max_delay < retry_base_delay {
            let span = t
                .table
                .and_then(|tb| tb.get("retry_max_delay_ms"))
                .map(|v| v.span());
            self.problem(
                t.key("retry_max_delay_ms"),
                span,
                "must not be smaller than retry_base_delay_ms",
            );
        }
        let dirs = [
            ("watch_dir", &watch_dir),
            ("incomplete_dir", &incomplete_dir),
            ("completed_dir", &completed_dir),
        ];
        for (i, (ka, a)) in dirs.iter().enumerate() {
            for (kb, b) in &dirs[i + 1..] {
                if a.starts_with(b) || b.starts_with(a) {
                    let span = t.table.and_then(|tb| tb.get(*kb)).map(|v| v.span());
                    let msg =
                        format!("{ka} and {kb} must be separate folders, neither inside the other");
                    self.problem(t.key(kb), span, msg);
                }
            }
        }
        self.finish(t);
        DownloadsConfig {
            watch_dir,
            incomplete_dir,
            completed_dir,
            scan_interval,
            stub_settle,
            max_concurrent_downloads,
            max_attempts,
            progress_bytes,
            retry_base_delay,
            retry_max_delay,
            idle_timeout,
            max_file_size,
            disk_full_retry,
            min_free_bytes,
        }
    }

    fn peers(&mut self, top: &mut Table<'_, '_>) -> Vec<Peer> {
        let mut out: Vec<Peer> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (mut t, _) in self.array_of_tables(top, "peers") {
            let name = self.required_string(&mut t, "name");
            let url = self.required_string(&mut t, "url");
            let api_key = self.secret(&mut t, "api_key");
            if let Some((n, span)) = &name {
                if !valid_name(n) {
                    self.problem(t.key("name"), Some(span.clone()), NAME_RULE);
                } else if names.contains(n) {
                    self.problem(
                        t.key("name"),
                        Some(span.clone()),
                        format!("duplicate peer name {n:?}"),
                    );
                }
                names.push(n.clone());
            }
            let url = url.and_then(|(u, span)| match check_url(&u, &["http", "https"]) {
                Ok(u) => Some(u),
                Err(msg) => {
                    self.problem(t.key("url"), Some(span), msg);
                    None
                }
            });
            let ca = self.ca_file(&mut t, url.as_deref());
            self.finish(t);
            if let (Some((name, _)), Some(url), Some(api_key), Some((ca_file, tls))) =
                (name, url, api_key, ca)
            {
                out.push(Peer {
                    name,
                    url,
                    api_key,
                    ca_file,
                    tls,
                });
            }
        }
        out
    }

    /// A peer's `ca_file` (https only): a readable PEM file with at least one
    /// certificate, which becomes the peer's only trusted roots. `None`
    /// when it is set but wrong (reported); `Some((None, None))` when unset.
    #[allow(clippy::type_complexity)]
    fn ca_file(
        &mut self,
        t: &mut Table<'_, '_>,
        url: Option<&str>,
    ) -> Option<(Option<PathBuf>, Option<ureq::tls::TlsConfig>)> {
        let Some((raw, span)) = self.string(t, "ca_file") else {
            return Some((None, None));
        };
        let key = t.key("ca_file");
        if url.is_some_and(|u| !u.starts_with("https://")) {
            self.problem(key, Some(span), "applies only to an https:// url");
            return None;
        }
        let path = self.resolve(&raw);
        let pem = match std::fs::read(&path) {
            Ok(pem) => pem,
            Err(e) => {
                let msg = format!("cannot read {}: {e}", path.display());
                self.problem(key, Some(span), msg);
                return None;
            }
        };
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("{} is not valid PEM: {e}", path.display());
                    self.problem(key, Some(span), msg);
                    return None;
                }
            }
        }
        if certs.is_empty() {
            let msg = format!("{} holds no PEM certificate", path.display());
            self.problem(key, Some(span), msg);
            return None;
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        Some((Some(path), Some(tls)))
    }

    fn log(&mut self, top: &mut Table<'_, '_>) -> LogConfig {
        let mut t = self.table(top, "log");
        let mut level = match self.string(&mut t, "level") {
            None => log::LevelFilter::Info,
            Some((s, span)) => parse_level(&s).unwrap_or_else(|| {
                self.problem(
                    t.key("level"),
                    Some(span),
                    format!("{s:?} is not one of {LEVELS}"),
                );
                log::LevelFilter::Info
            }),
        };
        let format = self.one_of(
            &mut t,
            "format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            LogFormat::Text,
        );
        self.finish(t);
        let mut level_from_env = false;
        if let Some(v) = (self.env)("JACK_LOG").filter(|v| !v.is_empty()) {
            match parse_level(&v) {
                Some(l) => {
                    level = l;
                    level_from_env = true;
                }
                None => self.problem(
                    "JACK_LOG (environment)".into(),
                    None,
                    format!("{v:?} is not one of {LEVELS}"),
                ),
            }
        }
        LogConfig {
            level,
            format,
            level_from_env,
        }
    }
}

const LEVELS: &str = "error, warn, info, debug, trace";
pub const NAME_RULE: &str = "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'";

fn parse_level(s: &str) -> Option<log::LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        _ => None,
    }
}

/// Peer and library names: `[A-Za-z0-9_-]{1,64}` (they appear in stubs).
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a base URL (`scheme://host[:port][/path]`) and returns it without a
/// trailing slash.
fn check_url(url: &str, schemes: &[&str]) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL such as http://192.168.1.20:5225"
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!("{url:?}: scheme must be {}", schemes.join(" or ")));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "{url:?}: needs a host and must not carry a user or password"
        ));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "{url:?}: must not have a query, fragment or spaces"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, Problems> {
        Config::parse(text, Path::new("/etc/jack/jack.toml"), &no_env)
    }

    const MINIMAL: &str = "[server]\napi_key = \"k\"\n";

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(_) => panic!("expected problems for:\n{text}"),
            Err(p) => p.list,
        }
    }

    #[test]
    fn minimal_config_takes_every_default() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:5225");
        assert_eq!(c.server.public_url, "http://127.0.0.1:5225");
        assert_eq!(c.server.handler_threads, 8);
        assert_eq!(c.server.max_connections, 256);
        assert_eq!(c.server.max_connections_per_ip, 32);
        assert_eq!(c.server.auth_failures_per_minute, 10);
        assert_eq!(c.database.path, PathBuf::from("/etc/jack/data/jack.db"));
        assert_eq!(c.downloads.watch_dir, PathBuf::from("/etc/jack/data/watch"));
        assert_eq!(c.downloads.max_concurrent_downloads, 3);
        assert_eq!(c.downloads.max_attempts, 13);
        assert_eq!(c.downloads.min_free_bytes, 1 << 30);
        assert_eq!(c.downloads.stub_settle, Duration::from_secs(30));
        assert_eq!(c.downloads.progress_bytes, 65_536);
        assert_eq!(c.downloads.retry_base_delay, Duration::from_millis(1000));
        assert_eq!(
            c.downloads.retry_max_delay,
            Duration::from_millis(1_800_000)
        );
        assert_eq!(c.downloads.idle_timeout, Duration::from_millis(60_000));
        assert_eq!(c.downloads.max_file_size, 107_374_182_400);
        assert_eq!(c.log.level, log::LevelFilter::Info);
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.libraries.is_empty() && c.peers.current().is_empty());
    }

    #[test]
    fn the_shipped_jack_toml_is_valid() {
        let text = include_str!("../jack.toml");
        let c = Config::parse(text, Path::new("/srv/jack/jack.toml"), &no_env).unwrap();
        assert_eq!(c.libraries.len(), 2);
        assert_eq!(c.peers.current().len(), 1);
        assert_eq!(c.libraries[0].path, PathBuf::from("/srv/jack/media/movies"));
    }

    /// The commented `[[server.peer_keys]]`, `[[library]] kind = "radarr"`
    /// and `[[arr]]` examples of the shipped file are valid once uncommented.
    #[test]
    fn the_commented_arr_examples_of_jack_toml_are_valid() {
        let mut text = String::new();
        let mut in_example = false;
        for line in include_str!("../jack.toml").lines() {
            match line.strip_prefix("# ") {
                Some(bare) if bare.starts_with("[[") => {
                    in_example = true;
                    text.push_str(bare);
                }
                Some(bare) if in_example && bare.contains(" = ") => text.push_str(bare),
                _ => {
                    in_example = false;
                    text.push_str(line);
                }
            }
            text.push('\n');
        }
        let env = |k: &str| match k {
            "RADARR_API_KEY" => Some("r".to_string()),
            "JACK_KEY_BOB" => Some("b".to_string()),
            _ => None,
        };
        let c = Config::parse(&text, Path::new("/srv/jack/jack.toml"), &env).unwrap();
        assert_eq!(c.server.peer_keys.len(), 1);
        assert_eq!(c.server.peer_keys[0].name, "bob");
        assert_eq!(c.libraries.len(), 3);
        let films = &c.libraries[2];
        assert!(
            matches!(&films.source, LibrarySource::Arr(a) if a.kind == ArrKind::Radarr && a.api_key.expose() == "r")
        );
        assert_eq!(films.category, Category::Movies);
        assert_eq!(c.arrs.len(), 1);
        assert_eq!(c.arrs[0].url, "http://127.0.0.1:7878");
    }

    /// Each bad configuration and the key and message it must produce.
    #[test]
    fn bad_configs_are_reported_with_key_and_line() {
        let cases: &[(&str, &str, Option<usize>, &str)] = &[
            (
                "[server]\napi_key = \"k\"\nlisten = \"nowhere\"\n",
                "server.listen",
                Some(3),
                "is not an address:port",
            ),
            (
                "[server]\napi_key = \"k\"\nlistne = \"127.0.0.1:1\"\n",
                "server.listne",
                Some(3),
                "unknown key",
            ),
            (
                "[server]\napi_key = \"k\"\n[servr]\n",
                "servr",
                Some(3),
                "unknown key",
            ),
            (
                "[server]\napi_key = \"\"\n",
                "server.api_key",
                Some(2),
                "must not be empty",
            ),
            (
                "[server]\n",
                "server.api_key",
                None,
                "required key is missing",
            ),
            (
                "[server]\napi_key = 5\n",
                "server.api_key",
                Some(2),
                "found integer",
            ),
            (
                "[server]\napi_key = { env = \"JACK_TEST_UNSET\" }\n",
                "server.api_key",
                Some(2),
                "JACK_TEST_UNSET is not set",
            ),
            (
                "[server]\napi_key = { file = \"relative/key\" }\n",
                "server.api_key",
                Some(2),
                "must be an absolute path",
            ),
            (
                "[server]\napi_key = { file = \"/nonexistent/jack-key\" }\n",
                "server.api_key",
                Some(2),
                "cannot read secret file",
            ),
            (
                "[server]\napi_key = { env = \"A\", file = \"/b\" }\n",
                "server.api_key",
                Some(2),
                "expected a string, { env",
            ),
            (
                "[server]\napi_key = { vault = \"x\" }\n",
                "server.api_key.vault",
                Some(2),
                "unknown key",
            ),
            (
                "[server]\napi_key = \"k\"\nhandler_threads = 0\n",
                "server.handler_threads",
                Some(3),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\nauth_failures_per_minute = 0\n",
                "server.auth_failures_per_minute",
                Some(3),
                "must be at least 1, got 0",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_connections_per_ip = 0\n",
                "server.max_connections_per_ip",
                Some(3),
                "must be at least 1, got 0",
            ),
            (
                "[server]\napi_key = \"k\"\n\nmax_connections_per_ip = 65537\n",
                "server.max_connections_per_ip",
                Some(4),
                "must be at most 65536, got 65537",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_connections_per_ip = \"8\"\n",
                "server.max_connections_per_ip",
                Some(3),
                "expected an integer, found string",
            ),
            (
                "[server]\napi_key = \"k\"\nhandler_threads = \"8\"\n",
                "server.handler_threads",
                Some(3),
                "expected an integer, found string",
            ),
            (
                "[server]\napi_key = \"k\"\npublic_url = \"ftp://x\"\n",
                "server.public_url",
                Some(3),
                "scheme must be",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_concurrent_downloads = 0\n",
                "downloads.max_concurrent_downloads",
                Some(4),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmin_free_bytes = -1\n",
                "downloads.min_free_bytes",
                Some(4),
                "at least 0",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nstub_settle_ms = -1\n",
                "downloads.stub_settle_ms",
                Some(4),
                "at least 0",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nstub_settle_ms = 86400001\n",
                "downloads.stub_settle_ms",
                Some(4),
                "at most",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmin_free_bytes = \"1G\"\n",
                "downloads.min_free_bytes",
                Some(4),
                "expected an integer",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_attempts = -3\n",
                "downloads.max_attempts",
                Some(4),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nprogress_bytes = 0\n",
                "downloads.progress_bytes",
                Some(4),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_file_size = 99999999999999999999999\n",
                "downloads.max_file_size",
                Some(4),
                "must be at most",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nretry_base_delay_ms = 5000\nretry_max_delay_ms = 10\n",
                "downloads.retry_max_delay_ms",
                Some(5),
                "must not be smaller",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nwatch_dir = \"w\"\ncompleted_dir = \"w/done\"\n",
                "downloads.completed_dir",
                Some(5),
                "separate folders",
            ),
            (
                "[server]\napi_key = \"k\"\n[[library]]\nname = \"m\"\npath = \"m\"\ncategory = \"music\"\n",
                "library[0].category",
                Some(6),
                "is not one of",
            ),
            (
                "[server]\napi_key = \"k\"\n[[library]]\nname = \"m\"\n",
                "library[0].path",
                None,
                "required key is missing",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"bad name\"\nurl = \"http://x\"\napi_key = \"p\"\n",
                "peers[0].name",
                Some(4),
                "1 to 64 characters",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"http://x\"\napi_key = \"p\"\n[[peers]]\nname = \"a\"\nurl = \"http://y\"\napi_key = \"q\"\n",
                "peers[1].name",
                Some(8),
                "duplicate peer name",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"ftp://x\"\napi_key = \"p\"\n",
                "peers[0].url",
                Some(5),
                "scheme must be http or https",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"http://x\"\napi_key = \"p\"\nca_file = \"/etc/hostname\"\n",
                "peers[0].ca_file",
                Some(7),
                "applies only to an https:// url",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"https://x\"\napi_key = \"p\"\nca_file = \"/nonexistent/ca.pem\"\n",
                "peers[0].ca_file",
                Some(7),
                "cannot read /nonexistent/ca.pem",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"https://x\"\napi_key = \"p\"\nca_file = \"/proc/self/cmdline\"\n",
                "peers[0].ca_file",
                Some(7),
                "holds no PEM certificate",
            ),
            (
                "[server]\napi_key = \"k\"\n[[peers]]\nname = \"a\"\nurl = \"https://x\"\napi_key = \"p\"\nca_file = 3\n",
                "peers[0].ca_file",
                Some(7),
                "expected a string",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"bad name\"\nkey = \"x\"\n",
                "server.peer_keys[0].name",
                Some(4),
                "must be 1 to 64 characters",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"x\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"y\"\n",
                "server.peer_keys[1].name",
                Some(7),
                "duplicate peer key name",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nkey = \"x\"\n",
                "server.peer_keys[0].name",
                None,
                "required key is missing",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\n",
                "server.peer_keys[0].key",
                Some(3),
                "required: key or key_sha256",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"x\"\nkey_sha256 = \"00\"\n",
                "server.peer_keys[0].key",
                Some(3),
                "not both",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey_sha256 = \"abc\"\n",
                "server.peer_keys[0].key_sha256",
                Some(5),
                "64 hexadecimal characters",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = { env = \"JACK_TEST_UNSET\" }\n",
                "server.peer_keys[0].key",
                Some(5),
                "JACK_TEST_UNSET is not set",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"\"\n",
                "server.peer_keys[0].key",
                Some(5),
                "must not be empty",
            ),
            (
                "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"a\"\nkey = \"x\"\nkye = 1\n",
                "server.peer_keys[0].kye",
                Some(6),
                "unknown key",
            ),
            (
                "[server]\napi_key = \"k\"\npeer_keys = \"x\"\n",
                "server.peer_keys",
                Some(3),
                "expected an array of tables",
            ),
            (
                "[server]\napi_key = \"k\"\n[log]\nlevel = \"loud\"\n",
                "log.level",
                Some(4),
                "is not one of",
            ),
            (
                "[server]\napi_key = \"k\"\n[log]\nformat = \"xml\"\n",
                "log.format",
                Some(4),
                "is not one of",
            ),
            (
                "database = 3\n[server]\napi_key = \"k\"\n",
                "database",
                Some(1),
                "expected a table",
            ),
            ("[server\napi_key = \"k\"\n", "(syntax)", Some(1), ""),
        ];
        for (text, key, line, needle) in cases {
            let list = problems(text);
            assert_eq!(
                list.len(),
                1,
                "one problem expected for:\n{text}\ngot {list:?}"
            );
            let p = &list[0];
            assert_eq!(&p.key, key, "key for:\n{text}");
            assert_eq!(&p.line, line, "line for:\n{text}");
            assert!(
                p.message.contains(needle),
                "message {:?} lacks {needle:?} for:\n{text}",
                p.message
            );
        }
    }

    #[test]
    fn peer_keys_take_a_key_or_its_sha256() {
        let text = format!(
            "[server]\napi_key = \"k\"\n[[server.peer_keys]]\nname = \"alice\"\nkey = \"alice-key\"\n\
             [[server.peer_keys]]\nname = \"bob\"\nkey_sha256 = \"{}\"\n",
            crate::keys::sha256_hex("bob-key").to_uppercase()
        );
        let c = parse(&text).unwrap();
        let k = &c.server.peer_keys;
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].name, "alice");
        assert!(matches!(&k[0].check, KeyCheck::Key(s) if s.expose() == "alice-key"));
        assert!(
            matches!(&k[1].check, KeyCheck::Sha256(d) if crate::keys::hex(d) == crate::keys::sha256_hex("bob-key"))
        );
        // The effective configuration shows the hash, never the key.
        let shown = c.to_string();
        assert!(shown.contains("[[server.peer_keys]]\nname = \"bob\"\nkey_sha256 = "));
        assert!(!shown.contains("alice-key"));
    }

    #[test]
    fn https_peers_and_their_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["nas.example".to_string()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), made.cert.pem()).unwrap();
        let text = "[server]\napi_key = \"k\"\n\
            [[peers]]\nname = \"a\"\nurl = \"https://nas.example/jack/\"\napi_key = \"p\"\nca_file = \"ca.pem\"\n\
            [[peers]]\nname = \"b\"\nurl = \"https://b.example\"\napi_key = \"q\"\n";
        let c = Config::parse(text, &dir.path().join("jack.toml"), &no_env).unwrap();
        assert_eq!(c.peers.current()[0].url, "https://nas.example/jack");
        assert_eq!(
            c.peers.current()[0].ca_file.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
        assert!(c.peers.current()[0].tls.is_some());
        assert!(c.peers.current()[1].ca_file.is_none() && c.peers.current()[1].tls.is_none());
        assert!(c.to_string().contains("ca_file = "));
    }

    #[test]
    fn plain_http_beyond_the_lan_is_spotted() {
        let peer = |url: &str| Peer {
            name: "a".into(),
            url: url.into(),
            api_key: Secret::new("k", SecretOrigin::Inline),
            ca_file: None,
            tls: None,
        };
        for near in [
            "http://127.0.0.1:5225",
            "http://10.0.0.2",
            "http://172.16.5.4:80/jack",
            "http://192.168.1.20:5225",
            "http://100.101.102.103:5225",
            "http://169.254.1.1",
            "http://[::1]:5225",
            "http://[fd7a:115c:a1e0::1]:5225",
            "http://localhost:5225",
            "http://nas.local:5225",
            "http://nas.tail1234.ts.net",
            "https://203.0.113.7",
            "https://friend.example.com",
        ] {
            assert!(!peer(near).in_clear_text_beyond_the_lan(), "{near}");
        }
        for far in [
            "http://203.0.113.7:5225",
            "http://friend.example.com",
            "http://[2001:db8::1]:5225",
            "http://100.128.0.1",
            "http://172.32.0.1",
        ] {
            assert!(peer(far).in_clear_text_beyond_the_lan(), "{far}");
        }
    }

    #[test]
    fn three_independent_errors_are_all_reported() {
        let text = "[server]\napi_key = \"\"\nhandler_threads = 0\n[downloads]\nmax_concurrent_downloads = 0\n";
        let list = problems(text);
        let keys: Vec<&str> = list.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "server.api_key",
                "server.handler_threads",
                "downloads.max_concurrent_downloads"
            ]
        );
        let shown = Problems {
            file: "/etc/jack/jack.toml".into(),
            list,
        }
        .to_string();
        assert!(
            shown.starts_with("invalid configuration /etc/jack/jack.toml: 3 problems"),
            "{shown}"
        );
        assert!(shown.contains(
            "/etc/jack/jack.toml:5: downloads.max_concurrent_downloads: must be at least 1"
        ));
    }

    #[test]
    fn secrets_come_from_env_and_file_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("peer.key");
        std::fs::write(&key_file, "file-secret-value\n").unwrap();
        let env = |k: &str| (k == "JACK_API_KEY").then(|| "env-secret-value".to_string());
        let text = format!(
            "[server]\napi_key = {{ env = \"JACK_API_KEY\" }}\n[[peers]]\nname = \"alice\"\nurl = \"http://127.0.0.1:5226/\"\napi_key = {{ file = {:?} }}\n",
            key_file.display()
        );
        let c = Config::parse(&text, Path::new("/x/jack.toml"), &env).unwrap();
        assert_eq!(c.server.api_key.expose(), "env-secret-value");
        assert_eq!(
            c.server.api_key.origin(),
            &SecretOrigin::Env("JACK_API_KEY".into())
        );
        assert_eq!(c.peers.current()[0].api_key.expose(), "file-secret-value");
        assert_eq!(c.peers.current()[0].url, "http://127.0.0.1:5226");
        let shown = format!("{c}\n{c:?}");
        assert!(
            !shown.contains("env-secret-value") && !shown.contains("file-secret-value"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn secret_files_are_regular_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let big = dir.path().join("big.key");
        std::fs::write(&big, "k".repeat(16 * 1024 + 1)).unwrap();
        let most = dir.path().join("most.key");
        std::fs::write(&most, "k".repeat(16 * 1024)).unwrap();
        let text = |path: &Path| format!("[server]\napi_key = {{ file = {:?} }}\n", path.display());
        let cases = [
            (fifo.clone(), "not a regular file"),
            (PathBuf::from("/dev/zero"), "not a regular file"),
            (dir.path().to_path_buf(), "not a regular file"),
            (big, "larger than 16384 bytes"),
        ];
        for (path, why) in cases {
            let t = text(&path);
            // A FIFO without a writer must not hold the parse: bounded.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(problems(&t)).unwrap());
            let list = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("reading {} blocked", path.display()));
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0].key, "server.api_key");
            assert_eq!(list[0].line, Some(2));
            assert!(
                list[0].message.contains("cannot read secret file")
                    && list[0].message.contains(why),
                "{}: {}",
                path.display(),
                list[0].message
            );
        }
        let c = parse(&text(&most)).unwrap();
        assert_eq!(c.server.api_key.expose().len(), 16 * 1024);
    }

    #[test]
    fn jack_log_overrides_the_level_and_is_validated() {
        let env = |k: &str| (k == "JACK_LOG").then(|| "debug".to_string());
        let c = Config::parse(MINIMAL, Path::new("/x/jack.toml"), &env).unwrap();
        assert_eq!(c.log.level, log::LevelFilter::Debug);
        let bad = |k: &str| (k == "JACK_LOG").then(|| "chatty".to_string());
        let err = Config::parse(MINIMAL, Path::new("/x/jack.toml"), &bad).unwrap_err();
        assert_eq!(err.list[0].key, "JACK_LOG (environment)");
    }

    #[test]
    fn arr_tables_are_checked_with_every_problem_at_once() {
        let ok = "[server]\napi_key = \"k\"\n[torznab]\npeer_timeout_ms = 2500\n\
            [qbittorrent]\nusername = \"admin\"\npassword = \"pw\"\n\
            [[arr]]\nname = \"radarr\"\nkind = \"radarr\"\nurl = \"http://127.0.0.1:7878\"\napi_key = \"r\"\n\
            [[library]]\nname = \"films\"\nkind = \"radarr\"\nurl = \"http://127.0.0.1:7878/\"\napi_key = \"r\"\n\
            [[library]]\nname = \"shows\"\nkind = \"sonarr\"\nurl = \"http://127.0.0.1:8989\"\napi_key = \"s\"\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.torznab.peer_timeout, Duration::from_millis(2500));
        assert_eq!(c.qbittorrent.as_ref().unwrap().username, "admin");
        assert_eq!(c.arrs[0].kind, ArrKind::Radarr);
        assert!(
            matches!(&c.libraries[0].source, LibrarySource::Arr(a) if a.url == "http://127.0.0.1:7878")
        );
        assert_eq!(c.libraries[1].category, Category::Tv, "sonarr serves tv");
        let shown = c.to_string();
        assert!(
            shown.contains("[qbittorrent]") && !shown.contains("\"pw\""),
            "{shown}"
        );
        // No [qbittorrent] table: the API is not offered.
        assert!(
            parse("[server]\napi_key = \"k\"\n")
                .unwrap()
                .qbittorrent
                .is_none()
        );

        let bad = "[server]\napi_key = \"k\"\n[torznab]\npeer_timeout_ms = 5\n\
            [qbittorrent]\nusername = \"\"\n\
            [[arr]]\nname = \"a\"\nkind = \"lidarr\"\nurl = \"ftp://x\"\napi_key = \"r\"\n\
            [[arr]]\nname = \"b\"\nurl = \"http://x\"\napi_key = \"r\"\n\
            [[library]]\nname = \"films\"\nkind = \"radarr\"\npath = \"/x\"\nurl = \"http://x\"\napi_key = \"r\"\n";
        let keys: Vec<String> = problems(bad).into_iter().map(|p| p.key).collect();
        for want in [
            "torznab.peer_timeout_ms",
            "qbittorrent.username",
            "qbittorrent.password",
            "arr[0].kind",
            "arr[0].url",
            "arr[1].kind",
            "library[0].path",
        ] {
            assert!(keys.contains(&want.to_string()), "{want} not in {keys:?}");
        }
    }

    #[test]
    fn incomplete_and_completed_may_be_on_different_filesystems() {
        // The hand-off copies where it cannot link (handoff.rs): /dev/shm
        // is never on the filesystem of a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\napi_key = \"k\"\n[downloads]\nincomplete_dir = \"/dev/shm/jack-incomplete\"\ncompleted_dir = {:?}\n",
            dir.path().join("done").display()
        );
        let c = Config::parse(&text, &dir.path().join("jack.toml"), &no_env).unwrap();
        assert_eq!(
            c.downloads.incomplete_dir,
            PathBuf::from("/dev/shm/jack-incomplete")
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let text = "[server]\napi_key = \"k\"\n[database]\npath = \"db/j.db\"\n[[library]]\nname = \"tv\"\npath = \"/abs/tv\"\ncategory = \"tv\"\n";
        let c = Config::parse(text, Path::new("/opt/jack/jack.toml"), &no_env).unwrap();
        assert_eq!(c.database.path, PathBuf::from("/opt/jack/db/j.db"));
        assert_eq!(c.libraries[0].path, PathBuf::from("/abs/tv"));
        assert_eq!(c.libraries[0].category, Category::Tv);
    }
}
