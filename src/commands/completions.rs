//! `acido completions bash|zsh|fish`, and the call the scripts make,
//! `acido __complete-images -- WORD...` (answered before clap parses
//! anything, so that no help or completion lists it).
//!
//! The scripts are clap_complete's static ones (subcommands, options,
//! option values, all from the clap definitions) with a small hook added
//! per shell: on every Tab it runs `acido __complete-images` with the words
//! typed so far. That command walks the words through the same clap
//! definitions to find out whether the last word is an IMAGE argument and,
//! if it is, prints the stored names and ids that fit it (from the image
//! records only, never a blob); otherwise it prints nothing and the static
//! completion applies. clap_complete's own dynamic engine would do this,
//! but only behind its unstable feature.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use acido_porcelain::images;
use anyhow::Context as _;
use clap::builder::ValueHint;
use clap::{Arg, Args, CommandFactory, ValueEnum};

use crate::cli::Cli;
use crate::commands::Context;
use crate::output::{self, Outcome};

/// The shells `acido completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// bash (with or without the bash-completion package)
    Bash,
    /// zsh (through compinit)
    Zsh,
    /// fish
    Fish,
}

/// Arguments of `acido completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The first argument of the scripts' call.
const CALL: &str = "__complete-images";

/// The name the scripts complete: the installed binary's.
const BIN: &str = "acido";

/// Arguments that take an image under another name than IMAGE: diff-tree's
/// trees are a directory or an image.
const IMAGE_OR_DIR_ARGS: &[(&str, &str)] = &[("diff-tree", "a"), ("diff-tree", "b")];

/// Writes the completion script for `args.shell` to stdout.
pub fn run(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let script = script(args.shell)?;
    let mut out = output::stdout();
    out.write_all(script.as_bytes())?;
    output::finish(out)?;
    Ok(Outcome::Success)
}

/// The whole script for `shell`: clap_complete's, then the IMAGE hook.
pub fn script(shell: CompletionShell) -> anyhow::Result<String> {
    let mut cmd = Cli::command();
    let mut generated = Vec::new();
    match shell {
        CompletionShell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, BIN, &mut generated)
        }
        CompletionShell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, BIN, &mut generated)
        }
        CompletionShell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, BIN, &mut generated)
        }
    }
    let generated = String::from_utf8(generated).context("clap_complete wrote non-UTF-8")?;
    Ok(match shell {
        // bash and fish take the last registration, so the hook is added.
        CompletionShell::Bash => format!("{generated}{BASH_HOOK}"),
        CompletionShell::Fish => format!("{generated}{FISH_HOOK}"),
        // zsh's script ends by calling or registering its function; the
        // hook's wrapper takes that place, so the end is replaced.
        CompletionShell::Zsh => {
            let end = generated
                .rfind(ZSH_DISPATCH)
                .context("clap_complete's zsh script no longer ends as expected")?;
            format!("{}{ZSH_HOOK}", &generated[..end])
        }
    })
}

/// The words of the command line being completed when `argv` is the
/// scripts' call, `acido __complete-images -- WORD...`: from the program's
/// name to the word under the cursor (possibly empty). Words that are not
/// UTF-8 cannot match a name or id and are kept lossily.
pub fn words_of_call(argv: impl IntoIterator<Item = OsString>) -> Option<Vec<String>> {
    let mut argv = argv.into_iter().skip(1).peekable();
    if argv.next()? != CALL {
        return None;
    }
    if argv.peek().is_some_and(|w| w == "--") {
        argv.next();
    }
    Some(argv.map(|w| w.to_string_lossy().into_owned()).collect())
}

/// Prints the images that fit the last of `words` when it is an IMAGE
/// argument, one per line; nothing otherwise. The store is the one
/// `--store` names on the line, else the usual one.
pub fn complete_images(words: &[String]) -> anyhow::Result<()> {
    let mut root = Cli::command();
    root.build();
    let Some(word) = ImageWord::find(&root, words) else {
        return Ok(());
    };
    let store = Context::new(word.store, true).store()?;
    let mut out = output::stdout();
    for candidate in images::complete(&store, &word.prefix)? {
        writeln!(out, "{candidate}")?;
    }
    output::finish(out)
}

/// The word under the cursor when it is an IMAGE argument.
#[derive(Debug, PartialEq, Eq)]
struct ImageWord {
    /// What has been typed of it.
    prefix: String,
    /// A `--store DIR` given earlier on the line.
    store: Option<PathBuf>,
}

impl ImageWord {
    /// Walks `words` (program name first, the word under the cursor last)
    /// as clap parses them: options and the values they take, `--`, the
    /// subcommand, then positionals by index. `root` must be built, so that
    /// the global options appear in every subcommand.
    fn find(root: &clap::Command, words: &[String]) -> Option<ImageWord> {
        let (current, before) = words.split_last()?;
        let mut cmd = root;
        let mut in_subcommand = false;
        let mut options_done = false;
        let mut positionals = 0usize;
        let mut pending: Option<&Arg> = None;
        let mut store = None;
        for word in before.iter().skip(1) {
            if let Some(arg) = pending.take() {
                // bash splits `--store=DIR` at `=` into three words.
                if word == "=" {
                    pending = Some(arg);
                    continue;
                }
                if arg.get_id() == "store" {
                    store = Some(expand_home(word));
                }
                continue;
            }
            if !options_done && word == "--" {
                options_done = true;
            } else if let Some(long) = word.strip_prefix("--").filter(|_| !options_done) {
                let (name, value) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (long, None),
                };
                let arg = cmd.get_arguments().find(|a| a.get_long() == Some(name))?;
                if arg.get_action().takes_values() {
                    match value {
                        Some(value) if arg.get_id() == "store" => store = Some(expand_home(value)),
                        Some(_) => {}
                        // `--abbrev=N` style: without `=` it takes no value.
                        None if arg.is_require_equals_set() => {}
                        None => pending = Some(arg),
                    }
                }
            } else if word.len() > 1 && word.starts_with('-') && !options_done {
                // A cluster of short flags: the first that takes a value
                // takes the rest of the word, or the next word.
                for (i, short) in word.char_indices().skip(1) {
                    let arg = cmd.get_arguments().find(|a| a.get_short() == Some(short))?;
                    if arg.get_action().takes_values() {
                        if i + short.len_utf8() == word.len() {
                            pending = Some(arg);
                        }
                        break;
                    }
                }
            } else if !in_subcommand && cmd.has_subcommands() {
                cmd = cmd.find_subcommand(word)?;
                in_subcommand = true;
            } else {
                positionals += 1;
            }
        }
        let arg = match pending {
            Some(arg) => arg,
            None if current.starts_with('-') && !options_done => return None,
            None if !in_subcommand => return None,
            None => {
                let list: Vec<&Arg> = cmd.get_positionals().collect();
                match list.get(positionals) {
                    Some(arg) => *arg,
                    // The last positional may take many values (`rm IMAGE...`).
                    None => list.last().copied().filter(|a| takes_many(a))?,
                }
            }
        };
        takes_image(cmd.get_name(), arg).then(|| ImageWord {
            prefix: current.clone(),
            store,
        })
    }
}

/// Whether `arg` of the subcommand `command` names an image: its value is
/// shown as IMAGE and is not a plain file, or it is a tree that may be one.
fn takes_image(command: &str, arg: &Arg) -> bool {
    let shown_as_image = match arg.get_value_names() {
        Some(names) => names.iter().any(|n| n.as_str() == "IMAGE"),
        None => arg.get_id().as_str().eq_ignore_ascii_case("image"),
    };
    let a_file = matches!(
        arg.get_value_hint(),
        ValueHint::FilePath | ValueHint::AnyPath | ValueHint::DirPath
    );
    (shown_as_image && !a_file) || IMAGE_OR_DIR_ARGS.contains(&(command, arg.get_id().as_str()))
}

fn takes_many(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// `~/x` as the shell would expand it: completion sees the words as typed.
fn expand_home(word: &str) -> PathBuf {
    match (word.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(word),
    }
}

/// Added to clap_complete's bash script: a wrapper that asks acido for
/// images first and leaves the rest to clap's function (`_acido`).
const BASH_HOOK: &str = r#"
# IMAGE arguments: `acido __complete-images` prints the stored names and ids
# that fit the word under the cursor when it is one (read from the image
# records, never a blob), else nothing, and clap's completion applies.
_acido_images() {
    local candidates
    candidates=$("${COMP_WORDS[0]}" __complete-images -- "${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)
    if [[ -n $candidates ]]; then
        mapfile -t COMPREPLY <<<"$candidates"
        return 0
    fi
    _acido "$@"
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _acido_images -o nosort -o bashdefault -o default acido
else
    complete -F _acido_images -o bashdefault -o default acido
fi
"#;

/// Where clap_complete's zsh script calls or registers its function.
const ZSH_DISPATCH: &str = "if [ \"$funcstack[1]\" = \"_acido\" ]; then";

/// Replaces the end of clap_complete's zsh script: the wrapper is what zsh
/// calls for acido, whether the file was autoloaded from `fpath` (as
/// `_acido`) or sourced.
const ZSH_HOOK: &str = r#"# IMAGE arguments: `acido __complete-images` prints the stored names and ids
# that fit the word under the cursor when it is one (read from the image
# records, never a blob), else nothing, and clap's completion applies.
_acido_images() {
    local -a candidates
    candidates=(${(f)"$(${words[1]} __complete-images -- "${(@)words[1,CURRENT]}" 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -a candidates
        return
    fi
    _acido "$@"
}

if [ "$funcstack[1]" = "_acido" ]; then
    compdef _acido_images acido
    _acido_images "$@"
else
    compdef _acido_images acido
fi
"#;

/// Added to clap_complete's fish script: fish merges every matching
/// `complete` line, so this one adds the images when there are any.
const FISH_HOOK: &str = r#"
# IMAGE arguments: `acido __complete-images` prints the stored names and ids
# that fit the word under the cursor when it is one (read from the image
# records, never a blob), else nothing.
function __acido_complete_images
    set -l words (commandline -opc)
    # Quoted, an empty token still counts as the word under the cursor.
    set -l current (commandline -ct)
    $words[1] __complete-images -- $words "$current" 2>/dev/null
end
complete -c acido -a '(__acido_complete_images)'
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn find(line: &[&str]) -> Option<ImageWord> {
        let mut root = Cli::command();
        root.build();
        let words: Vec<String> = line.iter().map(|w| (*w).to_owned()).collect();
        ImageWord::find(&root, &words)
    }

    fn image(prefix: &str) -> Option<ImageWord> {
        Some(ImageWord {
            prefix: prefix.to_owned(),
            store: None,
        })
    }

    #[test]
    fn image_positions_are_found_through_options_and_subcommands() {
        assert_eq!(find(&["acido", "ls-tree", ""]), image(""));
        assert_eq!(find(&["acido", "ls-tree", "--long", "ex"]), image("ex"));
        assert_eq!(find(&["acido", "-q", "cat-manifest", "sha"]), image("sha"));
        assert_eq!(find(&["acido", "rm", "a", "b", ""]), image(""));
        assert_eq!(find(&["acido", "resolve", "--", "-x"]), image("-x"));
        assert_eq!(find(&["acido", "render-tree", ""]), image(""));
        assert_eq!(find(&["acido", "diff-tree", "a", ""]), image(""));
        assert_eq!(
            find(&["acido", "--limit", "size=1G", "extract", ""]),
            image("")
        );
        assert_eq!(
            find(&["acido", "--store", "/s", "export", "e"]),
            Some(ImageWord {
                prefix: "e".to_owned(),
                store: Some(PathBuf::from("/s")),
            })
        );
        assert_eq!(
            find(&["acido", "startbuild", "--store=/t", ""]),
            Some(ImageWord {
                prefix: String::new(),
                store: Some(PathBuf::from("/t")),
            })
        );
        assert_eq!(
            find(&["acido", "--store", "=", "/u", "ls-tree", ""]),
            Some(ImageWord {
                prefix: String::new(),
                store: Some(PathBuf::from("/u")),
            })
        );
    }

    #[test]
    fn other_words_are_left_to_the_static_completion() {
        // The subcommand itself, options, option values, other operands.
        assert_eq!(find(&["acido", ""]), None);
        assert_eq!(find(&["acido", "ls-tree", "--"]), None);
        assert_eq!(find(&["acido", "ls-tree", "-"]), None);
        assert_eq!(find(&["acido", "--store", ""]), None);
        assert_eq!(find(&["acido", "render-tree", "img", ""]), None);
        assert_eq!(find(&["acido", "ls-tree", "img", ""]), None);
        assert_eq!(find(&["acido", "import", ""]), None);
        assert_eq!(find(&["acido", "pack-aci", "-o", ""]), None);
        assert_eq!(find(&["acido", "images", ""]), None);
        assert_eq!(find(&["acido", "no-such-command", ""]), None);
        assert_eq!(find(&["acido", "ls-tree", "--no-such-option", ""]), None);
        // verify's IMAGE is an ACI file, completed as a file.
        assert_eq!(find(&["acido", "verify", ""]), None);
        assert_eq!(find(&[]), None);
    }

    #[test]
    fn only_the_scripts_call_is_answered_early() {
        let argv = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            words_of_call(argv(&["acido", CALL, "--", "acido", "--", ""])),
            Some(vec!["acido".to_owned(), "--".to_owned(), String::new()])
        );
        assert_eq!(words_of_call(argv(&["acido", CALL])), Some(vec![]));
        assert_eq!(words_of_call(argv(&["acido", "images"])), None);
        assert_eq!(words_of_call(argv(&["acido"])), None);
    }

    #[test]
    fn an_option_whose_value_needs_equals_does_not_take_the_next_word() {
        let mut root = clap::Command::new("acido").subcommand(
            clap::Command::new("show")
                .arg(
                    Arg::new("abbrev")
                        .long("abbrev")
                        .num_args(0..=1)
                        .require_equals(true),
                )
                .arg(Arg::new("image").value_name("IMAGE")),
        );
        root.build();
        let words = |line: &[&str]| line.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            ImageWord::find(&root, &words(&["acido", "show", "--abbrev", "ex"])),
            image("ex")
        );
        assert_eq!(
            ImageWord::find(&root, &words(&["acido", "show", "--abbrev=4", "ex"])),
            image("ex")
        );
    }

    #[test]
    fn every_listed_tree_argument_exists() {
        let mut root = Cli::command();
        root.build();
        for (command, id) in IMAGE_OR_DIR_ARGS {
            let sub = root.find_subcommand(command).expect(command);
            assert!(
                sub.get_positionals().any(|a| a.get_id() == *id),
                "{command} has no operand {id}"
            );
        }
    }

    #[test]
    fn every_shell_gets_clap_script_and_hook() {
        for (shell, hook) in [
            (CompletionShell::Bash, "_acido_images"),
            (CompletionShell::Zsh, "compdef _acido_images acido"),
            (CompletionShell::Fish, "__acido_complete_images"),
        ] {
            let text = script(shell).unwrap();
            assert!(text.contains("ls-tree"), "{shell:?}");
            assert!(text.contains(hook), "{shell:?}");
            // The call is in the hook only, never offered as a command.
            let offered = text.lines().filter(|l| l.contains(CALL)).count();
            assert!(offered <= 2, "{shell:?}: {CALL} offered");
        }
    }
}
