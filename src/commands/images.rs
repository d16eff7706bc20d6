//! `acido images [--all] [--format table|json] [--abbrev[=N]|--no-abbrev]`

use acido_plumbing::id::FULL_HEX_LEN;
use acido_porcelain::images;
use clap::{Args, ValueEnum};

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Output formats of `acido images`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImagesFormat {
    /// aligned columns for people
    Table,
    /// a JSON document for programs
    Json,
}

/// Arguments of `acido images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: ImagesFormat,
    /// Show ids in the table with at least N hex digits (default 12, more
    /// when needed to tell the listed ids apart)
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "12",
        value_parser = clap::value_parser!(u16).range(2..=128))]
    pub abbrev: Option<u16>,
    /// Show full ids in the table
    #[arg(long, conflicts_with = "abbrev")]
    pub no_abbrev: bool,
    /// Also list the step cache's entries (see acido-build(5))
    #[arg(short, long)]
    pub all: bool,
}

/// Lists the stored images, oldest import first.
pub fn run(ctx: &Context, args: ImagesArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let records = images::list_shown(&store, args.all)?;
    let mut out = output::stdout();
    match args.format {
        ImagesFormat::Table => {
            let abbrev = if args.no_abbrev {
                FULL_HEX_LEN
            } else {
                args.abbrev.map_or(images::DEFAULT_ABBREV, usize::from)
            };
            images::write_table(&mut out, &records, abbrev)?;
        }
        ImagesFormat::Json => images::write_json(&mut out, &records)?,
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
