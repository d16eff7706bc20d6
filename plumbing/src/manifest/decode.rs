//! The parts of Go's `encoding/json` decoder (Go 1.19, which built the
//! reference actool) that decide manifest verdicts and their messages
//! (aci-format §4):
//!
//! * keys match struct fields exactly or case-insensitively (with Go's
//!   `K`/`ſ` folding), unknown keys are skipped, every duplicate is decoded;
//! * `null` leaves plain values untouched, resets slices, maps and pointers,
//!   and is handed to custom unmarshalers (which read it as `""`);
//! * a value of the wrong JSON type is a *saved* `UnmarshalTypeError`:
//!   decoding goes on and it is reported only if nothing worse happens;
//!   errors from custom `UnmarshalJSON` methods stop decoding at once;
//! * every custom `UnmarshalJSON` runs its own `json.Unmarshal`, and each
//!   enclosing one rewrites a type error's "Go struct field" to its own
//!   field path, so the outermost decoder names the field.
//!
//! A [`Frame`] stands for one `json.Unmarshal` call.

use super::json::{Node, NodeKind};

/// Go's `*json.UnmarshalTypeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeError {
    /// `string`, `number`, `number -1`, `object` …
    pub value: String,
    /// The Go type that could not hold it, e.g. `types.dependency`.
    pub go_type: &'static str,
    /// Struct name and dotted field path, when the decoder had one.
    pub field: Option<(&'static str, String)>,
}

impl TypeError {
    /// The message Go prints for this error.
    pub fn message(&self) -> String {
        match &self.field {
            Some((strukt, field)) => format!(
                "json: cannot unmarshal {} into Go struct field {strukt}.{field} of type {}",
                self.value, self.go_type
            ),
            None => format!(
                "json: cannot unmarshal {} into Go value of type {}",
                self.value, self.go_type
            ),
        }
    }
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// A JSON type mismatch (saved by the decoder, reported at the end).
    Type(TypeError),
    /// A validation error returned by a custom unmarshaler, as Go words it.
    Invalid(String),
    /// A known isolator without a usable `"value"`: the reference
    /// dereferences a nil pointer here and crashes (aci-format §7).
    IsolatorWithoutValue { name: String },
}

impl Fail {
    pub fn invalid(message: impl Into<String>) -> Self {
        Fail::Invalid(message.into())
    }

    /// The text the reference prints (or would print, had it not crashed).
    pub fn message(&self) -> String {
        match self {
            Fail::Type(t) => t.message(),
            Fail::Invalid(m) => m.clone(),
            Fail::IsolatorWithoutValue { name } => {
                format!("isolator {name:?} has no value")
            }
        }
    }
}

pub(crate) type Decoded<T = ()> = Result<T, Fail>;

/// One `json.Unmarshal` call: its field context and its saved type error.
#[derive(Debug, Default)]
pub(crate) struct Frame {
    strukt: Option<&'static str>,
    fields: Vec<&'static str>,
    saved: Option<TypeError>,
}

impl Frame {
    pub fn new() -> Self {
        Self::default()
    }

    fn context(&self) -> Option<(&'static str, String)> {
        if self.strukt.is_none() && self.fields.is_empty() {
            return None;
        }
        Some((self.strukt.unwrap_or(""), self.fields.join(".")))
    }

    /// Records a type mismatch; only the first one of a frame is kept.
    pub fn mismatch(&mut self, value: impl Into<String>, go_type: &'static str) {
        if self.saved.is_none() {
            self.saved = Some(TypeError {
                value: value.into(),
                go_type,
                field: self.context(),
            });
        }
    }

    /// Records that `node` cannot go into a value of type `go_type`.
    pub fn wrong_kind(&mut self, node: &Node, go_type: &'static str) {
        self.mismatch(node.go_kind(), go_type);
    }

    /// Ends the frame: its saved type error, if any, becomes its result.
    pub fn finish(self) -> Decoded {
        match self.saved {
            Some(t) => Err(Fail::Type(t)),
            None => Ok(()),
        }
    }

    /// Runs a custom `UnmarshalJSON` called from this frame. A type error
    /// coming out of it is renamed to this frame's current field, as Go's
    /// `addErrorContext` does when the error passes through.
    pub fn custom<T>(&self, run: impl FnOnce() -> Decoded<T>) -> Decoded<T> {
        run().map_err(|fail| match fail {
            Fail::Type(mut t) => {
                if let Some(context) = self.context() {
                    t.field = Some(context);
                }
                Fail::Type(t)
            }
            other => other,
        })
    }

    /// Decodes `node` into a Go struct named `strukt` whose JSON field
    /// names are `fields`: `visit` is called with the index of the matched
    /// field for every member, duplicates included, in source order.
    pub fn object<'n>(
        &mut self,
        node: &'n Node,
        strukt: &'static str,
        go_type: &'static str,
        fields: &[&'static str],
        mut visit: impl FnMut(&mut Frame, usize, &'n Node) -> Decoded,
    ) -> Decoded {
        match &node.kind {
            NodeKind::Null => Ok(()),
            NodeKind::Object(members) => {
                for (key, value) in members {
                    let Some(index) = match_field(fields, key) else {
                        continue;
                    };
                    let saved_struct = self.strukt.replace(strukt);
                    self.fields.push(fields[index]);
                    // On error Go returns without restoring the context,
                    // and so do we: the caller renames with it.
                    visit(self, index, value)?;
                    self.fields.pop();
                    self.strukt = saved_struct;
                }
                Ok(())
            }
            _ => {
                self.wrong_kind(node, go_type);
                Ok(())
            }
        }
    }
}

/// Go's field lookup: exact name first, then `bytes.EqualFold`-like
/// matching where `K` (U+212A) folds to `k` and `ſ` (U+017F) to `s`.
pub(crate) fn match_field(fields: &[&str], key: &str) -> Option<usize> {
    fields
        .iter()
        .position(|f| *f == key)
        .or_else(|| fields.iter().position(|f| fold_eq(f, key)))
}

fn fold_eq(field: &str, key: &str) -> bool {
    let mut key_chars = key.chars();
    for f in field.chars() {
        let Some(k) = key_chars.next() else {
            return false;
        };
        let same = f.eq_ignore_ascii_case(&k)
            || (k == '\u{212a}' && f.eq_ignore_ascii_case(&'k'))
            || (k == '\u{17f}' && f.eq_ignore_ascii_case(&'s'));
        if !same {
            return false;
        }
    }
    key_chars.next().is_none()
}

/// A Go string-typed field (`string` or a named string type without its
/// own unmarshaler): `null` leaves it as it was.
pub(crate) fn string_into(
    frame: &mut Frame,
    node: &Node,
    go_type: &'static str,
    slot: &mut String,
) {
    match &node.kind {
        NodeKind::Null => {}
        NodeKind::Str(s) => slot.clone_from(s),
        _ => frame.wrong_kind(node, go_type),
    }
}

/// What a custom unmarshaler's `json.Unmarshal(data, &s)` into a fresh
/// string gives: `null` is `""`, other kinds a type error of type `string`.
pub(crate) fn fresh_string(node: &Node) -> Decoded<String> {
    let mut frame = Frame::new();
    let mut s = String::new();
    string_into(&mut frame, node, "string", &mut s);
    frame.finish()?;
    Ok(s)
}

pub(crate) fn bool_into(frame: &mut Frame, node: &Node, go_type: &'static str, slot: &mut bool) {
    match node.kind {
        NodeKind::Null => {}
        NodeKind::Bool(b) => *slot = b,
        _ => frame.wrong_kind(node, go_type),
    }
}

/// A Go `int` (64-bit): the literal must parse with `strconv.ParseInt`.
pub(crate) fn int_into(frame: &mut Frame, node: &Node, go_type: &'static str, slot: &mut i64) {
    match &node.kind {
        NodeKind::Null => {}
        NodeKind::Number(raw) => match raw.parse::<i64>() {
            // Rust's parser accepts a leading '+', Go's does not; JSON
            // numbers never carry one, so the two agree here.
            Ok(n) => *slot = n,
            Err(_) => frame.mismatch(format!("number {raw}"), go_type),
        },
        _ => frame.wrong_kind(node, go_type),
    }
}

/// A Go `uint` (64-bit): the literal must parse with `strconv.ParseUint`.
pub(crate) fn uint_into(frame: &mut Frame, node: &Node, go_type: &'static str, slot: &mut u64) {
    match &node.kind {
        NodeKind::Null => {}
        NodeKind::Number(raw) => match raw.parse::<u64>() {
            Ok(n) => *slot = n,
            Err(_) => frame.mismatch(format!("number {raw}"), go_type),
        },
        _ => frame.wrong_kind(node, go_type),
    }
}

/// A Go slice as the decoder sees it: `None` is nil. Go decodes into the
/// existing backing array, so when a key repeats, elements of the earlier
/// occurrence (even ones beyond the current length, within the capacity)
/// are decoded *into*, not replaced; `backing.len()` is the capacity.
#[derive(Debug, Clone, Default)]
pub(crate) struct GoSlice<T> {
    backing: Vec<T>,
    len: usize,
    nil: bool,
}

impl<T: Default + Clone> GoSlice<T> {
    pub fn nil() -> Self {
        GoSlice {
            backing: Vec::new(),
            len: 0,
            nil: true,
        }
    }

    pub fn into_vec(mut self) -> Vec<T> {
        self.backing.truncate(self.len);
        self.backing
    }

    pub fn is_nil(&self) -> bool {
        self.nil
    }

    /// Decodes `node` (an array, `null` or a wrong kind) like Go's
    /// `decodeState.array` into a slice of type `go_type`.
    pub fn decode(
        &mut self,
        frame: &mut Frame,
        node: &Node,
        go_type: &'static str,
        mut element: impl FnMut(&mut Frame, &Node, &mut T) -> Decoded,
    ) -> Decoded {
        match &node.kind {
            NodeKind::Null => {
                *self = Self::nil();
                Ok(())
            }
            NodeKind::Array(items) => {
                let mut i = 0;
                for item in items {
                    if i >= self.backing.len() {
                        let cap = self.backing.len();
                        let new_cap = (cap + cap / 2).max(4);
                        // A grown slice copies only the first len elements.
                        self.backing.truncate(self.len);
                        self.backing.resize(new_cap, T::default());
                    }
                    if i >= self.len {
                        self.len = i + 1;
                    }
                    element(frame, item, &mut self.backing[i])?;
                    i += 1;
                }
                if i < self.len {
                    self.len = i;
                }
                if i == 0 {
                    // Go replaces the slice with a fresh empty one.
                    *self = GoSlice::default();
                }
                self.nil = false;
                Ok(())
            }
            _ => {
                frame.wrong_kind(node, go_type);
                Ok(())
            }
        }
    }
}

/// A custom unmarshaler's `json.Unmarshal(data, &fresh)` into a fresh slice
/// local: `None` for `null`, otherwise the decoded elements.
pub(crate) fn fresh_slice<T: Default + Clone>(
    node: &Node,
    go_type: &'static str,
    element: impl FnMut(&mut Frame, &Node, &mut T) -> Decoded,
) -> Decoded<Option<Vec<T>>> {
    let mut frame = Frame::new();
    let mut slice = GoSlice::nil();
    slice.decode(&mut frame, node, go_type, element)?;
    frame.finish()?;
    Ok(if slice.is_nil() {
        None
    } else {
        Some(slice.into_vec())
    })
}

/// A Go `map[string]string`-shaped field: `null` makes it nil, an object
/// adds to the existing map (later keys win), values `null` become `""`.
pub(crate) fn string_map_into(
    frame: &mut Frame,
    node: &Node,
    go_type: &'static str,
    slot: &mut Option<std::collections::BTreeMap<String, String>>,
) {
    match &node.kind {
        NodeKind::Null => *slot = None,
        NodeKind::Object(members) => {
            let map = slot.get_or_insert_with(Default::default);
            for (key, value) in members {
                let mut s = String::new();
                string_into(frame, value, "string", &mut s);
                map.insert(key.clone(), s);
            }
        }
        _ => frame.wrong_kind(node, go_type),
    }
}

#[cfg(test)]
mod tests {
    use super::super::json::parse;
    use super::*;

    #[test]
    fn field_matching_folds_case_like_go() {
        let fields = ["acKind", "labels"];
        assert_eq!(match_field(&fields, "ACKIND"), Some(0));
        assert_eq!(match_field(&fields, "ac\u{212a}ind"), Some(0));
        assert_eq!(match_field(&fields, "label\u{17f}"), Some(1));
        assert_eq!(match_field(&fields, "acKin"), None);
        assert_eq!(match_field(&fields, "acKindx"), None);
    }

    #[test]
    fn type_errors_are_saved_and_named_by_the_outer_frame() {
        let node = parse(br#"{"user": 5, "group": "x"}"#).unwrap();
        let mut outer = Frame::new();
        let result = outer.object(&node, "outer", "o", &["app"], |_, _, _| Ok(()));
        assert!(result.is_ok());
        let app = parse(br#"{"app": {"user": 5}}"#).unwrap();
        let result = outer.object(&app, "imageManifest", "m", &["app"], |frame, _, value| {
            frame.custom(|| {
                let mut inner = Frame::new();
                let mut user = String::new();
                inner.object(value, "app", "types.app", &["user"], |f, _, v| {
                    string_into(f, v, "string", &mut user);
                    Ok(())
                })?;
                inner.finish()
            })
        });
        assert_eq!(
            result.unwrap_err().message(),
            "json: cannot unmarshal number into Go struct field imageManifest.app of type string"
        );
    }

    #[test]
    fn slices_reuse_elements_like_go() {
        let mut frame = Frame::new();
        let mut slice: GoSlice<(String, String)> = GoSlice::nil();
        let element = |f: &mut Frame, n: &Node, slot: &mut (String, String)| {
            f.object(n, "s", "t", &["a", "b"], |f, i, v| {
                let target = if i == 0 { &mut slot.0 } else { &mut slot.1 };
                string_into(f, v, "string", target);
                Ok(())
            })
        };
        let first = parse(br#"[{"a":"1","b":"2"},{"a":"3","b":"4"}]"#).unwrap();
        slice.decode(&mut frame, &first, "[]t", element).unwrap();
        let second = parse(br#"[{"a":"5"}]"#).unwrap();
        slice.decode(&mut frame, &second, "[]t", element).unwrap();
        let third = parse(br#"[{"a":"6"},{"a":"7"}]"#).unwrap();
        slice.decode(&mut frame, &third, "[]t", element).unwrap();
        // The second element comes back from the backing array.
        assert_eq!(
            slice.into_vec(),
            vec![
                ("6".to_owned(), "2".to_owned()),
                ("7".to_owned(), "4".to_owned())
            ]
        );
    }

    #[test]
    fn numbers_follow_strconv() {
        let mut frame = Frame::new();
        let mut n = 0u64;
        uint_into(&mut frame, &parse(b"-1").unwrap(), "uint", &mut n);
        assert_eq!(
            frame.finish().unwrap_err().message(),
            "json: cannot unmarshal number -1 into Go value of type uint"
        );
        let mut frame = Frame::new();
        let mut i = 0i64;
        int_into(&mut frame, &parse(b"-7").unwrap(), "int", &mut i);
        assert!(frame.finish().is_ok());
        assert_eq!(i, -7);
    }
}
