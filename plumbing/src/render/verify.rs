//! Verifying the stored blobs of a render against their ids, on a second
//! thread while the tree is written (DESIGN §13: a blob damaged after
//! import must never be published as a tree).

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::id::IdHasher;

use super::deps::{DependencyList, ImageSource};
use super::RenderError;

/// Re-hashes every distinct stored blob of the list from its file (plain
/// reads: the pages are not mapped into this process, so memory stays
/// flat). Images read from an `.aci` file were hashed as they were read.
pub(super) fn verify_all(
    list: &DependencyList,
    interrupt: &AtomicBool,
    stop: &AtomicBool,
) -> Result<(), RenderError> {
    let mut buf = vec![0u8; 1 << 20];
    for (index, listed) in list.distinct() {
        if listed.image.source != ImageSource::Store {
            continue;
        }
        let path = listed.image.image.path();
        let io_err = |source| RenderError::Io {
            path: path.to_owned(),
            op: "verify",
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let mut hasher = IdHasher::new();
        loop {
            if interrupt.load(Ordering::Relaxed) {
                return Err(RenderError::Interrupted);
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            hasher.update(&buf[..n]);
        }
        let found = hasher.finish();
        if found != listed.id {
            return Err(RenderError::HashMismatch {
                chain: list.chain(index),
                expected: Box::new(listed.id),
                found: Box::new(found),
            });
        }
    }
    Ok(())
}
