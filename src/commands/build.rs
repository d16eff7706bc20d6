//! `acido build [--import] [--overwrite] DIR [OUT.aci]` and
//! `acido build -f ACIDOFILE [-o OUT.aci] [--import] [--keep-tree DIR]`

use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use acido_porcelain::acidofile::{self, AcidofileOptions};
use acido_porcelain::build::{self, BuildOptions, BuildReport};
use clap::Args;

use crate::commands::{CompressionArg, Context};
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Arguments of `acido build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build the image an Acidofile describes (see acido-build(5)) instead
    /// of packing a build tree
    #[arg(short = 'f', long = "file", value_name = "ACIDOFILE")]
    pub file: Option<PathBuf>,
    /// With -f: write the new ACI to FILE
    #[arg(short = 'o', long = "output", value_name = "FILE", requires = "file")]
    pub output_file: Option<PathBuf>,
    /// With -f: run the steps in DIR (it must not exist or be empty) and
    /// keep it, instead of in a temp dir that is removed
    #[arg(long, value_name = "DIR", requires = "file")]
    pub keep_tree: Option<PathBuf>,
    /// Also store the new image
    #[arg(long)]
    pub import: bool,
    /// Replace OUT.aci if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// Compression of the output
    #[arg(long, value_enum, default_value = "xz")]
    pub compression: CompressionArg,
    /// Threads for xz compression (0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
    /// The build tree: a manifest file and a rootfs directory (not with -f)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub dir: Option<PathBuf>,
    /// Where to write the new ACI (may be left out with --import; not with -f)
    #[arg(value_name = "OUT.aci", conflicts_with = "file")]
    pub output: Option<PathBuf>,
}

/// Builds DIR (or the Acidofile) into a diff image and prints its id.
pub fn run(ctx: &Context, args: BuildArgs) -> anyhow::Result<Outcome> {
    // Ctrl-C during the import that follows the pack stops it too.
    let store = ctx.store()?.with_interrupt(crate::interrupt::flag());
    let opts = BuildOptions {
        output: args.output.clone().or(args.output_file.clone()),
        overwrite: args.overwrite,
        import: args.import,
        pack: super::pack_options(args.compression.into(), args.threads),
    };
    let report = match (&args.file, &args.dir) {
        (Some(file), _) => build_file(ctx, &store, file, opts, &args)?,
        (None, Some(dir)) => {
            let progress = Bar::new(ctx.quiet);
            build::build(&store, dir, &opts, &std::env::temp_dir(), &progress)?
        }
        // clap requires one of them.
        (None, None) => anyhow::bail!("build: name a build tree or an Acidofile (-f)"),
    };
    summarize(ctx, &report)?;
    let mut out = output::stdout();
    writeln!(out, "{}", report.pack.id)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}

fn build_file(
    ctx: &Context,
    store: &acido_plumbing::store::Store,
    file: &Path,
    build: BuildOptions,
    args: &BuildArgs,
) -> anyhow::Result<BuildReport> {
    let interrupt = crate::interrupt::flag();
    let opts = AcidofileOptions {
        build,
        keep_tree: args.keep_tree.clone(),
        context: None,
    };
    let progress = Arc::new(Bar::new(ctx.quiet));
    let report = acidofile::build_file(
        store,
        file,
        &opts,
        &std::env::temp_dir(),
        progress,
        &interrupt,
    )?;
    if !ctx.quiet {
        if let Some(tree) = &report.tree {
            writeln!(
                std::io::stderr(),
                "acido: step tree kept in {}",
                tree.display()
            )?;
        }
    }
    Ok(report.build)
}

fn summarize(ctx: &Context, report: &BuildReport) -> anyhow::Result<()> {
    if !ctx.quiet {
        let mut err = std::io::stderr().lock();
        match &report.selection {
            Some(sel) => writeln!(
                err,
                "acido: {} entries packed: {} added, {} modified, {} type changed, {} deleted{}{}",
                report.pack.entries,
                sel.added,
                sel.modified,
                sel.type_changed,
                sel.deleted,
                if report.whitelisted {
                    " (pathWhitelist written)"
                } else {
                    ""
                },
                if report.used_overlay {
                    "; overlay tree, only its changes read"
                } else if report.used_snapshot {
                    ""
                } else {
                    "; no startbuild snapshot, every file compared"
                }
            )?,
            None => writeln!(
                err,
                "acido: no dependencies: {} entries packed",
                report.pack.entries
            )?,
        }
    }
    Ok(())
}
