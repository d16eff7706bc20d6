//! Byte-exact tar header encoding for packing, and the hashing sink the
//! packer writes the uncompressed stream through.
//!
//! Headers are POSIX ustar. A PAX extended header (typeflag `x`) is put in
//! front of an entry only for values ustar cannot hold (aci-format §11.1:
//! every ACI reader understands PAX): a path that neither fits the 100-byte
//! name field nor splits into a 155-byte prefix and a 100-byte name, a link
//! target over 100 bytes, a uid, gid or size beyond the octal field range,
//! an mtime before the epoch, beyond the field or with nanoseconds, and
//! xattrs (`SCHILY.xattr.NAME`). Everything in the output is a function of
//! the entry's metadata alone, so equal trees give equal bytes.

use std::io::{self, Write};

use crate::entry::Timestamp;
use crate::id::{IdHasher, ImageId};

/// Size of one tar block.
pub(crate) const BLOCK: usize = 512;

/// The largest value of an 8-byte octal field (7 digits and a NUL).
pub(crate) const OCTAL8_MAX: u64 = 0o7_777_777;
/// The largest value of a 12-byte octal field (11 digits and a NUL).
pub(crate) const OCTAL12_MAX: u64 = 0o77_777_777_777;

/// Typeflag of a regular file.
pub(crate) const TYPE_REGULAR: u8 = b'0';
/// Typeflag of a hard link.
pub(crate) const TYPE_HARDLINK: u8 = b'1';
/// Typeflag of a symbolic link.
pub(crate) const TYPE_SYMLINK: u8 = b'2';
/// Typeflag of a character device.
pub(crate) const TYPE_CHAR: u8 = b'3';
/// Typeflag of a block device.
pub(crate) const TYPE_BLOCK: u8 = b'4';
/// Typeflag of a directory.
pub(crate) const TYPE_DIR: u8 = b'5';
/// Typeflag of a named pipe.
pub(crate) const TYPE_FIFO: u8 = b'6';
/// Typeflag of a PAX extended header for the next entry.
const TYPE_PAX: u8 = b'x';

/// Everything one entry's header records.
#[derive(Debug, Clone)]
pub(crate) struct HeaderSpec<'a> {
    /// Full archive path (`manifest`, `rootfs/etc`), no trailing `/`.
    pub path: &'a [u8],
    /// One of the `TYPE_*` flags.
    pub typeflag: u8,
    /// Permission and special bits; only the low 12 bits are written.
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Data size (regular files only; 0 otherwise).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Symlink target, or hard-link target path from the archive root.
    pub link: Option<&'a [u8]>,
    /// Device major number (devices only).
    pub dev_major: u64,
    /// Device minor number (devices only).
    pub dev_minor: u64,
    /// Extended attributes, already sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

impl<'a> HeaderSpec<'a> {
    /// A regular file of `size` bytes owned by root, mode 0644, time 0 and
    /// no xattrs: the `manifest` entry of every ACI, and the whiteout
    /// markers of an OCI layer.
    pub(crate) fn plain_file(path: &'a [u8], size: u64) -> HeaderSpec<'a> {
        HeaderSpec {
            path,
            typeflag: TYPE_REGULAR,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: Timestamp::default(),
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        }
    }
}

/// A value no tar header can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Device numbers beyond the 8-byte octal fields; PAX has no standard key
    /// for them that Go's reader (actool, rkt) understands.
    #[error("device number {major},{minor} does not fit a tar header (limit {OCTAL8_MAX})")]
    DeviceNumberTooLarge {
        /// The major number.
        major: u64,
        /// The minor number.
        minor: u64,
    },
    /// An xattr name containing `=` or NUL cannot be a PAX record key.
    #[error("xattr name {name:?} cannot be stored in a pax record (contains '=' or NUL)")]
    XattrName {
        /// The name, lossily shown.
        name: String,
    },
}

/// Appends the header block(s) of `spec` to `out`: an optional PAX header
/// with its records, then the ustar header.
pub(crate) fn encode_header(spec: &HeaderSpec<'_>, out: &mut Vec<u8>) -> Result<(), HeaderError> {
    if spec.dev_major > OCTAL8_MAX || spec.dev_minor > OCTAL8_MAX {
        return Err(HeaderError::DeviceNumberTooLarge {
            major: spec.dev_major,
            minor: spec.dev_minor,
        });
    }
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();

    let split = split_path(spec.path);
    if split.is_none() {
        pax.push((b"path".to_vec(), spec.path.to_vec()));
    }
    let link = spec.link.unwrap_or(b"");
    if link.len() > 100 {
        pax.push((b"linkpath".to_vec(), link.to_vec()));
    }
    let uid_field = numeric_or_pax(spec.uid, OCTAL8_MAX, b"uid", &mut pax);
    let gid_field = numeric_or_pax(spec.gid, OCTAL8_MAX, b"gid", &mut pax);
    let size_field = numeric_or_pax(spec.size, OCTAL12_MAX, b"size", &mut pax);
    let mtime_field = match u64::try_from(spec.mtime.secs) {
        Ok(secs) if secs <= OCTAL12_MAX && spec.mtime.nanos == 0 => secs,
        Ok(secs) if secs <= OCTAL12_MAX => {
            // The whole seconds stay in the ustar field for readers that
            // ignore the fraction.
            pax.push((b"mtime".to_vec(), format_pax_time(spec.mtime)));
            secs
        }
        _ => {
            pax.push((b"mtime".to_vec(), format_pax_time(spec.mtime)));
            0
        }
    };
    for (name, value) in spec.xattrs {
        if name.contains(&b'=') || name.contains(&0) {
            return Err(HeaderError::XattrName {
                name: String::from_utf8_lossy(name).into_owned(),
            });
        }
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax.push((key, value.clone()));
    }

    if !pax.is_empty() {
        // Sorted keys make the record order independent of the code path
        // that added them (Go's writer sorts too).
        pax.sort();
        let mut records = Vec::new();
        for (key, value) in &pax {
            push_pax_record(&mut records, key, value);
        }
        let pax_header = Ustar {
            name: &pax_header_name(spec.path),
            prefix: b"",
            typeflag: TYPE_PAX,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: 0,
            link: b"",
            dev_major: 0,
            dev_minor: 0,
        };
        pax_header.encode(out);
        out.extend_from_slice(&records);
        pad_to_block(out);
    }

    let (prefix, name) = match split {
        Some(parts) => parts,
        // The real path is in the PAX record; the ustar field keeps what fits.
        None => (&b""[..], &spec.path[..spec.path.len().min(100)]),
    };
    let link_field = if link.len() > 100 { &link[..100] } else { link };
    Ustar {
        name,
        prefix,
        typeflag: spec.typeflag,
        mode: spec.mode & 0o7777,
        uid: uid_field,
        gid: gid_field,
        size: size_field,
        mtime: mtime_field,
        link: link_field,
        dev_major: spec.dev_major,
        dev_minor: spec.dev_minor,
    }
    .encode(out);
    Ok(())
}

/// The value for a numeric ustar field, or 0 with a PAX record when it is
/// out of the field's octal range.
fn numeric_or_pax(value: u64, max: u64, key: &[u8], pax: &mut Vec<(Vec<u8>, Vec<u8>)>) -> u64 {
    if value <= max {
        value
    } else {
        pax.push((key.to_vec(), value.to_string().into_bytes()));
        0
    }
}

/// Splits `path` into ustar `(prefix, name)`: the whole path in `name` when
/// it fits 100 bytes, else at the last `/` that leaves a prefix of at most
/// 155 bytes, when the rest is a non-empty name of at most 100 bytes.
fn split_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((b"", path));
    }
    // The latest slash allowed is at index 155 (prefix = path[..155]).
    let search = &path[..path.len().min(156)];
    let slash = search.iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..slash], &path[slash + 1..]);
    // A later slash would only make the name shorter, so if this name is too
    // long no split works.
    if name.is_empty() || name.len() > 100 || prefix.is_empty() {
        return None;
    }
    Some((prefix, name))
}

/// The name of a PAX header entry: `PaxHeaders.0/` and the entry's last
/// component, made ASCII and cut to fit, as Go names them. Readers that
/// understand PAX never show it; it must only be deterministic.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let base = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let mut name = b"PaxHeaders.0/".to_vec();
    for &b in base {
        if name.len() == 100 {
            break;
        }
        name.push(if b.is_ascii_graphic() { b } else { b'_' });
    }
    name
}

/// `secs.nnnnnnnnn`, with a leading `-` and the fraction counted away from
/// zero for times before the epoch (PAX rule; Go formats the same way).
fn format_pax_time(ts: Timestamp) -> Vec<u8> {
    let text = if ts.secs >= 0 {
        format!("{}.{:09}", ts.secs, ts.nanos)
    } else if ts.nanos == 0 {
        format!("{}.{:09}", ts.secs, 0)
    } else {
        // secs + nanos/1e9 is negative: -(|secs| - 1) - (1e9 - nanos)/1e9.
        let whole = (ts.secs + 1).unsigned_abs();
        format!("-{}.{:09}", whole, 1_000_000_000 - ts.nanos)
    };
    text.into_bytes()
}

/// Appends one `LEN KEY=VALUE\n` record; LEN counts the whole record,
/// its own digits included.
fn push_pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    // Adding the length's digits may add a digit; two rounds settle it.
    for _ in 0..3 {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Zero-fills `out` to the next block boundary.
pub(crate) fn pad_to_block(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// The fields of one ustar block, each already in range.
struct Ustar<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &'a [u8],
    dev_major: u64,
    dev_minor: u64,
}

impl Ustar<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut block = [0u8; BLOCK];
        put_bytes(&mut block[0..100], self.name);
        put_octal(&mut block[100..108], u64::from(self.mode));
        put_octal(&mut block[108..116], self.uid);
        put_octal(&mut block[116..124], self.gid);
        put_octal(&mut block[124..136], self.size);
        put_octal(&mut block[136..148], self.mtime);
        block[156] = self.typeflag;
        put_bytes(&mut block[157..257], self.link);
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        // uname and gname (265..329) stay empty: ids are what readers use,
        // and host user names would make the bytes depend on the machine.
        put_octal(&mut block[329..337], self.dev_major);
        put_octal(&mut block[337..345], self.dev_minor);
        put_bytes(&mut block[345..500], self.prefix);
        // The checksum is computed with its own field read as spaces, and
        // written as six digits, NUL, space (the historical layout).
        block[148..156].copy_from_slice(b"        ");
        let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
        put_octal(&mut block[148..155], sum);
        block[155] = b' ';
        out.extend_from_slice(&block);
    }
}

/// Copies `value` into `field`; the caller made sure it fits, and a longer
/// value is cut rather than overflowing into the next field.
fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Writes `value` as zero-padded octal filling all but the field's last
/// byte, which stays NUL. The caller keeps `value` in range.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let mut v = value;
    for i in (0..digits).rev() {
        field[i] = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

/// A digest taken over a tar stream while it is written: the SHA-512
/// image id of an ACI ([`IdHasher`]), or the sha256 diff id of an OCI
/// layer (implemented where that hasher lives). So every tar this crate
/// writes is padded and ended by the one [`TarSink`].
pub(crate) trait StreamHasher {
    /// What [`StreamHasher::finish`] gives.
    type Digest;
    /// Feeds the next bytes.
    fn update(&mut self, bytes: &[u8]);
    /// The digest of everything fed.
    fn finish(self) -> Self::Digest;
}

impl StreamHasher for IdHasher {
    type Digest = ImageId;
    fn update(&mut self, bytes: &[u8]) {
        IdHasher::update(self, bytes);
    }
    fn finish(self) -> ImageId {
        IdHasher::finish(self)
    }
}

/// No digest: for a stream whose consumer hashes it (a store staging
/// takes the image id itself).
pub(crate) struct NoHash;

impl StreamHasher for NoHash {
    type Digest = ();
    fn update(&mut self, _: &[u8]) {}
    fn finish(self) {}
}

/// The uncompressed tar stream: feeds every byte to the hasher (the image
/// id's unless told otherwise) and the (compressing) sink, and counts what
/// was written.
pub(crate) struct TarSink<W: Write, H: StreamHasher = IdHasher> {
    sink: W,
    hasher: H,
    len: u64,
}

impl<W: Write, H: StreamHasher> TarSink<W, H> {
    /// A stream writing into `sink`, hashed by `hasher`.
    pub(crate) fn with_hasher(sink: W, hasher: H) -> Self {
        TarSink {
            sink,
            hasher,
            len: 0,
        }
    }

    /// Writes uncompressed tar bytes.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.sink.write_all(bytes)
    }

    /// Hashes and counts `bytes` as written without writing them: the
    /// caller hands them to the sink itself ([`TarSink::sink_mut`]), e.g.
    /// by reference rather than as a copy.
    pub(crate) fn account(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The sink, for writes accounted with [`TarSink::account`].
    pub(crate) fn sink_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Pads the data just written to a block boundary.
    pub(crate) fn pad(&mut self) -> io::Result<()> {
        let rem = (self.len() % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks, as Go's writer
    /// ends an archive, with no further record padding) and returns the
    /// sink, the digest and the stream length.
    pub(crate) fn finish(mut self) -> io::Result<(W, H::Digest, u64)> {
        self.write_all(&[0u8; 2 * BLOCK])?;
        Ok((self.sink, self.hasher.finish(), self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &[u8]) -> HeaderSpec<'_> {
        HeaderSpec::plain_file(path, 0)
    }

    fn encode(spec: &HeaderSpec<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(spec, &mut out).unwrap();
        out
    }

    /// The PAX records of a header sequence that starts with an `x` block.
    fn pax_records(blocks: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        assert_eq!(blocks[156], b'x');
        let size = parse_octal(&blocks[124..136]) as usize;
        let mut data = &blocks[BLOCK..BLOCK + size];
        let mut out = Vec::new();
        while !data.is_empty() {
            let sp = data.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&data[..sp]).unwrap().parse().unwrap();
            let rec = &data[sp + 1..len - 1];
            assert_eq!(data[len - 1], b'\n');
            let eq = rec.iter().position(|&b| b == b'=').unwrap();
            out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
            data = &data[len..];
        }
        out
    }

    fn parse_octal(field: &[u8]) -> u64 {
        let text = std::str::from_utf8(field).unwrap().trim_end_matches('\0');
        u64::from_str_radix(text, 8).unwrap()
    }

    fn checksum_ok(block: &[u8]) -> bool {
        let stored = parse_octal(&block[148..155]);
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        stored == sum
    }

    #[test]
    fn short_regular_file_is_one_plain_ustar_block() {
        let mut s = spec(b"rootfs/etc/passwd");
        s.mode = 0o104_755; // file type bits must be dropped
        s.uid = 1000;
        s.gid = 100;
        s.size = 1234;
        s.mtime = Timestamp {
            secs: 1_600_000_000,
            nanos: 0,
        };
        let out = encode(&s);
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[..17], b"rootfs/etc/passwd");
        assert_eq!(&out[100..108], b"0004755\0");
        assert_eq!(&out[108..116], b"0001750\0");
        assert_eq!(&out[116..124], b"0000144\0");
        assert_eq!(&out[124..136], b"00000002322\0");
        assert_eq!(parse_octal(&out[136..148]), 1_600_000_000);
        assert_eq!(out[156], b'0');
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert!(out[265..329].iter().all(|&b| b == 0), "uname/gname empty");
        assert_eq!(out[155], b' ');
        assert!(checksum_ok(&out));
    }

    #[test]
    fn long_path_uses_prefix_when_splittable() {
        let dir = vec![b'd'; 120];
        let mut path = b"rootfs/".to_vec();
        path.extend_from_slice(&dir);
        path.extend_from_slice(b"/file");
        let out = encode(&spec(&path));
        assert_eq!(out.len(), BLOCK, "no pax header needed");
        assert_eq!(&out[..5], b"file\0"[..5].as_ref());
        assert_eq!(&out[345..345 + 127], &path[..127]);
        assert!(checksum_ok(&out));
    }

    #[test]
    fn unsplittable_path_goes_to_pax() {
        // One component of 200 bytes: no split leaves a name of 100 or less.
        let mut path = b"rootfs/".to_vec();
        path.extend(std::iter::repeat_n(b'x', 200));
        let out = encode(&spec(&path));
        assert_eq!(out.len() % BLOCK, 0);
        let recs = pax_records(&out);
        assert_eq!(recs, vec![(b"path".to_vec(), path.clone())]);
        assert!(checksum_ok(&out[..BLOCK]));
        let last = &out[out.len() - BLOCK..];
        assert!(checksum_ok(last));
        assert_eq!(last[156], b'0');
    }

    #[test]
    fn split_rules() {
        assert_eq!(split_path(b"a/b"), Some((&b""[..], &b"a/b"[..])));
        // A prefix of exactly 155 bytes is allowed, 156 is not.
        let mut p = vec![b'p'; 155];
        p.push(b'/');
        p.extend(vec![b'n'; 100]);
        assert_eq!(split_path(&p), Some((&p[..155], &p[156..])));
        let mut q = vec![b'p'; 156];
        q.push(b'/');
        q.extend(vec![b'n'; 10]);
        assert_eq!(split_path(&q), None);
        // A trailing slash would leave an empty name.
        let mut r = vec![b'p'; 120];
        r.push(b'/');
        assert_eq!(split_path(&r), None);
        // A leading slash would leave an empty prefix.
        let mut s = vec![b'/'];
        s.extend(vec![b'n'; 100]);
        assert_eq!(split_path(&s), None);
    }

    #[test]
    fn large_ids_size_and_long_link_go_to_pax() {
        let mut s = spec(b"rootfs/big");
        s.uid = OCTAL8_MAX + 1;
        s.gid = 4_000_000_000;
        s.size = OCTAL12_MAX + 1;
        let target = vec![b't'; 101];
        s.link = Some(&target);
        s.typeflag = TYPE_SYMLINK;
        let out = encode(&s);
        let recs = pax_records(&out);
        let keys: Vec<&[u8]> = recs.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![&b"gid"[..], b"linkpath", b"size", b"uid"]);
        assert_eq!(recs[0].1, b"4000000000");
        assert_eq!(recs[1].1, target);
        assert_eq!(recs[2].1, (OCTAL12_MAX + 1).to_string().as_bytes());
        assert_eq!(recs[3].1, b"2097152");
        let main = &out[out.len() - BLOCK..];
        assert_eq!(parse_octal(&main[108..116]), 0);
        // Limits themselves still fit.
        let mut t = spec(b"rootfs/edge");
        t.uid = OCTAL8_MAX;
        t.size = OCTAL12_MAX;
        let link100 = vec![b'l'; 100];
        t.link = Some(&link100);
        assert_eq!(encode(&t).len(), BLOCK);
    }

    #[test]
    fn nanosecond_and_negative_mtimes() {
        let mut s = spec(b"rootfs/t");
        s.mtime = Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        };
        let out = encode(&s);
        assert_eq!(
            pax_records(&out),
            vec![(b"mtime".to_vec(), b"1700000000.000000005".to_vec())]
        );
        assert_eq!(
            parse_octal(&out[out.len() - BLOCK + 136..out.len() - BLOCK + 148]),
            1_700_000_000
        );
        let neg = |secs, nanos| format_pax_time(Timestamp { secs, nanos });
        assert_eq!(neg(-2, 500_000_000), b"-1.500000000");
        assert_eq!(neg(-1, 999_999_999), b"-0.000000001");
        assert_eq!(neg(-3, 0), b"-3.000000000");
        s.mtime = Timestamp { secs: -3, nanos: 0 };
        let out = encode(&s);
        assert_eq!(pax_records(&out)[0].1, b"-3.000000000");
    }

    #[test]
    fn xattrs_are_raw_schily_records() {
        let x = vec![
            (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
            (b"user.k".to_vec(), b"v\nw".to_vec()),
        ];
        let mut s = spec(b"rootfs/x");
        s.xattrs = &x;
        let recs = pax_records(&encode(&s));
        assert_eq!(
            recs,
            vec![
                (
                    b"SCHILY.xattr.security.capability".to_vec(),
                    vec![1, 0, 0, 2]
                ),
                (b"SCHILY.xattr.user.k".to_vec(), b"v\nw".to_vec()),
            ]
        );
        let bad = vec![(b"user.a=b".to_vec(), vec![])];
        s.xattrs = &bad;
        assert!(matches!(
            encode_header(&s, &mut Vec::new()),
            Err(HeaderError::XattrName { .. })
        ));
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        // Values around the point where the length gains a digit.
        for vlen in 0..300 {
            let mut out = Vec::new();
            push_pax_record(&mut out, b"path", &vec![b'a'; vlen]);
            let sp = out.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, out.len(), "value length {vlen}");
        }
    }

    #[test]
    fn device_numbers_and_limits() {
        let mut s = spec(b"rootfs/dev/null");
        s.typeflag = TYPE_CHAR;
        s.dev_major = 1;
        s.dev_minor = 3;
        let out = encode(&s);
        assert_eq!(&out[329..337], b"0000001\0");
        assert_eq!(&out[337..345], b"0000003\0");
        s.dev_major = OCTAL8_MAX + 1;
        assert!(matches!(
            encode_header(&s, &mut Vec::new()),
            Err(HeaderError::DeviceNumberTooLarge { .. })
        ));
    }

    #[test]
    fn pax_header_names_are_ascii_and_short() {
        let mut path = b"rootfs/\xff\xfe".to_vec();
        path.extend(vec![b'z'; 300]);
        let name = pax_header_name(&path);
        assert_eq!(name.len(), 100);
        assert!(name.starts_with(b"PaxHeaders.0/__z"));
        assert!(name.iter().all(u8::is_ascii_graphic));
    }

    #[test]
    fn sink_hashes_what_it_writes_and_ends_with_two_zero_blocks() {
        let mut sink = TarSink::with_hasher(Vec::new(), IdHasher::new());
        sink.write_all(b"abc").unwrap();
        sink.pad().unwrap();
        assert_eq!(sink.len(), BLOCK as u64);
        let (bytes, id, len) = sink.finish().unwrap();
        assert_eq!(len, 3 * BLOCK as u64);
        assert_eq!(bytes.len(), 3 * BLOCK);
        assert!(bytes[3..].iter().all(|&b| b == 0));
        let mut h = IdHasher::new();
        h.update(&bytes);
        assert_eq!(h.finish(), id);
    }
}
