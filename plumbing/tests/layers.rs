//! The layer order inside `acido-plumbing` (ARCHITECTURE.md, "Layers"):
//! a module may use only modules on a lower layer. This test reads every
//! `plumbing/src/**/*.rs`, finds each `crate::<module>` reference (code and
//! doc links alike: a doc link up the table is a dependency the reader has
//! to follow) and fails on one that points to the same or a higher layer,
//! or on a top-level module missing from the table.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom first. Mirrored in ARCHITECTURE.md; change both together.
const LAYERS: &[&[&str]] = &[
    // Leaves: plain data and bounds, no crate dependencies.
    &[
        "id",
        "entry",
        "quote",
        "limits",
        "interrupt",
        "compression",
        "json_output",
    ],
    // Safe fd-relative filesystem operations.
    &["fs", "http"],
    // Reading: archives, manifests, tree comparison, listings; and the
    // writer of objects into an existing tree (`copy`/`add`).
    &["archive", "manifest", "diff", "format", "tree"],
    &["index", "trust"],
    &["image"],
    &["temp"],
    &["store"],
    &["naming"],
    // Operations over stored images and trees.
    &["render", "pack", "validate", "discovery"],
    &["build", "oci"],
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `store/import.rs` → `store`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel
        .components()
        .next()
        .expect("non-empty path")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::<ident>` in `text`, with its line number.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            // `acido_plumbing::` or another crate's path is not ours.
            let before = rest[..at].chars().last();
            let tail = &rest[at + "crate::".len()..];
            rest = tail;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let ident: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                refs.push((n + 1, ident));
            }
        }
    }
    refs
}

fn layer_map() -> BTreeMap<&'static str, usize> {
    let mut map = BTreeMap::new();
    for (level, modules) in LAYERS.iter().enumerate() {
        for module in *modules {
            assert!(
                map.insert(*module, level).is_none(),
                "{module} listed twice"
            );
        }
    }
    map
}

#[test]
fn modules_use_only_lower_layers() {
    let src = src_dir();
    let layers = layer_map();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files in {}",
        files.len(),
        src.display()
    );
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            // The crate root declares and re-exports everything.
            continue;
        }
        let Some(&level) = layers.get(module.as_str()) else {
            violations.push(format!(
                "{}: module {module} is not in the layer table (tests/layers.rs, ARCHITECTURE.md)",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (line, used) in crate_refs(&text) {
            if used == module {
                continue;
            }
            let Some(&used_level) = layers.get(used.as_str()) else {
                // Not a module (a crate-root item such as `limit_kind`).
                continue;
            };
            if used_level < level {
                continue;
            }
            violations.push(format!(
                "{}:{line}: {module} (layer {level}) uses crate::{used} (layer {used_level})",
                file.display()
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "modules must use only lower layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_declared_module_is_in_the_table() {
    let src = src_dir();
    let layers = layer_map();
    let lib = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or(l.trim().strip_prefix("mod "))
        })
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.contains(&"store"), "no modules found in lib.rs");
    for module in declared {
        assert!(
            layers.contains_key(module),
            "module {module} is not in the layer table"
        );
    }
}

#[test]
fn references_are_found() {
    let refs = crate_refs("use crate::id::ImageId; // [`crate::store`] other_crate::x");
    let names: Vec<_> = refs.into_iter().map(|(_, m)| m).collect();
    assert_eq!(names, ["id", "store"]);
}
