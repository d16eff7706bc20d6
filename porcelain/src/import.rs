//! `import`: store ACI files, reporting progress as the input is read.

use std::io::{self, Read};
use std::sync::Arc;

use acido_plumbing::store::{ImageRecord, Store, StoreError};

use crate::progress::Progress;

/// One input to import.
pub struct ImportInput {
    /// How the user named it (a path, or `-` for stdin); used in messages.
    pub name: String,
    /// The compressed or plain ACI bytes.
    pub reader: Box<dyn Read + Send>,
    /// Its size in bytes when known (for the progress bar).
    pub size: Option<u64>,
}

/// What importing one input did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The input as named.
    pub name: String,
    /// The stored image.
    pub record: ImageRecord,
    /// False when the image was already stored.
    pub newly_stored: bool,
}

/// Imports one input into `store`, reporting the bytes read to `progress`.
pub fn import(
    store: &Store,
    input: ImportInput,
    progress: Arc<dyn Progress>,
) -> Result<ImportReport, StoreError> {
    progress.begin(&input.name, input.size);
    let reader = CountingReader {
        inner: input.reader,
        progress: Arc::clone(&progress),
    };
    let outcome = store.import(reader, &input.name);
    progress.end();
    let outcome = outcome?;
    Ok(ImportReport {
        name: input.name,
        record: outcome.record,
        newly_stored: outcome.newly_stored,
    })
}

/// Passes reads through and reports how many bytes went by.
struct CountingReader {
    inner: Box<dyn Read + Send>,
    progress: Arc<dyn Progress>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
