//! Stub `.torrent` files (`PROTOCOL.md` §3): the exact bytes jack hands to
//! Radarr/Sonarr for a release on a peer, and the reader that turns such a
//! file back into the peer, item id, title and size it names.
//!
//! Pure: no I/O and no network. The reader is a small bencode decoder with
//! an explicit position and a depth limit: no input (truncated, hostile,
//! 100,000 nested lists) can make it panic, overflow the stack or allocate
//! from a length prefix. The info-hash is the SHA-1 of the `info`
//! dictionary's exact bytes as they appear in the file, never of a
//! re-encoding.

use std::fmt;
use std::ops::Range;

/// Largest stub file accepted.
pub const MAX_STUB_BYTES: usize = 1024 * 1024;
/// `info.piece length` of every stub jack writes: 16 MiB.
pub const PIECE_LENGTH: u64 = 16 * 1024 * 1024;

/// Containers nested deeper than this are rejected.
const MAX_DEPTH: usize = 32;
/// Integers and string length prefixes with more digits are rejected.
const MAX_DIGITS: usize = 19;
const MAX_PEER_ID: usize = 64;
const MAX_ITEM_ID: usize = 200;
/// `build`'s precondition: 1 TiB is 65,536 pieces, a 1.25 MiB stub.
const MAX_BUILD_LENGTH: u64 = 1 << 40;
/// How much of an untrusted value an error message quotes.
const QUOTE_BYTES: usize = 64;

/// What a stub names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    /// The peer that holds the release (`peerId`).
    pub peer: String,
    /// The release's id on that peer (`itemId`).
    pub item_id: String,
    /// `info.name`.
    pub title: String,
    /// `info.length`, in bytes.
    pub length: u64,
    /// Lowercase hex SHA-1 of the `info` dictionary's bytes (40 chars).
    pub info_hash: String,
}

/// Why a stub was rejected; `Display` gives a lowercase reason without a
/// trailing period, e.g.
/// `not bencode: string length 99 exceeds the 12 bytes left at offset 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubError(pub String);

impl fmt::Display for StubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StubError {}

/// Parses and validates a stub; `max_size` is the configured size guard
/// (bytes): a stub whose `info.length` is above it is rejected.
///
/// Unknown keys in the top-level and `info` dictionaries are ignored (other
/// tools add `announce`, `created by`, ...); `pieces` is not checked beyond
/// being a byte string.
pub fn parse(bytes: &[u8], max_size: u64) -> Result<Stub, StubError> {
    if bytes.len() > MAX_STUB_BYTES {
        return Err(StubError(format!(
            "stub is {} bytes, larger than the {MAX_STUB_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let mut decoder = Decoder {
        input: bytes,
        pos: 0,
    };
    let top = decoder.value(0)?;
    if decoder.pos < bytes.len() {
        return Err(not_bencode(format!(
            "{} trailing bytes at offset {}",
            bytes.len() - decoder.pos,
            decoder.pos
        )));
    }
    let Value::Dict(top) = top else {
        return Err(StubError(format!(
            "stub is {}, not a dictionary",
            top.kind()
        )));
    };

    let comment = match &required(&top, "comment")?.value {
        Value::Bytes(comment) => *comment,
        other => return Err(wrong_kind("comment", other, "a string")),
    };
    let (peer, item_id) = parse_comment(comment)?;

    let info_entry = required(&top, "info")?;
    let Value::Dict(info) = &info_entry.value else {
        return Err(wrong_kind("info", &info_entry.value, "a dictionary"));
    };
    let length = match &required(info, "length")?.value {
        Value::Int(length) => *length,
        other => return Err(wrong_kind("info.length", other, "an integer")),
    };
    let length = match u64::try_from(length) {
        Ok(length) if length > 0 => length,
        _ => return Err(StubError(format!("info.length {length} is not positive"))),
    };
    if length > max_size {
        return Err(StubError(format!(
            "info.length {length} is above the size guard of {max_size} bytes"
        )));
    }
    let title = match &required(info, "name")?.value {
        Value::Bytes(name) => std::str::from_utf8(name)
            .map_err(|_| StubError("info.name is not valid utf-8".into()))?,
        other => return Err(wrong_kind("info.name", other, "a string")),
    };
    if title.is_empty() {
        return Err(StubError("info.name is empty".into()));
    }
    match find(info, "piece length").map(|entry| &entry.value) {
        None => {}
        Some(Value::Int(n)) if *n > 0 => {}
        Some(Value::Int(n)) => {
            return Err(StubError(format!("info.piece length {n} is not positive")));
        }
        Some(other) => return Err(wrong_kind("info.piece length", other, "an integer")),
    }
    match find(info, "pieces").map(|entry| &entry.value) {
        None | Some(Value::Bytes(_)) => {}
        Some(other) => return Err(wrong_kind("info.pieces", other, "a string")),
    }

    Ok(Stub {
        peer,
        item_id,
        title: title.to_owned(),
        length,
        info_hash: sha1_hex(&bytes[info_entry.span.clone()]),
    })
}

/// Builds the exact stub bytes for a release (for tests now, for the
/// Torznab download endpoint later). `peer` and `item_id` are taken as
/// given.
///
/// Precondition: `length <= 1 TiB` (checked in debug builds). The stub holds
/// 20 bytes per started 16 MiB piece, so callers pass sizes under the
/// configured size guard, never a length read from the network unchecked;
/// nothing overflows above 1 TiB, but the allocation grows with `length`.
pub fn build(peer: &str, item_id: &str, title: &str, length: u64) -> Vec<u8> {
    let comment = format!("jack:{peer}:{item_id}");
    let info = info_dict(title, length);
    let mut out = Vec::with_capacity(comment.len() + info.len() + 32);
    out.extend_from_slice(b"d7:comment");
    push_string(&mut out, comment.as_bytes());
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(&info);
    out.push(b'e');
    out
}

/// The info-hash of the stub `build` would produce, without building it
/// twice. Same precondition as `build`.
pub fn info_hash(title: &str, length: u64) -> String {
    sha1_hex(&info_dict(title, length))
}

/// The bencoded `info` dictionary, keys in byte order.
fn info_dict(title: &str, length: u64) -> Vec<u8> {
    debug_assert!(
        length <= MAX_BUILD_LENGTH,
        "stub length {length} is above 1 TiB"
    );
    // At most 2^40 pieces for u64::MAX, so `* 20` cannot overflow.
    let pieces = length.div_ceil(PIECE_LENGTH);
    let mut out = format!("d6:lengthi{length}e4:name").into_bytes();
    push_string(&mut out, title.as_bytes());
    out.extend_from_slice(
        format!("12:piece lengthi{PIECE_LENGTH}e6:pieces{}:", pieces * 20).as_bytes(),
    );
    for _ in 0..pieces {
        out.extend_from_slice(&[0; 20]);
    }
    out.push(b'e');
    out
}

fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

/// Splits `jack:<peerId>:<itemId>` and checks both parts.
fn parse_comment(comment: &[u8]) -> Result<(String, String), StubError> {
    let Some(rest) = comment.strip_prefix(b"jack:") else {
        return Err(StubError(format!(
            "comment {} does not start with \"jack:\"",
            quote(comment)
        )));
    };
    let (peer, item) = match rest.iter().position(|&b| b == b':') {
        Some(colon) => (&rest[..colon], &rest[colon + 1..]),
        None => (rest, &[][..]),
    };
    if peer.is_empty() {
        return Err(StubError("comment has an empty peer id".into()));
    }
    if peer.len() > MAX_PEER_ID {
        return Err(StubError(format!(
            "peer id is {} characters, more than {MAX_PEER_ID}",
            peer.len()
        )));
    }
    if !peer
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(StubError(format!(
            "peer id {} has a character outside A-Z, a-z, 0-9, _ and -",
            quote(peer)
        )));
    }
    if item.is_empty() {
        return Err(StubError("comment has an empty item id".into()));
    }
    if item.len() > MAX_ITEM_ID {
        return Err(StubError(format!(
            "item id is {} bytes, more than {MAX_ITEM_ID}",
            item.len()
        )));
    }
    let item =
        std::str::from_utf8(item).map_err(|_| StubError("item id is not valid utf-8".into()))?;
    if item.chars().any(char::is_control) {
        return Err(StubError(format!(
            "item id {} has a control character",
            quote(item.as_bytes())
        )));
    }
    // The peer id is ASCII, checked above.
    Ok((String::from_utf8_lossy(peer).into_owned(), item.to_owned()))
}

/// An untrusted value for an error message: escaped, at most 64 bytes.
fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTE_BYTES)];
    let more = if shown.len() < bytes.len() { "..." } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(shown))
}

fn not_bencode(reason: String) -> StubError {
    StubError(format!("not bencode: {reason}"))
}

fn wrong_kind(key: &str, value: &Value<'_>, wanted: &str) -> StubError {
    StubError(format!("{key} is {}, not {wanted}", value.kind()))
}

fn find<'v, 'a>(dict: &'v [Entry<'a>], key: &str) -> Option<&'v Entry<'a>> {
    dict.iter().find(|entry| entry.key == key.as_bytes())
}

fn required<'v, 'a>(dict: &'v [Entry<'a>], key: &str) -> Result<&'v Entry<'a>, StubError> {
    find(dict, key).ok_or_else(|| StubError(format!("missing {key}")))
}

/// A decoded bencode value. List contents are checked but not kept: no
/// stub field lives in a list.
enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List,
    Dict(Vec<Entry<'a>>),
}

impl Value<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Bytes(_) => "a string",
            Value::List => "a list",
            Value::Dict(_) => "a dictionary",
        }
    }
}

/// One dictionary entry; `span` is the value's byte range in the input.
struct Entry<'a> {
    key: &'a [u8],
    value: Value<'a>,
    span: Range<usize>,
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Decodes the value at `pos`; `depth` is how many containers enclose
    /// it. Recursion is bounded by `MAX_DEPTH`.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, StubError> {
        match self.peek()? {
            b'i' => self.integer().map(Value::Int),
            b'0'..=b'9' => self.string().map(Value::Bytes),
            b'l' => {
                self.open(depth)?;
                while !self.close()? {
                    self.value(depth + 1)?;
                }
                Ok(Value::List)
            }
            b'd' => {
                self.open(depth)?;
                let mut entries: Vec<Entry<'a>> = Vec::new();
                while !self.close()? {
                    let at = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(not_bencode(format!(
                            "dictionary key at offset {at} is not a string"
                        )));
                    }
                    let key = self.string()?;
                    if let Some(previous) = entries.last() {
                        if key == previous.key {
                            return Err(not_bencode(format!(
                                "duplicate dictionary key {} at offset {at}",
                                quote(key)
                            )));
                        }
                        if key < previous.key {
                            return Err(not_bencode(format!(
                                "dictionary key {} at offset {at} is out of order (after {})",
                                quote(key),
                                quote(previous.key)
                            )));
                        }
                    }
                    let start = self.pos;
                    let value = self.value(depth + 1)?;
                    entries.push(Entry {
                        key,
                        value,
                        span: start..self.pos,
                    });
                }
                Ok(Value::Dict(entries))
            }
            other => Err(not_bencode(format!(
                "unexpected byte 0x{other:02x} at offset {}",
                self.pos
            ))),
        }
    }

    /// Steps over `l` or `d`, refusing a container nested too deep.
    fn open(&mut self, depth: usize) -> Result<(), StubError> {
        if depth >= MAX_DEPTH {
            return Err(not_bencode(format!(
                "nesting deeper than {MAX_DEPTH} at offset {}",
                self.pos
            )));
        }
        self.pos += 1;
        Ok(())
    }

    /// Steps over an `e` ending a container, if that is what comes next.
    fn close(&mut self) -> Result<bool, StubError> {
        if self.peek()? == b'e' {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn peek(&self) -> Result<u8, StubError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| not_bencode(format!("unexpected end of input at offset {}", self.pos)))
    }

    fn expect(&mut self, wanted: u8, what: &str) -> Result<(), StubError> {
        let found = self.peek()?;
        if found != wanted {
            return Err(not_bencode(format!(
                "{what} at offset {} has byte 0x{found:02x} where '{}' belongs",
                self.pos,
                char::from(wanted)
            )));
        }
        self.pos += 1;
        Ok(())
    }

    /// `i<digits>e`, digits with an optional `-`, no leading zeros, no `-0`.
    fn integer(&mut self) -> Result<i64, StubError> {
        let start = self.pos;
        self.pos += 1;
        let negative = self.input.get(self.pos) == Some(&b'-');
        if negative {
            self.pos += 1;
        }
        let magnitude = self.digits(start, "integer")?;
        self.expect(b'e', "integer")?;
        if negative && magnitude == 0 {
            return Err(not_bencode(format!("integer at offset {start} is -0")));
        }
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        value.ok_or_else(|| {
            not_bencode(format!("integer at offset {start} does not fit in 64 bits"))
        })
    }

    /// `<length>:<bytes>`; the length is checked against what is left
    /// before anything is sliced or allocated.
    fn string(&mut self) -> Result<&'a [u8], StubError> {
        let start = self.pos;
        let length = self.digits(start, "string length")?;
        self.expect(b':', "string length")?;
        let left = self.input.len() - self.pos;
        match usize::try_from(length) {
            Ok(length) if length <= left => {
                let bytes = &self.input[self.pos..self.pos + length];
                self.pos += length;
                Ok(bytes)
            }
            _ => Err(not_bencode(format!(
                "string length {length} exceeds the {left} bytes left at offset {}",
                self.pos
            ))),
        }
    }

    /// 1 to 19 decimal digits without a leading zero (`0` alone is fine).
    /// 19 digits always fit in a u64.
    fn digits(&mut self, start: usize, what: &str) -> Result<u64, StubError> {
        let from = self.pos;
        while self.pos - from <= MAX_DIGITS
            && self.input.get(self.pos).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
        }
        let digits = &self.input[from..self.pos];
        if digits.is_empty() {
            return Err(not_bencode(format!(
                "{what} at offset {start} has no digits"
            )));
        }
        if digits.len() > MAX_DIGITS {
            return Err(not_bencode(format!(
                "{what} at offset {start} has more than {MAX_DIGITS} digits"
            )));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(not_bencode(format!(
                "{what} at offset {start} has a leading zero"
            )));
        }
        Ok(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;
    /// The size guard the tests parse with.
    const GUARD: u64 = 100 * GIB;

    /// A stub written by hand: `info` holds the inside of the info dict.
    fn raw(comment: &[u8], info: &[u8]) -> Vec<u8> {
        let mut out = b"d7:comment".to_vec();
        push_string(&mut out, comment);
        out.extend_from_slice(b"4:infod");
        out.extend_from_slice(info);
        out.extend_from_slice(b"ee");
        out
    }

    /// The info dict's bytes inside a stub, found by searching for `4:infod`
    /// (the info dict is the last top-level value in jack's stubs).
    fn info_bytes(stub: &[u8]) -> &[u8] {
        let at = stub
            .windows(7)
            .position(|w| w == b"4:infod")
            .expect("stub has 4:infod");
        &stub[at + 6..stub.len() - 1]
    }

    #[test]
    fn build_and_parse_round_trip() {
        let cases = [
            ("alice", "lib1:movie:4f2a", "Heat (1995)", 1),
            ("bob_2", "x", "Amélie (2001) 1080p", PIECE_LENGTH - 1),
            ("c-3", "tv:show:s01e01", "日本語のタイトル", PIECE_LENGTH),
            ("D", "a:b:c:d", "Crème brûlée", PIECE_LENGTH + 1),
            ("peer", "lib:9", "Big.Release.2160p", 5 * GIB),
        ];
        for (peer, item, title, length) in cases {
            let bytes = build(peer, item, title, length);
            let stub = parse(&bytes, GUARD).unwrap();
            let pieces = usize::try_from(length.div_ceil(PIECE_LENGTH)).unwrap();
            assert_eq!(stub.peer, peer);
            assert_eq!(stub.item_id, item);
            assert_eq!(stub.title, title);
            assert_eq!(stub.length, length);
            assert_eq!(stub.info_hash, info_hash(title, length));
            let info = info_bytes(&bytes);
            assert_eq!(
                stub.info_hash,
                sha1_smol::Sha1::from(info).digest().to_string()
            );
            assert!(info.ends_with(&[&b":"[..], &vec![0; pieces * 20], b"e"].concat()));
            assert_eq!(stub.info_hash.len(), 40);
            assert!(
                stub.info_hash
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );
        }
    }

    #[test]
    fn piece_counts_start_a_piece_per_started_16_mib() {
        for (length, pieces) in [
            (0, 0),
            (1, 1),
            (PIECE_LENGTH - 1, 1),
            (PIECE_LENGTH, 1),
            (PIECE_LENGTH + 1, 2),
            (5 * GIB, 320),
        ] {
            let info = info_dict("T", length);
            let expected = format!("6:pieces{}:", pieces * 20);
            let at = info
                .windows(expected.len())
                .position(|w| w == expected.as_bytes())
                .unwrap();
            assert_eq!(
                info.len(),
                at + expected.len() + pieces * 20 + 1,
                "{length}"
            );
        }
    }

    #[test]
    fn exact_bytes_of_a_tiny_stub() {
        let mut expected = b"d7:comment26:jack:alice:lib1:movie:4f2a4:infod6:lengthi1e4:name1:T\
12:piece lengthi16777216e6:pieces20:"
            .to_vec();
        expected.extend_from_slice(&[0; 20]);
        expected.extend_from_slice(b"ee");
        assert_eq!(build("alice", "lib1:movie:4f2a", "T", 1), expected);

        let mut info = b"d6:lengthi1e4:name1:T12:piece lengthi16777216e6:pieces20:".to_vec();
        info.extend_from_slice(&[0; 20]);
        info.push(b'e');
        let hash = sha1_smol::Sha1::from(&info).digest().to_string();
        // Also computed with Python's hashlib over the same bytes.
        assert_eq!(hash, "532777b79a38ebcd6005a40c53df4fd27f4811fc");
        assert_eq!(info_hash("T", 1), hash);
        assert_eq!(parse(&expected, GUARD).unwrap().info_hash, hash);
    }

    #[test]
    fn empty_release_has_no_pieces() {
        let bytes = build("a", "b", "T", 0);
        assert!(bytes.ends_with(b"6:pieces0:ee"));
        assert!(
            parse(&bytes, GUARD)
                .unwrap_err()
                .to_string()
                .contains("not positive")
        );
    }

    #[test]
    fn extra_keys_are_ignored_and_hashed_as_written() {
        let info = b"6:lengthi42e4:name1:T5:owner3:bob12:piece lengthi1024e6:pieces0:";
        let mut bytes =
            b"d8:announce9:http://x/7:comment8:jack:a:b10:created by4:test4:infod".to_vec();
        bytes.extend_from_slice(info);
        bytes.extend_from_slice(b"e5:zzzzzli1ei2eee");
        let stub = parse(&bytes, GUARD).unwrap();
        assert_eq!((stub.peer.as_str(), stub.item_id.as_str()), ("a", "b"));
        assert_eq!(stub.length, 42);
        let mut dict = b"d".to_vec();
        dict.extend_from_slice(info);
        dict.push(b'e');
        assert_eq!(
            stub.info_hash,
            sha1_smol::Sha1::from(&dict).digest().to_string()
        );
        assert_ne!(stub.info_hash, info_hash("T", 42));
    }

    #[test]
    fn optional_info_keys_may_be_missing() {
        let stub = parse(&raw(b"jack:a:b", b"6:lengthi7e4:name1:T"), GUARD).unwrap();
        assert_eq!(stub.length, 7);
    }

    #[test]
    fn accepted_edge_values() {
        // Largest length under the guard, item id at its limits.
        let item = "é".repeat(100);
        let peer = "p".repeat(64);
        let stub = parse(&build(&peer, &item, "T", GUARD), GUARD).unwrap();
        assert_eq!((stub.peer, stub.item_id, stub.length), (peer, item, GUARD));
        // Top dict is level 1, info level 2: 30 more lists reach level 32,
        // 31 go one too deep.
        let deep = |lists: usize| {
            let value = format!("{}{}", "l".repeat(lists), "e".repeat(lists));
            raw(
                b"jack:a:b",
                format!("6:lengthi1e4:name1:T5:zdeep{value}").as_bytes(),
            )
        };
        assert_eq!(parse(&deep(30), GUARD).unwrap().length, 1);
        let error = parse(&deep(31), GUARD).unwrap_err();
        assert!(error.0.contains("nesting deeper than 32"), "{error}");
        // Exactly 1 MiB is not too large (a long ignored value).
        let mut big = b"d7:comment8:jack:a:b4:infod6:lengthi1e4:name1:Te1:z".to_vec();
        let rest = MAX_STUB_BYTES - big.len() - 1;
        let filler = rest - rest.to_string().len() - 1;
        big.extend_from_slice(format!("{filler}:").as_bytes());
        big.resize(MAX_STUB_BYTES - 1, b'x');
        big.push(b'e');
        assert_eq!(big.len(), MAX_STUB_BYTES);
        assert!(parse(&big, GUARD).is_ok());
    }

    #[test]
    fn rejected_inputs_say_why() {
        let valid = build("alice", "lib1:movie:4f2a", "T", 1);
        let info = |length: &str| format!("6:length{length}4:name1:T");
        let nested = |depth: usize| format!("{}{}", "l".repeat(depth), "e".repeat(depth));
        let mut too_big = valid.clone();
        too_big.resize(MAX_STUB_BYTES + 1, b'x');
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "not bencode",
                b"hello".to_vec(),
                "not bencode: unexpected byte 0x68 at offset 0",
            ),
            ("empty", Vec::new(), "unexpected end of input at offset 0"),
            (
                "truncated",
                valid[..valid.len() - 1].to_vec(),
                "unexpected end of input",
            ),
            ("trailing", [&valid[..], b"x"].concat(), "1 trailing bytes"),
            (
                "two values",
                [&valid[..], &valid[..]].concat(),
                "trailing bytes",
            ),
            (
                "depth 33",
                nested(33).into_bytes(),
                "nesting deeper than 32",
            ),
            (
                "depth 100000",
                "l".repeat(100_000).into_bytes(),
                "nesting deeper than 32",
            ),
            (
                "depth 32 is a list",
                nested(32).into_bytes(),
                "stub is a list, not a dictionary",
            ),
            (
                "huge prefix",
                b"99999999999999999999:".to_vec(),
                "string length at offset 0 has more than 19 digits",
            ),
            (
                "prefix past end",
                b"d7:comment99:jack:a:b".to_vec(),
                "string length 99 exceeds the 8 bytes left at offset 13",
            ),
            (
                "19-digit prefix",
                b"9999999999999999999:x".to_vec(),
                "exceeds the 1 bytes left",
            ),
            (
                "prefix leading zero",
                b"d07:commente".to_vec(),
                "leading zero",
            ),
            ("no colon", b"d7xcomment".to_vec(), "where ':' belongs"),
            (
                "leading zero",
                raw(b"jack:a:b", info("i03e").as_bytes()),
                "has a leading zero",
            ),
            (
                "negative leading zero",
                raw(b"jack:a:b", info("i-03e").as_bytes()),
                "leading zero",
            ),
            (
                "minus zero",
                raw(b"jack:a:b", info("i-0e").as_bytes()),
                "is -0",
            ),
            (
                "empty integer",
                raw(b"jack:a:b", info("ie").as_bytes()),
                "has no digits",
            ),
            (
                "minus alone",
                raw(b"jack:a:b", info("i-e").as_bytes()),
                "has no digits",
            ),
            (
                "unterminated integer",
                raw(b"jack:a:b", info("i1x").as_bytes()),
                "where 'e'",
            ),
            (
                "20-digit integer",
                raw(b"jack:a:b", info("i12345678901234567890e").as_bytes()),
                "more than 19 digits",
            ),
            (
                "integer above i64",
                raw(b"jack:a:b", info("i9999999999999999999e").as_bytes()),
                "does not fit in 64 bits",
            ),
            (
                "not jack",
                raw(b"http://x", info("i1e").as_bytes()),
                "\"http://x\" does not start with \"jack:\"",
            ),
            (
                "empty peer",
                raw(b"jack::item", info("i1e").as_bytes()),
                "empty peer id",
            ),
            (
                "empty item",
                raw(b"jack:alice:", info("i1e").as_bytes()),
                "empty item id",
            ),
            (
                "no item",
                raw(b"jack:alice", info("i1e").as_bytes()),
                "empty item id",
            ),
            (
                "bad peer",
                raw(b"jack:bad peer:x", info("i1e").as_bytes()),
                "peer id \"bad peer\" has a character",
            ),
            (
                "long peer",
                raw(
                    format!("jack:{}:x", "p".repeat(65)).as_bytes(),
                    info("i1e").as_bytes(),
                ),
                "more than 64",
            ),
            (
                "long item",
                raw(
                    format!("jack:a:{}", "x".repeat(201)).as_bytes(),
                    info("i1e").as_bytes(),
                ),
                "more than 200",
            ),
            (
                "control in item",
                raw(b"jack:a:x\ny", info("i1e").as_bytes()),
                "control character",
            ),
            (
                "item not utf-8",
                raw(b"jack:a:\xff", info("i1e").as_bytes()),
                "item id is not valid utf-8",
            ),
            (
                "length 0",
                raw(b"jack:a:b", info("i0e").as_bytes()),
                "info.length 0 is not positive",
            ),
            (
                "length -5",
                raw(b"jack:a:b", info("i-5e").as_bytes()),
                "info.length -5 is not positive",
            ),
            (
                "above guard",
                build("a", "b", "T", GUARD + 1),
                "is above the size guard of 107374182400 bytes",
            ),
            (
                "length string",
                raw(b"jack:a:b", info("1:1").as_bytes()),
                "info.length is a string, not an integer",
            ),
            (
                "too large",
                too_big,
                "stub is 1048577 bytes, larger than the 1048576-byte limit",
            ),
            (
                "unsorted keys",
                raw(b"jack:a:b", b"4:name1:T6:lengthi1e"),
                "dictionary key \"length\" at offset 36 is out of order",
            ),
            (
                "unsorted top keys",
                b"d4:infod6:lengthi1e4:name1:Te7:comment8:jack:a:be".to_vec(),
                "out of order",
            ),
            (
                "duplicate keys",
                raw(b"jack:a:b", b"6:lengthi1e6:lengthi1e4:name1:T"),
                "duplicate dictionary key \"length\"",
            ),
            (
                "integer key",
                b"di1ei2ee".to_vec(),
                "dictionary key at offset 1 is not a string",
            ),
            (
                "missing info",
                b"d7:comment8:jack:a:be".to_vec(),
                "missing info",
            ),
            (
                "missing comment",
                b"d4:infod6:lengthi1e4:name1:Tee".to_vec(),
                "missing comment",
            ),
            (
                "missing length",
                raw(b"jack:a:b", b"4:name1:T"),
                "missing length",
            ),
            (
                "missing name",
                raw(b"jack:a:b", b"6:lengthi1e"),
                "missing name",
            ),
            (
                "info a list",
                b"d7:comment8:jack:a:b4:infolee".to_vec(),
                "info is a list, not a dictionary",
            ),
            (
                "comment an integer",
                b"d7:commenti1e4:infodee".to_vec(),
                "comment is an integer",
            ),
            (
                "name not utf-8",
                raw(b"jack:a:b", b"6:lengthi1e4:name2:\xc3\x28"),
                "info.name is not valid utf-8",
            ),
            (
                "name empty",
                raw(b"jack:a:b", b"6:lengthi1e4:name0:"),
                "info.name is empty",
            ),
            (
                "name a dict",
                raw(b"jack:a:b", b"6:lengthi1e4:namede"),
                "info.name is a dictionary",
            ),
            (
                "piece length string",
                raw(b"jack:a:b", b"6:lengthi1e4:name1:T12:piece length1:x"),
                "info.piece length is a string",
            ),
            (
                "piece length 0",
                raw(b"jack:a:b", b"6:lengthi1e4:name1:T12:piece lengthi0e"),
                "not positive",
            ),
            (
                "pieces a list",
                raw(b"jack:a:b", b"6:lengthi1e4:name1:T6:piecesle"),
                "info.pieces is a list",
            ),
            (
                "top level integer",
                b"i1e".to_vec(),
                "stub is an integer, not a dictionary",
            ),
        ];
        for (name, input, reason) in cases {
            match parse(&input, GUARD) {
                Ok(stub) => panic!("{name}: accepted as {stub:?}"),
                Err(error) => {
                    let text = error.to_string();
                    assert!(text.contains(reason), "{name}: {text:?} lacks {reason:?}");
                    assert!(!text.ends_with('.'), "{name}: {text:?}");
                }
            }
        }
    }

    #[test]
    fn long_values_are_quoted_short() {
        let comment = format!("http://{}", "x".repeat(1000));
        let error = parse(&raw(comment.as_bytes(), b"6:lengthi1e4:name1:T"), GUARD).unwrap_err();
        assert!(error.0.len() < 120, "{error}");
        assert!(error.0.contains("xxx\"... does not start"), "{error}");
    }

    /// The retry module's seeded generator: every run feeds the same input.
    struct Rng(crate::download::retry::SeededRng);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0.next_u64()
        }

        fn below(&mut self, n: usize) -> usize {
            self.0.index(n)
        }

        fn byte(&mut self) -> u8 {
            const BENCODE: &[u8] = b"ilde0123456789:-e";
            if self.next().is_multiple_of(2) {
                BENCODE[self.below(BENCODE.len())]
            } else {
                self.next().to_le_bytes()[0]
            }
        }
    }

    #[test]
    fn never_panics_on_random_or_mutated_input() {
        let mut rng = Rng(crate::download::retry::SeededRng::new(
            0x9e37_79b9_7f4a_7c15,
        ));
        let seeds = [
            build("alice", "lib1:movie:4f2a", "T", 1),
            build("bob", "x:y", "日本語", 3 * PIECE_LENGTH + 5),
            raw(b"jack:a:b", b"6:lengthi7e4:name1:T5:zlistli1el2:abee"),
        ];
        let mut accepted = 0;
        for round in 0..6000 {
            let input = if round % 3 == 0 {
                (0..rng.below(200)).map(|_| rng.byte()).collect()
            } else {
                let mut bytes = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len() + 1);
                    match rng.below(5) {
                        0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
                        1 => bytes.insert(at, rng.byte()),
                        2 if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        3 => bytes.truncate(at),
                        _ if at < bytes.len() => bytes[at] = rng.byte(),
                        _ => {}
                    }
                }
                bytes
            };
            if let Ok(stub) = parse(&input, GUARD) {
                accepted += 1;
                assert!(stub.length >= 1 && stub.length <= GUARD);
                assert!(!stub.peer.is_empty() && !stub.item_id.is_empty());
                assert_eq!(stub.info_hash.len(), 40);
            }
        }
        // Some mutations (inside the title or the pieces) stay valid.
        assert!(accepted > 0);
    }
}
