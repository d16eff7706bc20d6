//! `acido copy [--chown UID[:GID]] [--chmod MODE] SRC... DIR:DEST`

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use acido_porcelain::copy::{self, CopyOptions};
use clap::builder::{OsStringValueParser, TypedValueParser as _};
use clap::Args;

use crate::commands::Context;
use crate::output::Outcome;

/// Arguments of `acido copy` and `acido add`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Give everything copied this owner and group (numbers) instead of
    /// the source's
    #[arg(long, value_name = "UID[:GID]", value_parser = copy::parse_owner)]
    pub chown: Option<(u32, u32)>,
    /// Give copied files and directories this mode (octal) instead of the
    /// source's
    #[arg(long, value_name = "MODE", value_parser = copy::parse_mode)]
    pub chmod: Option<u32>,
    /// Host files or directories to copy (a directory's contents are copied)
    #[arg(required = true, value_name = "SRC")]
    pub sources: Vec<PathBuf>,
    /// The build tree, a colon, and the destination inside its rootfs
    #[arg(value_name = "DIR:DEST", value_parser = OsStringValueParser::new().try_map(parse_target))]
    pub target: Target,
}

/// A parsed `DIR:DEST` operand: the build tree and the destination inside
/// its rootfs (bytes, as given).
#[derive(Debug, Clone)]
pub struct Target {
    dir: PathBuf,
    dest: Vec<u8>,
}

/// Splits `DIR:DEST` while parsing, so a malformed operand is a usage
/// error (exit 129) like any other bad option value.
fn parse_target(value: OsString) -> Result<Target, copy::CopyError> {
    let (dir, dest) = copy::parse_target(&value)?;
    Ok(Target { dir, dest })
}

/// `1 file`, `2 files`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Copies the sources into the tree; `unpack` is `acido add`.
pub fn run(ctx: &Context, args: CopyArgs, unpack: bool) -> anyhow::Result<Outcome> {
    let Target { dir, dest } = args.target;
    let opts = CopyOptions {
        chown: args.chown,
        chmod: args.chmod,
        unpack,
        ..CopyOptions::default()
    };
    let report = copy::copy(&dir, &args.sources, &dest, &opts, &std::env::temp_dir())?;
    if !ctx.quiet {
        let mut err = std::io::stderr().lock();
        let archives = if unpack {
            format!(
                "{} unpacked, ",
                count(report.archives, "archive", "archives")
            )
        } else {
            String::new()
        };
        writeln!(
            err,
            "acido: {archives}{} ({}), {}, {} written",
            count(report.files, "file", "files"),
            count(report.bytes, "byte", "bytes"),
            count(report.dirs, "directory", "directories"),
            count(
                report.others,
                "link or special file",
                "links and special files"
            ),
        )?;
        for (count, what) in [
            (
                report.ownership_not_restored,
                "owners not restored (not root)",
            ),
            (
                report.xattrs_not_restored,
                "extended attributes not restored",
            ),
            (
                report.devices_not_created,
                "device nodes not created (not root)",
            ),
        ] {
            if count > 0 {
                writeln!(err, "acido: warning: {count} {what}")?;
            }
        }
    }
    Ok(Outcome::Success)
}
