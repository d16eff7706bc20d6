//! Whole-manifest tests: decoding rules (aci-format §15 cases 1–4, 13–15)
//! and serialization.

use super::*;

const HEAD: &str = r#""acKind":"ImageManifest","acVersion":"0.8.11""#;

fn parse(json: &str) -> Result<ImageManifest, String> {
    ImageManifest::from_slice(json.as_bytes()).map_err(|e| e.reference_line())
}

fn with_head(rest: &str) -> String {
    format!("{{{HEAD},{rest}}}")
}

#[test]
fn minimal_and_missing_fields() {
    let m = parse(&with_head(r#""name":"example.com/a""#)).unwrap();
    assert_eq!(m.name.as_str(), "example.com/a");
    assert_eq!(
        parse(r#"{"acKind":"ImageManifest","name":"a"}"#).unwrap_err(),
        "invalid ImageManifest: acVersion must be set"
    );
    assert_eq!(
        parse(&format!("{{{HEAD}}}")).unwrap_err(),
        "invalid ImageManifest: name must be set"
    );
    assert_eq!(
        parse(r#"{"acKind":"Image","acVersion":"0.8.11","name":"a"}"#).unwrap_err(),
        "error unmarshaling manifest: bad ACKind: Image"
    );
    assert_eq!(
        parse(r#"{"acKind":"ImageManifest","acVersion":"0.0.0","name":"a"}"#).unwrap_err(),
        "error unmarshaling manifest: SemVer cannot be zero"
    );
}

#[test]
fn library_kind_checks_follow_image_manifest_unmarshal() {
    let err = ImageManifest::from_slice(br#"{"acVersion":"0.8.11","name":"a"}"#).unwrap_err();
    assert_eq!(err, ManifestError::MissingKind);
    assert_eq!(
        err.reference_line(),
        "invalid ImageManifest: missing or bad ACKind (must be \"ImageManifest\")"
    );
    let pod =
        ImageManifest::from_slice(br#"{"acKind":"PodManifest","acVersion":"0.8.11","name":"a"}"#);
    assert_eq!(
        pod.unwrap_err(),
        ManifestError::WrongKind {
            found: AcKind::PodManifest
        }
    );
}

#[test]
fn json_decoding_rules_match_go() {
    // aci-format §15 case 14.
    let upper = parse(r#"{"ACKIND":"ImageManifest","AcVersion":"0.8.11","Name":"a"}"#).unwrap();
    assert_eq!(upper.name.as_str(), "a");
    assert!(parse(&with_head(r#""name":"a","whatever":[1,{"x":null}]"#)).is_ok());
    assert_eq!(
        parse(&with_head(r#""name":"Bad Name","name":"example.com/ok""#)).unwrap_err(),
        "invalid ImageManifest: ACIdentifier must contain only lower case alphanumeric characters plus \"-._~/\""
    );
    let last = parse(&with_head(
        r#""name":"example.com/a","name":"example.com/b""#,
    ))
    .unwrap();
    assert_eq!(last.name.as_str(), "example.com/b");
    assert_eq!(
        parse(&format!("{} x", with_head(r#""name":"a""#))).unwrap_err(),
        "error unmarshaling manifest: invalid character 'x' after top-level value"
    );
    assert_eq!(
        parse(r#"{"acKind":null}"#).unwrap_err(),
        "error unmarshaling manifest: ACKind must be set"
    );
    assert_eq!(
        parse(&with_head(r#""name":null"#)).unwrap_err(),
        "invalid ImageManifest: ACIdentifier cannot be empty"
    );
    assert!(parse(&with_head(
        r#""name":"a","labels":null,"app":null,"dependencies":null"#
    ))
    .is_ok());
    assert_eq!(
        parse(&format!("\u{feff}{}", with_head(r#""name":"a""#))).unwrap_err(),
        "error unmarshaling manifest: invalid character 'ï' looking for beginning of value"
    );
    assert!(parse(&format!(" \n\t{}", with_head(r#""name":"a""#))).is_ok());
    assert_eq!(
        parse("[1]").unwrap_err(),
        "error unmarshaling manifest: json: cannot unmarshal array into Go value of type schema.kind"
    );
    assert_eq!(
        parse(r#"{"acKind":5}"#).unwrap_err(),
        "error unmarshaling manifest: json: cannot unmarshal number into Go struct field kind.acKind of type string"
    );
}

#[test]
fn type_errors_name_the_top_level_field() {
    let cases = [
        (
            r#""app":{"user":5,"group":"0"}"#,
            "imageManifest.app of type string",
        ),
        (
            r#""pathWhitelist":[1]"#,
            "imageManifest.pathWhitelist of type string",
        ),
        (
            r#""labels":[{"name":"a","value":5}]"#,
            "imageManifest.labels of type string",
        ),
        (
            r#""dependencies":[5]"#,
            "imageManifest.dependencies of type types.dependency",
        ),
        (
            r#""dependencies":[{"imageName":"a","size":-1}]"#,
            "imageManifest.dependencies of type uint",
        ),
        (
            r#""app":{"user":"0","group":"0","isolators":[{"name":"resource/cpu","value":5}]}"#,
            "imageManifest.app of type types.resourceValue",
        ),
    ];
    for (body, tail) in cases {
        let err = parse(&with_head(&format!(r#""name":"a",{body}"#))).unwrap_err();
        assert!(err.ends_with(tail), "{body}: {err}");
    }
    // A saved type error loses to a later validation error.
    assert_eq!(
        parse(&with_head(r#""pathWhitelist":5,"name":"Bad""#)).unwrap_err(),
        "invalid ImageManifest: ACIdentifier must contain only lower case alphanumeric characters plus \"-._~/\""
    );
}

#[test]
fn dependencies_keep_lenient_image_ids() {
    // aci-format §15 case 13.
    let dep = |d: &str| parse(&with_head(&format!(r#""name":"a","dependencies":[{d}]"#)));
    assert_eq!(
        dep(r#"{"imageID":"sha512-aa"}"#).unwrap_err(),
        "invalid ImageManifest: imageName cannot be empty"
    );
    assert_eq!(
        dep(r#"{"imageName":"b","imageID":"sha256-aa"}"#).unwrap_err(),
        "invalid ImageManifest: unrecognized hash type: sha256"
    );
    assert_eq!(
        dep(r#"{"imageName":"b","imageID":"sha512-a-b"}"#).unwrap_err(),
        "invalid ImageManifest: badly formatted hash string"
    );
    assert_eq!(
        dep(r#"{"imageName":"b","imageID":"sha512-"}"#).unwrap_err(),
        "invalid ImageManifest: unexpected empty hash value"
    );
    let odd = dep(r#"{"imageName":"b","imageID":"sha512-XYZ","size":0}"#).unwrap();
    let d = &odd.dependencies[0];
    assert_eq!(
        d.image_id.as_ref().map(ImageIdRef::as_str),
        Some("sha512-XYZ")
    );
    assert_eq!(d.image_id.as_ref().and_then(ImageIdRef::as_prefix), None);
    assert_eq!(d.size, None);
    assert_eq!(
        dep(r#"{"imageName":"b","labels":[{"name":"os","value":"plan9"}]}"#).unwrap_err(),
        "invalid ImageManifest: bad os \"plan9\" (must be one of: [darwin freebsd linux])"
    );
}

#[test]
fn path_whitelist_is_not_validated() {
    // aci-format §15 case 15.
    let m = parse(&with_head(
        r#""name":"a","pathWhitelist":["rel","../up","/dir/","",""]"#,
    ))
    .unwrap();
    assert_eq!(m.path_whitelist, ["rel", "../up", "/dir/", "", ""]);
}

const FULL: &str = r#"{
  "acKind": "ImageManifest", "acVersion": "01.02.003", "name": "example.com/app",
  "labels": [{"name": "version", "value": "1<2"}, {"name": "os", "value": "linux"}],
  "app": {
    "user": "0", "group": "0", "exec": ["/bin/sh", "-c", "a && b"],
    "eventHandlers": [{"name": "pre-start"}],
    "supplementaryGids": [1, -2], "workingDirectory": "/w",
    "environment": [{"name": "A", "value": "b"}],
    "mountPoints": [{"name": "m", "path": "/m", "readOnly": false}, {"name": "n", "path": "/n", "readOnly": true}],
    "ports": [{"name": "p", "port": 80}],
    "isolators": [{"name": "resource/cpu", "value": { "limit" : "1" }}, {"name": "os/linux/no-new-privileges", "value": true}],
    "userLabels": {"z": "1", "a": "2"}
  },
  "annotations": [{"name": "homepage", "value": "https://example.com"}],
  "dependencies": [{"imageName": "example.com/base", "imageID": "sha512-ab", "size": 7}],
  "pathWhitelist": ["/a"]
}"#;

#[test]
fn serializes_in_reference_order_and_normalisation() {
    let m = parse(FULL).unwrap();
    assert_eq!(
        m.to_json(),
        concat!(
            r#"{"acKind":"ImageManifest","acVersion":"1.2.3","name":"example.com/app","#,
            r#""labels":[{"name":"version","value":"1\u003c2"},{"name":"os","value":"linux"}],"#,
            r#""app":{"exec":["/bin/sh","-c","a \u0026\u0026 b"],"eventHandlers":[{"name":"pre-start","exec":null}],"#,
            r#""user":"0","group":"0","supplementaryGIDs":[1,-2],"workingDirectory":"/w","#,
            r#""environment":[{"name":"A","value":"b"}],"#,
            r#""mountPoints":[{"name":"m","path":"/m"},{"name":"n","path":"/n","readOnly":true}],"#,
            r#""ports":[{"name":"p","protocol":"","port":80,"count":1,"socketActivated":false}],"#,
            r#""isolators":[{"name":"resource/cpu","value":{"limit":"1"}},{"name":"os/linux/no-new-privileges","value":true}],"#,
            r#""userLabels":{"a":"2","z":"1"}},"#,
            r#""annotations":[{"name":"homepage","value":"https://example.com"}],"#,
            r#""dependencies":[{"imageName":"example.com/base","imageID":"sha512-ab","size":7}],"#,
            r#""pathWhitelist":["/a"]}"#
        )
    );
    let minimal = parse(&with_head(r#""name":"a","app":{"user":"0","group":"0"}"#)).unwrap();
    assert_eq!(
        minimal.to_json_pretty(),
        "{\n    \"acKind\": \"ImageManifest\",\n    \"acVersion\": \"0.8.11\",\n    \"name\": \"a\",\n    \"app\": {\n        \"exec\": null,\n        \"user\": \"0\",\n        \"group\": \"0\"\n    }\n}"
    );
}

#[test]
fn round_trip_is_stable() {
    let m = parse(FULL).unwrap();
    let again = ImageManifest::from_slice(m.to_json().as_bytes()).unwrap();
    assert_eq!(again, m);
    let pretty = ImageManifest::from_slice(m.to_json_pretty().as_bytes()).unwrap();
    assert_eq!(pretty, m);
}

#[test]
fn new_manifests_serialize_and_parse_back() {
    let mut m = ImageManifest::new("example.com/new".parse().unwrap());
    m.dependencies.push(Dependency {
        image_name: "example.com/base".parse().unwrap(),
        image_id: Some(crate::id::IdHasher::new().finish().into()),
        labels: Labels::new(vec![Label {
            name: "version".parse().unwrap(),
            value: "1".to_owned(),
        }])
        .unwrap(),
        size: None,
    });
    let back = ImageManifest::from_slice(m.to_json().as_bytes()).unwrap();
    assert_eq!(back, m);
    assert!(back.dependencies[0]
        .image_id
        .as_ref()
        .is_some_and(ImageIdRef::is_full));
}

#[test]
fn limits_give_clean_errors() {
    let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
    assert!(matches!(
        ImageManifest::from_slice(&big),
        Err(ManifestError::TooLarge { .. })
    ));
    let deep = format!("{{{HEAD},\"x\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        ImageManifest::from_slice(deep.as_bytes()),
        Err(ManifestError::too_deep(MAX_DEPTH))
    );
}

/// A manifest whose `x` member nests `depth` levels (the object itself
/// being the first).
fn nested_manifest(depth: usize) -> String {
    let inner = depth - 1;
    format!(
        "{{{HEAD},\"name\":\"a\",\"x\":{}1{}}}",
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[test]
fn json_depth_bound_is_the_callers() {
    let limits = |max_json_depth| ManifestLimits {
        max_json_depth,
        ..ManifestLimits::default()
    };
    let m = nested_manifest(10);
    assert_eq!(
        ImageManifest::from_slice_with(m.as_bytes(), &limits(9)),
        Err(ManifestError::too_deep(9))
    );
    assert!(ImageManifest::from_slice_with(m.as_bytes(), &limits(10)).is_ok());
    // Raised past the default: 200 levels decode.
    let deep = nested_manifest(200);
    assert!(ImageManifest::from_slice(deep.as_bytes()).is_err());
    assert!(ImageManifest::from_slice_with(deep.as_bytes(), &limits(200)).is_ok());
    // No bound passes the ceiling, and the ceiling fits a test thread's
    // stack through parsing, decoding and dropping.
    let at = nested_manifest(MAX_DEPTH_CEILING);
    assert!(ImageManifest::from_slice_with(at.as_bytes(), &limits(usize::MAX)).is_ok());
    let over = nested_manifest(MAX_DEPTH_CEILING + 1);
    assert_eq!(
        ImageManifest::from_slice_with(over.as_bytes(), &limits(usize::MAX)),
        Err(ManifestError::too_deep(MAX_DEPTH_CEILING))
    );
    let message = ManifestError::too_deep(9).to_string();
    assert!(message.contains("maximum JSON depth exceeded"), "{message}");
}

#[test]
fn whitelist_length_is_bounded() {
    let limits = |max_whitelist_len| ManifestLimits {
        max_whitelist_len,
        ..ManifestLimits::default()
    };
    let m = with_head(r#""name":"a","pathWhitelist":["/a","/b","/c"]"#);
    assert_eq!(
        ImageManifest::from_slice_with(m.as_bytes(), &limits(2)),
        Err(ManifestError::whitelist_too_long(3, 2))
    );
    let ok = ImageManifest::from_slice_with(m.as_bytes(), &limits(3)).unwrap();
    assert_eq!(ok.path_whitelist.len(), 3);
    assert!(ImageManifest::from_slice(m.as_bytes()).is_ok());
    // An invalid manifest keeps the reference's verdict, not the bound's.
    let bad = with_head(r#""name":"","pathWhitelist":["/a","/b","/c"]"#);
    assert!(matches!(
        ImageManifest::from_slice_with(bad.as_bytes(), &limits(0)),
        Err(ManifestError::Invalid { .. })
    ));
    let message = ManifestError::whitelist_too_long(3, 2).to_string();
    assert_eq!(
        message,
        "manifest: maximum whitelist length exceeded (3 > 2)"
    );
}

#[test]
fn syntax_errors_carry_a_position() {
    let err = ImageManifest::from_slice(b"{\n  \"a\": 1,\n}").unwrap_err();
    match err {
        ManifestError::Syntax { line, column, .. } => assert_eq!((line, column), (3, 1)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn hostile_inputs_never_panic() {
    let samples: [&[u8]; 8] = [
        b"",
        b"\xff\xfe",
        b"{\"acKind\":\"ImageManifest\",\"acVersion\":\"0.8.11\",\"name\":\"a\",\"app\":{\"isolators\":[null]}}",
        b"{\"acKind\":\"ImageManifest\",\"acVersion\":\"0.8.11\",\"name\":\"\xff\"}",
        b"{\"acKind\":\"ImageManifest\",\"acVersion\":\"0.8.11\",\"name\":\"a\",\"app\":{\"user\":\"0\",\"group\":\"0\",\"isolators\":[{\"name\":\"resource/cpu\",\"value\":{\"limit\":\"\xff\"}}]}}",
        b"\"\\ud800\"",
        b"null",
        b"{\"acKind\":\"ImageManifest\",\"acVersion\":\"1.0.0\",\"name\":\"a\",\"app\":{\"user\":\"0\",\"group\":\"0\",\"ports\":[{\"port\":1,\"count\":18446744073709551615}]}}",
    ];
    for sample in samples {
        let _ = ImageManifest::from_slice(sample);
        let _ = validate_manifest(sample, true);
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ImageManifest::from_slice(&bytes);
            let _ = validate_manifest(&bytes, true);
        }

        #[test]
        fn edited_manifests_never_panic(at in 0usize..FULL.len(), cut in 0usize..8, insert in "[\\[\\]{}\",:0-9a-z\\\\ ]{0,4}") {
            let mut text = FULL.as_bytes().to_vec();
            let end = (at + cut).min(text.len());
            text.splice(at..end, insert.bytes());
            let _ = validate_manifest(&text, true);
        }

        #[test]
        fn accepted_manifests_round_trip(name in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", value in "\\PC{0,12}", user in "[0-9a-z]{1,5}") {
            let json = format!(
                r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":{},"labels":[{{"name":"version","value":{}}}],"app":{{"user":{},"group":"0"}}}}"#,
                serde_json::to_string(&name).unwrap(),
                serde_json::to_string(&value).unwrap(),
                serde_json::to_string(&user).unwrap(),
            );
            let m = ImageManifest::from_slice(json.as_bytes()).unwrap();
            prop_assert_eq!(m.label("version"), Some(value.as_str()));
            let back = ImageManifest::from_slice(m.to_json().as_bytes()).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}

#[test]
fn nameless_entries_survive_a_round_trip() {
    // Found by the `manifest` fuzz target: a missing name decodes to an
    // empty one (valid, as in the reference), which `"name":""` is not.
    let json = with_head(concat!(
        r#""name":"example.com/a","labels":[{"value":"x"}],"#,
        r#""app":{"exec":null,"user":"0","group":"0","#,
        r#""mountPoints":[{"path":"/d"}],"#,
        r#""ports":[{"protocol":"tcp","port":8,"count":1,"socketActivated":false}]},"#,
        r#""annotations":[{"value":"y"}]"#
    ));
    let m = parse(&json).unwrap();
    assert_eq!(m.labels.get(""), Some("x"));
    assert_eq!(m.to_json(), json);
    assert_eq!(ImageManifest::from_slice(m.to_json().as_bytes()), Ok(m));
}
