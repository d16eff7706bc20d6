//! `acido ls-tree [-z] [--long] [--format text|json] IMAGE`

use acido_plumbing::format;
use clap::Args;

use crate::commands::{Context, OutputFormat};
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
    /// Output format: text lines or one JSON document with every field
    /// (-z and --long shape the text only)
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text",
        conflicts_with_all = ["nul", "long"])]
    pub format: OutputFormat,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci file
    pub image: String,
}

/// Lists the entries of one image in archive order.
pub fn run(ctx: &Context, args: LsTreeArgs) -> anyhow::Result<Outcome> {
    let image = ctx.open_image(&args.image, true)?;
    let mut out = output::stdout();
    match args.format {
        OutputFormat::Text => {
            let style = format::ListStyle {
                long: args.long,
                nul: args.nul,
            };
            format::write_entries(&mut out, image.entries(), style)?;
        }
        OutputFormat::Json => format::write_entries_json(&mut out, image.entries())?,
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
