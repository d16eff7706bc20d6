//! `acido trust`: adding keys to the trust store after the user reviewed
//! their fingerprints, listing and removing them (issue 13).
//!
//! Keys come from files (armoured or binary, one or several certificates
//! per file), from `https://` URLs, or from the `ac-discovery-pubkeys`
//! tags discovery finds for the prefix (keys on the prefix's own host
//! only). Each certificate is reviewed and stored on its own, in its own
//! file, so a multi-key file never smuggles in a key the user did not see
//! (rkt trusted only the first key but showed all).

use std::path::{Path, PathBuf};

use acido_plumbing::discovery::{self, DiscoveryError};
use acido_plumbing::http::{Client, HttpError, Url};
use acido_plumbing::trust::keystore::{self, Keystore, Scope, StoredKey};
use acido_plumbing::trust::{KeyError, KeystoreError, PublicKey};

/// Errors of the trust workflows.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file or URL holds no usable key.
    #[error("{source_name}: {source}")]
    Key {
        /// The file or URL.
        source_name: String,
        /// Why.
        source: KeyError,
    },
    /// A key URL could not be downloaded.
    #[error("fetching a key: {source}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        source: HttpError,
    },
    /// A key argument that is neither a file nor an https URL.
    #[error("{input:?}: {reason}")]
    BadSource {
        /// The argument.
        input: String,
        /// Why.
        reason: String,
    },
    /// Discovery found no key for the prefix.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// A URL to fetch but no HTTP client was given.
    #[error("key {url}: no HTTP client to fetch it with")]
    NoClient {
        /// The URL.
        url: String,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] KeystoreError),
    /// The review callback failed (e.g. the terminal went away).
    #[error("fingerprint review: {0}")]
    Review(std::io::Error),
}

/// Where the trust store lives: the user's root first (it takes
/// precedence), then the system's.
#[derive(Debug, Clone)]
pub struct TrustRoots {
    /// The user's root (`~/.config/acido`).
    pub user: PathBuf,
    /// The system root (`/etc/acido`).
    pub system: PathBuf,
}

impl TrustRoots {
    /// The keystore over both roots, user's first.
    pub fn keystore(&self) -> Keystore {
        Keystore::new(vec![self.user.clone(), self.system.clone()])
    }
}

/// Where a key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A local file.
    File(PathBuf),
    /// An `https://` URL (or `http://` when the client allows it).
    Url(Url),
}

impl KeySource {
    /// Reads a `KEY` argument: a URL when it has a scheme, else a file.
    pub fn parse(input: &str) -> Result<KeySource, TrustError> {
        if input.contains("://") {
            return Url::parse(input)
                .map(KeySource::Url)
                .map_err(|e| TrustError::BadSource {
                    input: input.to_owned(),
                    reason: format!("not a URL: {e}"),
                });
        }
        Ok(KeySource::File(PathBuf::from(input)))
    }

    /// The sources discovery publishes for `prefix`
    /// (`ac-discovery-pubkeys`, spec/appc-discovery.md §1).
    pub fn discover(client: &Client, prefix: &str) -> Result<Vec<KeySource>, TrustError> {
        let found = discovery::discover_keys(client, prefix)?;
        Ok(found.found.into_iter().map(KeySource::Url).collect())
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "{}", path.display()),
            KeySource::Url(url) => write!(f, "{url}"),
        }
    }
}

/// One key offered for trust, shown to the user before it is stored.
#[derive(Debug)]
pub struct Review<'a> {
    /// Where it came from.
    pub source: &'a KeySource,
    /// The certificate.
    pub key: &'a PublicKey,
    /// What it would be trusted for.
    pub scope: &'a Scope,
}

/// What happened to one key.
#[derive(Debug)]
pub enum Outcome {
    /// Stored at this path.
    Added {
        /// The key's fingerprint.
        fingerprint: String,
        /// Its file in the store.
        path: PathBuf,
    },
    /// The user declined it.
    Declined {
        /// The key's fingerprint.
        fingerprint: String,
    },
}

/// Reads every key of every source first (so a bad file or URL stores
/// nothing), then asks `review` about each key in order and stores the
/// accepted ones under `root` for `scope`. `client` fetches URL sources.
pub fn trust_keys(
    root: &Path,
    scope: &Scope,
    sources: &[KeySource],
    client: Option<&Client>,
    review: &mut dyn FnMut(&Review<'_>) -> std::io::Result<bool>,
) -> Result<Vec<Outcome>, TrustError> {
    let mut keys = Vec::new();
    for source in sources {
        let bytes = read_source(source, client)?;
        let parsed = PublicKey::parse_all(&bytes).map_err(|e| TrustError::Key {
            source_name: source.to_string(),
            source: e,
        })?;
        keys.extend(parsed.into_iter().map(|k| (source, k)));
    }
    let mut outcomes = Vec::new();
    for (source, key) in &keys {
        let accepted = review(&Review { source, key, scope }).map_err(TrustError::Review)?;
        let fingerprint = key.fingerprint();
        outcomes.push(if accepted {
            let path = keystore::add(root, scope, key)?;
            Outcome::Added { fingerprint, path }
        } else {
            Outcome::Declined { fingerprint }
        });
    }
    Ok(outcomes)
}

/// The bytes of a key source: a file, or a URL answered with 200 within
/// the page-size bound.
fn read_source(source: &KeySource, client: Option<&Client>) -> Result<Vec<u8>, TrustError> {
    match source {
        KeySource::File(path) => std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.clone(),
            source,
        }),
        KeySource::Url(url) => {
            let client = client.ok_or_else(|| TrustError::NoClient {
                url: url.to_string(),
            })?;
            let http_err = |source| TrustError::Http {
                url: url.to_string(),
                source,
            };
            client.get_page(url).map_err(http_err)
        }
    }
}

/// Every file of the store, user's root first.
pub fn list(roots: &TrustRoots) -> Result<Vec<StoredKey>, TrustError> {
    Ok(roots.keystore().list()?)
}

/// Removes the key `fingerprint` from every scope under `root`.
pub fn remove(root: &Path, fingerprint: &str) -> Result<Vec<PathBuf>, TrustError> {
    Ok(keystore::remove(root, fingerprint)?)
}
