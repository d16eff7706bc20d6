//! `acido run [--env K=V]... [--workdir P] [--user U[:G]] [--network N] DIR -- CMD [ARG...]`

use std::io::{self, Write};

use acido_porcelain::run::{self, RunError, RunOptions};

use crate::cli::RunArgs;
use crate::commands::Context;
use crate::output::Outcome;

/// Runs the command in the tree; its exit status becomes acido's. A
/// command that is missing (127) or not executable (126) gets a shell's
/// status and an error line; other failures are fatal (128).
pub fn run(_ctx: &Context, args: RunArgs) -> anyhow::Result<Outcome> {
    let opts = RunOptions {
        env: args.env,
        workdir: args.workdir,
        user: args.user,
        network: args.network.into(),
    };
    match run::run(&args.dir, &args.command, &opts) {
        Ok(report) => Ok(Outcome::Exit(report.status)),
        Err(err @ (RunError::CommandNotFound { .. } | RunError::CommandNotExecutable { .. })) => {
            let code = if matches!(err, RunError::CommandNotFound { .. }) {
                127
            } else {
                126
            };
            writeln!(io::stderr(), "acido: error: {err}")?;
            Ok(Outcome::Exit(code))
        }
        Err(err) => Err(err.into()),
    }
}
