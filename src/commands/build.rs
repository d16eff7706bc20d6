//! `acido build [--import] [--overwrite] DIR [OUT.aci]`

use std::io::Write;

use acido_plumbing::pack::PackOptions;
use acido_porcelain::build::{self, BuildOptions};

use crate::cli::BuildArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Builds DIR into a diff image and prints its id.
pub fn run(ctx: &Context, args: BuildArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let opts = BuildOptions {
        output: args.output.clone(),
        overwrite: args.overwrite,
        import: args.import,
        pack: PackOptions {
            compression: args.compression.into(),
            xz_threads: args.threads,
            level: None,
        },
    };
    let progress = Bar::new(ctx.quiet);
    let report = build::build(&store, &args.dir, &opts, &std::env::temp_dir(), &progress)?;
    if !ctx.quiet {
        let mut err = std::io::stderr().lock();
        match &report.selection {
            Some(sel) => writeln!(
                err,
                "acido: {} entries packed: {} added, {} modified, {} type changed, {} deleted{}{}",
                report.pack.entries,
                sel.added,
                sel.modified,
                sel.type_changed,
                sel.deleted,
                if report.whitelisted {
                    " (pathWhitelist written)"
                } else {
                    ""
                },
                if report.used_snapshot {
                    ""
                } else {
                    "; no startbuild snapshot, every file compared"
                }
            )?,
            None => writeln!(
                err,
                "acido: no dependencies: {} entries packed",
                report.pack.entries
            )?,
        }
    }
    let mut out = output::stdout();
    writeln!(out, "{}", report.pack.id)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
