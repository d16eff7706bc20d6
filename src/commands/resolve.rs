//! `acido resolve [--abbrev[=N]] IMAGE...`

use std::io::Write;

use acido_plumbing::id::FULL_HEX_LEN;
use acido_plumbing::naming::{self, ImageRef};
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Print ids shortened to N hex digits (64 when =N is omitted)
    // `--abbrev=N` only, as git takes it: a separate value would swallow
    // the first IMAGE (`--abbrev sha512-e1`).
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
        default_missing_value = "64",
        value_parser = clap::value_parser!(u16).range(2..=128))]
    pub abbrev: Option<u16>,
    /// Image names: ids, id prefixes or NAME[:VERSION][,LABEL=VALUE...]
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Prints the full (or abbreviated) id each name stands for.
pub fn run(ctx: &Context, args: ResolveArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let mut out = output::stdout();
    for name in &args.images {
        let resolved = naming::resolve(&store, &ImageRef::parse(name, false)?)?;
        let hex_len = args.abbrev.map_or(FULL_HEX_LEN, usize::from);
        writeln!(out, "{}", resolved.id.abbrev(hex_len))?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
