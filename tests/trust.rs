//! Issue 13: `acido trust` and `acido verify` against keys and signatures
//! made by the real GnuPG (Debian's `gnupg`), in a private GNUPGHOME: RSA
//! and Ed25519 keys, a signing subkey, an expired key, a revoked key, a
//! SHA-1 signature, armoured and binary files. Every refused case is
//! snapshotted with its message. Without `gpg` the tests fail under `CI`
//! and skip loudly otherwise.

mod common;
#[path = "common/gpg.rs"]
mod gpg;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{manifest, Env, Run};
use gpg::{fingerprints, gpg_in};

/// The keys every test uses, made once per test binary.
struct Keys {
    home: tempfile::TempDir,
    /// RSA 2048, signs with the primary.
    rsa: String,
    /// Ed25519, signs with the primary.
    ed: String,
    /// Ed25519 certification-only primary with an Ed25519 signing subkey.
    sub: String,
    /// Its signing subkey.
    sub_signing: String,
    /// Ed25519, made in 2020 with a one-day expiry.
    expired: String,
    /// Ed25519, revoked after it signed `revoked.aci`.
    revoked: String,
    /// Ed25519 that nobody trusts.
    mallory: String,
}

/// The shared keys, or `None` (with a loud skip) when gpg is missing;
/// under `CI` a missing gpg fails the test instead.
fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| gpg::require("trust").then(make_keys))
        .as_ref()
}

fn make_keys() -> Keys {
    let home = gpg::private_home("gpg-");
    let h = home.path();
    let gen = |uid: &str, algo: &str, usage: &str, expire: &str, faked: Option<&str>| {
        let mut args = vec![];
        if let Some(time) = faked {
            args.extend(["--faked-system-time", time]);
        }
        args.extend(["--quick-gen-key", uid, algo, usage, expire]);
        gpg_in(h, &args);
        fingerprints(h, uid)[0].clone()
    };
    let rsa = gen(
        "Rsa Signer <rsa@example.com>",
        "rsa2048",
        "sign",
        "never",
        None,
    );
    let ed = gen(
        "Ed Signer <ed@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    let sub = gen(
        "Sub Signer <sub@example.com>",
        "ed25519",
        "cert",
        "never",
        None,
    );
    gpg_in(h, &["--quick-add-key", &sub, "ed25519", "sign", "never"]);
    let sub_signing = fingerprints(h, "sub@example.com")[1].clone();
    let expired = gen(
        "Old Signer <old@example.com>",
        "ed25519",
        "sign",
        "1d",
        Some("20200101T000000!"),
    );
    let revoked = gen(
        "Gone Signer <gone@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    let mallory = gen(
        "Mallory <mallory@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    Keys {
        home,
        rsa,
        ed,
        sub,
        sub_signing,
        expired,
        revoked,
        mallory,
    }
}

impl Keys {
    fn gpg(&self, args: &[&str]) -> String {
        gpg_in(self.home.path(), args)
    }

    /// Exports the public key `fp` to `path` (armoured or binary).
    fn export(&self, fp: &str, path: &Path, armor: bool) {
        let path = path.to_str().unwrap();
        let mut args = vec!["--yes", "--output", path];
        if armor {
            args.push("--armor");
        }
        args.extend(["--export", fp]);
        self.gpg(&args);
    }

    /// Signs `file` with exactly the key `fp` into `sig`.
    fn sign(&self, fp: &str, file: &Path, sig: &Path, armor: bool, extra: &[&str]) {
        let user = format!("{fp}!");
        let mut args = vec!["--yes", "--local-user", &user, "--output"];
        args.push(sig.to_str().unwrap());
        args.extend(extra);
        if armor {
            args.push("--armor");
        }
        args.extend(["--detach-sign", file.to_str().unwrap()]);
        self.gpg(&args);
    }

    /// Replaces fingerprints and key ids with names so snapshots do not
    /// depend on the keys made in this run.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (fp, label) in [
            (&self.rsa, "RSA"),
            (&self.ed, "ED"),
            (&self.sub, "SUB"),
            (&self.sub_signing, "SUB-SIGNING"),
            (&self.expired, "EXPIRED"),
            (&self.revoked, "REVOKED"),
            (&self.mallory, "MALLORY"),
        ] {
            let shown = acido_fp_display(fp);
            text = text
                .replace(fp.as_str(), &format!("[{label}-FP]"))
                .replace(&shown, &format!("[{label}-FP]"))
                .replace(&fp[24..], &format!("[{label}-KEYID]"));
        }
        text
    }
}

/// The review form of a fingerprint, as `acido trust` prints it.
fn acido_fp_display(fp: &str) -> String {
    let upper = fp.to_ascii_uppercase();
    let groups: Vec<&str> = (0..upper.len() / 4)
        .map(|i| &upper[i * 4..i * 4 + 4])
        .collect();
    let half = groups.len() / 2;
    format!("{}  {}", groups[..half].join(" "), groups[half..].join(" "))
}

/// A sandbox with a private trust store (user and system roots) and an
/// image `example.com/app` packed uncompressed.
struct TrustEnv {
    env: Env,
}

impl TrustEnv {
    fn new() -> Self {
        TrustEnv { env: Env::new() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let output = self
            .env
            .command()
            .env("ACIDO_CONFIG_DIR", self.path("user-config"))
            .env("ACIDO_SYSTEM_CONFIG_DIR", self.path("system-config"))
            .args(&args)
            .output()
            .expect("run acido");
        Run { args, output }
    }

    /// Packs an image named `name` whose one file holds `payload`.
    fn image(&self, rel: &str, name: &str, payload: &str) -> PathBuf {
        let layout = self.env.layout(
            &format!("{rel}.layout"),
            &manifest(name, ""),
            &[("payload", payload)],
        );
        self.env.pack(&layout, rel, "none");
        self.path(rel)
    }

    /// Trusts `fp` for `scope` (`--prefix X` or `--root`) without review.
    fn trust(&self, keys: &Keys, fp: &str, scope: &[&str]) {
        let file = self.path(&format!("{fp}.pub"));
        keys.export(fp, &file, true);
        let mut args = vec!["trust", "--skip-fingerprint-review"];
        args.extend(scope);
        args.push(file.to_str().unwrap());
        self.run(args).ok();
    }

    fn snap(&self, keys: &Keys, run: &Run) -> String {
        keys.redact(&self.env.snap(run))
    }
}

#[test]
fn verify_accepts_good_signatures_from_gpg() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let aci = t.image("app.aci", "example.com/app", "payload-1");
    t.trust(keys, &keys.rsa, &["--prefix", "example.com"]);
    t.trust(keys, &keys.ed, &["--prefix", "example.com/app"]);
    t.trust(keys, &keys.sub, &["--root"]);
    let mut text = String::new();
    // RSA, armoured, key trusted for the parent prefix.
    keys.sign(&keys.rsa, &aci, &t.path("rsa.asc"), true, &[]);
    text += &t.snap(
        keys,
        &t.run([
            "verify".as_ref(),
            aci.as_os_str(),
            t.path("rsa.asc").as_os_str(),
        ]),
    );
    // Ed25519, binary signature, trusted for the name itself.
    keys.sign(&keys.ed, &aci, &t.path("ed.sig"), false, &[]);
    text += &t.snap(
        keys,
        &t.run([
            "verify".as_ref(),
            aci.as_os_str(),
            t.path("ed.sig").as_os_str(),
        ]),
    );
    // A signing subkey of a root-trusted primary, at the default IMAGE.asc.
    keys.sign(&keys.sub_signing, &aci, &t.path("app.aci.asc"), true, &[]);
    text += &t.snap(keys, &t.run(["verify".as_ref(), aci.as_os_str()]));
    insta::assert_snapshot!("verify_good", text);
}

#[test]
fn verify_accepts_keys_stored_from_binary_exports() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let aci = t.image("app.aci", "example.com/app", "payload-1");
    let binary = t.path("ed.gpg");
    keys.export(&keys.ed, &binary, false);
    t.run([
        "trust".as_ref(),
        "--prefix".as_ref(),
        "example.com".as_ref(),
        "--skip-fingerprint-review".as_ref(),
        binary.as_os_str(),
    ])
    .ok();
    keys.sign(&keys.ed, &aci, &t.path("app.aci.asc"), true, &[]);
    let run = t.run(["verify".as_ref(), aci.as_os_str()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().starts_with(&keys.ed), "{}", run.stdout());
}

#[test]
fn verify_refuses_every_failed_check() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let aci = t.image("app.aci", "example.com/app", "payload-1");
    let other = t.image("other.aci", "example.com/app", "payload-2");
    let foobar = t.image("foobar.aci", "example.com/foobar", "payload-3");
    let mut text = String::new();
    let mut case = |title: &str, args: &[&OsStr]| {
        let mut argv: Vec<&OsStr> = vec!["verify".as_ref()];
        argv.extend(args);
        let run = t.run(&argv);
        assert_eq!(run.code(), 1, "{title}: {}", run.stderr());
        text += &format!("=== {title}\n{}", t.snap(keys, &run));
    };

    keys.sign(&keys.ed, &aci, &t.path("ed.asc"), true, &[]);
    case(
        "no key trusted at all",
        &[aci.as_os_str(), t.path("ed.asc").as_os_str()],
    );

    t.trust(keys, &keys.ed, &["--prefix", "example.com/app"]);
    t.trust(keys, &keys.rsa, &["--prefix", "example.com/foo"]);
    t.trust(keys, &keys.expired, &["--prefix", "example.com"]);
    t.trust(keys, &keys.revoked, &["--prefix", "example.com"]);
    t.trust(keys, &keys.sub, &["--prefix", "example.com"]);

    keys.sign(&keys.mallory, &aci, &t.path("mallory.asc"), true, &[]);
    case(
        "signed by an untrusted key",
        &[aci.as_os_str(), t.path("mallory.asc").as_os_str()],
    );

    keys.sign(&keys.rsa, &foobar, &t.path("foobar.asc"), true, &[]);
    case(
        "key trusted for example.com/foo only, image example.com/foobar",
        &[foobar.as_os_str(), t.path("foobar.asc").as_os_str()],
    );

    let tampered = t.path("tampered.aci");
    let mut bytes = fs::read(&aci).unwrap();
    let at = bytes.windows(9).position(|w| w == b"payload-1").unwrap();
    bytes[at + 8] = b'X';
    fs::write(&tampered, &bytes).unwrap();
    case(
        "tampered image",
        &[tampered.as_os_str(), t.path("ed.asc").as_os_str()],
    );

    case(
        "signature of another image",
        &[other.as_os_str(), t.path("ed.asc").as_os_str()],
    );

    keys.sign(&keys.ed, &aci, &t.path("ed.sig"), false, &[]);
    let mut sig = fs::read(t.path("ed.sig")).unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    fs::write(t.path("tampered.sig"), &sig).unwrap();
    case(
        "tampered signature",
        &[aci.as_os_str(), t.path("tampered.sig").as_os_str()],
    );

    t.trust(keys, &keys.rsa, &["--prefix", "example.com/app"]);
    keys.sign(
        &keys.rsa,
        &aci,
        &t.path("sha1.asc"),
        true,
        &["--digest-algo", "SHA1"],
    );
    case(
        "SHA-1 signature",
        &[aci.as_os_str(), t.path("sha1.asc").as_os_str()],
    );

    keys.sign(
        &keys.expired,
        &aci,
        &t.path("expired.asc"),
        true,
        &["--faked-system-time", "20200101T120000!"],
    );
    case(
        "expired key",
        &[aci.as_os_str(), t.path("expired.asc").as_os_str()],
    );

    case("no signature file", &[aci.as_os_str()]);

    keys.export(&keys.ed, &t.path("key-not-sig.asc"), true);
    case(
        "a key block instead of a signature",
        &[aci.as_os_str(), t.path("key-not-sig.asc").as_os_str()],
    );

    insta::assert_snapshot!("verify_refused", text);
}

#[test]
fn verify_refuses_a_revoked_key() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let aci = t.image("app.aci", "example.com/app", "payload-1");
    keys.sign(&keys.revoked, &aci, &t.path("app.aci.asc"), true, &[]);
    // Revoke with the certificate gpg made at key generation: it is
    // stored with a leading ':' so it cannot be imported by accident.
    let rev = keys.home.path().join(format!(
        "openpgp-revocs.d/{}.rev",
        keys.revoked.to_ascii_uppercase()
    ));
    let cert = fs::read_to_string(&rev)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    let revoked_home = tempfile::tempdir().unwrap();
    // Work on a copy of the keys so the other tests keep the unrevoked key.
    let export = t.path("gone.pub");
    keys.export(&keys.revoked, &export, true);
    fs::set_permissions(
        revoked_home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    fs::write(t.path("gone.rev"), cert).unwrap();
    gpg_in(revoked_home.path(), &["--import", export.to_str().unwrap()]);
    gpg_in(
        revoked_home.path(),
        &["--import", t.path("gone.rev").to_str().unwrap()],
    );
    let revoked_key = t.path("gone-revoked.pub");
    gpg_in(
        revoked_home.path(),
        &[
            "--yes",
            "--armor",
            "--output",
            revoked_key.to_str().unwrap(),
            "--export",
            &keys.revoked,
        ],
    );
    t.run([
        "trust".as_ref(),
        "--prefix".as_ref(),
        "example.com".as_ref(),
        "--skip-fingerprint-review".as_ref(),
        revoked_key.as_os_str(),
    ])
    .ok();
    let run = t.run(["verify".as_ref(), aci.as_os_str()]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    insta::assert_snapshot!("verify_revoked", t.snap(keys, &run));
}

#[test]
fn verify_bad_input_is_fatal() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    fs::write(t.path("junk.aci"), b"not an image").unwrap();
    let mut text = t.snap(keys, &t.run(["verify", "missing.aci"]));
    text += &t.snap(keys, &t.run(["verify", "junk.aci"]));
    for line in text.lines().filter(|l| l.starts_with("exit:")) {
        assert_eq!(line, "exit: 128");
    }
    insta::assert_snapshot!("verify_bad_input", text);
}

#[test]
fn trust_adds_lists_and_removes_keys() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    // One file holding two keys: each is reviewed and stored on its own.
    let both = t.path("both.asc");
    keys.gpg(&[
        "--yes",
        "--armor",
        "--output",
        both.to_str().unwrap(),
        "--export",
        &keys.ed,
        &keys.sub,
    ]);
    let mut text = t.snap(
        keys,
        &t.run([
            "trust".as_ref(),
            "--prefix".as_ref(),
            "example.com/app".as_ref(),
            "--skip-fingerprint-review".as_ref(),
            both.as_os_str(),
        ]),
    );
    t.trust(keys, &keys.rsa, &["--root"]);
    text += &sorted_stdout(&t.snap(keys, &t.run(["trust", "--list"])));
    let user_file = t.path(&format!(
        "user-config/trustedkeys/prefix.d/example.com/app/{}",
        keys.ed
    ));
    let system_file = t.path(&format!(
        "system-config/trustedkeys/prefix.d/example.com/app/{}",
        keys.ed
    ));
    // As root the system root is written, else the user's.
    let written = if common::is_root() {
        &system_file
    } else {
        &user_file
    };
    assert!(written.is_file(), "{} missing", written.display());
    assert!(fs::read_to_string(written)
        .unwrap()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    text += &t.snap(keys, &t.run(["trust", "--remove", &keys.ed]));
    assert!(!written.exists());
    text += &sorted_stdout(&t.snap(keys, &t.run(["trust", "--list"])));
    // One snapshot for both: the root written to shows as [WRITTEN].
    let written_root = if common::is_root() {
        "system-config"
    } else {
        "user-config"
    };
    insta::assert_snapshot!(
        "trust_add_list_remove",
        text.replace(written_root, "[WRITTEN]")
    );
}

/// A snapshot with its stdout lines sorted: `--list` orders the keys of
/// one prefix by fingerprint, and the fingerprints are new in every run.
fn sorted_stdout(snap: &str) -> String {
    let (head, rest) = snap.split_once("--- stdout\n").unwrap();
    let (stdout, stderr) = rest.split_once("--- stderr\n").unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    let mut out = format!("{head}--- stdout\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    format!("{out}--- stderr\n{stderr}")
}

#[test]
fn trust_refuses_bad_requests() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let key = t.path("ed.asc");
    keys.export(&keys.ed, &key, true);
    let k = key.to_str().unwrap();
    let mut text = String::new();
    for (args, code) in [
        (vec!["trust", k], 129),
        (vec!["trust", "--root", "--prefix", "example.com", k], 129),
        (
            vec![
                "trust",
                "--prefix",
                "https://example.com",
                "--skip-fingerprint-review",
                k,
            ],
            128,
        ),
        (
            vec![
                "trust",
                "--prefix",
                "example.com/../etc",
                "--skip-fingerprint-review",
                k,
            ],
            128,
        ),
        // --root needs keys; --prefix without keys discovers them (tests/fetch.rs).
        (vec!["trust", "--root"], 129),
        // Standard input is not a terminal here: nothing may be written.
        (vec!["trust", "--prefix", "example.com", k], 128),
        (
            vec![
                "trust",
                "--prefix",
                "example.com",
                "--skip-fingerprint-review",
                "missing.asc",
            ],
            128,
        ),
        (vec!["trust", "--remove", &keys.mallory], 128),
        (vec!["trust", "--remove", "not-a-fingerprint"], 128),
    ] {
        let run = t.run(&args);
        assert_eq!(run.code(), code, "{args:?}: {}", run.stderr());
        text += &t.snap(keys, &run);
    }
    assert!(!t.path("user-config/trustedkeys").exists());
    assert!(!t.path("system-config/trustedkeys").exists());
    // Keys given as files that are not keys.
    fs::write(t.path("junk.asc"), "hello\n").unwrap();
    text += &t.snap(
        keys,
        &t.run([
            "trust",
            "--prefix",
            "example.com",
            "--skip-fingerprint-review",
            "junk.asc",
        ]),
    );
    insta::assert_snapshot!("trust_refused", text);
}

#[test]
fn user_mask_hides_a_system_key_and_segments_match_whole() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let aci = t.image("app.aci", "example.com/app", "payload-1");
    keys.sign(&keys.ed, &aci, &t.path("app.aci.asc"), true, &[]);
    // System root trusts the key for example.com ...
    let system = t.path("system-config/trustedkeys/prefix.d/example.com");
    fs::create_dir_all(&system).unwrap();
    keys.export(&keys.ed, &system.join(&keys.ed), true);
    assert_eq!(t.run(["verify".as_ref(), aci.as_os_str()]).code(), 0);
    // ... the user masks it with an empty file ...
    let user = t.path("user-config/trustedkeys/root.d");
    fs::create_dir_all(&user).unwrap();
    fs::write(user.join(&keys.ed), "").unwrap();
    // (a root-level mask is applied before the prefix levels, so the
    // system's example.com key still counts)
    assert_eq!(t.run(["verify".as_ref(), aci.as_os_str()]).code(), 0);
    let user = t.path("user-config/trustedkeys/prefix.d/example.com");
    fs::create_dir_all(&user).unwrap();
    fs::write(user.join(&keys.ed), "").unwrap();
    let run = t.run(["verify".as_ref(), aci.as_os_str()]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("no key is trusted"),
        "{}",
        run.stderr()
    );
    // A misnamed file is reported and skipped; other keys still work.
    fs::remove_file(user.join(&keys.ed)).unwrap();
    fs::write(
        user.join(&keys.rsa),
        fs::read(system.join(&keys.ed)).unwrap(),
    )
    .unwrap();
    let run = t.run(["verify".as_ref(), aci.as_os_str()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    insta::assert_snapshot!("verify_misnamed_store_file", t.snap(keys, &run));
}

/// Runs `acido ARGS` on a pseudo-terminal made by `script` (util-linux,
/// essential on Debian), typing `input`; returns the exit status.
fn run_on_tty(t: &TrustEnv, args: &str, input: &str) -> i32 {
    use std::io::Write;
    use std::process::Stdio;
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_acido"));
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", t.path("home"))
        .env("TERM", "dumb")
        .env("LC_ALL", "C")
        .env("ACIDO_STORE", t.path("store"))
        .env("ACIDO_CONFIG_DIR", t.path("user-config"))
        .env("ACIDO_SYSTEM_CONFIG_DIR", t.path("system-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    // Keep the pty's input open until acido has read its answers.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    output.status.code().unwrap_or(-1)
}

#[test]
fn trust_asks_on_a_terminal_and_stores_only_what_was_accepted() {
    let Some(keys) = keys() else { return };
    let t = TrustEnv::new();
    let key = t.path("ed.asc");
    keys.export(&keys.ed, &key, true);
    let root = if common::is_root() {
        "system-config"
    } else {
        "user-config"
    };
    let stored = t.path(&format!(
        "{root}/trustedkeys/prefix.d/example.com/{}",
        keys.ed
    ));
    let args = format!("trust --prefix example.com {}", key.display());
    // Anything but yes or no is asked again; no stores nothing.
    assert_eq!(run_on_tty(&t, &args, "maybe\nno\n"), 0);
    assert!(!stored.exists());
    assert_eq!(run_on_tty(&t, &args, "yes\n"), 0);
    assert!(stored.is_file(), "{} missing", stored.display());
}
