//! The image config as an ACI app (oci-bridge §3; the whole mapping is in
//! `acido-pull(1)`).
//!
//! The app image is the top of a pulled chain: no files, one dependency
//! (the top layer's ACI, by id), and the config mapped as follows.
//!
//! | config | app image |
//! |---|---|
//! | `Entrypoint` + `Cmd` | `exec` (concatenated), and annotations `appc.io/docker/entrypoint` and `appc.io/docker/cmd` (JSON arrays) |
//! | `User` `u:g` | `user` `u`, `group` `g`; `u` alone: the group (and `supplementaryGIDs`) from the image's `/etc/passwd` and `/etc/group`; empty: `0`/`0` |
//! | `Env` | `environment`, split at the first `=`, the last duplicate winning |
//! | `WorkingDir` | `workingDirectory` (`/` prefixed when relative) |
//! | `ExposedPorts` | `ports`, named after the key (`80/tcp` → `80-tcp`), sorted |
//! | `Volumes` | `mountPoints`, named `volume-` + the path, sorted by path |
//! | `Labels` | the app's `userLabels` |
//! | `StopSignal` | annotation `acido.io/oci-stop-signal` |
//! | `created`, `author` | annotations `created`, `authors` |
//! | `os`, `architecture`, `variant` | labels `os`, `arch` (appc names) |
//! | the tag | label `version` |

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

use super::digest::Sha256Digest;
use super::OciError;
use crate::id::ImageId;
use crate::manifest::{
    AcIdentifier, AcName, Annotation, Annotations, App, Dependency, EnvironmentVariable,
    ImageIdRef, ImageManifest, Label, Labels, MountPoint, Port,
};

/// Annotation holding the config's `Entrypoint` as a JSON array.
pub const ENTRYPOINT_ANNOTATION: &str = "appc.io/docker/entrypoint";
/// Annotation holding the config's `Cmd` as a JSON array.
pub const CMD_ANNOTATION: &str = "appc.io/docker/cmd";
/// Annotation holding the config's digest.
pub const CONFIG_DIGEST_ANNOTATION: &str = "acido.io/oci-config-digest";
/// Annotation holding the manifest's digest, when the source has one.
pub const MANIFEST_DIGEST_ANNOTATION: &str = "acido.io/oci-manifest-digest";
/// Annotation holding the config's `StopSignal`.
pub const STOP_SIGNAL_ANNOTATION: &str = "acido.io/oci-stop-signal";

/// Everything the app image is made from.
#[derive(Debug)]
pub struct AppSource<'a> {
    /// The image, for messages.
    pub image: &'a str,
    /// The name the image gets, before it is made a valid AC identifier.
    pub name: &'a str,
    /// The tag, as the `version` label.
    pub version: Option<&'a str>,
    /// The parsed config.
    pub config: &'a ImageConfiguration,
    /// The config's digest.
    pub config_digest: Sha256Digest,
    /// The manifest's digest, if the source has one.
    pub manifest_digest: Option<Sha256Digest>,
    /// The image's `/etc/passwd`, if it has one.
    pub passwd: Option<&'a [u8]>,
    /// The image's `/etc/group`, if it has one.
    pub group: Option<&'a [u8]>,
}

/// `text` made a valid AC identifier (`[a-z0-9]+([-._~/][a-z0-9]+)*`):
/// lower-cased, every other character a `-`, separators never doubled
/// nor at either end. `image` when nothing is left.
pub fn ac_identifier(text: &str) -> AcIdentifier {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let last_alnum = out
            .chars()
            .last()
            .is_some_and(|l: char| l.is_ascii_alphanumeric());
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if last_alnum {
            out.push(if "-._~/".contains(c) { c } else { '-' });
        }
    }
    while out.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("image");
    }
    out.parse()
        .expect("alphanumeric runs joined by single separators are an AC identifier")
}

/// `text` made a valid AC name (`[a-z0-9]+(-[a-z0-9]+)*`).
fn ac_name(text: &str) -> AcName {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if out.chars().last().is_some_and(|l| l != '-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push('x');
    }
    out.parse()
        .expect("alphanumeric runs joined by single dashes are an AC name")
}

/// The appc os and arch for an OCI platform (oci-bridge §3.3). An `arm`
/// without a variant is taken as `v7`, as containerd does.
pub fn appc_platform(
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Option<(&'static str, &'static str)> {
    let variant = variant.unwrap_or("");
    Some(match (os, arch, variant) {
        ("linux", "amd64", _) => ("linux", "amd64"),
        ("linux", "386", _) => ("linux", "i386"),
        ("linux", "arm64", "" | "v8" | "8") => ("linux", "aarch64"),
        ("linux", "arm", "" | "v7" | "7") => ("linux", "armv7l"),
        ("linux", "arm", "v6" | "6") => ("linux", "armv6l"),
        ("linux", "ppc64le", _) => ("linux", "ppc64le"),
        ("linux", "ppc64", _) => ("linux", "ppc64"),
        ("linux", "s390x", _) => ("linux", "s390x"),
        ("freebsd", "amd64", _) => ("freebsd", "amd64"),
        ("freebsd", "386", _) => ("freebsd", "i386"),
        ("freebsd", "arm", _) => ("freebsd", "arm"),
        ("darwin", "amd64", _) => ("darwin", "x86_64"),
        ("darwin", "386", _) => ("darwin", "i386"),
        _ => return None,
    })
}

fn passwd_lookup<'p>(passwd: &'p str, user: &str) -> Option<(&'p str, &'p str)> {
    // name:password:uid:gid:...
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 {
            return None;
        }
        (fields[0] == user || fields[2] == user).then_some((fields[0], fields[3]))
    })
}

fn supplementary_gids(group: &str, user_name: &str, primary: &str) -> Vec<i64> {
    let mut gids: Vec<i64> = group
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[2] == primary {
                return None;
            }
            fields[3]
                .split(',')
                .any(|member| member == user_name)
                .then(|| fields[2].parse().ok())
                .flatten()
        })
        .collect();
    gids.sort_unstable();
    gids.dedup();
    gids
}

/// The app image's manifest: `source` mapped as the module docs say,
/// depending on the top layer `top` by id.
pub fn app_manifest(
    source: &AppSource<'_>,
    top: &(ImageId, AcIdentifier),
) -> Result<ImageManifest, OciError> {
    let config_err = |problem: String| OciError::Config {
        image: source.image.to_owned(),
        problem,
    };
    let value_err = |what: &str, e| OciError::Value {
        image: source.image.to_owned(),
        what: what.to_owned(),
        source: e,
    };
    let ident = |s: &str| -> AcIdentifier {
        s.parse()
            .expect("the annotation and label names here are valid AC identifiers")
    };
    let config = source.config;
    let mut manifest = ImageManifest::new(ac_identifier(source.name));

    let os = config.os().to_string();
    let arch = config.architecture().to_string();
    let (appc_os, appc_arch) =
        appc_platform(&os, &arch, config.variant().as_deref()).ok_or_else(|| {
            config_err(format!(
                "platform {os}/{arch}{} has no appc os/arch",
                config
                    .variant()
                    .as_deref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            ))
        })?;
    let mut labels = Vec::new();
    if let Some(version) = source.version {
        labels.push(Label {
            name: ident("version"),
            value: version.to_owned(),
        });
    }
    labels.push(Label {
        name: ident("os"),
        value: appc_os.to_owned(),
    });
    labels.push(Label {
        name: ident("arch"),
        value: appc_arch.to_owned(),
    });
    manifest.labels = Labels::new(labels).map_err(|e| value_err("labels", e))?;

    let mut app = App::default();
    let empty = oci_spec::image::Config::default();
    let c = config.config().as_ref().unwrap_or(&empty);
    let entrypoint = c.entrypoint().clone().unwrap_or_default();
    let cmd = c.cmd().clone().unwrap_or_default();
    let exec: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    app.exec = (!exec.is_empty()).then_some(exec);

    let user_spec = c.user().clone().unwrap_or_default();
    let (user, group) = match user_spec.split_once(':') {
        Some((u, g)) => (u.to_owned(), g.to_owned()),
        None if user_spec.is_empty() => ("0".to_owned(), "0".to_owned()),
        None => {
            let passwd = source.passwd.map(String::from_utf8_lossy);
            match passwd.as_deref().and_then(|p| passwd_lookup(p, &user_spec)) {
                Some((name, gid)) => {
                    if let Some(group) = source.group.map(String::from_utf8_lossy) {
                        app.supplementary_gids = supplementary_gids(&group, name, gid);
                    }
                    (user_spec.clone(), gid.to_owned())
                }
                // moby uses an unknown numeric id as given, with gid 0.
                None if user_spec.bytes().all(|b| b.is_ascii_digit()) => {
                    (user_spec.clone(), "0".to_owned())
                }
                None => {
                    return Err(config_err(format!(
                        "user {user_spec:?} is not in the image's /etc/passwd and no group is given"
                    )))
                }
            }
        }
    };
    app.user = user;
    app.group = group;

    // The last duplicate wins, in the position of the first.
    let mut env: Vec<EnvironmentVariable> = Vec::new();
    for item in c.env().iter().flatten() {
        let Some((name, value)) = item.split_once('=') else {
            continue;
        };
        match env.iter_mut().find(|v| v.name == name) {
            Some(existing) => existing.value = value.to_owned(),
            None => env.push(EnvironmentVariable {
                name: name.to_owned(),
                value: value.to_owned(),
            }),
        }
    }
    app.environment = env;

    if let Some(dir) = c.working_dir().as_deref().filter(|d| !d.is_empty()) {
        app.working_directory = if dir.starts_with('/') {
            dir.to_owned()
        } else {
            format!("/{dir}")
        };
    }

    let mut ports = Vec::new();
    for key in c.exposed_ports().iter().flatten() {
        let (number, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
        let port: u64 = number
            .parse()
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| config_err(format!("exposed port {key:?} is not a port number")))?;
        ports.push(Port {
            name: ac_name(&format!("{number}-{protocol}")),
            protocol: protocol.to_owned(),
            port,
            count: 1,
            socket_activated: false,
        });
    }
    ports.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    ports.dedup_by(|a, b| a.name == b.name);
    app.ports = ports;

    let mut volumes: Vec<&String> = c.volumes().iter().flatten().collect();
    volumes.sort();
    volumes.dedup();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for path in volumes {
        let base = ac_name(&format!("volume-{path}")).as_str().to_owned();
        let n = used.entry(base.clone()).or_insert(0);
        *n += 1;
        let name = if *n == 1 { base } else { format!("{base}-{n}") };
        app.mount_points.push(MountPoint {
            name: ac_name(&name),
            path: path.clone(),
            read_only: false,
        });
    }
    app.user_labels = c
        .labels()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    app.check().map_err(|e| config_err(e.to_string()))?;
    manifest.app = Some(app);

    let mut annotations = Vec::new();
    let mut annotate = |name: &str, value: String| {
        annotations.push(Annotation {
            name: ident(name),
            value,
        })
    };
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned());
    if !entrypoint.is_empty() {
        annotate(ENTRYPOINT_ANNOTATION, json(&entrypoint));
    }
    if !cmd.is_empty() {
        annotate(CMD_ANNOTATION, json(&cmd));
    }
    if let Some(signal) = c.stop_signal() {
        annotate(STOP_SIGNAL_ANNOTATION, signal.clone());
    }
    if let Some(author) = config.author() {
        annotate("authors", author.clone());
    }
    annotate(CONFIG_DIGEST_ANNOTATION, source.config_digest.to_string());
    if let Some(digest) = source.manifest_digest {
        annotate(MANIFEST_DIGEST_ANNOTATION, digest.to_string());
    }
    // appc checks `created` as RFC 3339; a config with another format
    // loses it rather than the pull failing.
    if let Some(created) = config.created() {
        let with = {
            let mut all = annotations.clone();
            all.push(Annotation {
                name: ident("created"),
                value: created.clone(),
            });
            all
        };
        if Annotations::new(with.clone()).is_ok() {
            annotations = with;
        }
    }
    manifest.annotations =
        Annotations::new(annotations).map_err(|e| value_err("annotations", e))?;

    let image_id: ImageIdRef = top
        .0
        .to_string()
        .parse()
        .map_err(|e| value_err("dependency", e))?;
    manifest.dependencies.push(Dependency {
        image_name: top.1.clone(),
        image_id: Some(image_id),
        labels: Labels::default(),
        size: None,
    });
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_identifiers() {
        assert_eq!(
            ac_identifier("localhost:5000/Foo/bar").as_str(),
            "localhost-5000/foo/bar"
        );
        assert_eq!(ac_identifier("--a__b--").as_str(), "a_b");
        assert_eq!(ac_identifier("!!").as_str(), "image");
        assert_eq!(ac_name("80/tcp").as_str(), "80-tcp");
        assert_eq!(ac_name("volume-/var//lib").as_str(), "volume-var-lib");
    }

    #[test]
    fn platforms_map_as_the_table_says() {
        assert_eq!(appc_platform("linux", "386", None), Some(("linux", "i386")));
        assert_eq!(
            appc_platform("linux", "arm64", Some("v8")),
            Some(("linux", "aarch64"))
        );
        assert_eq!(
            appc_platform("linux", "arm", None),
            Some(("linux", "armv7l"))
        );
        assert_eq!(
            appc_platform("linux", "arm", Some("v6")),
            Some(("linux", "armv6l"))
        );
        assert_eq!(
            appc_platform("darwin", "amd64", None),
            Some(("darwin", "x86_64"))
        );
        assert_eq!(appc_platform("linux", "arm", Some("v5")), None);
        assert_eq!(appc_platform("windows", "amd64", None), None);
        assert_eq!(appc_platform("linux", "riscv64", None), None);
    }

    #[test]
    fn users_resolve_through_passwd_and_group() {
        let passwd = "root:x:0:0::/root:/bin/sh\nwww:x:33:44::/var/www:/bin/false\n";
        let group = "root:x:0:\nwww:x:44:\nadm:x:4:www,other\nstaff:x:50:other\n";
        assert_eq!(passwd_lookup(passwd, "www"), Some(("www", "44")));
        assert_eq!(passwd_lookup(passwd, "33"), Some(("www", "44")));
        assert_eq!(passwd_lookup(passwd, "nobody"), None);
        assert_eq!(supplementary_gids(group, "www", "44"), vec![4]);
    }
}
