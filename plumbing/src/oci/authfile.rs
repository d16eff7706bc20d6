//! Registry credentials from the files podman, skopeo and docker keep them
//! in (containers-auth.json(5), oci-bridge §7 "Credentials"):
//! `{"auths": {"KEY": {"auth": "base64(user:pass)"}}}`.
//!
//! The caller (the binary, which alone reads the environment) names the
//! files in the order containers/image searches them; the first file that
//! holds credentials for the registry wins, and inside a file the most
//! specific key does (`host/ns/repo` before `host/ns` before `host`), as
//! podman reads repository-scoped logins. A key written as a URL
//! (`https://index.docker.io/v1/`, docker's form) stands for its host.
//!
//! What is not done, and said instead: credential helpers (`credHelpers`,
//! `credsStore`) are programs acido does not run, and an `identitytoken`
//! needs the OAuth2 refresh-token flow, which acido does not implement.
//! When a file names either for the registry and no usable `auth` is
//! found anywhere, the reason is kept ([`FoundCredentials::unusable`]) so
//! that a 401 from the registry can say why no credentials were sent.

use std::io;
use std::path::{Path, PathBuf};

use super::OciError;

/// Largest auth file read: real ones hold a few logins, well under 1 MiB;
/// the bound keeps a wrong path (a device, a huge file) from being
/// slurped.
const MAX_AUTH_FILE: u64 = 1 << 20;

/// One file to look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFileCandidate {
    /// The file.
    pub path: PathBuf,
    /// Whether its absence is an error (`--authfile FILE`) rather than
    /// "no credentials here" (the default locations).
    pub required: bool,
}

/// What the files hold for one registry and repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundCredentials {
    /// `user` and `password` from the most specific matching entry of the
    /// first file that has one.
    pub credentials: Option<(String, String)>,
    /// Why a file that names the registry could not supply credentials (a
    /// credential helper, an identity token), when none was found.
    pub unusable: Option<String>,
}

fn bad(path: &Path, problem: String) -> OciError {
    OciError::AuthFile {
        path: path.to_owned(),
        problem,
    }
}

/// Looks up the credentials for `repository` on `host` (as
/// [`super::registry::DockerReference`] names them) in `files`, in order.
/// A file that does not parse, or whose matching entry is malformed, is an
/// error naming it; a missing file is skipped unless it is required.
pub fn credentials_for(
    files: &[AuthFileCandidate],
    host: &str,
    repository: &str,
) -> Result<FoundCredentials, OciError> {
    let registry = canonical_host(host);
    // Most specific first: host/a/b/c, host/a/b, host/a, host.
    let mut keys = vec![format!("{registry}/{repository}")];
    let mut rest = repository;
    while let Some((parent, _)) = rest.rsplit_once('/') {
        keys.push(format!("{registry}/{parent}"));
        rest = parent;
    }
    keys.push(registry.to_owned());

    let mut unusable = None;
    for candidate in files {
        let path = &candidate.path;
        let bytes = match read_bounded(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !candidate.required => continue,
            Err(e) => return Err(bad(path, e.to_string())),
        };
        let doc: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(path, format!("not a JSON auth file: {e}")))?;
        let Some(top) = doc.as_object() else {
            return Err(bad(path, "not a JSON object".to_owned()));
        };
        let auths = match top.get("auths") {
            None => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) => map.clone(),
            Some(_) => return Err(bad(path, "\"auths\" is not an object".to_owned())),
        };
        // The file's keys, normalised, with their entries.
        let mut entries = Vec::with_capacity(auths.len());
        for (key, entry) in &auths {
            let Some(entry) = entry.as_object() else {
                return Err(bad(path, format!("the entry {key:?} is not an object")));
            };
            entries.push((normalise_key(key), key, entry));
        }
        let mut found_here = None;
        'keys: for want in &keys {
            for (normalised, key, entry) in &entries {
                if normalised != want {
                    continue;
                }
                if entry.get("identitytoken").is_some_and(|t| t != "") {
                    unusable.get_or_insert_with(|| {
                        format!(
                            "{} holds an identity token for {key:?}, which acido does not use (give --creds)",
                            path.display()
                        )
                    });
                    continue;
                }
                match entry.get("auth") {
                    None => continue,
                    Some(serde_json::Value::String(text)) if text.is_empty() => continue,
                    Some(serde_json::Value::String(text)) => {
                        found_here = Some(decode_auth(text).map_err(|problem| {
                            bad(path, format!("the \"auth\" of {key:?} {problem}"))
                        })?);
                        break 'keys;
                    }
                    Some(_) => {
                        return Err(bad(
                            path,
                            format!("the \"auth\" of {key:?} is not a string"),
                        ))
                    }
                }
            }
        }
        if let Some(credentials) = found_here {
            return Ok(FoundCredentials {
                credentials: Some(credentials),
                unusable: None,
            });
        }
        if let Some(helper) = helper_for(top, registry, path)? {
            unusable.get_or_insert_with(|| {
                format!(
                    "{} names the credential helper docker-credential-{} for {registry}, which acido does not run (give --creds or an \"auth\" entry)",
                    path.display(),
                    helper.escape_debug()
                )
            });
        }
    }
    Ok(FoundCredentials {
        credentials: None,
        unusable,
    })
}

/// The registry name files use: docker.io for Docker Hub, whatever alias
/// the reference used.
fn canonical_host(host: &str) -> &str {
    match host {
        "registry-1.docker.io" | "index.docker.io" => "docker.io",
        other => other,
    }
}

/// A file key as a registry or repository name: a URL (docker's
/// `https://index.docker.io/v1/`) stands for its host.
fn normalise_key(key: &str) -> String {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    match stripped {
        Some(rest) => canonical_host(rest.split('/').next().unwrap_or(rest)).to_owned(),
        None => match key.split_once('/') {
            Some((host, path)) => format!("{}/{path}", canonical_host(host)),
            None => canonical_host(key).to_owned(),
        },
    }
}

/// The helper a file names for `registry`: its `credHelpers` entry, else
/// its `credsStore`.
fn helper_for(
    top: &serde_json::Map<String, serde_json::Value>,
    registry: &str,
    path: &Path,
) -> Result<Option<String>, OciError> {
    if let Some(helpers) = top.get("credHelpers") {
        let Some(helpers) = helpers.as_object() else {
            return Err(bad(path, "\"credHelpers\" is not an object".to_owned()));
        };
        for (key, helper) in helpers {
            if normalise_key(key) == registry {
                return match helper.as_str() {
                    Some(name) => Ok(Some(name.to_owned())),
                    None => Err(bad(
                        path,
                        format!("the credHelpers entry {key:?} is not a string"),
                    )),
                };
            }
        }
    }
    match top.get("credsStore") {
        None => Ok(None),
        Some(serde_json::Value::String(name)) if name.is_empty() => Ok(None),
        Some(serde_json::Value::String(name)) => Ok(Some(name.clone())),
        Some(_) => Err(bad(path, "\"credsStore\" is not a string".to_owned())),
    }
}

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_AUTH_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_AUTH_FILE {
        return Err(io::Error::other(format!(
            "larger than {MAX_AUTH_FILE} bytes, not an auth file"
        )));
    }
    Ok(bytes)
}

/// `base64(user:password)` → (user, password), split at the first `:`,
/// trailing NULs of the password dropped (as containers/image does).
fn decode_auth(text: &str) -> Result<(String, String), String> {
    let bytes = base64_decode(text.trim()).ok_or("is not base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 once decoded")?;
    let (user, pass) = text
        .split_once(':')
        .ok_or("does not decode to USER:PASSWORD")?;
    Ok((user.to_owned(), pass.trim_end_matches('\0').to_owned()))
}

/// Standard base64 (RFC 4648 §4), padding optional.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // One leftover character (6 bits) cannot end a valid encoding.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> AuthFileCandidate {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        AuthFileCandidate {
            path,
            required: false,
        }
    }

    fn creds(user: &str, pass: &str) -> Option<(String, String)> {
        Some((user.to_owned(), pass.to_owned()))
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("a*b=").is_none());
    }

    #[test]
    fn the_most_specific_key_of_the_first_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        // alice:a, bob:b, carol:c, dave:d
        let first = file(
            dir.path(),
            "first.json",
            r#"{"auths": {"reg.example:5000": {"auth": "YWxpY2U6YQ=="},
                "reg.example:5000/team": {"auth": "Ym9iOmI="}}}"#,
        );
        let second = file(
            dir.path(),
            "second.json",
            r#"{"auths": {"reg.example:5000/team/app": {"auth": "Y2Fyb2w6Yw=="},
                "https://index.docker.io/v1/": {"auth": "ZGF2ZTpk"}}}"#,
        );
        let files = [first, second];
        let found = |host, repo| credentials_for(&files, host, repo).unwrap().credentials;
        assert_eq!(found("reg.example:5000", "team/app"), creds("bob", "b"));
        assert_eq!(found("reg.example:5000", "other"), creds("alice", "a"));
        assert_eq!(
            found("registry-1.docker.io", "library/alpine"),
            creds("dave", "d")
        );
        assert_eq!(found("elsewhere.example", "x"), None);
    }

    #[test]
    fn helpers_and_identity_tokens_are_reported_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let helper = file(
            dir.path(),
            "config.json",
            r#"{"auths": {"reg.example": {}}, "credHelpers": {"reg.example": "secretservice"}}"#,
        );
        let found = credentials_for(std::slice::from_ref(&helper), "reg.example", "a").unwrap();
        assert_eq!(found.credentials, None);
        assert!(found
            .unusable
            .unwrap()
            .contains("credential helper docker-credential-secretservice"));
        let token = file(
            dir.path(),
            "token.json",
            r#"{"auths": {"reg.example": {"identitytoken": "tok"}}}"#,
        );
        let found = credentials_for(&[token], "reg.example", "a").unwrap();
        assert!(found.unusable.unwrap().contains("identity token"));
        // Inline credentials in a later file still count.
        let inline = file(
            dir.path(),
            "inline.json",
            r#"{"auths": {"reg.example": {"auth": "YWxpY2U6YQ=="}}}"#,
        );
        let found = credentials_for(&[helper, inline], "reg.example", "a").unwrap();
        assert_eq!(found.credentials, creds("alice", "a"));
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file_and_missing_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            ("{", "not a JSON auth file"),
            ("[]", "not a JSON object"),
            (r#"{"auths": 3}"#, "\"auths\" is not an object"),
            (r#"{"auths": {"r": {"auth": "!!"}}}"#, "is not base64"),
            (r#"{"auths": {"r": {"auth": "YWJj"}}}"#, "USER:PASSWORD"),
        ] {
            let f = file(dir.path(), "bad.json", text);
            let err = credentials_for(&[f], "r", "x").unwrap_err().to_string();
            assert!(err.contains("bad.json") && err.contains(want), "{err}");
        }
        let missing = AuthFileCandidate {
            path: dir.path().join("absent.json"),
            required: false,
        };
        assert_eq!(
            credentials_for(std::slice::from_ref(&missing), "r", "x").unwrap(),
            FoundCredentials::default()
        );
        let required = AuthFileCandidate {
            required: true,
            ..missing
        };
        let err = credentials_for(&[required], "r", "x").unwrap_err();
        assert!(err.to_string().contains("absent.json"), "{err}");
    }
}
