//! `--user U[:G]`: numeric ids, or names looked up in the tree's own
//! `/etc/passwd` and `/etc/group` (never the host's: the command runs
//! with the tree's idea of who is who).

/// Why a `--user` value could not be turned into ids.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// The value is empty, or its user or group part is.
    #[error("user {spec:?}: empty user or group")]
    Empty {
        /// The `--user` value.
        spec: String,
    },
    /// A user name that the tree's `/etc/passwd` does not list.
    #[error("user {name:?}: no such user in the tree's /etc/passwd")]
    NoSuchUser {
        /// The name.
        name: String,
    },
    /// A group name that the tree's `/etc/group` does not list.
    #[error("group {name:?}: no such group in the tree's /etc/group")]
    NoSuchGroup {
        /// The name.
        name: String,
    },
}

/// The ids (and home directory, when `/etc/passwd` knows it) the command
/// runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
    /// The user's home directory from `/etc/passwd`, when listed.
    pub home: Option<Vec<u8>>,
}

/// One `/etc/passwd` line's fields that matter here.
struct PasswdEntry<'a> {
    name: &'a [u8],
    uid: u32,
    gid: u32,
    home: &'a [u8],
}

/// The parsable lines of a passwd file (`name:pw:uid:gid:gecos:home:shell`);
/// malformed lines are skipped, as libc's `getpwnam` does.
fn passwd_entries(passwd: &[u8]) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.split(|&b| b == b'\n').filter_map(|line| {
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if fields.len() < 6 || fields[0].is_empty() {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0],
            uid: parse_id(fields[2])?,
            gid: parse_id(fields[3])?,
            home: fields[5],
        })
    })
}

/// The gid of group `name` in a group file (`name:pw:gid:members`).
fn group_gid(group: &[u8], name: &[u8]) -> Option<u32> {
    group.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let found = fields.next()?;
        let gid = fields.nth(1)?;
        (found == name).then(|| parse_id(gid)).flatten()
    })
}

/// A decimal id; `None` for anything else (so `1e3` is a name).
fn parse_id(text: &[u8]) -> Option<u32> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Resolves `spec` (`USER[:GROUP]`, each a number or a name) against the
/// tree's passwd and group files (empty when the tree has none).
///
/// Without a group, the user's primary group from passwd is used, else
/// gid 0 (as `docker run --user` does for an unlisted numeric uid).
pub fn resolve(spec: &str, passwd: &[u8], group: &[u8]) -> Result<Ids, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((user, grp)) => (user, Some(grp)),
        None => (spec, None),
    };
    if user.is_empty() || grp.is_some_and(str::is_empty) {
        return Err(UserError::Empty {
            spec: spec.to_owned(),
        });
    }
    let (uid, entry) = match parse_id(user.as_bytes()) {
        Some(uid) => (uid, passwd_entries(passwd).find(|e| e.uid == uid)),
        None => {
            let entry = passwd_entries(passwd)
                .find(|e| e.name == user.as_bytes())
                .ok_or_else(|| UserError::NoSuchUser {
                    name: user.to_owned(),
                })?;
            (entry.uid, Some(entry))
        }
    };
    let gid = match grp {
        Some(grp) => match parse_id(grp.as_bytes()) {
            Some(gid) => gid,
            None => group_gid(group, grp.as_bytes()).ok_or_else(|| UserError::NoSuchGroup {
                name: grp.to_owned(),
            })?,
        },
        None => entry.as_ref().map_or(0, |e| e.gid),
    };
    Ok(Ids {
        uid,
        gid,
        home: entry
            .filter(|e| !e.home.is_empty())
            .map(|e| e.home.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
        broken line\n\
        builder:x:1000:1001:Builder:/home/builder:/bin/sh\n\
        nohome:x:1002:1002::\n";
    const GROUP: &[u8] = b"root:x:0:\nwheel:x:10:builder\nbuilders:x:1001:\n";

    fn ids(spec: &str) -> Result<Ids, UserError> {
        resolve(spec, PASSWD, GROUP)
    }

    #[test]
    fn numeric_ids_need_no_files() {
        let got = resolve("1000:1000", b"", b"").unwrap();
        assert_eq!((got.uid, got.gid, got.home), (1000, 1000, None));
        // An unlisted numeric uid without a group gets gid 0.
        assert_eq!(resolve("4242", b"", b"").unwrap().gid, 0);
    }

    #[test]
    fn names_and_primary_groups_come_from_the_tree() {
        let got = ids("builder").unwrap();
        assert_eq!((got.uid, got.gid), (1000, 1001));
        assert_eq!(got.home.as_deref(), Some(&b"/home/builder"[..]));
        // A numeric uid that passwd lists takes its primary group and home.
        let got = ids("1000").unwrap();
        assert_eq!((got.uid, got.gid), (1000, 1001));
        assert_eq!(ids("builder:wheel").unwrap().gid, 10);
        assert_eq!(ids("builder:7").unwrap().gid, 7);
        assert_eq!(ids("nohome").unwrap().home, None);
    }

    #[test]
    fn unknown_names_and_empty_parts_are_errors() {
        assert_eq!(
            ids("nobody"),
            Err(UserError::NoSuchUser {
                name: "nobody".into()
            })
        );
        assert_eq!(
            ids("0:staff"),
            Err(UserError::NoSuchGroup {
                name: "staff".into()
            })
        );
        for spec in ["", ":0", "0:"] {
            assert!(matches!(ids(spec), Err(UserError::Empty { .. })), "{spec}");
        }
        // A malformed passwd line never matches, even by its first field.
        assert!(ids("broken line").is_err());
    }

    #[test]
    fn ids_out_of_range_are_names() {
        assert!(matches!(
            ids("99999999999"),
            Err(UserError::NoSuchUser { .. })
        ));
    }
}
