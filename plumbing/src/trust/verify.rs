//! Checking a detached OpenPGP signature over an ACI against the keys
//! trusted for its name. rPGP checks the mathematics only; the policy here
//! is spec/appc-discovery.md §5 ("acido policy"), every rule refusing:
//!
//! 1. a `SIGNATURE` armour block or binary signature packets; v4 or v6;
//!    type Binary (0x00): a text or certification signature is not a
//!    signature of the image bytes;
//! 2. hash SHA-2 or SHA-3: MD5, SHA-1 and RIPEMD-160 are refused (RFC 9580
//!    §9.5: collisions make them forgeable);
//! 3. a creation time, not more than [`CLOCK_SKEW`] in the future, not
//!    before the key's creation, not past the signature's expiry;
//! 4. an issuer (fingerprint or key id) that is a trusted primary key or a
//!    subkey of one;
//! 5. the signing key may sign: the primary's newest valid self-signature,
//!    or the subkey's newest valid binding with a valid back-signature,
//!    carries the sign flag;
//! 6. neither the primary nor the signing subkey has expired, by now or at
//!    signing time (signature times are chosen by the signer, so a key
//!    that has expired cannot vouch for "old" signatures);
//! 7. neither is revoked by a valid revocation signature, whatever the
//!    reason;
//! 8. then the image bytes are hashed, streamed, and the signature checked.
//!
//! gpg and rkt accept some of these (expired after signing, revoked
//! primaries, SHA-1); the digest records the differences.

use std::io::{self, Read, Seek, SeekFrom};
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType, SignatureVersion};
use pgp::types::{KeyDetails, Tag};

use super::format_time;
use super::key::hex;
use super::keystore::Keyring;

/// How far in the future a signature's creation time may be (clocks of
/// signer and verifier differ).
pub const CLOCK_SKEW: u64 = 5 * 60;

/// Who signed: returned when a signature passes every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The trusted primary key's fingerprint (lowercase hex).
    pub fingerprint: String,
    /// Its primary user id, if it has any.
    pub user_id: Option<String>,
    /// The fingerprint of the subkey that made the signature, when not
    /// the primary.
    pub subkey: Option<String>,
    /// When the signature says it was made (Unix seconds).
    pub created: u64,
}

/// Why a signature was not accepted: each variant is one failed check.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The signature file could not be parsed.
    #[error("cannot read the signature: {message}")]
    Parse {
        /// rPGP's description.
        message: String,
    },
    /// The signature file held no signature.
    #[error("no signature found in the signature file")]
    NoSignature,
    /// No key at all is trusted for the name.
    #[error("no key is trusted for {name:?}: add the signer's key with `acido trust --prefix {name} KEYFILE`")]
    NoTrustedKey {
        /// The image name.
        name: String,
    },
    /// The signer is not among the keys trusted for the name.
    #[error("signed by key {key_id}, which is not trusted for {name:?}: if you trust it, add it with `acido trust --prefix {name} KEYFILE`")]
    UntrustedSigner {
        /// The issuer's fingerprint or key id, as the signature names it.
        key_id: String,
        /// The image name.
        name: String,
    },
    /// The signature names no issuer.
    #[error("the signature does not name the key that made it (no issuer)")]
    NoIssuer,
    /// A version other than 4 or 6.
    #[error("unsupported signature version {version}")]
    Version {
        /// The packet's version number.
        version: u8,
    },
    /// Not a signature of binary data.
    #[error("not a detached signature of binary data: the signature is of type {typ}")]
    WrongType {
        /// The type found.
        typ: String,
    },
    /// A hash algorithm that is refused.
    #[error("signature made with {algorithm}, which is refused: {algorithm} is broken for signatures; sign with SHA-256 or stronger (gpg --digest-algo SHA512)")]
    WeakHash {
        /// The algorithm's name (SHA-1, MD5, RIPEMD-160 or unknown).
        algorithm: String,
    },
    /// No creation time subpacket.
    #[error("the signature has no creation time")]
    NoCreationTime,
    /// Created in the future.
    #[error(
        "the signature was made in the future ({created}), more than 5 minutes ahead of this clock"
    )]
    FutureSignature {
        /// The creation time.
        created: String,
    },
    /// Made before the key that made it existed.
    #[error(
        "the signature ({created}) is older than key {fingerprint} that made it ({key_created})"
    )]
    OlderThanKey {
        /// The signature's creation time.
        created: String,
        /// The signing key.
        fingerprint: String,
        /// The key's creation time.
        key_created: String,
    },
    /// The signature itself expired.
    #[error("the signature expired at {at}")]
    SignatureExpired {
        /// When.
        at: String,
    },
    /// A key of the signer expired.
    #[error("key {fingerprint} expired at {at}")]
    KeyExpired {
        /// The expired key (primary or subkey).
        fingerprint: String,
        /// When.
        at: String,
    },
    /// A key of the signer is revoked.
    #[error("key {fingerprint} is revoked{reason}")]
    KeyRevoked {
        /// The revoked key (primary or subkey).
        fingerprint: String,
        /// `: <reason>` when the revocation gives one.
        reason: String,
    },
    /// The key has no valid self-signature or binding.
    #[error("key {fingerprint} has no valid self-signature: {message}")]
    InvalidKey {
        /// The key.
        fingerprint: String,
        /// What is wrong.
        message: String,
    },
    /// The key is not marked for signing.
    #[error("key {fingerprint} is not allowed to sign (its self-signature lacks the sign flag)")]
    NotSigningKey {
        /// The key.
        fingerprint: String,
    },
    /// The mathematics failed: the data or the signature was altered.
    #[error("bad signature by key {fingerprint}: the image or the signature was altered")]
    BadSignature {
        /// The key checked against.
        fingerprint: String,
        /// rPGP's description (not shown: it may span lines and says
        /// nothing the user can act on).
        message: String,
    },
    /// Several signatures, none passed; each one's reason.
    #[error("no signature passed: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<VerifyError>),
    /// Reading the image failed.
    #[error("reading the image: {0}")]
    Io(#[from] io::Error),
}

/// Checks the detached `signature` (armoured or binary) over `data`, the
/// ACI's bytes as published (compressed or not), against the keys of
/// `keyring`, trusted for the image name `name`, at time `now`.
///
/// `data` is read as a stream (memory independent of the image size) and
/// rewound for each signature that passes the cheap checks, so several
/// signatures in one file cost one pass each.
pub fn verify_detached<R: Read + Seek>(
    keyring: &Keyring,
    name: &str,
    signature: &[u8],
    mut data: R,
    now: SystemTime,
) -> Result<Signer, VerifyError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signatures = parse_signatures(signature)?;
    if keyring.keys.is_empty() {
        return Err(VerifyError::NoTrustedKey {
            name: name.to_owned(),
        });
    }
    let mut errors = Vec::new();
    for sig in &signatures {
        match check(keyring, name, sig, &mut data, now) {
            Ok(signer) => return Ok(signer),
            Err(e) => errors.push(e),
        }
    }
    Err(if errors.len() == 1 {
        errors.remove(0)
    } else {
        VerifyError::Several(errors)
    })
}

/// Every signature packet of the file; anything else is an error (a
/// message or key block is not a detached signature).
fn parse_signatures(bytes: &[u8]) -> Result<Vec<Signature>, VerifyError> {
    let parse_err = |e: pgp::errors::Error| VerifyError::Parse {
        message: e.to_string(),
    };
    let (sigs, _headers) = DetachedSignature::from_reader_many(bytes).map_err(parse_err)?;
    let sigs = sigs
        .map(|s| s.map(|s| s.signature))
        .collect::<Result<Vec<_>, _>>()
        .map_err(parse_err)?;
    if sigs.is_empty() {
        return Err(VerifyError::NoSignature);
    }
    Ok(sigs)
}

/// The key a signature names: a trusted primary, or a subkey of one.
enum Signing<'a> {
    Primary(&'a SignedPublicKey),
    Subkey(&'a SignedPublicKey, &'a SignedPublicSubKey),
}

fn check<R: Read + Seek>(
    keyring: &Keyring,
    name: &str,
    sig: &Signature,
    data: &mut R,
    now: u64,
) -> Result<Signer, VerifyError> {
    // 1. Version and type.
    let version = sig.version();
    if !matches!(version, SignatureVersion::V4 | SignatureVersion::V6) {
        return Err(VerifyError::Version {
            version: u8::from(version),
        });
    }
    if sig.typ() != Some(SignatureType::Binary) {
        return Err(VerifyError::WrongType {
            typ: sig
                .typ()
                .map(|t| format!("{t:?} (0x{:02x})", u8::from(t)))
                .unwrap_or_else(|| "unknown".to_owned()),
        });
    }
    // 2. Hash.
    match sig.hash_alg() {
        Some(
            HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha224
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512,
        ) => {}
        other => {
            return Err(VerifyError::WeakHash {
                algorithm: match other {
                    Some(HashAlgorithm::Sha1) => "SHA-1".to_owned(),
                    Some(HashAlgorithm::Md5) => "MD5".to_owned(),
                    Some(HashAlgorithm::Ripemd160) => "RIPEMD-160".to_owned(),
                    Some(alg) => format!("hash algorithm {alg}"),
                    None => "an unknown hash algorithm".to_owned(),
                },
            })
        }
    }
    // 3. Times of the signature itself.
    let created = u64::from(sig.created().ok_or(VerifyError::NoCreationTime)?.as_secs());
    if created > now.saturating_add(CLOCK_SKEW) {
        return Err(VerifyError::FutureSignature {
            created: format_time(created),
        });
    }
    if let Some(valid_for) = sig.signature_expiration_time() {
        let valid_for = u64::from(valid_for.as_secs());
        if valid_for != 0 && created.saturating_add(valid_for) <= now {
            return Err(VerifyError::SignatureExpired {
                at: format_time(created.saturating_add(valid_for)),
            });
        }
    }
    // 4. Issuer.
    let signing = find_signer(keyring, name, sig)?;
    // 5-7. The key may sign, now and when it signed.
    let (primary, signing_fp) = match signing {
        Signing::Primary(key) => {
            let self_sig = check_primary(key, created, now)?;
            if !self_sig.key_flags().sign() {
                return Err(VerifyError::NotSigningKey {
                    fingerprint: fp(key),
                });
            }
            (key, None)
        }
        Signing::Subkey(key, sub) => {
            check_primary(key, created, now)?;
            check_subkey(key, sub, created, now)?;
            (key, Some(format!("{:x}", sub.key.fingerprint())))
        }
    };
    let key_created = match signing {
        Signing::Primary(key) => key.primary_key.created_at().as_secs(),
        Signing::Subkey(_, sub) => sub.key.created_at().as_secs(),
    };
    if created < u64::from(key_created) {
        return Err(VerifyError::OlderThanKey {
            created: format_time(created),
            fingerprint: signing_fp.clone().unwrap_or_else(|| fp(primary)),
            key_created: format_time(u64::from(key_created)),
        });
    }
    // 8. The bytes.
    data.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, &mut *data);
    let result = match signing {
        Signing::Primary(key) => sig.verify(&key.primary_key, &mut reader),
        Signing::Subkey(_, sub) => sig.verify(&sub.key, &mut reader),
    };
    result.map_err(|e| match e {
        pgp::errors::Error::IO { source, .. } => VerifyError::Io(source),
        e => VerifyError::BadSignature {
            fingerprint: signing_fp.clone().unwrap_or_else(|| fp(primary)),
            message: e.to_string(),
        },
    })?;
    Ok(Signer {
        fingerprint: fp(primary),
        user_id: keyring
            .keys
            .get(&fp(primary))
            .and_then(|k| k.key.primary_user_id()),
        subkey: signing_fp,
        created,
    })
}

fn fp(key: &SignedPublicKey) -> String {
    format!("{:x}", key.primary_key.fingerprint())
}

/// Finds the key the signature names among the trusted ones: by issuer
/// fingerprint when given (it cannot collide), else by key id.
fn find_signer<'a>(
    keyring: &'a Keyring,
    name: &str,
    sig: &Signature,
) -> Result<Signing<'a>, VerifyError> {
    let fingerprints = sig.issuer_fingerprint();
    let key_ids = sig.issuer_key_id();
    if fingerprints.is_empty() && key_ids.is_empty() {
        return Err(VerifyError::NoIssuer);
    }
    for trusted in keyring.keys.values() {
        let key = trusted.key.signed();
        let primary_fp = key.primary_key.fingerprint();
        let primary_id = key.primary_key.legacy_key_id();
        if fingerprints.iter().any(|f| **f == primary_fp)
            || (fingerprints.is_empty() && key_ids.iter().any(|k| **k == primary_id))
        {
            return Ok(Signing::Primary(key));
        }
        for sub in &key.public_subkeys {
            let sub_fp = sub.key.fingerprint();
            let sub_id = sub.key.legacy_key_id();
            if fingerprints.iter().any(|f| **f == sub_fp)
                || (fingerprints.is_empty() && key_ids.iter().any(|k| **k == sub_id))
            {
                return Ok(Signing::Subkey(key, sub));
            }
        }
    }
    let key_id = match (fingerprints.first(), key_ids.first()) {
        (Some(f), _) => format!("{f:x}"),
        (None, Some(k)) => hex(k.as_ref()),
        (None, None) => String::new(),
    };
    Err(VerifyError::UntrustedSigner {
        key_id,
        name: name.to_owned(),
    })
}

/// Checks the primary key: not revoked, a valid self-signature (the
/// newest, direct-key or user id certification), not expired at `created`
/// nor `now`. Returns that self-signature (its flags say what it may do).
fn check_primary(key: &SignedPublicKey, created: u64, now: u64) -> Result<&Signature, VerifyError> {
    let primary = &key.primary_key;
    for rev in &key.details.revocation_signatures {
        if rev.typ() == Some(SignatureType::KeyRevocation) && rev.verify_key(primary).is_ok() {
            return Err(revoked(format!("{:x}", primary.fingerprint()), rev));
        }
    }
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|s| s.verify_key(primary).is_ok());
    let certifications = key.details.users.iter().flat_map(|u| {
        u.signatures.iter().filter(move |s| {
            s.is_certification()
                && s.typ() != Some(SignatureType::CertRevocation)
                && s.verify_certification(primary, Tag::UserId, &u.id).is_ok()
        })
    });
    let newest = direct
        .chain(certifications)
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
        .ok_or_else(|| VerifyError::InvalidKey {
            fingerprint: format!("{:x}", primary.fingerprint()),
            message: "no verifiable user id certification or direct-key signature".to_owned(),
        })?;
    check_expiry(
        format!("{:x}", primary.fingerprint()),
        primary.created_at().as_secs(),
        newest,
        created,
        now,
    )?;
    Ok(newest)
}

/// Checks a signing subkey: not revoked, its newest valid binding has the
/// sign flag and a valid back-signature (so the subkey agreed to belong to
/// this primary), not expired.
fn check_subkey(
    key: &SignedPublicKey,
    sub: &SignedPublicSubKey,
    created: u64,
    now: u64,
) -> Result<(), VerifyError> {
    let primary = &key.primary_key;
    let sub_fp = format!("{:x}", sub.key.fingerprint());
    for s in &sub.signatures {
        if s.typ() == Some(SignatureType::SubkeyRevocation)
            && s.verify_subkey_binding(primary, &sub.key).is_ok()
        {
            return Err(revoked(sub_fp, s));
        }
    }
    let newest = sub
        .signatures
        .iter()
        .filter(|s| {
            s.typ() == Some(SignatureType::SubkeyBinding)
                && s.verify_subkey_binding(primary, &sub.key).is_ok()
        })
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
        .ok_or_else(|| VerifyError::InvalidKey {
            fingerprint: sub_fp.clone(),
            message: "no verifiable subkey binding".to_owned(),
        })?;
    if !newest.key_flags().sign() {
        return Err(VerifyError::NotSigningKey {
            fingerprint: sub_fp,
        });
    }
    let backsig_ok = newest
        .embedded_signature()
        .is_some_and(|b| b.verify_primary_key_binding(&sub.key, primary).is_ok());
    if !backsig_ok {
        return Err(VerifyError::InvalidKey {
            fingerprint: sub_fp,
            message: "the signing subkey has no valid back-signature".to_owned(),
        });
    }
    check_expiry(sub_fp, sub.key.created_at().as_secs(), newest, created, now)
}

/// Refuses a key whose self-signature gives an expiry at or before the
/// signature's creation or now.
fn check_expiry(
    fingerprint: String,
    key_created: u32,
    self_sig: &Signature,
    created: u64,
    now: u64,
) -> Result<(), VerifyError> {
    let Some(valid_for) = self_sig.key_expiration_time() else {
        return Ok(());
    };
    if valid_for.as_secs() == 0 {
        return Ok(());
    }
    let expires = u64::from(key_created) + u64::from(valid_for.as_secs());
    if expires <= now || expires <= created {
        return Err(VerifyError::KeyExpired {
            fingerprint,
            at: format_time(expires),
        });
    }
    Ok(())
}

fn revoked(fingerprint: String, rev: &Signature) -> VerifyError {
    use pgp::packet::RevocationCode;
    let code = rev.revocation_reason_code().map(|c| match c {
        RevocationCode::NoReason => "no reason given".to_owned(),
        RevocationCode::KeySuperseded => "superseded".to_owned(),
        RevocationCode::KeyCompromised => "compromised".to_owned(),
        RevocationCode::KeyRetired => "retired".to_owned(),
        other => format!("reason code {}", u8::from(*other)),
    });
    let text = rev
        .revocation_reason_string()
        .map(|s| String::from_utf8_lossy(s).trim().to_owned())
        .filter(|s| !s.is_empty());
    let reason = match (code, text) {
        (Some(c), Some(t)) => format!(": {c}: {t}"),
        (Some(c), None) => format!(": {c}"),
        (None, Some(t)) => format!(": {t}"),
        (None, None) => String::new(),
    };
    VerifyError::KeyRevoked {
        fingerprint,
        reason,
    }
}
