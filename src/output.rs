//! Where results go: a buffered stdout whose broken pipe ends the program
//! quietly, and the outcome a command reports to `main`.

use std::io::{self, BufWriter, Stdout, Write};

/// What a command that did not fail has to say about the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: a documented negative answer (differences found, problems found).
    Negative,
    /// Exit with this status: a command run by acido (`acido run`)
    /// passes its own status on.
    Exit(u8),
}

/// Buffered standard output.
pub fn stdout() -> BufWriter<Stdout> {
    BufWriter::with_capacity(1 << 16, io::stdout())
}

/// Flushes `out`, so a broken pipe surfaces as an error `main` recognises.
pub fn finish(mut out: impl Write) -> anyhow::Result<()> {
    out.flush()?;
    Ok(())
}

/// Whether the error (or anything in its chain) is a closed stdout pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `1 image`, `2 images`: a count with its noun in the right number.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
