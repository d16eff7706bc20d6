//! `acido gc [--cache]`

use std::io::Write;

use acido_plumbing::quote::quote_path;
use acido_porcelain::gc;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also remove the step cache of Acidofile builds (entries other
    /// stored images depend on stay) and push's layer cache
    #[arg(long)]
    pub cache: bool,
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Collects garbage and prints one line per removed file; the total goes
/// to stderr.
pub fn run(ctx: &Context, args: GcArgs) -> anyhow::Result<Outcome> {
    use std::os::unix::ffi::OsStrExt;
    let store = ctx.store()?;
    let report = gc::gc_with(&store, args.cache)?;
    let mut out = output::stdout();
    for item in &report.removed {
        let path = quote_path(item.path.as_os_str().as_bytes());
        writeln!(
            out,
            "removed {} {path} ({})",
            item.kind.name(),
            output::count(item.bytes, "byte", "bytes")
        )?;
    }
    output::finish(out)?;
    // The summary is status, not result: on stderr like fsck's, so stdout
    // holds only the removed files and `-q` silences it.
    if !ctx.quiet {
        let mut err = std::io::stderr().lock();
        let files = report.removed.len();
        writeln!(
            err,
            "gc: removed {files} {}, {}",
            plural(files, "file", "files"),
            output::count(report.bytes(), "byte", "bytes")
        )?;
        if report.in_use > 0 {
            let n = report.in_use;
            writeln!(
                err,
                "gc: left {n} {} in use",
                plural(n, "temp file", "temp files")
            )?;
        }
        if report.cache_kept > 0 {
            let n = report.cache_kept;
            writeln!(
                err,
                "gc: left {n} cache {} other images depend on",
                plural(n, "entry", "entries")
            )?;
        }
        if report.trees_in_use > 0 {
            let n = report.trees_in_use;
            writeln!(
                err,
                "gc: kept {n} cached {} used by build trees",
                plural(n, "tree", "trees")
            )?;
        }
    }
    Ok(Outcome::Success)
}
