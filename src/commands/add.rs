//! `acido add [--chown UID[:GID]] [--chmod MODE] SRC... DIR:DEST`: `copy`
//! that unpacks tar archives.

use crate::commands::copy::CopyArgs;
use crate::commands::Context;
use crate::output::Outcome;

/// Copies the sources into the tree, unpacking tar archives at DEST.
pub fn run(ctx: &Context, args: CopyArgs) -> anyhow::Result<Outcome> {
    super::copy::run(ctx, args, true)
}
