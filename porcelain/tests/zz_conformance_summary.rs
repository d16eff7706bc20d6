//! Says, at the end of `cargo test --workspace`, how many conformance
//! checks against the reference implementation were skipped in this run
//! and how to enable them (issue 15, item 2). Skipped checks print their
//! skip only in captured test output, which cargo hides when they pass;
//! this binary has no test harness, so what it prints is shown as is.
//!
//! It has to run after every binary that can skip: cargo runs test
//! binaries package by package in name order (`acido`, `acido-plumbing`,
//! `acido-porcelain`), each package's unit tests first and then its
//! integration tests by name, so it lives in the last package under a
//! name that sorts last. Doc tests, which cargo runs after all of them,
//! are disabled in the libraries (they have none) so that these lines
//! are the last of the run. Under CI nothing is skipped: a missing
//! reference fails the check itself (`tests/common/conformance.rs`).
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs;

#[path = "../../tests/common/conformance.rs"]
mod conformance;

fn main() {
    // `cargo test -- --list` and friends: this binary holds no tests.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(file) = conformance::skip_file() else {
        return;
    };
    let text = fs::read_to_string(&file).unwrap_or_default();
    // This run's record is read once; later runs start afresh.
    let _ = fs::remove_file(&file);
    let checks: BTreeSet<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    println!();
    if checks.is_empty() {
        let built = ["actool", "render-aci"].iter().all(|tool| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/oracle")
                .join(tool)
                .is_file()
        });
        if built {
            println!("conformance: no check against the reference implementation was skipped");
        } else {
            // A filtered run (`-p`, `--test`) that ran no conformance check.
            println!(
                "conformance: no check was skipped in this run, but the reference is not built \
                 (target/oracle): build it with `{}`",
                conformance::HOW_TO_ENABLE
            );
        }
        return;
    }
    let mut per_binary: BTreeMap<&str, usize> = BTreeMap::new();
    for (binary, _) in &checks {
        *per_binary.entry(binary).or_default() += 1;
    }
    let detail: Vec<String> = per_binary
        .iter()
        .map(|(binary, n)| format!("{binary}: {n}"))
        .collect();
    println!(
        "conformance: {} checks against the reference implementation were SKIPPED ({}): \
         target/oracle is not built",
        checks.len(),
        detail.join(", ")
    );
    println!(
        "conformance: to run them, build it with `{}` (root, about a minute) and test again",
        conformance::HOW_TO_ENABLE
    );
}
