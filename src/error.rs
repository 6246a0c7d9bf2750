//! The one error type of jack.
//!
//! A hand-written enum with a single `Display` match and `From` impls, no
//! error crates. Messages are lowercase, say what failed on what, and carry
//! their cause through `source()` so `main` can print a `caused by:` chain.
//! This module decides the process exit code of every failure.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::config::Problems;

#[derive(Debug)]
pub enum Error {
    /// Bad command line: exit 2.
    Usage(String),
    /// Bad configuration, every problem at once: exit 2.
    Config(Problems),
    /// An I/O operation failed on something named by `what`.
    Io { what: String, source: io::Error },
    /// A registry (SQLite) operation failed.
    Db {
        what: String,
        source: rusqlite::Error,
    },
    /// Another jack already holds the registry.
    AlreadyRunning { db: PathBuf, holder: String },
    /// Any other runtime failure, already phrased for the operator.
    Runtime(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn db(what: impl Into<String>, source: rusqlite::Error) -> Error {
        Error::Db {
            what: what.into(),
            source,
        }
    }

    /// The message and every cause, `what: cause: cause`, for log lines.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(&format!(": {c}"));
            cause = c.source();
        }
        out
    }

    /// The disk (or quota) is full: worth waiting for space, not retrying.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Db { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            Error::Io { source, .. } => io_disk_full(source),
            _ => false,
        }
    }

    /// 2 for bad usage or configuration, 1 for everything that failed at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::Config(problems) => write!(f, "{problems}"),
            Error::Io { what, .. } => write!(f, "{what}"),
            Error::Db { what, .. } => write!(f, "{what}"),
            Error::AlreadyRunning { db, holder } => write!(
                f,
                "another jack ({holder}) is already running on the registry {}; stop it first or point this one at another database.path",
                db.display()
            ),
            Error::Runtime(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Db { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The disk (or quota) is full: `StorageFull`, `QuotaExceeded`, or the raw
/// `ENOSPC`/`EDQUOT` (so the answer does not depend on std's mapping).
pub fn io_disk_full(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(err.kind(), K::StorageFull | K::QuotaExceeded)
        || err.raw_os_error().is_some_and(is_disk_full_errno)
}

/// `ENOSPC` and `EDQUOT`. std maps them to `StorageFull` and
/// `QuotaExceeded` already; the raw numbers are checked too so that the
/// answer does not depend on that mapping.
#[cfg(unix)]
fn is_disk_full_errno(code: i32) -> bool {
    const ENOSPC: i32 = 28;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const EDQUOT: i32 = 122;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const EDQUOT: i32 = 69; // macOS and the BSDs
    code == ENOSPC || code == EDQUOT
}

#[cfg(not(unix))]
fn is_disk_full_errno(_code: i32) -> bool {
    false
}
