//! `acido push IMAGE DEST`

use std::io::Write;

use acido_plumbing::oci::upload::{UploadOptions, DEFAULT_CHUNK_SIZE};
use acido_porcelain::push::{self, PushFormat, PushOptions};
use clap::Args;

use crate::commands::Context;
use crate::output::{self, Outcome};

/// Arguments of `acido push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// What to push: oci (a runnable OCI image, one layer per image of the
    /// dependency list) or aci (the image and its dependencies as their
    /// exact ACI bytes, an OCI artifact that pulls back to the same ids)
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Oci)]
    pub format: Format,
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
    /// Send blobs larger than BYTES to a registry in chunks of BYTES (or
    /// the larger chunk the registry asks for), each its own request
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_CHUNK_SIZE,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: u64,
    /// The image: an id, an id prefix or an app string
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to: docker://HOST[:PORT]/REPO[:TAG] (a registry; the tag
    /// defaults to latest) or oci:DIR[:TAG] (an OCI image layout, created
    /// when missing)
    #[arg(value_name = "DEST")]
    pub destination: String,
}

/// The values of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    // A runnable OCI image (no doc comments: clap would print the values
    // as a long list).
    Oci,
    // An OCI artifact of the exact ACI bytes.
    Aci,
}

/// Pushes the image and prints the digest of the manifest written.
pub fn run(ctx: &Context, args: PushArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let ca_files = crate::commands::ssl_cert_file();
    let credentials = args.creds.map(crate::commands::split_creds);
    let options = PushOptions {
        format: match args.format {
            Format::Oci => PushFormat::Oci,
            Format::Aci => PushFormat::Aci,
        },
        allow_http: !args.tls_verify,
        ca_files,
        credentials,
        auth_files: crate::commands::registry_auth_files(args.authfile),
        upload: UploadOptions {
            chunk_size: args.chunk_size,
        },
    };
    let outcome = push::push(&store, &args.image, &args.destination, &options)?;
    let mut out = output::stdout();
    writeln!(out, "{}", outcome.manifest_digest)?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
