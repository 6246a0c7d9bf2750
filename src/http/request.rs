//! The request tools every route uses: headers, the request target and its
//! query, percent-decoding, the common error replies and
//! `Content-Disposition`. Pure functions of a request; no route, no state.
//! Credentials are not read here: the presented key and every comparison
//! of a secret are `gate`'s.

use tiny_http::Request;

use crate::http::server::Reply;

pub fn not_found() -> Reply {
    Reply::error(404, "NOT_FOUND", "Not found")
}

pub fn method_not_allowed(allow: &str) -> Reply {
    Reply::error(405, "BAD_REQUEST", "Method not allowed").with_header("Allow", allow)
}

pub fn header<'r>(req: &'r Request, name: &'static str) -> Option<&'r str> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Every field `name` of the request joined into one list (RFC 9110 §5.3),
/// `None` when there is none. Two dates make a list, which no date parses.
pub fn header_list(req: &Request, name: &'static str) -> Option<String> {
    let values: Vec<&str> = req
        .headers()
        .iter()
        .filter(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// (`/path`, `query`) of a request target.
pub fn split_url(url: &str) -> (&str, &str) {
    match url.split_once('?') {
        Some((p, q)) => (p, q),
        None => (url, ""),
    }
}

/// `%XX` decoding (and `+` as space in queries); `None` on a broken escape
/// or invalid UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(crate::lexical::hex_byte(bytes.get(i + 1..i + 3)?)?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decoded `key=value` pairs of a query string; broken pairs are skipped.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

/// RFC 6266: an ASCII fallback and the exact UTF-8 name.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        assert_eq!(
            query_pairs("tmdbId=603&q=the+matrix&x&imdbId=tt0133093&bad=%zz"),
            [
                ("tmdbId".to_string(), "603".to_string()),
                ("q".into(), "the matrix".into()),
                ("x".into(), "".into()),
                ("imdbId".into(), "tt0133093".into()),
            ]
        );
    }

    #[test]
    fn content_disposition_is_rfc_6266() {
        assert_eq!(
            content_disposition("The.Matrix.1999.mkv"),
            "attachment; filename=\"The.Matrix.1999.mkv\"; filename*=UTF-8''The.Matrix.1999.mkv"
        );
        assert_eq!(
            content_disposition("Amélie \"2001\".mkv"),
            "attachment; filename=\"Am_lie _2001_.mkv\"; filename*=UTF-8''Am%C3%A9lie%20%222001%22.mkv"
        );
    }
}
