//! `acido fsck [--repair]`

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use acido_plumbing::quote::quote_path;
use acido_porcelain::fsck::{self, Repair, Subject};
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Fix what can be fixed: rebuild indexes and records, move damaged
    /// blobs and unknown files to quarantine/, delete orphans and stale temps
    #[arg(long)]
    pub repair: bool,
}

/// Prints one line per problem; exit 1 when problems were found (with
/// `--repair`: when some could not be repaired).
pub fn run(ctx: &Context, args: FsckArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let report = fsck::fsck(&store, args.repair)?;
    let mut out = output::stdout();
    for problem in &report.problems {
        let subject = match &problem.subject {
            Subject::Image(id) => id.to_string(),
            Subject::Path(path) => quote_path(path.as_os_str().as_bytes()).into_owned(),
        };
        let repair = match &problem.repair {
            None => String::new(),
            Some(Repair::Done(what)) => format!(" (repaired: {what})"),
            Some(Repair::NotDone(why)) => format!(" (not repaired: {why})"),
        };
        writeln!(
            out,
            "{}\t{subject}\t{}{repair}",
            problem.kind.name(),
            problem.detail
        )?;
    }
    output::finish(out)?;
    if !ctx.quiet {
        let (blobs, problems) = (report.blobs_checked, report.problems.len());
        writeln!(
            io::stderr(),
            "fsck: checked {blobs} {}, {problems} {}, {} left",
            if blobs == 1 { "blob" } else { "blobs" },
            if problems == 1 { "problem" } else { "problems" },
            report.unrepaired()
        )?;
    }
    let clean = if args.repair {
        report.unrepaired() == 0
    } else {
        report.is_clean()
    };
    Ok(if clean {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}
