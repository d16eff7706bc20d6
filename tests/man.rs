//! The manual pages in man/ are generated from the command definitions and
//! the prose in man/prose/: this fails when a page is stale or missing.
//! `ACIDO_BLESS=1 cargo test --test man` rewrites them.

mod common;

use std::fs;
use std::path::Path;

use common::Env;

fn page_file(page: &str) -> String {
    if page.ends_with(".5") {
        return page.to_owned();
    }
    let section = if page == "acido-store" { "5" } else { "1" };
    format!("{page}.{section}")
}

#[test]
fn every_command_has_a_fresh_manual_page() {
    let env = Env::new();
    let pages: Vec<String> = env
        .run(["help", "--pages"])
        .ok()
        .lines()
        .map(str::to_owned)
        .collect();
    // Every subcommand listed by --help has a page.
    let help = env.run(["--help"]).ok();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Wrapped descriptions continue on lines indented further.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.len() >= 7, "commands: {commands:?}");
    for command in &commands {
        assert!(
            pages.contains(&format!("acido-{command}")),
            "{command} has no manual page"
        );
    }
    let man_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let bless = std::env::var_os("ACIDO_BLESS").is_some();
    let mut stale = Vec::new();
    for page in &pages {
        let roff = env.run(["help", "--roff", page]).output.stdout;
        assert!(!roff.is_empty(), "{page} renders empty");
        let file = man_dir.join(page_file(page));
        if bless {
            fs::write(&file, &roff).unwrap();
        } else if fs::read(&file).ok().as_deref() != Some(&roff[..]) {
            stale.push(file.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale or missing manual pages (run ACIDO_BLESS=1 cargo test --test man): {stale:?}"
    );
}

#[test]
fn help_prints_a_page_and_rejects_unknown_ones() {
    let env = Env::new();
    let page = env.run(["help", "--roff", "import"]).ok();
    assert!(page.contains(".SH DESCRIPTION"), "{page}");
    // An unknown page is a usage error (tests/usage.rs pins the message).
    let run = env.run(["help", "no-such-command"]);
    assert_eq!(run.code(), 129);
    assert!(run
        .stderr()
        .contains("no manual page acido-no-such-command"));
}
