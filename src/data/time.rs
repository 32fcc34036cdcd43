//! UTC timestamps for journal records and run folder names, without a date-time dependency.
//! UTC, not local time: journals move between machines and time zones.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-21T10:15:00.123Z` for now.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `2026-11-21T10:15:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `20261121-101500`, for run folder names (sorts by time).
pub fn compact(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    // A clock before 1970 is a broken clock; show the epoch rather than fail a write over it.
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (
        y,
        mo,
        d,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
        since.subsec_millis(),
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 is day 10957 (30 years with 7 leap days) + 31 + 28 = 11016.
        let leap = UNIX_EPOCH + Duration::from_millis(11_016 * 86_400_000 + 3_723_456);
        assert_eq!(rfc3339(leap), "2000-02-29T01:02:03.456Z");
        assert_eq!(compact(leap), "20000229-010203");
        // 2026-11-21 10:15:00 UTC = 1795256100 (date -u -d @1795256100).
        let t = UNIX_EPOCH + Duration::from_secs(1_795_256_100);
        assert_eq!(rfc3339(t), "2026-11-21T10:15:00.000Z");
    }
}
