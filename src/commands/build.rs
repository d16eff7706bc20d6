//! `acido build [--import] [--overwrite] DIR [OUT.aci]` and
//! `acido build -f ACIDOFILE [-o OUT.aci] [--import] [--keep-tree DIR]
//! [--no-cache] [--rebuild-from N]`

use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use acido_plumbing::id::ImageId;
use acido_porcelain::acidofile::{self, AcidofileOptions};
use acido_porcelain::build::{self, BuildOptions, BuildReport};
use acido_porcelain::progress::advance_callback;
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
    /// With -f: run every step, taking none from the step cache (their
    /// results are still stored in it)
    #[arg(long, requires = "file")]
    pub no_cache: bool,
    /// With -f: run step N (FROM is 1) and every step after it, even when
    /// they are in the step cache
    #[arg(long, value_name = "N", requires = "file",
        value_parser = clap::value_parser!(u32).range(1..))]
    pub rebuild_from: Option<u32>,
    /// With -f: for FROM docker://..., require HTTPS with a verified
    /// certificate from the registry (as podman build; false allows plain
    /// HTTP). Trusted CAs: $SSL_CERT_FILE, else the built-in roots
    #[arg(long, value_name = "BOOL", default_value_t = true,
        action = clap::ArgAction::Set, requires = "file")]
    pub tls_verify: bool,
    /// With -f: when FROM docker://... pulls its image, as podman build:
    /// missing (only when no stored image stands for the reference),
    /// always, or never (the stored image or an error)
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = PullArg::Missing,
        requires = "file")]
    pub pull: PullArg,
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
    // Where the image goes is a usage question, answered before any work.
    if !args.import && args.output.is_none() && args.output_file.is_none() {
        let missing = if args.file.is_some() {
            "-o FILE"
        } else {
            "OUT.aci"
        };
        return Err(crate::cli::usage_error(
            "build",
            format!("name {missing} or use --import (or both)"),
        ));
    }
    // Ctrl-C during the import that follows the pack stops it too.
    let store = ctx.store()?.with_interrupt(crate::interrupt::flag());
    // One bar for the whole run: the pack reports its bytes to it.
    let progress = Arc::new(Bar::new(ctx.quiet));
    let mut pack = super::pack_options(args.compression.into(), args.threads);
    pack.progress = Some(advance_callback(progress.clone()));
    let opts = BuildOptions {
        output: args.output.clone().or(args.output_file.clone()),
        overwrite: args.overwrite,
        import: args.import,
        pack,
    };
    let (id, report) = match (&args.file, &args.dir) {
        (Some(file), _) => build_file(ctx, &store, file, opts, &args, progress)?,
        (None, Some(dir)) => {
            let report =
                build::build(&store, dir, &opts, &std::env::temp_dir(), progress.as_ref())?;
            (report.pack.id, Some(report))
        }
        // clap requires one of them.
        (None, None) => anyhow::bail!("build: name a build tree or an Acidofile (-f)"),
    };
    if let Some(report) = &report {
        summarize(ctx, report)?;
    }
    let mut out = output::stdout();
    writeln!(out, "{id}")?;
    output::finish(out)?;
    Ok(Outcome::Success)
}

/// The values of `--pull` (no doc comments: clap would print them as a
/// long list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullArg {
    Missing,
    Always,
    Never,
}

/// As root the steps run in an overlay tree (acido-build(1)). Mounted in
/// a mount namespace of this process's own, the overlay is seen by no
/// other process and the kernel unmounts it when the process ends, however
/// it ends: a `build -f` killed by SIGKILL leaves no mount behind. New
/// mounts stay inside (`/` is made a slave: the host's mounts still show
/// through). Without the right to do this (not root) nothing changes, and
/// no overlay is mounted either. Threads started from here on, the
/// render's workers among them, share the namespace; the signal thread
/// started earlier keeps the host's, and never looks at the file system.
fn own_mount_namespace() {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    if unshare(CloneFlags::CLONE_NEWNS).is_ok() {
        // Without this the overlay would still propagate to the host's
        // shared mounts, and outlive the process there.
        let _ = mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        );
    }
}

fn build_file(
    ctx: &Context,
    store: &acido_plumbing::store::Store,
    file: &Path,
    build: BuildOptions,
    args: &BuildArgs,
    progress: Arc<Bar>,
) -> anyhow::Result<(ImageId, Option<BuildReport>)> {
    let interrupt = crate::interrupt::flag();
    own_mount_namespace();
    let opts = AcidofileOptions {
        build,
        keep_tree: args.keep_tree.clone(),
        context: None,
        use_cache: !args.no_cache,
        rebuild_from: args.rebuild_from.map(|n| n as usize),
        pull: acido_porcelain::pull::PullOptions {
            allow_http: !args.tls_verify,
            ca_files: crate::commands::ssl_cert_file(),
            // The files `acido pull` reads by default (acido-pull(1), FILES).
            auth_files: crate::commands::registry_auth_files(None),
            ..Default::default()
        },
        pull_policy: match args.pull {
            PullArg::Missing => acido_porcelain::pull::PullPolicy::Missing,
            PullArg::Always => acido_porcelain::pull::PullPolicy::Always,
            PullArg::Never => acido_porcelain::pull::PullPolicy::Never,
        },
    };
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
    Ok((report.id, report.build))
}

fn summarize(ctx: &Context, report: &BuildReport) -> anyhow::Result<()> {
    if !ctx.quiet {
        let mut err = std::io::stderr().lock();
        for older in &report.same_name {
            let mut app = older.name.clone();
            for label in &older.labels {
                app.push_str(&format!(",{}={}", label.name, label.value));
            }
            let consequence = if report.imported.is_some() {
                "that name now resolves to the new image"
            } else {
                "importing the new image would make that name resolve to it"
            };
            writeln!(
                err,
                "acido: warning: the store already holds {} as {app}; {consequence}",
                older.id
            )?;
        }
        match &report.selection {
            Some(sel) => writeln!(
                err,
                "acido: {} packed: {} added, {} modified, {} type changed, {} deleted{}{}",
                output::count(report.pack.entries, "entry", "entries"),
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
                "acido: no dependencies: {} packed",
                output::count(report.pack.entries, "entry", "entries")
            )?,
        }
    }
    Ok(())
}
