//! Responses and their bounded body readers.

use std::fmt;
use std::io::{self, Read, Write};

use ureq::http;
use url::Url;

use super::HttpError;
use crate::limits::{LimitExceeded, LimitKind};

/// A response: status, final URL, headers, and the body still to read.
pub struct Response {
    pub(super) status: u16,
    pub(super) url: Url,
    pub(super) headers: http::HeaderMap,
    pub(super) body: ureq::Body,
    pub(super) timeout_secs: u64,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The URL that answered, after redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The first value of header `name` (case-insensitive), when it is
    /// valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` that is valid text, in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Content-Length`, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The response itself when its status is 2xx, else
    /// [`HttpError::Status`].
    pub fn error_for_status(self) -> Result<Response, HttpError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(self.status_error())
        }
    }

    /// [`HttpError::Status`] for this response.
    pub fn status_error(&self) -> HttpError {
        HttpError::Status {
            url: self.url.to_string(),
            status: self.status,
            reason: http::StatusCode::from_u16(self.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .to_owned(),
        }
    }

    /// The body as a stream of at most `max` bytes; `kind` names the bound
    /// in the error (a [`HttpError::BodyTooLarge`], wrapped in the
    /// `io::Error` the reader returns; [`crate::limit_kind`] finds it).
    /// A `Content-Length` over `max` fails before anything is read.
    pub fn into_reader(self, max: u64, kind: LimitKind) -> Result<BodyReader, HttpError> {
        if self.content_length().is_some_and(|len| len > max) {
            return Err(HttpError::BodyTooLarge {
                url: self.url.to_string(),
                max,
                source: LimitExceeded::new(kind),
            });
        }
        let announced = self.content_length();
        Ok(BodyReader {
            announced,
            // One byte more than the bound, to tell "exactly max" from
            // "more".
            inner: self.body.into_with_config().limit(max + 1).reader(),
            url: self.url,
            read: 0,
            max,
            kind,
            timeout_secs: self.timeout_secs,
        })
    }

    /// Reads the whole body into memory, at most `max` bytes.
    pub fn read_to_vec(self, max: u64, kind: LimitKind) -> Result<Vec<u8>, HttpError> {
        let mut reader = self.into_reader(max, kind)?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| reader.error(e))?;
        Ok(out)
    }

    /// Copies the body to `out`, at most `max` bytes; returns the count.
    pub fn copy_to(self, out: &mut dyn Write, max: u64, kind: LimitKind) -> Result<u64, HttpError> {
        let mut reader = self.into_reader(max, kind)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(reader.error(e)),
            };
            out.write_all(&buf[..n])
                .map_err(|source| HttpError::Write {
                    url: reader.url.to_string(),
                    source,
                })?;
            total += n as u64;
        }
    }
}

/// A response body being read, bounded (see [`Response::into_reader`]).
pub struct BodyReader {
    inner: ureq::BodyReader<'static>,
    /// The `Content-Length`, when sent (for the report of a cut body).
    announced: Option<u64>,
    url: Url,
    read: u64,
    max: u64,
    kind: LimitKind,
    timeout_secs: u64,
}

impl fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyReader")
            .field("url", &self.url.as_str())
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl BodyReader {
    /// The URL being read.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Turns an error of [`Read::read`] back into the [`HttpError`] it
    /// carries, or wraps it as [`HttpError::Read`].
    pub fn error(&self, err: io::Error) -> HttpError {
        if err
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<HttpError>().is_some())
        {
            if let Some(inner) = err.into_inner() {
                if let Ok(http) = inner.downcast::<HttpError>() {
                    return *http;
                }
            }
            // Unreachable: the error was checked to hold an HttpError.
            return HttpError::Read {
                url: self.url.to_string(),
                source: io::Error::other("lost error"),
            };
        }
        HttpError::Read {
            url: self.url.to_string(),
            source: err,
        }
    }

    fn cut(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            HttpError::Cut {
                url: self.url.to_string(),
                read: self.read,
                announced: self.announced,
            },
        )
    }

    fn too_large(&self) -> io::Error {
        io::Error::other(HttpError::BodyTooLarge {
            url: self.url.to_string(),
            max: self.max,
            source: LimitExceeded::new(self.kind),
        })
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                if self.read > self.max {
                    return Err(self.too_large());
                }
                Ok(n)
            }
            Err(e) => Err(self.map_read_error(e)),
        }
    }
}

impl BodyReader {
    /// ureq reports its own limit and timeouts as `io::Error`s carrying a
    /// `ureq::Error`; they become this module's errors (with the bound).
    fn map_read_error(&self, err: io::Error) -> io::Error {
        let ureq_err = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>());
        match ureq_err {
            Some(ureq::Error::BodyExceedsLimit(_)) => self.too_large(),
            Some(ureq::Error::Timeout(_)) => io::Error::other(HttpError::TimedOut {
                url: self.url.to_string(),
                secs: self.timeout_secs,
                source: LimitExceeded::new(LimitKind::HttpTimeout),
            }),
            _ if err.kind() == io::ErrorKind::TimedOut
                || err.kind() == io::ErrorKind::WouldBlock =>
            {
                io::Error::other(HttpError::TimedOut {
                    url: self.url.to_string(),
                    secs: self.timeout_secs,
                    source: LimitExceeded::new(LimitKind::HttpTimeout),
                })
            }
            // ureq's "Peer disconnected": say how much of what arrived.
            Some(ureq::Error::Io(inner)) if inner.kind() == io::ErrorKind::UnexpectedEof => {
                self.cut()
            }
            None if err.kind() == io::ErrorKind::UnexpectedEof => self.cut(),
            // Anything else keeps its own words, with the URL.
            _ => io::Error::new(
                err.kind(),
                HttpError::Read {
                    url: self.url.to_string(),
                    source: err,
                },
            ),
        }
    }
}
