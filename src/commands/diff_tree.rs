//! `acido diff-tree [-z] [--name-status|--stat|--json] [--exit-code] A B`

use std::path::{Path, PathBuf};

use acido_plumbing::diff::{self, format, DiffOptions};
use acido_plumbing::render::{self, RenderOptions};
use anyhow::Context as _;

use crate::cli::DiffTreeArgs;
use crate::commands::render_tree::dependency_list;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// One side of the comparison: a directory as it is, or an image rendered
/// into a temp dir that lives as long as this value.
enum Side {
    Dir(PathBuf),
    Rendered(tempfile::TempDir),
}

impl Side {
    fn root(&self) -> PathBuf {
        match self {
            Side::Dir(dir) => dir.clone(),
            Side::Rendered(temp) => temp.path().join("tree"),
        }
    }
}

/// A directory names itself; anything else is an image, rendered with its
/// dependencies into a temp dir.
fn side(ctx: &Context, operand: &str) -> anyhow::Result<Side> {
    let path = Path::new(operand);
    if path.is_dir() {
        return Ok(Side::Dir(path.to_owned()));
    }
    let list = dependency_list(ctx, operand)?;
    let map = render::file_map(&list)?;
    let temp = tempfile::Builder::new()
        .prefix("acido-diff-")
        .tempdir_in(std::env::temp_dir())
        .context("create a temp dir for rendering")?;
    render::render_list(
        &list,
        &map,
        &temp.path().join("tree"),
        &RenderOptions::default(),
        &crate::interrupt::flag(),
    )?;
    Ok(Side::Rendered(temp))
}

/// Prints the changes from A to B in the chosen format.
pub fn run(ctx: &Context, args: DiffTreeArgs) -> anyhow::Result<Outcome> {
    let a = side(ctx, &args.a)?;
    let b = side(ctx, &args.b)?;
    let opts = DiffOptions {
        ignore_dir_mtime: args.ignore_dir_mtime,
    };
    let mut changes = diff::diff_trees(&a.root(), &b.root(), &opts)?;
    if let Some(letters) = &args.diff_filter {
        if let Some(bad) = letters.chars().find(|c| !"AMDT".contains(*c)) {
            anyhow::bail!("--diff-filter: unknown status letter {bad:?} (use A, M, D, T)");
        }
        changes.retain(|c| letters.contains(c.status.code()));
    }
    let mut out = output::stdout();
    if args.json {
        format::write_json(&mut out, &changes)?;
    } else if args.stat {
        format::write_stat(&mut out, &changes)?;
    } else if args.name_only {
        format::write_name_only(&mut out, &changes, args.nul)?;
    } else {
        format::write_name_status(&mut out, &changes, args.nul)?;
    }
    output::finish(out)?;
    Ok(if args.exit_code && !changes.is_empty() {
        Outcome::Negative
    } else {
        Outcome::Success
    })
}
