//! `acido startbuild [--overlay] IMAGE [DIR]` and `acido startbuild --resume DIR`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use acido_porcelain::{overlay, startbuild};
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Arguments of `acido startbuild`.
#[derive(Debug, Args)]
pub struct StartbuildArgs {
    /// Mount DIR/rootfs as an overlay over the rendered image instead of
    /// writing the tree (needs root and overlayfs); end it with 'acido
    /// endbuild DIR'
    #[arg(long)]
    pub overlay: bool,
    /// Mount the overlay of the build tree DIR again (after a reboot); a
    /// tree still mounted is left as it is
    #[arg(long, value_name = "DIR", conflicts_with_all = ["overlay", "image", "dir"])]
    pub resume: Option<PathBuf>,
    /// The base image: id, id prefix or NAME[:VERSION][,LABEL=VALUE...]
    #[arg(required_unless_present = "resume")]
    pub image: Option<String>,
    /// The build tree to create (must not exist or be empty; default: a new
    /// directory under $TMPDIR, printed on stdout)
    pub dir: Option<PathBuf>,
}

/// Renders IMAGE into DIR (or a new temp dir, printed) and prepares it for
/// `build`; or mounts an overlay tree again.
pub fn run(ctx: &Context, args: StartbuildArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    if let Some(dir) = &args.resume {
        let report = overlay::resume(&store, dir)?;
        if !ctx.quiet {
            let what = if report.was_mounted {
                "still mounted"
            } else {
                "mounted again"
            };
            writeln!(
                std::io::stderr(),
                "acido: overlay build tree {} on {}: {what}",
                dir.display(),
                report.base
            )?;
        }
        return Ok(Outcome::Success);
    }
    // clap requires IMAGE without --resume.
    let Some(image) = args.image.as_deref() else {
        anyhow::bail!("startbuild: name a base image");
    };
    let interrupt = crate::interrupt::flag();
    let progress = Arc::new(Bar::new(ctx.quiet));
    let (dir, base, what) = if args.overlay {
        let report = overlay::startbuild_overlay(
            &store,
            image,
            args.dir.as_deref(),
            &std::env::temp_dir(),
            progress,
            &interrupt,
        )?;
        let how = if report.rendered {
            "overlay on its tree, rendered into the cache"
        } else {
            "overlay on its cached tree"
        };
        (report.dir, report.base, how.to_owned())
    } else {
        let report = startbuild::startbuild(
            &store,
            image,
            args.dir.as_deref(),
            &std::env::temp_dir(),
            progress,
            &interrupt,
        )?;
        let entries = output::count(report.render.entries, "entry", "entries");
        (report.dir, report.base, entries)
    };
    if !ctx.quiet {
        writeln!(
            std::io::stderr(),
            "acido: build tree {} on {} ({what}); edit rootfs/ and manifest, then 'acido build {} OUT.aci'",
            dir.display(),
            base,
            dir.display()
        )?;
    }
    if args.dir.is_none() {
        let mut out = output::stdout();
        writeln!(out, "{}", dir.display())?;
        output::finish(out)?;
    }
    Ok(Outcome::Success)
}
