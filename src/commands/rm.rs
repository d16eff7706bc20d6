//! `acido rm [--force] IMAGE...`

use std::io::{self, Write};

use acido_porcelain::rm;

use crate::cli::RmArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// Removes the images and prints each removed id; with `--force`, warns
/// about the dependents it broke.
pub fn run(ctx: &Context, args: RmArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let report = rm::rm(&store, &args.images, args.force)?;
    if !ctx.quiet {
        let mut err = io::stderr().lock();
        for (image, users) in &report.broken {
            for user in users {
                writeln!(
                    err,
                    "acido: warning: removed {image}, which {} ({}) depends on",
                    user.id, user.name
                )?;
            }
        }
    }
    let mut out = output::stdout();
    for id in &report.removed {
        writeln!(out, "{id}")?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
