//! Properties of `archive::clean_path`, the Go `filepath.Clean` every
//! layout rule and every containment check is stated in (aci-format §1).
#![no_main]

use acido_plumbing::archive::clean_path;
use libfuzzer_sys::fuzz_target;

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
}

fn check(input: &[u8]) -> Vec<u8> {
    let out = clean_path(input);
    assert!(!out.is_empty(), "empty result");
    assert_eq!(clean_path(&out), out, "not idempotent");
    let rooted = input.first() == Some(&b'/');
    assert_eq!(out.first() == Some(&b'/'), rooted, "rootedness changed");
    assert!(out.len() <= input.len().max(1), "cleaning grew the name");
    if out == b"." || out == b"/" {
        return out;
    }
    assert!(!out.ends_with(b"/"), "trailing slash");
    let body = if rooted { &out[1..] } else { &out[..] };
    let mut climbing = !rooted;
    for part in components(body) {
        assert!(!part.is_empty(), "empty component");
        assert!(part != b".", "dot component");
        if part == b".." {
            // `..` survives only as a leading run of a relative name.
            assert!(climbing, "`..` after a name or below the root");
        } else {
            climbing = false;
        }
    }
    // Non-`.`/`..` components come through unchanged and in order.
    let kept: Vec<&[u8]> = components(input)
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    assert!(components(body).count() <= kept.len());
    out
}

fuzz_target!(|data: &[u8]| {
    let out = check(data);
    // An escaping name keeps its `..` run visibly at the front, so a
    // prefix test on the cleaned name is a sound containment check.
    let escapes = out == b".." || out.starts_with(b"../");
    if !escapes && out.first() != Some(&b'/') {
        assert!(components(&out).all(|p| p != b".."), "hidden `..`");
    }
    // A trailing slash and a leading `./` on a relative name change nothing.
    if !data.is_empty() {
        let mut slashed = data.to_vec();
        slashed.push(b'/');
        assert_eq!(clean_path(&slashed), out, "trailing slash matters");
    }
    if data.first() != Some(&b'/') {
        let mut dotted = b"./".to_vec();
        dotted.extend_from_slice(data);
        assert_eq!(clean_path(&dotted), out, "leading ./ matters");
    }
    // Cleaning composes: cleaning a prefix first gives the same result.
    if let Some((&cut, _)) = data.split_first() {
        let at = usize::from(cut) % data.len();
        let (head, tail) = data.split_at(at);
        if !head.is_empty() && tail.first() == Some(&b'/') {
            let mut joined = clean_path(head);
            joined.extend_from_slice(tail);
            assert_eq!(
                clean_path(&joined),
                out,
                "cleaning does not compose at {at}"
            );
        }
    }
});
