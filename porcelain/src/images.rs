//! `images`: list the stored images like `rkt image list`, as a table for
//! people or as JSON for programs.

use std::io::{self, Write};

use acido_plumbing::id::{ImageId, FULL_HEX_LEN, SCHEME};
use acido_plumbing::json_output::Document;
use acido_plumbing::quote::quote_path;
use acido_plumbing::store::{ImageRecord, Store, StoreError};
use serde::Serialize;

/// Hex digits of an id in the table by default: 12, so ids print as
/// 19 characters like rkt's short keys (`sha512-` + 12 digits).
pub const DEFAULT_ABBREV: usize = 12;

/// Every stored image, oldest import first (ties by id).
pub fn list(store: &Store) -> Result<Vec<ImageRecord>, StoreError> {
    let mut records = store.records()?;
    records.sort_by_key(|r| (r.import_time_ns, r.id));
    Ok(records)
}

/// The stored images `images` shows: [`list`] without the step cache's
/// entries unless `all` (`--all`).
pub fn list_shown(store: &Store, all: bool) -> Result<Vec<ImageRecord>, StoreError> {
    let mut records = list(store)?;
    records.retain(|r| all || !crate::acidofile::cache::is_entry(r));
    Ok(records)
}

/// The shortest length of at least `min` hex digits at which every id in
/// `ids` is told apart from the others (git's `--abbrev` rule).
pub fn unique_abbrev(ids: &[ImageId], min: usize) -> usize {
    let mut sorted: Vec<String> = ids.iter().map(ImageId::hex).collect();
    sorted.sort();
    let mut len = min.clamp(1, FULL_HEX_LEN);
    for pair in sorted.windows(2) {
        let common = pair[0]
            .bytes()
            .zip(pair[1].bytes())
            .take_while(|(a, b)| a == b)
            .count();
        len = len.max((common + 1).min(FULL_HEX_LEN));
    }
    len
}

/// Candidates for completing an IMAGE argument that starts with
/// `prefix`: the stored names, and the stored ids shortened as `images`
/// shows them (longer when `prefix` already holds more hex digits), that
/// start with `prefix`; names first, each once, sorted. Only the image
/// records are read, never a blob, so shells can call this on every Tab.
pub fn complete(store: &Store, prefix: &str) -> Result<Vec<String>, StoreError> {
    let records = store.records()?;
    let mut names: Vec<String> = records
        .iter()
        .filter(|r| r.name.starts_with(prefix))
        .map(|r| r.name.clone())
        .collect();
    names.sort();
    names.dedup();
    let ids: Vec<ImageId> = records.iter().map(|r| r.id).collect();
    let typed_hex = prefix.strip_prefix(SCHEME).map_or(0, str::len);
    let len = unique_abbrev(&ids, DEFAULT_ABBREV).max(typed_hex);
    let mut short_ids: Vec<String> = ids
        .iter()
        .map(|id| id.abbrev(len))
        .filter(|short| short.starts_with(prefix))
        .collect();
    short_ids.sort();
    names.extend(short_ids);
    Ok(names)
}

/// Labels as `name=value,name=value` in manifest order, `-` when none.
pub fn labels_text(record: &ImageRecord) -> String {
    if record.labels.is_empty() {
        return "-".to_owned();
    }
    let text: Vec<String> = record
        .labels
        .iter()
        .map(|l| format!("{}={}", l.name, l.value))
        .collect();
    // Label values are free text: keep a tab or newline from breaking the table.
    quote_path(text.join(",").as_bytes()).into_owned()
}

/// A size in IEC units with one decimal (`512 B`, `1.5 KiB`, `3.0 MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Nanoseconds since the epoch as RFC 3339 UTC, with the fraction when
/// `fraction` (`2023-11-14T22:13:20.123456789Z`) or to the second.
pub fn rfc3339(ns: u128, fraction: bool) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if fraction {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Writes the table: a header line and one line per image with the id
/// shortened to at least `abbrev` hex digits (more when needed to keep
/// the listed ids apart), name, labels, size and import time (UTC, to the
/// second). Columns are padded with spaces.
pub fn write_table(out: &mut impl Write, records: &[ImageRecord], abbrev: usize) -> io::Result<()> {
    let ids: Vec<ImageId> = records.iter().map(|r| r.id).collect();
    let len = unique_abbrev(&ids, abbrev);
    let header = ["ID", "NAME", "LABELS", "SIZE", "IMPORTED"].map(str::to_owned);
    let mut rows = vec![header];
    for r in records {
        rows.push([
            r.id.abbrev(len),
            quote_path(r.name.as_bytes()).into_owned(),
            labels_text(r),
            human_size(r.size),
            rfc3339(r.import_time_ns, false),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonImage<'a> {
    id: String,
    name: &'a str,
    labels: &'a [acido_plumbing::store::RecordLabel],
    size: u64,
    import_time: String,
}

/// Writes the JSON document (`--format json`) through the shared writer
/// (`json_output::Document`), one line: `formatVersion` and `images`,
/// each with the full `id`, `name`, `labels` (`name`/`value` objects in
/// manifest order), `size` in bytes and `importTime` (RFC 3339 UTC with
/// nanoseconds).
pub fn write_json(out: &mut dyn Write, records: &[ImageRecord]) -> io::Result<()> {
    let mut doc = Document::begin(out)?;
    doc.list(
        "images",
        records.iter().map(|r| JsonImage {
            id: r.id.to_string(),
            name: &r.name,
            labels: &r.labels,
            size: r.size,
            import_time: rfc3339(r.import_time_ns, true),
        }),
    )?;
    doc.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use acido_plumbing::store::RecordLabel;

    fn id(first: u8, second: u8) -> ImageId {
        let mut digest = [0u8; 64];
        digest[0] = first;
        digest[1] = second;
        ImageId::from_digest(digest)
    }

    fn record(id: ImageId, name: &str, labels: &[(&str, &str)], t: u128) -> ImageRecord {
        ImageRecord {
            format_version: 1,
            id,
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(n, v)| RecordLabel {
                    name: (*n).to_owned(),
                    value: (*v).to_owned(),
                })
                .collect(),
            import_time_ns: t,
            size: 3 * 1024 * 1024 + 512 * 1024,
        }
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789, true),
            "2023-11-14T22:13:20.123456789Z"
        );
        // A leap day, and the end of a century year that is a leap year.
        assert_eq!(
            rfc3339(951_782_400 * 1_000_000_000, false),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(978_307_199 * 1_000_000_000, false),
            "2000-12-31T23:59:59Z"
        );
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn abbreviations_grow_until_ids_differ() {
        assert_eq!(unique_abbrev(&[id(0xab, 0xcd)], 12), 12);
        assert_eq!(unique_abbrev(&[], 4), 4);
        // ab cd... and ab ce... share three digits: four tell them apart.
        assert_eq!(unique_abbrev(&[id(0xab, 0xcd), id(0xab, 0xce)], 2), 4);
        assert_eq!(unique_abbrev(&[id(1, 2), id(1, 2)], 2), FULL_HEX_LEN);
    }

    #[test]
    fn table_and_json_show_every_field() {
        let records = [
            record(
                id(0xab, 0xcd),
                "example.com/a",
                &[("version", "1.0"), ("os", "linux")],
                0,
            ),
            record(id(0x12, 0), "example.com/b\tx", &[], 1_000_000_000),
        ];
        let mut table = Vec::new();
        write_table(&mut table, &records, 2).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert_eq!(
            table,
            "ID         NAME                LABELS                SIZE     IMPORTED\n\
             sha512-ab  example.com/a       version=1.0,os=linux  3.5 MiB  1970-01-01T00:00:00Z\n\
             sha512-12  \"example.com/b\\tx\"  -                     3.5 MiB  1970-01-01T00:00:01Z\n"
        );
        let mut json = Vec::new();
        write_json(&mut json, &records[..1]).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["formatVersion"], 1);
        assert_eq!(value["images"][0]["id"], records[0].id.to_string());
        assert_eq!(value["images"][0]["labels"][1]["value"], "linux");
        assert_eq!(value["images"][0]["size"], 3 * 1024 * 1024 + 512 * 1024);
        assert_eq!(
            value["images"][0]["importTime"],
            "1970-01-01T00:00:00.000000000Z"
        );
    }
}
