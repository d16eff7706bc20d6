//! Ctrl-C and friends: one process-wide interrupt flag that long
//! operations (import, render, build) poll so they can remove their temps
//! and partial output before exiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use acido_plumbing::interrupt::Interruptible;
use nix::sys::signal::{SigSet, Signal};

/// How long an interrupted command may take to notice the signal and clean
/// up before the signal is delivered for real: long enough for a render to
/// remove its temp tree, short enough that a read blocked on a terminal or
/// an idle pipe cannot make Ctrl-C useless.
const GRACE: Duration = Duration::from_secs(10);

/// The process's interrupt flag, raised by SIGINT, SIGTERM or SIGHUP.
///
/// The first call blocks those signals in the calling thread (and so in
/// every thread started after it) and takes them on a waiting thread; later
/// calls return the same flag. When the command has not ended [`GRACE`]
/// after the signal, the signal is delivered for real and ends the process.
pub fn flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        if set.thread_block().is_ok() {
            let raised = Arc::clone(&flag);
            std::thread::spawn(move || {
                if let Ok(signal) = set.wait() {
                    raised.store(true, Ordering::SeqCst);
                    std::thread::sleep(GRACE);
                    let _ = set.thread_unblock();
                    let _ = nix::sys::signal::raise(signal);
                }
            });
        }
        flag
    }))
}

/// `inner`, whose next read fails once the process's interrupt [`flag`]
/// is up.
pub fn interruptible<R>(inner: R) -> Interruptible<R> {
    Interruptible::new(inner, flag())
}
