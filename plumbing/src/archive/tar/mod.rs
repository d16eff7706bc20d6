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
//!
//! The state machine ([`TarParser`]) is here; `header` reads one header
//! block's fields, `pax` the PAX records.

mod header;
mod pax;
#[cfg(test)]
pub(crate) mod tests;

use self::header::Header;
use self::pax::parse_pax;
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
    /// The last entry naming the archive root (`./`), which is not in
    /// `entries`.
    pub root: Option<Entry>,
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
        if path != b"." && self.parsed.entries.len() >= self.limits.max_entries {
            return Err(TarError::LimitExceeded {
                entry: at(),
                limit: LimitExceeded::new(LimitKind::Entries),
                value: self.parsed.entries.len() as u64 + 1,
                max: self.limits.max_entries as u64,
            });
        }
        let who = at();
        let entry = Entry {
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
        };
        if entry.path == b"." {
            // The archive root is not an entry of an ACI (the reference
            // skips it, aci-format §1 step 2); an OCI layer's `./` gives
            // the root directory's attributes, so the last one is kept
            // apart.
            self.parsed.root = Some(entry);
            return self.start_body(size, Sink::Discard, who);
        }
        self.parsed.entries.push(entry);
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
