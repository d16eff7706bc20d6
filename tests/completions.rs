//! `acido completions` (issue 15, item 8): the generated scripts load in
//! the real shells, and Tab on an IMAGE argument offers the stored names
//! and ids, read from the image records alone.
//!
//! bash is always there; zsh and fish are installed by `.ci/run`. Without
//! them their checks are skipped with a printed reason locally and fail
//! under CI (`CI` set).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Env;

/// A store holding one image, `example.com/base`; returns its id.
fn store_with_base(env: &Env) -> String {
    let layout = env.layout(
        "base",
        &common::manifest("example.com/base", ""),
        &[("etc/base", "base\n")],
    );
    let id = env.pack(&layout, "base.aci", "none");
    env.run(["import", "base.aci"]).ok();
    id
}

/// Writes `acido completions SHELL` to a file and returns its path.
fn script(env: &Env, shell: &str) -> PathBuf {
    let run = env.run(["completions", shell]);
    let text = run.ok();
    assert!(!text.is_empty(), "{shell}: empty script");
    assert!(run.stderr().is_empty(), "{shell}: {}", run.stderr());
    let path = env.path(&format!("completion.{shell}"));
    fs::write(&path, text).unwrap();
    path
}

/// Runs `shell -c code` with the sandbox's environment and the acido under
/// test first on PATH, as `acido` (the name the scripts complete).
fn shell(env: &Env, shell: &str, args: &[&str], code: &str) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_acido")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(shell)
        .args(args)
        .arg("-c")
        .arg(code)
        .current_dir(env.dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", env.path("home"))
        .env("TMPDIR", env.path("tmp"))
        .env("LC_ALL", "C")
        .env("ACIDO_STORE", env.store())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"))
}

fn stdout_ok(shell: &str, out: &Output) -> String {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{shell} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `tool` is installed; when not, says so (panics under CI).
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if common::conformance::under_ci() {
            panic!("{tool} is missing: CI must install it (.ci/run)");
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: {tool} completion checks: {tool} is not installed");
        }
    }
    found
}

/// Completes the line `words` (the last one under the cursor) with the
/// function the bash script registered for `acido`, printing one reply per
/// line after a `== label` line.
fn bash_case(label: &str, words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    format!(
        "echo '== {label}'\n\
         COMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMPREPLY=()\n\
         COMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         \"$fn\" acido '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        line = words.join(" "),
        cur = words[cword],
    )
}

/// The replies of each `== label` section.
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(label) = line.strip_prefix("== ") {
            out.push((label.to_owned(), Vec::new()));
        } else if let Some((_, replies)) = out.last_mut() {
            if !line.is_empty() {
                replies.push(line.to_owned());
            }
        }
    }
    out
}

#[test]
fn bash_completes_image_arguments_from_the_store() {
    let env = Env::new();
    let id = store_with_base(&env);
    let short = &id[..19];
    let script = script(&env, "bash");

    // Completion must not read blobs: hide them all. Names and ids still
    // come from the image records.
    fs::rename(env.store().join("blobs"), env.path("blobs-away")).unwrap();

    let other_store = env.path("empty-store");
    let other = other_store.to_str().unwrap();
    let mut code = format!(
        "set -u\nsource '{}'\n\
         fn=$(complete -p acido | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')\n\
         [ -n \"$fn\" ] || {{ echo 'no function registered for acido' >&2; exit 1; }}\n",
        script.display()
    );
    let cases: [(&str, &[&str]); 8] = [
        ("ls-tree, nothing typed", &["acido", "ls-tree", ""]),
        (
            "ls-tree, a name prefix",
            &["acido", "ls-tree", "--long", "exa"],
        ),
        ("rm, an id prefix", &["acido", "rm", "x", &id[..10]]),
        ("a full id", &["acido", "export", &id]),
        ("another store", &["acido", "--store", other, "extract", ""]),
        (
            "render-tree DIR",
            &["acido", "render-tree", "example.com/base", ""],
        ),
        ("the subcommand", &["acido", "ls-t"]),
        ("an option", &["acido", "ls-tree", "--lo"]),
    ];
    for (label, words) in cases {
        code.push_str(&bash_case(label, words));
    }
    let out = shell(&env, "bash", &["--norc", "--noprofile"], &code);
    let got = sections(&stdout_ok("bash", &out));
    let replies = |label: &str| -> Vec<String> {
        got.iter()
            .find(|(l, _)| l == label)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no section {label}: {got:?}"))
    };
    assert_eq!(
        replies("ls-tree, nothing typed"),
        ["example.com/base", short]
    );
    assert_eq!(replies("ls-tree, a name prefix"), ["example.com/base"]);
    assert_eq!(replies("rm, an id prefix"), [short]);
    assert_eq!(replies("a full id"), [id.as_str()]);
    for label in ["another store", "render-tree DIR"] {
        let r = replies(label);
        assert!(
            !r.iter()
                .any(|c| c == "example.com/base" || c.starts_with("sha512-")),
            "{label}: {r:?}"
        );
    }
    // Completing never creates a store.
    assert!(!other_store.exists());
    // The rest is clap's static completion, still in place.
    assert_eq!(replies("the subcommand"), ["ls-tree"]);
    assert_eq!(replies("an option"), ["--long"]);
}

#[test]
fn the_scripts_call_prints_names_and_ids() {
    let env = Env::new();
    store_with_base(&env);
    let run = env.run(["__complete-images", "--", "acido", "cat-manifest", ""]);
    insta::assert_snapshot!("complete_images_call", env.snap(&run));
    // Not an IMAGE: nothing, and success.
    let run = env.run(["__complete-images", "--", "acido", "import", ""]);
    assert_eq!((run.code(), run.stdout()), (0, String::new()));
    // The call is no command: help does not list it.
    assert!(!env.run(["--help"]).ok().contains("complete-images"));
}

#[test]
fn zsh_script_parses_and_its_hook_offers_images() {
    if !have("zsh") {
        return;
    }
    let env = Env::new();
    let id = store_with_base(&env);
    let script = script(&env, "zsh");
    let syntax = Command::new("zsh")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("zsh -n");
    assert!(syntax.status.success(), "{syntax:?}");
    // Installed in fpath as `_acido` (as the package does) and autoloaded
    // by compinit on the first Tab, with compadd replaced by a printer: the
    // wrapper offers the stored image and takes over for acido.
    let fpath_dir = env.path("zsh-functions");
    fs::create_dir_all(&fpath_dir).unwrap();
    fs::copy(&script, fpath_dir.join("_acido")).unwrap();
    let code = format!(
        "fpath=('{fpath}' $fpath)\n\
         autoload -U compinit && compinit -u -d '{dump}'\n\
         [[ $_comps[acido] == _acido ]] || {{ print -u2 \"registered: $_comps[acido]\"; exit 1 }}\n\
         compadd() {{ [[ $1 == -a ]] && print -rl -- \"${{(@P)2}}\" }}\n\
         words=(acido ls-tree ''); CURRENT=3; _acido\n\
         [[ $_comps[acido] == _acido_images ]] || {{ print -u2 \"then: $_comps[acido]\"; exit 1 }}\n\
         print -- '=='\n\
         words=(acido rm {prefix}); CURRENT=3; $_comps[acido]\n",
        fpath = fpath_dir.display(),
        dump = env.path("zcompdump").display(),
        prefix = &id[..10],
    );
    let out = stdout_ok("zsh", &shell(&env, "zsh", &["-f"], &code));
    assert_eq!(
        out,
        format!("example.com/base\n{}\n==\n{}\n", &id[..19], &id[..19])
    );
}

#[test]
fn fish_script_parses_and_completes_images() {
    if !have("fish") {
        return;
    }
    let env = Env::new();
    let id = store_with_base(&env);
    let script = script(&env, "fish");
    let syntax = Command::new("fish")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("fish -n");
    assert!(syntax.status.success(), "{syntax:?}");
    let code = format!(
        "source '{}'\ncomplete -C 'acido ls-tree '\necho ==\ncomplete -C 'acido images '",
        script.display()
    );
    let out = stdout_ok("fish", &shell(&env, "fish", &["--no-config"], &code));
    let (image_arg, no_image_arg) = out.split_once("==\n").expect("two sections");
    let offered: Vec<&str> = image_arg
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(offered.contains(&"example.com/base"), "{out}");
    assert!(offered.contains(&&id[..19]), "{out}");
    assert!(!no_image_arg.contains("example.com/base"), "{out}");
}

#[test]
fn unknown_shells_are_usage_errors() {
    let env = Env::new();
    let run = env.run(["completions", "tcsh"]);
    assert_eq!(run.code(), 129, "{}", run.stderr());
}
