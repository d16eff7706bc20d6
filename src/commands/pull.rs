//! `acido pull SOURCE`

use std::io::Write;
use std::sync::Arc;

use acido_plumbing::oci::source::Platform;
use acido_porcelain::pull::{self, PullOptions};
use clap::Args;

use crate::commands::Context;
use crate::interrupt;
use crate::output::{self, Outcome};
use crate::progress::Bar;

/// Arguments of `acido pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Pick the image for this operating system from an index (Go's
    /// names: linux, freebsd; default: the host's)
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,
    /// Pick the image for this architecture from an index (Go's names:
    /// amd64, arm64, arm, 386, ...; default: the host's)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Pick the image for this architecture variant from an index (v6,
    /// v7, v8)
    #[arg(long, value_name = "VARIANT")]
    pub variant: Option<String>,
    /// The image: oci:DIR[:TAG] (an OCI image layout) or
    /// docker-archive:FILE[:NAME:TAG] (a 'docker save' tarball)
    #[arg(value_name = "SOURCE")]
    pub source: String,
}

/// Pulls the image and prints the id of its app image.
pub fn run(ctx: &Context, args: PullArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let host = Platform::host();
    let platform = Platform {
        os: args.os.unwrap_or(host.os),
        architecture: args.arch.unwrap_or(host.architecture),
        variant: args.variant,
    };
    let options = PullOptions {
        platform: Some(platform),
    };
    let progress = Arc::new(Bar::new(ctx.quiet));
    let report = pull::pull(&store, &args.source, &options, progress, interrupt::flag())?;
    let mut out = output::stdout();
    writeln!(out, "{}", report.top)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
