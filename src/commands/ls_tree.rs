//! `acido ls-tree [-z] [--long] IMAGE`

use acido_plumbing::format;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido ls-tree`.
#[derive(Debug, Args)]
pub struct LsTreeArgs {
    /// Terminate records with NUL and print paths raw
    #[arg(short = 'z')]
    pub nul: bool,
    /// Also print owner, size, mtime and link targets
    #[arg(long)]
    pub long: bool,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci file
    pub image: String,
}

/// Lists the entries of one image in archive order.
pub fn run(ctx: &Context, args: LsTreeArgs) -> anyhow::Result<Outcome> {
    let image = ctx.open_image(&args.image, true)?;
    let mut out = output::stdout();
    let style = format::ListStyle {
        long: args.long,
        nul: args.nul,
    };
    format::write_entries(&mut out, image.entries(), style)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
