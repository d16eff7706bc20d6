//! `acido diff-tree [-z] [--name-status|--name-only|--stat|--format text|json] [--exit-code] A B`

use std::path::{Path, PathBuf};

use acido_plumbing::diff::{self, format, DiffOptions};
use acido_plumbing::naming::NamingError;
use acido_plumbing::render::{self, RenderOptions};
use anyhow::Context as _;
use clap::Args;

use crate::commands::render_tree::dependency_list;
use crate::commands::{Context, OutputFormat};
use crate::output::{self, Outcome};

/// Arguments of `acido diff-tree`.
#[derive(Debug, Args)]
pub struct DiffTreeArgs {
    /// Terminate fields with NUL and print paths raw (with the default format)
    #[arg(short = 'z')]
    pub nul: bool,
    /// Print the status letter and path of each change (the default)
    #[arg(long, conflicts_with_all = ["stat", "json", "name_only"])]
    pub name_status: bool,
    /// Print only the path of each change
    #[arg(long, conflicts_with_all = ["stat", "json"])]
    pub name_only: bool,
    /// Keep only changes whose status letter is in LETTERS (A, M, D, T)
    #[arg(long, value_name = "LETTERS", value_parser = parse_diff_filter)]
    pub diff_filter: Option<String>,
    /// Print which attributes differ for each path, and a summary
    #[arg(long, conflicts_with = "json")]
    pub stat: bool,
    /// Output format: the text formats above, or one JSON document with
    /// both sides' metadata
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text",
        conflicts_with_all = ["name_status", "name_only", "stat"])]
    pub format: OutputFormat,
    /// The same as --format json (kept for scripts written before --format)
    #[arg(long, hide = true, conflicts_with = "format")]
    pub json: bool,
    /// Exit with status 1 when there are changes
    #[arg(long)]
    pub exit_code: bool,
    /// Do not compare the modification times of directories
    #[arg(long)]
    pub ignore_dir_mtime: bool,
    /// The old tree: a directory, a layout directory, or an image
    pub a: String,
    /// The new tree: a directory, a layout directory, or an image
    pub b: String,
}

/// Checks `--diff-filter` while parsing, so an unknown letter is a usage
/// error (exit 129).
fn parse_diff_filter(letters: &str) -> Result<String, String> {
    match letters.chars().find(|c| !"AMDT".contains(*c)) {
        Some(bad) => Err(format!("unknown status letter {bad:?} (use A, M, D, T)")),
        None => Ok(letters.to_owned()),
    }
}

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
    let list = dependency_list(ctx, operand).map_err(|err| {
        // The operand may have been meant as either: say both were tried.
        let not_found = matches!(
            err.downcast_ref::<NamingError>(),
            Some(NamingError::NotFound { .. })
        );
        if not_found {
            anyhow::anyhow!("{operand}: neither a directory nor a stored image")
        } else {
            err
        }
    })?;
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
        changes.retain(|c| letters.contains(c.status.code()));
    }
    let mut out = output::stdout();
    if args.json || args.format == OutputFormat::Json {
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
