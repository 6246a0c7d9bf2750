//! A strict `multipart/form-data` reader (RFC 7578 over RFC 2046 §5.1),
//! written by hand for the qBittorrent-compatible API: Sonarr and Radarr
//! send stubs (and any field over 1024 bytes) this way.
//!
//! Pure: bytes in, parts out, over a body already read within its size
//! limit ([`crate::http::form`] reads it). Limits on the number of parts and
//! the header bytes of each part; a boundary must be 1 to 70 characters of
//! RFC 2046's set, every part must have `Content-Disposition: form-data`
//! with a `name`, and the body must end with the closing delimiter (a
//! truncated body is an error, never a shorter part). Must not do I/O or
//! allocate beyond the parts it returns.

use crate::lexical::trim_ows;

/// How much one body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Parts at most.
    pub parts: usize,
    /// Header bytes of one part at most (its lines and their line ends).
    pub header_bytes: usize,
}

/// One part: a field (`filename` is `None`) or an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub data: &'a [u8],
}

/// Why a body was refused: [`Error::TooLarge`] is a `413`, the others `400`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Over a limit (the message says which).
    TooLarge(String),
    /// Not a valid multipart body (the message says where).
    Malformed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::TooLarge(m) | Error::Malformed(m) => f.write_str(m),
        }
    }
}

fn malformed(m: &str) -> Error {
    Error::Malformed(m.to_string())
}

/// The `boundary` parameter of a `multipart/form-data` media type.
pub fn boundary(content_type: &str) -> Result<String, Error> {
    let mut params = split_params(content_type).into_iter();
    let media = params.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(malformed("not multipart/form-data"));
    }
    let value = params
        .filter_map(|p| param(&p))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or_else(|| malformed("multipart/form-data without a boundary"))?;
    // RFC 2046 §5.1.1: 1 to 70 characters, none of them ending in a space.
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    if value.is_empty() || value.len() > 70 || value.ends_with(' ') || !value.chars().all(allowed) {
        return Err(malformed("invalid multipart boundary"));
    }
    Ok(value)
}

/// The parts of `body`, in order.
pub fn parse<'a>(body: &'a [u8], boundary: &str, limits: Limits) -> Result<Vec<Part<'a>>, Error> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter opens the body, or ends a preamble line.
    let mut pos = if body.starts_with(delimiter) {
        delimiter.len()
    } else {
        let mut line_delimiter = b"\r\n".to_vec();
        line_delimiter.extend_from_slice(delimiter);
        find(body, &line_delimiter, 0)
            .ok_or_else(|| malformed("no multipart boundary in the body"))?
            + line_delimiter.len()
    };
    let mut next_delimiter = b"\r\n".to_vec();
    next_delimiter.extend_from_slice(delimiter);
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts); // the closing delimiter; an epilogue is ignored
        }
        // Transport padding, then the end of the delimiter line.
        let padding = rest
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(malformed(if rest.len() <= padding + 1 {
                "multipart body ends before its closing boundary"
            } else {
                "garbage after a multipart boundary"
            }));
        }
        pos += padding + 2;
        if parts.len() == limits.parts {
            return Err(Error::TooLarge(format!(
                "more than {} parts in a multipart body",
                limits.parts
            )));
        }
        let (headers, content_start) = part_headers(&body[pos..], limits.header_bytes)?;
        let (name, filename) = disposition(headers)?;
        let start = pos + content_start;
        let end = find(body, &next_delimiter, start)
            .ok_or_else(|| malformed("multipart body ends before its closing boundary"))?;
        parts.push(Part {
            name,
            filename,
            data: &body[start..end],
        });
        pos = end + next_delimiter.len();
    }
}

/// The header block of a part (without its final empty line) and where
/// its content starts, relative to `rest`.
fn part_headers(rest: &[u8], limit: usize) -> Result<(&str, usize), Error> {
    if rest.starts_with(b"\r\n") {
        return Ok(("", 2)); // no headers at all: refused below (no name)
    }
    let window = &rest[..rest.len().min(limit + 4)];
    let Some(end) = find(window, b"\r\n\r\n", 0) else {
        return Err(if rest.len() > limit {
            Error::TooLarge(format!("a multipart part's headers exceed {limit} bytes"))
        } else {
            malformed("multipart body ends inside a part's headers")
        });
    };
    if end + 2 > limit {
        return Err(Error::TooLarge(format!(
            "a multipart part's headers exceed {limit} bytes"
        )));
    }
    let text = std::str::from_utf8(&rest[..end])
        .map_err(|_| malformed("multipart part headers are not UTF-8"))?;
    Ok((text, end + 4))
}

/// `name` and `filename` from the part's `Content-Disposition: form-data`.
fn disposition(headers: &str) -> Result<(String, Option<String>), Error> {
    let mut found = None;
    for line in headers.split("\r\n").filter(|l| !l.is_empty()) {
        let (field, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("a multipart part header without a colon"))?;
        if trim_ows(field).eq_ignore_ascii_case("content-disposition") {
            if found.is_some() {
                return Err(malformed("two Content-Disposition headers in one part"));
            }
            found = Some(value);
        }
    }
    let value = found.ok_or_else(|| malformed("a multipart part without Content-Disposition"))?;
    let mut params = split_params(value).into_iter();
    if !params
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("form-data"))
    {
        return Err(malformed("a multipart part that is not form-data"));
    }
    let (mut name, mut filename) = (None, None);
    for (k, v) in params.filter_map(|p| param(&p)) {
        match k.to_ascii_lowercase().as_str() {
            "name" => name = Some(v),
            "filename" => filename = Some(v),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| malformed("a multipart part without a name"))?;
    Ok((name, filename))
}

/// `a; b="x;y"; c` → `["a", "b=\"x;y\"", "c"]`, trimmed: `;` inside quotes
/// does not split.
fn split_params(value: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                cur.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(trim_ows(&std::mem::take(&mut cur)).to_string()),
            _ => cur.push(c),
        }
    }
    out.push(trim_ows(&cur).to_string());
    out
}

/// `key=value` or `key="quoted \"value\""`, unquoted.
fn param(p: &str) -> Option<(String, String)> {
    let (k, v) = p.split_once('=')?;
    let v = trim_ows(v);
    let value = match v.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"')?;
            let (mut out, mut escaped) = (String::new(), false);
            for c in inner.chars() {
                match c {
                    '\\' if !escaped => escaped = true,
                    _ => {
                        escaped = false;
                        out.push(c);
                    }
                }
            }
            out
        }
        None => v.to_string(),
    };
    Some((trim_ows(k).to_string(), value))
}

/// The first `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        parts: 4,
        header_bytes: 200,
    };

    /// (name, file name, data) of a part.
    type Owned = (String, Option<String>, Vec<u8>);

    fn names(body: &[u8]) -> Result<Vec<Owned>, Error> {
        parse(body, "XyZ", LIMITS).map(|parts| {
            parts
                .into_iter()
                .map(|p| (p.name, p.filename, p.data.to_vec()))
                .collect()
        })
    }

    fn field(name: &str, data: &[u8]) -> Owned {
        (name.into(), None, data.to_vec())
    }

    #[test]
    fn boundaries() {
        let cases = [
            ("multipart/form-data; boundary=abc", Ok("abc")),
            ("Multipart/Form-Data;boundary=\"a b:c\"", Ok("a b:c")),
            ("multipart/form-data; charset=x; BOUNDARY=q-1", Ok("q-1")),
            ("multipart/form-data", Err(())),
            ("multipart/form-data; boundary=", Err(())),
            ("multipart/form-data; boundary=\"\"", Err(())),
            ("multipart/form-data; boundary=\"ends \"", Err(())),
            ("multipart/form-data; boundary=a{b", Err(())),
            ("multipart/mixed; boundary=abc", Err(())),
            ("application/x-www-form-urlencoded", Err(())),
        ];
        for (ct, want) in cases {
            assert_eq!(boundary(ct).as_deref().map_err(|_| ()), want, "{ct}");
        }
        assert!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(70))).is_ok());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))).is_err());
    }

    #[test]
    fn the_parse_table() {
        let file = b"--XyZ\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"a;b.torrent\"\r\nContent-Type: application/x-bittorrent\r\n\r\nd4:spam\r\n--e\r\n--XyZ\r\ncontent-disposition: form-data; name=category\r\n\r\nradarr\r\n--XyZ--\r\n";
        let cases: Vec<(&[u8], Result<Vec<_>, &str>)> = vec![
            (
                file,
                Ok(vec![
                    (
                        "torrents".into(),
                        Some("a;b.torrent".into()),
                        b"d4:spam\r\n--e".to_vec(),
                    ),
                    field("category", b"radarr"),
                ]),
            ),
            // A preamble, transport padding, an empty part, an epilogue.
            (
                b"ignored\r\n--XyZ  \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n--XyZ--epilogue",
                Ok(vec![field("a", b"")]),
            ),
            (b"--XyZ--", Ok(vec![])),
            (
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a \\\"q\\\"\"\r\n\r\nv\r\n--XyZ--",
                Ok(vec![field("a \"q\"", b"v")]),
            ),
            (b"no boundary here", Err("no multipart boundary")),
            (b"", Err("no multipart boundary")),
            (
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue that never ends",
                Err("ends before its closing boundary"),
            ),
            (
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ",
                Err("ends before its closing boundary"),
            ),
            (
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ\r\n",
                Err("ends inside a part's headers"),
            ),
            (
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"",
                Err("ends inside a part's headers"),
            ),
            (b"--XyZjunk\r\n", Err("garbage after a multipart boundary")),
            (
                b"--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--",
                Err("without Content-Disposition"),
            ),
            (
                b"--XyZ\r\n\r\nv\r\n--XyZ--",
                Err("without Content-Disposition"),
            ),
            (
                b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--XyZ--",
                Err("not form-data"),
            ),
            (
                b"--XyZ\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nv\r\n--XyZ--",
                Err("without a name"),
            ),
            (
                b"--XyZ\r\nContent-Disposition form-data\r\n\r\nv\r\n--XyZ--",
                Err("without a colon"),
            ),
            (
                b"--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\nv\r\n--XyZ--",
                Err("two Content-Disposition"),
            ),
        ];
        for (body, want) in cases {
            let got = names(body);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{}", String::from_utf8_lossy(body)),
                (Err(Error::Malformed(m)), Err(w)) => {
                    assert!(m.contains(w), "{m:?} for {}", String::from_utf8_lossy(body))
                }
                _ => panic!("{got:?}, want {want:?}: {}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn limits_are_413s() {
        let part = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n";
        let four = format!("{}--XyZ--", part.repeat(4));
        assert_eq!(names(four.as_bytes()).unwrap().len(), 4);
        let five = format!("{}--XyZ--", part.repeat(5));
        assert!(
            matches!(names(five.as_bytes()), Err(Error::TooLarge(m)) if m.contains("more than 4 parts"))
        );

        let long = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\nX-Pad: {}\r\n\r\nv\r\n--XyZ--",
            "p".repeat(200)
        );
        assert!(
            matches!(names(long.as_bytes()), Err(Error::TooLarge(m)) if m.contains("headers exceed 200"))
        );
        // Headers that never end, longer than the limit: too large, not truncated.
        let endless = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"f\"{}",
            "p".repeat(500)
        );
        assert!(matches!(names(endless.as_bytes()), Err(Error::TooLarge(_))));
        // Just within the limit.
        let pad = 200 - "Content-Disposition: form-data; name=\"f\"\r\nX: \r\n".len();
        let fits = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\nX: {}\r\n\r\nv\r\n--XyZ--",
            "p".repeat(pad)
        );
        assert_eq!(names(fits.as_bytes()).unwrap(), vec![field("f", b"v")]);
    }
}
