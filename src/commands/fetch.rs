//! `acido fetch [--insecure-options=http,image] [--os OS] [--arch ARCH] IMAGE...`,
//! and the HTTP options `fetch` and `trust` share.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use acido_plumbing::http::{CaRoots, Client, ConnectTo, HttpConfig};
use acido_plumbing::trust::key::display_fingerprint;
use acido_porcelain::fetch::{self, FetchOptions, Source};
use acido_porcelain::trust::TrustRoots;
use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::commands::trust::TrustDirs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// Debian's CA bundle (package `ca-certificates`), the default roots when
/// `SSL_CERT_FILE` is not set.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How HTTPS connections are made; shared by `fetch` and `trust`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Connect to ADDR for HOST:PORT, as curl's option (repeatable); TLS
    /// still checks HOST's certificate
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Connect to ADDR:PORT2 for HOST:PORT, as curl's option (repeatable);
    /// TLS still checks HOST's certificate
    #[arg(long, value_name = "HOST:PORT:ADDR:PORT2")]
    pub connect_to: Vec<String>,
}

impl HttpArgs {
    /// The client: `--limit` bounds, the overrides, and the CA roots:
    /// `$SSL_CERT_FILE`, else Debian's bundle when present, else the
    /// compiled-in Mozilla roots; plus every `*.pem` and `*.crt` in the
    /// `certs.d` directory of both trust roots.
    pub fn client(
        &self,
        ctx: &Context,
        roots: &TrustRoots,
        allow_http: bool,
    ) -> anyhow::Result<Client> {
        let mut config = HttpConfig::new(ctx.limits());
        config.allow_http = allow_http;
        for text in &self.resolve {
            config.connect_to.push(ConnectTo::parse_resolve(text)?);
        }
        for text in &self.connect_to {
            config.connect_to.push(ConnectTo::parse_connect_to(text)?);
        }
        let mut files = Vec::new();
        match std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            Some(file) => files.push(PathBuf::from(file)),
            None if Path::new(SYSTEM_CA_BUNDLE).is_file() => {
                files.push(PathBuf::from(SYSTEM_CA_BUNDLE))
            }
            None => {}
        }
        for root in [&roots.user, &roots.system] {
            files.extend(extra_cas(&root.join("certs.d"))?);
        }
        config.ca_roots = CaRoots { files };
        Ok(Client::new(config)?)
    }
}

/// The CA files in a `certs.d` directory, sorted; none when it is missing.
fn extra_cas(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| dir.display().to_string()),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| dir.display().to_string())?.path();
        let is_ca = path
            .extension()
            .is_some_and(|ext| ext == "pem" || ext == "crt");
        if is_ca && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// What `--insecure-options` may switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InsecureOption {
    /// Allow plain HTTP for discovery and downloads (and https→http
    /// redirects)
    Http,
    /// Do not check the image's signature
    Image,
}

/// Arguments of `acido fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Checks to switch off, comma-separated: http (plain HTTP allowed),
    /// image (no signature check; said on stderr)
    #[arg(long, value_name = "OPTIONS", value_delimiter = ',')]
    pub insecure_options: Vec<InsecureOption>,
    /// The os label to discover and require (default: this host's; an
    /// image without an os label is accepted then)
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,
    /// The arch label to discover and require, in appc names (default:
    /// this host's, e.g. amd64; an image without one is accepted then)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Fetch by name even when a stored image matches
    #[arg(long)]
    pub no_store: bool,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub dirs: TrustDirs,
    /// NAME[:VERSION][,LABEL=VALUE...] (found by appc discovery), an
    /// https:// URL of an ACI (signature at URL.asc), or an ACI file
    /// (signature at FILE.asc)
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// Fetches, checks and stores each image; prints each id.
pub fn run(ctx: &Context, args: FetchArgs) -> anyhow::Result<Outcome> {
    let interrupt = crate::interrupt::flag();
    let store = ctx
        .store()?
        .with_interrupt(std::sync::Arc::clone(&interrupt));
    let roots = args.dirs.roots()?;
    let keystore = roots.keystore();
    let allow_http = args.insecure_options.contains(&InsecureOption::Http);
    let client = args.http.client(ctx, &roots, allow_http)?;
    let mut options = FetchOptions::new(SystemTime::now());
    options.verify_signature = !args.insecure_options.contains(&InsecureOption::Image);
    options.refresh = args.no_store;
    options.os = args.os.clone();
    options.arch = args.arch.clone();
    options.interrupt = Some(interrupt);
    let mut out = output::stdout();
    let mut err = io::stderr().lock();
    for image in &args.images {
        let source = Source::parse(image)?;
        if !options.verify_signature {
            // Always said, even with -q: the user must not forget it.
            writeln!(
                err,
                "acido: warning: signature verification is disabled (--insecure-options=image): the signature of {image} is not checked"
            )?;
        }
        let fetched = fetch::fetch(&store, &client, &keystore, &source, image, &options)?;
        for warning in &fetched.warnings {
            writeln!(err, "acido: warning: trust store: {warning}")?;
        }
        if !ctx.quiet {
            match &fetched.signer {
                Some(signer) => writeln!(
                    err,
                    "acido: {image}: signature verified: {} {}",
                    display_fingerprint(&signer.fingerprint),
                    signer.user_id.as_deref().unwrap_or("").escape_debug()
                )?,
                None if fetched.origin == "store" => {
                    writeln!(err, "acido: {image}: already stored")?
                }
                None => {}
            }
        }
        writeln!(out, "{}", fetched.id)?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
