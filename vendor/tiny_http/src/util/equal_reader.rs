use std::convert::TryFrom; // jack patch
use std::io::Read;
use std::io::Result as IoResult;

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF.
///
/// jack patch: the size is u64 (a `Content-Length` past 4 GiB on a 32-bit
/// target); a sub-reader that ends before the limit is an error, so `Ok(0)`
/// means the whole body was read; and dropping it reads nothing (upstream
/// read the rest into a buffer of the size the client announced). A body
/// left unread is drained, within a cap, by the connection's thread.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: u64,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: u64) -> EqualReader<R> {
        EqualReader { reader, size }
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 || buf.is_empty() {
            return Ok(0);
        }

        let want = usize::try_from(self.size).map_or(buf.len(), |s| s.min(buf.len()));

        match self.reader.read(&mut buf[..want]) {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "request body cut",
            )),
            Ok(len) => {
                self.size -= len as u64;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5);

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5);

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        // jack patch: dropping reads nothing more
        assert_eq!(string, "ello world");
    }
}
