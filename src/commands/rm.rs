//! `acido rm [--force] IMAGE...`

use std::io::{self, Write};

use acido_porcelain::rm;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove images even when other stored images depend on them
    #[arg(short, long)]
    pub force: bool,
    /// Images to remove: ids, id prefixes or NAME[:VERSION][,LABEL=VALUE...]
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

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
