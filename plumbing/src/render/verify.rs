//! Verifying the stored blobs of a render, on a second thread while the
//! tree is written (DESIGN §13: a blob damaged after import must never be
//! published as a tree). A blob whose index holds the BLAKE3 digest taken
//! at import is checked against it (several times faster than SHA-512, so
//! the check ends before the writing does); one from an older store,
//! without it, is re-hashed to its SHA-512 id as before.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::id::{FastDigest, FastHasher, IdHasher};

use super::deps::{DependencyList, ImageSource};
use super::RenderError;

/// Checks every distinct stored blob of the list from its file (plain
/// reads: the pages are not mapped into this process, so memory stays
/// flat): against its fast digest when its index has one, else against
/// its id. Images read from an `.aci` file were hashed as they were read.
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
        let mut hasher = match listed.image.image.index().fast_digest {
            Some(expected) => Hasher::Fast(Box::default(), expected),
            None => Hasher::Id(Box::default()),
        };
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
            match &mut hasher {
                Hasher::Fast(h, _) => h.update(&buf[..n]),
                Hasher::Id(h) => h.update(&buf[..n]),
            }
        }
        match hasher {
            Hasher::Fast(h, expected) => {
                let found = h.finish();
                if found != expected {
                    return Err(RenderError::DigestMismatch {
                        chain: list.chain(index),
                        id: Box::new(listed.id),
                        expected: Box::new(expected),
                        found: Box::new(found),
                    });
                }
            }
            Hasher::Id(h) => {
                let found = h.finish();
                if found != listed.id {
                    return Err(RenderError::HashMismatch {
                        chain: list.chain(index),
                        expected: Box::new(listed.id),
                        found: Box::new(found),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The check one blob gets: its fast digest when the index recorded one,
/// its SHA-512 id otherwise.
enum Hasher {
    Fast(Box<FastHasher>, FastDigest),
    Id(Box<IdHasher>),
}
