//! Where connections go and whom they trust: CA roots and host overrides.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ureq::http;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::HttpError;

/// The certificate authorities HTTPS servers are checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaRoots {
    /// PEM files, each with one or more certificates (a bundle such as
    /// Debian's `/etc/ssl/certs/ca-certificates.crt`, `$SSL_CERT_FILE`,
    /// or single CAs); together they are the trusted roots. Empty: the
    /// Mozilla roots compiled into the binary (`webpki-roots`).
    pub files: Vec<PathBuf>,
}

/// One host override, as curl's `--resolve HOST:PORT:ADDR` (same port)
/// and `--connect-to HOST:PORT:ADDR:PORT`: connections for `host:port`
/// go to `addr` instead. The URL, the `Host` header, SNI and the
/// certificate check keep `host`, so an override cannot weaken TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// The host name as it appears in URLs (lowercase).
    pub host: String,
    /// The port of the URLs (443 for https without one).
    pub port: u16,
    /// Where to connect instead.
    pub addr: SocketAddr,
}

impl ConnectTo {
    /// Parses curl's `--resolve HOST:PORT:ADDR`; ADDR is an IP address
    /// (IPv6 in brackets), the port stays the same.
    pub fn parse_resolve(text: &str) -> Result<ConnectTo, HttpError> {
        let bad = || HttpError::BadOverride {
            text: text.to_owned(),
            form: "HOST:PORT:ADDR (ADDR an IP address)",
        };
        let mut parts = text.splitn(3, ':');
        let (host, port, addr) = match (parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(p), Some(a)) => (h, p, a),
            _ => return Err(bad()),
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let ip = parse_ip(addr).ok_or_else(bad)?;
        Self::new(host, port, SocketAddr::new(ip, port)).ok_or_else(bad)
    }

    /// Parses curl's `--connect-to HOST:PORT:ADDR:PORT`; ADDR is an IP
    /// address (IPv6 in brackets).
    pub fn parse_connect_to(text: &str) -> Result<ConnectTo, HttpError> {
        let bad = || HttpError::BadOverride {
            text: text.to_owned(),
            form: "HOST:PORT:ADDR:PORT (ADDR an IP address)",
        };
        let mut parts = text.splitn(3, ':');
        let (host, port, rest) = match (parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(p), Some(r)) => (h, p, r),
            _ => return Err(bad()),
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let (addr, to_port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let to_port: u16 = to_port.parse().map_err(|_| bad())?;
        let ip = parse_ip(addr).ok_or_else(bad)?;
        Self::new(host, port, SocketAddr::new(ip, to_port)).ok_or_else(bad)
    }

    fn new(host: &str, port: u16, addr: SocketAddr) -> Option<ConnectTo> {
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        valid.then(|| ConnectTo {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    inner.parse().ok()
}

/// The host overrides as a `ureq` resolver; other hosts resolve as usual.
#[derive(Debug)]
pub(super) struct OverrideResolver {
    pub(super) overrides: Vec<ConnectTo>,
    pub(super) fallback: DefaultResolver,
}

impl Resolver for OverrideResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or_else(|| {
            if uri.scheme_str() == Some("http") {
                80
            } else {
                443
            }
        });
        if let Some(o) = self
            .overrides
            .iter()
            .find(|o| o.host == host && o.port == port)
        {
            let mut addrs = self.empty();
            addrs.push(o.addr);
            return Ok(addrs);
        }
        self.fallback.resolve(uri, config, timeout)
    }
}

/// The certificates of a PEM file; a file without any is an error (a
/// wrong path should not silently trust nothing).
pub(super) fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<ureq::tls::Certificate<'static>>, HttpError> {
    let bad = |reason: String| HttpError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        // Keys and other PEM sections in a bundle are not roots.
        if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}
