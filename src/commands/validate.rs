//! `acido validate [--strict] [-v] FILE...`

use std::io::Write;

use acido_plumbing::quote::quote_path;
use acido_plumbing::validate::{self, Severity};

use crate::cli::ValidateArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

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
