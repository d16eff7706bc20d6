//! PAX extended-header records and their values.

use super::{EntryRef, Pax, TarError};
use crate::entry::Timestamp;

/// Parses PAX records (`"%d %s=%s\n"`, the length counting the whole
/// record) into `pax`.
pub(super) fn parse_pax(mut data: &[u8], at: &EntryRef, pax: &mut Pax) -> Result<(), TarError> {
    let bad = |problem| TarError::BadPax {
        entry: at.clone(),
        problem,
    };
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or(bad("record without a length"))?;
        let len = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(bad("bad record length"))?;
        if len <= space + 1 || len > data.len() {
            return Err(bad("record length out of range"));
        }
        let (record, rest) = data.split_at(len);
        data = rest;
        let body = record[space + 1..]
            .strip_suffix(b"\n")
            .ok_or(bad("record does not end in a newline"))?;
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or(bad("record without '='"))?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        if key.is_empty() {
            return Err(bad("record with an empty key"));
        }
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            pax.xattrs.retain(|(n, _)| n.as_slice() != name);
            pax.xattrs.push((name.to_vec(), value.to_vec()));
            continue;
        }
        if key.starts_with(b"GNU.sparse.") {
            return Err(bad("gnu sparse files are not supported"));
        }
        // An empty value unsets the key (POSIX pax).
        let set = !value.is_empty();
        match key {
            b"path" => pax.path = set.then(|| value.to_vec()),
            b"linkpath" => pax.linkpath = set.then(|| value.to_vec()),
            b"size" => {
                pax.size = set
                    .then(|| decimal(value))
                    .transpose()
                    .map_err(|()| bad("bad size"))?
            }
            b"uid" => {
                pax.uid = set
                    .then(|| decimal(value))
                    .transpose()
                    .map_err(|()| bad("bad uid"))?
            }
            b"gid" => {
                pax.gid = set
                    .then(|| decimal(value))
                    .transpose()
                    .map_err(|()| bad("bad gid"))?
            }
            b"mtime" => {
                pax.mtime = set
                    .then(|| pax_time(value))
                    .transpose()
                    .map_err(|()| bad("bad mtime"))?
            }
            b"atime" => {
                pax.atime = set
                    .then(|| pax_time(value))
                    .transpose()
                    .map_err(|()| bad("bad atime"))?
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn decimal(value: &[u8]) -> Result<u64, ()> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    std::str::from_utf8(value)
        .map_err(|_| ())?
        .parse()
        .map_err(|_| ())
}

/// A PAX time: `[-]SECS[.FRACTION]`, fractions beyond nanoseconds cut off.
pub(super) fn pax_time(value: &[u8]) -> Result<Timestamp, ()> {
    let (negative, digits) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (secs, frac) = match digits.iter().position(|&b| b == b'.') {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &[][..]),
    };
    if !frac.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let secs = i64::try_from(decimal(secs)?).map_err(|_| ())?;
    let mut nanos: u32 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    if !negative {
        return Ok(Timestamp { secs, nanos });
    }
    // -1.25 is 1.25 s before the epoch: secs -2, nanos 750_000_000.
    Ok(if nanos == 0 {
        Timestamp {
            secs: -secs,
            nanos: 0,
        }
    } else {
        Timestamp {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}
