//! `acido export [--compression C] [--overwrite] IMAGE OUT.aci|-`

use std::io::{self, Write};
use std::path::Path;

use acido_plumbing::store::ExportOptions;
use acido_porcelain::export::{self, Target};

use crate::cli::ExportArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

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
