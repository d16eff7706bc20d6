//! `acido pull` against a registry that misbehaves (issue 11, "Bad
//! input"), served by the purpose-built server of
//! tests/common/hostile_registry.rs: a 500 mid-blob, a 500 on the layer, a
//! truncated body under a full Content-Length, a server that stops
//! sending (the `http-timeout` limit lowered), redirect loops on a blob
//! and on a manifest, a gzip bomb layer. Each is exit 128 with a message
//! naming the reference and the problem, nothing stored, `tmp/` empty.
//! Then the crash cases: a pull killed with SIGKILL mid-blob, and a
//! registry push killed with its scratch layout in `tmp/`, each cleaned
//! by `gc`, and the pull redone.

mod common;
#[path = "common/hostile_registry.rs"]
mod hostile_registry;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use hostile_registry::{Fault, HostileRegistry, ServedImage};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn tar_file(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_mtime(1_500_000_000);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
}

/// A tar of `etc/` and a file `etc/data` of `data`.
fn tar_of(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    tar_file(&mut out, "etc/", tar::EntryType::Directory, b"");
    tar_file(&mut out, "etc/data", tar::EntryType::Regular, data);
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// A layer large enough that half of it is many reads: 256 KiB of
/// pseudo-random bytes (no compression would shrink them).
fn plain_image() -> ServedImage {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let tar = tar_of(&data);
    ServedImage::new(tar.clone(), "application/vnd.oci.image.layer.v1.tar", &tar)
}

fn blob_count(env: &Env) -> usize {
    walkdir::WalkDir::new(env.store().join("blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count()
}

fn tmp_names(env: &Env) -> Vec<String> {
    common::names(&env.store().join("tmp"))
}

/// Pulls from `registry` with `limits`, expects exit 128, snapshots the
/// message as `name` and checks that nothing was stored or left.
fn refused(env: &Env, registry: &HostileRegistry, name: &str, limits: &[&str]) -> String {
    let mut args: Vec<String> = Vec::new();
    for l in limits {
        args.extend(["--limit".to_owned(), (*l).to_owned()]);
    }
    args.extend([
        "pull".to_owned(),
        "--tls-verify=false".to_owned(),
        registry.reference(),
    ]);
    let before = blob_count(env);
    let run = env.run(&args);
    assert_eq!(run.code(), 128, "{name}: {}", run.stderr());
    let port = format!("127.0.0.1:{}", registry.port);
    insta::assert_snapshot!(
        format!("hostile_registry_{name}"),
        env.snap(&run).replace(&port, "[REGISTRY]")
    );
    assert!(
        run.stderr().contains(&registry.reference()),
        "{name}: the message names no reference: {}",
        run.stderr()
    );
    assert_eq!(blob_count(env), before, "{name}: something was stored");
    assert_eq!(
        tmp_names(env),
        Vec::<String>::new(),
        "{name}: tmp/ not empty"
    );
    run.stderr()
}

#[test]
fn a_misbehaving_registry_is_refused_with_nothing_stored() {
    let env = Env::new();
    let cases: &[(&str, Fault, &[&str], &str)] = &[
        ("fail_mid_blob", Fault::FailMidBlob, &[], "layer 1"),
        ("layer_500", Fault::LayerStatus500, &[], "500"),
        ("truncated", Fault::Truncated, &[], "layer 1"),
        ("stall", Fault::Stall, &["http-timeout=1"], "http-timeout"),
        (
            "blob_redirect_loop",
            Fault::BlobRedirectLoop,
            &[],
            "redirect loop",
        ),
        (
            "manifest_redirect_loop",
            Fault::ManifestRedirectLoop,
            &[],
            "redirect loop",
        ),
    ];
    for (name, fault, limits, says) in cases {
        let registry = HostileRegistry::start(plain_image(), *fault);
        let started = Instant::now();
        let stderr = refused(&env, &registry, name, limits);
        assert!(stderr.contains(says), "{name}: {stderr}");
        // The stall is cut by the 1 s timeout, not by the server's 60 s.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
    // The same image from a well-behaved server pulls: the refusals were
    // the faults'.
    let good = HostileRegistry::start(plain_image(), Fault::None);
    env.run(["pull", "--tls-verify=false", &good.reference()])
        .ok();
    assert!(blob_count(&env) > 0);
}

#[test]
fn a_gzip_bomb_layer_is_cut_at_the_size_limit() {
    let env = Env::new();
    // 8 MiB of zeros, a few KiB gzipped; the limit is 1 MiB.
    let tar = tar_of(&vec![0u8; 8 << 20]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    assert!(layer.len() < 64 * 1024, "{}", layer.len());
    let image = ServedImage::new(layer, "application/vnd.oci.image.layer.v1.tar+gzip", &tar);
    let registry = HostileRegistry::start(image, Fault::None);
    let stderr = refused(&env, &registry, "gzip_bomb", &["size=1M"]);
    assert!(stderr.contains("--limit size="), "{stderr}");
}

fn pid(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap())
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool, child: &mut Child) {
    let start = Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("acido ended ({status}) before {what}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn gc(env: &Env) -> String {
    env.run(["gc"]).ok()
}

#[test]
fn a_pull_killed_mid_blob_stores_nothing_and_gc_cleans_its_temps() {
    let env = Env::new();
    let stalled = HostileRegistry::start(plain_image(), Fault::Stall);
    let mut child = env
        .command()
        .args(["pull", "--tls-verify=false", &stalled.reference()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed while the layer's body is half read.
    wait_for(
        "asking for the layer",
        || {
            stalled.requests().iter().any(|r| {
                r.contains("/blobs/")
                    && !r.contains(&hostile_registry::sha256(&plain_image().config))
            })
        },
        &mut child,
    );
    std::thread::sleep(Duration::from_millis(300));
    kill(pid(&child), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert_eq!(blob_count(&env), 0, "a killed pull stored something");
    assert!(
        !env.store().join("images").exists()
            || common::names(&env.store().join("images")).is_empty()
    );
    // Whatever it left in tmp/ is unlocked now: gc takes it.
    gc(&env);
    assert_eq!(tmp_names(&env), Vec::<String>::new());
    // And the pull, redone against a working server, succeeds.
    drop(stalled);
    let good = HostileRegistry::start(plain_image(), Fault::None);
    let top = env
        .run(["pull", "--tls-verify=false", &good.reference()])
        .ok();
    env.run([
        "extract",
        top.trim(),
        &env.path("out").display().to_string(),
    ])
    .ok();
    assert_eq!(
        fs::metadata(env.path("out/rootfs/etc/data")).unwrap().len(),
        256 * 1024
    );
    assert_eq!(tmp_names(&env), Vec::<String>::new());
}

fn scratch_dirs(env: &Env) -> Vec<String> {
    tmp_names(env)
        .into_iter()
        .filter(|n| n.starts_with(".acido-scratch-"))
        .collect()
}

#[test]
fn a_registry_push_killed_with_its_scratch_layout_leaves_it_for_gc() {
    let env = Env::new();
    let good = HostileRegistry::start(plain_image(), Fault::None);
    let top = env
        .run(["pull", "--tls-verify=false", &good.reference()])
        .ok()
        .trim()
        .to_owned();
    let marker = env.path("paused");
    // The push pauses once its scratch layout exists, before any request.
    let mut child = env
        .command()
        .args([
            "push",
            "--tls-verify=false",
            &top,
            &format!("docker://127.0.0.1:{}/test/pushed:t", good.port),
        ])
        .env("ACIDO_TEST_PAUSE_AT", "push-after-scratch")
        .env("ACIDO_TEST_PAUSE_FILE", &marker)
        .env("ACIDO_TEST_PAUSE_SECS", "60")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "pausing (built without acido-porcelain's `test-hooks`?)",
        || marker.exists(),
        &mut child,
    );
    let scratch = scratch_dirs(&env);
    assert_eq!(scratch.len(), 1, "{:?}", tmp_names(&env));
    // A live push's scratch is left alone by gc and is no problem for fsck.
    gc(&env);
    assert_eq!(scratch_dirs(&env), scratch);
    let fsck = env.run(["fsck"]);
    assert_eq!(fsck.code(), 0, "{}", fsck.stdout());
    kill(pid(&child), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert_eq!(scratch_dirs(&env), scratch, "the kill left it");
    // Dead, it is a stale temp for fsck and garbage for gc.
    let fsck = env.run(["fsck"]);
    assert_ne!(fsck.code(), 0, "{}", fsck.stdout());
    assert!(fsck.stdout().contains(&scratch[0]), "{}", fsck.stdout());
    let swept = gc(&env);
    assert!(swept.contains(&scratch[0]), "{swept}");
    assert_eq!(tmp_names(&env), Vec::<String>::new());
    assert!(!Path::new(&env.store().join("tmp").join(&scratch[0])).exists());
}
