//! Recognising an ACI's compression from its first bytes (aci-format §2).
//!
//! The reference (`aci.DetectFileType`) sniffs up to 512 bytes and tests the
//! gzip, bzip2 and xz magics, then the ustar magic at offset 257. Its
//! fallback to "text" (a bare manifest) does not apply to archives, so
//! everything else is an error that says what was found, which is more
//! useful than the reference's "unable to detect filetype".

use super::ArchiveError;
use crate::compression::Compression;

/// How many leading bytes [`detect`] wants to see; fewer only at end of input.
pub const SNIFF_LEN: usize = 512;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const LZ4_MAGIC: &[u8] = &[0x04, 0x22, 0x4d, 0x18];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// Offset of the ustar magic in a tar header (POSIX `ustar\0` and GNU `ustar `).
const USTAR_OFFSET: usize = 257;

/// The compression of an ACI whose stream starts with `head`.
///
/// `head` should hold the first [`SNIFF_LEN`] bytes of the input, or all of
/// it when the input is shorter.
pub fn detect(head: &[u8]) -> Result<Compression, ArchiveError> {
    if head.is_empty() {
        return Err(ArchiveError::EmptyInput);
    }
    if head.starts_with(GZIP_MAGIC) {
        return Ok(Compression::Gzip);
    }
    if head.starts_with(BZIP2_MAGIC) {
        return Ok(Compression::Bzip2);
    }
    if head.starts_with(XZ_MAGIC) {
        return Ok(Compression::Xz);
    }
    // The reference needs more than 262 bytes before it looks for the magic.
    if head.len() > USTAR_OFFSET + 5 && &head[USTAR_OFFSET..USTAR_OFFSET + 5] == b"ustar" {
        return Ok(Compression::None);
    }
    let known = [(ZSTD_MAGIC, "zstd"), (LZ4_MAGIC, "lz4"), (ZIP_MAGIC, "zip")];
    if let Some((_, format)) = known.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(ArchiveError::UnsupportedFormat { format });
    }
    if head.iter().all(|&b| b == 0) {
        return Err(ArchiveError::OnlyZeroBlocks);
    }
    Err(ArchiveError::UnknownFormat {
        first_bytes: head.iter().take(8).copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_head(magic: &[u8]) -> Vec<u8> {
        let mut block = vec![0u8; 512];
        block[USTAR_OFFSET..USTAR_OFFSET + magic.len()].copy_from_slice(magic);
        block
    }

    #[test]
    fn recognises_every_supported_compression() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]).unwrap(), Compression::Gzip);
        assert_eq!(detect(b"BZh91AY&SY").unwrap(), Compression::Bzip2);
        assert_eq!(detect(XZ_MAGIC).unwrap(), Compression::Xz);
        assert_eq!(
            detect(&tar_head(b"ustar\x0000")).unwrap(),
            Compression::None
        );
        assert_eq!(
            detect(&tar_head(b"ustar  \x00")).unwrap(),
            Compression::None
        );
    }

    #[test]
    fn names_what_it_rejects() {
        assert!(matches!(detect(b""), Err(ArchiveError::EmptyInput)));
        assert!(matches!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]),
            Err(ArchiveError::UnsupportedFormat { format: "zstd" })
        ));
        assert!(matches!(
            detect(LZ4_MAGIC),
            Err(ArchiveError::UnsupportedFormat { format: "lz4" })
        ));
        assert!(matches!(
            detect(b"PK\x03\x04rest"),
            Err(ArchiveError::UnsupportedFormat { format: "zip" })
        ));
        assert!(matches!(
            detect(&[0u8; 512]),
            Err(ArchiveError::OnlyZeroBlocks)
        ));
        let png = detect(b"\x89PNG\r\n\x1a\n and more").unwrap_err();
        assert_eq!(
            png.to_string(),
            "unknown format (first bytes: 89 50 4e 47 0d 0a 1a 0a ...)"
        );
    }

    #[test]
    fn a_short_tar_head_is_not_tar() {
        // Exactly 262 bytes: the reference needs more before it trusts the magic.
        let head = &tar_head(b"ustar\0")[..262];
        assert!(detect(head).is_err());
    }
}
