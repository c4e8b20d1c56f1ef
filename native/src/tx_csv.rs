//! The CSV list of unanswered queries and slow responses (`--format csv` and the report's
//! `dns-unanswered-and-slow.csv`), written where the records are.
//!
//! Python wrote these rows with its `csv` module from the records in the core's JSON: up to
//! 2,000 records read into objects (about 15 ms at 1 M packets) and 7 ms of writing, of a
//! whole answer of about 0.35 s.  Here they take well under a millisecond, and the JSON then
//! carries only the records the report shows.  The bytes are the `csv` module's
//! (`lineterminator="\n"`, minimal quoting): `tests/unit/test_tx_csv.py` compares them on
//! every capture it builds, names with commas and quotes included.

use crate::analyzer::TxRecord;
use std::fmt::Write;

pub const COLUMNS: &str =
    "kind,time,client,server,transport,id,type,name,rcode,response_time_ms,retransmissions\n";

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, rounded to the microsecond (half to even) from the
/// exact nanoseconds: `workers/analysis/traffic/timefmt.iso_time`.
pub fn iso_time(ns: i64) -> String {
    let mut us = ns.div_euclid(1000);
    let rest = ns.rem_euclid(1000);
    if rest > 500 || (rest == 500 && us % 2 != 0) {
        us += 1;
    }
    let second = us.div_euclid(1_000_000);
    let fraction = us.rem_euclid(1_000_000);
    let (days, of_day) = (second.div_euclid(86_400), second.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{fraction:06}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`; no date library for one conversion).
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

/// One field, quoted as the `csv` module's minimal quoting does (names are printable ASCII
/// here: the core escapes every other byte, so only `,` and `"` can call for quotes).
fn field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn row(out: &mut String, kind: &str, r: &TxRecord) {
    out.push_str(kind);
    out.push(',');
    out.push_str(&iso_time(r.time_ns));
    for text in [&r.client, &r.server] {
        out.push(',');
        field(out, text);
    }
    let _ = write!(out, ",{},0x{:04x},", r.transport, r.id);
    field(out, &r.qtype);
    out.push(',');
    field(out, &r.qname);
    out.push(',');
    field(out, r.rcode.as_deref().unwrap_or(""));
    out.push(',');
    if let Some(ms) = r.response_time_ms {
        let _ = write!(out, "{ms:.3}");
    }
    let _ = writeln!(out, ",{}", r.retransmissions);
}

/// The header, then one row per unanswered query, then one per slow response.
pub fn render(unanswered: &[TxRecord], slow: &[TxRecord]) -> String {
    let mut out = String::with_capacity(COLUMNS.len() + 128 * (unanswered.len() + slow.len()));
    out.push_str(COLUMNS);
    for r in unanswered {
        row(&mut out, "unanswered", r);
    }
    for r in slow {
        row(&mut out, "slow", r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_half_to_even_in_utc() {
        assert_eq!(iso_time(0), "1970-01-01 00:00:00.000000");
        assert_eq!(iso_time(1_711_990_000_000_000_500), "2024-04-01 16:46:40.000000");
        assert_eq!(iso_time(1_711_990_000_000_001_500), "2024-04-01 16:46:40.000002");
        assert_eq!(iso_time(1_711_990_000_000_000_501), "2024-04-01 16:46:40.000001");
        assert_eq!(iso_time(1_709_164_799_999_999_600), "2024-02-29 00:00:00.000000");
        assert_eq!(iso_time(-1), "1970-01-01 00:00:00.000000");
        assert_eq!(iso_time(-1_000), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn fields_quote_only_when_needed() {
        let mut s = String::new();
        field(&mut s, "a,b\"c");
        field(&mut s, "plain");
        assert_eq!(s, "\"a,b\"\"c\"plain");
    }
}
