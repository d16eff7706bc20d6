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
    /// Require HTTPS with a verified certificate from a registry (as
    /// skopeo; false allows plain HTTP). Trusted CAs: $SSL_CERT_FILE, else
    /// the built-in roots
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Credentials for the registry, USER[:PASSWORD]
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Read registry credentials from FILE (auth.json or docker's
    /// config.json format) instead of $REGISTRY_AUTH_FILE or
    /// $XDG_RUNTIME_DIR/containers/auth.json; --creds beats it
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<std::path::PathBuf>,
    /// The image: docker://HOST[:PORT]/REPO[:TAG|@DIGEST] (a registry),
    /// oci:DIR[:TAG] (an OCI image layout) or docker-archive:FILE[:NAME:TAG]
    /// (a 'docker save' tarball)
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
    let ca_files = crate::commands::ssl_cert_file();
    let credentials = args.creds.map(crate::commands::split_creds);
    let options = PullOptions {
        platform: Some(platform),
        allow_http: !args.tls_verify,
        ca_files,
        credentials,
        auth_files: crate::commands::registry_auth_files(args.authfile),
    };
    let progress = Arc::new(Bar::new(ctx.quiet));
    let report = pull::pull(&store, &args.source, &options, progress, &interrupt::flag())?;
    let mut out = output::stdout();
    writeln!(out, "{}", report.top)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
