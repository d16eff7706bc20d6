//! `acido import FILE...|-`

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use acido_porcelain::import::{self, ImportInput};
use anyhow::Context as _;
use clap::Args;

use crate::commands::Context;
use crate::interrupt;
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Arguments of `acido import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// ACI files (any compression); '-' reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Imports each input in turn and prints its id; stops at the first failure.
pub fn run(ctx: &Context, args: ImportArgs) -> anyhow::Result<Outcome> {
    let interrupted = interrupt::flag();
    let store = ctx.store()?.with_interrupt(Arc::clone(&interrupted));
    let progress = Arc::new(Bar::new(ctx.quiet));
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
