//! `acido hash-object [-w] [--stdin] [FILE...]`

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use acido_plumbing::archive;
use anyhow::Context as _;
use clap::Args;

use crate::commands::Context;
use crate::interrupt;
use crate::output::{self, Outcome};

/// Arguments of `acido hash-object`.
#[derive(Debug, Args)]
pub struct HashObjectArgs {
    /// Also store each image (validated like import)
    #[arg(short = 'w')]
    pub write: bool,
    /// Read one ACI from standard input
    #[arg(long)]
    pub stdin: bool,
    /// ACI files (any compression)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Prints the id of each input; with `-w` stores it too. An interrupt
/// fails the next read, so a `-w` import drops its temp file.
pub fn run(ctx: &Context, args: HashObjectArgs) -> anyhow::Result<Outcome> {
    if !args.stdin && args.files.is_empty() {
        return Err(crate::cli::usage_error(
            "hash-object",
            "name at least one FILE, or use --stdin",
        ));
    }
    let store = if args.write { Some(ctx.store()?) } else { None };
    let mut out = output::stdout();
    let mut inputs: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
    if args.stdin {
        inputs.push((
            "<stdin>".to_owned(),
            Box::new(interrupt::interruptible(io::stdin())),
        ));
    }
    for path in &args.files {
        let file = File::open(path).with_context(|| format!("{}", path.display()))?;
        inputs.push((
            path.display().to_string(),
            Box::new(interrupt::interruptible(file)),
        ));
    }
    for (name, input) in inputs {
        let id = match &store {
            Some(store) => store.import(input, &name)?.record.id,
            None => {
                archive::hash_stream_limited(input, ctx.limits().max_decompressed_size)
                    .with_context(|| name.clone())?
                    .id
            }
        };
        writeln!(out, "{id}")?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}
