//! `acido push IMAGE DEST`

use std::io::Write;

use acido_porcelain::push;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image: an id, an id prefix or an app string
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to: oci:DIR[:TAG] (an OCI image layout, created when missing)
    #[arg(value_name = "DEST")]
    pub destination: String,
}

/// Pushes the image and prints the digest of the manifest written.
pub fn run(ctx: &Context, args: PushArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let outcome = push::push(&store, &args.image, &args.destination)?;
    let mut out = output::stdout();
    writeln!(out, "{}", outcome.report.manifest_digest)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
