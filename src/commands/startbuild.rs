//! `acido startbuild IMAGE [DIR]`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use acido_porcelain::startbuild;
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Arguments of `acido startbuild`.
#[derive(Debug, Args)]
pub struct StartbuildArgs {
    /// The base image: id, id prefix or NAME[:VERSION][,LABEL=VALUE...]
    pub image: String,
    /// The build tree to create (must not exist or be empty; default: a new
    /// directory under $TMPDIR, printed on stdout)
    pub dir: Option<PathBuf>,
}

/// Renders IMAGE into DIR (or a new temp dir, printed) and prepares it for
/// `build`.
pub fn run(ctx: &Context, args: StartbuildArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let interrupt = crate::interrupt::flag();
    let progress = Arc::new(Bar::new(ctx.quiet));
    let report = startbuild::startbuild(
        &store,
        &args.image,
        args.dir.as_deref(),
        &std::env::temp_dir(),
        progress,
        &interrupt,
    )?;
    if !ctx.quiet {
        writeln!(
            std::io::stderr(),
            "acido: build tree {} on {} ({}); edit rootfs/ and manifest, then 'acido build {} OUT.aci'",
            report.dir.display(),
            report.base,
            output::count(report.render.entries, "entry", "entries"),
            report.dir.display()
        )?;
    }
    if args.dir.is_none() {
        let mut out = output::stdout();
        writeln!(out, "{}", report.dir.display())?;
        output::finish(out)?;
    }
    Ok(Outcome::Success)
}
