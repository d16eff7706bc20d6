//! Writing one OCI layer blob of a push (see [`super::push`] for what a
//! layer holds): generated into the store's layer cache, or copied out of
//! it while hashed. The tar is written on one thread and gzipped on
//! another; the gzip thread replays the tar's writes one by one, so the
//! blob is byte for byte what one thread writes.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc;

use super::digest::{Sha256Digest, Sha256Hasher};
use super::push::{layout_temp, Item, LayerBlob, LAYER_GZIP};
use crate::entry::{Entry, EntryKind};
use crate::pack::tar_writer::{
    encode_header, HeaderSpec, TarSink, TYPE_BLOCK, TYPE_CHAR, TYPE_DIR, TYPE_FIFO, TYPE_HARDLINK,
    TYPE_REGULAR, TYPE_SYMLINK,
};
use crate::store::{OciLayerKey, OciLayerRecord, Store};

/// Hashes what passes through into a writer.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why [`generate_layer`] failed.
pub(super) enum Generated {
    /// Writing the blob.
    Io(io::Error),
    /// Publishing it in the store's layer cache.
    Store(crate::store::StoreError),
}

/// Generates one layer's blob: into the store's layer cache under `key`
/// when `cache` is given and its temp can be made (a read-only store
/// cannot: the layer then goes to the layout as without a cache), and
/// copied from there into the layout when `keep`; else straight into the
/// layout `blobs` (synced when `keep`). Returns where the blob is and the
/// layer's diff id.
pub(super) fn generate_layer(
    cache: Option<(&Store, &OciLayerKey)>,
    blobs: &Path,
    whiteouts: &[Vec<u8>],
    items: &[Item<'_>],
    keep: bool,
) -> Result<(LayerBlob, Sha256Digest), Generated> {
    if let Some((store, key)) = cache {
        if let Ok((temp, _in_flight)) = store.oci_layer_temp() {
            let file = temp.as_file().try_clone().map_err(Generated::Io)?;
            let (digest, size, diff_id, _) =
                write_layer(file, whiteouts, items).map_err(Generated::Io)?;
            let record = OciLayerRecord {
                digest: digest.to_string(),
                size,
                diff_id: diff_id.to_string(),
                media_type: LAYER_GZIP.to_owned(),
            };
            let entry = store
                .publish_oci_layer(key, temp, &record)
                .map_err(Generated::Store)?;
            let blob = if keep {
                // Just written and hashed: a plain copy (in the kernel
                // where it can) needs no second hash.
                let mut temp = layout_temp(blobs, ".layer.").map_err(Generated::Io)?;
                let mut from = entry.file;
                io::copy(&mut from, temp.as_file_mut()).map_err(Generated::Io)?;
                temp.as_file().sync_all().map_err(Generated::Io)?;
                let path = blobs.join(digest.hex());
                let file = temp.persist(&path).map_err(|e| Generated::Io(e.error))?;
                LayerBlob {
                    digest,
                    size,
                    file,
                    path,
                    cached: false,
                }
            } else {
                LayerBlob {
                    digest,
                    size,
                    file: entry.file,
                    path: entry.path,
                    cached: false,
                }
            };
            return Ok((blob, diff_id));
        }
    }
    // Dropped on any early return below, which removes the partial blob.
    let temp = layout_temp(blobs, ".layer.").map_err(Generated::Io)?;
    let file = temp.as_file().try_clone().map_err(Generated::Io)?;
    let (digest, size, diff_id, file) =
        write_layer(file, whiteouts, items).map_err(Generated::Io)?;
    if keep {
        file.sync_all().map_err(Generated::Io)?;
    }
    let path = blobs.join(digest.hex());
    let file = temp.persist(&path).map_err(|e| Generated::Io(e.error))?;
    Ok((
        LayerBlob {
            digest,
            size,
            file,
            path,
            cached: false,
        },
        diff_id,
    ))
}

/// Copies a cached layer blob into the layout `blobs` while hashing it,
/// synced; `None` (nothing left in the layout) when it is not `size`
/// bytes hashing to `digest`. A blob the layout already has is kept.
pub(super) fn copy_cached_into(
    blobs: &Path,
    mut from: File,
    digest: &Sha256Digest,
    size: u64,
) -> io::Result<Option<File>> {
    let path = blobs.join(digest.hex());
    if let Ok(file) = File::open(&path) {
        return Ok(Some(file));
    }
    let temp = layout_temp(blobs, ".layer.")?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, temp.as_file().try_clone()?),
        hasher: Sha256Hasher::new(),
    };
    io::copy(&mut (&mut from).take(size + 1), &mut out)?;
    out.flush()?;
    if out.hasher.len() != size || out.hasher.finish() != *digest {
        return Ok(None);
    }
    temp.as_file().sync_all()?;
    let file = temp.persist(&path).map_err(|e| e.error)?;
    Ok(Some(file))
}

/// Bytes of tar gathered before a batch goes to the gzip thread.
const BATCH_BYTES: usize = 1 << 20;

/// Batches in flight between the threads: enough that neither waits on
/// the other's jitter, few enough to bound memory (the owned pieces are
/// headers and padding; file data is borrowed from the images' maps).
const BATCHES_IN_FLIGHT: usize = 4;

/// One write of the tar stream: a header or padding (owned), or a file's
/// data (borrowed from its image's map).
enum Piece<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
}

impl Piece<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(v) => v,
            Piece::Borrowed(b) => b,
        }
    }
}

/// The tar thread's end of the pipe: it batches the tar stream's writes
/// and sends them to the gzip thread, which replays them one by one. The
/// compressor's output depends on how its input is cut into writes, so
/// it sees exactly the writes a single-threaded writer makes, whatever
/// the batching, and writes the same bytes.
struct PieceSender<'a> {
    batch: Vec<Piece<'a>>,
    bytes: usize,
    to_gzip: mpsc::SyncSender<Vec<Piece<'a>>>,
}

impl<'a> PieceSender<'a> {
    fn push(&mut self, piece: Piece<'a>) -> io::Result<()> {
        self.bytes += piece.bytes().len();
        self.batch.push(piece);
        if self.bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.bytes = 0;
        self.to_gzip
            .send(batch)
            .map_err(|_| io::Error::other("the gzip thread stopped"))
    }
}

impl Write for PieceSender<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.push(Piece::Owned(bytes.to_vec()))?;
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes one layer into `file`: the tar is generated (and its diff id
/// hashed) on this thread while another gzips it and hashes the blob, so
/// a cold push uses two cores; the blob is byte for byte what one thread
/// writes (see [`PieceSender`]). Returns the blob's digest and size, the
/// diff id and the file.
fn write_layer(
    file: File,
    whiteouts: &[Vec<u8>],
    items: &[Item<'_>],
) -> io::Result<(Sha256Digest, u64, Sha256Digest, File)> {
    let (to_gzip, from_tar) = mpsc::sync_channel::<Vec<Piece<'_>>>(BATCHES_IN_FLIGHT);
    std::thread::scope(|scope| {
        let gzip_thread = scope.spawn(move || -> io::Result<(Sha256Digest, u64, File)> {
            let compressed = Hashing {
                inner: BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256Hasher::new(),
            };
            // A fixed header (no name, mtime 0) and level keep the blob
            // deterministic. Level 1: a push compresses every layer it
            // generates, and zlib-rs's fastest level is several times
            // faster than its default for blobs only slightly larger
            // (acido-push(1)).
            let mut gzip = flate2::GzBuilder::new()
                .mtime(0)
                .write(compressed, flate2::Compression::fast());
            for batch in from_tar {
                for piece in &batch {
                    gzip.write_all(piece.bytes())?;
                }
            }
            let mut compressed = gzip.finish()?;
            compressed.flush()?;
            let size = compressed.hasher.len();
            let digest = compressed.hasher.finish();
            let file = compressed.inner.into_inner().map_err(|e| e.into_error())?;
            Ok((digest, size, file))
        });
        let sender = PieceSender {
            batch: Vec::new(),
            bytes: 0,
            to_gzip,
        };
        let tarred = write_tar(sender, whiteouts, items);
        // The sender is dropped by now (sent or failed), which ends the
        // gzip thread's loop.
        let compressed = gzip_thread
            .join()
            .map_err(|_| io::Error::other("the gzip thread panicked"))?;
        // The gzip thread's error is the cause when both failed (the tar
        // side then only saw the channel close).
        let (digest, size, file) = compressed?;
        let diff_id = tarred?;
        Ok((digest, size, diff_id, file))
    })
}

/// Writes the layer's tar into `sink` (whiteouts first, then the items)
/// and hands over its last chunk; returns the diff id.
fn write_tar<'a>(
    sink: PieceSender<'a>,
    whiteouts: &[Vec<u8>],
    items: &[Item<'a>],
) -> io::Result<Sha256Digest> {
    // The diff id is the uncompressed stream's sha256; TarSink pads and
    // ends the archive as every other tar acido writes.
    let mut tar = TarSink::with_hasher(sink, Sha256Hasher::new());
    let header_err = |e: crate::pack::HeaderError| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut header = Vec::with_capacity(2048);
    let mut put = |tar: &mut TarSink<PieceSender<'a>, _>,
                   spec: &HeaderSpec<'_>,
                   data: &'a [u8]|
     -> io::Result<()> {
        header.clear();
        encode_header(spec, &mut header).map_err(header_err)?;
        tar.write_all(&header)?;
        if !data.is_empty() {
            // By reference: the gzip thread reads it from the map.
            tar.account(data);
            tar.sink_mut().push(Piece::Borrowed(data))?;
            tar.pad()?;
        }
        Ok(())
    };
    for marker in whiteouts {
        put(&mut tar, &HeaderSpec::plain_file(marker, 0), &[])?;
    }
    for item in items {
        let default_dir = Entry::new(Vec::new(), EntryKind::Directory).with_mode(0o755);
        let e = item.entry.unwrap_or(&default_dir);
        let mut xattrs = e.xattrs.clone();
        xattrs.sort();
        let typeflag = match item.kind {
            EntryKind::Regular => TYPE_REGULAR,
            EntryKind::Directory => TYPE_DIR,
            EntryKind::Symlink => TYPE_SYMLINK,
            EntryKind::HardLink => TYPE_HARDLINK,
            EntryKind::CharDevice => TYPE_CHAR,
            EntryKind::BlockDevice => TYPE_BLOCK,
            EntryKind::Fifo => TYPE_FIFO,
        };
        let link = match item.kind {
            EntryKind::HardLink => item.link.as_deref(),
            EntryKind::Symlink => e.link_target.as_deref(),
            _ => None,
        };
        let data = if item.kind == EntryKind::Regular {
            item.data
        } else {
            &[]
        };
        put(
            &mut tar,
            &HeaderSpec {
                path: &item.path,
                typeflag,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                size: data.len() as u64,
                mtime: e.mtime,
                link,
                dev_major: e.dev_major.into(),
                dev_minor: e.dev_minor.into(),
                xattrs: &xattrs,
            },
            data,
        )?;
    }
    let (mut sink, diff_id, _) = tar.finish()?;
    if !sink.batch.is_empty() {
        sink.send()?;
    }
    Ok(diff_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// The layer as one thread writes it: every tar write straight into
    /// the gzip encoder (what acido wrote before the tar and the gzip
    /// went to two threads).
    fn one_thread_layer(whiteouts: &[Vec<u8>], items: &[Item<'_>]) -> (Vec<u8>, Sha256Digest) {
        let gzip = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::fast());
        let mut tar = TarSink::with_hasher(gzip, Sha256Hasher::new());
        let put = |tar: &mut TarSink<_, _>, path: &[u8], data: &[u8]| {
            let spec = HeaderSpec::plain_file(path, data.len() as u64);
            let mut header = Vec::new();
            encode_header(&spec, &mut header).unwrap();
            tar.write_all(&header).unwrap();
            if !data.is_empty() {
                tar.write_all(data).unwrap();
                tar.pad().unwrap();
            }
        };
        for marker in whiteouts {
            put(&mut tar, marker, &[]);
        }
        for item in items {
            put(&mut tar, &item.path, item.data);
        }
        let (gzip, diff_id, _) = tar.finish().unwrap();
        (gzip.finish().unwrap(), diff_id)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// The two-thread writer's blob is byte for byte the one-thread
        /// writer's, whatever the sizes of the files (around and across
        /// the batch size), so cached and fresh layers, and acido
        /// versions before and after the split, agree on every digest.
        #[test]
        fn the_two_thread_layer_is_the_one_thread_layer(
            sizes in proptest::collection::vec(
                prop_oneof![0usize..600, 1000usize..3000, (BATCH_BYTES - 700)..(BATCH_BYTES + 700)],
                1..8,
            ),
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let data: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&n| {
                    (0..n)
                        .map(|i| {
                            // Half noise, half runs: something to compress.
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            if i % 512 < 256 { state as u8 } else { b'a' }
                        })
                        .collect()
                })
                .collect();
            let entry = Entry::new(Vec::new(), EntryKind::Regular).with_mode(0o644);
            let items: Vec<Item<'_>> = data
                .iter()
                .enumerate()
                .map(|(i, d)| Item {
                    path: format!("f{i}").into_bytes(),
                    entry: Some(&entry),
                    data: d,
                    kind: EntryKind::Regular,
                    link: None,
                })
                .collect();
            let whiteouts = vec![b".wh.gone".to_vec()];
            let file = tempfile::tempfile().unwrap();
            let (digest, size, diff_id, mut file) = write_layer(file, &whiteouts, &items).unwrap();
            let mut written = Vec::new();
            io::Seek::rewind(&mut file).unwrap();
            file.read_to_end(&mut written).unwrap();
            let (expected, expected_diff_id) = one_thread_layer(&whiteouts, &items);
            prop_assert!(written == expected, "the blobs differ");
            prop_assert_eq!(size, expected.len() as u64);
            prop_assert_eq!(digest, Sha256Digest::of(&expected));
            prop_assert_eq!(diff_id, expected_diff_id);
        }
    }
}
