//! Request parameters of the qBittorrent-compatible API: the query string,
//! and a POST body in either encoding *arr uses
//! (`application/x-www-form-urlencoded`, or `multipart/form-data` through
//! [`crate::http::multipart`]).
//!
//! The body is read within [`MAX_BODY`]: a `Content-Length` above it is
//! refused before a byte is read; a body without one (chunked) is read one
//! byte past the limit at most. A body shorter than its `Content-Length`
//! is an error, never a shorter form. Must not know any endpoint.

use std::io::Read;

use crate::http::multipart::{self, Limits};
use crate::http::request::query_pairs;

/// The largest body taken: a stub is at most 1 MiB (`PROTOCOL.md` §3), and
/// *arr sends one at a time with a few small fields.
pub const MAX_BODY: u64 = 4 * 1024 * 1024;

/// Multipart limits: parts per body, header bytes per part.
pub const MULTIPART: Limits = Limits {
    parts: 64,
    header_bytes: 4096,
};

/// The parameters of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    /// Body fields first, then the query's.
    pub fields: Vec<(String, String)>,
    /// Uploaded files: (part name, file name, bytes).
    pub files: Vec<(String, String, Vec<u8>)>,
}

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request's parameters were refused, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// `400`: malformed or truncated.
    Bad(String),
    /// `413`: over a limit.
    TooLarge(String),
    /// `415`: a body in neither form encoding.
    Unsupported(String),
}

impl FormError {
    pub fn status(&self) -> u16 {
        match self {
            FormError::Bad(_) => 400,
            FormError::TooLarge(_) => 413,
            FormError::Unsupported(_) => 415,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            FormError::Bad(m) | FormError::TooLarge(m) | FormError::Unsupported(m) => m,
        }
    }
}

impl From<multipart::Error> for FormError {
    fn from(e: multipart::Error) -> FormError {
        match e {
            multipart::Error::TooLarge(m) => FormError::TooLarge(m),
            multipart::Error::Malformed(m) => FormError::Bad(m),
        }
    }
}

/// Reads a body of `content_length` bytes (`None`: until the end, e.g.
/// chunked), at most `limit`.
pub fn read_body(
    body: &mut dyn Read,
    content_length: Option<u64>,
    limit: u64,
) -> Result<Vec<u8>, FormError> {
    if let Some(n) = content_length.filter(|&n| n > limit) {
        return Err(FormError::TooLarge(format!(
            "request body of {n} bytes is over the limit of {limit}"
        )));
    }
    let capacity = content_length.unwrap_or(0).min(limit);
    let mut buf = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    // A body cut before its length is an `UnexpectedEof` from tiny_http:
    // the bytes that came are in `buf`, and the length check below says so.
    match body.take(limit + 1).read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && content_length.is_some() => {}
        Err(e) => return Err(FormError::Bad(format!("cannot read the request body: {e}"))),
    }
    let got = buf.len() as u64;
    if got > limit {
        return Err(FormError::TooLarge(format!(
            "request body is over the limit of {limit} bytes"
        )));
    }
    match content_length {
        Some(n) if got < n => Err(FormError::Bad(format!(
            "the request body ends after {got} of its {n} bytes"
        ))),
        _ => Ok(buf),
    }
}

/// The parameters of a request: its `body` decoded by `content_type`, then
/// the fields of its `query` string.
pub fn parse(content_type: Option<&str>, body: &[u8], query: &str) -> Result<Form, FormError> {
    let mut form = Form::default();
    if !body.is_empty() {
        let ct = crate::lexical::trim_ows(content_type.unwrap_or(""));
        let media =
            crate::lexical::trim_ows(ct.split(';').next().unwrap_or("")).to_ascii_lowercase();
        match media.as_str() {
            "application/x-www-form-urlencoded" => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| FormError::Bad("a form body that is not UTF-8".into()))?;
                form.fields = query_pairs(text.trim_end_matches(['\r', '\n']));
            }
            "multipart/form-data" => {
                let boundary = multipart::boundary(ct)?;
                for part in multipart::parse(body, &boundary, MULTIPART)? {
                    match part.filename {
                        Some(filename) => {
                            form.files.push((part.name, filename, part.data.to_vec()))
                        }
                        None => {
                            let value = String::from_utf8(part.data.to_vec()).map_err(|_| {
                                FormError::Bad(format!("field {:?} is not UTF-8", part.name))
                            })?;
                            form.fields.push((part.name, value));
                        }
                    }
                }
            }
            _ => {
                return Err(FormError::Unsupported(format!(
                    "a body of type {:?}: send application/x-www-form-urlencoded or multipart/form-data",
                    if ct.is_empty() { "(none)" } else { ct }
                )));
            }
        }
    }
    form.fields.extend(query_pairs(query));
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_within_the_limit() {
        let read = |data: &[u8], len: Option<u64>| read_body(&mut &data[..], len, 10);
        assert_eq!(read(b"0123456789", Some(10)), Ok(b"0123456789".to_vec()));
        assert_eq!(read(b"0123456789", None), Ok(b"0123456789".to_vec()));
        assert_eq!(read(b"", Some(0)), Ok(vec![]));
        let cases: Vec<(&[u8], Option<u64>, u16, &str)> = vec![
            (b"", Some(11), 413, "of 11 bytes is over the limit of 10"),
            (b"", Some(u64::MAX), 413, "over the limit"),
            (b"0123456789AB", None, 413, "over the limit of 10 bytes"),
            (b"0123", Some(10), 400, "ends after 4 of its 10 bytes"),
        ];
        for (data, len, status, msg) in cases {
            let e = read(data, len).unwrap_err();
            assert_eq!(e.status(), status, "{e:?}");
            assert!(e.message().contains(msg), "{e:?}");
        }
    }

    #[test]
    fn both_encodings_give_the_same_form() {
        let urlencoded = parse(
            Some("application/x-www-form-urlencoded"),
            b"hashes=a%7Cb&deleteFiles=true",
            "x=1",
        )
        .unwrap();
        let body = b"--b\r\nContent-Disposition: form-data; name=\"hashes\"\r\n\r\na|b\r\n--b\r\nContent-Disposition: form-data; name=\"deleteFiles\"\r\n\r\ntrue\r\n--b--\r\n";
        let multipart = parse(Some("multipart/form-data; boundary=b"), body, "x=1").unwrap();
        assert_eq!(urlencoded, multipart);
        assert_eq!(multipart.get("hashes"), Some("a|b"));
        assert_eq!(multipart.get("x"), Some("1"), "the query too");
        assert_eq!(multipart.get("y"), None);
    }

    #[test]
    fn files_and_refusals() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"x.torrent\"\r\n\r\n\xffd8:\r\n--b--";
        let f = parse(Some("multipart/form-data; boundary=b"), body, "").unwrap();
        assert_eq!(
            f.files,
            [(
                "torrents".to_string(),
                "x.torrent".to_string(),
                b"\xffd8:".to_vec()
            )]
        );
        let cases: Vec<(Option<&str>, &[u8], u16)> = vec![
            (Some("multipart/form-data"), b"--b--", 400),
            (Some("multipart/form-data; boundary=b"), b"--b\r\n", 400),
            (Some("application/json"), b"{}", 415),
            (None, b"a=1", 415),
            (Some("application/x-www-form-urlencoded"), b"a=\xff", 400),
            (
                Some("multipart/form-data; boundary=b"),
                b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\r\n--b--",
                400,
            ),
        ];
        for (ct, body, status) in cases {
            assert_eq!(
                parse(ct, body, "").unwrap_err().status(),
                status,
                "{ct:?} {body:?}"
            );
        }
        // No body: any type, or none, is fine.
        assert_eq!(parse(None, b"", "a=1").unwrap().get("a"), Some("1"));
    }
}
