//! The crate's one HTTP client: blocking HTTP/1.1 over TLS (rustls through
//! `ureq`, no async runtime), for appc discovery and `acido fetch` and for
//! the OCI registry client.
//!
//! It lives in plumbing, on the row above the leaves, because both users
//! are library code (discovery and fetch in porcelain, the registry client
//! wherever it lands) and because every bound it enforces is a
//! [`crate::limits::Limits`] field: nothing above `limits` is needed, so
//! any module may use it. Like the rest of the crate it reads no
//! environment: the caller passes the CA files (`SSL_CERT_FILE`, the
//! system bundle, extra CAs) and the host overrides in [`HttpConfig`].
//!
//! What it adds to `ureq`:
//!
//! - **Redirects** are followed here, not by `ureq`, so that each hop is
//!   checked: at most [`Limits::max_redirects`] of them, a loop (a URL seen
//!   before) refused at once, no `https` → `http` downgrade unless plain
//!   HTTP is allowed, and credentials asked from the [`Auth`] hook per hop,
//!   so a registry token never follows a redirect to a blob host.
//!   Only `GET` and `HEAD` follow redirects (their bodies are empty, so a
//!   request can be sent again); other methods get the 3xx response.
//! - **Schemes**: `https` always, `http` only when
//!   [`HttpConfig::allow_http`] says so (`--insecure-options=http`).
//! - **Bodies** both ways are streams: a request body may be a reader with
//!   or without a length, a response body is read through a bounded reader
//!   ([`Response::into_reader`]) or copied to a writer; a body over its
//!   bound is an error carrying a [`LimitExceeded`].
//! - **Timeouts** are idle timeouts ([`Limits::http_timeout_secs`]): the
//!   connect and each read or write, so a large blob that keeps moving is
//!   never cut, and a silent server is.
//! - **Host overrides** ([`ConnectTo`]), curl's `--resolve` and
//!   `--connect-to`: the connection goes to another address while TLS still
//!   checks the certificate of the name in the URL.
//! - **Errors** name the URL and say what failed ([`HttpError`]).
//!
//! Content encodings are not negotiated: bodies arrive as the server
//! stores them, which is what a signature or a digest is computed over.
//!
//! Files: `mod.rs` (errors, configuration, requests, the client and its
//! redirect loop), `response.rs` (responses and bounded body readers),
//! `connect.rs` (CA roots and host overrides).

mod connect;
mod response;

pub use connect::{CaRoots, ConnectTo};
pub use response::{BodyReader, Response};

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ureq::http;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::DefaultConnector;
pub use url::Url;

use connect::{read_ca_file, OverrideResolver};

use crate::limits::{LimitExceeded, LimitKind, Limits};

/// Errors of the HTTP client. Every variant names the URL (or file) it is
/// about.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A URL that does not parse.
    #[error("{url:?} is not a URL: {reason}")]
    BadUrl {
        /// The text given.
        url: String,
        /// Why it is not one.
        reason: String,
    },
    /// A scheme other than `https` (or `http` when allowed).
    #[error("{url}: scheme {scheme:?} is not allowed: only https{}", if *.allow_http { " and http" } else { "" })]
    Scheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
        /// Whether plain HTTP was allowed.
        allow_http: bool,
    },
    /// A plain `http` URL while only HTTPS is allowed.
    #[error("{url}: plain HTTP is not allowed, only https")]
    PlainHttp {
        /// The URL.
        url: String,
    },
    /// An HTTPS URL redirected to plain HTTP while only HTTPS is allowed.
    #[error("{from} redirects to {to}: a downgrade from https to plain HTTP is refused")]
    Downgrade {
        /// The URL that redirected.
        from: String,
        /// Where it pointed.
        to: String,
    },
    /// More redirects than the bound.
    #[error("{url}: more than {max} redirects: {source}")]
    TooManyRedirects {
        /// The URL first asked.
        url: String,
        /// The bound.
        max: usize,
        /// Names the bound.
        source: LimitExceeded,
    },
    /// A redirect back to a URL already visited.
    #[error("redirect loop: {from} redirects to {to}, visited before")]
    RedirectLoop {
        /// The URL that redirected.
        from: String,
        /// The URL seen before.
        to: String,
    },
    /// A 3xx without a usable `Location`.
    #[error("{url}: HTTP {status} redirect without a valid Location header")]
    BadRedirect {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// A response status the caller did not accept.
    #[error("{url}: HTTP {status}{}", if .reason.is_empty() { String::new() } else { format!(" {}", .reason) })]
    Status {
        /// The (final) URL.
        url: String,
        /// The status code.
        status: u16,
        /// Its reason phrase, when it has a standard one.
        reason: String,
    },
    /// A connection, TLS or protocol failure.
    #[error("{url}: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// What `ureq` reported.
        source: ureq::Error,
    },
    /// The server stalled longer than the timeout.
    #[error("{url}: no progress for {secs} s: {source}")]
    TimedOut {
        /// The URL.
        url: String,
        /// The timeout.
        secs: u64,
        /// Names the bound.
        source: LimitExceeded,
    },
    /// A response body larger than its bound.
    #[error("{url}: the response body is larger than {max} bytes: {source}")]
    BodyTooLarge {
        /// The URL.
        url: String,
        /// The bound.
        max: u64,
        /// Names the bound.
        source: LimitExceeded,
    },
    /// The server closed the connection before the body's end: before
    /// the `Content-Length` it announced, or inside a chunked body.
    #[error("{url}: the connection closed after {read} bytes of the response{}",
        announced.map(|n| format!(", of {n} announced")).unwrap_or_default())]
    Cut {
        /// The URL.
        url: String,
        /// Bytes of the body that arrived.
        read: u64,
        /// The `Content-Length`, when the server sent one.
        announced: Option<u64>,
    },
    /// Reading a response body failed.
    #[error("{url}: reading the response: {source}")]
    Read {
        /// The URL.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// Writing a response body out failed.
    #[error("{url}: writing the response: {source}")]
    Write {
        /// The URL.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// A CA file that cannot be read or holds no certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `--resolve` or `--connect-to` value that does not parse.
    #[error("{text:?} is not {form}")]
    BadOverride {
        /// The text given.
        text: String,
        /// The expected form.
        form: &'static str,
    },
    /// A header name or value `http` refuses.
    #[error("{url}: bad request header {name:?}")]
    BadHeader {
        /// The URL.
        url: String,
        /// The header name.
        name: String,
    },
    /// The [`Auth`] hook failed.
    #[error("{url}: authentication: {message}")]
    Auth {
        /// The URL that asked for credentials.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// Parses `text` as an absolute URL.
pub fn parse_url(text: &str) -> Result<Url, HttpError> {
    Url::parse(text).map_err(|e| HttpError::BadUrl {
        url: text.to_owned(),
        reason: e.to_string(),
    })
}

/// How the client connects: roots, overrides, bounds.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The trusted certificate authorities.
    pub ca_roots: CaRoots,
    /// Host overrides (`--resolve`, `--connect-to`).
    pub connect_to: Vec<ConnectTo>,
    /// Whether plain `http` URLs (and https → http redirects) are allowed.
    pub allow_http: bool,
    /// A proxy URL (`http://host:port`, `socks5://…`), or none.
    pub proxy: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Most redirects followed per request ([`Limits::max_redirects`]).
    pub max_redirects: usize,
    /// The idle timeout ([`Limits::http_timeout_secs`]).
    pub timeout_secs: u64,
    /// The bound for bodies read into memory ([`Limits::max_page_size`]),
    /// for callers to pass to [`Response::read_to_vec`].
    pub max_page_size: u64,
    /// The bound for bodies streamed to disk
    /// ([`Limits::max_download_size`]).
    pub max_download_size: u64,
}

impl HttpConfig {
    /// The defaults with the bounds of `limits`: Mozilla roots, no
    /// overrides, HTTPS only, no proxy.
    pub fn new(limits: &Limits) -> HttpConfig {
        HttpConfig {
            ca_roots: CaRoots::default(),
            connect_to: Vec::new(),
            allow_http: false,
            proxy: None,
            user_agent: concat!("acido/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_redirects: limits.max_redirects,
            timeout_secs: limits.http_timeout_secs,
            max_page_size: limits.max_page_size,
            max_download_size: limits.max_download_size,
        }
    }
}

/// Request methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    fn as_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Head => http::Method::HEAD,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        }
    }
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes in memory (sent with their length; can be sent again after an
    /// authentication challenge).
    Bytes(Cow<'a, [u8]>),
    /// A stream, sent with `Content-Length` when `length` is known, else
    /// chunked; it can be sent only once.
    Reader {
        /// The data.
        reader: Box<dyn Read + Send + 'a>,
        /// Its length in bytes, when known.
        length: Option<u64>,
    },
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Reader { length, .. } => write!(f, "Reader {{ length: {length:?} }}"),
        }
    }
}

/// The authentication hook: a registry client implements it to answer
/// `401` challenges (bearer tokens, basic credentials).
pub trait Auth {
    /// The `Authorization` value for a request to `url`, if any. Asked
    /// for every hop of a redirect chain, so credentials go only to the
    /// hosts they are for.
    fn authorization(&self, url: &Url) -> Option<String>;

    /// Called once per request on a `401` whose body can be sent again,
    /// with the `WWW-Authenticate` values. May fetch a token (with
    /// `client`) and remember it; `Ok(true)` sends the request again.
    fn challenge(
        &self,
        client: &Client,
        url: &Url,
        www_authenticate: &[String],
    ) -> Result<bool, HttpError>;
}

/// One request: method, URL, headers, body, and the optional auth hook.
#[derive(Debug)]
pub struct Request<'a> {
    method: Method,
    url: Url,
    headers: Vec<(String, String)>,
    body: Body<'a>,
    auth: Option<&'a dyn Auth>,
}

impl fmt::Debug for dyn Auth + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Auth")
    }
}

impl<'a> Request<'a> {
    /// A request without body or headers.
    pub fn new(method: Method, url: Url) -> Request<'a> {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            auth: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: Url) -> Request<'a> {
        Request::new(Method::Get, url)
    }

    /// Adds a header (`Authorization` belongs in [`Request::auth`]).
    pub fn header(mut self, name: &str, value: &str) -> Request<'a> {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body<'a>) -> Request<'a> {
        self.body = body;
        self
    }

    /// Sets the authentication hook.
    pub fn auth(mut self, auth: &'a dyn Auth) -> Request<'a> {
        self.auth = Some(auth);
        self
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// The client: one connection pool, the TLS roots, the bounds.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    config: HttpConfig,
}

impl Client {
    /// A client for `config`; reads and checks the CA files now, so a bad
    /// one is reported before any request.
    pub fn new(config: HttpConfig) -> Result<Client, HttpError> {
        let roots = if config.ca_roots.files.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            let mut certs = Vec::new();
            for path in &config.ca_roots.files {
                certs.extend(read_ca_file(path)?);
            }
            ureq::tls::RootCerts::Specific(Arc::new(certs))
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let proxy = match &config.proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| HttpError::BadUrl {
                url: p.clone(),
                reason: format!("not a proxy URL: {e}"),
            })?),
            None => None,
        };
        let timeout = Some(Duration::from_secs(config.timeout_secs.max(1)));
        let agent_config = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(proxy)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(config.user_agent.as_str())
            .timeout_connect(timeout)
            .timeout_resolve(timeout)
            .timeout_per_read(timeout)
            .timeout_per_write(timeout)
            .build();
        let resolver = OverrideResolver {
            overrides: config.connect_to.clone(),
            fallback: DefaultResolver::default(),
        };
        let agent = ureq::Agent::with_parts(agent_config, DefaultConnector::default(), resolver);
        Ok(Client { agent, config })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// `GET url`, redirects followed.
    pub fn get(&self, url: &Url) -> Result<Response, HttpError> {
        self.send(Request::get(url.clone()))
    }

    /// `GET url` for a small document held in memory (a discovery page, a
    /// signature, a key): only 200 counts, as the discovery spec asks, so
    /// any other status is [`HttpError::Status`] (the only way this returns
    /// it, which callers rely on to tell "not there" from a failed
    /// transfer); the body is read whole, at most
    /// [`HttpConfig::max_page_size`] bytes, so a hostile server cannot
    /// make it grow without bound.
    pub fn get_page(&self, url: &Url) -> Result<Vec<u8>, HttpError> {
        let response = self.get(url)?;
        if response.status() != 200 {
            return Err(response.status_error());
        }
        response.read_to_vec(self.config.max_page_size, LimitKind::PageSize)
    }

    /// Checks that `url` may be requested: https, or http when allowed.
    pub fn check_scheme(&self, url: &Url) -> Result<(), HttpError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.config.allow_http => Ok(()),
            "http" => Err(HttpError::PlainHttp {
                url: url.to_string(),
            }),
            other => Err(HttpError::Scheme {
                url: url.to_string(),
                scheme: other.to_owned(),
                allow_http: self.config.allow_http,
            }),
        }
    }

    /// Sends `request`, following redirects for `GET` and `HEAD` and
    /// answering one `401` through the request's [`Auth`] hook. Any status
    /// is returned as a [`Response`]; transport failures, bounds and
    /// refused redirects are errors.
    pub fn send(&self, request: Request<'_>) -> Result<Response, HttpError> {
        let Request {
            method,
            url: first,
            headers,
            mut body,
            auth,
        } = request;
        let follows = matches!(method, Method::Get | Method::Head);
        let mut url = first.clone();
        let mut visited = vec![first.clone()];
        let mut challenged = false;
        self.check_scheme(&url)?;
        loop {
            let replayable = !matches!(body, Body::Reader { .. });
            // Bytes stay for a resend; a reader is consumed by this send.
            let kept = match &body {
                Body::Bytes(b) => Body::Bytes(b.clone()),
                _ => Body::Empty,
            };
            let sent_body = std::mem::replace(&mut body, kept);
            let response = self.send_once(method, &url, &headers, sent_body, auth)?;
            let status = response.status;
            if status == 401 && !challenged && replayable {
                if let Some(auth) = auth {
                    challenged = true;
                    let challenges = response.headers("www-authenticate");
                    if auth.challenge(self, &url, &challenges)? {
                        continue;
                    }
                }
            }
            if follows && matches!(status, 301 | 302 | 303 | 307 | 308) {
                let next = response
                    .header("location")
                    .and_then(|loc| url.join(loc).ok())
                    .ok_or_else(|| HttpError::BadRedirect {
                        url: url.to_string(),
                        status,
                    })?;
                if visited.contains(&next) {
                    return Err(HttpError::RedirectLoop {
                        from: url.to_string(),
                        to: next.to_string(),
                    });
                }
                if visited.len() > self.config.max_redirects {
                    return Err(HttpError::TooManyRedirects {
                        url: first.to_string(),
                        max: self.config.max_redirects,
                        source: LimitExceeded::new(LimitKind::Redirects),
                    });
                }
                if url.scheme() == "https" && next.scheme() == "http" && !self.config.allow_http {
                    return Err(HttpError::Downgrade {
                        from: url.to_string(),
                        to: next.to_string(),
                    });
                }
                self.check_scheme(&next)?;
                visited.push(next.clone());
                url = next;
                continue;
            }
            return Ok(response);
        }
    }

    fn send_once(
        &self,
        method: Method,
        url: &Url,
        headers: &[(String, String)],
        body: Body<'_>,
        auth: Option<&dyn Auth>,
    ) -> Result<Response, HttpError> {
        let mut builder = http::Request::builder()
            .method(method.as_http())
            .uri(url.as_str());
        for (name, value) in headers {
            let name_ok = http::HeaderName::try_from(name.as_str()).is_ok();
            let value_ok = http::HeaderValue::try_from(value.as_str()).is_ok();
            if !name_ok || !value_ok {
                return Err(HttpError::BadHeader {
                    url: url.to_string(),
                    name: name.clone(),
                });
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(value) = auth.and_then(|a| a.authorization(url)) {
            if http::HeaderValue::try_from(value.as_str()).is_err() {
                return Err(HttpError::BadHeader {
                    url: url.to_string(),
                    name: "Authorization".to_owned(),
                });
            }
            builder = builder.header("authorization", value.as_str());
        }
        let transport = |source: ureq::Error| self.transport_error(url, source);
        let result = match body {
            Body::Empty => {
                let request = builder.body(()).map_err(|e| transport(e.into()))?;
                self.agent.run(request)
            }
            Body::Bytes(bytes) => {
                let request = builder
                    .body(bytes.into_owned())
                    .map_err(|e| transport(e.into()))?;
                self.agent.run(request)
            }
            Body::Reader { mut reader, length } => {
                if let Some(length) = length {
                    builder = builder.header("content-length", length.to_string());
                }
                let request = builder
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map_err(|e| transport(e.into()))?;
                self.agent.run(request)
            }
        };
        let response = result.map_err(transport)?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            url: url.clone(),
            headers: parts.headers,
            body,
            timeout_secs: self.config.timeout_secs,
        })
    }

    fn transport_error(&self, url: &Url, source: ureq::Error) -> HttpError {
        match source {
            ureq::Error::Timeout(_) => HttpError::TimedOut {
                url: url.to_string(),
                secs: self.config.timeout_secs,
                source: LimitExceeded::new(LimitKind::HttpTimeout),
            },
            ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => HttpError::TimedOut {
                url: url.to_string(),
                secs: self.config.timeout_secs,
                source: LimitExceeded::new(LimitKind::HttpTimeout),
            },
            source => HttpError::Transport {
                url: url.to_string(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_like_curl() {
        let r = ConnectTo::parse_resolve("Example.com:443:127.0.0.1").unwrap();
        assert_eq!(r.host, "example.com");
        assert_eq!(r.port, 443);
        assert_eq!(r.addr, "127.0.0.1:443".parse().unwrap());
        let c = ConnectTo::parse_connect_to("example.com:443:[::1]:8443").unwrap();
        assert_eq!(c.addr, "[::1]:8443".parse().unwrap());
        for bad in [
            "example.com",
            "example.com:443",
            "example.com:x:127.0.0.1",
            "example.com:443:localhost",
            ":443:127.0.0.1",
            "a/b:443:127.0.0.1",
        ] {
            assert!(ConnectTo::parse_resolve(bad).is_err(), "{bad}");
        }
        assert!(ConnectTo::parse_connect_to("example.com:443:127.0.0.1").is_err());
    }

    fn client(allow_http: bool) -> Client {
        let mut config = HttpConfig::new(&Limits::default());
        config.allow_http = allow_http;
        Client::new(config).unwrap()
    }

    #[test]
    fn schemes_other_than_https_are_refused_before_any_connection() {
        let https_only = client(false);
        let url = parse_url("http://127.0.0.1:9/x").unwrap();
        assert!(matches!(
            https_only.get(&url),
            Err(HttpError::PlainHttp { .. })
        ));
        for other in ["file:///etc/passwd", "ftp://127.0.0.1/x", "hdfs://h/x"] {
            let url = parse_url(other).unwrap();
            let err = client(true).get(&url).unwrap_err();
            assert!(matches!(err, HttpError::Scheme { .. }), "{other}: {err}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut config = HttpConfig::new(&Limits::default());
        config.ca_roots.files = vec![path];
        let err = Client::new(config).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
