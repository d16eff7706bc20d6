//! Isolators (aci-format §7): a name and a raw JSON value. The spec allows
//! any AC identifier with any value; the reference v0.8.11 code knows 14
//! names, decodes and checks their values, and rejects every other name
//! with `invalid isolator`. Values are kept as written (compacted) because
//! the reference echoes them back raw when it prints a manifest.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fmt;

use super::decode::{
    bool_into, int_into, string_into, string_map_into, Decoded, Fail, Frame, GoSlice,
};
use super::json::{self, Node};
use super::types::AcIdentifier;

/// Why an isolator value is not acceptable.
///
/// Display messages name the isolator; [`IsolatorError::reference_message`]
/// gives the reference's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsolatorError {
    /// A CPU or memory isolator with `"default": true`.
    #[error("isolator {name}: default must be false")]
    DefaultMustBeFalse {
        /// The isolator name.
        name: &'static str,
    },
    /// A bandwidth or IOPS isolator without `"default": true`.
    #[error("isolator {name}: default must be true")]
    DefaultMustBeTrue {
        /// The isolator name.
        name: &'static str,
    },
    /// A bandwidth or IOPS isolator with a `request`.
    #[error("isolator {name}: request is not supported, leave it out")]
    RequestNotSupported {
        /// The isolator name.
        name: &'static str,
    },
    /// A resource quantity that is not a Kubernetes-style quantity.
    #[error("isolator {name}: quantity {input:?}: {reason}")]
    BadQuantity {
        /// The isolator name.
        name: &'static str,
        /// The quantity as written.
        input: String,
        /// The reference's parser error.
        reason: &'static str,
    },
    /// A capability or seccomp isolator with an empty `set`.
    #[error("isolator {name}: set must be non-empty")]
    EmptySet {
        /// The isolator name.
        name: &'static str,
    },
    /// A seccomp `errno` not of the form `E[A-Z0-9]*`.
    #[error(
        "isolator {name}: errno {errno:?} must be \"E\" followed by upper-case letters or digits"
    )]
    BadErrno {
        /// The isolator name.
        name: &'static str,
        /// The rejected errno.
        errno: String,
        /// Whether the first character is the problem (it is not `E`).
        first: bool,
    },
    /// An integer isolator value out of its range.
    #[error("isolator {name}: {value} is not between {min} and {max}")]
    OutOfRange {
        /// The isolator name.
        name: &'static str,
        /// The rejected value.
        value: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// An SELinux context field that is empty or holds a `:`.
    #[error("isolator os/linux/selinux-context: invalid {field} value {value:?}")]
    BadSelinux {
        /// `user`, `role`, `type` or `level`.
        field: &'static str,
        /// The rejected value.
        value: String,
    },
    /// An isolator name the reference does not know.
    #[error("isolator {name:?} is not one the reference implementation knows")]
    Unknown {
        /// The isolator name.
        name: String,
    },
    /// A second instance of an isolator that may appear once.
    #[error("isolator {name} may appear only once")]
    TooMany {
        /// The isolator name.
        name: String,
    },
    /// Both seccomp sets in one app.
    #[error(
        "isolators os/linux/seccomp-retain-set and os/linux/seccomp-remove-set exclude each other"
    )]
    Incompatible,
}

impl IsolatorError {
    /// The message appc v0.8.11 gives for this problem.
    pub fn reference_message(&self) -> String {
        match self {
            IsolatorError::DefaultMustBeFalse { .. } => "default must be false".to_owned(),
            IsolatorError::DefaultMustBeTrue { .. } => "default must be true".to_owned(),
            IsolatorError::RequestNotSupported { .. } => {
                "request not supported by this resource, must be empty".to_owned()
            }
            IsolatorError::BadQuantity { reason, .. } => (*reason).to_owned(),
            IsolatorError::EmptySet { .. } => "set must be non-empty".to_owned(),
            IsolatorError::BadErrno { errno, first, .. } => {
                if *first {
                    format!("errno must start with an 'E' character, got {errno}")
                } else {
                    format!("errno can only contain upper case or numeric characters, got {errno}")
                }
            }
            IsolatorError::OutOfRange {
                name,
                value,
                min,
                max,
            } => format!("{name} must be between {min} and {max}, got {value}"),
            IsolatorError::BadSelinux { field, value } => {
                format!("invalid {field} value {}", json::go_quote(value))
            }
            IsolatorError::Unknown { .. } => "invalid isolator".to_owned(),
            IsolatorError::TooMany { name } => {
                // The stray quote is in the reference's format string.
                format!("isolators set contains too many instances of type {name}\"")
            }
            IsolatorError::Incompatible => "isolators set contains incompatible types".to_owned(),
        }
    }
}

impl From<IsolatorError> for Fail {
    fn from(e: IsolatorError) -> Self {
        Fail::Invalid(e.reference_message())
    }
}

/// A JSON value kept as compact text, the way Go re-marshals a
/// `json.RawMessage` (white space dropped, `<>&` escaped).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawJson(String);

impl RawJson {
    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a `serde_json::Value` (duplicate keys collapse).
    pub fn to_value(&self) -> serde_json::Value {
        // The text is valid JSON by construction; Null is unreachable.
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    /// The value at `node`'s span, compacted. Invalid UTF-8 (which Go
    /// would copy through) is replaced, as it cannot live in a `String`.
    pub(crate) fn from_source(source: &[u8], node: &Node) -> Self {
        RawJson(json::compact(&String::from_utf8_lossy(
            &source[node.start..node.end],
        )))
    }
}

impl From<&serde_json::Value> for RawJson {
    fn from(value: &serde_json::Value) -> Self {
        RawJson(json::compact(&value.to_string()))
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `resource/cpu` and `resource/memory` (requests allowed, default false).
pub const RESOURCE_CPU: &str = "resource/cpu";
/// Memory limits.
pub const RESOURCE_MEMORY: &str = "resource/memory";
/// Block device bandwidth (default true, no request).
pub const RESOURCE_BLOCK_BANDWIDTH: &str = "resource/block-bandwidth";
/// Block device IOPS (default true, no request).
pub const RESOURCE_BLOCK_IOPS: &str = "resource/block-iops";
/// Network bandwidth (default true, no request).
pub const RESOURCE_NETWORK_BANDWIDTH: &str = "resource/network-bandwidth";
/// Capabilities to keep.
pub const CAPABILITIES_RETAIN: &str = "os/linux/capabilities-retain-set";
/// Capabilities to drop.
pub const CAPABILITIES_REMOVE: &str = "os/linux/capabilities-remove-set";
/// Syscalls to allow.
pub const SECCOMP_RETAIN: &str = "os/linux/seccomp-retain-set";
/// Syscalls to forbid.
pub const SECCOMP_REMOVE: &str = "os/linux/seccomp-remove-set";
/// The no_new_privs bit.
pub const NO_NEW_PRIVILEGES: &str = "os/linux/no-new-privileges";
/// The OOM score adjustment.
pub const OOM_SCORE_ADJ: &str = "os/linux/oom-score-adj";
/// CPU shares.
pub const CPU_SHARES: &str = "os/linux/cpu-shares";
/// The SELinux context.
pub const SELINUX_CONTEXT: &str = "os/linux/selinux-context";
/// Sysctl settings.
pub const SYSCTL: &str = "os/unix/sysctl";

/// Every isolator name the reference v0.8.11 knows.
pub const KNOWN_ISOLATORS: [&str; 14] = [
    RESOURCE_CPU,
    RESOURCE_MEMORY,
    RESOURCE_BLOCK_BANDWIDTH,
    RESOURCE_BLOCK_IOPS,
    RESOURCE_NETWORK_BANDWIDTH,
    CAPABILITIES_RETAIN,
    CAPABILITIES_REMOVE,
    SECCOMP_RETAIN,
    SECCOMP_REMOVE,
    NO_NEW_PRIVILEGES,
    OOM_SCORE_ADJ,
    CPU_SHARES,
    SELINUX_CONTEXT,
    SYSCTL,
];

/// A resource isolator value: Kubernetes-style quantities kept as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resource {
    /// `default`.
    pub default: bool,
    /// `request`, when given.
    pub request: Option<String>,
    /// `limit`, when given.
    pub limit: Option<String>,
}

/// The decoded value of a known isolator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IsolatorValue {
    /// `resource/*`: the name says which resource.
    Resource(Resource),
    /// `os/linux/capabilities-*-set`.
    Capabilities {
        /// The capability names, repeats allowed.
        set: Vec<String>,
    },
    /// `os/linux/seccomp-*-set`.
    Seccomp {
        /// Syscall names or groups.
        set: Vec<String>,
        /// The errno returned for filtered calls, possibly empty.
        errno: String,
    },
    /// `os/linux/no-new-privileges`.
    NoNewPrivileges(bool),
    /// `os/linux/oom-score-adj` or `os/linux/cpu-shares`.
    Integer(i64),
    /// `os/linux/selinux-context`.
    Selinux {
        /// SELinux user.
        user: String,
        /// SELinux role.
        role: String,
        /// SELinux type.
        kind: String,
        /// SELinux level.
        level: String,
    },
    /// `os/unix/sysctl`.
    Sysctl(BTreeMap<String, String>),
    /// A name the reference does not know; the spec allows it.
    Unknown,
}

/// One isolator of an app.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Isolator {
    /// The isolator name; empty when the JSON left it out.
    pub name: AcIdentifier,
    /// The value as written, `None` when absent or `null`.
    pub value: Option<RawJson>,
    /// The decoded value ([`IsolatorValue::Unknown`] for unknown names).
    pub parsed: IsolatorValue,
}

fn known_name(name: &str) -> Option<&'static str> {
    KNOWN_ISOLATORS.iter().copied().find(|k| *k == name)
}

impl Isolator {
    /// Whether several instances of this isolator may appear in one app.
    fn multiple_allowed(name: &str) -> bool {
        !matches!(
            name,
            SECCOMP_RETAIN | SECCOMP_REMOVE | OOM_SCORE_ADJ | CPU_SHARES | SELINUX_CONTEXT | SYSCTL
        )
    }

    /// The isolator this one may not be combined with.
    fn conflicts_with(name: &str) -> Option<&'static str> {
        match name {
            SECCOMP_RETAIN => Some(SECCOMP_REMOVE),
            SECCOMP_REMOVE => Some(SECCOMP_RETAIN),
            _ => None,
        }
    }

    /// The value check the reference runs (`AssertValid`).
    pub fn check_value(&self) -> Result<(), IsolatorError> {
        let Some(name) = known_name(self.name.as_str()) else {
            return Err(IsolatorError::Unknown {
                name: self.name.to_string(),
            });
        };
        match &self.parsed {
            IsolatorValue::Resource(r) => match name {
                RESOURCE_CPU | RESOURCE_MEMORY if r.default => {
                    Err(IsolatorError::DefaultMustBeFalse { name })
                }
                RESOURCE_CPU | RESOURCE_MEMORY => Ok(()),
                _ if !r.default => Err(IsolatorError::DefaultMustBeTrue { name }),
                _ if r.request.is_some() => Err(IsolatorError::RequestNotSupported { name }),
                _ => Ok(()),
            },
            IsolatorValue::Capabilities { set } if set.is_empty() => {
                Err(IsolatorError::EmptySet { name })
            }
            IsolatorValue::Seccomp { set, errno } => {
                if set.is_empty() {
                    return Err(IsolatorError::EmptySet { name });
                }
                check_errno(name, errno)
            }
            IsolatorValue::Integer(value) => {
                let (min, max) = if name == CPU_SHARES {
                    (2, 262_144)
                } else {
                    (-1000, 1000)
                };
                if (min..=max).contains(value) {
                    Ok(())
                } else {
                    Err(IsolatorError::OutOfRange {
                        name,
                        value: *value,
                        min,
                        max,
                    })
                }
            }
            IsolatorValue::Selinux {
                user,
                role,
                kind,
                level,
            } => {
                for (field, value, colon_ok) in [
                    ("user", user, false),
                    ("role", role, false),
                    ("type", kind, false),
                    ("level", level, true),
                ] {
                    if value.is_empty() || (!colon_ok && value.contains(':')) {
                        return Err(IsolatorError::BadSelinux {
                            field,
                            value: value.clone(),
                        });
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Go's `unicode.IsUpper` is the Lu category; Rust's `is_uppercase` adds
/// Other_Uppercase (circled and squared letters), which Go rejects.
fn go_is_upper(c: char) -> bool {
    c.is_uppercase() && !matches!(c, '\u{24b6}'..='\u{24cf}' | '\u{1f130}'..='\u{1f189}')
}

fn check_errno(name: &'static str, errno: &str) -> Result<(), IsolatorError> {
    for (i, c) in errno.chars().enumerate() {
        if i == 0 && c != 'E' {
            return Err(IsolatorError::BadErrno {
                name,
                errno: errno.to_owned(),
                first: true,
            });
        }
        if !(go_is_upper(c) || c.is_numeric()) {
            return Err(IsolatorError::BadErrno {
                name,
                errno: errno.to_owned(),
                first: false,
            });
        }
    }
    Ok(())
}

/// The app-level isolator checks (`Isolators.assertValid`), in order:
/// unknown names, each value, repeats of single-instance names, conflicts.
pub fn check_isolators(isolators: &[Isolator]) -> Result<(), IsolatorError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for isolator in isolators {
        isolator.check_value()?;
        let name = isolator.name.as_str();
        if seen.contains(&name) && !Isolator::multiple_allowed(name) {
            return Err(IsolatorError::TooMany {
                name: name.to_owned(),
            });
        }
        if let Some(other) = Isolator::conflicts_with(name) {
            if seen.contains(&other) {
                return Err(IsolatorError::Incompatible);
            }
        }
        seen.insert(name);
    }
    Ok(())
}

const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const QUANTITY_NUMERIC: &str = "unable to parse numeric part of quantity";
const QUANTITY_SUFFIX: &str = "unable to parse quantity's suffix";

struct QuantityParts<'a> {
    value: &'a str,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// The Kubernetes `parseQuantityString` scanner vendored in appc.
/// `Ok(None)` is its early exit for an all-zero number.
fn split_quantity(s: &str) -> Result<Option<QuantityParts<'_>>, &'static str> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    if let Some(b'-' | b'+') = b.first() {
        pos += 1;
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(None);
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos >= end {
        return Ok(Some(QuantityParts {
            value: s,
            num: &s[num_start..],
            denom: "",
            suffix: "",
        }));
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        if pos >= end {
            return Ok(Some(QuantityParts {
                value: s,
                num,
                denom,
                suffix: "",
            }));
        }
    }
    let value = &s[..pos];
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos >= end {
        return Ok(Some(QuantityParts {
            value,
            num,
            denom,
            suffix: &s[suffix_start..],
        }));
    }
    if let b'-' | b'+' = b[pos] {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos >= end {
        return Ok(Some(QuantityParts {
            value,
            num,
            denom,
            suffix: &s[suffix_start..],
        }));
    }
    Err(QUANTITY_FORMAT)
}

/// (base, exponent, is binary) of a quantity suffix.
fn interpret_suffix(suffix: &str) -> Option<(u32, i64, bool)> {
    let decimal = [
        ("", 0),
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    if let Some((_, e)) = decimal.iter().find(|(s, _)| *s == suffix) {
        return Some((10, *e, false));
    }
    let binary = [
        ("Ki", 10),
        ("Mi", 20),
        ("Gi", 30),
        ("Ti", 40),
        ("Pi", 50),
        ("Ei", 60),
    ];
    if let Some((_, e)) = binary.iter().find(|(s, _)| *s == suffix) {
        return Some((2, *e, true));
    }
    let rest = suffix.strip_prefix(['e', 'E']).filter(|r| !r.is_empty())?;
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    rest.parse::<i64>().ok().map(|e| (10, e, false))
}

/// `resource.ParseQuantity` as vendored in appc v0.8.11: only whether it
/// fails and with which of its three errors.
pub(crate) fn check_quantity(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err(QUANTITY_FORMAT);
    }
    if s == "0" {
        return Ok(());
    }
    let Some(parts) = split_quantity(s)? else {
        return Ok(());
    };
    let (_, exponent, binary) = interpret_suffix(parts.suffix).ok_or(QUANTITY_SUFFIX)?;
    let digits = (parts.num.len() + parts.denom.len()) as i64;
    // The fast path works in int64 when the digits fit; otherwise the
    // value goes through inf.Dec, which fails only if there is no digit.
    let precision = if binary {
        if exponent >= 0 && parts.denom.is_empty() {
            15 - parts.num.len() as i64 - ((exponent as f32) * 3.0 / 10.0) as i64 - 1
        } else {
            -1
        }
    } else {
        18 - digits
    };
    let scale = if binary { 0 } else { exponent } - parts.denom.len() as i64;
    let fast = precision >= 0 && scale >= -9;
    let fits = || {
        let shifted: String = format!("{}{}", parts.num, parts.denom);
        let Ok(n) = shifted.parse::<i64>() else {
            return false;
        };
        let mantissa: i64 = if binary { 1i64 << exponent.min(62) } else { 1 };
        n.checked_mul(mantissa).is_some()
    };
    if fast && fits() {
        return Ok(());
    }
    if parts.value.bytes().any(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(QUANTITY_NUMERIC)
    }
}

/// What the reference's `Quantity.UnmarshalJSON` parses: the raw text,
/// with surrounding quotes dropped (escapes are *not* decoded), trimmed.
fn quantity_text(source: &[u8], node: &Node) -> String {
    let raw = String::from_utf8_lossy(&source[node.start..node.end]);
    let raw = raw.as_ref();
    let inner = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        &raw[1..raw.len() - 1]
    } else {
        raw
    };
    inner.trim().to_owned()
}

/// Decodes one element of `isolators` (the reference's
/// `Isolator.UnmarshalJSON`), including the value of a known isolator.
pub(crate) fn decode_isolator(source: &[u8], node: &Node) -> Decoded<Isolator> {
    let mut frame = Frame::new();
    let mut name = AcIdentifier::empty();
    let mut value: Option<&Node> = None;
    frame.object(
        node,
        "isolator",
        "types.isolator",
        &["name", "value"],
        |f, i, v| {
            if i == 0 {
                name = f.custom(|| super::decode_identifier(v))?;
            } else {
                value = if v.is_null() { None } else { Some(v) };
            }
            Ok(())
        },
    )?;
    frame.finish()?;
    let raw = value.map(|v| RawJson::from_source(source, v));
    let Some(known) = known_name(name.as_str()) else {
        return Ok(Isolator {
            name,
            value: raw,
            parsed: IsolatorValue::Unknown,
        });
    };
    let Some(value) = value else {
        // The reference dereferences the nil value here and panics.
        return Err(Fail::IsolatorWithoutValue {
            name: known.to_owned(),
        });
    };
    let parsed = decode_value(source, known, value)?;
    let isolator = Isolator {
        name,
        value: raw,
        parsed,
    };
    isolator.check_value()?;
    Ok(isolator)
}

fn decode_value(source: &[u8], name: &'static str, node: &Node) -> Decoded<IsolatorValue> {
    let mut frame = Frame::new();
    let parsed = match name {
        RESOURCE_CPU
        | RESOURCE_MEMORY
        | RESOURCE_BLOCK_BANDWIDTH
        | RESOURCE_BLOCK_IOPS
        | RESOURCE_NETWORK_BANDWIDTH => {
            let mut r = Resource::default();
            let fields = ["default", "request", "limit"];
            frame.object(
                node,
                "resourceValue",
                "types.resourceValue",
                &fields,
                |f, i, v| {
                    if i == 0 {
                        bool_into(f, v, "bool", &mut r.default);
                        return Ok(());
                    }
                    let slot = if i == 1 { &mut r.request } else { &mut r.limit };
                    if v.is_null() {
                        *slot = None;
                        return Ok(());
                    }
                    let text = quantity_text(source, v);
                    f.custom(|| {
                        check_quantity(&text).map_err(|reason| {
                            Fail::from(IsolatorError::BadQuantity {
                                name,
                                input: text.clone(),
                                reason,
                            })
                        })
                    })?;
                    *slot = Some(text);
                    Ok(())
                },
            )?;
            IsolatorValue::Resource(r)
        }
        CAPABILITIES_RETAIN | CAPABILITIES_REMOVE => {
            let mut set = GoSlice::<String>::nil();
            frame.object(
                node,
                "linuxCapabilitiesSetValue",
                "types.linuxCapabilitiesSetValue",
                &["set"],
                |f, _, v| {
                    set.decode(f, v, "[]types.LinuxCapability", |f, item, slot| {
                        string_into(f, item, "types.LinuxCapability", slot);
                        Ok(())
                    })
                },
            )?;
            IsolatorValue::Capabilities {
                set: set.into_vec(),
            }
        }
        SECCOMP_RETAIN | SECCOMP_REMOVE => {
            let mut set = GoSlice::<String>::nil();
            let mut errno = String::new();
            frame.object(
                node,
                "linuxSeccompValue",
                "types.linuxSeccompValue",
                &["set", "errno"],
                |f, i, v| {
                    if i == 0 {
                        set.decode(f, v, "[]types.LinuxSeccompEntry", |f, item, slot| {
                            string_into(f, item, "types.LinuxSeccompEntry", slot);
                            Ok(())
                        })
                    } else {
                        string_into(f, v, "types.LinuxSeccompErrno", &mut errno);
                        Ok(())
                    }
                },
            )?;
            IsolatorValue::Seccomp {
                set: set.into_vec(),
                errno,
            }
        }
        NO_NEW_PRIVILEGES => {
            let mut b = false;
            bool_into(&mut frame, node, "bool", &mut b);
            IsolatorValue::NoNewPrivileges(b)
        }
        OOM_SCORE_ADJ | CPU_SHARES => {
            let mut n = 0;
            int_into(&mut frame, node, "int", &mut n);
            IsolatorValue::Integer(n)
        }
        SELINUX_CONTEXT => {
            let mut parts: [String; 4] = Default::default();
            let types = [
                "types.LinuxSELinuxUser",
                "types.LinuxSELinuxRole",
                "types.LinuxSELinuxType",
                "types.LinuxSELinuxLevel",
            ];
            frame.object(
                node,
                "linuxSELinuxValue",
                "types.linuxSELinuxValue",
                &["user", "role", "type", "level"],
                |f, i, v| {
                    string_into(f, v, types[i], &mut parts[i]);
                    Ok(())
                },
            )?;
            let [user, role, kind, level] = parts;
            IsolatorValue::Selinux {
                user,
                role,
                kind,
                level,
            }
        }
        _ => {
            let mut map = None;
            string_map_into(&mut frame, node, "map[string]string", &mut map);
            IsolatorValue::Sysctl(map.unwrap_or_default())
        }
    };
    frame.finish()?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::super::json::parse;
    use super::*;

    fn isolator(json: &str) -> Result<Isolator, String> {
        let node = parse(json.as_bytes()).unwrap();
        decode_isolator(json.as_bytes(), &node).map_err(|f| f.message())
    }

    #[test]
    fn known_isolators_decode_and_check() {
        // aci-format §15 case 12.
        let cpu = isolator(r#"{"name":"resource/cpu","value":{ "request":"250m", "limit":"1" }}"#)
            .unwrap();
        assert_eq!(
            cpu.value.as_ref().map(RawJson::as_str),
            Some(r#"{"request":"250m","limit":"1"}"#)
        );
        assert_eq!(
            isolator(r#"{"name":"resource/cpu","value":{"default":true}}"#).unwrap_err(),
            "default must be false"
        );
        assert_eq!(
            isolator(r#"{"name":"resource/block-iops","value":{"limit":"1"}}"#).unwrap_err(),
            "default must be true"
        );
        assert_eq!(
            isolator(
                r#"{"name":"resource/network-bandwidth","value":{"default":true,"request":"1"}}"#
            )
            .unwrap_err(),
            "request not supported by this resource, must be empty"
        );
        assert_eq!(
            isolator(r#"{"name":"os/linux/cpu-shares","value":1}"#).unwrap_err(),
            "os/linux/cpu-shares must be between 2 and 262144, got 1"
        );
        assert_eq!(
            isolator(r#"{"name":"os/linux/oom-score-adj","value":-1001}"#).unwrap_err(),
            "os/linux/oom-score-adj must be between -1000 and 1000, got -1001"
        );
        assert_eq!(
            isolator(r#"{"name":"os/linux/capabilities-retain-set","value":{"set":[]}}"#)
                .unwrap_err(),
            "set must be non-empty"
        );
        assert_eq!(
            isolator(
                r#"{"name":"os/linux/seccomp-remove-set","value":{"set":["x"],"errno":"eperm"}}"#
            )
            .unwrap_err(),
            "errno must start with an 'E' character, got eperm"
        );
        assert_eq!(
            isolator(
                r#"{"name":"os/linux/seccomp-remove-set","value":{"set":["x"],"errno":"Eperm"}}"#
            )
            .unwrap_err(),
            "errno can only contain upper case or numeric characters, got Eperm"
        );
        assert_eq!(
            isolator(r#"{"name":"os/linux/selinux-context","value":{"user":"a:b","role":"r","type":"t","level":"s0:c1"}}"#)
                .unwrap_err(),
            "invalid user value \"a:b\""
        );
        assert!(isolator(r#"{"name":"os/linux/selinux-context","value":{"user":"u","role":"r","type":"t","level":"s0:c1"}}"#).is_ok());
        assert_eq!(
            isolator(r#"{"name":"os/unix/sysctl","value":{"a":"1"}}"#)
                .unwrap()
                .parsed,
            IsolatorValue::Sysctl([("a".to_owned(), "1".to_owned())].into())
        );
    }

    #[test]
    fn missing_value_of_a_known_isolator_is_a_clean_error() {
        assert!(matches!(
            decode_isolator(
                b"{}",
                &parse(br#"{"name":"os/linux/no-new-privileges"}"#).unwrap()
            ),
            Err(Fail::IsolatorWithoutValue { .. })
        ));
        let src = r#"{"name":"os/linux/no-new-privileges","value":null}"#;
        assert!(matches!(
            decode_isolator(src.as_bytes(), &parse(src.as_bytes()).unwrap()),
            Err(Fail::IsolatorWithoutValue { .. })
        ));
    }

    #[test]
    fn unknown_isolators_decode_but_fail_the_app_check() {
        let unknown = isolator(r#"{"name":"example.com/mine","value":{"x":[1, 2]}}"#).unwrap();
        assert_eq!(unknown.parsed, IsolatorValue::Unknown);
        assert_eq!(
            check_isolators(&[unknown]).unwrap_err().reference_message(),
            "invalid isolator"
        );
    }

    #[test]
    fn app_level_checks_repeats_and_conflicts() {
        let oom = isolator(r#"{"name":"os/linux/oom-score-adj","value":5}"#).unwrap();
        assert_eq!(
            check_isolators(&[oom.clone(), oom])
                .unwrap_err()
                .reference_message(),
            "isolators set contains too many instances of type os/linux/oom-score-adj\""
        );
        let retain =
            isolator(r#"{"name":"os/linux/seccomp-retain-set","value":{"set":["a"]}}"#).unwrap();
        let remove =
            isolator(r#"{"name":"os/linux/seccomp-remove-set","value":{"set":["a"]}}"#).unwrap();
        assert_eq!(
            check_isolators(&[retain, remove]),
            Err(IsolatorError::Incompatible)
        );
        let nnp = isolator(r#"{"name":"os/linux/no-new-privileges","value":true}"#).unwrap();
        assert!(check_isolators(&[nnp.clone(), nnp]).is_ok());
    }

    #[test]
    fn value_type_errors_read_like_go() {
        assert_eq!(
            isolator(r#"{"name":"os/linux/cpu-shares","value":1.5}"#).unwrap_err(),
            "json: cannot unmarshal number 1.5 into Go value of type int"
        );
        assert_eq!(
            isolator(r#"{"name":"resource/cpu","value":5}"#).unwrap_err(),
            "json: cannot unmarshal number into Go value of type types.resourceValue"
        );
    }

    #[test]
    fn quantities_follow_the_vendored_parser() {
        for ok in [
            "250m", "1G", "1Gi", "1e3", "0", "00", "1.5", "+1", "-2k", "Ki", "1.", ".5", "1E",
        ] {
            assert_eq!(check_quantity(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_quantity("1x"), Err(QUANTITY_FORMAT));
        assert_eq!(check_quantity("abc"), Err(QUANTITY_FORMAT));
        assert_eq!(check_quantity(""), Err(QUANTITY_FORMAT));
        assert_eq!(check_quantity("1mi"), Err(QUANTITY_SUFFIX));
        assert_eq!(check_quantity(".e-10"), Err(QUANTITY_NUMERIC));
    }
}
