//! `acido trust [--prefix PREFIX | --root] [--skip-fingerprint-review] KEY...`,
//! `acido trust --prefix PREFIX` (keys found by discovery),
//! `acido trust --list`, `acido trust --remove FINGERPRINT`

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use acido_plumbing::quote::quote_path;
use acido_plumbing::trust::key::display_fingerprint;
use acido_plumbing::trust::keystore::{Scope, StoredKeyState};
use acido_porcelain::trust::{self, KeySource, Outcome as KeyOutcome, Review, TrustRoots};
use anyhow::Context as _;
use clap::{ArgGroup, Args};

use crate::commands::fetch::HttpArgs;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// Where the trust store is; shared by `trust` and `verify`.
#[derive(Debug, Args)]
pub struct TrustDirs {
    /// The user's trust root (default: $ACIDO_CONFIG_DIR, else
    /// $XDG_CONFIG_HOME/acido, else ~/.config/acido); its keys take
    /// precedence
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// The system trust root (default: $ACIDO_SYSTEM_CONFIG_DIR, else
    /// /etc/acido)
    #[arg(long, value_name = "DIR")]
    pub system_config_dir: Option<PathBuf>,
}

impl TrustDirs {
    /// Both roots, after the options and the environment.
    pub fn roots(&self) -> anyhow::Result<TrustRoots> {
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let user = self
            .config_dir
            .clone()
            .or_else(|| env_dir("ACIDO_CONFIG_DIR"))
            .or_else(|| env_dir("XDG_CONFIG_HOME").map(|d| d.join("acido")))
            .or_else(|| env_dir("HOME").map(|d| d.join(".config/acido")))
            .context("no user config dir: use --config-dir DIR or set ACIDO_CONFIG_DIR")?;
        let system = self
            .system_config_dir
            .clone()
            .or_else(|| env_dir("ACIDO_SYSTEM_CONFIG_DIR"))
            .unwrap_or_else(|| PathBuf::from("/etc/acido"));
        Ok(TrustRoots { user, system })
    }
}

/// Arguments of `acido trust`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").args(["prefix", "root"])))]
pub struct TrustArgs {
    /// Trust the keys for images named PREFIX or below it, by whole
    /// segments (example.com covers example.com/app, not example.comx)
    #[arg(long, value_name = "PREFIX", conflicts_with = "root")]
    pub prefix: Option<String>,
    /// Trust the keys for every image name
    #[arg(long)]
    pub root: bool,
    /// Store the keys without asking to confirm each fingerprint (needed
    /// when standard input is not a terminal)
    #[arg(long)]
    pub skip_fingerprint_review: bool,
    /// List the keys of both trust roots
    #[arg(long, conflicts_with_all = ["prefix", "root", "remove", "keys", "skip_fingerprint_review"])]
    pub list: bool,
    /// Remove the key with this fingerprint from every prefix of the root
    /// written to
    #[arg(long, value_name = "FINGERPRINT", conflicts_with_all = ["prefix", "root", "keys", "skip_fingerprint_review"])]
    pub remove: Option<String>,
    #[command(flatten)]
    pub dirs: TrustDirs,
    #[command(flatten)]
    pub http: HttpArgs,
    /// OpenPGP public keys, ASCII-armoured or binary, one or more per
    /// file or https:// URL; without KEY, --prefix fetches the keys that
    /// appc discovery publishes for the prefix (ac-discovery-pubkeys, on
    /// the prefix's own host)
    #[arg(value_name = "KEY", required_unless_present_any = ["list", "remove", "prefix"], requires = "scope")]
    pub keys: Vec<String>,
}

/// Adds, lists or removes trusted keys.
pub fn run(ctx: &Context, args: TrustArgs) -> anyhow::Result<Outcome> {
    let roots = args.dirs.roots()?;
    // As root the system's store is written (like rkt's /etc/rkt); any
    // other user writes their own.
    let target = if nix::unistd::geteuid().is_root() {
        roots.system.clone()
    } else {
        roots.user.clone()
    };
    let mut out = output::stdout();
    if args.list {
        list(&roots, &mut out)?;
    } else if let Some(fingerprint) = &args.remove {
        for path in trust::remove(&target, fingerprint)? {
            writeln!(
                out,
                "removed {}",
                quote_path(path.as_os_str().as_encoded_bytes())
            )?;
        }
    } else {
        let scope = match &args.prefix {
            Some(prefix) => Scope::prefix(prefix)?,
            None => Scope::Root,
        };
        add(ctx, &args, &roots, &target, &scope, &mut out)?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}

fn add(
    ctx: &Context,
    args: &TrustArgs,
    roots: &TrustRoots,
    target: &std::path::Path,
    scope: &Scope,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let interactive = !args.skip_fingerprint_review;
    if interactive && !io::stdin().is_terminal() {
        anyhow::bail!(
            "cannot ask to review the key fingerprints: standard input is not a terminal; \
             check the fingerprints another way and pass --skip-fingerprint-review"
        );
    }
    let mut sources = args
        .keys
        .iter()
        .map(|k| KeySource::parse(k))
        .collect::<Result<Vec<_>, _>>()?;
    // A client only when something is fetched, so trusting files never
    // depends on the CA setup.
    let needs_client = sources.is_empty() || sources.iter().any(|s| matches!(s, KeySource::Url(_)));
    let client = if needs_client {
        Some(args.http.client(ctx, roots, false)?)
    } else {
        None
    };
    if let (Scope::Prefix(prefix), Some(client)) = (scope, &client) {
        if sources.is_empty() {
            sources = KeySource::discover(client, prefix.as_str())?;
        }
    }
    let mut stdin = io::stdin().lock();
    let mut review = |r: &Review<'_>| -> io::Result<bool> {
        let mut err = io::stderr().lock();
        if interactive || !ctx.quiet {
            show(&mut err, r)?;
        }
        if !interactive {
            return Ok(true);
        }
        loop {
            write!(err, "Trust this key for {}? (yes/no) ", r.scope)?;
            err.flush()?;
            let mut answer = String::new();
            if stdin.read_line(&mut answer)? == 0 {
                // End of input is not consent.
                writeln!(err)?;
                return Ok(false);
            }
            match answer.trim() {
                "yes" => return Ok(true),
                "no" => return Ok(false),
                _ => writeln!(err, "please answer yes or no")?,
            }
        }
    };
    for outcome in trust::trust_keys(target, scope, &sources, client.as_ref(), &mut review)? {
        match outcome {
            KeyOutcome::Added { fingerprint, path } => writeln!(
                out,
                "added key {fingerprint} for {scope}: {}",
                quote_path(path.as_os_str().as_encoded_bytes())
            )?,
            KeyOutcome::Declined { fingerprint } => {
                writeln!(io::stderr(), "acido: not trusting key {fingerprint}")?
            }
        }
    }
    Ok(())
}

/// The review text: file, fingerprint as gpg shows it, subkeys, user ids.
fn show(err: &mut impl Write, r: &Review<'_>) -> io::Result<()> {
    match r.source {
        KeySource::File(path) => writeln!(
            err,
            "key file: {}",
            quote_path(path.as_os_str().as_encoded_bytes())
        )?,
        KeySource::Url(url) => writeln!(err, "key URL: {url}")?,
    }
    writeln!(
        err,
        "  fingerprint: {}",
        display_fingerprint(&r.key.fingerprint())
    )?;
    for sub in r.key.subkey_fingerprints() {
        writeln!(err, "  subkey:      {}", display_fingerprint(&sub))?;
    }
    for uid in r.key.user_ids() {
        writeln!(err, "  user id:     {}", uid.escape_debug())?;
    }
    Ok(())
}

/// One line per store file: fingerprint, scope, user id or state, path.
fn list(roots: &TrustRoots, out: &mut impl Write) -> anyhow::Result<()> {
    for stored in trust::list(roots)? {
        let scope = match &stored.scope {
            Scope::Root => "root".to_owned(),
            Scope::Prefix(p) => format!("prefix={p}"),
        };
        let what = match &stored.state {
            StoredKeyState::Key(key) => key
                .primary_user_id()
                .map(|u| u.escape_debug().to_string())
                .unwrap_or_else(|| "(no user id)".to_owned()),
            StoredKeyState::Masked => "(masked)".to_owned(),
            StoredKeyState::Bad(e) => format!("(unusable: {e})"),
        };
        writeln!(
            out,
            "{} {scope} {what} {}",
            stored.fingerprint,
            quote_path(stored.path.as_os_str().as_encoded_bytes())
        )?;
    }
    Ok(())
}
