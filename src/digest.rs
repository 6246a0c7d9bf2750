//! Content digests (`PROTOCOL.md` §2.6): SHA-256 of a whole file and of
//! each of its 16 MiB pieces, their hex and RFC 9530 forms, and the
//! `/peer/items/{id}/pieces` document. Pure: bytes in, digests out.
//!
//! [`Hasher`] is SHA-256 over `sha2`'s block function, so its state at a
//! piece boundary (a multiple of 64 bytes) can be kept in the registry
//! ([`Midstate`]) and taken up again: a resumed download hashes on from
//! its last proven piece instead of reading the file again. (`sha2` is
//! already linked for `key_sha256` and the page's CSP hashes; ring's
//! SHA-256, linked for TLS, runs at the same speed here but keeps its
//! state private.)

use sha2::Digest;
use sha2::digest::generic_array::GenericArray;

/// The size of a piece; the last piece of a file may be shorter.
pub const PIECE_SIZE: u64 = 16 * 1024 * 1024;

/// A SHA-256 digest.
pub type Sha256 = [u8; 32];

/// The SHA-256 of `bytes` in one go.
pub fn sha256(bytes: &[u8]) -> Sha256 {
    sha2::Sha256::digest(bytes).into()
}

/// How many pieces a file of `size` bytes has (an empty file has none).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_SIZE)
}

/// Bytes `start..end` of piece `index` of a file of `size` bytes.
pub fn piece_range(index: u64, size: u64) -> (u64, u64) {
    let start = index.saturating_mul(PIECE_SIZE).min(size);
    (start, start.saturating_add(PIECE_SIZE).min(size))
}

const INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The state of a [`Hasher`] after a whole number of 64-byte blocks: what
/// the registry keeps beside a download's proven pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Midstate {
    /// Bytes hashed so far (a multiple of 64).
    pub bytes: u64,
    /// The eight state words, big-endian.
    pub state: [u8; 32],
}

/// Incremental SHA-256 whose state can be saved at block boundaries.
#[derive(Clone)]
pub struct Hasher {
    state: [u32; 8],
    /// Bytes passed through the block function.
    blocks: u64,
    pending: [u8; 64],
    npending: usize,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher({} bytes)", self.len())
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher {
            state: INITIAL,
            blocks: 0,
            pending: [0; 64],
            npending: 0,
        }
    }

    /// Takes up a saved state.
    pub fn resume(m: &Midstate) -> Hasher {
        let mut state = [0u32; 8];
        for (w, b) in state.iter_mut().zip(m.state.chunks_exact(4)) {
            *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        Hasher {
            state,
            blocks: m.bytes,
            pending: [0; 64],
            npending: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.blocks + self.npending as u64
    }

    /// Nothing hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state, when a whole number of blocks has been hashed.
    pub fn midstate(&self) -> Option<Midstate> {
        if self.npending != 0 {
            return None;
        }
        let mut state = [0u8; 32];
        for (b, w) in state.chunks_exact_mut(4).zip(self.state) {
            b.copy_from_slice(&w.to_be_bytes());
        }
        Some(Midstate {
            bytes: self.blocks,
            state,
        })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        if self.npending > 0 {
            let take = (64 - self.npending).min(data.len());
            self.pending[self.npending..self.npending + take].copy_from_slice(&data[..take]);
            self.npending += take;
            data = &data[take..];
            if self.npending < 64 {
                return;
            }
            let block = self.pending;
            self.compress(&block);
            self.npending = 0;
        }
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            self.compress(block);
        }
        let rest = blocks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    fn compress(&mut self, block: &[u8]) {
        sha2::compress256(
            &mut self.state,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
        self.blocks += 64;
    }

    /// The digest of everything hashed (FIPS 180-4 padding).
    pub fn finish(mut self) -> Sha256 {
        let bits = self.len().wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.npending].copy_from_slice(&self.pending[..self.npending]);
        tail[self.npending] = 0x80;
        let n = if self.npending < 56 { 64 } else { 128 };
        tail[n - 8..n].copy_from_slice(&bits.to_be_bytes());
        for block in tail[..n].chunks_exact(64) {
            sha2::compress256(
                &mut self.state,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let mut out = [0u8; 32];
        for (b, w) in out.chunks_exact_mut(4).zip(self.state) {
            b.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// Lower-case hex, as `Release.sha256` and the pieces document carry it.
pub fn hex(d: &Sha256) -> String {
    crate::keys::hex(d)
}

/// 64 hex digits (either case) → the digest; anything else is `None`.
pub fn parse_hex(s: &str) -> Option<Sha256> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding → bytes; anything else is `None`.
pub fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (q, quad) in s.chunks_exact(4).enumerate() {
        let last = q + 1 == s.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == c)?;
            n = (n << 6) | u32::try_from(v).ok()?;
        }
        n <<= 6 * pad;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// The `Repr-Digest` field value for a whole-file digest (RFC 9530).
pub fn repr_digest(d: &Sha256) -> String {
    format!("sha-256=:{}:", base64(d))
}

/// The `sha-256` member of a `Repr-Digest` field value, when there is
/// exactly one well-formed one (other algorithms are skipped; RFC 9530
/// §2 is a Dictionary of byte sequences).
pub fn parse_repr_digest(value: &str) -> Option<Sha256> {
    let mut found = None;
    for member in value.split(',') {
        let member = crate::lexical::trim_ows(member);
        let Some((key, rest)) = member.split_once('=') else {
            continue;
        };
        if !key.eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let inner = rest.strip_prefix(':')?.strip_suffix(':')?;
        let bytes: Sha256 = unbase64(inner)?.try_into().ok()?;
        if found.is_some_and(|f| f != bytes) {
            return None;
        }
        found = Some(bytes);
    }
    found
}

/// A file's digests: the `/peer/items/{id}/pieces` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pieces {
    pub size: u64,
    pub sha256: Sha256,
    pub pieces: Vec<Sha256>,
}

impl Pieces {
    /// The document as served, with the ETag of the version it describes.
    pub fn to_json(&self, etag: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "size": self.size,
            "etag": etag,
            "sha256": hex(&self.sha256),
            "pieceSize": PIECE_SIZE,
            "pieces": self.pieces.iter().map(hex).collect::<Vec<_>>(),
        })
    }

    /// A peer's document, checked: piece size 16 MiB, exactly as many
    /// pieces as the size has, every digest 64 hex digits.
    pub fn from_json(v: &serde_json::Value) -> Result<Pieces, String> {
        let size = v["size"].as_u64().ok_or("no size")?;
        if v["pieceSize"].as_u64() != Some(PIECE_SIZE) {
            return Err(format!("piece size {} is not 16 MiB", v["pieceSize"]));
        }
        let sha256 = v["sha256"]
            .as_str()
            .and_then(parse_hex)
            .ok_or("no valid sha256")?;
        let list = v["pieces"].as_array().ok_or("no pieces")?;
        if u64::try_from(list.len()).ok() != Some(piece_count(size)) {
            return Err(format!(
                "{} pieces for {size} bytes, not {}",
                list.len(),
                piece_count(size)
            ));
        }
        let pieces = list
            .iter()
            .map(|p| p.as_str().and_then(parse_hex))
            .collect::<Option<Vec<_>>>()
            .ok_or("a piece digest is not 64 hex digits")?;
        Ok(Pieces {
            size,
            sha256,
            pieces,
        })
    }

    /// The digests of `data` read in one go (tests, small files).
    pub fn of(data: &[u8]) -> Pieces {
        let size = data.len() as u64;
        let pieces = (0..piece_count(size))
            .map(|i| {
                let (a, b) = piece_range(i, size);
                // Within `data`, whose length is a usize.
                sha256(&data[a as usize..b as usize])
            })
            .collect();
        Pieces {
            size,
            sha256: sha256(data),
            pieces,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_matches_sha2_across_every_split_and_resumes_from_its_midstate() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 999, 1000] {
            let want = sha256(&data[..len]);
            for split in [0, 1, 63, 64, 100, len] {
                let split = split.min(len);
                let mut h = Hasher::new();
                h.update(&data[..split]);
                h.update(&data[split..len]);
                assert_eq!(h.finish(), want, "len {len} split {split}");
            }
        }
        let mut h = Hasher::new();
        h.update(&data[..640]);
        let m = h.midstate().unwrap();
        assert_eq!(m.bytes, 640);
        let mut r = Hasher::resume(&m);
        r.update(&data[640..]);
        assert_eq!(r.finish(), sha256(&data));
        let mut odd = Hasher::new();
        odd.update(&data[..5]);
        assert_eq!(odd.midstate(), None);
    }

    #[test]
    fn known_vectors() {
        assert_eq!(
            hex(&Hasher::new().finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::new();
        h.update(b"abc");
        assert_eq!(
            hex(&h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn base64_both_ways_and_repr_digest() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
            assert_eq!(unbase64(want).unwrap(), input.as_bytes(), "{want}");
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*", "Zg=a"] {
            assert_eq!(unbase64(bad), None, "{bad}");
        }
        let d = sha256(b"hello");
        let v = repr_digest(&d);
        assert_eq!(v, "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:");
        assert_eq!(parse_repr_digest(&v), Some(d));
        assert_eq!(
            parse_repr_digest(&format!("sha-512=:AAAA:, {v}")),
            Some(d),
            "other algorithms are skipped"
        );
        assert_eq!(parse_repr_digest("sha-256=abc"), None);
        assert_eq!(parse_repr_digest("sha-256=:AAAA:"), None, "not 32 bytes");
        let other = repr_digest(&sha256(b"other"));
        assert_eq!(parse_repr_digest(&format!("{v}, {other}")), None);
    }

    #[test]
    fn pieces_round_trip_and_refuse_a_wrong_count() {
        let data = vec![5u8; 100];
        let p = Pieces::of(&data);
        assert_eq!(p.pieces.len(), 1);
        assert_eq!(Pieces::from_json(&p.to_json(Some("\"e\""))).unwrap(), p);
        let mut v = p.to_json(None);
        v["size"] = serde_json::json!(PIECE_SIZE + 1);
        assert!(Pieces::from_json(&v).is_err());
        let mut v = p.to_json(None);
        v["pieceSize"] = serde_json::json!(1024);
        assert!(Pieces::from_json(&v).is_err());
        assert_eq!(piece_count(0), 0);
        assert_eq!(piece_count(PIECE_SIZE), 1);
        assert_eq!(piece_range(1, PIECE_SIZE + 5), (PIECE_SIZE, PIECE_SIZE + 5));
        assert_eq!(parse_hex(&hex(&p.sha256)), Some(p.sha256));
        assert_eq!(parse_hex("zz"), None);
    }
}
