//! Driver for `bench/pack.sh` and for trying the packer by hand:
//!
//! ```text
//! cargo run --release -p acido-plumbing --example pack -- DIR OUT.aci [xz|gzip|bzip2|none] [THREADS]
//! ```
//!
//! Packs the layout dir DIR into OUT.aci (replacing it) and prints the id,
//! the entry count, the uncompressed and compressed sizes and the time.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use acido_plumbing::compression::Compression;
use acido_plumbing::pack::{pack_layout_to_file, PackOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 4 {
        eprintln!("usage: pack DIR OUT.aci [xz|gzip|bzip2|none] [XZ_THREADS]");
        return ExitCode::from(129);
    }
    let compression = match args.get(2).map(|s| s.parse::<Compression>()) {
        None => Compression::Xz,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("pack: {e}");
            return ExitCode::from(129);
        }
    };
    let xz_threads = match args.get(3).map(|s| s.parse::<u32>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("pack: bad thread count: {e}");
            return ExitCode::from(129);
        }
    };
    let opts = PackOptions {
        compression,
        xz_threads,
        level: None,
        ..PackOptions::default()
    };
    let out = Path::new(&args[1]);
    let start = Instant::now();
    match pack_layout_to_file(Path::new(&args[0]), out, true, &opts) {
        Ok(report) => {
            let secs = start.elapsed().as_secs_f64();
            let compressed = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
            println!("{}", report.id);
            println!(
                "entries={} uncompressed={} compressed={} skipped_sockets={} seconds={secs:.3}",
                report.entries, report.uncompressed_size, compressed, report.skipped_sockets
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pack: {e}");
            ExitCode::from(128)
        }
    }
}
