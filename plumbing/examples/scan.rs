//! Drives the archive reader by hand and from `bench/hash-import.sh`.
//!
//! ```text
//! cargo run --release -p acido-plumbing --example scan -- hash FILE
//! cargo run --release -p acido-plumbing --example scan -- scan FILE [COPY]
//! ```
//!
//! `hash` prints the image id; `scan` prints the id, the compression and
//! the entry count, writing the decompressed tar to COPY when given.

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use acido_plumbing::archive::{hash_stream, scan, Limits};

fn run(args: &[String]) -> Result<String, String> {
    let open = |path: &String| File::open(path).map_err(|e| format!("{path}: {e}"));
    match args {
        [mode, file] if mode == "hash" => {
            let outcome = hash_stream(open(file)?).map_err(|e| format!("{file}: {e}"))?;
            Ok(outcome.id.to_string())
        }
        [mode, file, rest @ ..] if mode == "scan" && rest.len() <= 1 => {
            let mut copy: Box<dyn Write> = match rest.first() {
                Some(out) => Box::new(io::BufWriter::with_capacity(
                    1 << 20,
                    File::create(out).map_err(|e| format!("{out}: {e}"))?,
                )),
                None => Box::new(io::sink()),
            };
            let scanned = scan(open(file)?, &mut copy, &Limits::default())
                .map_err(|e| format!("{file}: {e}"))?;
            copy.flush().map_err(|e| e.to_string())?;
            Ok(format!(
                "{} {} {} entries",
                scanned.id,
                scanned.compression,
                scanned.entries.len()
            ))
        }
        _ => Err("usage: scan hash FILE | scan scan FILE [COPY]".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            let _ = writeln!(io::stdout().lock(), "{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            let _ = writeln!(io::stderr().lock(), "scan: error: {message}");
            ExitCode::FAILURE
        }
    }
}
