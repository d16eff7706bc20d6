//! `acido gc`

use std::io::Write;

use acido_plumbing::quote::quote_path;
use acido_porcelain::gc;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido gc`.
#[derive(Debug, Args)]
pub struct GcArgs {}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Collects garbage and prints one line per removed file and a total.
pub fn run(ctx: &Context, _args: GcArgs) -> anyhow::Result<Outcome> {
    use std::os::unix::ffi::OsStrExt;
    let store = ctx.store()?;
    let report = gc::gc(&store)?;
    let mut out = output::stdout();
    for item in &report.removed {
        let path = quote_path(item.path.as_os_str().as_bytes());
        writeln!(
            out,
            "removed {} {path} ({} bytes)",
            item.kind.name(),
            item.bytes
        )?;
    }
    let files = report.removed.len();
    writeln!(
        out,
        "gc: removed {files} {}, {} bytes",
        plural(files, "file", "files"),
        report.bytes()
    )?;
    if report.in_use > 0 {
        let n = report.in_use;
        writeln!(
            out,
            "gc: left {n} {} in use",
            plural(n, "temp file", "temp files")
        )?;
    }
    if report.trees_in_use > 0 {
        let n = report.trees_in_use;
        writeln!(
            out,
            "gc: kept {n} cached {} used by build trees",
            plural(n, "tree", "trees")
        )?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
