//! `acido verify IMAGE.aci [SIG]`

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use acido_plumbing::image::OpenImage;
use acido_plumbing::manifest::ImageManifest;
use acido_plumbing::trust::{verify_detached, VerifyError};
use anyhow::Context as _;
use clap::Args;

use crate::commands::trust::TrustDirs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// The largest signature file read: a detached signature is a few hundred
/// bytes; this only stops a wrong file from being read whole.
const MAX_SIGNATURE: u64 = 1 << 20;

/// Arguments of `acido verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub dirs: TrustDirs,
    /// The ACI file (any compression), as it was signed
    #[arg(value_name = "IMAGE", value_hint = clap::ValueHint::FilePath)]
    pub image: PathBuf,
    /// Its detached OpenPGP signature, armoured or binary (default:
    /// IMAGE.asc)
    #[arg(value_name = "SIG")]
    pub signature: Option<PathBuf>,
}

/// Checks IMAGE's signature against the keys trusted for its name.
pub fn run(ctx: &Context, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let image_name = args.image.display().to_string();
    let store = ctx.store()?;
    let image = OpenImage::open_archive(&args.image, &std::env::temp_dir(), store.limits())?;
    let manifest = ImageManifest::from_slice(image.manifest_bytes())
        .with_context(|| format!("{image_name}: manifest"))?;
    drop(image);
    let name = manifest.name.as_str();
    let sig_path = args.signature.clone().unwrap_or_else(|| {
        let mut path = args.image.clone().into_os_string();
        path.push(".asc");
        PathBuf::from(path)
    });
    let mut err = io::stderr().lock();
    let signature = match File::open(&sig_path) {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(MAX_SIGNATURE)
                .read_to_end(&mut bytes)
                .with_context(|| sig_path.display().to_string())?;
            bytes
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            writeln!(
                err,
                "acido: not verified: {image_name}: no signature file {}",
                sig_path.display()
            )?;
            return Ok(Outcome::Negative);
        }
        Err(e) => return Err(e).with_context(|| sig_path.display().to_string()),
    };
    let keyring = args.dirs.roots()?.keystore().keyring(name)?;
    for problem in &keyring.problems {
        writeln!(err, "acido: warning: trust store: {problem}")?;
    }
    let data = File::open(&args.image).with_context(|| image_name.clone())?;
    match verify_detached(&keyring, name, &signature, data, SystemTime::now()) {
        Ok(signer) => {
            let mut out = output::stdout();
            writeln!(
                out,
                "{} {}",
                signer.fingerprint,
                signer.user_id.unwrap_or_default().escape_debug()
            )?;
            output::finish(out)?;
            Ok(Outcome::Success)
        }
        Err(VerifyError::Io(e)) => Err(e).with_context(|| image_name.clone()),
        Err(e) => {
            writeln!(err, "acido: not verified: {image_name}: {e}")?;
            Ok(Outcome::Negative)
        }
    }
}
