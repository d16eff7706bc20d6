//! The progress sink long workflows report to. The binary draws bars on a
//! tty; library users get [`NoProgress`] by default.

/// Receives progress from a workflow. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A new unit of work starts: `label` names it, `total` is its size in
    /// bytes when known.
    fn begin(&self, label: &str, total: Option<u64>) {
        let _ = (label, total);
    }

    /// `bytes` more of the current unit are done.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }

    /// The current unit is done.
    fn end(&self) {}

    /// A one-line status message for the user (the binary prints it on
    /// stderr unless quiet).
    fn note(&self, message: &str) {
        let _ = message;
    }
}

/// A sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A byte-count callback for plumbing's options (`PackOptions::progress`,
/// `RenderOptions::progress`) that advances `sink`'s current unit.
pub fn advance_callback(
    sink: std::sync::Arc<dyn Progress>,
) -> std::sync::Arc<dyn Fn(u64) + Send + Sync> {
    std::sync::Arc::new(move |bytes| sink.advance(bytes))
}
