//! Issue 13: `acido fetch` and `acido trust` with keys over HTTPS, end to
//! end: a discovery and file server on loopback over HTTPS (a test CA made
//! by `openssl`, rustls on the server side, the real client on acido's),
//! reached for `example.com` with `--connect-to`; keys and signatures made
//! by the real GnuPG. Every refused case is snapshotted with its message
//! and checked to leave the store empty. Without gpg or openssl the tests
//! fail under `CI` and skip loudly otherwise.

mod common;
#[path = "common/gpg.rs"]
mod gpg;
#[path = "common/https.rs"]
mod https;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{manifest, Env, Run};
use gpg::{fingerprints, gpg_in};
use https::{HttpsServer, Reply, TestCa};

/// The keys the tests sign with, made once per test binary.
struct Keys {
    home: tempfile::TempDir,
    /// Ed25519, trusted for example.com in most tests.
    good: String,
    /// RSA 2048: for the SHA-1 signature.
    rsa: String,
    /// Ed25519, trusted for nothing or for other.example only.
    mallory: String,
    /// Ed25519, made in 2020 with a one-day expiry.
    expired: String,
    /// Ed25519; `revoked_pub` is its public key with a revocation.
    revoked: String,
    revoked_pub: PathBuf,
}

fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| gpg::require("fetch").then(make_keys))
        .as_ref()
}

fn make_keys() -> Keys {
    let home = gpg::private_home("gpg-fetch-");
    let h = home.path();
    let gen = |uid: &str, algo: &str, expire: &str, faked: Option<&str>| {
        let mut args = vec![];
        if let Some(time) = faked {
            args.extend(["--faked-system-time", time]);
        }
        args.extend(["--quick-gen-key", uid, algo, "sign", expire]);
        gpg_in(h, &args);
        fingerprints(h, uid)[0].clone()
    };
    let good = gen("Good Signer <good@example.com>", "ed25519", "never", None);
    let rsa = gen("Rsa Signer <rsa@example.com>", "rsa2048", "never", None);
    let mallory = gen("Mallory <mallory@example.com>", "ed25519", "never", None);
    let expired = gen(
        "Old Signer <old@example.com>",
        "ed25519",
        "1d",
        Some("20200101T000000!"),
    );
    let revoked = gen("Gone Signer <gone@example.com>", "ed25519", "never", None);
    // The revocation goes into a copy of the key in another home, so the
    // signing home keeps a usable secret key.
    let rev = h.join(format!(
        "openpgp-revocs.d/{}.rev",
        revoked.to_ascii_uppercase()
    ));
    let cert = fs::read_to_string(rev)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    let other = gpg::private_home("gpg-revoked-");
    let export = other.path().join("gone.pub");
    gpg_in(
        h,
        &[
            "--yes",
            "--armor",
            "--output",
            export.to_str().unwrap(),
            "--export",
            &revoked,
        ],
    );
    fs::write(other.path().join("gone.rev"), cert).unwrap();
    gpg_in(other.path(), &["--import", export.to_str().unwrap()]);
    gpg_in(
        other.path(),
        &["--import", other.path().join("gone.rev").to_str().unwrap()],
    );
    let revoked_pub = h.join("gone-revoked.pub");
    gpg_in(
        other.path(),
        &[
            "--yes",
            "--armor",
            "--output",
            revoked_pub.to_str().unwrap(),
            "--export",
            &revoked,
        ],
    );
    Keys {
        home,
        good,
        rsa,
        mallory,
        expired,
        revoked,
        revoked_pub,
    }
}

impl Keys {
    fn export(&self, fp: &str) -> Vec<u8> {
        let path = self.home.path().join(format!("{fp}.pub"));
        gpg_in(
            self.home.path(),
            &[
                "--yes",
                "--armor",
                "--output",
                path.to_str().unwrap(),
                "--export",
                fp,
            ],
        );
        fs::read(path).unwrap()
    }

    /// A detached signature of `file` by exactly `fp` (binary unless
    /// `armor`).
    fn sign(&self, fp: &str, file: &Path, armor: bool, extra: &[&str]) -> Vec<u8> {
        let sig = file.with_extension(format!("{}.sig", &fp[..8]));
        let user = format!("{fp}!");
        let mut args = vec!["--yes", "--local-user", &user, "--output"];
        args.push(sig.to_str().unwrap());
        args.extend(extra);
        if armor {
            args.push("--armor");
        }
        args.extend(["--detach-sign", file.to_str().unwrap()]);
        gpg_in(self.home.path(), &args);
        fs::read(sig).unwrap()
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (fp, label) in [
            (&self.good, "GOOD"),
            (&self.rsa, "RSA"),
            (&self.mallory, "MALLORY"),
            (&self.expired, "EXPIRED"),
            (&self.revoked, "REVOKED"),
        ] {
            let upper = fp.to_ascii_uppercase();
            let groups: Vec<&str> = (0..10).map(|i| &upper[i * 4..i * 4 + 4]).collect();
            let shown = format!("{}  {}", groups[..5].join(" "), groups[5..].join(" "));
            text = text
                .replace(fp.as_str(), &format!("[{label}-FP]"))
                .replace(&shown, &format!("[{label}-FP]"))
                .replace(&fp[24..], &format!("[{label}-KEYID]"));
        }
        text
    }
}

/// A sandbox: private store and trust roots, the server, the CA.
struct Site {
    env: Env,
    server: HttpsServer,
    ca: &'static TestCa,
    keys: &'static Keys,
}

impl Site {
    fn new() -> Option<Site> {
        let keys = keys()?;
        let ca = https::test_ca()?;
        Some(Site {
            env: Env::new(),
            server: HttpsServer::start(ca),
            ca,
            keys,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    /// Runs acido with the trust roots and the CA; `fetch` and `trust` get
    /// the host overrides too.
    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.env.command();
        cmd.env("ACIDO_CONFIG_DIR", self.path("user-config"))
            .env("ACIDO_SYSTEM_CONFIG_DIR", self.path("system-config"))
            .env("SSL_CERT_FILE", &self.ca.ca);
        let mut all: Vec<OsString> = vec![args[0].into()];
        if matches!(args[0], "fetch" | "trust") {
            all.extend(self.server.connect_args().into_iter().map(OsString::from));
        }
        all.extend(args[1..].iter().map(OsString::from));
        let output = cmd.args(&all).output().expect("run acido");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            output,
        }
    }

    fn snap(&self, run: &Run) -> String {
        self.keys.redact(&self.env.snap(run))
    }

    /// Packs an image (plain tar) named `name` with `labels` (JSON) whose
    /// one file holds `payload`.
    fn image(&self, rel: &str, name: &str, labels: &str, payload: &str) -> PathBuf {
        let extra = if labels.is_empty() {
            String::new()
        } else {
            format!(r#","labels":{labels}"#)
        };
        let layout = self.env.layout(
            &format!("{rel}.layout"),
            &manifest(name, &extra),
            &[("payload", payload)],
        );
        self.env.pack(&layout, rel, "none");
        self.path(rel)
    }

    /// Trusts `fp` for `prefix` from a file, without review.
    fn trust(&self, fp: &str, prefix: &str) {
        let file = self.path(&format!("{}-{}.pub", &fp[..8], prefix.replace('/', "_")));
        fs::write(&file, self.keys.export(fp)).unwrap();
        self.run(&[
            "trust",
            "--skip-fingerprint-review",
            "--prefix",
            prefix,
            file.to_str().unwrap(),
        ])
        .ok();
    }

    /// Files in the store's blobs and tmp (nothing stored, nothing left).
    fn stored_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in ["blobs", "tmp", "images"] {
            let root = self.env.store().join(dir);
            if root.exists() {
                for entry in walkdir::WalkDir::new(&root) {
                    let entry = entry.unwrap();
                    if entry.file_type().is_file() {
                        found.push(entry.path().display().to_string());
                    }
                }
            }
        }
        found
    }
}

const LABELS: &str = r#"[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]"#;
const PLATFORM: [&str; 4] = ["--os", "linux", "--arch", "amd64"];

/// The discovery page of a static server for `prefix`: images under
/// `/images/`, keys at `/pubkeys.asc`.
fn discovery_page(prefix: &str, host: &str) -> Vec<u8> {
    format!(
        r#"<!DOCTYPE html>
<html><head><title>{prefix}</title>
<meta name="ac-discovery" content="{prefix} https://{host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}">
<meta name="ac-discovery-pubkeys" content="{prefix} https://{host}/pubkeys.asc">
</head><body></body></html>
"#
    )
    .into_bytes()
}

/// Publishes `aci` and `sig` where the discovery page says for `name`.
fn publish(site: &Site, name: &str, aci: &Path, sig: Option<Vec<u8>>) {
    let base = format!("example.com/images/{name}-1.0-linux-amd64");
    site.server.file(&format!("{base}.aci"), aci);
    if let Some(sig) = sig {
        site.server
            .route(&format!("{base}.aci.asc"), Reply::Body(sig));
    }
}

#[test]
fn fetch_by_name_discovers_checks_and_stores_once() {
    let Some(site) = Site::new() else { return };
    let keys = site.keys;
    site.trust(&keys.good, "example.com");
    let aci = site.image("app.aci", "example.com/app", LABELS, "payload-1");
    // The name's own page fails: discovery retries the parent path.
    site.server
        .route("example.com/app?ac-discovery=1", Reply::Status(500));
    site.server.route(
        "example.com/?ac-discovery=1",
        Reply::Body(discovery_page("example.com", "example.com")),
    );
    publish(
        &site,
        "example.com/app",
        &aci,
        Some(keys.sign(&keys.good, &aci, true, &[])),
    );
    let mut text = String::new();
    let mut args = vec!["fetch"];
    args.extend(PLATFORM);
    args.push("example.com/app:1.0");
    let run = site.run(&args);
    text += &site.snap(&run);
    let id = run.ok().trim().to_owned();
    assert_eq!(
        site.server.hits(),
        [
            "example.com/app?ac-discovery=1",
            "example.com/?ac-discovery=1",
            "example.com/images/example.com/app-1.0-linux-amd64.aci.asc",
            "example.com/images/example.com/app-1.0-linux-amd64.aci",
        ]
    );
    let images = site.run(&["images", "--format", "json"]).ok();
    assert!(images.contains(&id), "{images}");
    // Stored: not fetched again, no request at all.
    let run = site.run(&args);
    text += &site.snap(&run);
    assert_eq!(run.ok().trim(), id);
    assert_eq!(site.server.hits().len(), 4);
    // --no-store fetches again and finds the same image.
    let mut again = args.clone();
    again.insert(1, "--no-store");
    assert_eq!(site.run(&again).ok().trim(), id);
    assert_eq!(site.server.hits().len(), 8);
    insta::assert_snapshot!("fetch_by_name", text);
}

#[test]
fn fetch_by_url_and_from_a_file() {
    let Some(site) = Site::new() else { return };
    let keys = site.keys;
    site.trust(&keys.good, "example.com/app");
    let aci = site.image("app.aci", "example.com/app", LABELS, "payload-url");
    site.server.file("example.com/dl/app.aci", &aci);
    site.server.route(
        "example.com/dl/app.aci.asc",
        Reply::Body(keys.sign(&keys.good, &aci, false, &[])),
    );
    let mut text = String::new();
    let run = site.run(&["fetch", "https://example.com/dl/app.aci"]);
    text += &site.snap(&run);
    let id = run.ok();
    // curl's --resolve: the URL's own port, the name sent to 127.0.0.1.
    let port = site.server.port;
    let resolve = format!("example.com:{port}:127.0.0.1");
    let url = format!("https://example.com:{port}/dl/app.aci");
    assert_eq!(site.run(&["fetch", "--resolve", &resolve, &url]).ok(), id);
    let local = site.image("local.aci", "example.com/app", LABELS, "payload-file");
    fs::write(
        site.path("local.aci.asc"),
        keys.sign(&keys.good, &local, true, &[]),
    )
    .unwrap();
    let run = site.run(&["fetch", local.to_str().unwrap()]);
    text += &site.snap(&run);
    run.ok();
    insta::assert_snapshot!("fetch_url_and_file", text);
}

#[test]
fn insecure_image_skips_the_signature_and_says_so() {
    let Some(site) = Site::new() else { return };
    let aci = site.image("app.aci", "example.com/app", LABELS, "unsigned");
    site.server.file("example.com/dl/app.aci", &aci);
    let run = site.run(&[
        "fetch",
        "--insecure-options=image",
        "https://example.com/dl/app.aci",
    ]);
    insta::assert_snapshot!("fetch_insecure_image", site.snap(&run));
    assert_eq!(run.code(), 0);
    assert_eq!(
        site.server.hits(),
        ["example.com/dl/app.aci"],
        "no signature asked"
    );
}

/// Every refused case: message, exit 128, nothing stored.
#[test]
fn fetch_refuses_bad_input_and_stores_nothing() {
    let Some(site) = Site::new() else { return };
    let keys = site.keys;
    site.trust(&keys.good, "example.com");
    site.trust(&keys.rsa, "example.com");
    site.trust(&keys.expired, "example.com");
    site.trust(&keys.mallory, "other.example");
    fs::write(
        site.path("revoked.pub"),
        fs::read(&keys.revoked_pub).unwrap(),
    )
    .unwrap();
    site.run(&[
        "trust",
        "--skip-fingerprint-review",
        "--prefix",
        "example.com",
        site.path("revoked.pub").to_str().unwrap(),
    ])
    .ok();
    site.server.route(
        "example.com/?ac-discovery=1",
        Reply::Body(discovery_page("example.com", "example.com")),
    );
    let image = |name: &str, payload: &str| {
        let rel = format!("{}.aci", name.replace('/', "_"));
        site.image(&rel, name, LABELS, payload)
    };
    let mut text = String::new();
    let mut case = |title: &str, args: &[&str]| {
        let run = site.run(args);
        text += &format!("### {title}\n{}\n", site.snap(&run));
        assert_eq!(run.code(), 128, "{title}: {}", run.stderr());
        assert_eq!(site.stored_files(), Vec::<String>::new(), "{title}");
    };
    let fetch = |name: &'static str| -> Vec<&'static str> {
        let mut args = vec!["fetch"];
        args.extend(PLATFORM);
        args.push(name);
        args
    };

    // A key nobody trusts.
    let aci = image("example.com/wrong-key", "w");
    publish(
        &site,
        "example.com/wrong-key",
        &aci,
        Some(keys.sign(&keys.mallory, &aci, true, &[])),
    );
    case("wrong key", &fetch("example.com/wrong-key:1.0"));
    // The signer is checked before the image is downloaded (fetch step 3):
    // the signature was asked for, the image never was.
    let hits = site.server.hits();
    assert!(
        hits.iter()
            .any(|h| h.ends_with("/wrong-key-1.0-linux-amd64.aci.asc")),
        "signature asked: {hits:?}"
    );
    assert!(
        !hits
            .iter()
            .any(|h| h.ends_with("/wrong-key-1.0-linux-amd64.aci")),
        "image downloaded despite an untrusted signer: {hits:?}"
    );

    // The ACI changed after it was signed (same length, still a valid tar).
    let aci = image("example.com/tampered", "payload-A");
    let sig = keys.sign(&keys.good, &aci, true, &[]);
    let bytes = fs::read(&aci).unwrap();
    let at = bytes.windows(9).position(|w| w == b"payload-A").unwrap();
    let mut tampered = bytes.clone();
    tampered[at + 8] = b'B';
    fs::write(&aci, tampered).unwrap();
    publish(&site, "example.com/tampered", &aci, Some(sig));
    case("tampered ACI", &fetch("example.com/tampered:1.0"));

    // The signature changed.
    let aci = image("example.com/badsig", "s");
    let mut sig = keys.sign(&keys.good, &aci, false, &[]);
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    publish(&site, "example.com/badsig", &aci, Some(sig));
    case("tampered signature", &fetch("example.com/badsig:1.0"));

    // A good signature, of another image.
    let aci = image("example.com/swapped", "mine");
    let other = site.image("other.aci", "example.com/swapped", LABELS, "theirs");
    publish(
        &site,
        "example.com/swapped",
        &aci,
        Some(keys.sign(&keys.good, &other, true, &[])),
    );
    case(
        "signature of another image",
        &fetch("example.com/swapped:1.0"),
    );

    // Mallory's key is trusted, but for other.example only.
    let aci = image("example.com/other-prefix", "o");
    publish(
        &site,
        "example.com/other-prefix",
        &aci,
        Some(keys.sign(&keys.mallory, &aci, true, &[])),
    );
    case(
        "key trusted for another prefix only",
        &fetch("example.com/other-prefix:1.0"),
    );

    // Expired and revoked keys.
    let aci = image("example.com/expired", "e");
    let sig = keys.sign(
        &keys.expired,
        &aci,
        true,
        &["--faked-system-time", "20200101T120000!"],
    );
    publish(&site, "example.com/expired", &aci, Some(sig));
    case("expired key", &fetch("example.com/expired:1.0"));
    let aci = image("example.com/revoked", "r");
    publish(
        &site,
        "example.com/revoked",
        &aci,
        Some(keys.sign(&keys.revoked, &aci, true, &[])),
    );
    case("revoked key", &fetch("example.com/revoked:1.0"));

    // SHA-1.
    let aci = image("example.com/sha1", "h");
    let sig = keys.sign(&keys.rsa, &aci, true, &["--digest-algo", "SHA1"]);
    publish(&site, "example.com/sha1", &aci, Some(sig));
    case("SHA-1 signature", &fetch("example.com/sha1:1.0"));

    // No signature published.
    let aci = image("example.com/unsigned", "u");
    publish(&site, "example.com/unsigned", &aci, None);
    case("no signature", &fetch("example.com/unsigned:1.0"));

    // A local file with no FILE.asc beside it.
    let local = image("example.com/local-unsigned", "f");
    case(
        "no signature file beside a local image",
        &["fetch", local.to_str().unwrap()],
    );

    // The manifest names another image (signed by a trusted key).
    let aci = image("example.com/app", "impostor");
    publish(
        &site,
        "example.com/app2",
        &aci,
        Some(keys.sign(&keys.good, &aci, true, &[])),
    );
    case("manifest name differs", &fetch("example.com/app2:1.0"));

    // A label asked for differs.
    let aci = image("example.com/labels", "l");
    publish(
        &site,
        "example.com/labels",
        &aci,
        Some(keys.sign(&keys.good, &aci, true, &[])),
    );
    site.server.file(
        "example.com/images/example.com/labels-2.0-linux-amd64.aci",
        &aci,
    );
    site.server.route(
        "example.com/images/example.com/labels-2.0-linux-amd64.aci.asc",
        Reply::Body(keys.sign(&keys.good, &aci, true, &[])),
    );
    case("label differs", &fetch("example.com/labels:2.0"));

    // A discovery page over the page-size bound.
    let mut big = discovery_page("example.com/big", "example.com");
    big.extend(std::iter::repeat_n(b' ', 2 << 20));
    site.server
        .route("example.com/big?ac-discovery=1", Reply::Body(big));
    case(
        "HTML over the page-size limit",
        &fetch("example.com/big:1.0"),
    );

    // A redirect loop, on a host whose every level fails.
    site.server.route(
        "loop.example/app?ac-discovery=1",
        Reply::Redirect("https://loop.example/app2?ac-discovery=1".into()),
    );
    site.server.route(
        "loop.example/app2?ac-discovery=1",
        Reply::Redirect("https://loop.example/app?ac-discovery=1".into()),
    );
    case("redirect loop", &fetch("loop.example/app:1.0"));

    // Plain HTTP where HTTPS is asked: a URL, a redirect, a template.
    case("http URL", &["fetch", "http://example.com/dl/app.aci"]);
    site.server.route(
        "example.com/down.aci.asc",
        Reply::Redirect("http://example.com/down.aci.asc".into()),
    );
    case(
        "redirect from https to http",
        &["fetch", "https://example.com/down.aci"],
    );
    site.server.route(
        "other.example/?ac-discovery=1",
        Reply::Body(
            br#"<meta name="ac-discovery" content="other.example http://other.example/{name}.{ext}">"#
                .to_vec(),
        ),
    );
    case("http template", &fetch("other.example/app:1.0"));

    insta::assert_snapshot!("fetch_refused", text);
}

#[test]
fn https_needs_a_trusted_ca() {
    let Some(site) = Site::new() else { return };
    let aci = site.image("app.aci", "example.com/app", LABELS, "x");
    site.server.file("example.com/dl/app.aci", &aci);
    let mut cmd = site.env.command();
    let mut args: Vec<String> = vec!["fetch".into(), "--insecure-options=image".into()];
    args.extend(site.server.connect_args());
    args.push("https://example.com/dl/app.aci".into());
    // No SSL_CERT_FILE: the test CA is unknown.
    let output = cmd.args(&args).output().unwrap();
    let run = Run { args, output };
    assert_eq!(run.code(), 128, "{}", run.stderr());
    assert!(run.stderr().contains("UnknownIssuer"), "{}", run.stderr());
    // The CA in the user's certs.d is trusted without SSL_CERT_FILE.
    let certs_d = site.path("user-config/certs.d");
    fs::create_dir_all(&certs_d).unwrap();
    fs::copy(&site.ca.ca, certs_d.join("test-ca.pem")).unwrap();
    let output = site
        .env
        .command()
        .env("ACIDO_CONFIG_DIR", site.path("user-config"))
        .args(&run.args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn trust_takes_keys_from_https_urls_and_discovery() {
    let Some(site) = Site::new() else { return };
    let keys = site.keys;
    site.server.route(
        "example.com/keys/good.asc",
        Reply::Body(keys.export(&keys.good)),
    );
    let mut text = String::new();
    let run = site.run(&[
        "trust",
        "--skip-fingerprint-review",
        "--prefix",
        "example.com/app",
        "https://example.com/keys/good.asc",
    ]);
    text += &site.snap(&run);
    run.ok();
    // By discovery: the page at the parent level publishes the keys.
    site.server.route(
        "example.com/?ac-discovery=1",
        Reply::Body(discovery_page("example.com", "example.com")),
    );
    site.server.route(
        "example.com/pubkeys.asc",
        Reply::Body(keys.export(&keys.rsa)),
    );
    let run = site.run(&[
        "trust",
        "--skip-fingerprint-review",
        "--prefix",
        "example.com/tools",
    ]);
    text += &site.snap(&run);
    run.ok();
    let listed = site.run(&["trust", "--list"]).ok();
    assert!(
        listed.contains(&keys.good) && listed.contains(&keys.rsa),
        "{listed}"
    );

    // Refused: keys on another host, http, a key URL that is not a key.
    site.server.route(
        "www.example.com/?ac-discovery=1",
        Reply::Body(discovery_page("www.example.com", "other.example")),
    );
    site.server.route(
        "other.example/pubkeys.asc",
        Reply::Body(keys.export(&keys.mallory)),
    );
    let mut refused = |title: &str, args: &[&str]| {
        let run = site.run(args);
        text += &format!("### {title}\n{}\n", site.snap(&run));
        assert_eq!(run.code(), 128, "{title}: {}", run.stderr());
    };
    refused(
        "discovery points to another host's keys",
        &[
            "trust",
            "--skip-fingerprint-review",
            "--prefix",
            "www.example.com",
        ],
    );
    refused(
        "http key URL",
        &[
            "trust",
            "--skip-fingerprint-review",
            "--prefix",
            "example.com",
            "http://example.com/keys/good.asc",
        ],
    );
    refused(
        "key URL missing",
        &[
            "trust",
            "--skip-fingerprint-review",
            "--prefix",
            "example.com",
            "https://example.com/keys/none.asc",
        ],
    );
    assert!(
        !site.run(&["trust", "--list"]).ok().contains(&keys.mallory),
        "mallory's key was not stored"
    );
    insta::assert_snapshot!("trust_https", text);
}

/// The HTTP bounds stop the work and name their `--limit`.
#[test]
fn http_bounds_name_their_limit() {
    let Some(site) = Site::new() else { return };
    let aci = site.image("app.aci", "example.com/app", LABELS, "bounded");
    site.server.file("example.com/dl/app.aci", &aci);
    for hop in 0..3 {
        site.server.route(
            &format!("example.com/hop{hop}.aci"),
            Reply::Redirect(format!("https://example.com/hop{}.aci", hop + 1)),
        );
    }
    site.server.file("example.com/hop3.aci", &aci);
    let mut text = String::new();
    for args in [
        [
            "fetch",
            "--limit",
            "redirects=2",
            "--insecure-options=image",
            "https://example.com/hop0.aci",
        ],
        [
            "fetch",
            "--limit",
            "download-size=1K",
            "--insecure-options=image",
            "https://example.com/dl/app.aci",
        ],
    ] {
        let run = site.run(&args);
        assert_eq!(run.code(), 128, "{}", run.stderr());
        assert_eq!(site.stored_files(), Vec::<String>::new());
        text += &site.snap(&run);
    }
    // Raised, the same fetches pass.
    site.run(&[
        "fetch",
        "--limit",
        "redirects=3",
        "--insecure-options=image",
        "https://example.com/hop0.aci",
    ])
    .ok();
    insta::assert_snapshot!("fetch_bounds", text);
}
