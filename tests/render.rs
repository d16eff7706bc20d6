//! CLI tests of `render-tree` and `extract`: snapshots of success and error
//! output, and the hostile fixtures of tests/fixtures/hostile (made by
//! make-hostile.py there): nothing may be created or changed outside the
//! target, whatever the archive or a pre-existing target holds.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{fixtures, manifest, sentinel_work as work, untouched, Env};

fn hostile(name: &str) -> PathBuf {
    fixtures().join("hostile").join(name)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// Two stored images: example.com/base and example.com/app depending on it.
fn base_and_app(env: &Env) {
    let base = env.layout(
        "base",
        &manifest(
            "example.com/base",
            r#","labels":[{"name":"version","value":"1.0"}]"#,
        ),
        &[("etc/passwd", "root\n"), ("bin/sh", "base-sh\n")],
    );
    let app = env.layout(
        "app",
        &manifest(
            "example.com/app",
            r#","dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"1.0"}]}]"#,
        ),
        &[("bin/sh", "app-sh\n"), ("bin/a\tb", "tab\n")],
    );
    env.pack(&base, "base.aci", "none");
    env.pack(&app, "app.aci", "none");
    env.run(["import", "base.aci", "app.aci"]).ok();
}

#[test]
fn render_tree_list_and_tree() {
    let env = Env::new();
    base_and_app(&env);
    let list = env.run(["render-tree", "--list", "example.com/app"]);
    insta::assert_snapshot!(env.snap(&list));
    let nul = env.run(["render-tree", "--list", "-z", "example.com/app"]);
    assert_eq!(nul.code(), 0);
    assert_eq!(nul.output.stdout.iter().filter(|&&b| b == 0).count(), 7);
    assert!(nul.stdout().contains("rootfs/bin/a\tb\0"));
    let run = env.run(["render-tree", "example.com/app", "out"]);
    insta::assert_snapshot!(env.snap(&run));
    assert_eq!(
        fs::read_to_string(env.path("out/rootfs/bin/sh")).unwrap(),
        "app-sh\n"
    );
    assert_eq!(
        fs::read_to_string(env.path("out/rootfs/etc/passwd")).unwrap(),
        "root\n"
    );
    // An .aci file as IMAGE takes its dependencies from the store.
    let run = env.run(["render-tree", "app.aci", "out2"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    for file in [
        "manifest",
        "rootfs/bin/sh",
        "rootfs/etc/passwd",
        "rootfs/bin/a\tb",
    ] {
        assert_eq!(
            fs::read(env.path("out").join(file)).unwrap(),
            fs::read(env.path("out2").join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn extract_prints_a_summary() {
    let env = Env::new();
    base_and_app(&env);
    let run = env.run(["extract", "example.com/app", "out"]);
    insta::assert_snapshot!(env.snap(&run));
    assert!(env.path("out/rootfs/bin/sh").is_file());
}

#[test]
fn render_tree_errors() {
    let env = Env::new();
    let app = env.layout(
        "app",
        &manifest(
            "example.com/app",
            r#","dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"1.0"}]}]"#,
        ),
        &[("a", "a\n")],
    );
    env.pack(&app, "app.aci", "none");
    env.run(["import", "app.aci"]).ok();
    let missing = env.run(["render-tree", "example.com/app", "out"]);
    insta::assert_snapshot!("missing_dependency", env.snap(&missing));
    assert!(!env.path("out").exists());
    let extract = env.run(["extract", "example.com/app", "out"]);
    assert_eq!(extract.code(), 128);
    assert!(!env.path("out").exists());
    let usage = env.run(["render-tree", "example.com/app"]);
    assert_eq!(usage.code(), 129);
    let usage = env.run(["render-tree", "-z", "example.com/app", "out"]);
    assert_eq!(usage.code(), 129);
}

#[test]
fn hostile_names_outside_the_root_are_refused() {
    for fixture in [
        "dotdot-name.aci",
        "absolute-name.aci",
        "hardlink-outside.aci",
    ] {
        let env = Env::new();
        let work = work(&env);
        let run = env.run([
            "render-tree",
            hostile(fixture).to_str().unwrap(),
            "work/out",
        ]);
        insta::assert_snapshot!(
            fixture,
            env.snap(&run)
                .replace(&fixtures().display().to_string(), "[FIXTURES]")
        );
        assert_eq!(run.code(), 128);
        assert!(!work.join("out").exists());
        untouched(&work);
        // Importing them fails the same way.
        assert_eq!(
            env.run(["import", hostile(fixture).to_str().unwrap()])
                .code(),
            128
        );
    }
}

#[test]
fn hostile_symlink_then_write_in_one_image() {
    let env = Env::new();
    let work = work(&env);
    let fixture = hostile("symlink-then-write.aci");
    let list = env.run(["render-tree", "--list", fixture.to_str().unwrap()]);
    insta::assert_snapshot!(env
        .snap(&list)
        .replace(&fixtures().display().to_string(), "[FIXTURES]"));
    let run = env.run(["render-tree", fixture.to_str().unwrap(), "work/out"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out = work.join("out/rootfs");
    assert!(is_symlink(&out.join("escape")));
    assert!(is_symlink(&out.join("etc")));
    assert!(!out.join("escape/pwned").exists() && !out.join("etc/passwd").exists());
    untouched(&work);
}

#[test]
fn hostile_symlink_then_write_across_a_chain() {
    let env = Env::new();
    let work = work(&env);
    env.run(["import", hostile("chain-base.aci").to_str().unwrap()])
        .ok();
    let run = env.run([
        "render-tree",
        hostile("chain-app.aci").to_str().unwrap(),
        "work/out",
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out = work.join("out/rootfs");
    // The upper image's implied directory wins over the lower symlink ...
    assert!(fs::symlink_metadata(out.join("escape")).unwrap().is_dir());
    assert_eq!(
        fs::read_to_string(out.join("escape/pwned")).unwrap(),
        "pwned\n"
    );
    // ... and the upper symlink hides the lower directory's contents.
    assert!(is_symlink(&out.join("up")));
    untouched(&work);
}

#[test]
fn pre_existing_targets_are_refused() {
    let env = Env::new();
    let work = work(&env);
    env.run(["import", hostile("chain-base.aci").to_str().unwrap()])
        .ok();
    // A target holding a symlink out.
    fs::create_dir(work.join("out")).unwrap();
    symlink("../sentinel", work.join("out/rootfs")).unwrap();
    let run = env.run(["render-tree", "hostile.example/chain-base", "work/out"]);
    insta::assert_snapshot!(env.snap(&run));
    assert!(is_symlink(&work.join("out/rootfs")));
    untouched(&work);
    // A target that is a symlink to an empty directory.
    fs::create_dir(work.join("empty")).unwrap();
    symlink("empty", work.join("link")).unwrap();
    let run = env.run(["render-tree", "hostile.example/chain-base", "work/link"]);
    assert_eq!(run.code(), 128);
    assert_eq!(fs::read_dir(work.join("empty")).unwrap().count(), 0);
    untouched(&work);
}
