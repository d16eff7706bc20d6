//! Header blocks: the checked view of one 512-byte block and its
//! numeric and string fields (ustar, GNU base-256).

use super::{EntryRef, TarError, BLOCK};

/// A checked view of one header block.
pub(super) struct Header<'b> {
    block: &'b [u8; BLOCK],
    offset: u64,
}

impl<'b> Header<'b> {
    pub(super) fn new(block: &'b [u8; BLOCK], offset: u64) -> Result<Self, TarError> {
        let header = Header { block, offset };
        let stored = parse_octal(&block[148..156]).map_err(|()| TarError::BadNumber {
            entry: EntryRef::Offset(offset),
            field: "checksum",
        })?;
        // The checksum is the sum of the header bytes with the checksum
        // field read as spaces; some old writers summed signed bytes.
        let mut unsigned: i64 = 8 * i64::from(b' ');
        let mut signed: i64 = 8 * i64::from(b' ');
        for (i, &b) in block.iter().enumerate() {
            if !(148..156).contains(&i) {
                unsigned += i64::from(b);
                signed += i64::from(b as i8);
            }
        }
        if stored != unsigned && stored != signed {
            return Err(TarError::BadChecksum {
                offset,
                stored,
                computed: unsigned,
            });
        }
        Ok(header)
    }

    pub(super) fn typeflag(&self) -> u8 {
        self.block[156]
    }

    pub(super) fn is_gnu(&self) -> bool {
        &self.block[257..265] == b"ustar  \0"
    }

    pub(super) fn is_ustar(&self) -> bool {
        &self.block[257..263] == b"ustar\0"
    }

    pub(super) fn has_ustar_fields(&self) -> bool {
        self.is_ustar() || self.is_gnu()
    }

    pub(super) fn name(&self) -> Vec<u8> {
        let name = cstr(&self.block[0..100]);
        let prefix = if self.is_ustar() {
            cstr(&self.block[345..500])
        } else {
            &[]
        };
        if prefix.is_empty() {
            name.to_vec()
        } else {
            let mut full = Vec::with_capacity(prefix.len() + 1 + name.len());
            full.extend_from_slice(prefix);
            full.push(b'/');
            full.extend_from_slice(name);
            full
        }
    }

    pub(super) fn linkname(&self) -> Vec<u8> {
        cstr(&self.block[157..257]).to_vec()
    }

    pub(super) fn numeric(&self, at: usize, len: usize) -> Result<i64, ()> {
        parse_numeric(&self.block[at..at + len])
    }

    pub(super) fn size(&self) -> Result<u64, TarError> {
        self.numeric(124, 12)
            .ok()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or(TarError::BadNumber {
                entry: EntryRef::Offset(self.offset),
                field: "size",
            })
    }
}

/// The bytes of a NUL-terminated field.
pub(super) fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric header field: octal, or GNU base-256 when the high bit of the
/// first byte is set (two's complement, so it can be negative).
pub(super) fn parse_numeric(field: &[u8]) -> Result<i64, ()> {
    let Some((&first, rest)) = field.split_first() else {
        return Ok(0);
    };
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    let negative = first & 0x40 != 0;
    let flip = if negative { 0xff } else { 0 };
    // The marker bit is not part of the value; the sign bit (0x40) of a
    // negative number is cleared by the flip.
    let mut value: u64 = u64::from((first ^ flip) & 0x7f);
    for &b in rest {
        if value >> 56 != 0 {
            return Err(());
        }
        value = (value << 8) | u64::from(b ^ flip);
    }
    let value = i64::try_from(value).map_err(|_| ())?;
    Ok(if negative { !value } else { value })
}

/// An octal field, with leading/trailing spaces and NULs allowed.
pub(super) fn parse_octal(field: &[u8]) -> Result<i64, ()> {
    let trimmed: &[u8] = {
        let start = field.iter().position(|&b| b != b' ' && b != 0);
        let end = field.iter().rposition(|&b| b != b' ' && b != 0);
        match (start, end) {
            (Some(s), Some(e)) => &field[s..=e],
            _ => return Ok(0),
        }
    };
    let mut value: i64 = 0;
    for &b in trimmed {
        if !(b'0'..=b'7').contains(&b) {
            return Err(());
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(())?;
    }
    Ok(value)
}
