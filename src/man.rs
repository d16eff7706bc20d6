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
    #[arg(value_parser = parse_page)]
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
        "acido-pull",
        Some("pull"),
        "1",
        include_str!("../man/prose/acido-pull.roff"),
    ),
    (
        "acido-push",
        Some("push"),
        "1",
        include_str!("../man/prose/acido-push.roff"),
    ),
    (
        "acido-trust",
        Some("trust"),
        "1",
        include_str!("../man/prose/acido-trust.roff"),
    ),
    (
        "acido-completions",
        Some("completions"),
        "1",
        include_str!("../man/prose/acido-completions.roff"),
    ),
    (
        "acido-fetch",
        Some("fetch"),
        "1",
        include_str!("../man/prose/acido-fetch.roff"),
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
            let mut root = root;
            root.build();
            let usage = synopsis(&root);
            let man = man_for(root, page, section);
            man.render_title(&mut out)?;
            man.render_name_section(&mut out)?;
            out.write_all(usage.as_bytes())?;
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
            let usage = synopsis(&cmd);
            let man = man_for(cmd, page, section);
            man.render_title(&mut out)?;
            man.render_name_section(&mut out)?;
            out.write_all(usage.as_bytes())?;
            out.write_all(before.as_bytes())?;
            man.render_options_section(&mut out)?;
        }
    }
    out.write_all(after.as_bytes())?;
    Ok(out)
}

/// The SYNOPSIS section: every visible option with its value name
/// (`[--store DIR]`, `[--abbrev[=N]]`), required ones without brackets,
/// repeatable ones with `...`, then the operands. clap_mangen's own
/// leaves the value names out.
fn synopsis(cmd: &clap::Command) -> String {
    let escape = |text: &str| text.replace('\\', "\\e").replace('-', "\\-");
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut line = format!("\\fB{}\\fR", escape(name));
    let value_names = |arg: &clap::Arg| -> String {
        // A closed set is shown as its choices (`xz|gzip|bzip2|none`).
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("\\fB{}\\fR", escape(v.get_name())))
            .collect();
        if !choices.is_empty() {
            return choices.join("|");
        }
        // Without a value name clap shows the id in capitals (`<A>`).
        let names = arg
            .get_value_names()
            .map(|names| names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|| vec![arg.get_id().as_str().to_uppercase()]);
        names
            .iter()
            .map(|n| format!("\\fI{}\\fR", escape(n)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || arg.is_positional() {
            continue;
        }
        let mut item = match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => {
                format!("\\fB\\-{short}\\fR|\\fB\\-\\-{}\\fR", escape(long))
            }
            (Some(short), None) => format!("\\fB\\-{short}\\fR"),
            (None, Some(long)) => format!("\\fB\\-\\-{}\\fR", escape(long)),
            (None, None) => continue,
        };
        let range = arg.get_num_args().unwrap_or_default();
        if range.takes_values() {
            let values = value_names(arg);
            let separator = if arg.is_require_equals_set() {
                "="
            } else {
                " "
            };
            if range.min_values() == 0 {
                item.push_str(&format!("[{separator}{values}]"));
            } else {
                item.push_str(&format!("{separator}{values}"));
            }
        }
        let repeatable = matches!(
            arg.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        );
        line.push(' ');
        if arg.is_required_set() {
            line.push_str(&item);
        } else {
            line.push_str(&format!("[{item}]"));
        }
        if repeatable {
            line.push_str("...");
        }
    }
    for arg in cmd.get_positionals() {
        if arg.is_hide_set() {
            continue;
        }
        let mut item = value_names(arg);
        if arg.get_num_args().is_some_and(|r| r.max_values() > 1) {
            item.push_str("...");
        }
        line.push(' ');
        if arg.is_required_set() {
            line.push_str(&item);
        } else {
            line.push_str(&format!("[{item}]"));
        }
    }
    if cmd.has_subcommands() {
        line.push_str(" \\fICOMMAND\\fR [\\fIARGS\\fR]");
    }
    format!(".SH SYNOPSIS\n{line}\n")
}

fn man_for(cmd: clap::Command, page: &str, section: &str) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .title(page.to_uppercase())
        .section(section)
        .source(format!("acido {}", env!("CARGO_PKG_VERSION")))
        .manual("acido manual")
}

/// The page a `help` operand names: `acido` (or nothing) for acido(1), a
/// command (`import`, or `acido-import`), `store` for acido-store(5),
/// `build.5` for acido-build(5).
fn page_name(operand: &str) -> String {
    match operand {
        "acido" => "acido".to_owned(),
        name if name.starts_with("acido-") => name.to_owned(),
        name => format!("acido-{name}"),
    }
}

/// Checks a `help` operand while parsing, so an unknown page is a usage
/// error (exit 129); yields the page's name.
fn parse_page(operand: &str) -> Result<String, String> {
    let page = page_name(operand);
    if PAGES.iter().any(|(name, ..)| *name == page) {
        Ok(page)
    } else {
        Err(format!(
            "no manual page {page} (run 'acido --help' for the commands)"
        ))
    }
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
    let page = args.command.unwrap_or_else(|| "acido".to_owned());
    let roff = render(&page)?;
    if args.roff {
        out.write_all(&roff)?;
    } else if io::stdout().is_terminal() {
        if !show_with_man(&roff) {
            out.write_all(fallback_text(&page, &roff)?.as_bytes())?;
        }
    } else {
        // Like `git help` into a pipe: the page as man formats it for a
        // file, or, without a working man, the same content as text.
        match format_with_man(&roff) {
            Some(text) => out.write_all(&text)?,
            None => out.write_all(fallback_text(&page, &roff)?.as_bytes())?,
        }
    }
    output::finish(out)?;
    Ok(Outcome::Success)
}

/// Shows the page through `man -l -` on the terminal (its pager and
/// all); false when `man` could not be run or failed.
fn show_with_man(roff: &[u8]) -> bool {
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

/// The page as `man -l -` formats it when its output is not a terminal
/// (plain text, no pager); `None` when `man` is missing or fails, so the
/// caller can fall back without having printed half a page.
fn format_with_man(roff: &[u8]) -> Option<Vec<u8>> {
    let mut child = Process::new("man")
        .args(["-l", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = roff.to_vec();
    // Fed from a thread: man may start writing before it has read all.
    let feeder = std::thread::spawn(move || stdin.write_all(&input).is_ok());
    let output = child.wait_with_output().ok()?;
    let fed = feeder.join().unwrap_or(false);
    (fed && output.status.success() && !output.stdout.is_empty()).then_some(output.stdout)
}

/// The page without `man`: a command's (or acido's) long help from the
/// same definitions the page's OPTIONS come from; the file format pages,
/// which have no command, as their roff reduced to text.
fn fallback_text(page: &str, roff: &[u8]) -> anyhow::Result<String> {
    let sub = PAGES
        .iter()
        .find(|(name, ..)| *name == page)
        .and_then(|&(_, sub, ..)| sub);
    let mut root = Cli::command();
    root.build();
    let help = match sub {
        Some(sub) => root
            .find_subcommand_mut(sub)
            .with_context(|| format!("{sub}: no such command"))?
            .render_long_help(),
        None if page == "acido" => root.render_long_help(),
        None => return Ok(roff_to_text(&String::from_utf8_lossy(roff))),
    };
    Ok(help.to_string())
}

/// A rough plain-text reading of roff, for when `man` is missing:
/// requests become headings or blank lines, font and glyph escapes their
/// letters. Good enough to read; `man` does it properly.
fn roff_to_text(roff: &str) -> String {
    let mut text = String::with_capacity(roff.len());
    for line in roff.lines() {
        if let Some(request) = line.strip_prefix('.') {
            let (name, rest) = request.split_once(' ').unwrap_or((request, ""));
            match name {
                "SH" => {
                    text.push('\n');
                    text.push_str(&unescape(rest.trim_matches('"')));
                    text.push('\n');
                }
                "SS" => {
                    text.push('\n');
                    text.push_str("  ");
                    text.push_str(&unescape(rest.trim_matches('"')));
                    text.push('\n');
                }
                "PP" | "TP" | "IP" | "LP" | "P" => text.push('\n'),
                "B" | "I" => {
                    text.push_str("       ");
                    text.push_str(&unescape(rest));
                    text.push('\n');
                }
                // Titles, comments, string definitions, fill modes.
                _ => {}
            }
            continue;
        }
        text.push_str("       ");
        text.push_str(&unescape(line));
        text.push('\n');
    }
    text
}

/// Replaces the roff escapes our pages use with what they print.
fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // \fB, \fI, \fR, \fP: font changes print nothing.
            Some('f') => {
                chars.next();
            }
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some('&') | Some('c') => {}
            // \(xx: a two-letter glyph name.
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                out.push_str(match name.as_str() {
                    "bu" => "*",
                    "aq" => "'",
                    "dq" => "\"",
                    "em" | "en" => "-",
                    _ => "?",
                });
            }
            // \*(Aq and \*X: the strings our pages define are quotes.
            Some('*') => {
                if chars.next() == Some('(') {
                    chars.next();
                    chars.next();
                }
                out.push('\'');
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_reads_as_text() {
        let text = roff_to_text(
            ".TH ACIDO-STORE 5\n.SH NAME\nacido\\-store \\- the \\fBstore\\fR\n.PP\n\\(bu \\*(Aqx\\*(Aq \\e\n",
        );
        assert_eq!(
            text,
            "\nNAME\n       acido-store - the store\n\n       * 'x' \\\n"
        );
    }

    #[test]
    fn help_operands_name_pages() {
        assert_eq!(parse_page("import").as_deref(), Ok("acido-import"));
        assert_eq!(parse_page("acido-import").as_deref(), Ok("acido-import"));
        assert_eq!(parse_page("acido").as_deref(), Ok("acido"));
        assert_eq!(parse_page("store").as_deref(), Ok("acido-store"));
        assert_eq!(parse_page("build.5").as_deref(), Ok("acido-build.5"));
        assert!(parse_page("no-such-command").is_err());
    }
}
