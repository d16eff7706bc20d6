//! `acido pack-aci [--compression C] [--paths-from LIST] [--manifest FILE] -o FILE|- DIR`

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use acido_plumbing::pack::{self, PackOptions, PackReport};
use acido_porcelain::progress::{advance_callback, Progress as _};
use anyhow::Context as _;
use clap::Args;

use crate::commands::{CompressionArg, Context};
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Arguments of `acido pack-aci`.
#[derive(Debug, Args)]
pub struct PackAciArgs {
    /// Compression of the output
    #[arg(long, value_enum, default_value = "xz")]
    pub compression: CompressionArg,
    /// Threads for xz compression (0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
    /// Write the ACI to FILE ('-' for standard output)
    #[arg(short, long, value_name = "FILE", required = true)]
    pub output: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// Pack only these paths below rootfs (NUL-separated, relative, as
    /// 'diff-tree -z' prints them); '-' reads standard input
    #[arg(long, value_name = "LIST")]
    pub paths_from: Option<PathBuf>,
    /// Use this manifest instead of DIR/manifest
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The layout directory: a manifest file and a rootfs directory
    pub dir: PathBuf,
}

/// Packs DIR and prints the new image's id (on stderr when the ACI itself
/// goes to stdout).
pub fn run(ctx: &Context, args: PackAciArgs) -> anyhow::Result<Outcome> {
    // Bytes packed and the rate, on a terminal's stderr only (-q: never).
    let bar: Arc<Bar> = Arc::new(Bar::new(ctx.quiet));
    let mut opts = super::pack_options(args.compression.into(), args.threads);
    opts.progress = Some(advance_callback(bar.clone()));
    let to_stdout = args.output == Path::new("-");
    bar.begin(&format!("packing {}", args.dir.display()), None);
    let report = pack_args(&args, &opts, to_stdout);
    bar.end();
    let report = report?;
    if to_stdout {
        writeln!(io::stderr(), "{}", report.id)?;
    } else {
        let mut out = output::stdout();
        writeln!(out, "{}", report.id)?;
        output::finish(out)?;
    }
    Ok(Outcome::Success)
}

/// Packs as the arguments say: the whole layout, or (`--paths-from`,
/// `--manifest`) a chosen manifest and selection.
fn pack_args(
    args: &PackAciArgs,
    opts: &PackOptions,
    to_stdout: bool,
) -> anyhow::Result<PackReport> {
    Ok(if args.paths_from.is_none() && args.manifest.is_none() {
        if to_stdout {
            let mut stdout = io::stdout().lock();
            let report = pack::pack_layout(&args.dir, &mut stdout, opts)
                .with_context(|| format!("pack-aci {}", args.dir.display()))?;
            stdout.flush()?;
            report
        } else {
            pack::pack_layout_to_file(&args.dir, &args.output, args.overwrite, opts)?
        }
    } else {
        pack_selected(args, opts, to_stdout)?
    })
}

/// `--paths-from` / `--manifest`: a chosen manifest and only the listed
/// paths (all of them when no list is given).
fn pack_selected(
    args: &PackAciArgs,
    opts: &PackOptions,
    to_stdout: bool,
) -> anyhow::Result<PackReport> {
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| args.dir.join("manifest"));
    let manifest = fs::read(&manifest_path).with_context(|| manifest_path.display().to_string())?;
    let paths: Option<BTreeSet<Vec<u8>>> = match &args.paths_from {
        None => None,
        Some(list) => {
            let mut bytes = Vec::new();
            if list == Path::new("-") {
                io::stdin().read_to_end(&mut bytes)?;
            } else {
                bytes = fs::read(list).with_context(|| list.display().to_string())?;
            }
            Some(
                bytes
                    .split(|&b| b == 0)
                    .filter(|p| !p.is_empty() && *p != b".")
                    .map(<[u8]>::to_vec)
                    .collect(),
            )
        }
    };
    let select = |path: &[u8]| paths.as_ref().is_none_or(|set| set.contains(path));
    let rootfs = args.dir.join("rootfs");
    if to_stdout {
        let mut stdout = io::stdout().lock();
        let report = pack::pack_selected(&manifest, &rootfs, &select, &mut stdout, opts)?;
        stdout.flush()?;
        Ok(report)
    } else {
        Ok(pack::pack_selected_to_file(
            &manifest,
            &rootfs,
            &select,
            &args.output,
            args.overwrite,
            opts,
        )?)
    }
}
