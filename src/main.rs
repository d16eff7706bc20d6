//! The `acido` binary: parses the command line, runs one command through the
//! libraries, and owns the exit policy (DESIGN §7): 0 success, 1 a
//! documented negative answer, 128 a fatal error, 129 a usage error. A
//! closed stdout pipe ends the program quietly.

mod cli;
mod commands;
mod interrupt;
mod man;
mod output;
mod progress;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::output::Outcome;

/// Exit status for fatal errors.
const EXIT_FATAL: u8 = 128;
/// Exit status for usage errors.
const EXIT_USAGE: u8 = 129;

fn main() -> ExitCode {
    // The completion scripts' call, kept out of the command definitions so
    // that no help or completion offers it (see commands/completions.rs).
    if let Some(words) = commands::completions::words_of_call(std::env::args_os()) {
        return match commands::completions::complete_images(&words) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
            Err(err) => {
                let _ = writeln!(io::stderr(), "acido: error: {}", error_line(&err));
                ExitCode::from(EXIT_FATAL)
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { EXIT_USAGE } else { 0 };
            // Printing help or a usage error can only fail on a closed pipe.
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(1),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<clap::Error>() => {
            // A usage error a command found after parsing (cli::usage_error).
            let _ = err.downcast_ref::<clap::Error>().map(clap::Error::print);
            ExitCode::from(EXIT_USAGE)
        }
        Err(err) => {
            let mut stderr = io::stderr().lock();
            let line = error_line(&err);
            let _ = writeln!(stderr, "acido: error: {line}");
            if let Some(flag) = commands::limit_hint(&err) {
                let _ = writeln!(stderr, "acido: hint: raise the limit with {flag}");
            }
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let ctx = commands::Context::new(cli.store, cli.quiet).with_limits(&cli.limits);
    match cli.command {
        Command::HashObject(args) => commands::hash_object::run(&ctx, args),
        Command::CatManifest(args) => commands::cat_manifest::run(&ctx, args),
        Command::LsTree(args) => commands::ls_tree::run(&ctx, args),
        Command::Resolve(args) => commands::resolve::run(&ctx, args),
        Command::Validate(args) => commands::validate::run(&ctx, args),
        Command::PackAci(args) => commands::pack_aci::run(&ctx, args),
        Command::RenderTree(args) => commands::render_tree::run(&ctx, args),
        Command::DiffTree(args) => commands::diff_tree::run(&ctx, args),
        Command::Import(args) => commands::import::run(&ctx, args),
        Command::Startbuild(args) => commands::startbuild::run(&ctx, args),
        Command::Build(args) => commands::build::run(&ctx, args),
        Command::Endbuild(args) => commands::endbuild::run(&ctx, args),
        Command::Images(args) => commands::images::run(&ctx, args),
        Command::Rm(args) => commands::rm::run(&ctx, args),
        Command::Gc(args) => commands::gc::run(&ctx, args),
        Command::Export(args) => commands::export::run(&ctx, args),
        Command::Fsck(args) => commands::fsck::run(&ctx, args),
        Command::Extract(args) => commands::extract::run(&ctx, args),
        Command::Run(args) => commands::run::run(&ctx, args),
        Command::Copy(args) => commands::copy::run(&ctx, args, false),
        Command::Add(args) => commands::add::run(&ctx, args),
        Command::Verify(args) => commands::verify::run(&ctx, args),
        Command::Trust(args) => commands::trust::run(&ctx, args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Fetch(args) => commands::fetch::run(&ctx, args),
        Command::Pull(args) => commands::pull::run(&ctx, args),
        Command::Push(args) => commands::push::run(&ctx, args),
        Command::Help(args) => man::help(args),
    }
}

/// The error and its causes on one line, `what: why: why`. Our typed
/// errors already carry their source's text, so a cause whose message the
/// line already holds is not repeated.
fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
