//! `acido validate [--strict] [-v] [--format text|json] FILE...`

use std::io::Write;
use std::path::{Path, PathBuf};

use acido_plumbing::json_output::Document;
use acido_plumbing::quote::quote_path;
use acido_plumbing::validate::{self, JsonReport, ValidationReport};
use clap::Args;

use crate::commands::{Context, OutputFormat};
use crate::output::{self, Outcome};

/// Arguments of `acido validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also warn about what the spec's grammar forbids but the reference
    /// implementation accepts (warnings make the exit status 1)
    #[arg(long)]
    pub strict: bool,
    /// Print a line for valid inputs too
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format: a line per finding, or one JSON document with a
    /// verdict for every FILE (so -v does not apply)
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        conflicts_with = "verbose"
    )]
    pub format: OutputFormat,
    /// Manifest JSON files, layout directories or ACI files
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Validates every FILE and prints one line per finding (or the JSON
/// document); exit 1 when anything was found.
pub fn run(ctx: &Context, args: ValidateArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let mut out = output::stdout();
    let mut clean = true;
    let mut check = |path: &PathBuf| {
        let report = validate::validate_path(path, args.strict, store.limits());
        clean &= report.findings.is_empty();
        report
    };
    match args.format {
        OutputFormat::Text => {
            for path in &args.files {
                write_text(&mut out, path, &check(path), args.verbose)?;
            }
        }
        OutputFormat::Json => {
            let mut doc = Document::begin(&mut out)?;
            let mut inputs = doc.begin_list("inputs")?;
            for path in &args.files {
                inputs.item(&JsonReport::new(path, &check(path)))?;
            }
            inputs.end()?;
            doc.finish()?;
        }
    }
    output::finish(out)?;
    Ok(if clean {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}

/// `NAME: error: ...` per finding; `NAME: valid KIND` when `verbose` and
/// there is none.
fn write_text(
    out: &mut impl Write,
    path: &Path,
    report: &ValidationReport,
    verbose: bool,
) -> std::io::Result<()> {
    let name = quote_path(path.as_os_str().as_encoded_bytes());
    for finding in &report.findings {
        let level = finding.severity.name();
        writeln!(out, "{name}: {level}: {}", finding.message)?;
    }
    if verbose && report.findings.is_empty() {
        writeln!(out, "{name}: valid {}", report.kind.unwrap_or("input"))?;
    }
    Ok(())
}
