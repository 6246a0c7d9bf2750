//! Problems in plain words: what a NAS owner reads on the page, in `jack
//! status` and in the qBittorrent view instead of an OS or library error
//! (`io: Connection refused (os error 111)` becomes "alice's node is not
//! answering (connection refused)"), with what to do where there is
//! something to do. The technical text stays where it was recorded (the
//! row's error, its events, the log); this module only reads it. Pure:
//! text in, text out. Must not: do I/O, or drop the one word (refused,
//! timed out, 401) a reader would search for.

use std::io;

/// What went wrong with a peer, sorted into the few things an owner can
/// tell apart and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The friend's node refused our key (401, or 403).
    KeyRefused(u16),
    Refused,
    TimedOut,
    NoSuchName,
    Reset,
    Certificate,
    Gone,
    Busy,
    ServerError(u16),
    DiskFull,
    DestinationExists,
}

/// The kind of `technical` (an error's text as jack recorded it), when it
/// is one an owner can act on.
pub fn kind(technical: &str) -> Option<Kind> {
    let m = technical.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    let status = answered(&m);
    Some(match status {
        Some(s @ (401 | 403)) => Kind::KeyRefused(s),
        Some(404 | 410) => Kind::Gone,
        Some(429) => Kind::Busy,
        Some(s @ 500..=599) => Kind::ServerError(s),
        _ if has(&["destination exists"]) => Kind::DestinationExists,
        _ if has(&[
            "disk full",
            "no space left",
            "quota exceeded",
            "storage full",
        ]) =>
        {
            Kind::DiskFull
        }
        _ if has(&["certificate", "tls", "handshake failure"]) => Kind::Certificate,
        _ if has(&["connection refused"]) => Kind::Refused,
        _ if has(&["timed out", "timeout", "stalled"]) => Kind::TimedOut,
        _ if has(&[
            "host not found",
            "failed to lookup address",
            "name or service not known",
            "temporary failure in name resolution",
            "no address associated",
        ]) =>
        {
            Kind::NoSuchName
        }
        _ if has(&[
            "connection reset",
            "broken pipe",
            "body ended",
            "peer disconnected",
            "unexpected eof",
            "connection aborted",
        ]) =>
        {
            Kind::Reset
        }
        _ => return None,
    })
}

/// The status in `answered 401` (how jack records a peer's answer).
fn answered(m: &str) -> Option<u16> {
    let rest = m.split("answered ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|s| (100..=599).contains(s))
}

/// `technical` about peer `peer` (a `[[peers]]` name; empty when unknown)
/// in plain words; text this module does not know is shown without its
/// `(os error N)` tail.
pub fn say(peer: &str, technical: &str) -> String {
    // "gave up after 13 attempts without progress: <the last error>"
    if technical.starts_with("gave up after ")
        && let Some((head, last)) = technical.split_once(": ")
    {
        return format!("{head}: {}", say(peer, last));
    }
    let who = if peer.is_empty() { "the peer" } else { peer };
    let entry = if peer.is_empty() {
        "[[peers]]".to_string()
    } else {
        format!("[[peers]] {peer}")
    };
    match kind(technical) {
        Some(Kind::KeyRefused(s)) => {
            format!("{who} refused our key ({s}): check `api_key` of `{entry}`")
        }
        Some(Kind::Refused) => format!("{who}'s node is not answering (connection refused)"),
        Some(Kind::TimedOut) => format!("{who}'s node did not answer in time (timed out)"),
        Some(Kind::NoSuchName) => {
            format!("{who}'s address was not found (no such name): check `url` of `{entry}`")
        }
        Some(Kind::Reset) => format!("{who}'s node broke off the connection (reset)"),
        Some(Kind::Certificate) => format!(
            "{who}'s certificate is not trusted (TLS): set `ca_file` of `{entry}` to the certificate {who} sends you"
        ),
        Some(Kind::Gone) => format!("{who} no longer offers this file (404): search for it again"),
        Some(Kind::Busy) => format!("{who}'s node is busy (429)"),
        Some(Kind::ServerError(s)) => format!("{who}'s node had a problem ({s})"),
        Some(Kind::DiskFull) => {
            "the disk is full: free some space in the download folders (jack waits for room)"
                .to_string()
        }
        Some(Kind::DestinationExists) => {
            "a file of this name is already in the completed folder: move it away, then retry"
                .to_string()
        }
        None => without_os_error(technical),
    }
}

/// `text` without the `(os error N)` an `io::Error` appends.
pub fn without_os_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        out.push_str(&rest[..at]);
        match rest[at..].find(')') {
            Some(end) => rest = &rest[at + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A short phrase for a local file error (`permission denied`, `disk
/// full`), for messages that name the file themselves.
pub fn io_phrase(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "it does not exist",
        K::PermissionDenied => "permission denied",
        K::StorageFull | K::QuotaExceeded => "disk full",
        K::ReadOnlyFilesystem => "read-only filesystem",
        K::NotADirectory => "a part of the path is not a folder",
        K::TimedOut => "timed out",
        _ if e.raw_os_error() == Some(libc_eio()) => "input/output error: the disk may be failing",
        // The C library's own words differ (glibc's "too many levels of
        // symbolic links", musl's "symbolic link loop"): one phrase.
        _ if e.raw_os_error() == Some(libc_eloop()) => "a loop of symbolic links",
        _ => "error",
    }
}

/// EIO on every Linux target.
const fn libc_eio() -> i32 {
    5
}

/// ELOOP on the Linux targets jack is built for (x86, ARM: the generic
/// numbering).
const fn libc_eloop() -> i32 {
    40
}

/// A retry's "next try in 6 s" (seconds from now; `None`: not waiting).
pub fn next_try(seconds: Option<u64>) -> String {
    match seconds {
        Some(0) => "; trying again now".to_string(),
        Some(s) => {
            let mut out = String::from("; next try in ");
            crate::format::write_human_duration(&mut out, s);
            out
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each technical text as jack records it, and what an owner reads.
    #[test]
    fn technical_texts_in_plain_words() {
        let cases = [
            (
                "cannot reach peer alice: io: Connection refused (os error 111)",
                "alice's node is not answering (connection refused)",
            ),
            (
                "peer alice answered 401",
                "alice refused our key (401): check `api_key` of `[[peers]] alice`",
            ),
            (
                "peer alice answered 403",
                "alice refused our key (403): check `api_key` of `[[peers]] alice`",
            ),
            (
                "cannot reach peer alice: timeout: Connect",
                "alice's node did not answer in time (timed out)",
            ),
            (
                "cannot reach peer alice: host not found",
                "alice's address was not found (no such name): check `url` of `[[peers]] alice`",
            ),
            (
                "io: failed to lookup address information: Name or service not known",
                "alice's address was not found (no such name): check `url` of `[[peers]] alice`",
            ),
            (
                "io: Connection reset by peer (os error 104)",
                "alice's node broke off the connection (reset)",
            ),
            (
                "body ended at byte 100 of 200",
                "alice's node broke off the connection (reset)",
            ),
            (
                "peer alice: certificate not trusted: invalid peer certificate: UnknownIssuer",
                "alice's certificate is not trusted (TLS): set `ca_file` of `[[peers]] alice` to the certificate alice sends you",
            ),
            (
                "peer answered 404",
                "alice no longer offers this file (404): search for it again",
            ),
            ("peer answered 503", "alice's node had a problem (503)"),
            ("peer answered 429", "alice's node is busy (429)"),
            (
                "disk full",
                "the disk is full: free some space in the download folders (jack waits for room)",
            ),
            (
                "destination exists",
                "a file of this name is already in the completed folder: move it away, then retry",
            ),
            (
                "cannot open /x.part: Permission denied (os error 13)",
                "cannot open /x.part: Permission denied",
            ),
            (
                "restarted from byte 0: size_changed",
                "restarted from byte 0: size_changed",
            ),
            (
                "gave up after 3 attempts without progress: cannot reach peer alice: io: Connection refused (os error 111)",
                "gave up after 3 attempts without progress: alice's node is not answering (connection refused)",
            ),
        ];
        for (technical, plain) in cases {
            assert_eq!(say("alice", technical), plain, "{technical}");
            assert!(!say("alice", technical).contains("os error"));
        }
        assert_eq!(
            say("", "peer answered 401"),
            "the peer refused our key (401): check `api_key` of `[[peers]]`"
        );
    }

    #[test]
    fn os_error_tails_go() {
        assert_eq!(without_os_error("a (os error 1) b (os error 2)"), "a b");
        assert_eq!(without_os_error("a (os error 5"), "a");
        assert_eq!(without_os_error("plain"), "plain");
    }

    #[test]
    fn next_tries() {
        assert_eq!(next_try(Some(6)), "; next try in 6s");
        assert_eq!(next_try(Some(0)), "; trying again now");
        assert_eq!(next_try(None), "");
    }
}
