//! Helpers shared by the rendering tests (`render.rs`, `render_random.rs`):
//! where the reference renderer is, and its `-dump` listing of a tree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the tests run as root (ownership, devices).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[path = "../../../tests/common/conformance.rs"]
pub mod conformance;

/// The reference renderer `render-aci` (aci-format §14), when built; when
/// it is not, the calling check is recorded as skipped, or fails under CI.
pub fn oracle() -> Option<PathBuf> {
    reference_tool("render-aci")
}

/// A reference tool of `target/oracle` (`conformance::reference_tool`).
pub fn reference_tool(tool: &str) -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("plumbing/ has a parent");
    conformance::reference_tool(workspace, tool)
}

/// `render-aci -dump` of a tree (every caller has the oracle), without the
/// tree root's line and with directory mtimes blanked where they reflect
/// extraction time (aci-format §14).
pub fn dump(dir: &Path) -> String {
    let tool = oracle().expect("dump needs the oracle");
    let run = Command::new(tool).arg("-dump").arg(dir).output().unwrap();
    assert!(run.status.success(), "dump failed");
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(". "))
        .map(|l| {
            if l.contains(" dir ") {
                l.split(' ')
                    .filter(|f| !f.starts_with("mtime="))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
