//! `acido export [--compression C] [--overwrite] IMAGE OUT.aci|-`

use std::io::{self, Write};
use std::path::Path;
use std::path::PathBuf;

use acido_plumbing::store::ExportOptions;
use acido_porcelain::export::{self, Target};
use clap::Args;

use crate::commands::{CompressionArg, Context};
use crate::output::{self, Outcome};

/// Arguments of `acido export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Compression of the output
    #[arg(long, value_enum, default_value = "xz")]
    pub compression: CompressionArg,
    /// Threads for xz compression (0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// The image: id, id prefix or NAME[:VERSION][,LABEL=VALUE...]
    pub image: String,
    /// The ACI file to write ('-' for standard output)
    pub output: PathBuf,
}

/// Exports the image and prints its id (on stderr when the ACI itself
/// goes to stdout).
pub fn run(ctx: &Context, args: ExportArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let opts = ExportOptions {
        compression: args.compression.into(),
        level: None,
        xz_threads: args.threads,
    };
    if args.output == Path::new("-") {
        let mut stdout = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
        let report = export::export(&store, &args.image, Target::Stream(&mut stdout), &opts)?;
        stdout.flush()?;
        writeln!(io::stderr(), "{}", report.id)?;
    } else {
        let target = Target::File {
            path: &args.output,
            overwrite: args.overwrite,
        };
        let report = export::export(&store, &args.image, target, &opts)?;
        let mut out = output::stdout();
        writeln!(out, "{}", report.id)?;
        output::finish(out)?;
    }
    Ok(Outcome::Success)
}
