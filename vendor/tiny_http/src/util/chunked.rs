//! jack patch: a chunked request body decoder in place of the
//! `chunked_transfer` crate's, whose chunk-size line grew without limit in
//! memory and whose sizes were `usize`. Lines here are bounded, sizes are
//! u64, trailer fields are read and dropped, and `read` returns `Ok(0)` only
//! at the body's real end (a connection that ends early is an error).

use std::convert::TryFrom; // jack patch
use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};

/// The longest chunk-size line (extensions included) or trailer line.
const MAX_LINE: usize = 4096;
/// The most trailer bytes taken after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

pub struct Chunked<R: Read> {
    source: R,
    /// Bytes left in the current chunk; `None` between chunks.
    left: Option<u64>,
    done: bool,
}

impl<R: Read> Chunked<R> {
    pub fn new(source: R) -> Chunked<R> {
        Chunked {
            source,
            left: None,
            done: false,
        }
    }

    fn byte(&mut self) -> IoResult<u8> {
        let mut b = [0u8; 1];
        loop {
            match self.source.read(&mut b) {
                Ok(0) => return Err(IoError::new(ErrorKind::UnexpectedEof, "chunked body cut")),
                Ok(_) => return Ok(b[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One line without its CRLF, at most `MAX_LINE` bytes, into `line`.
    fn line(&mut self, line: &mut Vec<u8>) -> IoResult<()> {
        line.clear();
        loop {
            match self.byte()? {
                b'\n' if line.last() == Some(&b'\r') => {
                    line.pop();
                    return Ok(());
                }
                b => {
                    if line.len() >= MAX_LINE {
                        return Err(bad("chunk line too long"));
                    }
                    line.push(b);
                }
            }
        }
    }

    /// The size of the next chunk.
    fn size(&mut self) -> IoResult<u64> {
        let mut line = Vec::new();
        self.line(&mut line)?;
        let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let digits = trim(digits);
        if digits.is_empty() || digits.len() > 15 {
            return Err(bad("bad chunk size"));
        }
        let mut size = 0u64;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or_else(|| bad("bad chunk size"))?;
            size = size * 16 + u64::from(v);
        }
        Ok(size)
    }

    /// The trailer fields after the last chunk, up to the empty line.
    fn trailers(&mut self) -> IoResult<()> {
        let mut line = Vec::new();
        let mut total = 0;
        loop {
            self.line(&mut line)?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len();
            if total > MAX_TRAILERS {
                return Err(bad("chunked trailers too large"));
            }
        }
    }

    fn crlf(&mut self) -> IoResult<()> {
        if self.byte()? == b'\r' && self.byte()? == b'\n' {
            Ok(())
        } else {
            Err(bad("chunk not followed by CRLF"))
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn bad(what: &str) -> IoError {
    IoError::new(ErrorKind::InvalidData, what.to_string())
}

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let left = match self.left {
            Some(n) => n,
            None => {
                let n = self.size()?;
                if n == 0 {
                    self.trailers()?;
                    self.done = true;
                    return Ok(0);
                }
                n
            }
        };
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.source.read(&mut buf[..want])?;
        if n == 0 {
            return Err(IoError::new(ErrorKind::UnexpectedEof, "chunked body cut"));
        }
        let rest = left - n as u64;
        if rest == 0 {
            self.crlf()?;
            self.left = None;
        } else {
            self.left = Some(rest);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::Chunked;
    use std::io::Read;

    fn decode(s: &str) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Chunked::new(s.as_bytes()).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn bodies() {
        assert_eq!(decode("3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n").unwrap(), b"hello");
        assert_eq!(decode("0\r\nA: b\r\n\r\n").unwrap(), b"");
        assert!(decode("3\r\nhel").is_err());
        assert!(decode("3\r\nhel\r\n").is_err());
        assert!(decode("zz\r\n").is_err());
        assert!(decode(&"1".repeat(10_000)).is_err());
        assert!(decode("10000000000000000\r\n").is_err());
    }
}
