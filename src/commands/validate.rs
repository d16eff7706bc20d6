//! `acido validate [--strict] [-v] FILE...`

use std::io::Write;
use std::path::PathBuf;

use acido_plumbing::quote::quote_path;
use acido_plumbing::validate::{self, Severity};
use clap::Args;

use crate::commands::Context;
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
    /// Manifest JSON files, layout directories or ACI files
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Validates every FILE and prints one line per finding.
pub fn run(ctx: &Context, args: ValidateArgs) -> anyhow::Result<Outcome> {
    let store = ctx.store()?;
    let mut out = output::stdout();
    let mut clean = true;
    for path in &args.files {
        let report = validate::validate_path(path, args.strict, store.limits());
        let name = quote_path(path.as_os_str().as_encoded_bytes());
        for finding in &report.findings {
            let level = match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(out, "{name}: {level}: {}", finding.message)?;
        }
        clean &= report.findings.is_empty();
        if args.verbose && report.findings.is_empty() {
            writeln!(out, "{name}: valid {}", report.kind.unwrap_or("input"))?;
        }
    }
    output::finish(out)?;
    Ok(if clean {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}
