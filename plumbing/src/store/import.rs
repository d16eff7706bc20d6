//! Importing: streaming an ACI into a blob, its index and its record
//! (the write protocol in the module docs).

use super::files::create_locked_temp;
use super::files::now_ns;
use super::files::set_read_only;
use super::files::sync_dir;
use super::files::write_atomically;
use super::io_err;
use super::records::ImageRecord;
use super::Store;
use super::StoreError;
use std::fs::{self};
use std::io::{self, BufWriter, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::archive::{self};
use crate::id::{FastHasher, ImageId};
use crate::index::EntryIndex;
use crate::interrupt::Interruptible;
use crate::manifest::ImageManifest;

/// What [`Store::import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The record of the stored image.
    pub record: ImageRecord,
    /// False when the image was already in the store (the import changed nothing).
    pub newly_stored: bool,
}

/// The steps of [`Store::import`] at which an [`ImportHook`] is called,
/// in order. They mark the points where a crash leaves a different
/// state behind, so tests can kill the process at each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportStep {
    /// The locked temp file in `tmp/` exists and is empty.
    AfterTempCreate,
    /// The first decompressed chunk has been written to the temp file;
    /// the rest of the input is still to be read.
    MidStream,
    /// The input is complete and valid and the temp file is synced and
    /// read-only; the no-replace link into `blobs/` comes next. Not
    /// reached when the blob is already stored.
    BeforeLink,
    /// The blob is in place (linked now or before); its index and record
    /// are still to be written.
    AfterLinkBeforeRecord,
}

/// A callback run at each [`ImportStep`] of an import (fault injection:
/// the library never reads the environment, the binary's tests do).
pub type ImportHook = Arc<dyn Fn(ImportStep) + Send + Sync>;

/// An optional [`ImportHook`] that lets [`Store`] keep deriving `Debug`.
#[derive(Clone, Default)]
pub(super) struct Hook(pub(super) Option<ImportHook>);

impl Hook {
    pub(super) fn call(&self, step: ImportStep) {
        if let Some(hook) = &self.0 {
            hook(step);
        }
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Hook(set)"
        } else {
            "Hook(none)"
        })
    }
}

/// Writes through to the temp file and, on the first write, flushes it
/// so the bytes are on disk and calls the hook at [`ImportStep::MidStream`].
pub(super) struct MidStreamHook<'h, W: Write> {
    inner: W,
    hook: &'h Hook,
    fired: bool,
}

impl<W: Write> Write for MidStreamHook<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if !self.fired && n > 0 && self.hook.0.is_some() {
            self.fired = true;
            self.inner.flush()?;
            self.hook.call(ImportStep::MidStream);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes through to the blob's temp file and feeds the same bytes to the
/// fast digest.
struct FastHashing<'h, W: Write> {
    inner: W,
    hasher: &'h mut FastHasher,
}

impl<W: Write> Write for FastHashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Store {
    /// Imports one ACI read from `input` (any supported compression).
    ///
    /// `input_name` names the input in errors. The archive is validated
    /// (layout and manifest) while it streams; a rejected input leaves the
    /// store exactly as it was. Importing an image that is already stored
    /// changes nothing and reports `newly_stored: false`.
    pub fn import(
        &self,
        input: impl Read + Send + 'static,
        input_name: &str,
    ) -> Result<ImportOutcome, StoreError> {
        self.ensure_layout()?;
        // The lock marks the temp as in flight, so `gc` can tell a live
        // import from the leftovers of a killed one.
        let (temp, in_flight) = create_locked_temp(&self.tmp_dir(), "import-")?;
        self.hook.call(ImportStep::AfterTempCreate);

        // The fast digest is taken from exactly the bytes the blob gets
        // (which the scan hashes to the id), after the buffer, so BLAKE3
        // sees MiB-sized pieces it can hash with SIMD.
        let mut fast = FastHasher::new();
        let mut writer = MidStreamHook {
            inner: BufWriter::with_capacity(
                1 << 20,
                FastHashing {
                    inner: temp.as_file(),
                    hasher: &mut fast,
                },
            ),
            hook: &self.hook,
            fired: false,
        };
        let input: Box<dyn Read + Send> = match &self.interrupt {
            Some(flag) => Box::new(Interruptible::new(input, Arc::clone(flag))),
            None => Box::new(input),
        };
        let scanned = archive::scan(input, &mut writer, &self.limits).map_err(|source| {
            StoreError::Archive {
                input: input_name.to_owned(),
                source,
            }
        })?;
        writer.flush().map_err(io_err(temp.path()))?;
        drop(writer);
        let manifest = ImageManifest::from_slice_with(&scanned.manifest, &self.limits.manifest())
            .map_err(|source| StoreError::Manifest {
            input: input_name.to_owned(),
            source,
        })?;

        // The last moment to stop: after this, the store changes.
        if self
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
        {
            return Err(StoreError::Interrupted {
                input: input_name.to_owned(),
            });
        }
        let id = scanned.id;
        let blob = self.blob_path(&id);
        let newly_stored = if blob.exists() {
            false
        } else {
            temp.as_file().sync_all().map_err(io_err(temp.path()))?;
            set_read_only(temp.as_file(), temp.path())?;
            let dir = blob.parent().expect("blob paths have a fan-out parent");
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            self.hook.call(ImportStep::BeforeLink);
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
        drop(in_flight);
        self.hook.call(ImportStep::AfterLinkBeforeRecord);

        // When the blob was already stored, its bytes are these bytes
        // (the same id), so the digest holds for it too.
        self.write_index(
            &id,
            &EntryIndex {
                entries: scanned.entries,
                fast_digest: Some(fast.finish()),
            },
        )?;
        let record = self.record_or_insert(ImageRecord::from_manifest(
            id,
            &manifest,
            scanned.size,
            now_ns(),
        ))?;
        Ok(ImportOutcome {
            record,
            newly_stored,
        })
    }

    pub(super) fn write_index(&self, id: &ImageId, index: &EntryIndex) -> Result<(), StoreError> {
        let path = self.index_path(id);
        let dir = path.parent().expect("index paths have a fan-out parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_atomically(&self.tmp_dir(), &path, &index.encode())
    }
}
