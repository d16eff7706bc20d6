//! Decompression (aci-format §2) on a second thread.
//!
//! Decoding xz or bzip2 costs about as much CPU as hashing the result, so
//! the decoder runs on its own thread and hands the caller large buffers
//! through a small bounded channel; the caller hashes, writes and parses
//! them on its own thread. That is the same split as `xz -dc | sha512sum`
//! and keeps memory bounded (a few buffers) whatever the image size.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use super::detect::{detect, SNIFF_LEN};
use super::ArchiveError;
use crate::compression::Compression;

/// Size of each buffer handed from the decoder thread to the caller.
pub const CHUNK_SIZE: usize = 1 << 20;
/// How many filled buffers may wait for the caller.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// A reader that decodes `input` as `compression`.
///
/// gzip and bzip2 read every concatenated member or stream, xz every
/// concatenated stream: the image id covers all of them (aci-format §2).
/// A truncated or corrupt stream is an error, never a short read.
pub fn decoder<'a, R: Read + Send + 'a>(
    compression: Compression,
    input: R,
) -> Box<dyn Read + Send + 'a> {
    match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(input)),
    }
}

/// Reads up to [`SNIFF_LEN`] bytes (fewer only at end of input).
fn read_head(input: &mut dyn Read) -> Result<Vec<u8>, ArchiveError> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    input
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|source| ArchiveError::Read { source })?;
    Ok(head)
}

enum Message {
    Data(Vec<u8>),
    End,
    Failed(io::Error),
}

/// The decompressed stream of an ACI, arriving in chunks from a decoder
/// thread. Dropping it stops the thread at its next send.
pub struct Chunks {
    compression: Compression,
    filled: Receiver<Message>,
    recycle: SyncSender<Vec<u8>>,
    produced: u64,
    finished: bool,
}

impl Chunks {
    /// Detects the compression of `input` and starts decoding it on a new
    /// thread. Fails at once when the format is not one an ACI may use.
    pub fn start(mut input: impl Read + Send + 'static) -> Result<Chunks, ArchiveError> {
        let head = read_head(&mut input)?;
        let compression = detect(&head)?;
        let (fill_tx, filled) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        // Room for every buffer in circulation, so returning one never blocks.
        let (recycle, empties) = mpsc::sync_channel(CHUNKS_IN_FLIGHT + 2);
        let source = io::Cursor::new(head).chain(input);
        thread::Builder::new()
            .name("aci-decompress".into())
            .spawn(move || produce(decoder(compression, source), &fill_tx, &empties))
            .map_err(|source| ArchiveError::Thread { source })?;
        Ok(Chunks {
            compression,
            filled,
            recycle,
            produced: 0,
            finished: false,
        })
    }

    /// The detected compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Calls `each` with every chunk of the decompressed stream in order,
    /// stopping at the first error (the decoder's or `each`'s).
    pub fn for_each(
        mut self,
        mut each: impl FnMut(&[u8]) -> Result<(), ArchiveError>,
    ) -> Result<u64, ArchiveError> {
        while !self.finished {
            match self.filled.recv() {
                Ok(Message::Data(buf)) => {
                    self.produced += buf.len() as u64;
                    each(&buf)?;
                    // The thread may already be gone; then the buffer is freed.
                    let _ = self.recycle.try_send(buf);
                }
                Ok(Message::End) => self.finished = true,
                Ok(Message::Failed(source)) => {
                    return Err(ArchiveError::Decompress {
                        compression: self.compression,
                        offset: self.produced,
                        source,
                    })
                }
                Err(_) => {
                    return Err(ArchiveError::Decompress {
                        compression: self.compression,
                        offset: self.produced,
                        source: io::Error::other("decompression thread stopped"),
                    })
                }
            }
        }
        Ok(self.produced)
    }
}

/// `reader` read on a thread of its own, a few [`CHUNK_SIZE`] buffers
/// ahead of the caller: what the caller reads, errors included, is exactly
/// what `reader` gives, while the caller works on the previous chunk (a
/// pull's layer: the network, its digest and the decoder on one core, the
/// diff id, the parser and the scratch file on the other). Dropping it
/// stops the thread at its next send.
pub struct ReadAhead {
    filled: Receiver<Message>,
    recycle: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
}

impl ReadAhead {
    /// Starts reading `reader` on a new thread.
    pub fn start(reader: Box<dyn Read + Send>) -> io::Result<ReadAhead> {
        let (fill_tx, filled) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let (recycle, empties) = mpsc::sync_channel(CHUNKS_IN_FLIGHT + 2);
        thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || produce(reader, &fill_tx, &empties))?;
        Ok(ReadAhead {
            filled,
            recycle,
            chunk: Vec::new(),
            at: 0,
            done: false,
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.filled.recv() {
                Ok(Message::Data(data)) => {
                    let used = std::mem::replace(&mut self.chunk, data);
                    self.at = 0;
                    // The thread may already be gone; then the buffer is freed.
                    let _ = self.recycle.try_send(used);
                }
                Ok(Message::End) => self.done = true,
                Ok(Message::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the read-ahead thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn produce(
    mut reader: Box<dyn Read + Send>,
    out: &SyncSender<Message>,
    empties: &Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = empties.try_recv().unwrap_or_default();
        buf.resize(CHUNK_SIZE, 0);
        let mut len = 0;
        let mut eof = false;
        while len < CHUNK_SIZE {
            match reader.read(&mut buf[len..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Hand over what was decoded before the error, so the
                    // error offset is exact, then the error itself.
                    buf.truncate(len);
                    if len > 0 && out.send(Message::Data(buf)).is_err() {
                        return;
                    }
                    let _ = out.send(Message::Failed(e));
                    return;
                }
            }
        }
        buf.truncate(len);
        if len > 0 && out.send(Message::Data(buf)).is_err() {
            return;
        }
        if eof {
            let _ = out.send(Message::End);
            return;
        }
    }
}
