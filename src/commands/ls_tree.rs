//! `acido ls-tree [-z] [--long] IMAGE`

use acido_plumbing::format;

use crate::cli::LsTreeArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

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
