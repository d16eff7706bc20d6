//! `acido resolve [--abbrev[=N]] IMAGE...`

use std::io::Write;

use acido_plumbing::id::FULL_HEX_LEN;
use acido_plumbing::naming::{self, ImageRef};

use crate::cli::ResolveArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// Prints the full (or abbreviated) id each name stands for.
pub fn run(ctx: &Context, args: ResolveArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let mut out = output::stdout();
    for name in &args.images {
        let resolved = naming::resolve(&store, &ImageRef::parse(name, false)?)?;
        let hex_len = args.abbrev.unwrap_or(FULL_HEX_LEN);
        writeln!(out, "{}", resolved.id.abbrev(hex_len))?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
