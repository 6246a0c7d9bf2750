//! Byte ranges and conditional requests (`PROTOCOL.md` §2.3), as pure
//! functions: given the request's headers and the file's size, ETag and
//! `Last-Modified`, what is answered.
//!
//! No I/O here. All offsets are u64 and every number is parsed with
//! overflow checks; nothing in a header can make this module panic.

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
        return if header.trim().eq_ignore_ascii_case("bytes") {
            Selection::Unsatisfiable
        } else {
            Selection::Full
        };
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Selection::Full;
    }
    if spec.contains(',') {
        // Multiple ranges are ignored: never multipart/byteranges.
        return Selection::Full;
    }
    match parse_spec(spec.trim()) {
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
    let (a, b) = (a.trim(), b.trim());
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
    let v = if_range.trim();
    if v.starts_with("W/") {
        return false;
    }
    if v.starts_with('"') {
        return v == etag;
    }
    v == last_modified
}

/// `If-None-Match`: true when any listed tag matches `etag` (weak
/// comparison, as RFC 9110 asks for this header), or for `*`.
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(etag);
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == ours)
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
            (Some("Bytes=0-5"), SIZE, p(0, 5)),
            (Some("BYTES=0-5"), SIZE, p(0, 5)),
            (Some("bytes= 0-5"), SIZE, p(0, 5)),
            (Some("bytes = 0 - 5 "), SIZE, p(0, 5)),
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

    #[test]
    fn if_none_match_rules() {
        let etag = "\"abc\"";
        assert!(if_none_match("\"abc\"", etag));
        assert!(if_none_match("W/\"abc\"", etag));
        assert!(if_none_match("\"x\", \"abc\"", etag));
        assert!(if_none_match("*", etag));
        assert!(!if_none_match("\"abcd\"", etag));
        assert!(!if_none_match("", etag));
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
