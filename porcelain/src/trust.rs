//! `acido trust`: adding keys to the trust store after the user reviewed
//! their fingerprints, listing and removing them (issue 13).
//!
//! Keys come from files only for now (armoured or binary, one or several
//! certificates per file); fetching them over HTTPS or by discovery comes
//! with the HTTP module. Each certificate is reviewed and stored on its
//! own, in its own file, so a multi-key file never smuggles in a key the
//! user did not see (rkt trusted only the first key but showed all).

use std::path::{Path, PathBuf};

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
    /// A key file holds no usable key.
    #[error("{}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyError,
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

/// One key offered for trust, shown to the user before it is stored.
#[derive(Debug)]
pub struct Review<'a> {
    /// The file it came from.
    pub file: &'a Path,
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

/// Reads every key of every file first (so a bad file stores nothing),
/// then asks `review` about each key in order and stores the accepted
/// ones under `root` for `scope`.
pub fn trust_files(
    root: &Path,
    scope: &Scope,
    files: &[PathBuf],
    review: &mut dyn FnMut(&Review<'_>) -> std::io::Result<bool>,
) -> Result<Vec<Outcome>, TrustError> {
    let mut keys = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| TrustError::Read {
            path: file.clone(),
            source,
        })?;
        let parsed = PublicKey::parse_all(&bytes).map_err(|source| TrustError::Key {
            path: file.clone(),
            source,
        })?;
        keys.extend(parsed.into_iter().map(|k| (file, k)));
    }
    let mut outcomes = Vec::new();
    for (file, key) in &keys {
        let accepted = review(&Review { file, key, scope }).map_err(TrustError::Review)?;
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

/// Every file of the store, user's root first.
pub fn list(roots: &TrustRoots) -> Result<Vec<StoredKey>, TrustError> {
    Ok(roots.keystore().list()?)
}

/// Removes the key `fingerprint` from every scope under `root`.
pub fn remove(root: &Path, fingerprint: &str) -> Result<Vec<PathBuf>, TrustError> {
    Ok(keystore::remove(root, fingerprint)?)
}
