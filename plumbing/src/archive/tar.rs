//! A push parser for tar streams: ustar, GNU (`L`/`K` long names) and PAX
//! (`x` per-entry records; `g` global records are read and ignored), the
//! dialects Go's `archive/tar` reads (aci-format §11.1).
//!
//! It is fed the uncompressed stream in chunks of any size, keeps exact
//! offsets, copies only header and extended-header bytes (plus the manifest's
//! data), and enforces [`Limits`] before buffering anything. We parse
//! ourselves instead of using the `tar` crate because that crate reads from a
//! `Read` it owns, does not expose where PAX/GNU headers start, and reads
//! extended headers of any size into memory.

use super::layout::clean_path;
use crate::entry::{Entry, EntryKind, Timestamp};
use crate::limits::{LimitExceeded, LimitKind, Limits};
use crate::quote::quote_path;

const BLOCK: usize = 512;
const BLOCK_U64: u64 = BLOCK as u64;

/// An entry named by its path, or by the offset of its header when the
/// path is not known (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryRef {
    /// The entry's path as written in the archive (before cleaning).
    Path(Vec<u8>),
    /// Offset of the header block in the uncompressed stream.
    Offset(u64),
}

impl std::fmt::Display for EntryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryRef::Path(path) => f.write_str(&quote_path(path)),
            EntryRef::Offset(offset) => write!(f, "header at offset {offset}"),
        }
    }
}

/// Why a byte stream is not a tar archive acido accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    /// A header block's checksum does not match its contents.
    #[error("header at offset {offset}: bad checksum (stored {stored}, computed {computed})")]
    BadChecksum {
        /// Offset of the header block.
        offset: u64,
        /// The checksum the header claims.
        stored: i64,
        /// The unsigned sum of the header bytes.
        computed: i64,
    },
    /// A numeric header field is not octal or base-256, or out of range.
    #[error("{entry}: bad {field} field in tar header")]
    BadNumber {
        /// The entry.
        entry: EntryRef,
        /// The header field (`size`, `uid`, `mtime`, ...).
        field: &'static str,
    },
    /// A PAX extended header is malformed.
    #[error("{entry}: malformed pax record: {problem}")]
    BadPax {
        /// The entry (the PAX header's offset).
        entry: EntryRef,
        /// What is wrong.
        problem: &'static str,
    },
    /// A zero block followed by a non-zero block, which is neither an
    /// end-of-archive marker nor a header.
    #[error("offset {offset}: zero block followed by data (corrupt end-of-archive marker)")]
    BadEndMarker {
        /// Offset of the zero block.
        offset: u64,
    },
    /// The stream ended inside an entry, its header or its data.
    #[error("{entry}: archive ends early ({what})")]
    Truncated {
        /// The entry being read.
        entry: EntryRef,
        /// What was being read.
        what: &'static str,
    },
    /// An entry type acido cannot represent (contiguous `7`, GNU sparse `S`,
    /// volume labels, vendor extensions, ...).
    #[error("{entry}: unsupported tar entry type {:?}", char::from(*typeflag))]
    UnsupportedType {
        /// The entry.
        entry: EntryRef,
        /// The typeflag byte.
        typeflag: u8,
    },
    /// An entry has an empty name.
    #[error("{entry}: entry has an empty name")]
    EmptyName {
        /// The entry.
        entry: EntryRef,
    },
    /// A name or link target contains a NUL byte (possible only via PAX).
    #[error("{entry}: name or link target contains a NUL byte")]
    NulInName {
        /// The entry.
        entry: EntryRef,
    },
    /// An absolute entry name (aci-format §1: the reference rejects `/rootfs/x`).
    #[error("{}: absolute path in archive", quote_path(path))]
    AbsolutePath {
        /// The name as written.
        path: Vec<u8>,
    },
    /// A name whose cleaning climbs out of the archive root with `..`.
    #[error("{}: path escapes the archive root", quote_path(path))]
    EscapesRoot {
        /// The name as written.
        path: Vec<u8>,
    },
    /// A hard-link target that is absolute or escapes the archive root.
    #[error(
        "{}: hard link target {} is absolute or escapes the archive root",
        quote_path(path),
        quote_path(target)
    )]
    BadLinkTarget {
        /// The link's name as written.
        path: Vec<u8>,
        /// The target as written.
        target: Vec<u8>,
    },
    /// A [`Limits`] bound was exceeded.
    #[error("{entry}: {limit} ({value} > {max})")]
    LimitExceeded {
        /// The entry.
        entry: EntryRef,
        /// Which limit (its text is `"{phrase} exceeded"`).
        #[source]
        limit: LimitExceeded,
        /// The value found.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// An extended header (PAX or GNU) with no entry after it.
    #[error("{entry}: extended header not followed by an entry")]
    DanglingExtendedHeader {
        /// The extended header.
        entry: EntryRef,
    },
}

/// What the parser is doing with the bytes it is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a header block.
    Header,
    /// Saw one zero block; a second (or the end of input) ends the archive.
    SecondZero {
        /// Offset of the first zero block.
        offset: u64,
    },
    /// Inside an entry's (or extended header's) data and padding.
    Body {
        data_left: u64,
        pad_left: u64,
        sink: Sink,
    },
    /// After the end-of-archive marker: nothing more to parse.
    Done,
}

/// Where body bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Discard,
    Manifest,
    Pax,
    GlobalPax,
    LongName,
    LongLink,
}

/// Extended-header values waiting for the entry they apply to.
#[derive(Debug, Default)]
struct Pending {
    first_offset: Option<u64>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Pax,
}

#[derive(Debug, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Timestamp>,
    atime: Option<Timestamp>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The entries and manifest bytes parsed from a tar stream.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The entries in archive order, paths cleaned, `.` left out.
    pub entries: Vec<Entry>,
    /// The data of the first regular `manifest` entry, if any.
    pub manifest: Option<Vec<u8>>,
}

/// Incremental tar parser; see the module docs.
#[derive(Debug)]
pub struct TarParser<'l> {
    limits: &'l Limits,
    /// Bytes fed so far.
    offset: u64,
    state: State,
    block: [u8; BLOCK],
    fill: usize,
    /// Offset of the block in `block`.
    block_offset: u64,
    /// Body bytes being kept (extended headers, the manifest).
    capture: Vec<u8>,
    /// Whose body is being read, for errors.
    body_entry: Option<EntryRef>,
    pending: Pending,
    parsed: Parsed,
}

impl<'l> TarParser<'l> {
    /// A parser at the start of a stream.
    pub fn new(limits: &'l Limits) -> Self {
        TarParser {
            limits,
            offset: 0,
            state: State::Header,
            block: [0; BLOCK],
            fill: 0,
            block_offset: 0,
            capture: Vec::new(),
            body_entry: None,
            pending: Pending::default(),
            parsed: Parsed::default(),
        }
    }

    /// Whether the end-of-archive marker has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The entry the next byte belongs to: the one whose data (or
    /// extended header) is being read, else the header being collected,
    /// named by its offset.
    pub fn current_entry(&self) -> EntryRef {
        match (&self.state, &self.body_entry) {
            (State::Body { .. }, Some(who)) => who.clone(),
            (State::Done, _) => EntryRef::Offset(self.offset),
            _ if self.fill == 0 => EntryRef::Offset(self.offset),
            _ => EntryRef::Offset(self.block_offset),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TarError> {
        while !data.is_empty() {
            match self.state {
                State::Done => {
                    self.offset += data.len() as u64;
                    return Ok(());
                }
                State::Header | State::SecondZero { .. } => {
                    if self.fill == 0 {
                        self.block_offset = self.offset;
                    }
                    let take = (BLOCK - self.fill).min(data.len());
                    self.block[self.fill..self.fill + take].copy_from_slice(&data[..take]);
                    self.fill += take;
                    self.offset += take as u64;
                    data = &data[take..];
                    if self.fill == BLOCK {
                        self.fill = 0;
                        self.on_block()?;
                    }
                }
                State::Body {
                    data_left,
                    pad_left,
                    sink,
                } => {
                    let avail = data.len() as u64;
                    let take_data = data_left.min(avail);
                    // Fits in usize: it is at most data.len().
                    let (body, rest) = data.split_at(take_data as usize);
                    if sink != Sink::Discard {
                        self.capture.extend_from_slice(body);
                    }
                    let take_pad = pad_left.min(avail - take_data);
                    data = &rest[take_pad as usize..];
                    self.offset += take_data + take_pad;
                    let (data_left, pad_left) = (data_left - take_data, pad_left - take_pad);
                    if data_left == 0 && pad_left == 0 {
                        self.state = State::Header;
                        self.end_body(sink)?;
                    } else {
                        self.state = State::Body {
                            data_left,
                            pad_left,
                            sink,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: fails if it stopped inside an entry.
    ///
    /// Like Go's reader, a stream that ends on a header boundary without the
    /// end-of-archive marker (or after only one of its zero blocks) is complete.
    pub fn finish(self) -> Result<Parsed, TarError> {
        let here = EntryRef::Offset(self.block_offset);
        match self.state {
            State::Done => {}
            State::SecondZero { .. } | State::Header if self.fill == 0 => {
                if let Some(first) = self.pending.first_offset {
                    return Err(TarError::DanglingExtendedHeader {
                        entry: EntryRef::Offset(first),
                    });
                }
            }
            State::SecondZero { .. } | State::Header => {
                return Err(TarError::Truncated {
                    entry: here,
                    what: "inside a header block",
                })
            }
            State::Body { .. } => {
                return Err(TarError::Truncated {
                    entry: self.body_entry.unwrap_or(here),
                    what: "inside entry data",
                });
            }
        }
        Ok(self.parsed)
    }

    fn on_block(&mut self) -> Result<(), TarError> {
        let offset = self.block_offset;
        let zero = self.block.iter().all(|&b| b == 0);
        match self.state {
            State::SecondZero { offset: first } => {
                if zero {
                    if let Some(ext) = self.pending.first_offset {
                        return Err(TarError::DanglingExtendedHeader {
                            entry: EntryRef::Offset(ext),
                        });
                    }
                    self.state = State::Done;
                    return Ok(());
                }
                return Err(TarError::BadEndMarker { offset: first });
            }
            _ if zero => {
                self.state = State::SecondZero { offset };
                return Ok(());
            }
            _ => {}
        }
        let block = self.block;
        let header = Header::new(&block, offset)?;
        let typeflag = header.typeflag();
        match typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                let size = header.size()?;
                if size > self.limits.max_extended_header_size {
                    return Err(TarError::LimitExceeded {
                        entry: EntryRef::Offset(offset),
                        limit: LimitExceeded::new(LimitKind::ExtendedHeader),
                        value: size,
                        max: self.limits.max_extended_header_size,
                    });
                }
                if typeflag != b'g' {
                    self.pending.first_offset.get_or_insert(offset);
                }
                let sink = match typeflag {
                    b'x' => Sink::Pax,
                    b'g' => Sink::GlobalPax,
                    b'L' => Sink::LongName,
                    _ => Sink::LongLink,
                };
                self.start_body(size, sink, EntryRef::Offset(offset))
            }
            _ => self.on_entry(&header, typeflag),
        }
    }

    fn start_body(&mut self, size: u64, sink: Sink, who: EntryRef) -> Result<(), TarError> {
        self.capture.clear();
        self.body_entry = Some(who);
        let pad = (BLOCK_U64 - size % BLOCK_U64) % BLOCK_U64;
        if size == 0 {
            return self.end_body(sink);
        }
        self.state = State::Body {
            data_left: size,
            pad_left: pad,
            sink,
        };
        Ok(())
    }

    fn end_body(&mut self, sink: Sink) -> Result<(), TarError> {
        let data = std::mem::take(&mut self.capture);
        let at = EntryRef::Offset(self.pending.first_offset.unwrap_or(self.block_offset));
        match sink {
            Sink::Discard => {}
            Sink::Manifest => self.parsed.manifest = Some(data),
            // Global records would apply to every later entry; nothing acido
            // keeps is commonly set there, and the reference drops them too.
            Sink::GlobalPax => parse_pax(&data, &at, &mut Pax::default())?,
            Sink::Pax => {
                // A second PAX header replaces the first, as in Go's reader.
                let mut pax = Pax::default();
                parse_pax(&data, &at, &mut pax)?;
                self.pending.pax = pax;
            }
            Sink::LongName | Sink::LongLink => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                let mut name = data;
                name.truncate(end);
                if sink == Sink::LongName {
                    self.pending.long_name = Some(name);
                } else {
                    self.pending.long_link = Some(name);
                }
            }
        }
        Ok(())
    }

    fn on_entry(&mut self, header: &Header<'_>, typeflag: u8) -> Result<(), TarError> {
        let pending = std::mem::take(&mut self.pending);
        let header_offset = pending.first_offset.unwrap_or(self.block_offset);
        let data_offset = self.offset;
        let raw_name = match (pending.pax.path, pending.long_name) {
            (Some(path), _) | (None, Some(path)) => path,
            (None, None) => header.name(),
        };
        let at = || EntryRef::Path(raw_name.clone());
        if raw_name.len() > self.limits.max_path_len {
            return Err(TarError::LimitExceeded {
                entry: EntryRef::Offset(header_offset),
                limit: LimitExceeded::new(LimitKind::PathLength),
                value: raw_name.len() as u64,
                max: self.limits.max_path_len as u64,
            });
        }
        let kind = match typeflag {
            b'0' => EntryKind::Regular,
            // The old `\0` typeflag: a directory when the name ends in `/`
            // (aci-format §11.1).
            0 if raw_name.ends_with(b"/") => EntryKind::Directory,
            0 => EntryKind::Regular,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            _ => {
                return Err(TarError::UnsupportedType {
                    entry: at(),
                    typeflag,
                })
            }
        };
        if raw_name.is_empty() {
            return Err(TarError::EmptyName {
                entry: EntryRef::Offset(header_offset),
            });
        }
        if raw_name.contains(&0) {
            return Err(TarError::NulInName { entry: at() });
        }
        if raw_name.starts_with(b"/") {
            return Err(TarError::AbsolutePath { path: raw_name });
        }
        let path = clean_path(&raw_name);
        if escapes(&path) {
            return Err(TarError::EscapesRoot { path: raw_name });
        }

        let link_target = match kind {
            EntryKind::HardLink | EntryKind::Symlink => {
                let raw = pending
                    .pax
                    .linkpath
                    .or(pending.long_link)
                    .unwrap_or_else(|| header.linkname());
                if raw.len() > self.limits.max_link_target_len {
                    return Err(TarError::LimitExceeded {
                        entry: at(),
                        limit: LimitExceeded::new(LimitKind::LinkLength),
                        value: raw.len() as u64,
                        max: self.limits.max_link_target_len as u64,
                    });
                }
                if raw.contains(&0) {
                    return Err(TarError::NulInName { entry: at() });
                }
                if kind == EntryKind::HardLink {
                    // Hard-link names are relative to the archive root
                    // (aci-format §11.2) and compared after cleaning.
                    let cleaned = clean_path(&raw);
                    if raw.starts_with(b"/") || escapes(&cleaned) || cleaned == b"." {
                        return Err(TarError::BadLinkTarget {
                            path: raw_name,
                            target: raw,
                        });
                    }
                    Some(cleaned)
                } else {
                    Some(raw)
                }
            }
            _ => None,
        };

        let number = |field: &'static str, value: Result<i64, ()>| {
            value.map_err(|()| TarError::BadNumber { entry: at(), field })
        };
        let unsigned = |field: &'static str, value: Result<i64, ()>| {
            number(field, value).and_then(|v| {
                u64::try_from(v).map_err(|_| TarError::BadNumber { entry: at(), field })
            })
        };
        let header_size = unsigned("size", header.numeric(124, 12))?;
        // Go's reader gives header-only types no data, whatever the size
        // field says, and so do we: the next header follows directly.
        let size = if kind == EntryKind::Regular {
            pending.pax.size.unwrap_or(header_size)
        } else {
            0
        };
        let mode = unsigned("mode", header.numeric(100, 8))? & 0o7777;
        let uid = match pending.pax.uid {
            Some(uid) => uid,
            None => unsigned("uid", header.numeric(108, 8))?,
        };
        let gid = match pending.pax.gid {
            Some(gid) => gid,
            None => unsigned("gid", header.numeric(116, 8))?,
        };
        let mtime = match pending.pax.mtime {
            Some(t) => t,
            None => Timestamp {
                secs: number("mtime", header.numeric(136, 12))?,
                nanos: 0,
            },
        };
        let atime = match pending.pax.atime {
            Some(t) => Some(t),
            // GNU headers keep an atime where ustar has the name prefix.
            None if header.is_gnu() => {
                let secs = number("atime", header.numeric(345, 12))?;
                (secs != 0).then_some(Timestamp { secs, nanos: 0 })
            }
            None => None,
        };
        let (dev_major, dev_minor) = match kind {
            EntryKind::CharDevice | EntryKind::BlockDevice if header.has_ustar_fields() => {
                let major = unsigned("devmajor", header.numeric(329, 8))?;
                let minor = unsigned("devminor", header.numeric(337, 8))?;
                let narrow = |field, v: u64| {
                    u32::try_from(v).map_err(|_| TarError::BadNumber { entry: at(), field })
                };
                (narrow("devmajor", major)?, narrow("devminor", minor)?)
            }
            _ => (0, 0),
        };

        let is_manifest = path == b"manifest" && kind == EntryKind::Regular;
        if is_manifest && size > self.limits.max_manifest_size {
            return Err(TarError::LimitExceeded {
                entry: at(),
                limit: LimitExceeded::new(LimitKind::ManifestSize),
                value: size,
                max: self.limits.max_manifest_size,
            });
        }
        if path == b"." {
            // The archive root itself carries nothing acido keeps; the
            // reference skips it too (aci-format §1 step 2).
            return self.start_body(size, Sink::Discard, at());
        }
        if self.parsed.entries.len() >= self.limits.max_entries {
            return Err(TarError::LimitExceeded {
                entry: at(),
                limit: LimitExceeded::new(LimitKind::Entries),
                value: self.parsed.entries.len() as u64 + 1,
                max: self.limits.max_entries as u64,
            });
        }
        let who = at();
        self.parsed.entries.push(Entry {
            path,
            kind,
            mode: mode as u32,
            uid,
            gid,
            mtime,
            atime,
            size,
            header_offset,
            data_offset,
            link_target,
            dev_major,
            dev_minor,
            xattrs: pending.pax.xattrs,
        });
        // Only the first manifest is kept; a second one is a layout error.
        let sink = if is_manifest && self.parsed.manifest.is_none() {
            Sink::Manifest
        } else {
            Sink::Discard
        };
        self.start_body(size, sink, who)
    }
}

/// Whether a cleaned relative path climbs out of the root.
fn escapes(cleaned: &[u8]) -> bool {
    cleaned == b".." || cleaned.starts_with(b"../")
}

/// A checked view of one header block.
struct Header<'b> {
    block: &'b [u8; BLOCK],
    offset: u64,
}

impl<'b> Header<'b> {
    fn new(block: &'b [u8; BLOCK], offset: u64) -> Result<Self, TarError> {
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

    fn typeflag(&self) -> u8 {
        self.block[156]
    }

    fn is_gnu(&self) -> bool {
        &self.block[257..265] == b"ustar  \0"
    }

    fn is_ustar(&self) -> bool {
        &self.block[257..263] == b"ustar\0"
    }

    fn has_ustar_fields(&self) -> bool {
        self.is_ustar() || self.is_gnu()
    }

    fn name(&self) -> Vec<u8> {
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

    fn linkname(&self) -> Vec<u8> {
        cstr(&self.block[157..257]).to_vec()
    }

    fn numeric(&self, at: usize, len: usize) -> Result<i64, ()> {
        parse_numeric(&self.block[at..at + len])
    }

    fn size(&self) -> Result<u64, TarError> {
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
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric header field: octal, or GNU base-256 when the high bit of the
/// first byte is set (two's complement, so it can be negative).
fn parse_numeric(field: &[u8]) -> Result<i64, ()> {
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
fn parse_octal(field: &[u8]) -> Result<i64, ()> {
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

/// Parses PAX records (`"%d %s=%s\n"`, the length counting the whole
/// record) into `pax`.
fn parse_pax(mut data: &[u8], at: &EntryRef, pax: &mut Pax) -> Result<(), TarError> {
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

fn decimal(value: &[u8]) -> Result<u64, ()> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    std::str::from_utf8(value)
        .map_err(|_| ())?
        .parse()
        .map_err(|_| ())
}

/// A PAX time: `[-]SECS[.FRACTION]`, fractions beyond nanoseconds cut off.
fn pax_time(value: &[u8]) -> Result<Timestamp, ()> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ustar header block with a correct checksum.
    pub(crate) fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..107].copy_from_slice(b"0000644");
        b[108..115].copy_from_slice(b"0001750");
        b[116..123].copy_from_slice(b"0000144");
        b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        b[136..147].copy_from_slice(b"13727410000");
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        fix_checksum(&mut b);
        b
    }

    pub(crate) fn fix_checksum(b: &mut [u8; BLOCK]) {
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }

    /// Appends an entry (header plus padded data) to `out`.
    pub(crate) fn push(out: &mut Vec<u8>, block: [u8; BLOCK], data: &[u8]) {
        out.extend_from_slice(&block);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }

    pub(crate) fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3;
        // The length counts its own digits.
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len += 1;
        }
        let mut rec = format!("{len} {key}=").into_bytes();
        rec.extend_from_slice(value);
        rec.push(b'\n');
        rec
    }

    /// A minimal valid image: manifest, rootfs, rootfs/etc, rootfs/etc/hello.
    pub(crate) fn minimal() -> Vec<u8> {
        let mut t = Vec::new();
        push(&mut t, header(b"manifest", b'0', 2), b"{}");
        push(&mut t, header(b"rootfs/", b'5', 0), b"");
        push(&mut t, header(b"rootfs/etc/", b'5', 0), b"");
        push(&mut t, header(b"rootfs/etc/hello", b'0', 6), b"hello\n");
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    fn parse(bytes: &[u8]) -> Result<Parsed, TarError> {
        let limits = Limits::default();
        let mut p = TarParser::new(&limits);
        p.feed(bytes)?;
        p.finish()
    }

    #[test]
    fn parses_offsets_and_metadata_in_any_chunking() {
        let t = minimal();
        let whole = parse(&t).unwrap();
        assert_eq!(whole.manifest.as_deref(), Some(&b"{}"[..]));
        let paths: Vec<&[u8]> = whole.entries.iter().map(|e| e.path.as_slice()).collect();
        assert_eq!(
            paths,
            [
                &b"manifest"[..],
                b"rootfs",
                b"rootfs/etc",
                b"rootfs/etc/hello"
            ]
        );
        let hello = &whole.entries[3];
        assert_eq!(
            (hello.header_offset, hello.data_offset, hello.size),
            (2048, 2560, 6)
        );
        assert_eq!(&t[hello.data_offset as usize..][..6], b"hello\n");
        assert_eq!((hello.mode, hello.uid, hello.gid), (0o644, 1000, 100));
        assert_eq!(
            hello.mtime,
            Timestamp {
                secs: 1_600_000_000,
                nanos: 0
            }
        );
        assert!(whole.entries[1].kind.is_dir());

        for step in [1, 7, 511, 512, 513] {
            let limits = Limits::default();
            let mut p = TarParser::new(&limits);
            for chunk in t.chunks(step) {
                p.feed(chunk).unwrap();
            }
            let parsed = p.finish().unwrap();
            assert_eq!(parsed.entries, whole.entries, "step {step}");
            assert_eq!(parsed.manifest, whole.manifest);
        }
    }

    #[test]
    fn reads_pax_records() {
        let long = format!("rootfs/{}", "d/".repeat(80) + "file");
        let mut pax = Vec::new();
        pax.extend(pax_record("path", long.as_bytes()));
        pax.extend(pax_record("mtime", b"1600000000.123456789"));
        pax.extend(pax_record("atime", b"-1.25"));
        pax.extend(pax_record("uid", b"4294967296"));
        pax.extend(pax_record("size", b"3"));
        pax.extend(pax_record("SCHILY.xattr.user.k", b"v\0w"));
        pax.extend(pax_record("SCHILY.xattr.security.capability", b"\x01"));
        pax.extend(pax_record("comment", b"ignored"));
        let mut t = Vec::new();
        let global = pax_record("comment", b"global");
        push(
            &mut t,
            header(b"pax_global_header", b'g', global.len() as u64),
            &global,
        );
        push(
            &mut t,
            header(b"PaxHeaders/x", b'x', pax.len() as u64),
            &pax,
        );
        push(&mut t, header(b"short", b'0', 99), b"abc");
        let parsed = parse(&t).unwrap();
        let e = &parsed.entries[0];
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(e.header_offset, 1024, "the pax header, not the global one");
        assert_eq!(
            e.data_offset,
            1024 + 512 + 512 * (pax.len() as u64).div_ceil(512) + 512
        );
        assert_eq!(e.size, 3);
        assert_eq!(e.uid, 1 << 32);
        assert_eq!(
            e.mtime,
            Timestamp {
                secs: 1_600_000_000,
                nanos: 123_456_789
            }
        );
        assert_eq!(
            e.atime,
            Some(Timestamp {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(
            e.xattrs,
            vec![
                (b"user.k".to_vec(), b"v\0w".to_vec()),
                (b"security.capability".to_vec(), b"\x01".to_vec())
            ]
        );
    }

    #[test]
    fn reads_gnu_long_names_and_links() {
        let name = format!("rootfs/{}", "n".repeat(150));
        let target = format!("rootfs/{}", "t".repeat(150));
        let mut t = Vec::new();
        push(&mut t, header(b"rootfs/t", b'0', 0), b"");
        let mut long = header(b"././@LongLink", b'L', name.len() as u64 + 1);
        long[257..265].copy_from_slice(b"ustar  \0");
        fix_checksum(&mut long);
        push(&mut t, long, format!("{name}\0").as_bytes());
        push(
            &mut t,
            header(b"././@LongLink", b'K', target.len() as u64),
            target.as_bytes(),
        );
        let mut link = header(b"truncated", b'1', 0);
        link[257..265].copy_from_slice(b"ustar  \0");
        link[345..356].copy_from_slice(b"13727410001");
        fix_checksum(&mut link);
        push(&mut t, link, b"");
        let parsed = parse(&t).unwrap();
        let e = &parsed.entries[1];
        assert_eq!(e.path, name.as_bytes());
        assert_eq!(e.kind, EntryKind::HardLink);
        assert_eq!(e.link_target.as_deref(), Some(target.as_bytes()));
        assert_eq!(e.header_offset, 512);
        assert_eq!(
            e.atime,
            Some(Timestamp {
                secs: 1_600_000_001,
                nanos: 0
            })
        );
    }

    #[test]
    fn ustar_prefix_old_typeflag_devices_and_base256() {
        let mut t = Vec::new();
        let mut dir = header(b"dir/", 0, 0);
        dir[345..351].copy_from_slice(b"rootfs");
        fix_checksum(&mut dir);
        push(&mut t, dir, b"");
        push(&mut t, header(b"rootfs/file", 0, 0), b"");
        let mut dev = header(b"rootfs/null", b'3', 0);
        dev[329..336].copy_from_slice(b"0000001");
        dev[337..344].copy_from_slice(b"0000003");
        // Base-256 uid and a negative base-256 mtime.
        dev[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]);
        dev[136..148].copy_from_slice(&[0xff; 12]);
        fix_checksum(&mut dev);
        push(&mut t, dev, b"");
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.entries[0].path, b"rootfs/dir");
        assert_eq!(parsed.entries[0].kind, EntryKind::Directory);
        assert_eq!(parsed.entries[1].kind, EntryKind::Regular);
        let dev = &parsed.entries[2];
        assert_eq!(
            (dev.kind, dev.dev_major, dev.dev_minor),
            (EntryKind::CharDevice, 1, 3)
        );
        assert_eq!(dev.uid, 256);
        assert_eq!(dev.mtime.secs, -1);
    }

    #[test]
    fn header_only_types_have_no_data() {
        // Go's reader ignores the size of a directory: the next header follows.
        let mut t = Vec::new();
        push(&mut t, header(b"rootfs", b'5', 1024), b"");
        push(&mut t, header(b"rootfs/a", b'0', 1), b"x");
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        assert_eq!(parsed.entries[0].size, 0);
    }

    #[test]
    fn rejects_bad_headers_with_the_entry_named() {
        let mut bad_sum = header(b"rootfs/a", b'0', 0);
        bad_sum[0] = b'x';
        assert!(matches!(
            parse(&bad_sum),
            Err(TarError::BadChecksum { offset: 0, .. })
        ));

        let err = parse(&header(b"rootfs/c", b'7', 0)).unwrap_err();
        assert_eq!(err.to_string(), "rootfs/c: unsupported tar entry type '7'");
        assert!(matches!(
            parse(&header(b"rootfs/s", b'S', 0)),
            Err(TarError::UnsupportedType { typeflag: b'S', .. })
        ));
        assert!(matches!(
            parse(&header(b"/rootfs/x", b'0', 0)),
            Err(TarError::AbsolutePath { .. })
        ));
        assert!(matches!(
            parse(&header(b"rootfs/../../x", b'0', 0)),
            Err(TarError::EscapesRoot { .. })
        ));
        assert!(matches!(
            parse(&header(b"", b'0', 0)),
            Err(TarError::EmptyName { .. })
        ));

        let mut link = header(b"rootfs/l", b'1', 0);
        link[157..167].copy_from_slice(b"/etc/passw");
        fix_checksum(&mut link);
        assert!(matches!(parse(&link), Err(TarError::BadLinkTarget { .. })));

        let mut bad_size = header(b"rootfs/a", b'0', 0);
        bad_size[124..135].copy_from_slice(b"0000000009x");
        fix_checksum(&mut bad_size);
        assert!(matches!(
            parse(&bad_size),
            Err(TarError::BadNumber { field: "size", .. })
        ));

        let mut pax_bad = Vec::new();
        push(&mut pax_bad, header(b"x", b'x', 9), b"99 path=a");
        assert!(matches!(parse(&pax_bad), Err(TarError::BadPax { .. })));
        let mut sparse = Vec::new();
        let rec = pax_record("GNU.sparse.major", b"1");
        push(&mut sparse, header(b"x", b'x', rec.len() as u64), &rec);
        push(&mut sparse, header(b"rootfs/s", b'0', 0), b"");
        assert!(matches!(parse(&sparse), Err(TarError::BadPax { .. })));
    }

    #[test]
    fn end_of_archive_rules() {
        let t = minimal();
        // Missing end marker, or only one zero block: complete, like Go.
        assert!(parse(&t[..t.len() - 1024]).is_ok());
        assert!(parse(&t[..t.len() - 512]).is_ok());
        // Anything after the marker is not parsed.
        let mut trailing = t.clone();
        trailing.extend_from_slice(b"garbage after the end");
        assert_eq!(parse(&trailing).unwrap().entries.len(), 4);
        // A zero block then a non-zero block is corrupt.
        let mut odd = t[..t.len() - 1024].to_vec();
        odd.extend_from_slice(&[0u8; 512]);
        odd.extend_from_slice(&header(b"rootfs/z", b'0', 0));
        assert!(matches!(parse(&odd), Err(TarError::BadEndMarker { .. })));
        // Cut inside data, inside a header, after a dangling pax header.
        let err = parse(&t[..2560 + 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rootfs/etc/hello: archive ends early (inside entry data)"
        );
        assert!(matches!(parse(&t[..100]), Err(TarError::Truncated { .. })));
        let mut dangling = Vec::new();
        let rec = pax_record("path", b"rootfs/p");
        push(&mut dangling, header(b"x", b'x', rec.len() as u64), &rec);
        assert!(matches!(
            parse(&dangling),
            Err(TarError::DanglingExtendedHeader { .. })
        ));
    }

    #[test]
    fn limits_are_enforced_and_named() {
        let t = minimal();
        let check = |limits: Limits, what: &str| {
            let mut p = TarParser::new(&limits);
            let err = p
                .feed(&t)
                .and_then(|()| p.finish().map(|_| ()))
                .unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
        };
        check(
            Limits {
                max_entries: 3,
                ..Limits::default()
            },
            "rootfs/etc/hello: maximum number of entries exceeded",
        );
        check(
            Limits {
                max_manifest_size: 1,
                ..Limits::default()
            },
            "manifest: maximum manifest size exceeded (2 > 1)",
        );
        check(
            Limits {
                max_path_len: 10,
                ..Limits::default()
            },
            "header at offset 1536: maximum path length exceeded (11 > 10)",
        );

        let mut pax = Vec::new();
        let rec = pax_record("path", &[b'a'; 2000]);
        push(&mut pax, header(b"x", b'x', rec.len() as u64), &rec);
        let limits = Limits {
            max_extended_header_size: 1000,
            ..Limits::default()
        };
        let mut p = TarParser::new(&limits);
        assert!(matches!(p.feed(&pax), Err(TarError::LimitExceeded { .. })));
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"  0755 \0"), Ok(0o755));
        assert_eq!(parse_numeric(b"\0\0\0"), Ok(0));
        assert_eq!(parse_numeric(b"12 3"), Err(()));
        assert_eq!(parse_numeric(b"8"), Err(()));
        assert_eq!(parse_numeric(&[0x80, 0, 0, 1, 0]), Ok(256));
        assert_eq!(parse_numeric(&[0xff, 0xff, 0xff, 0xfe]), Ok(-2));
        assert_eq!(parse_numeric(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0]), Err(()));
        assert_eq!(parse_numeric(b"777777777777777777777777"), Err(()));
        assert_eq!(pax_time(b"5"), Ok(Timestamp { secs: 5, nanos: 0 }));
        assert_eq!(
            pax_time(b"5.1234567891"),
            Ok(Timestamp {
                secs: 5,
                nanos: 123_456_789
            })
        );
        assert_eq!(pax_time(b"-3"), Ok(Timestamp { secs: -3, nanos: 0 }));
        assert!(pax_time(b"x").is_err());
        assert!(pax_time(b"1.2.3").is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn mutated_archives_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut t = minimal();
            for (at, value) in flips {
                let len = t.len();
                t[at % len] = value;
                // Keep many mutations past the checksum so deeper code runs.
                if at % 3 == 0 {
                    let start = (at % len) / BLOCK * BLOCK;
                    if let Ok(block) = <&mut [u8; BLOCK]>::try_from(&mut t[start..start + BLOCK]) {
                        fix_checksum(block);
                    }
                }
            }
            let len = t.len();
            t.truncate(len - cut % 600);
            let _ = parse(&t);
        }
    }
}
