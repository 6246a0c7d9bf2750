//! Strict tokens from the network and query strings: decimal numbers, hex
//! digits, and HTTP's optional whitespace. Pure.
//!
//! Rust's integer parsers accept a leading `+` (`"+949".parse::<u64>()` is
//! `Ok(949)`, `u8::from_str_radix("+A", 16)` is `Ok(10)`), and `str::trim`
//! strips every Unicode whitespace character. Neither is what a protocol
//! means: a number is one or more ASCII digits, and the whitespace around a
//! header value (RFC 9110 §5.6.3, `OWS`) is space and horizontal tab only.
//! Everything read from a request or a response goes through here.

use std::str::FromStr;

/// A non-empty run of ASCII digits parsed as `T`; `None` for a sign, any
/// other character, or a value `T` cannot hold.
pub fn decimal<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A non-empty run of ASCII hex digits (either case) as a `u64`; `None` for
/// a sign, any other character, or more than 16 digits' worth.
pub fn hex_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Two ASCII hex digits as a byte (`%XX` escapes, hex keys).
pub fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [h, l] => Some(hex_digit(*h)? << 4 | hex_digit(*l)?),
        _ => None,
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `s` without leading and trailing space and tab (HTTP `OWS`); other
/// whitespace, Unicode or not, is part of the value.
pub fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_digits_only() {
        assert_eq!(decimal::<u64>("949"), Some(949));
        assert_eq!(decimal::<u64>("0"), Some(0));
        assert_eq!(decimal::<u64>("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "+949",
            "-1",
            "",
            " 1",
            "1 ",
            "1.0",
            "0x10",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(decimal::<u64>(bad), None, "{bad:?}");
        }
        assert_eq!(decimal::<i64>("+5"), None);
        assert_eq!(decimal::<i64>("-5"), None);
        assert_eq!(decimal::<u32>("4294967296"), None);
    }

    #[test]
    fn hex_is_digits_only() {
        assert_eq!(hex_u64("00ff"), Some(255));
        assert_eq!(hex_u64("FFFFFFFFFFFFFFFF"), Some(u64::MAX));
        assert_eq!(hex_u64("+fffffffffffffff"), None);
        assert_eq!(hex_u64(""), None);
        assert_eq!(hex_byte(b"4a"), Some(0x4a));
        assert_eq!(hex_byte(b"+A"), None);
        assert_eq!(hex_byte(b"A"), None);
        assert_eq!(hex_byte(b"g0"), None);
    }

    #[test]
    fn only_space_and_tab_are_trimmed() {
        assert_eq!(trim_ows(" \t x \t "), "x");
        assert_eq!(trim_ows("\u{a0}x\u{2003}"), "\u{a0}x\u{2003}");
        assert_eq!(trim_ows("\u{b}x\u{c}"), "\u{b}x\u{c}");
        assert_eq!(trim_ows("\r\nx"), "\r\nx");
    }
}
