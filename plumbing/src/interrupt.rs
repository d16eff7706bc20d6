//! Stopping long reads when the user interrupts: the caller owns the flag
//! (the binary raises it on SIGINT, SIGTERM or SIGHUP).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A reader whose next read fails once `flag` is up, so an import reading
/// it drops its temp file and returns an error.
pub struct Interruptible<R> {
    inner: R,
    flag: Arc<AtomicBool>,
}

impl<R> Interruptible<R> {
    /// Wraps `inner`, watching `flag`.
    pub fn new(inner: R, flag: Arc<AtomicBool>) -> Self {
        Interruptible { inner, flag }
    }
}

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.flag.load(Ordering::SeqCst) {
            // Not ErrorKind::Interrupted: readers retry that.
            return Err(io::Error::other("interrupted by a signal"));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_until_the_flag_is_raised() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut reader = Interruptible::new(&b"abcdef"[..], Arc::clone(&flag));
        let mut buf = [0u8; 3];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        flag.store(true, Ordering::SeqCst);
        let err = reader.read(&mut buf).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::Interrupted, "would be retried");
    }
}
