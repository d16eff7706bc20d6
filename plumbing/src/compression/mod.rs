//! The compressions an ACI may use (aci-format §2): their names, and the
//! deterministic encoders (`encode`) that `pack` and the store's export
//! write through. Detection and decoding live in `archive`, above this.

mod encode;

use std::fmt;
use std::str::FromStr;

pub(crate) use encode::Encoder;
pub use encode::{CompressError, DEFAULT_BZIP2_LEVEL, DEFAULT_GZIP_LEVEL, DEFAULT_XZ_PRESET};

/// How an ACI's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain, uncompressed tar.
    None,
    /// gzip, possibly several concatenated members.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
}

/// A compression name that acido does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {0:?} (expected xz, gzip, bzip2 or none)")]
pub struct UnknownCompression(pub String);

impl Compression {
    /// Every compression, in the order help texts list them.
    pub const ALL: [Compression; 4] = [
        Compression::Xz,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::None,
    ];

    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCompression(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>(), Ok(c));
        }
        assert!("zstd".parse::<Compression>().is_err());
    }
}
