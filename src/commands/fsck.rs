//! `acido fsck [--repair] [--format text|json]`

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use acido_plumbing::quote::quote_path;
use acido_porcelain::fsck::{self, Repair, Subject};
use clap::Args;

use crate::commands::{Context, OutputFormat};
use crate::output::{self, Outcome};

/// Arguments of `acido fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Fix what can be fixed: rebuild indexes and records (adding the fast
    /// digest older indexes lack), move damaged blobs and unknown files to
    /// quarantine/, delete orphans, stale temps and damaged cached trees
    #[arg(long)]
    pub repair: bool,
    /// Output format: a line per problem, or one JSON document with the
    /// problems and the counts
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub format: OutputFormat,
}

/// Prints one line per problem; exit 1 when problems were found (with
/// `--repair`: when some could not be repaired).
pub fn run(ctx: &Context, args: FsckArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let report = fsck::fsck(&store, args.repair)?;
    let mut out = output::stdout();
    match args.format {
        OutputFormat::Text => write_text(&mut out, &report.problems)?,
        OutputFormat::Json => fsck::write_json(&mut out, &report, args.repair)?,
    }
    output::finish(out)?;
    if !ctx.quiet {
        let (blobs, problems) = (report.blobs_checked, report.problems.len());
        let mut extra = String::new();
        if report.trees_checked > 0 {
            let n = report.trees_checked;
            extra += &format!("; {n} cached {}", if n == 1 { "tree" } else { "trees" });
        }
        if report.oci_layers_checked > 0 {
            let n = report.oci_layers_checked;
            extra += &format!(
                "; {n} cached OCI {}",
                if n == 1 { "layer" } else { "layers" }
            );
        }
        if report.layers_checked > 0 {
            let n = report.layers_checked;
            extra += &format!("; {n} step {}", if n == 1 { "layer" } else { "layers" });
        }
        // Old indexes are no problem (renders check SHA-512 for them),
        // but only --repair makes their renders fast.
        if report.fast_digests_added > 0 {
            extra += &format!(
                "; fast digest added to {} {}",
                report.fast_digests_added,
                if report.fast_digests_added == 1 {
                    "index"
                } else {
                    "indexes"
                }
            );
        } else if report.without_fast_digest > 0 {
            extra += &format!(
                "; {} {} without the fast digest (fsck --repair adds it)",
                report.without_fast_digest,
                if report.without_fast_digest == 1 {
                    "index"
                } else {
                    "indexes"
                }
            );
        }
        writeln!(
            io::stderr(),
            "fsck: checked {blobs} {}, {problems} {}, {} left{extra}",
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

/// `KIND\tSUBJECT\tDETAIL[ (repaired: ...)]` per problem.
fn write_text(out: &mut impl Write, problems: &[fsck::Problem]) -> io::Result<()> {
    for problem in problems {
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
    Ok(())
}
