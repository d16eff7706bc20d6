//! The real GnuPG for the signing tests (tests/trust.rs, tests/fetch.rs):
//! whether it is installed, a private GNUPGHOME, and one way to run it.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Whether `gpg` runs here. Without it a signing test skips loudly, or
/// fails under `CI` ([`require`]).
pub fn available() -> bool {
    Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `true` when gpg can be used; otherwise prints why the calling test
/// skips, or panics under `CI`, where `suite` must run.
pub fn require(suite: &str) -> bool {
    if available() {
        return true;
    }
    assert!(
        !crate::common::conformance::under_ci(),
        "gpg is not installed (apt-get install gnupg); CI must run the {suite} tests"
    );
    eprintln!("SKIPPED: gpg is not installed (apt-get install gnupg)");
    false
}

/// A GNUPGHOME (mode 0700) under target/ rather than /tmp: the keys live in
/// a static that is never dropped, so the directory stays until `cargo
/// clean` instead of littering /tmp.
pub fn private_home(prefix: &str) -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    home
}

/// Runs gpg in `home`, then stops the gpg-agent it started: the shared
/// keys live in a static that is never dropped, so nothing else would.
/// Calls are serialised so that no call loses its agent to another's
/// clean-up.
pub fn gpg_in(home: &Path, args: &[&str]) -> String {
    static GPG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = GPG.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("run gpg");
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .status();
    assert!(
        output.status.success(),
        "gpg {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The fingerprints (primary first, then subkeys) of the key `uid`.
pub fn fingerprints(home: &Path, uid: &str) -> Vec<String> {
    gpg_in(home, &["--with-colons", "--list-keys", uid])
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .map(|l| l.split(':').nth(9).unwrap().to_ascii_lowercase())
        .collect()
}
