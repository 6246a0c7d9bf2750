//! Byte ranges and conditional requests (`PROTOCOL.md` §2.3), as pure
//! functions: given the request's headers and the file's size, ETag and
//! modification time, what is answered.
//!
//! No I/O here. All offsets are u64 and every number is parsed with
//! overflow checks; nothing in a header can make this module panic.

use crate::lexical::trim_ows;
use std::time::{SystemTime, UNIX_EPOCH};

/// A `Range` header longer than this is answered 416 without parsing.
pub const MAX_RANGE_HEADER: usize = 1024;

/// What to send for a GET, from its `Range` header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// `200`, the whole file.
    Full,
    /// `206`, bytes `first..=last`.
    Partial { first: u64, last: u64 },
    /// `416` with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Decides a `Range` header against a file of `size` bytes.
pub fn select(range: Option<&str>, size: u64) -> Selection {
    let Some(header) = range else {
        return Selection::Full;
    };
    if header.len() > MAX_RANGE_HEADER {
        return Selection::Unsatisfiable;
    }
    let Some((unit, spec)) = header.split_once('=') else {
        // No `=`: a bare `bytes` is a broken byte range, anything else an
        // unknown unit.
        return if trim_ows(header).eq_ignore_ascii_case("bytes") {
            Selection::Unsatisfiable
        } else {
            Selection::Full
        };
    };
    if !trim_ows(unit).eq_ignore_ascii_case("bytes") {
        return Selection::Full;
    }
    // A list may hold empty elements (RFC 9110 §5.6.1): `bytes=0-5,,` and
    // `bytes=,0-5` are one range. A list of nothing but empty elements is
    // broken; two or more ranges are ignored: never multipart/byteranges.
    let mut ranges = spec.split(',').map(trim_ows).filter(|r| !r.is_empty());
    let spec = match (ranges.next(), ranges.next()) {
        (Some(one), None) => one,
        (None, _) => return Selection::Unsatisfiable,
        (Some(_), Some(_)) => return Selection::Full,
    };
    match parse_spec(spec) {
        None => Selection::Unsatisfiable,
        Some(_) if size == 0 => Selection::Unsatisfiable,
        Some(Spec::Suffix(0)) => Selection::Unsatisfiable,
        Some(Spec::Suffix(n)) => Selection::Partial {
            first: size - n.min(size),
            last: size - 1,
        },
        Some(Spec::From { first, .. }) if first >= size => Selection::Unsatisfiable,
        Some(Spec::From { first, last }) => Selection::Partial {
            first,
            last: last.min(size - 1),
        },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Spec {
    /// `F-L` or `F-` (`last` is `u64::MAX` when open or too large).
    From { first: u64, last: u64 },
    /// `-N`: the last N bytes (`u64::MAX` when N is too large).
    Suffix(u64),
}

/// `F-L`, `F-` or `-N`; `None` when syntactically invalid.
fn parse_spec(s: &str) -> Option<Spec> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (trim_ows(a), trim_ows(b));
    if a.is_empty() {
        return Some(Spec::Suffix(digits(b)?.unwrap_or(u64::MAX)));
    }
    // A first byte too large for u64 is certainly past the end.
    let first = digits(a)?.unwrap_or(u64::MAX);
    if b.is_empty() {
        return Some(Spec::From {
            first,
            last: u64::MAX,
        });
    }
    let last = digits(b)?.unwrap_or(u64::MAX);
    (last >= first).then_some(Spec::From { first, last })
}

/// `Some(Some(n))` for a decimal number, `Some(None)` for digits that
/// overflow u64, `None` for anything that is not 1+ ASCII digits.
fn digits(s: &str) -> Option<Option<u64>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().ok())
}

/// `If-Range`: the range is honoured only for the current strong ETag, or a
/// date exactly equal to `Last-Modified`.
pub fn if_range_allows(if_range: &str, etag: &str, last_modified: &str) -> bool {
    let v = trim_ows(if_range);
    if v.starts_with("W/") {
        return false;
    }
    if v.starts_with('"') {
        return v == etag;
    }
    v == last_modified
}

/// The conditional headers of a GET or HEAD, each `None` when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
}

/// What the preconditions of a request decide, before `If-Range` and `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Every condition holds (or none was asked): go on to the range.
    Proceed,
    /// `304`: the client's copy is current.
    NotModified,
    /// `412`, no body.
    Failed,
}

/// Evaluates the preconditions of a GET or HEAD of an existing file served
/// with the strong `etag` and modified at `modified`, in the order of RFC
/// 9110 §13.2.2: `If-Match`, else `If-Unmodified-Since` (412); then
/// `If-None-Match`, else `If-Modified-Since` (304). A date that does not
/// parse is ignored; dates compare at one-second resolution, as
/// `Last-Modified` is sent.
pub fn preconditions(c: &Conditions<'_>, etag: &str, modified: SystemTime) -> Precondition {
    let failed = match (c.if_match, c.if_unmodified_since) {
        (Some(tags), _) => !if_match(tags, etag),
        (None, Some(date)) => modified_since(modified, date) == Some(true),
        (None, None) => false,
    };
    if failed {
        return Precondition::Failed;
    }
    let not_modified = match (c.if_none_match, c.if_modified_since) {
        (Some(tags), _) => if_none_match(tags, etag),
        (None, Some(date)) => modified_since(modified, date) == Some(false),
        (None, None) => false,
    };
    if not_modified {
        Precondition::NotModified
    } else {
        Precondition::Proceed
    }
}

/// `If-Match`: true for `*` or when a listed tag is `etag` by strong
/// comparison (a weak tag never matches).
fn if_match(header: &str, etag: &str) -> bool {
    !etag.starts_with("W/") && entity_tags(header).any(|t| t == "*" || t == etag)
}

/// `If-None-Match`: true when any listed tag matches `etag` (weak
/// comparison, as RFC 9110 asks for this header), or for `*`.
fn if_none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_string();
    let ours = bare(etag);
    entity_tags(header).any(|t| t == "*" || bare(t) == ours)
}

/// The members of an entity-tag list (`*`, `"x"`, `W/"x"`), trimmed,
/// empty ones skipped; a comma inside quotes does not split.
fn entity_tags(header: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    header
        .split(move |c| {
            if c == '"' {
                quoted = !quoted;
            }
            c == ',' && !quoted
        })
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// Whether `modified` is later than the HTTP-date `date`, both in whole
/// seconds; `None` when `date` does not parse.
fn modified_since(modified: SystemTime, date: &str) -> Option<bool> {
    let date = httpdate::parse_http_date(trim_ows(date)).ok()?;
    Some(unix_seconds(modified) > unix_seconds(date))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `Content-Range` of a 206.
pub fn content_range(first: u64, last: u64, size: u64) -> String {
    format!("bytes {first}-{last}/{size}")
}

/// `Content-Range` of a 416.
pub fn unsatisfied_range(size: u64) -> String {
    format!("bytes */{size}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Selection::*;

    const SIZE: u64 = 1000;

    /// The table of `PROTOCOL.md` §2.3, row by row.
    #[test]
    fn range_table() {
        let p = |first, last| Partial { first, last };
        let cases: &[(Option<&str>, u64, Selection)] = &[
            (None, SIZE, Full),
            (Some("bytes=0-0"), SIZE, p(0, 0)),
            (Some("bytes=10-19"), SIZE, p(10, 19)),
            (Some("bytes=990-5000"), SIZE, p(990, 999)),
            (Some("bytes=999-999"), SIZE, p(999, 999)),
            (Some("bytes=500-"), SIZE, p(500, 999)),
            (Some("bytes=0-"), SIZE, p(0, 999)),
            (Some("bytes=-1"), SIZE, p(999, 999)),
            (Some("bytes=-100"), SIZE, p(900, 999)),
            (Some("bytes=-5000"), SIZE, p(0, 999)),
            (Some("bytes=1000-"), SIZE, Unsatisfiable),
            (Some("bytes=1000-1001"), SIZE, Unsatisfiable),
            (Some("bytes=99999999999999999999999-"), SIZE, Unsatisfiable),
            (Some("bytes=-0"), SIZE, Unsatisfiable),
            (Some("bytes=0-0"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=5-1"), SIZE, Unsatisfiable),
            (Some("bytes=abc"), SIZE, Unsatisfiable),
            (Some("bytes=1-2-3"), SIZE, Unsatisfiable),
            (Some("bytes=="), SIZE, Unsatisfiable),
            (Some("bytes=-"), SIZE, Unsatisfiable),
            (Some("bytes="), SIZE, Unsatisfiable),
            (Some("bytes=+1-2"), SIZE, Unsatisfiable),
            (Some("bytes=0x10-20"), SIZE, Unsatisfiable),
            (Some("bytes=-1-2"), SIZE, Unsatisfiable),
            (Some("bytes"), SIZE, Unsatisfiable),
            (Some("bytes=0-99999999999999999999999"), SIZE, p(0, 999)),
            (Some("bytes=18446744073709551615-"), SIZE, Unsatisfiable),
            (Some("items=0-5"), SIZE, Full),
            (Some("0-5"), SIZE, Full),
            (Some("bytes=0-1,5-6"), SIZE, Full),
            (Some("bytes=0-1, 5-6"), SIZE, Full),
            (Some("bytes=0-1,,5-6"), SIZE, Full),
            (Some("bytes=0-1,abc"), SIZE, Full),
            (Some("bytes=0-5,,"), SIZE, p(0, 5)),
            (Some("bytes=,0-5"), SIZE, p(0, 5)),
            (Some("bytes= , 0-5 ,"), SIZE, p(0, 5)),
            (Some("bytes=,-100,"), SIZE, p(900, 999)),
            (Some("bytes=,1000-"), SIZE, Unsatisfiable),
            (Some("bytes=5-1,"), SIZE, Unsatisfiable),
            (Some("bytes=,"), SIZE, Unsatisfiable),
            (Some("bytes=,,"), SIZE, Unsatisfiable),
            (Some("bytes= , "), SIZE, Unsatisfiable),
            (Some("Bytes=0-5"), SIZE, p(0, 5)),
            (Some("BYTES=0-5"), SIZE, p(0, 5)),
            (Some("bytes= 0-5"), SIZE, p(0, 5)),
            (Some("bytes = 0 - 5 "), SIZE, p(0, 5)),
            (Some("bytes=\t0-5\t"), SIZE, p(0, 5)),
            // Only space and tab are optional whitespace (RFC 9110 §5.6.3).
            (Some("bytes=\u{a0}0-5"), SIZE, Unsatisfiable),
            (Some("bytes=0-5\u{2003}"), SIZE, Unsatisfiable),
            (Some("bytes=0-5\u{b}"), SIZE, Unsatisfiable),
            (Some("\u{85}bytes=0-5"), SIZE, Full),
        ];
        for &(header, size, want) in cases {
            assert_eq!(select(header, size), want, "{header:?} on {size} bytes");
        }
    }

    #[test]
    fn offsets_above_4_gib() {
        let size = 5 * 1024 * 1024 * 1024;
        assert_eq!(
            select(Some("bytes=4294967296-4294967305"), size),
            Partial {
                first: 4_294_967_296,
                last: 4_294_967_305
            }
        );
        assert_eq!(
            select(Some("bytes=-10"), size),
            Partial {
                first: size - 10,
                last: size - 1
            }
        );
        assert_eq!(select(Some(&format!("bytes={size}-")), size), Unsatisfiable);
    }

    #[test]
    fn a_long_range_header_is_refused_unparsed() {
        let long = format!("bytes=0-1{}", " ".repeat(MAX_RANGE_HEADER));
        assert_eq!(select(Some(&long), SIZE), Unsatisfiable);
        let just_fits = format!("bytes={}0-1", " ".repeat(MAX_RANGE_HEADER - 9));
        assert_eq!(just_fits.len(), MAX_RANGE_HEADER);
        assert_eq!(
            select(Some(&just_fits), SIZE),
            Partial { first: 0, last: 1 }
        );
    }

    #[test]
    fn if_range_rules() {
        let etag = "\"abc\"";
        let lm = "Tue, 03 Feb 2026 04:05:06 GMT";
        assert!(if_range_allows("\"abc\"", etag, lm));
        assert!(!if_range_allows("\"abd\"", etag, lm));
        assert!(!if_range_allows("W/\"abc\"", etag, lm));
        assert!(if_range_allows(lm, etag, lm));
        assert!(!if_range_allows("Tue, 03 Feb 2026 04:05:07 GMT", etag, lm));
        assert!(!if_range_allows("yesterday", etag, lm));
    }

    /// RFC 9110 §13.2.2 on a file served with `"abc"`, modified at
    /// 04:05:06.5 (sent as `Last-Modified: ... 04:05:06 GMT`).
    #[test]
    fn precondition_table() {
        use Precondition::{Failed, NotModified, Proceed};
        let modified = UNIX_EPOCH + std::time::Duration::from_millis(1_770_091_506_500);
        const BEFORE: &str = "Tue, 03 Feb 2026 04:05:05 GMT";
        const EQUAL: &str = "Tue, 03 Feb 2026 04:05:06 GMT";
        const AFTER: &str = "Tue, 03 Feb 2026 04:05:07 GMT";
        const RFC850: &str = "Tuesday, 03-Feb-26 04:05:06 GMT";
        const ASCTIME: &str = "Tue Feb  3 04:05:06 2026";
        // (If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, answer)
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Precondition,
        );
        let rows: &[Row] = &[
            (None, None, None, None, Proceed),
            // If-Match alone: strong comparison, lists, `*`.
            (Some("\"abc\""), None, None, None, Proceed),
            (Some("\"old\""), None, None, None, Failed),
            (Some("*"), None, None, None, Proceed),
            (Some("\"x\", \"abc\""), None, None, None, Proceed),
            (Some("\"x\",\"y\""), None, None, None, Failed),
            (Some(" ,\"abc\" ,"), None, None, None, Proceed),
            (Some("W/\"abc\""), None, None, None, Failed),
            (Some("\"abc"), None, None, None, Failed),
            (Some("abc"), None, None, None, Failed),
            (Some(""), None, None, None, Failed),
            (Some("\"a,b\", \"abc\""), None, None, None, Proceed),
            // If-Unmodified-Since alone: 412 only when modified after the date.
            (None, Some(BEFORE), None, None, Failed),
            (None, Some(EQUAL), None, None, Proceed),
            (None, Some(AFTER), None, None, Proceed),
            (None, Some(RFC850), None, None, Proceed),
            (None, Some(ASCTIME), None, None, Proceed),
            (None, Some("yesterday"), None, None, Proceed),
            (None, Some(""), None, None, Proceed),
            (
                None,
                Some("Tue, 03 Feb 2026 04:05:05 GMT, x"),
                None,
                None,
                Proceed,
            ),
            // If-None-Match alone: weak comparison, lists, `*`.
            (None, None, Some("\"abc\""), None, NotModified),
            (None, None, Some("W/\"abc\""), None, NotModified),
            (None, None, Some("\"x\", W/\"abc\""), None, NotModified),
            (None, None, Some("*"), None, NotModified),
            (None, None, Some("\"old\""), None, Proceed),
            (None, None, Some("\"abcd\""), None, Proceed),
            (None, None, Some(""), None, Proceed),
            // If-Modified-Since alone: 304 when not modified after the date.
            (None, None, None, Some(BEFORE), Proceed),
            (None, None, None, Some(EQUAL), NotModified),
            (None, None, None, Some(AFTER), NotModified),
            (None, None, None, Some(RFC850), NotModified),
            (None, None, None, Some(ASCTIME), NotModified),
            (
                None,
                None,
                None,
                Some("Thu, 01 Jan 1970 00:00:00 GMT"),
                Proceed,
            ),
            (None, None, None, Some("not a date"), Proceed),
            // If-Match wins over If-Unmodified-Since, both ways.
            (Some("\"abc\""), Some(BEFORE), None, None, Proceed),
            (Some("\"old\""), Some(AFTER), None, None, Failed),
            // If-None-Match wins over If-Modified-Since, both ways.
            (None, None, Some("\"old\""), Some(AFTER), Proceed),
            (None, None, Some("\"abc\""), Some(BEFORE), NotModified),
            // 412 is decided before 304.
            (Some("\"old\""), None, Some("\"abc\""), None, Failed),
            (None, Some(BEFORE), None, Some(AFTER), Failed),
            (None, Some(BEFORE), Some("*"), None, Failed),
            // A passing 412 check goes on to the 304 checks.
            (Some("*"), None, Some("\"abc\""), None, NotModified),
            (Some("\"abc\""), None, None, Some(EQUAL), NotModified),
            (None, Some(EQUAL), None, Some(EQUAL), NotModified),
            (
                Some("\"abc\""),
                Some(BEFORE),
                Some("\"old\""),
                Some(AFTER),
                Proceed,
            ),
            // An unparsable date is ignored, not a failure.
            (None, Some("garbage"), None, Some("garbage"), Proceed),
            (None, Some("garbage"), Some("\"abc\""), None, NotModified),
        ];
        for &(im, ius, inm, ims, want) in rows {
            let c = Conditions {
                if_match: im,
                if_unmodified_since: ius,
                if_none_match: inm,
                if_modified_since: ims,
            };
            assert_eq!(preconditions(&c, "\"abc\"", modified), want, "{c:?}");
        }
    }

    #[test]
    fn if_none_match_rules() {
        let etag = "\"abc\"";
        assert!(if_none_match("\"abc\"", etag));
        assert!(if_none_match("W/\"abc\"", etag));
        assert!(if_none_match("\"x\", \"abc\"", etag));
        assert!(if_none_match("*", etag));
        assert!(!if_none_match("\"abcd\"", etag));
        assert!(!if_none_match("", etag));
        assert!(if_none_match("\"a,b\", \"abc\"", etag));
    }

    #[test]
    fn header_values() {
        assert_eq!(content_range(0, 9, 10), "bytes 0-9/10");
        assert_eq!(unsatisfied_range(5_368_709_120), "bytes */5368709120");
    }

    #[test]
    fn arbitrary_headers_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet = b"bytes=-0123456789, BYTES\t9x";
        for _ in 0..20_000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 24) {
                s.push(alphabet[((x >> (i % 50)) as usize + i as usize) % alphabet.len()] as char);
            }
            for size in [0, 1, SIZE, u64::MAX] {
                if let Partial { first, last } = select(Some(&s), size) {
                    assert!(first <= last && last < size, "{s:?} on {size}");
                }
            }
        }
    }
}
