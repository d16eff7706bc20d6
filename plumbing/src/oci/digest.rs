//! sha256 digests (`sha256:<64 lowercase hex>`), the only algorithm an
//! image must support (oci-bridge §1), and a reader that checks one while
//! the bytes stream through.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// A sha256 digest as the OCI specs write it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Parses `sha256:<hex>`: exactly 64 lowercase hex digits, as the
    /// image spec requires (upper case is forbidden). Any other algorithm
    /// is refused: acido can check nothing else.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(hex) = text.strip_prefix("sha256:") else {
            return Err(format!(
                "digest {text:?} is not sha256 (the only algorithm acido checks)"
            ));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "digest {text:?} is not 64 lowercase hexadecimal digits"
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            // Both bytes were checked to be hex digits above.
            let high = (pair[0] as char).to_digit(16).unwrap_or(0);
            let low = (pair[1] as char).to_digit(16).unwrap_or(0);
            out[i] = (high * 16 + low) as u8;
        }
        Ok(Sha256Digest(out))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The chain id of `parent` (the layers below) and the next diff id:
    /// `sha256(parent + " " + diff_id)` over the `sha256:<hex>` strings
    /// (oci-bridge §1).
    pub fn chain(parent: Option<Sha256Digest>, diff_id: Sha256Digest) -> Sha256Digest {
        match parent {
            None => diff_id,
            Some(parent) => Sha256Digest::of(format!("{parent} {diff_id}").as_bytes()),
        }
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A running sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Sha256Hasher {
    inner: Sha256,
    len: u64,
}

impl Sha256Hasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Sha256Digest {
        Sha256Digest(self.inner.finalize().into())
    }
}

/// A layer's diff id is taken while [`crate::pack::tar_writer::TarSink`]
/// writes its tar.
impl crate::pack::tar_writer::StreamHasher for Sha256Hasher {
    type Digest = Sha256Digest;
    fn update(&mut self, bytes: &[u8]) {
        Sha256Hasher::update(self, bytes);
    }
    fn finish(self) -> Sha256Digest {
        Sha256Hasher::finish(self)
    }
}

/// Reads `inner` while hashing it; fails (an `InvalidData` error) as soon
/// as more than `size` bytes arrive, and at the end when the length or
/// the digest differ. So a consumer that reads to the end never sees a
/// successful end of a blob that is not the one the descriptor names.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256Hasher,
    expected: Option<Sha256Digest>,
    size: Option<u64>,
    checked: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Checks `inner` against `expected` and `size`, each when known.
    pub fn new(inner: R, expected: Option<Sha256Digest>, size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256Hasher::new(),
            expected,
            size,
            checked: false,
        }
    }
}

/// The message of the error a [`VerifyingReader`] returns, for callers
/// that turn it into their own error.
#[derive(Debug, thiserror::Error)]
pub enum BlobMismatch {
    /// More or fewer bytes than the descriptor's size.
    #[error("size mismatch (expected {expected} bytes, found {found})")]
    Size {
        /// The descriptor's size.
        expected: u64,
        /// The bytes read.
        found: u64,
    },
    /// The bytes hash to another digest.
    #[error("digest mismatch (expected {expected}, found {found})")]
    Digest {
        /// The descriptor's digest.
        expected: Sha256Digest,
        /// The digest of the bytes read.
        found: Sha256Digest,
    },
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(size) = self.size {
            if self.hasher.len() > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    BlobMismatch::Size {
                        expected: size,
                        found: self.hasher.len(),
                    },
                ));
            }
        }
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            if let Some(size) = self.size {
                if self.hasher.len() != size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        BlobMismatch::Size {
                            expected: size,
                            found: self.hasher.len(),
                        },
                    ));
                }
            }
            if let Some(expected) = self.expected {
                let found = self.hasher.clone().finish();
                if found != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        BlobMismatch::Digest { expected, found },
                    ));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_id_test_vector_holds() {
        // oci-bridge §1: the empty tar's diff id over c6f988f4…bbd1.
        let lower = Sha256Digest::parse(
            "sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1",
        )
        .unwrap();
        let upper = Sha256Digest::parse(
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
        )
        .unwrap();
        assert_eq!(Sha256Digest::chain(None, lower), lower);
        assert_eq!(
            Sha256Digest::chain(Some(lower), upper).to_string(),
            "sha256:c3191d32a37d7159b2e30830937d2e30268ad6c375a773a8994911a3aba9b93f"
        );
    }

    #[test]
    fn only_lowercase_sha256_parses() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Sha256Digest::parse(&good).is_ok());
        assert!(Sha256Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Sha256Digest::parse(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert!(Sha256Digest::parse("sha256:abc").is_err());
    }

    #[test]
    fn the_reader_refuses_wrong_bytes_at_the_end() {
        let right = Sha256Digest::of(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], Some(right), Some(5))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        let err = VerifyingReader::new(&b"hellp"[..], Some(right), Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let err = VerifyingReader::new(&b"hello!"[..], Some(right), Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
    }
}
