//! Staged imports: an ACI's uncompressed tar written straight into the
//! store's locked temp by its producer (a pull's converter, a build's
//! packer), hashed, parsed and checked as the bytes arrive, and linked
//! into place only by [`Staged::commit`].
//!
//! This is the one import path: [`Store::import`] feeds a decompressed
//! input through the same [`Staging`]. So a producer's bytes pass the same
//! checks (tar, layout, manifest, limits) with the same errors as the same
//! bytes imported from a file, and are written and hashed once, not once
//! into a scratch file and again by the import.
//!
//! Dropping a [`Staging`] or a [`Staged`] removes the temp file: nothing
//! is stored until [`Staged::commit`], so a producer that stages several
//! images (a pull's layers) and fails on one leaves the store as it was
//! without any cleanup.

use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::atomic::Ordering;

use nix::fcntl::Flock;

use super::files::{create_locked_temp, now_ns, set_read_only, sync_dir};
use super::import::{ImportOutcome, ImportStep};
use super::io_err;
use super::records::ImageRecord;
use super::Store;
use super::StoreError;
use crate::archive::{ArchiveError, Scanner};
use crate::compression::Compression;
use crate::entry::Entry;
use crate::id::{FastDigest, FastHasher, ImageId};
use crate::index::EntryIndex;
use crate::manifest::ImageManifest;

/// Size of the write buffer in front of the temp file: the fast digest
/// (BLAKE3) is taken after it, so it sees MiB-sized pieces it can hash
/// with SIMD, and the file gets few large writes.
const BUFFER: usize = 1 << 20;

/// How many bytes the temp file grows between two early syncs.
const SYNC_EVERY: u64 = 16 << 20;

/// Syncs the temp file on a thread of its own while it is being written,
/// every [`SYNC_EVERY`] bytes, so the disk writes the blob while the
/// producer is still making it and the sync before the link (the write
/// protocol's) finds little left to do. It changes no promise: the link
/// still waits for a full sync, and an error of an early sync is reported
/// by the commit (the two syncs share one open file description, so the
/// later one would not see it again).
struct EarlySync {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    handle: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl EarlySync {
    fn start(file: &File) -> Option<EarlySync> {
        let file = file.try_clone().ok()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let handle = std::thread::Builder::new()
            .name("early-sync".into())
            .spawn(move || {
                for () in rx {
                    file.sync_data()?;
                }
                Ok(())
            })
            .ok()?;
        Some(EarlySync {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Asks for a sync unless one is still waiting to start.
    fn poke(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(());
        }
    }

    /// Waits for the thread; the first error of its syncs.
    fn join(&mut self) -> io::Result<()> {
        self.tx = None;
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the early-sync thread stopped")),
            None => Ok(()),
        }
    }
}

/// The temp file's writer: buffered, and every byte that reaches the file
/// fed to the fast digest, which so covers exactly the blob's bytes.
struct TempOut {
    file: File,
    buf: Vec<u8>,
    fast: FastHasher,
    written: u64,
    synced_at: u64,
    early: Option<EarlySync>,
}

impl TempOut {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.fast.update(bytes);
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.synced_at >= SYNC_EVERY {
            self.synced_at = self.written;
            if self.early.is_none() {
                self.early = EarlySync::start(&self.file);
            }
            if let Some(early) = &self.early {
                early.poke();
            }
        }
        Ok(())
    }
}

impl Write for TempOut {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len() + bytes.len() > BUFFER {
            self.flush()?;
        }
        if bytes.len() >= BUFFER {
            self.put(bytes)?;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let result = self.put(&buf);
            self.buf = buf;
            self.buf.clear();
            result?;
        }
        Ok(())
    }
}

/// An import in progress: write the ACI's uncompressed tar bytes into it
/// (it is a [`Write`]), then [`Staging::finish`]. See the module docs.
///
/// A write that the checks refuse fails with an [`io::Error`] carrying
/// the message; the typed error is kept, every later write fails, and
/// [`Staging::finish`] returns it, so a producer that sees a write fail
/// learns why from `finish` or [`Staging::into_error`].
pub struct Staging<'s> {
    store: &'s Store,
    input: String,
    temp: tempfile::NamedTempFile,
    in_flight: Flock<File>,
    out: TempOut,
    scanner: Scanner<'s>,
    mid_stream_called: bool,
    failed: Option<StoreError>,
}

/// A staged image whose bytes are complete and valid, in a locked temp
/// file: [`Staged::commit`] stores it, dropping it discards it.
pub struct Staged<'s> {
    store: &'s Store,
    temp: tempfile::NamedTempFile,
    in_flight: Flock<File>,
    id: ImageId,
    size: u64,
    entries: Vec<Entry>,
    manifest: ImageManifest,
    fast: FastDigest,
    early: Option<EarlySync>,
}

impl std::fmt::Debug for Staging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Staging({}, {})", self.input, self.temp.path().display())
    }
}

impl std::fmt::Debug for Staged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Staged({}, {})", self.id, self.temp.path().display())
    }
}

impl Store {
    /// Starts a staged import named `input_name` (in errors): a locked
    /// temp file in `tmp/` that the returned [`Staging`] writes into.
    /// Creates the layout when needed.
    pub fn stage(&self, input_name: &str) -> Result<Staging<'_>, StoreError> {
        self.ensure_layout()?;
        // The lock marks the temp as in flight, so `gc` can tell a live
        // import from the leftovers of a killed one.
        let (temp, in_flight) = create_locked_temp(&self.tmp_dir(), "import-")?;
        let file = temp.as_file().try_clone().map_err(io_err(temp.path()))?;
        self.hook.call(ImportStep::AfterTempCreate);
        Ok(Staging {
            store: self,
            input: input_name.to_owned(),
            temp,
            in_flight,
            out: TempOut {
                file,
                buf: Vec::with_capacity(BUFFER),
                fast: FastHasher::new(),
                written: 0,
                synced_at: 0,
                early: None,
            },
            scanner: Scanner::new(&self.limits),
            mid_stream_called: false,
            failed: None,
        })
    }
}

impl<'s> Staging<'s> {
    /// Hashes, parses and writes `chunk`, the next bytes of the tar.
    /// After an error the staging is spoilt (drop it).
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        self.scanner.feed(chunk, &mut self.out)?;
        if !self.mid_stream_called && !chunk.is_empty() && self.store.hook.0.is_some() {
            // The hook's step promises the bytes are in the temp file.
            self.mid_stream_called = true;
            self.out
                .flush()
                .map_err(|source| ArchiveError::Write { source })?;
            self.store.hook.call(ImportStep::MidStream);
        }
        Ok(())
    }

    /// Why a write was refused (the checks, the file or an interrupt),
    /// if one was: what a producer whose write failed reports. Dropping
    /// the staging discards it.
    pub fn into_error(mut self) -> Option<StoreError> {
        self.failed.take()
    }

    fn interrupted(&self) -> bool {
        self.store
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Ends the input: the tar's end and layout checks, the manifest, and
    /// the last interrupt check. The bytes are in the temp file, not yet
    /// synced; nothing is stored.
    pub fn finish(mut self) -> Result<Staged<'s>, StoreError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let input = std::mem::take(&mut self.input);
        self.out.flush().map_err(io_err(self.temp.path()))?;
        // The last bytes start for the disk now, while the checks below
        // wait for the hash: the commit's sync then finds little to do.
        if let Some(early) = &self.out.early {
            early.poke();
        }
        let archive_err = |source| StoreError::Archive {
            input: input.clone(),
            source,
        };
        let scanned = self
            .scanner
            .finish(Compression::None)
            .map_err(archive_err)?;
        let manifest =
            ImageManifest::from_slice_with(&scanned.manifest, &self.store.limits.manifest())
                .map_err(|source| StoreError::Manifest {
                    input: input.clone(),
                    source,
                })?;
        // The last moment to stop: after this, the store changes.
        if self
            .store
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
        {
            return Err(StoreError::Interrupted { input });
        }
        Ok(Staged {
            store: self.store,
            temp: self.temp,
            in_flight: self.in_flight,
            id: scanned.id,
            size: scanned.size,
            entries: scanned.entries,
            manifest,
            fast: self.out.fast.finish(),
            early: self.out.early.take(),
        })
    }
}

impl Write for Staging<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_none() && self.interrupted() {
            self.failed = Some(StoreError::Interrupted {
                input: self.input.clone(),
            });
        }
        if self.failed.is_none() {
            if let Err(source) = self.feed(buf) {
                self.failed = Some(StoreError::Archive {
                    input: self.input.clone(),
                    source,
                });
            }
        }
        match &self.failed {
            Some(failed) => Err(io::Error::other(failed.to_string())),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // The temp file is flushed by `finish`: nothing reads it before.
        Ok(())
    }
}

impl Staged<'_> {
    /// The image's id (the SHA-512 of its bytes).
    pub fn id(&self) -> &ImageId {
        &self.id
    }

    /// Its manifest, validated.
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// Stores the image by the write protocol (module docs of
    /// [`super`]): the temp file synced, made read-only and linked into
    /// `blobs/` with a no-replace link, then the index and the record.
    /// An image already stored keeps its blob (ours is dropped) and
    /// reports `newly_stored: false`.
    pub fn commit(self) -> Result<ImportOutcome, StoreError> {
        let store = self.store;
        let id = self.id;
        let temp = self.temp;
        if let Some(mut early) = self.early {
            early.join().map_err(io_err(temp.path()))?;
        }
        let blob = store.blob_path(&id);
        let newly_stored = if blob.exists() {
            false
        } else {
            temp.as_file().sync_all().map_err(io_err(temp.path()))?;
            set_read_only(temp.as_file(), temp.path())?;
            let dir = blob.parent().expect("blob paths have a fan-out parent");
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            store.hook.call(ImportStep::BeforeLink);
            match temp.persist_noclobber(&blob) {
                Ok(_) => {
                    sync_dir(dir)?;
                    true
                }
                // Another process stored the same image first: its blob has
                // the same bytes, ours is dropped with the temp file.
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(io_err(&blob)(e.error)),
            }
        };
        drop(self.in_flight);
        store.hook.call(ImportStep::AfterLinkBeforeRecord);

        // When the blob was already stored, its bytes are these bytes
        // (the same id), so the digest holds for it too.
        store.write_index(
            &id,
            &EntryIndex {
                entries: self.entries,
                fast_digest: Some(self.fast),
            },
        )?;
        let record = store.record_or_insert(ImageRecord::from_manifest(
            id,
            &self.manifest,
            self.size,
            now_ns(),
        ))?;
        Ok(ImportOutcome {
            record,
            newly_stored,
        })
    }
}
