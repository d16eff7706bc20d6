//! Manual pages: option lists generated from the clap definitions
//! (`clap_mangen`), prose written by us in `man/prose/*.roff`. The pages
//! in `man/` are the output of [`render`]; `tests/man.rs` fails when one
//! is stale or missing. `acido help CMD` shows a page.

use std::io::{self, IsTerminal, Write};
use std::process::{Command as Process, Stdio};

use anyhow::Context as _;
use clap::Args;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::{self, Outcome};

/// Arguments of `acido help`.
#[derive(Debug, Args)]
pub struct HelpArgs {
    /// Print the page's roff source instead of showing it
    #[arg(long)]
    pub roff: bool,
    /// List the names of all manual pages
    #[arg(long, hide = true)]
    pub pages: bool,
    /// The command (or 'store' for the store's file format)
    pub command: Option<String>,
}

/// Page name, subcommand name (None: not a command page), section, prose.
const PAGES: &[(&str, Option<&str>, &str, &str)] = &[
    ("acido", None, "1", include_str!("../man/prose/acido.roff")),
    (
        "acido-store",
        None,
        "5",
        include_str!("../man/prose/acido-store.roff"),
    ),
    (
        "acido-build.5",
        None,
        "5",
        include_str!("../man/prose/acido-build.5.roff"),
    ),
    (
        "acido-hash-object",
        Some("hash-object"),
        "1",
        include_str!("../man/prose/acido-hash-object.roff"),
    ),
    (
        "acido-cat-manifest",
        Some("cat-manifest"),
        "1",
        include_str!("../man/prose/acido-cat-manifest.roff"),
    ),
    (
        "acido-ls-tree",
        Some("ls-tree"),
        "1",
        include_str!("../man/prose/acido-ls-tree.roff"),
    ),
    (
        "acido-resolve",
        Some("resolve"),
        "1",
        include_str!("../man/prose/acido-resolve.roff"),
    ),
    (
        "acido-validate",
        Some("validate"),
        "1",
        include_str!("../man/prose/acido-validate.roff"),
    ),
    (
        "acido-pack-aci",
        Some("pack-aci"),
        "1",
        include_str!("../man/prose/acido-pack-aci.roff"),
    ),
    (
        "acido-render-tree",
        Some("render-tree"),
        "1",
        include_str!("../man/prose/acido-render-tree.roff"),
    ),
    (
        "acido-import",
        Some("import"),
        "1",
        include_str!("../man/prose/acido-import.roff"),
    ),
    (
        "acido-images",
        Some("images"),
        "1",
        include_str!("../man/prose/acido-images.roff"),
    ),
    (
        "acido-rm",
        Some("rm"),
        "1",
        include_str!("../man/prose/acido-rm.roff"),
    ),
    (
        "acido-gc",
        Some("gc"),
        "1",
        include_str!("../man/prose/acido-gc.roff"),
    ),
    (
        "acido-export",
        Some("export"),
        "1",
        include_str!("../man/prose/acido-export.roff"),
    ),
    (
        "acido-fsck",
        Some("fsck"),
        "1",
        include_str!("../man/prose/acido-fsck.roff"),
    ),
    (
        "acido-extract",
        Some("extract"),
        "1",
        include_str!("../man/prose/acido-extract.roff"),
    ),
    (
        "acido-diff-tree",
        Some("diff-tree"),
        "1",
        include_str!("../man/prose/acido-diff-tree.roff"),
    ),
    (
        "acido-startbuild",
        Some("startbuild"),
        "1",
        include_str!("../man/prose/acido-startbuild.roff"),
    ),
    (
        "acido-build",
        Some("build"),
        "1",
        include_str!("../man/prose/acido-build.roff"),
    ),
    (
        "acido-endbuild",
        Some("endbuild"),
        "1",
        include_str!("../man/prose/acido-endbuild.roff"),
    ),
    (
        "acido-run",
        Some("run"),
        "1",
        include_str!("../man/prose/acido-run.roff"),
    ),
    (
        "acido-copy",
        Some("copy"),
        "1",
        include_str!("../man/prose/acido-copy.roff"),
    ),
    (
        "acido-add",
        Some("add"),
        "1",
        include_str!("../man/prose/acido-add.roff"),
    ),
    (
        "acido-verify",
        Some("verify"),
        "1",
        include_str!("../man/prose/acido-verify.roff"),
    ),
    (
        "acido-trust",
        Some("trust"),
        "1",
        include_str!("../man/prose/acido-trust.roff"),
    ),
    (
        "acido-help",
        Some("help"),
        "1",
        include_str!("../man/prose/acido-help.roff"),
    ),
];

/// The marker line in a prose file where the generated OPTIONS go.
const OPTIONS_MARKER: &str = ".\\\" OPTIONS\n";

/// Renders the page `name` (e.g. `acido-import`) as roff.
pub fn render(name: &str) -> anyhow::Result<Vec<u8>> {
    let &(page, sub, section, prose) = PAGES
        .iter()
        .find(|(page, ..)| *page == name)
        .with_context(|| format!("{name}: no such manual page"))?;
    let (before, after) = prose.split_once(OPTIONS_MARKER).unwrap_or((prose, ""));
    let mut out = Vec::new();
    let root = Cli::command();
    match sub {
        None if section == "5" => {
            writeln!(
                out,
                ".TH {} {section} \"\" \"acido {}\"",
                // `acido-build.5` is the page; its title is `ACIDO-BUILD`.
                page.trim_end_matches(".5").to_uppercase(),
                env!("CARGO_PKG_VERSION")
            )?;
            out.write_all(before.as_bytes())?;
        }
        None => {
            let man = man_for(root, page, section);
            man.render_title(&mut out)?;
            man.render_name_section(&mut out)?;
            man.render_synopsis_section(&mut out)?;
            out.write_all(before.as_bytes())?;
            man.render_options_section(&mut out)?;
            man.render_subcommands_section(&mut out)?;
        }
        Some(sub) => {
            let mut root = root;
            root.build();
            let cmd = root
                .find_subcommand(sub)
                .with_context(|| format!("{sub}: no such command"))?
                .clone()
                .name(page);
            let man = man_for(cmd, page, section);
            man.render_title(&mut out)?;
            man.render_name_section(&mut out)?;
            man.render_synopsis_section(&mut out)?;
            out.write_all(before.as_bytes())?;
            man.render_options_section(&mut out)?;
        }
    }
    out.write_all(after.as_bytes())?;
    Ok(out)
}

fn man_for(cmd: clap::Command, page: &str, section: &str) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .title(page.to_uppercase())
        .section(section)
        .source(format!("acido {}", env!("CARGO_PKG_VERSION")))
        .manual("acido manual")
}

/// `acido help [--roff] [COMMAND]`.
pub fn help(args: HelpArgs) -> anyhow::Result<Outcome> {
    let mut out = output::stdout();
    if args.pages {
        for (page, ..) in PAGES {
            writeln!(out, "{page}")?;
        }
        output::finish(out)?;
        return Ok(Outcome::Success);
    }
    let name = match args.command.as_deref() {
        None | Some("acido") => "acido".to_owned(),
        Some(cmd) if cmd.starts_with("acido-") => cmd.to_owned(),
        Some(cmd) => format!("acido-{cmd}"),
    };
    let roff = render(&name)?;
    if args.roff || !show_with_man(&roff) {
        out.write_all(&roff)?;
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}

/// Shows the page through `man -l -` when stdout is a terminal and `man`
/// is installed; false when it could not.
fn show_with_man(roff: &[u8]) -> bool {
    if !io::stdout().is_terminal() {
        return false;
    }
    let Ok(mut child) = Process::new("man")
        .args(["-l", "-"])
        .stdin(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    let fed = child
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(roff).is_ok());
    child.wait().is_ok_and(|status| status.success()) && fed
}
