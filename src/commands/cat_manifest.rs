//! `acido cat-manifest [--pretty] IMAGE`

use std::io::Write;

use acido_plumbing::manifest::ImageManifest;
use anyhow::Context as _;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido cat-manifest`.
#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// Print the parsed manifest re-indented in the reference field order
    /// instead of the stored bytes
    #[arg(long)]
    pub pretty: bool,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci file
    pub image: String,
}

/// Prints the stored manifest bytes, or with `--pretty` the parsed manifest.
pub fn run(ctx: &Context, args: CatManifestArgs) -> anyhow::Result<Outcome> {
    let image = ctx.open_image(&args.image, true)?;
    let mut out = output::stdout();
    if args.pretty {
        let manifest = ImageManifest::from_slice(image.manifest_bytes())
            .with_context(|| format!("{}: invalid image manifest", args.image))?;
        writeln!(out, "{}", manifest.to_json_pretty())?;
    } else {
        out.write_all(image.manifest_bytes())?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
