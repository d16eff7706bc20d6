//! `acido resolve [--abbrev[=N]] [--format text|json] IMAGE...`

use std::io::Write;

use acido_plumbing::id::FULL_HEX_LEN;
use acido_plumbing::json_output::Document;
use acido_plumbing::naming::{self, ImageRef, JsonResolved};
use acido_plumbing::store::Store;
use clap::Args;

use crate::commands::{Context, OutputFormat};
use crate::output::{self, Outcome};

/// Arguments of `acido resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Print ids shortened to N hex digits (64 when =N is omitted)
    // `--abbrev=N` only, as git takes it: a separate value would swallow
    // the first IMAGE (`--abbrev sha512-e1`).
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
        default_missing_value = "64",
        value_parser = clap::value_parser!(u16).range(2..=128))]
    pub abbrev: Option<u16>,
    /// Output format: one id per line, or one JSON document naming each
    /// IMAGE with its full id
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        conflicts_with = "abbrev"
    )]
    pub format: OutputFormat,
    /// Image names: ids, id prefixes or NAME[:VERSION][,LABEL=VALUE...]
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Prints the full (or abbreviated) id each name stands for.
pub fn run(ctx: &Context, args: ResolveArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    if args.format == OutputFormat::Json {
        return write_json(&store, &args.images);
    }
    let mut out = output::stdout();
    for name in &args.images {
        let resolved = naming::resolve(&store, &ImageRef::parse(name, false)?)?;
        let hex_len = args.abbrev.map_or(FULL_HEX_LEN, usize::from);
        writeln!(out, "{}", resolved.id.abbrev(hex_len))?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}

/// The JSON document, printed once every name has resolved, so a name that
/// fails leaves no half document on stdout.
fn write_json(store: &Store, names: &[String]) -> anyhow::Result<Outcome> {
    let resolved = names
        .iter()
        .map(|name| naming::resolve(store, &ImageRef::parse(name, false)?))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = output::stdout();
    let mut doc = Document::begin(&mut out)?;
    let items = names.iter().zip(&resolved);
    doc.list("images", items.map(|(name, r)| JsonResolved::new(name, r)))?;
    doc.finish()?;
    output::finish(out)?;
    Ok(Outcome::Success)
}
