//! `acido images [--all] [--format text|json] [--abbrev[=N]|--no-abbrev]`

use acido_plumbing::id::FULL_HEX_LEN;
use acido_porcelain::images;
use clap::Args;

use crate::commands::{Context, OutputFormat};
use crate::output::{self, Outcome};

/// Arguments of `acido images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output format: a table (text) or JSON; the table's --abbrev and
    /// --no-abbrev do not apply to JSON
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text",
        conflicts_with_all = ["abbrev", "no_abbrev"])]
    pub format: OutputFormat,
    /// Show ids in the table with at least N hex digits (default 12, more
    /// when needed to tell the listed ids apart)
    // `--abbrev=N` only, as git takes it (see resolve).
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
        default_missing_value = "12",
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
        OutputFormat::Text => {
            let abbrev = if args.no_abbrev {
                FULL_HEX_LEN
            } else {
                args.abbrev.map_or(images::DEFAULT_ABBREV, usize::from)
            };
            images::write_table(&mut out, &records, abbrev)?;
        }
        OutputFormat::Json => images::write_json(&mut out, &records)?,
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
