//! Runs every manifest fixture and compares acido's verdict with the one
//! the reference `actool validate` recorded in `tests/fixtures/VERDICTS.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use acido_plumbing::manifest::validate_manifest;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// `manifests/<file>` → (exit code, first line of actool's message).
fn verdicts() -> BTreeMap<String, (u8, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("VERDICTS.md"))
        .expect("VERDICTS.md is readable");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | exit | `file` | `message` | notes |
        if cells.len() < 5 {
            continue;
        }
        let (Ok(exit), Some(file)) = (cells[1].parse::<u8>(), cells[2].strip_prefix("`manifests/"))
        else {
            continue;
        };
        let file = file.trim_end_matches('`').to_owned();
        let message = cells[3].trim_matches('`').to_owned();
        out.insert(file, (exit, message));
    }
    out
}

#[test]
fn every_manifest_fixture_gets_the_reference_verdict() {
    let verdicts = verdicts();
    let dir = fixtures_dir().join("manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture directory exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 56,
        "expected the 56 manifest fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let Some((exit, message)) = verdicts.get(file) else {
            failures.push(format!("{file}: no verdict recorded"));
            continue;
        };
        let bytes = std::fs::read(dir.join(file)).expect("fixture is readable");
        let report = validate_manifest(&bytes, false);
        let ok = match exit {
            0 => report.is_valid() && report.reference_line() == *message,
            1 => report.error.is_some() && report.reference_line() == *message,
            // The reference panics; acido must give an error instead, and
            // know that the reference crashes there.
            _ => report.error.as_ref().is_some_and(|e| e.reference_crashes()),
        };
        if !ok {
            failures.push(format!(
                "{file}: expected exit {exit} {message:?}, got {:?} ({:?})",
                report.reference_line(),
                report.error
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_verdict_table_covers_every_fixture() {
    // Guards the parser above: if it read nothing, the main test would
    // pass vacuously on "no verdict recorded" never being reached.
    let verdicts = verdicts();
    assert_eq!(verdicts.len(), 56);
    assert_eq!(
        verdicts.get("valid-podmanifest.json"),
        Some(&(0, "valid PodManifest".to_owned()))
    );
}
