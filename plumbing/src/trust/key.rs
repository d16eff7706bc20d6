//! An OpenPGP certificate as read from a key file, armoured or binary.

use pgp::composed::{ArmorOptions, Deserializable, SignedPublicKey};
use pgp::types::KeyDetails;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not an OpenPGP public key (armoured or binary).
    #[error("not an OpenPGP public key: {message}")]
    Parse {
        /// rPGP's description of the problem.
        message: String,
    },
    /// The input parsed but held no key.
    #[error("no OpenPGP public key found")]
    Empty,
    /// Writing the key back out failed.
    #[error("cannot armour key {fingerprint}: {message}")]
    Armor {
        /// The key's fingerprint.
        fingerprint: String,
        /// rPGP's description of the problem.
        message: String,
    },
}

/// One OpenPGP certificate: a primary key with its user ids and subkeys.
#[derive(Debug, Clone)]
pub struct PublicKey {
    inner: SignedPublicKey,
}

impl PublicKey {
    /// Parses every certificate in `bytes`, armoured (`PUBLIC KEY BLOCK`)
    /// or binary; a file exported with several keys gives several.
    pub fn parse_all(bytes: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
        let parse_err = |e: pgp::errors::Error| KeyError::Parse {
            message: e.to_string(),
        };
        let (keys, _headers) = SignedPublicKey::from_reader_many(bytes).map_err(parse_err)?;
        let keys = keys
            .map(|k| k.map(|inner| PublicKey { inner }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(parse_err)?;
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(keys)
    }

    /// Parses a file that must hold exactly one certificate (a trust store
    /// file); the first one when there are several.
    pub fn parse_one(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        Self::parse_all(bytes)?
            .into_iter()
            .next()
            .ok_or(KeyError::Empty)
    }

    /// The primary key's fingerprint in lowercase hex: the name of its file
    /// in the trust store, as rkt names them.
    pub fn fingerprint(&self) -> String {
        format!("{:x}", self.inner.primary_key.fingerprint())
    }

    /// The primary key's 64-bit key id in lowercase hex.
    pub fn key_id(&self) -> String {
        hex(self.inner.primary_key.legacy_key_id().as_ref())
    }

    /// The user ids, in the key's order (lossy UTF-8: they are for people).
    pub fn user_ids(&self) -> Vec<String> {
        self.inner
            .details
            .users
            .iter()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .collect()
    }

    /// The user id a self-signature marks primary, else the first one.
    pub fn primary_user_id(&self) -> Option<String> {
        let users = &self.inner.details.users;
        users
            .iter()
            .find(|u| u.signatures.iter().any(|s| s.is_primary()))
            .or_else(|| users.first())
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
    }

    /// The subkeys' fingerprints in lowercase hex.
    pub fn subkey_fingerprints(&self) -> Vec<String> {
        self.inner
            .public_subkeys
            .iter()
            .map(|s| format!("{:x}", s.key.fingerprint()))
            .collect()
    }

    /// The certificate ASCII-armoured, as the trust store keeps it.
    pub fn to_armored(&self) -> Result<Vec<u8>, KeyError> {
        self.inner
            .to_armored_bytes(ArmorOptions::default())
            .map_err(|e| KeyError::Armor {
                fingerprint: self.fingerprint(),
                message: e.to_string(),
            })
    }

    /// The rPGP certificate, for the signature checks.
    pub(crate) fn signed(&self) -> &SignedPublicKey {
        &self.inner
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint as gpg shows it for review: uppercase, groups of four,
/// two spaces in the middle (`8B86 DE38 … 2190`), as rkt prints it.
pub fn display_fingerprint(fingerprint: &str) -> String {
    let upper = fingerprint.to_ascii_uppercase();
    let groups: Vec<&str> = upper
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    let half = groups.len() / 2;
    format!("{}  {}", groups[..half].join(" "), groups[half..].join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_display_like_gpg() {
        assert_eq!(
            display_fingerprint("8b86de38890ddb7291867b025210bd8888182190"),
            "8B86 DE38 890D DB72 9186  7B02 5210 BD88 8818 2190"
        );
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(PublicKey::parse_all(b"hello").is_err());
        assert!(PublicKey::parse_all(b"").is_err());
    }
}
