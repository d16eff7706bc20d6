//! README.md's Walkthrough, run exactly as written (issue 15, item 1), so
//! the README cannot drift from the tool again.
//!
//! Every ```` ```sh ```` block between `## Walkthrough` and the next `## `
//! heading is taken verbatim, in order, and the blocks run as one bash
//! script (`set -euo pipefail`, so any failing command fails the test) in
//! a fresh directory laid out like the top of a clone (`examples/`), with
//! nothing of acido's environment but what the README itself sets, and
//! `acido` on PATH as the binary under test. A block that must not run
//! says so in its info string (```` ```sh no-run ````); any other info
//! string in the section is an error, so a block cannot be skipped by
//! accident.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

/// The Walkthrough's runnable blocks, verbatim, in order.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let section = readme
        .split_once("\n## Walkthrough\n")
        .expect("README.md has a `## Walkthrough` section")
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in section.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some("")) => {
                let (info, body) = current.take().expect("inside a block");
                match info.as_str() {
                    "sh" => blocks.push(body),
                    "sh no-run" => {}
                    other => panic!(
                        "README Walkthrough: a ```{other} block: only `sh` (run by tests/readme.rs) \
                         and `sh no-run` are allowed"
                    ),
                }
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(
        current.is_none(),
        "README Walkthrough: an unclosed code block"
    );
    blocks
}

#[test]
fn walkthrough_blocks_are_found_verbatim() {
    let readme = "intro\n```sh\nnot me\n```\n## Walkthrough\ntext\n```sh\na  # x\n\nb\n```\n\
                  ```sh no-run\nc\n```\n```sh\nd\n```\n## Commands\n```sh\ne\n```\n";
    assert_eq!(walkthrough_blocks(readme), ["a  # x\n\nb\n", "d\n"]);
}

#[test]
fn walkthrough_runs_as_written() {
    // The walkthrough packs Debian's static busybox, as the quick start does.
    if !Path::new("/bin/busybox").is_file() {
        let why = "/bin/busybox is missing (apt-get install busybox-static)";
        if common::conformance::under_ci() {
            panic!("the README walkthrough cannot run: {why}");
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: the README walkthrough needs {why}");
        }
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = walkthrough_blocks(&readme);
    assert!(blocks.len() >= 5, "the Walkthrough lost its blocks");

    // A clone's top directory as far as the walkthrough reads it, and a bin
    // directory holding only acido for PATH.
    let tmp = tempfile::tempdir().expect("temp dir");
    let top = tmp.path().join("clone");
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&top).expect("clone dir");
    fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(root.join("examples"), top.join("examples")).expect("examples");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_acido"), bin.join("acido")).expect("acido");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
    );
    let script = format!("set -euo pipefail\n{}", blocks.concat());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&top)
        .env_clear()
        .env("PATH", path)
        .env("HOME", tmp.path())
        .env("LC_ALL", "C")
        .output()
        .expect("bash runs");
    let report = format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "README Walkthrough failed:\n{report}");

    // What the prose promises beyond exit codes: the plumbing pipeline packs
    // the very image `build` made, in the README's own store.
    let walk = top.join("walkthrough");
    assert!(walk.join("store").is_dir(), "the README's store: {report}");
    let ids = Command::new(env!("CARGO_BIN_EXE_acido"))
        .arg("hash-object")
        .arg(walk.join("new.aci"))
        .arg(walk.join("same.aci"))
        .output()
        .expect("acido runs");
    let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2, "{report}");
    assert_eq!(ids[0], ids[1], "the plumbing pipeline gives build's id");
}
