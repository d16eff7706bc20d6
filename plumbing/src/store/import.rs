//! Importing: streaming an ACI into a blob, its index and its record
//! (the write protocol in the module docs).

use super::files::write_atomically;
use super::io_err;
use super::records::ImageRecord;
use super::Store;
use super::StoreError;
use std::fs::{self};
use std::io::Read;
use std::sync::Arc;

use crate::archive::Chunks;
use crate::id::ImageId;
use crate::index::EntryIndex;
use crate::interrupt::Interruptible;

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

impl Store {
    /// Imports one ACI read from `input` (any supported compression).
    ///
    /// `input_name` names the input in errors. The archive is validated
    /// (layout and manifest) while it streams; a rejected input leaves the
    /// store exactly as it was. Importing an image that is already stored
    /// changes nothing and reports `newly_stored: false`. The decompressed
    /// bytes go through [`Store::stage`], the one import path.
    pub fn import(
        &self,
        input: impl Read + Send + 'static,
        input_name: &str,
    ) -> Result<ImportOutcome, StoreError> {
        let mut staging = self.stage(input_name)?;
        let archive_err = |source| StoreError::Archive {
            input: input_name.to_owned(),
            source,
        };
        let input: Box<dyn Read + Send> = match &self.interrupt {
            Some(flag) => Box::new(Interruptible::new(input, Arc::clone(flag))),
            None => Box::new(input),
        };
        let chunks = Chunks::start(input).map_err(archive_err)?;
        chunks
            .for_each(|chunk| staging.feed(chunk))
            .map_err(archive_err)?;
        staging.finish()?.commit()
    }

    pub(super) fn write_index(&self, id: &ImageId, index: &EntryIndex) -> Result<(), StoreError> {
        let path = self.index_path(id);
        let dir = path.parent().expect("index paths have a fan-out parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_atomically(&self.tmp_dir(), &path, &index.encode())
    }
}
