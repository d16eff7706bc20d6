//! `acido fetch`: an image by name (appc meta discovery), by `https://`
//! URL or from a local file, stored only after its detached signature and
//! its manifest were checked (issue 13, spec/appc-discovery.md §3).
//!
//! The order follows rkt's fetch-by-name pipeline with acido's stricter
//! choices:
//!
//! 1. a name that a stored image already matches is not fetched again
//!    (unless `refresh`);
//! 2. discovery; the first endpoint of the winning level is used (as rkt);
//! 3. the signature is downloaded first, and its signer checked against
//!    the keys trusted for the name before the (large) image is
//!    downloaded: an unknown signer fails early (rkt#573);
//! 4. the image is streamed to a temp file in the store's `tmp/` (a
//!    signal stops it);
//! 5. its manifest must carry the name asked for and every label asked for
//!    with the same value (discovery spec, "Validation"); `os` and `arch`
//!    filled in from the host only have to match when the image has them;
//! 6. the signature is checked over the downloaded bytes against the keys
//!    trusted for the manifest's name;
//! 7. only then is the image imported. Any failure drops the temp file, so
//!    nothing is stored.

use std::fs::File;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use acido_plumbing::archive;
use acido_plumbing::discovery::{self, DiscoveryError};
use acido_plumbing::http::{BodyReader, Client, HttpError, Url};
use acido_plumbing::id::ImageId;
use acido_plumbing::image::ImageError;
use acido_plumbing::limits::LimitKind;
use acido_plumbing::manifest::{ImageManifest, ManifestError};
use acido_plumbing::naming::{AppRef, NamingError};
use acido_plumbing::store::{Store, StoreError};
use acido_plumbing::trust::keystore::Keystore;
use acido_plumbing::trust::{verify_detached, KeystoreError, Signer, VerifyError};

/// The largest local signature file read (a detached signature is a few
/// hundred bytes; this only stops a wrong file from being read whole).
const MAX_LOCAL_SIGNATURE: u64 = 1 << 20;

/// Why a fetch failed; each variant is one failed check or step, and
/// names the image.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The image argument is neither a name, an https URL nor a file.
    #[error("{input:?}: {reason}")]
    BadImage {
        /// The argument.
        input: String,
        /// Why.
        reason: String,
    },
    /// Discovery found no image.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// A download failed.
    #[error("{image}: {source}")]
    Http {
        /// The image as asked.
        image: String,
        /// The HTTP error.
        source: HttpError,
    },
    /// Plain HTTP where only HTTPS is allowed (a URL or a redirect).
    #[error("{image}: {source} (--insecure-options=http allows it)")]
    InsecureHttp {
        /// The image as asked.
        image: String,
        /// The refusal.
        source: HttpError,
    },
    /// The signature could not be downloaded.
    #[error("{image}: no signature: {source}; the image cannot be verified (--insecure-options=image skips the check)")]
    NoSignature {
        /// The image as asked.
        image: String,
        /// Why (usually a 404).
        source: HttpError,
    },
    /// No signature file beside a local image.
    #[error("{image}: no signature file {}: the image cannot be verified (--insecure-options=image skips the check)", path.display())]
    NoSignatureFile {
        /// The image as asked.
        image: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The signature check failed.
    #[error("{image}: signature check failed: {source}")]
    Signature {
        /// The image as asked.
        image: String,
        /// Which check failed.
        source: VerifyError,
    },
    /// The manifest carries another name.
    #[error("{image}: the image's manifest is named {found:?}, not {expected:?} as asked")]
    NameMismatch {
        /// The image as asked.
        image: String,
        /// The name asked for.
        expected: String,
        /// The manifest's name.
        found: String,
    },
    /// A label asked for is missing from the manifest.
    #[error("{image}: the image's manifest has no label {label} (asked for {label}={expected})")]
    LabelMissing {
        /// The image as asked.
        image: String,
        /// The label.
        label: String,
        /// The value asked for.
        expected: String,
    },
    /// A label asked for has another value.
    #[error("{image}: the image's manifest has {label}={found}, not {label}={expected} as asked")]
    LabelMismatch {
        /// The image as asked.
        image: String,
        /// The label.
        label: String,
        /// The value asked for.
        expected: String,
        /// The manifest's value.
        found: String,
    },
    /// The image could not be read (not an ACI, a bound hit).
    #[error("{image}: {source}")]
    Image {
        /// The image as asked.
        image: String,
        /// The error.
        source: ImageError,
    },
    /// The manifest does not parse.
    #[error("{image}: manifest: {source}")]
    Manifest {
        /// The image as asked.
        image: String,
        /// The error.
        source: ManifestError,
    },
    /// The trust store could not be read.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Looking up stored images failed.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// A signal stopped the download; nothing was stored.
    #[error("{image}: interrupted by a signal; nothing was stored")]
    Interrupted {
        /// The image as asked.
        image: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A download error of `image`, plain-HTTP refusals told apart so the
/// message can name the option that allows them.
fn http_error(image: &str, source: HttpError) -> FetchError {
    match source {
        HttpError::PlainHttp { .. } | HttpError::Downgrade { .. } => FetchError::InsecureHttp {
            image: image.to_owned(),
            source,
        },
        source => FetchError::Http {
            image: image.to_owned(),
            source,
        },
    }
}

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An image name with labels, found by discovery.
    Name(AppRef),
    /// The URL of an ACI; its signature is at the URL + `.asc`.
    Url(Url),
    /// A local ACI file; its signature is `FILE.asc`.
    File(PathBuf),
}

impl Source {
    /// Reads an `IMAGE` argument: an `https://` (or `http://`) URL, an
    /// existing file (anything containing `/` or ending in `.aci` that
    /// exists, as other commands read files), else an app string.
    pub fn parse(input: &str) -> Result<Source, FetchError> {
        let bad = |reason: String| FetchError::BadImage {
            input: input.to_owned(),
            reason,
        };
        if let Some((scheme, _)) = input.split_once("://") {
            if scheme != "https" && scheme != "http" {
                return Err(bad(format!(
                    "scheme {scheme:?} is not supported: give an https URL, a file or an image name"
                )));
            }
            return Url::parse(input)
                .map(Source::Url)
                .map_err(|e| bad(format!("not a URL: {e}")));
        }
        if (input.contains('/') || input.ends_with(".aci")) && Path::new(input).is_file() {
            return Ok(Source::File(PathBuf::from(input)));
        }
        AppRef::parse(input)
            .map(Source::Name)
            .map_err(|e| bad(e.to_string()))
    }
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Check the signature (false with `--insecure-options=image`).
    pub verify_signature: bool,
    /// Fetch even when a stored image matches the name.
    pub refresh: bool,
    /// The `os` label asked for (`--os`); else `default_os` is used for
    /// discovery and only checked when the image has the label.
    pub os: Option<String>,
    /// The `arch` label asked for (`--arch`), as `os`.
    pub arch: Option<String>,
    /// The host's os, in appc names (`linux`).
    pub default_os: String,
    /// The host's arch, in appc names (`amd64`, `aarch64`, ...).
    pub default_arch: String,
    /// The time signatures and keys are checked at.
    pub now: SystemTime,
    /// Raised by a signal: the download stops and nothing is stored.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl FetchOptions {
    /// Checked, from the store first, for this host.
    pub fn new(now: SystemTime) -> FetchOptions {
        FetchOptions {
            verify_signature: true,
            refresh: false,
            os: None,
            arch: None,
            default_os: std::env::consts::OS.to_owned(),
            default_arch: host_arch().to_owned(),
            now,
            interrupt: None,
        }
    }
}

/// The host's architecture in appc's names (spec/appc-discovery.md §2:
/// rkt's `ToAppcOSArch`).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "aarch64",
        "arm" => "armv7l",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// What the fetch did.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The image as asked.
    pub image: String,
    /// The stored image's id.
    pub id: ImageId,
    /// Where it came from: `store` (already there), a URL or a file.
    pub origin: String,
    /// Who signed it; `None` when the check was skipped or the image was
    /// already stored.
    pub signer: Option<Signer>,
    /// Whether it was newly stored.
    pub newly_stored: bool,
    /// Trust store files that could not be used (reported, not fatal).
    pub warnings: Vec<String>,
}

/// The label a manifest must carry: asked for explicitly, or filled in
/// from the host (then only checked when present).
struct Wanted {
    name: Option<String>,
    labels: Vec<(String, String, bool)>,
}

/// Fetches one image into `store`, checking it first; see the module
/// docs for the steps. `client` is used for names and URLs only.
pub fn fetch(
    store: &Store,
    client: &Client,
    keystore: &Keystore,
    source: &Source,
    image: &str,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    match source {
        Source::Name(app) => fetch_name(store, client, keystore, app, image, options),
        Source::Url(url) => {
            let asc = signature_url(url);
            let wanted = Wanted {
                name: None,
                labels: Vec::new(),
            };
            download_and_import(
                store, client, keystore, url, &asc, None, &wanted, image, options,
            )
        }
        Source::File(path) => {
            let wanted = Wanted {
                name: None,
                labels: Vec::new(),
            };
            let signature = if options.verify_signature {
                Some(read_local_signature(path, image)?)
            } else {
                None
            };
            check_and_import(
                store,
                keystore,
                path,
                signature.as_deref(),
                &wanted,
                image,
                &path.display().to_string(),
                options,
            )
        }
    }
}

fn fetch_name(
    store: &Store,
    client: &Client,
    keystore: &Keystore,
    app: &AppRef,
    image: &str,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    // Labels asked for, then os/arch: from the options, else the host's
    // (defaulted: they fill discovery templates, and the image may lack
    // them).
    let mut labels: Vec<(String, String, bool)> = app
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), true))
        .collect();
    for (key, given, default) in [
        ("os", &options.os, &options.default_os),
        ("arch", &options.arch, &options.default_arch),
    ] {
        if labels.iter().any(|(k, _, _)| k == key) {
            continue;
        }
        match given {
            Some(value) => labels.push((key.to_owned(), value.clone(), true)),
            None => labels.push((key.to_owned(), default.clone(), false)),
        }
    }
    let wanted = Wanted {
        name: Some(app.name.clone()),
        labels,
    };
    if !options.refresh {
        if let Some(id) = stored_match(store, app, &wanted)? {
            return Ok(Fetched {
                image: image.to_owned(),
                id,
                origin: "store".to_owned(),
                signer: None,
                newly_stored: false,
                warnings: Vec::new(),
            });
        }
    }
    let request = AppRef {
        name: app.name.clone(),
        labels: wanted
            .labels
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect(),
    };
    let discovered = discovery::discover_images(client, &request)?;
    let Some(endpoint) = discovered.found.first() else {
        // discover_images returns at least one endpoint or an error.
        return Err(DiscoveryError::Failed {
            name: app.name.clone(),
            attempts: discovered.attempts,
        }
        .into());
    };
    download_and_import(
        store,
        client,
        keystore,
        &endpoint.aci,
        &endpoint.asc,
        Some(&app.name),
        &wanted,
        image,
        options,
    )
}

/// The newest stored image with the name and every explicit label, whose
/// defaulted labels, when it has them, match too.
fn stored_match(
    store: &Store,
    app: &AppRef,
    wanted: &Wanted,
) -> Result<Option<ImageId>, FetchError> {
    let explicit = AppRef {
        name: app.name.clone(),
        labels: wanted
            .labels
            .iter()
            .filter(|(_, _, explicit)| *explicit)
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut records = store.records()?;
    records.retain(|r| explicit.matches(r));
    records.retain(|r| {
        wanted
            .labels
            .iter()
            .filter(|(_, _, explicit)| !explicit)
            .all(|(k, v, _)| r.label(k).is_none_or(|found| found == v))
    });
    // naming::resolve_app's rule: the newest import wins.
    records.sort_by_key(|r| std::cmp::Reverse((r.import_time_ns, r.id)));
    Ok(records.first().map(|r| r.id))
}

/// The signature URL of an ACI URL: the same URL with `.asc` appended to
/// its path (a query stays after it).
fn signature_url(url: &Url) -> Url {
    let mut asc = url.clone();
    let path = format!("{}.asc", url.path());
    asc.set_path(&path);
    asc
}

#[allow(clippy::too_many_arguments)]
fn download_and_import(
    store: &Store,
    client: &Client,
    keystore: &Keystore,
    aci: &Url,
    asc: &Url,
    name: Option<&str>,
    wanted: &Wanted,
    image: &str,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let http_err = |source| http_error(image, source);
    let signature = if options.verify_signature {
        let signature = download_signature(client, asc, image)?;
        // The signer must be trusted before the image is downloaded: with
        // empty data a good signature fails only its last (mathematical)
        // check.
        if let Some(name) = name {
            early_signer_check(keystore, name, &signature, image, options)?;
        }
        Some(signature)
    } else {
        None
    };
    let response = client
        .get(aci)
        .and_then(|r| r.error_for_status())
        .map_err(http_err)?;
    let origin = response.url().to_string();
    let (temp, _lock) = store.create_temp("fetch-")?;
    let max = client.config().max_download_size;
    let mut body = response
        .into_reader(max, LimitKind::DownloadSize)
        .map_err(http_err)?;
    download(&mut body, temp.as_file(), temp.path(), image, options)?;
    check_and_import(
        store,
        keystore,
        temp.path(),
        signature.as_deref(),
        wanted,
        image,
        &origin,
        options,
    )
}

/// Streams `body` into `out`, watching the interrupt flag; a read error
/// is the server's, a write error the disk's (a full disk names the temp
/// file), an interrupt stops the copy.
fn download(
    body: &mut BodyReader,
    mut out: &File,
    path: &Path,
    image: &str,
    options: &FetchOptions,
) -> Result<(), FetchError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if options
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
        {
            return Err(FetchError::Interrupted {
                image: image.to_owned(),
            });
        }
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(http_error(image, body.error(e))),
        };
        out.write_all(&buf[..n]).map_err(|source| FetchError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
}

/// The detached signature at `asc`. A status other than 200 means the
/// server has none ([`FetchError::NoSignature`], which names the option
/// that skips the check); any other failure is a download error.
fn download_signature(client: &Client, asc: &Url, image: &str) -> Result<Vec<u8>, FetchError> {
    // get_page returns HttpError::Status only for a non-200 answer.
    client.get_page(asc).map_err(|source| match source {
        HttpError::Status { .. } => FetchError::NoSignature {
            image: image.to_owned(),
            source,
        },
        source => http_error(image, source),
    })
}

fn early_signer_check(
    keystore: &Keystore,
    name: &str,
    signature: &[u8],
    image: &str,
    options: &FetchOptions,
) -> Result<(), FetchError> {
    let keyring = keystore.keyring(name)?;
    match verify_detached(
        &keyring,
        name,
        signature,
        Cursor::new(Vec::new()),
        options.now,
    ) {
        Ok(_) => Ok(()),
        Err(e) if only_bad_maths(&e) => Ok(()),
        Err(source) => Err(FetchError::Signature {
            image: image.to_owned(),
            source,
        }),
    }
}

/// Whether every signature failed only its final check over the data.
fn only_bad_maths(err: &VerifyError) -> bool {
    match err {
        VerifyError::BadSignature { .. } => true,
        VerifyError::Several(all) => all.iter().any(only_bad_maths),
        _ => false,
    }
}

fn read_local_signature(path: &Path, image: &str) -> Result<Vec<u8>, FetchError> {
    let mut sig_path = path.as_os_str().to_owned();
    sig_path.push(".asc");
    let sig_path = PathBuf::from(sig_path);
    match File::open(&sig_path) {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(MAX_LOCAL_SIGNATURE)
                .read_to_end(&mut bytes)
                .map_err(|source| FetchError::Io {
                    path: sig_path.clone(),
                    source,
                })?;
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FetchError::NoSignatureFile {
            image: image.to_owned(),
            path: sig_path,
        }),
        Err(source) => Err(FetchError::Io {
            path: sig_path,
            source,
        }),
    }
}

/// Steps 5–7: manifest, signature, import, from the ACI at `path`.
#[allow(clippy::too_many_arguments)]
fn check_and_import(
    store: &Store,
    keystore: &Keystore,
    path: &Path,
    signature: Option<&[u8]>,
    wanted: &Wanted,
    image: &str,
    origin: &str,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    // Only the manifest is needed before the checks, so the archive is
    // scanned (with the store's bounds and layout checks) and its
    // decompressed bytes dropped: store.import decompresses, hashes and
    // copies it for real once everything has passed.
    // Errors keep open_archive's shape, so messages name the image asked
    // for (not only a temp file) as before.
    let input = File::open(path).map_err(|source| FetchError::Image {
        image: image.to_owned(),
        source: ImageError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    let scanned = archive::scan(input, &mut std::io::sink(), store.limits()).map_err(|source| {
        FetchError::Image {
            image: image.to_owned(),
            source: ImageError::Archive {
                path: path.to_owned(),
                source,
            },
        }
    })?;
    let manifest = ImageManifest::from_slice_with(&scanned.manifest, &store.limits().manifest())
        .map_err(|source| FetchError::Manifest {
            image: image.to_owned(),
            source,
        })?;
    check_manifest(&manifest, wanted, image)?;
    let mut warnings = Vec::new();
    let signer = match signature {
        Some(signature) => {
            let name = manifest.name.as_str();
            let keyring = keystore.keyring(name)?;
            warnings.extend(keyring.problems.iter().map(ToString::to_string));
            let data = File::open(path).map_err(|source| FetchError::Io {
                path: path.to_owned(),
                source,
            })?;
            let signer = verify_detached(&keyring, name, signature, data, options.now).map_err(
                |source| FetchError::Signature {
                    image: image.to_owned(),
                    source,
                },
            )?;
            Some(signer)
        }
        None => None,
    };
    let input = File::open(path).map_err(|source| FetchError::Io {
        path: path.to_owned(),
        source,
    })?;
    let outcome = store.import(input, image)?;
    Ok(Fetched {
        image: image.to_owned(),
        id: outcome.record.id,
        origin: origin.to_owned(),
        signer,
        newly_stored: outcome.newly_stored,
        warnings,
    })
}

/// The discovery spec's "Validation": the name and labels used MUST match
/// the manifest; labels the image has beyond those are fine.
fn check_manifest(
    manifest: &ImageManifest,
    wanted: &Wanted,
    image: &str,
) -> Result<(), FetchError> {
    if let Some(expected) = &wanted.name {
        if manifest.name.as_str() != expected {
            return Err(FetchError::NameMismatch {
                image: image.to_owned(),
                expected: expected.clone(),
                found: manifest.name.as_str().to_owned(),
            });
        }
    }
    for (label, expected, explicit) in &wanted.labels {
        match manifest.labels.get(label) {
            Some(found) if found == expected => {}
            Some(found) => {
                return Err(FetchError::LabelMismatch {
                    image: image.to_owned(),
                    label: label.clone(),
                    expected: expected.clone(),
                    found: found.to_owned(),
                })
            }
            None if *explicit => {
                return Err(FetchError::LabelMissing {
                    image: image.to_owned(),
                    label: label.clone(),
                    expected: expected.clone(),
                })
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_arguments_are_urls_files_or_names() {
        assert!(matches!(
            Source::parse("https://example.com/app.aci").unwrap(),
            Source::Url(_)
        ));
        assert!(matches!(
            Source::parse("example.com/app:1.0").unwrap(),
            Source::Name(_)
        ));
        assert!(Source::parse("file:///etc/passwd").is_err());
        assert!(Source::parse("ftp://example.com/app.aci").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.aci");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            Source::parse(file.to_str().unwrap()).unwrap(),
            Source::File(file)
        );
    }

    fn wanted(labels: &[(&str, &str, bool)]) -> Wanted {
        Wanted {
            name: Some("example.com/app".to_owned()),
            labels: labels
                .iter()
                .map(|(k, v, e)| (k.to_string(), v.to_string(), *e))
                .collect(),
        }
    }

    #[test]
    fn manifests_must_carry_the_name_and_labels_asked_for() {
        let manifest = ImageManifest::from_slice(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
                "labels":[{"name":"version","value":"1.0"},{"name":"arch","value":"aarch64"}]}"#,
        )
        .unwrap();
        let check = |w: &Wanted| check_manifest(&manifest, w, "img");
        // Extra labels on the image are fine; asked labels must match.
        assert!(check(&wanted(&[("version", "1.0", true)])).is_ok());
        assert!(matches!(
            check(&wanted(&[("version", "2.0", true)])),
            Err(FetchError::LabelMismatch { .. })
        ));
        assert!(matches!(
            check(&wanted(&[("channel", "stable", true)])),
            Err(FetchError::LabelMissing { .. })
        ));
        // A host default is checked only when the image has the label.
        assert!(check(&wanted(&[("os", "linux", false)])).is_ok());
        assert!(matches!(
            check(&wanted(&[("arch", "amd64", false)])),
            Err(FetchError::LabelMismatch { .. })
        ));
        let other = Wanted {
            name: Some("example.com/app2".to_owned()),
            labels: Vec::new(),
        };
        assert!(matches!(
            check(&other),
            Err(FetchError::NameMismatch { .. })
        ));
    }

    #[test]
    fn signature_urls_append_asc_to_the_path() {
        let url = Url::parse("https://example.com/a/app.aci?x=1").unwrap();
        assert_eq!(
            signature_url(&url).as_str(),
            "https://example.com/a/app.aci.asc?x=1"
        );
    }
}
