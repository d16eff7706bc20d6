//! `acido import FILE...|-`

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use acido_porcelain::import::{self, ImportInput};
use anyhow::Context as _;
use nix::sys::signal::{SigSet, Signal};

use crate::cli::ImportArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// How long an interrupted import may take to notice the signal (its
/// next read) before the process dies of it anyway: a read from a
/// terminal or an idle pipe can block forever.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// Fails the next read once an interrupt signal has arrived, so the store
/// drops the import's temp file and the command exits with an error.
struct Interruptible<R> {
    inner: R,
    interrupted: Arc<AtomicBool>,
}

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupted.load(Ordering::SeqCst) {
            // Not ErrorKind::Interrupted: readers retry that.
            return Err(io::Error::other("interrupted by a signal"));
        }
        self.inner.read(buf)
    }
}

/// Takes SIGINT, SIGTERM and SIGHUP on a waiting thread (they are blocked
/// in this thread and every thread started after) and raises the returned
/// flag. When the import has not ended [`INTERRUPT_GRACE`] later, the
/// signal is delivered for real and ends the process; its temp file is
/// then unlocked and `gc` removes it.
fn interrupt_on_signals() -> Arc<AtomicBool> {
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
                std::thread::sleep(INTERRUPT_GRACE);
                let _ = set.thread_unblock();
                let _ = nix::sys::signal::raise(signal);
            }
        });
    }
    flag
}

/// Imports each input in turn and prints its id; stops at the first failure.
pub fn run(ctx: &Context, args: ImportArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let progress = Arc::new(Bar::new(ctx.quiet));
    let interrupted = interrupt_on_signals();
    let mut out = output::stdout();
    for path in &args.files {
        if interrupted.load(Ordering::SeqCst) {
            anyhow::bail!("interrupted by a signal");
        }
        let reader: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).with_context(|| path.display().to_string())?)
        };
        let reader = Box::new(Interruptible {
            inner: reader,
            interrupted: Arc::clone(&interrupted),
        });
        let input = if path.as_os_str() == "-" {
            ImportInput {
                name: "-".to_owned(),
                reader,
                size: None,
            }
        } else {
            let size = std::fs::metadata(path).ok().map(|m| m.len());
            ImportInput {
                name: path.display().to_string(),
                reader,
                size,
            }
        };
        let report = import::import(&store, input, progress.clone())?;
        writeln!(out, "{}", report.record.id)?;
        // Ids reach a pipe as they are known, not all at the end.
        out.flush()?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
