//! `acido extract IMAGE DIR`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use acido_porcelain::extract;
use clap::Args;

use crate::commands::Context;
use crate::output::{count, Outcome};
use crate::progress::Bar;

/// Arguments of `acido extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci
    /// file (its dependencies come from the store)
    pub image: String,
    /// The directory to create (it must not exist, or be empty)
    pub dir: PathBuf,
}

/// Renders IMAGE into DIR with a progress bar, then one summary line (and
/// one line for what could not be restored) on stderr.
pub fn run(ctx: &Context, args: ExtractArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let interrupt = crate::interrupt::flag();
    let progress = Arc::new(Bar::new(ctx.quiet));
    let report = extract::extract(
        &store,
        &args.image,
        &args.dir,
        &std::env::temp_dir(),
        progress,
        &interrupt,
    )?;
    let r = &report.render;
    let mut err = std::io::stderr().lock();
    if !ctx.quiet {
        writeln!(
            err,
            "acido: extracted {} ({}) into {}: {}, {}",
            report.id,
            count(r.images as u64, "image", "images"),
            args.dir.display(),
            count(r.entries, "entry", "entries"),
            count(r.bytes, "byte", "bytes")
        )?;
    }
    let skipped = r.ownership_not_restored + r.devices_not_created + r.xattrs_not_restored;
    if skipped > 0 {
        // Never silent, even with -q: the tree differs from the image.
        writeln!(
            err,
            "acido: not restored (running as {}): {}, {}, {}",
            if r.as_root { "root" } else { "a normal user" },
            count(r.ownership_not_restored, "ownership", "ownerships"),
            count(r.devices_not_created, "device node", "device nodes"),
            count(r.xattrs_not_restored, "xattr", "xattrs")
        )?;
    }
    Ok(Outcome::Success)
}
