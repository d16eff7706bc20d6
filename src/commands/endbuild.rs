//! `acido endbuild DIR`

use std::io::Write;
use std::path::PathBuf;

use acido_porcelain::overlay;
use clap::Args;

use crate::commands::Context;
use crate::output::Outcome;

/// Arguments of `acido endbuild`.
#[derive(Debug, Args)]
pub struct EndbuildArgs {
    /// The build tree made by 'acido startbuild'
    pub dir: PathBuf,
}

/// Ends the build in DIR: unmounts an overlay tree and removes the build
/// state (and the overlay tree's emptied directory).
pub fn run(ctx: &Context, args: EndbuildArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let report = overlay::endbuild(&store, &args.dir)?;
    if !ctx.quiet {
        let what = match (report.overlay, report.unmounted) {
            (true, true) => "overlay unmounted, its changes and build state removed",
            (true, false) => "overlay was not mounted; its changes and build state removed",
            (false, _) => "build state removed; the tree itself is left as it is",
        };
        writeln!(
            std::io::stderr(),
            "acido: build tree {}: {what}",
            args.dir.display()
        )?;
    }
    Ok(Outcome::Success)
}
