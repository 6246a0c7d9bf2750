//! Stubs the watch folder set aside (`<name>.invalid`, `<name>.failed`,
//! `<name>.duplicate`, or `<name>.<n>.<kind>`; `download/watch`): [`list`]
//! finds them with their reason, read from what is on disk and in the
//! registry alone (an invalid stub's reason as recorded, a failed one's
//! download and its error, a duplicate's download found by the info-hash
//! in the stub), and [`retry`] puts one back under its own name, dated
//! now, so the watch thread reads it again as a new grab. A duplicate
//! whose download is still there stays a duplicate: retrying it is
//! refused with why. Must not: delete a stub, or replace a file.

use std::path::Path;
use std::time::SystemTime;

use crate::db::{Registry, Status};
use crate::error::{Error, Result};

/// One stub set aside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetAside {
    /// Its name in the watch folder now (`Movie.torrent.invalid`).
    pub file: String,
    /// The stub's own name (`Movie.torrent`).
    pub stub: String,
    /// `invalid`, `failed` or `duplicate`.
    pub kind: &'static str,
    /// Why, in plain words.
    pub reason: String,
    /// The download it concerns, when there is one.
    pub download: Option<i64>,
    /// When it was set aside (its modification time, RFC 3339).
    pub at: String,
}

const KINDS: [&str; 3] = ["invalid", "failed", "duplicate"];

/// `(stub, kind)` of a set-aside name: `<stub>.<kind>` or
/// `<stub>.<n>.<kind>` (n 2 to 99), the stub a `.torrent` name. Pure.
pub fn parse_name(file: &str) -> Option<(&str, &'static str)> {
    let (rest, kind) = file.rsplit_once('.')?;
    let kind = KINDS.into_iter().find(|k| *k == kind)?;
    let rest = match rest.rsplit_once('.') {
        Some((stub, n))
            if crate::lexical::decimal::<u32>(n).is_some_and(|n| (2..100).contains(&n)) =>
        {
            stub
        }
        _ => rest,
    };
    let stub_like = rest.to_ascii_lowercase().ends_with(".torrent") && !rest.starts_with('.');
    stub_like.then_some((rest, kind))
}

/// Every stub set aside in `dir`, by name.
pub fn list(dir: &Path, registry: &Registry) -> Result<Vec<SetAside>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
    };
    let invalid = registry.invalid_stubs()?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some((stub, kind)) = parse_name(&file) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let at = meta
            .modified()
            .map_or_else(|_| String::new(), crate::clock::rfc3339);
        let (reason, download) = match kind {
            "invalid" => (
                invalid
                    .iter()
                    .rev()
                    .find(|i| i.stub_name == stub)
                    .map_or_else(
                        || "not a valid stub".to_string(),
                        |i| format!("not a valid stub: {}", i.reason),
                    ),
                None,
            ),
            "failed" => match registry.by_stub_name(stub)?.pop() {
                Some(d) => (
                    match (d.status, &d.error) {
                        (Status::Failed, Some(e)) => {
                            format!("its download failed: {}", crate::plain::say(&d.peer, e))
                        }
                        (status, _) => format!("its download failed, and is {status} now"),
                    },
                    Some(d.id),
                ),
                None => (
                    "its download failed and was removed since".to_string(),
                    None,
                ),
            },
            _ => match duplicate_of(&dir.join(&file), registry)? {
                Some(d) => (
                    format!(
                        "a download of this release is already there (#{}, {})",
                        d.id, d.status
                    ),
                    Some(d.id),
                ),
                None => (
                    "its release had a download, removed since".to_string(),
                    None,
                ),
            },
        };
        out.push(SetAside {
            file: file.clone(),
            stub: stub.to_string(),
            kind,
            reason,
            download,
            at,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// The download of the release the stub at `path` names, if any.
fn duplicate_of(path: &Path, registry: &Registry) -> Result<Option<crate::db::Download>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    let Ok(stub) = crate::stub::parse(&bytes, u64::MAX) else {
        return Ok(None);
    };
    Ok(registry.by_info_hash(&stub.info_hash)?.pop())
}

/// Why a stub set aside cannot be put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such file set aside.
    NotFound,
    /// It cannot be put back, and why (in plain words).
    Conflict(String),
}

/// Puts the stub set aside as `file` back under its own name in `dir`,
/// dated now, for the watch thread to read as a new grab. Answers the
/// stub's name.
pub fn retry(
    dir: &Path,
    registry: &Registry,
    file: &str,
) -> Result<std::result::Result<String, Refused>> {
    let Some((stub, kind)) = parse_name(file).filter(|_| crate::naming::bare_file_name(file))
    else {
        return Ok(Err(Refused::NotFound));
    };
    let from = dir.join(file);
    if !from.is_file() {
        return Ok(Err(Refused::NotFound));
    }
    if kind == "duplicate"
        && let Some(d) = duplicate_of(&from, registry)?
    {
        return Ok(Err(Refused::Conflict(format!(
            "{stub} is still a duplicate: download #{} of this release is {}; delete the stub, or remove that download first",
            d.id, d.status
        ))));
    }
    let io = |what: &str, e| Error::io(format!("cannot {what} {}", from.display()), e);
    // Dated now: the watch thread and the registry know it by its
    // length and date, and must take it for a new stub.
    std::fs::File::options()
        .write(true)
        .open(&from)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .map_err(|e| io("date", e))?;
    match crate::download::handoff::rename_no_replace(&from, &dir.join(stub)) {
        Ok(()) => {
            log::info!("stub put back stub={stub} was={file}");
            Ok(Ok(stub.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Err(Refused::Conflict(
            format!("a stub named {stub} is already in the watch folder"),
        ))),
        Err(e) => Err(io("rename", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_aside_names() {
        let cases = [
            ("A.torrent.invalid", Some(("A.torrent", "invalid"))),
            ("A.torrent.failed", Some(("A.torrent", "failed"))),
            ("A.torrent.duplicate", Some(("A.torrent", "duplicate"))),
            ("A.torrent.2.duplicate", Some(("A.torrent", "duplicate"))),
            ("A.b.TORRENT.99.failed", Some(("A.b.TORRENT", "failed"))),
            ("A.torrent.100.failed", None),
            ("A.torrent", None),
            ("A.mkv.failed", None),
            (".A.torrent.failed", None),
            ("A.torrent.part", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_name(name), want, "{name}");
        }
    }
}
