//! Conformance checks against the reference implementation (`actool` and
//! `render-aci` in `target/oracle`, built by `bash ../shared/oracle/build.sh`)
//! must never pass vacuously (issue 15, item 2):
//!
//! - under CI (`CI` set and not `false`/`0`) a missing reference fails the
//!   check with a message saying how to build it;
//! - locally the check is skipped, the skip is printed, and it is recorded
//!   so that the last test binary of `cargo test --workspace`
//!   (`porcelain/tests/zz_conformance_summary.rs`) prints how many checks
//!   were skipped and how to enable them, in cargo's default output.
//!
//! This one file is shared by three test crates (the root package's
//! `tests/common`, `plumbing/tests/common` and the summary) through
//! `#[path]`, so each uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How to build the reference, as every message says it.
pub const HOW_TO_ENABLE: &str = "bash ../shared/oracle/build.sh";

/// Whether we run under CI, where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `target/oracle/<tool>` of the workspace rooted at `workspace`, or `None`
/// after recording the skip of the calling test (panics under CI).
pub fn reference_tool(workspace: &Path, tool: &str) -> Option<PathBuf> {
    let path = workspace.join("target/oracle").join(tool);
    if path.is_file() {
        return Some(path);
    }
    let check = std::thread::current()
        .name()
        .unwrap_or("unnamed check")
        .to_owned();
    if under_ci() {
        panic!(
            "conformance check {check} cannot run: {} is missing; \
             CI must build the reference first ({HOW_TO_ENABLE})",
            path.display()
        );
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "skipped: {check}: target/oracle/{tool} is absent (build it with {HOW_TO_ENABLE})"
        );
    }
    record_skip(&check);
    None
}

/// The file collecting this `cargo test` run's skips: one per run, keyed by
/// the cargo process every test binary of the run is a child of (its pid
/// and start time, so a recycled pid does not pick up old lines), so that
/// a filtered or interrupted run never inflates the next run's count.
pub fn skip_file() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test binary>: keep the record in target/<profile>.
    let profile_dir = exe.parent()?.parent()?;
    let parent = std::os::unix::process::parent_id();
    let started = fs::read_to_string(format!("/proc/{parent}/stat"))
        .ok()
        .and_then(|stat| {
            // Field 22 (starttime) counts from the field after the
            // parenthesised command name, which may itself hold spaces.
            let after = stat.rsplit_once(')')?.1.to_owned();
            after.split_whitespace().nth(19).map(str::to_owned)
        })
        .unwrap_or_default();
    Some(
        profile_dir
            .join("conformance-skipped")
            .join(format!("{parent}-{started}")),
    )
}

/// Appends the name of a skipped check and of its test binary to this run's
/// record. One short `write` with `O_APPEND`, so parallel tests do not mix
/// their lines.
fn record_skip(check: &str) {
    let Some(file) = skip_file() else { return };
    let binary = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| {
            n.rsplit_once('-')
                .map_or(n.clone(), |(stem, _)| stem.to_owned())
        })
        .unwrap_or_default();
    if let Some(dir) = file.parent() {
        let _ = fs::create_dir_all(dir);
    }
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&file) {
        let _ = f.write_all(format!("{binary}\t{check}\n").as_bytes());
    }
}

/// Whether the system tool `tool` (Debian package `package`) runs; when it
/// does not, the calling check fails under CI and is skipped (loudly, and
/// recorded) otherwise, as [`reference_tool`] does for the reference.
pub fn system_tool(tool: &str, package: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        // Installed is enough: not every tool knows --version (htpasswd).
        .is_ok();
    if runs {
        return true;
    }
    let check = std::thread::current()
        .name()
        .unwrap_or("unnamed check")
        .to_owned();
    if under_ci() {
        panic!("check {check} cannot run: {tool} is missing; CI must install it (apt-get install {package})");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {check}: {tool} is not installed (apt-get install {package})");
    }
    record_skip(&check);
    false
}
