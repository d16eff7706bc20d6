//! `acido pack-aci [--compression C] -o FILE|- DIR`

use std::io::{self, Write};
use std::path::Path;

use acido_plumbing::pack::{self, PackOptions};
use anyhow::Context as _;

use crate::cli::PackAciArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// Packs DIR and prints the new image's id (on stderr when the ACI itself
/// goes to stdout).
pub fn run(_ctx: &Context, args: PackAciArgs) -> anyhow::Result<Outcome> {
    let opts = PackOptions {
        compression: args.compression.into(),
        xz_threads: args.threads,
        level: None,
    };
    if args.output == Path::new("-") {
        let mut stdout = io::stdout().lock();
        let report = pack::pack_layout(&args.dir, &mut stdout, &opts)
            .with_context(|| format!("pack-aci {}", args.dir.display()))?;
        stdout.flush()?;
        writeln!(io::stderr(), "{}", report.id)?;
    } else {
        let report = pack::pack_layout_to_file(&args.dir, &args.output, args.overwrite, &opts)?;
        let mut out = output::stdout();
        writeln!(out, "{}", report.id)?;
        output::finish(out)?;
    }
    Ok(Outcome::Success)
}
