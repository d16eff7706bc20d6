//! `acido copy [--chown UID[:GID]] [--chmod MODE] SRC... DIR:DEST`

use std::io::Write;

use acido_porcelain::copy::{self, CopyOptions};

use crate::cli::CopyArgs;
use crate::commands::Context;
use crate::output::Outcome;

/// Copies the sources into the tree; `unpack` is `acido add`.
pub fn run(ctx: &Context, args: CopyArgs, unpack: bool) -> anyhow::Result<Outcome> {
    let (dir, dest) = copy::parse_target(&args.target)?;
    let opts = CopyOptions {
        chown: args.chown.as_deref().map(copy::parse_owner).transpose()?,
        chmod: args.chmod.as_deref().map(copy::parse_mode).transpose()?,
        unpack,
    };
    let report = copy::copy(&dir, &args.sources, &dest, &opts, &std::env::temp_dir())?;
    if !ctx.quiet {
        let mut err = std::io::stderr().lock();
        let archives = if unpack {
            format!("{} archives unpacked, ", report.archives)
        } else {
            String::new()
        };
        writeln!(
            err,
            "acido: {archives}{} files ({} bytes), {} directories, {} links and special files written",
            report.files, report.bytes, report.dirs, report.others
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
