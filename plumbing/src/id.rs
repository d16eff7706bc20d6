//! Image ids: `sha512-` followed by the hex SHA-512 of the uncompressed tar
//! (aci-format §3), in full and prefix forms, and the streaming hasher that
//! produces them; beside them the BLAKE3 [`FastDigest`] a render checks
//! a stored blob with (DESIGN §13).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha512};

/// The `sha512-` scheme prefix every image id carries (aci-format §3).
pub const SCHEME: &str = "sha512-";
/// Number of hex digits in a full SHA-512 image id.
pub const FULL_HEX_LEN: usize = 128;
/// Number of hex digits in rkt's store keys (the first 32 bytes of the digest).
pub const RKT_KEY_HEX_LEN: usize = 64;
/// The shortest prefix accepted when naming an image (rkt's `ResolveKey` rule).
pub const MIN_PREFIX_HEX_LEN: usize = 2;

/// Why a string is not an image id or id prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string does not start with `sha512-`.
    #[error("{input:?}: image id must start with \"sha512-\"")]
    MissingScheme {
        /// The rejected string.
        input: String,
    },
    /// A character after the scheme is not a lower-case hex digit.
    #[error("{input:?}: image id must be lower-case hex digits after \"sha512-\"")]
    NotHex {
        /// The rejected string.
        input: String,
    },
    /// The hex part has the wrong length for the form that was asked for.
    #[error("{input:?}: image id needs {expected} hex digits, found {found}")]
    BadLength {
        /// The rejected string.
        input: String,
        /// How many digits the form needs (a range is described as its minimum).
        expected: usize,
        /// How many digits were given.
        found: usize,
    },
}

/// A full image id: the 64-byte SHA-512 digest of an uncompressed ACI tar.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId([u8; 64]);

impl ImageId {
    /// Wraps a raw digest.
    pub fn from_digest(digest: [u8; 64]) -> Self {
        ImageId(digest)
    }

    /// The raw digest bytes.
    pub fn digest(&self) -> &[u8; 64] {
        &self.0
    }

    /// The 128 lower-case hex digits, without the scheme.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(FULL_HEX_LEN);
        for byte in self.0 {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
        out
    }

    /// The id shortened to `hex_len` digits (clamped to 1..=128), as `--abbrev` prints it.
    pub fn abbrev(&self, hex_len: usize) -> String {
        let hex = self.hex();
        let len = hex_len.clamp(1, FULL_HEX_LEN);
        format!("{SCHEME}{}", &hex[..len])
    }

    /// Whether this id starts with `prefix`.
    pub fn matches(&self, prefix: &IdPrefix) -> bool {
        self.hex().starts_with(prefix.hex())
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).expect("a nibble is below 16")
}

fn check_hex(input: &str, hex: &str) -> Result<(), IdError> {
    if hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(IdError::NotHex {
            input: input.to_owned(),
        })
    }
}

fn strip_scheme(input: &str) -> Result<&str, IdError> {
    input
        .strip_prefix(SCHEME)
        .ok_or_else(|| IdError::MissingScheme {
            input: input.to_owned(),
        })
}

impl FromStr for ImageId {
    type Err = IdError;

    /// Parses the full form `sha512-` + 128 lower-case hex digits.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let hex = strip_scheme(input)?;
        check_hex(input, hex)?;
        if hex.len() != FULL_HEX_LEN {
            return Err(IdError::BadLength {
                input: input.to_owned(),
                expected: FULL_HEX_LEN,
                found: hex.len(),
            });
        }
        let mut digest = [0u8; 64];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let pair = std::str::from_utf8(pair).expect("checked ascii hex");
            digest[i] = u8::from_str_radix(pair, 16).expect("checked ascii hex");
        }
        Ok(ImageId(digest))
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.hex())
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({})", self.abbrev(16))
    }
}

/// A user-given id prefix: `sha512-` + 2..=128 hex digits.
///
/// Longer forms are accepted too and cut to 128 digits, as rkt's `ResolveKey`
/// cuts over-long keys (aci-format §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdPrefix(String);

impl IdPrefix {
    /// The hex digits of the prefix, without the scheme.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// Whether the prefix has all 128 digits.
    pub fn is_full(&self) -> bool {
        self.0.len() == FULL_HEX_LEN
    }
}

impl FromStr for IdPrefix {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let hex = strip_scheme(input)?;
        check_hex(input, hex)?;
        if hex.len() < MIN_PREFIX_HEX_LEN {
            return Err(IdError::BadLength {
                input: input.to_owned(),
                expected: MIN_PREFIX_HEX_LEN,
                found: hex.len(),
            });
        }
        let cut = hex.len().min(FULL_HEX_LEN);
        Ok(IdPrefix(hex[..cut].to_owned()))
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.0)
    }
}

/// Incremental SHA-512 over an uncompressed tar stream.
#[derive(Clone, Default)]
pub struct IdHasher {
    inner: Sha512,
    len: u64,
}

impl IdHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the uncompressed stream.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes were hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of everything fed so far.
    pub fn finish(self) -> ImageId {
        ImageId(self.inner.finalize().into())
    }
}

/// An [`IdHasher`] on a thread of its own: SHA-512 is the costliest step
/// of writing a blob (more than writing, parsing or BLAKE3), so the
/// writer hands its bytes over in MiB pieces and goes on while the other
/// core hashes them. At most [`HashThread::IN_FLIGHT`] pieces wait, so
/// memory stays bounded. If the thread cannot be started the bytes are
/// hashed on the caller's thread: the id is the same.
pub struct HashThread {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    empties: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<IdHasher>>,
    /// Bytes not yet handed over (and, without a thread, the hasher).
    buf: Vec<u8>,
    local: IdHasher,
    len: u64,
}

impl HashThread {
    /// Size of the pieces handed to the thread.
    pub const PIECE: usize = 1 << 20;
    /// Pieces that may wait for the thread.
    pub const IN_FLIGHT: usize = 16;

    /// Starts the thread.
    pub fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(Self::IN_FLIGHT);
        let (back, empties) = std::sync::mpsc::sync_channel::<Vec<u8>>(Self::IN_FLIGHT + 2);
        let handle = std::thread::Builder::new()
            .name("sha512".into())
            .spawn(move || {
                let mut hasher = IdHasher::new();
                for piece in rx {
                    hasher.update(&piece);
                    let _ = back.try_send(piece);
                }
                hasher
            })
            .ok();
        let started = handle.is_some();
        HashThread {
            tx: started.then_some(tx),
            empties: started.then_some(empties),
            handle,
            buf: Vec::with_capacity(Self::PIECE),
            local: IdHasher::new(),
            len: 0,
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tx.is_none() {
            self.local.update(bytes);
            return;
        }
        while !bytes.is_empty() {
            let n = bytes.len().min(Self::PIECE - self.buf.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == Self::PIECE {
                self.hand_over();
            }
        }
    }

    fn hand_over(&mut self) {
        let mut next = self
            .empties
            .as_ref()
            .and_then(|e| e.try_recv().ok())
            .unwrap_or_default();
        next.clear();
        next.reserve(Self::PIECE);
        let piece = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.tx {
            // A thread that is gone (it only hashes, but a panic would
            // end it) is reported by `finish`.
            let _ = tx.send(piece);
        }
    }

    /// How many bytes were fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of everything fed; an error if the thread died on the way
    /// (then some bytes were not hashed).
    pub fn finish(mut self) -> std::io::Result<ImageId> {
        let tx = self.tx.take();
        let handle = self.handle.take();
        match (tx, handle) {
            (Some(tx), Some(handle)) => {
                let rest = std::mem::take(&mut self.buf);
                let sent = tx.send(rest).is_ok();
                drop(tx);
                match handle.join() {
                    Ok(hasher) if sent && hasher.len() == self.len => Ok(hasher.finish()),
                    _ => Err(std::io::Error::other("the SHA-512 thread stopped")),
                }
            }
            _ => Ok(self.local.finish()),
        }
    }
}

impl Default for HashThread {
    fn default() -> Self {
        Self::new()
    }
}

/// The BLAKE3 digest of a stored blob: the fast integrity check a render
/// makes instead of re-hashing SHA-512 (DESIGN §13). It is computed at
/// import from the same bytes as the id, kept in the blob's entry index,
/// and never names an image: ids stay SHA-512 (aci-format §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FastDigest([u8; 32]);

impl FastDigest {
    /// The name of the algorithm, as messages and `fsck` print it.
    pub const ALGORITHM: &'static str = "blake3";

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FastDigest(bytes)
    }

    /// The raw digest bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
        out
    }
}

impl fmt::Display for FastDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", Self::ALGORITHM, self.hex())
    }
}

impl fmt::Debug for FastDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Streaming BLAKE3 for [`FastDigest`]s. Feed it large pieces (a MiB or
/// so): BLAKE3 hashes several chunks of one piece at once with SIMD.
#[derive(Default, Clone)]
pub struct FastHasher(blake3::Hasher);

impl FastHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far.
    pub fn finish(&self) -> FastDigest {
        FastDigest(*self.0.finalize().as_bytes())
    }
}

impl std::fmt::Debug for FastHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastHasher")
    }
}

impl std::io::Write for IdHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_thread_gives_the_id_of_the_bytes_however_they_are_fed() {
        assert_eq!(HashThread::new().finish().unwrap().to_string(), EMPTY);
        let bytes: Vec<u8> = (0..(3 * HashThread::PIECE + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut plain = IdHasher::new();
        plain.update(&bytes);
        let want = plain.finish();
        for piece in [
            1,
            511,
            HashThread::PIECE,
            HashThread::PIECE + 1,
            bytes.len(),
        ] {
            let mut threaded = HashThread::new();
            for chunk in bytes.chunks(if piece == 1 { 100_000 } else { piece }) {
                threaded.update(chunk);
            }
            assert_eq!(threaded.len(), bytes.len() as u64);
            assert_eq!(threaded.finish().unwrap(), want, "pieces of {piece}");
        }
    }

    const EMPTY: &str = "sha512-cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

    #[test]
    fn empty_stream_has_the_well_known_digest() {
        assert_eq!(IdHasher::new().finish().to_string(), EMPTY);
    }

    #[test]
    fn full_form_round_trips() {
        let id: ImageId = EMPTY.parse().unwrap();
        assert_eq!(id.to_string(), EMPTY);
        assert_eq!(id.abbrev(64).len(), 7 + 64);
    }

    #[test]
    fn full_form_rejects_short_upper_and_schemeless() {
        assert!(matches!(
            "sha512-cf83".parse::<ImageId>(),
            Err(IdError::BadLength { found: 4, .. })
        ));
        assert!(matches!(
            EMPTY
                .to_uppercase()
                .replace("SHA512-", "sha512-")
                .parse::<ImageId>(),
            Err(IdError::NotHex { .. })
        ));
        assert!(matches!(
            "sha256-cf83".parse::<ImageId>(),
            Err(IdError::MissingScheme { .. })
        ));
    }

    #[test]
    fn prefixes_need_two_digits_and_are_cut_to_full_length() {
        assert!("sha512-c".parse::<IdPrefix>().is_err());
        let p: IdPrefix = "sha512-cf".parse().unwrap();
        let id: ImageId = EMPTY.parse().unwrap();
        assert!(id.matches(&p));
        let long: IdPrefix = format!("{EMPTY}00").parse().unwrap();
        assert!(long.is_full());
        assert!(id.matches(&long));
        assert!(!id.matches(&"sha512-00".parse().unwrap()));
    }
}
