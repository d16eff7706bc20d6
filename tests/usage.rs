//! The command line's consistency (issue 15, items 3-6 and 9): usage
//! errors exit 129, messages that say what is wrong, `--abbrev=N` taken
//! git's way, `--help` of every command, `acido help` into a pipe, and
//! progress on a terminal only. Each run is pinned by an insta snapshot
//! (argv, exit code, stdout, stderr; temp paths and ids redacted).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{manifest, Env};
use insta::assert_snapshot;

/// The subcommands `acido --help` lists.
fn commands(env: &Env) -> Vec<String> {
    let help = env.run(["--help"]).ok();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Wrapped descriptions continue on lines indented further.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_help_is_pinned() {
    let env = Env::new();
    assert_snapshot!("help_acido", env.snap(&env.run(["--help"])));
    let commands = commands(&env);
    assert!(commands.len() >= 20, "commands: {commands:?}");
    for command in &commands {
        let run = env.run([command.as_str(), "--help"]);
        assert_eq!(run.code(), 0, "{command} --help: {}", run.stderr());
        assert_snapshot!(format!("help_{command}"), env.snap(&run));
    }
}

#[test]
fn usage_errors_exit_129() {
    let env = Env::new();
    let tree = env.layout("tree", &manifest("example.com/t", ""), &[("a", "a")]);
    fs::write(env.path("Acidofile"), "FROM scratch\nNAME example.com/f\n").unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("hash_object_no_input", &["hash-object"]),
        (
            "copy_chmod_symbolic",
            &["copy", "--chmod", "u+x", "a", "tree:/"],
        ),
        (
            "copy_chown_name",
            &["copy", "--chown", "root", "a", "tree:/"],
        ),
        ("copy_no_colon", &["copy", "a", "tree"]),
        (
            "add_chmod_symbolic",
            &["add", "--chmod", "u+x", "a", "tree:/"],
        ),
        (
            "diff_filter_letter",
            &["diff-tree", "--diff-filter=AX", "tree", "tree"],
        ),
        ("build_no_output", &["build", "tree"]),
        ("build_file_no_output", &["build", "-f", "Acidofile"]),
        ("help_no_such_command", &["help", "no-such-command"]),
        (
            "resolve_abbrev_zero",
            &["resolve", "--abbrev=0", "example.com/t"],
        ),
        ("images_abbrev_separate_value", &["images", "--abbrev", "8"]),
    ];
    for (name, args) in cases {
        let run = env.run(*args);
        assert_eq!(run.code(), 129, "{args:?}: {}", run.stderr());
        assert_snapshot!(format!("usage_{name}"), env.snap(&run));
    }
    // Nothing was written: the tree is as it was, no output appeared.
    assert_eq!(common::names(&tree.join("rootfs")), ["a"]);
    assert!(!env.store().exists());
}

#[test]
fn a_store_path_that_is_a_file_is_named_as_such() {
    let env = Env::new();
    fs::write(env.path("afile"), "not a store\n").unwrap();
    for args in [
        &["--store", "afile", "images"][..],
        &["--store", "afile", "resolve", "sha512-e1"],
        &["--store", "afile/below", "fsck"],
        &["--store", "afile", "gc"],
    ] {
        let run = env.run(args);
        assert_eq!(run.code(), 128, "{args:?}");
        assert_snapshot!(format!("store_not_a_directory_{}", args[2]), env.snap(&run));
    }
    let layout = env.layout("l", &manifest("example.com/x", ""), &[("a", "a")]);
    env.pack(&layout, "x.aci", "none");
    let run = env.run(["--store", "afile", "import", "x.aci"]);
    assert_eq!(run.code(), 128);
    assert_snapshot!("store_not_a_directory_import", env.snap(&run));
    assert_eq!(
        fs::read_to_string(env.path("afile")).unwrap(),
        "not a store\n"
    );
}

#[test]
fn diff_tree_names_an_operand_that_is_neither_a_directory_nor_an_image() {
    let env = Env::new();
    env.layout("tree", &manifest("example.com/t", ""), &[("a", "a")]);
    let run = env.run(["diff-tree", "tree", "nosuchdir"]);
    assert_eq!(run.code(), 128);
    assert_snapshot!("diff_tree_nosuchdir", env.snap(&run));
    // Other naming errors keep their own message.
    let run = env.run(["diff-tree", "tree", "sha512-zz"]);
    assert_eq!(run.code(), 128);
    assert_snapshot!("diff_tree_bad_id", env.snap(&run));
}

#[test]
fn counts_are_singular_for_one() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/one", ""), &[("a", "a")]);
    env.pack(&layout, "one.aci", "none");
    env.run(["import", "one.aci"]).ok();
    let run = env.run(["extract", "example.com/one", "out"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_snapshot!("extract_one_image", env.snap(&run));
    // One file of one byte.
    let run = env.run(["build", "--compression", "none", "l", "again.aci"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_snapshot!("build_no_dependencies", env.snap(&run));
}

#[test]
fn building_an_image_named_like_a_stored_one_warns_with_the_older_id() {
    let env = Env::new();
    let labels = r#","labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"}]"#;
    let old = env.layout("old", &manifest("example.com/app", labels), &[("v", "1")]);
    env.pack(&old, "old.aci", "none");
    let old_id = env.run(["import", "old.aci"]).ok().trim().to_owned();
    // The same labels in another order name the same image.
    let reordered = r#","labels":[{"name":"os","value":"linux"},{"name":"version","value":"1.0"}]"#;
    env.layout(
        "new",
        &manifest("example.com/app", reordered),
        &[("v", "2")],
    );
    let run = env.run(["build", "--compression", "none", "new", "new.aci"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains(&old_id), "{}", run.stderr());
    assert_snapshot!("build_same_name_not_imported", env.snap(&run));
    let run = env.run(["build", "--import", "new"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains(&old_id), "{}", run.stderr());
    assert_snapshot!("build_same_name_imported", env.snap(&run));
    let new_id = run.stdout().trim().to_owned();
    assert_eq!(env.run(["resolve", "example.com/app"]).ok().trim(), new_id);
    // -q silences the warning; another label set is another image.
    fs::write(env.path("new/rootfs/v"), "3").unwrap();
    let run = env.run(["-q", "build", "--import", "new"]);
    assert_eq!(run.stderr(), "");
    env.layout(
        "other",
        &manifest("example.com/app", &labels.replace("1.0", "2.0")),
        &[],
    );
    let run = env.run(["build", "--import", "other"]);
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
}

#[test]
fn abbrev_takes_its_value_only_after_an_equals_sign() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/x", ""), &[("a", "a")]);
    let id = env.pack(&layout, "x.aci", "none");
    env.run(["import", "x.aci"]).ok();
    let prefix = &id[..9];
    // A bare --abbrev keeps 64 digits and leaves the next word an IMAGE.
    let run = env.run(["resolve", "--abbrev", prefix]);
    assert_eq!(run.ok().trim(), &id[..7 + 64]);
    let run = env.run(["resolve", "--abbrev=10", prefix]);
    assert_eq!(run.ok().trim(), &id[..7 + 10]);
    let run = env.run(["images", "--abbrev"]);
    assert!(run.ok().contains(&id[..7 + 12]));
    assert_snapshot!(
        "resolve_bare_abbrev",
        env.snap(&env.run(["resolve", "--abbrev", prefix, "example.com/x"]))
    );
}

#[test]
fn limit_help_names_every_limit() {
    let env = Env::new();
    let help = env.run(["--help"]).ok();
    for name in [
        "size",
        "entries",
        "path-length",
        "link-length",
        "extended-header",
        "manifest-size",
        "json-depth",
        "whitelist-length",
        "dependency-depth",
        "dependency-count",
    ] {
        assert!(help.contains(name), "--limit help omits {name}:\n{help}");
    }
}

/// Whether `man` can run here; under CI its absence fails the test.
fn have_man(check: &str) -> bool {
    let ok = Command::new("man")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !common::conformance::under_ci(),
            "{check}: man(1) is missing; CI installs man-db (.ci/run)"
        );
        eprintln!("skipped: {check}: man(1) is not installed");
    }
    ok
}

#[test]
fn help_into_a_pipe_prints_text() {
    let env = Env::new();
    if have_man("help_into_a_pipe_prints_text") {
        let run = env.run(["help", "gc"]);
        let page = run.ok();
        assert!(!page.contains(".SH"), "roff in the output:\n{page}");
        assert!(page.contains("NAME"), "{page}");
        assert!(page.contains("Delete leftover temp files"), "{page}");
        assert!(page.contains("--store DIR"), "{page}");
        let page = env.run(["help", "store"]).ok();
        assert!(page.contains("blobs/sha512/"), "{page}");
    }
    // --roff still prints the source.
    let roff = env.run(["help", "--roff", "gc"]).ok();
    assert!(roff.contains(".SH DESCRIPTION"), "{roff}");
}

#[test]
fn help_without_man_falls_back_to_the_long_help() {
    let env = Env::new();
    let run = |args: &[&str]| {
        let output = env
            .command()
            .args(args)
            // An empty PATH: no man to be found.
            .env("PATH", env.path("no-tools"))
            .output()
            .expect("run acido");
        common::Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            output,
        }
    };
    let gc = run(&["help", "gc"]);
    assert_eq!(gc.code(), 0, "{}", gc.stderr());
    // clap's long help: the same options, each described below its name.
    let text = gc.stdout();
    assert!(text.starts_with("Delete leftover temp files"), "{text}");
    assert!(text.contains("Usage: acido gc [OPTIONS]"), "{text}");
    assert!(
        text.contains("\n      --store <DIR>\n          Use the image store"),
        "{text}"
    );
    let acido = run(&["help"]);
    assert!(acido.stdout().contains("Usage: acido [OPTIONS] <COMMAND>"));
    let store = run(&["help", "store"]);
    assert_snapshot!("help_store_without_man", env.snap(&store));
}

#[test]
fn gc_prints_its_summary_on_stderr_like_fsck() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/x", ""), &[("a", "a")]);
    env.pack(&layout, "x.aci", "none");
    env.run(["import", "x.aci"]).ok();
    fs::write(env.store().join("tmp/import-leftover"), "x").unwrap();
    let gc = env.run(["gc"]);
    assert_snapshot!("gc_summary_on_stderr", env.snap(&gc));
    let fsck = env.run(["fsck"]);
    assert_snapshot!("fsck_summary_on_stderr", env.snap(&fsck));
    let quiet = env.run(["-q", "gc"]);
    assert_eq!((quiet.code(), quiet.stderr().as_str()), (0, ""));
}

/// Runs `acido ARGS` (words, no quoting needed) on a pseudo-terminal made
/// by `script` (util-linux); returns what the terminal showed.
fn on_tty(env: &Env, args: &str) -> String {
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_acido"));
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(env.path(""))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("TMPDIR", env.path("tmp"))
        .env("TERM", "dumb")
        .env("LC_ALL", "C")
        .env("ACIDO_STORE", env.store())
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    assert!(output.status.success(), "acido {args} failed on a tty");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn pack_and_build_show_progress_on_a_terminal_only() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/p", ""), &[]);
    fs::write(layout.join("rootfs/big"), vec![1u8; 3 << 20]).unwrap();
    let tty = on_tty(&env, "pack-aci --compression none -o a.aci l");
    assert!(tty.contains("packing l"), "{tty:?}");
    assert!(tty.contains("B/s"), "no rate shown: {tty:?}");
    let tty = on_tty(&env, "-q pack-aci --compression none -o b.aci l");
    assert!(!tty.contains("packing"), "{tty:?}");
    let tty = on_tty(&env, "build --compression none l c.aci");
    assert!(tty.contains("B/s"), "no rate shown: {tty:?}");
    let tty = on_tty(&env, "-q build --compression none --overwrite l c.aci");
    assert!(!tty.contains("B/s"), "{tty:?}");
    // Not a terminal: stderr holds no bar (pack-aci: nothing at all).
    let run = env.run(["pack-aci", "--compression", "none", "-o", "d.aci", "l"]);
    assert_eq!((run.code(), run.stderr().as_str()), (0, ""));
    let run = env.run(["build", "--compression", "none", "l", "e.aci"]);
    assert!(!run.stderr().contains("B/s"), "{}", run.stderr());
    assert!(Path::new(&env.path("e.aci")).is_file());
}
