//! `jack.toml`: parse the raw TOML, then validate it into [`Config`].
//!
//! Two layers, as in ripgrep: the TOML parser gives a spanned tree, and the
//! walk (`walk`) goes through it key by key, collecting **every** problem
//! (unknown keys, wrong types, bad values, unset secrets) with its key and
//! line before anything starts. Each table has its own file (`server`,
//! `database`, `library`, `downloads`, `peers`, `torznab`, `qbittorrent`,
//! `arr`, `log`) where each of its keys is declared once (`schema`): name,
//! type, default, range and doc, used by the walk, by `check-config`'s
//! print and by the test that `jack.toml` documents every key. Nothing here
//! starts threads or opens sockets; the only I/O is reading the file, a
//! peer's `ca_file` and `{ file = ... }` secrets (`secret`). Directories are
//! created by [`Config::create_dirs`], which the daemon calls, never
//! `check-config`.
//!
//! The environment comes in as a function so tests need not touch the
//! process environment.

mod arr;
mod database;
mod downloads;
mod library;
mod limits;
mod log;
mod peers;
mod qbittorrent;
pub(crate) mod schema;
mod secret;
mod server;
mod torznab;
pub(crate) mod walk;

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use crate::error::{Error, Result};

pub use arr::{Arr, ArrKind};
pub use database::DatabaseConfig;
pub use downloads::DownloadsConfig;
pub use library::{Category, Library, LibrarySource};
pub use limits::{LimitsConfig, MAX_RATE};
pub use log::{LogConfig, LogFormat};
pub use peers::{Peer, Peers, diff_by_name};
pub use qbittorrent::QbitConfig;
pub use secret::{SECRET_FILE_LIMIT, Secret, SecretOrigin};
pub use server::{KeyCheck, Network, PeerKey, ServerConfig};
pub use torznab::TorznabConfig;
pub use walk::{NAME_RULE, valid_name};

use schema::Key;
use walk::{Cx, Table};

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
    /// The alternative speed limits and their schedule (`[limits]`).
    pub limits: LimitsConfig,
    pub log: LogConfig,
}

/// The tables of `jack.toml`.
const TABLES: &[Key] = &[
    Key::hand("server", None, "this node: address, key, limits"),
    Key::hand("database", None, "the download registry"),
    Key::hand("library", None, "the folders served to peers ([[library]])"),
    Key::hand(
        "downloads",
        None,
        "the watch folder and the download limits",
    ),
    Key::hand("peers", None, "the friends downloaded from ([[peers]])"),
    Key::hand("torznab", None, "the indexer Radarr/Sonarr search"),
    Key::hand(
        "qbittorrent",
        None,
        "the download client API for Radarr/Sonarr",
    ),
    Key::hand("arr", None, "your own Radarr/Sonarr ([[arr]])"),
    Key::hand(
        "limits",
        None,
        "the alternative speed limits and their schedule",
    ),
    Key::hand("log", None, "the log lines"),
];

/// Every table of `jack.toml` by its dotted name, with its keys.
#[cfg(test)]
const SECTIONS: &[(&str, &[Key])] = &[
    ("server", ServerConfig::KEYS),
    ("server.peer_keys", PeerKey::KEYS),
    ("database", DatabaseConfig::KEYS),
    ("library", Library::KEYS),
    ("downloads", DownloadsConfig::KEYS),
    ("peers", Peer::KEYS),
    ("torznab", TorznabConfig::KEYS),
    ("qbittorrent", QbitConfig::KEYS),
    ("arr", Arr::KEYS),
    ("limits", LimitsConfig::KEYS),
    ("log", LogConfig::KEYS),
    ("", TABLES),
];

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

    /// The speed limits the file sets (`limits::Limits`).
    pub fn limit_settings(&self) -> crate::limits::Settings {
        use crate::limits::Rates;
        crate::limits::Settings {
            normal: Rates {
                upload: self.server.max_upload_rate,
                download: self.downloads.max_rate,
            },
            alt: Rates {
                upload: self.limits.alt_upload_rate,
                download: self.limits.alt_download_rate,
            },
            schedule: self.limits.schedule,
        }
    }

    /// Creates every directory the daemon writes to: the watch,
    /// incomplete and completed folders and the registry's. Never a
    /// library folder: one that is missing is a typo or an unmounted disk
    /// ([`Config::check_folders`]), and serving it empty would hide that.
    pub fn create_dirs(&self) -> Result<()> {
        let d = &self.downloads;
        let db_dir = self.database.path.parent().map(Path::to_path_buf);
        let dirs = [&d.watch_dir, &d.incomplete_dir, &d.completed_dir]
            .into_iter()
            .cloned()
            .chain(db_dir);
        for dir in dirs {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create directory {}", dir.display()), e))?;
        }
        Ok(())
    }
}

impl Config {
    /// Every `[[library]]` folder that is not there (or is not a folder):
    /// each a problem naming the library, its path and what to do, all at
    /// once. `check-config` and `run` ask this; a reload does not (a
    /// library change waits for a restart).
    pub fn check_folders(&self) -> Result<()> {
        let list: Vec<Problem> = self
            .libraries
            .iter()
            .filter(|l| matches!(l.source, LibrarySource::Directory))
            .filter_map(|l| {
                let path = l.path.display();
                let message = match std::fs::metadata(&l.path) {
                    Ok(m) if m.is_dir() => return None,
                    Ok(_) => format!("path {path} is not a folder: point it at the folder that holds the files"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                        "path {path} does not exist: correct the path (a typo?), mount the disk that holds it, or create the folder"
                    ),
                    Err(e) => format!(
                        "path {path} cannot be read ({}): let the user jack runs as read it",
                        crate::plain::io_phrase(&e)
                    ),
                };
                Some(Problem {
                    key: format!("[[library]] {:?}", l.name),
                    line: None,
                    message,
                })
            })
            .collect();
        if list.is_empty() {
            return Ok(());
        }
        Err(Error::Config(Problems {
            file: self.file.clone(),
            list,
        }))
    }
}

/// The effective configuration as TOML, secrets redacted (`jack check-config`).
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# effective configuration of {}", self.file.display())?;
        self.server.show(f)?;
        writeln!(f, "\n[database]")?;
        self.database.show_keys(f)?;
        for l in &self.libraries {
            l.show(f)?;
        }
        writeln!(f, "\n[downloads]")?;
        self.downloads.show_keys(f)?;
        for p in self.peers.current().iter() {
            p.show(f)?;
        }
        writeln!(f, "\n[torznab]")?;
        self.torznab.show_keys(f)?;
        if let Some(q) = &self.qbittorrent {
            q.show(f)?;
        }
        for a in &self.arrs {
            a.show(f)?;
        }
        self.limits.show(f)?;
        self.log.show(f)
    }
}

impl Cx<'_> {
    fn config(&mut self, file: &Path, root: &DeTable<'_>) -> Config {
        let mut top = Table::new(String::new(), Some(root), TABLES);
        let server = self.server(&mut top);
        let database = self.database(&mut top);
        let libraries = self.libraries(&mut top);
        let downloads = self.downloads(&mut top);
        let peers = Peers::new(self.peers(&mut top));
        let torznab = self.torznab(&mut top);
        let qbittorrent = self.qbittorrent(&mut top);
        let arrs = self.arrs(&mut top);
        let limits = self.limits(&mut top, downloads.max_concurrent_downloads);
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
            limits,
            log,
        }
    }
}

/// What the tests of every section share.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn no_env(_: &str) -> Option<String> {
        None
    }

    pub fn parse(text: &str) -> Result<Config, Problems> {
        Config::parse(text, Path::new("/etc/jack/jack.toml"), &no_env)
    }

    pub const MINIMAL: &str = "[server]\napi_key = \"k\"\n";

    pub fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(_) => panic!("expected problems for:\n{text}"),
            Err(p) => p.list,
        }
    }

    /// Each case: a file with one problem, its key, its line and a part of
    /// its message.
    pub fn each_is_reported(cases: &[(&str, &str, Option<usize>, &str)]) {
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
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crate::config::testing::*;
    use crate::config::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_tables_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\n[servr]\n",
                "servr",
                Some(3),
                "unknown key",
            ),
            (
                "database = 3\n[server]\napi_key = \"k\"\n",
                "database",
                Some(1),
                "expected a table",
            ),
            ("[server\napi_key = \"k\"\n", "(syntax)", Some(1), ""),
        ]);
    }

    #[test]
    fn minimal_config_takes_every_default() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:5225");
        assert_eq!(c.server.public_url, "http://127.0.0.1:5225");
        assert_eq!(c.server.handler_threads, 8);
        assert_eq!(c.server.max_connections, 256);
        assert_eq!(c.server.max_connections_per_ip, 32);
        assert_eq!(c.server.header_timeout, Duration::from_secs(10));
        assert_eq!(c.server.stream_threads, 16);
        assert_eq!(c.server.max_streams_per_key, 4);
        assert_eq!(c.server.min_send_rate, 8192);
        assert_eq!(c.server.send_rate_window, Duration::from_secs(30));
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
        assert_eq!(c.log.level, ::log::LevelFilter::Info);
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.libraries.is_empty() && c.peers.current().is_empty());
    }

    #[test]
    fn the_shipped_jack_toml_is_valid() {
        let text = include_str!("../../jack.toml");
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
        for line in include_str!("../../jack.toml").lines() {
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
    fn relative_paths_resolve_against_the_config_directory() {
        let text = "[server]\napi_key = \"k\"\n[database]\npath = \"db/j.db\"\n[[library]]\nname = \"tv\"\npath = \"/abs/tv\"\ncategory = \"tv\"\n";
        let c = Config::parse(text, Path::new("/opt/jack/jack.toml"), &no_env).unwrap();
        assert_eq!(c.database.path, PathBuf::from("/opt/jack/db/j.db"));
        assert_eq!(c.libraries[0].path, PathBuf::from("/abs/tv"));
        assert_eq!(c.libraries[0].category, Category::Tv);
    }

    /// `jack.toml` documents every declared key in its table (a header for
    /// a table), commented out or not, with the declared default where the
    /// key has one; and it names no key that is not declared.
    #[test]
    fn jack_toml_documents_exactly_the_declared_keys() {
        let declared = |table: &str| {
            SECTIONS
                .iter()
                .find(|(name, _)| *name == table)
                .map(|(_, keys)| *keys)
                .unwrap_or_else(|| panic!("jack.toml: table [{table}] is not declared"))
        };
        let is_key = |k: &str| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        };
        // (table, key, the value as written); None: the preamble.
        let mut documented: Vec<(String, String, String)> = Vec::new();
        let mut table: Option<String> = None;
        for (i, line) in include_str!("../../jack.toml").lines().enumerate() {
            let bare = line.trim_start_matches(['#', ' ']);
            let header = bare.trim_start_matches('[').trim_end_matches(']');
            if bare.starts_with('[') && is_key(header) {
                let (parent, name) = header.rsplit_once('.').unwrap_or(("", header));
                documented.push((parent.into(), name.into(), String::new()));
                table = Some(header.to_string());
                continue;
            }
            let (Some(table), Some((k, v))) = (&table, bare.split_once(" = ")) else {
                continue;
            };
            if !is_key(k) {
                continue;
            }
            assert!(
                declared(table).iter().any(|d| d.name == k),
                "jack.toml:{}: {table}.{k} is not a declared key",
                i + 1
            );
            documented.push((table.clone(), k.into(), v.into()));
        }
        for (table, keys) in SECTIONS {
            for key in keys.iter() {
                let values: Vec<&str> = documented
                    .iter()
                    .filter(|(t, k, _)| t == table && k == key.name)
                    .map(|(_, _, v)| v.as_str())
                    .collect();
                assert!(
                    !values.is_empty(),
                    "{table}.{} is declared but jack.toml does not document it; under [{table}]:\n# {}\n{} = {}",
                    key.name,
                    key.doc,
                    key.name,
                    key.default_toml().unwrap_or_default()
                );
                if let Some(default) = key.default_toml() {
                    assert!(
                        values
                            .iter()
                            .any(|v| *v == default || v.starts_with(&format!("{default} "))),
                        "jack.toml shows {table}.{} as {values:?}, declared default {default}",
                        key.name
                    );
                }
            }
        }
    }

    /// `check-config` prints every key declared with a default, at its
    /// default when the file does not set it.
    #[test]
    fn check_config_prints_every_declared_key() {
        let shown = parse(MINIMAL).unwrap().to_string();
        for (table, keys) in SECTIONS {
            for key in keys.iter() {
                let line = match key.kind {
                    schema::Kind::Hand { .. } => continue,
                    schema::Kind::Path { default } => {
                        format!("{} = \"/etc/jack/{default}\"", key.name)
                    }
                    _ => format!("{} = {}", key.name, key.default_toml().unwrap()),
                };
                assert!(
                    shown.contains(&format!("\n{line}\n")),
                    "[{table}] {line} not in:\n{shown}"
                );
            }
        }
    }
}
