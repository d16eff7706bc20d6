//! `acido run [--env K=V]... [--workdir P] [--user U[:G]] [--network N] DIR -- CMD [ARG...]`

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;

use acido_porcelain::run::{self, RunError, RunOptions};
use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};

use crate::commands::Context;
use crate::output::Outcome;

/// The network choices of `acido run`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetworkArg {
    /// the host's network (builds fetch packages)
    Host,
    /// a new network namespace with only the loopback interface
    None,
}

impl From<NetworkArg> for acido_porcelain::run::Network {
    fn from(arg: NetworkArg) -> Self {
        use acido_porcelain::run::Network;
        match arg {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        }
    }
}

/// Arguments of `acido run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Set NAME to VALUE in the command's environment, over the manifest's
    /// app environment (repeatable)
    #[arg(short, long = "env", value_name = "NAME=VALUE",
        value_parser = clap::builder::OsStringValueParser::new().try_map(split_env))]
    pub env: Vec<(OsString, OsString)>,
    /// The working directory inside the tree (default: the manifest's
    /// app workingDirectory, else /)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<OsString>,
    /// Run as USER[:GROUP], numbers or names from the tree's /etc/passwd
    /// and /etc/group (default: root)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// The command's network
    #[arg(long, value_enum, default_value = "host")]
    pub network: NetworkArg,
    /// The build tree: a manifest file and a rootfs directory
    pub dir: PathBuf,
    /// The command and its arguments, after --
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Splits `NAME=VALUE` at the first `=`.
fn split_env(arg: OsString) -> Result<(OsString, OsString), String> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = arg.into_vec();
    match bytes.iter().position(|&b| b == b'=') {
        Some(at) if at > 0 => Ok((
            OsString::from_vec(bytes[..at].to_vec()),
            std::ffi::OsStr::from_bytes(&bytes[at + 1..]).to_owned(),
        )),
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

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
