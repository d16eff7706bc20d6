//! Trust: which OpenPGP keys may sign images of which name, and the check
//! of an ACI's detached signature against them (issue 13).
//!
//! - [`key`]: an OpenPGP certificate (public key) as read from a key file:
//!   fingerprint, user ids, subkeys, armoured form.
//! - [`keystore`]: rkt's trust store layout (`trustedkeys/root.d/<fp>`,
//!   `trustedkeys/prefix.d/<prefix>/<fp>`) over several roots in
//!   precedence order; the keyring for a name; list, add, remove.
//! - [`verify`]: the signature policy (spec/appc-discovery.md §5): a
//!   detached signature over the ACI's bytes, streamed, checked against the
//!   keyring for the image's name.
//!
//! OpenPGP itself comes from the `pgp` crate (rPGP); this module adds the
//! trust policy that rPGP leaves to its callers (hash strength, signature
//! type and times, key flags, expiry, revocation).

pub mod key;
pub mod keystore;
pub mod verify;

pub use key::{KeyError, PublicKey};
pub use keystore::{Keyring, KeystoreError, Scope, StoredKey, StoredKeyState, TrustedKey};
pub use verify::{verify_detached, Signer, VerifyError};

/// Formats Unix seconds as an RFC 3339 UTC time (`2020-01-02T00:00:00Z`),
/// for messages about key and signature times. The civil-date conversion
/// is Howard Hinnant's `civil_from_days`, so no date crate is needed.
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_times_as_rfc3339() {
        assert_eq!(super::format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_time(1_577_923_200), "2020-01-02T00:00:00Z");
        assert_eq!(super::format_time(951_825_600), "2000-02-29T12:00:00Z");
    }
}
