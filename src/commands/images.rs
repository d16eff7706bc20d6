//! `acido images [--format table|json] [--abbrev[=N]|--no-abbrev]`

use acido_plumbing::id::FULL_HEX_LEN;
use acido_porcelain::images;

use crate::cli::{ImagesArgs, ImagesFormat};
use crate::commands::Context;
use crate::output::{self, Outcome};

/// Lists the stored images, oldest import first.
pub fn run(ctx: &Context, args: ImagesArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let records = images::list(&store)?;
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
