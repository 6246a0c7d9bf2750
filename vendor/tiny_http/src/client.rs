use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::connection::Connection;
use crate::util::ConnState;
use crate::Request;
use std::io::Write;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // jack patch: a clone of the socket, handed to each request so a handler
    // can cut the connection (`Request::abort_connection`)
    abort_handle: Option<Arc<Connection>>,

    // jack patch: the connection's phase, for the head deadline and eviction
    state: Option<Arc<ConnState>>,

    // jack patch: where the last request's unread body comes back
    unread_body: Option<Receiver<Box<dyn Read + Send + 'static>>>,
}

/// jack patch: the most bytes of a body left unread that are read and
/// thrown away to keep a connection; past them it is closed.
const DRAIN_CAP: u64 = 64 * 1024;

/// jack patch: limits on what a client may send before its request is
/// complete; beyond them the request is refused and the connection closed.
const MAX_REQUEST_LINE: usize = 8 * 1024;
const MAX_HEADER_LINE: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// jack patch: the request line (414) or the headers (431) are too large
    TooLarge(u16),
    /// jack patch: the connection closes without an answer (a body left
    /// unread was too long or too slow to drain, the connection was evicted)
    Close,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        state: Option<Arc<ConnState>>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        // jack patch: reads go through the connection's state.
        read_socket.set_state(state.clone());

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            abort_handle: None,
            state,
            unread_body: None,
        }
    }

    /// jack patch: see `Request::abort_connection`.
    pub(crate) fn with_abort_handle(mut self, handle: Option<Arc<Connection>>) -> Self {
        self.abort_handle = handle;
        self
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self, limit: usize) -> IoResult<AsciiString> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b?,
                None => return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF")),
            };

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
            if buf.len() > limit {
                return Err(IoError::new(ErrorKind::OutOfMemory, "line too long"));
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // jack patch: what the last request left of its body is drained
        // here, within `DRAIN_CAP` and the head deadline, or the connection
        // closes.
        if let Some(returned) = self.unread_body.take() {
            let drained = match returned.recv() {
                Ok(mut body) => {
                    if let Some(state) = &self.state {
                        state.begin_head().map_err(|_| ReadError::Close)?;
                    }
                    drain(&mut *body)
                }
                Err(_) => false,
            };
            if !drained {
                return Err(ReadError::Close);
            }
        }
        if let Some(state) = &self.state {
            state.await_head().map_err(|_| ReadError::Close)?;
        }
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self
                    .read_next_line(MAX_REQUEST_LINE)
                    .map_err(|e| too_large_or(e, 414))?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                let mut header_bytes = 0;
                loop {
                    let line = self
                        .read_next_line(MAX_HEADER_LINE)
                        .map_err(|e| too_large_or(e, 431))?;

                    if line.is_empty() {
                        break;
                    };
                    header_bytes += line.len();
                    if header_bytes > MAX_HEADER_BYTES || headers.len() >= MAX_HEADERS {
                        return Err(ReadError::TooLarge(431));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        // jack patch: counted until the answer is written
        let writer = Answer::new(self.sink.next().unwrap(), self.state.clone());

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::BadContentLength => ReadError::WrongHeader(version),
            }
        })?;

        let mut request = request;
        request.set_abort_handle(self.abort_handle.clone());
        // jack patch: the head is read; a body still on the wire comes back
        // here when the request is dropped.
        if let Some(state) = &self.state {
            state.answering().map_err(|_| ReadError::Close)?;
        }
        if request.body_is_streamed() {
            let (to, returned) = channel();
            request.return_body_to(to);
            self.unread_body = Some(returned);
        }

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(400));
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(400));
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(408))
                        .with_header("Connection: close".parse::<crate::Header>().unwrap());
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(417));
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::TooLarge(code)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(code))
                        .with_header("Connection: close".parse::<crate::Header>().unwrap());
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // the rest of the request is unread: close
                }

                Err(ReadError::ReadIoError(_)) | Err(ReadError::Close) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let writer = self.sink.next().unwrap();
                let response = Response::from_string(
                    "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                )
                .with_status_code(StatusCode(505));
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                continue;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// jack patch: reads and drops what is left of a body, with a fixed
/// buffer, at most `DRAIN_CAP` bytes; whether the body ended.
fn drain(body: &mut dyn Read) -> bool {
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    loop {
        match body.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                total += n as u64;
                if total > DRAIN_CAP {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// jack patch: a request's writer, counted in the connection's state from
/// the head read until the answer is written (dropped): a connection with an
/// answer in progress is not idle.
struct Answer<W: Write> {
    inner: W,
    state: Option<Arc<ConnState>>,
}

impl<W: Write> Answer<W> {
    fn new(inner: W, state: Option<Arc<ConnState>>) -> Answer<W> {
        if let Some(s) = &state {
            s.request_read();
        }
        Answer { inner, state }
    }
}

impl<W: Write> Write for Answer<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for Answer<W> {
    fn drop(&mut self) {
        if let Some(s) = &self.state {
            s.answered();
        }
    }
}

/// jack patch: a line over its limit becomes `TooLarge(code)`.
fn too_large_or(e: IoError, code: u16) -> ReadError {
    if e.kind() == ErrorKind::OutOfMemory {
        ReadError::TooLarge(code)
    } else {
        ReadError::ReadIoError(e)
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
