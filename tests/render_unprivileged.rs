//! Rendering as a normal user an image made as root: device nodes,
//! foreign ownership and setuid files cannot all be restored, and that is
//! reported once on stderr, never fatal and never silent (issue 3, 5).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{manifest, Env};

#[test]
fn a_normal_user_renders_what_it_can_and_reports_the_rest() {
    if !common::is_root() {
        eprintln!("skipped: needs root to make the image and setpriv to drop to nobody");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let env = Env::new();
    let layout = env.layout(
        "l",
        &manifest("example.com/devs", ""),
        &[("bin/tool", "#!/bin/sh\n"), ("etc/conf", "x")],
    );
    let rootfs = layout.join("rootfs");
    let status = Command::new("mknod")
        .arg(rootfs.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    Command::new("chown")
        .args(["1000:1000"])
        .arg(rootfs.join("bin/tool"))
        .status()
        .unwrap();
    fs::set_permissions(rootfs.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    common::pin_times(&layout);
    let id = env.pack(&layout, "devs.aci", "none");
    env.run(["import", "devs.aci"]).ok();

    // nobody must reach the store (read-only) and a directory it owns.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out_parent = env.path("nobody");
    fs::create_dir(&out_parent).unwrap();
    Command::new("chown")
        .args(["65534:65534"])
        .arg(&out_parent)
        .status()
        .unwrap();
    let acido = env!("CARGO_BIN_EXE_acido");
    let run = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(acido)
        .args(["--store"])
        .arg(env.store())
        .args(["extract", &id])
        .arg(out_parent.join("out3"))
        .env("TMPDIR", &out_parent)
        .env("HOME", &out_parent)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    // One line says what could not be restored: every entry's owner (root
    // or 1000, not nobody) and the device node.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("acido: not restored (running as a normal user): "))
        .unwrap_or_else(|| panic!("no report line in {stderr}"));
    assert!(
        line.contains(" 6 ownerships, 1 device node, 0 xattrs"),
        "{line}"
    );
    let tree = out_parent.join("out3/rootfs");
    assert!(tree.join("bin/tool").is_file());
    assert!(tree.join("etc/conf").is_file());
    assert!(
        !tree.join("null").exists(),
        "a device node cannot be made by nobody"
    );
    // As root everything comes back.
    env.run(["extract", &id, "asroot"]).ok();
    let meta = fs::symlink_metadata(env.path("asroot/rootfs/bin/tool")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert_eq!(meta.uid(), 1000);
    assert!(fs::symlink_metadata(env.path("asroot/rootfs/null"))
        .unwrap()
        .file_type()
        .is_char_device());
}
