//! Wall-clock time as RFC 3339 UTC text, and the [`Clock`] seam.
//!
//! The registry stores timestamps as RFC 3339 text (`2026-11-27T06:17:28Z`),
//! sortable and readable in `sqlite3`. Code that decides *when* something
//! happens (retry delays, checkpoints) takes a [`Clock`] so tests can drive
//! time exactly; nothing here sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time. The daemon uses [`SystemClock`]; tests use a fake.
pub trait Clock: Send + Sync {
    /// Monotonic time, for measuring delays.
    fn now(&self) -> Instant;
    /// Wall-clock time, for timestamps and HTTP dates.
    fn wall(&self) -> SystemTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// `2026-11-27T06:17:28Z`: whole seconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let (date, secs, _) = split(t);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-11-27T06:17:28.123Z`: milliseconds, UTC (log lines).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let (date, secs, millis) = split(t);
    format!(
        "{date}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The current wall-clock time as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Seconds since the epoch of an RFC 3339 UTC time as [`rfc3339`] writes
/// it (`2026-11-27T06:17:28Z`, fractions of a second ignored); `None` for
/// anything else or a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let shape = b.len() >= 20
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
            .iter()
            .all(|&(i, c)| b[i] == c)
        && b[b.len() - 1] == b'Z'
        && (b.len() == 20 || b[19] == b'.');
    if !shape {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, min, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if y < 1970
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || h > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60 + sec)
}

/// Howard Hinnant's `days_from_civil` (the inverse of [`civil_from_days`]),
/// for years from 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (`YYYY-MM-DD`, seconds into the day, milliseconds). Times before 1970
/// are shown as the epoch.
fn split(t: SystemTime) -> (String, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let total = d.as_secs();
    let days = total / 86_400;
    let (y, m, day) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{day:02}"),
        total % 86_400,
        d.subsec_millis(),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_767_323_045, "2026-01-02T03:04:05Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc3339(at(secs, 0)), want);
        }
        assert_eq!(
            rfc3339_millis(at(1_767_323_045, 7)),
            "2026-01-02T03:04:05.007Z"
        );
    }

    #[test]
    fn parses_what_it_writes() {
        for secs in (0..4_102_444_800u64)
            .step_by(9_876_543)
            .chain([0, 951_782_400, 1_767_323_045])
        {
            assert_eq!(parse_rfc3339(&rfc3339(at(secs, 0))), Some(secs), "{secs}");
        }
        assert_eq!(
            parse_rfc3339("2026-01-02T03:04:05.007Z"),
            Some(1_767_323_045)
        );
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+01:00",
            "2026-13-02T03:04:05Z",
            "1969-12-31T23:59:59Z",
            "2026-01-02 03:04:05Z",
            "2026-01-0xT03:04:05Z",
            "+026-01-02T03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_httpdate_for_a_year_of_days() {
        for day in (0..20_000u64).step_by(37) {
            let t = at(day * 86_400 + 3_661, 0);
            let http = httpdate::fmt_http_date(t); // "Sun, 06 Nov 1994 08:49:37 GMT"
            let ours = rfc3339(t);
            let (y, mo, d) = (&ours[0..4], &ours[5..7], &ours[8..10]);
            assert!(http.contains(&format!("{d} ")), "{http} vs {ours}");
            assert!(http.contains(&format!(" {y} ")), "{http} vs {ours}");
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let m: usize = mo.parse().unwrap();
            assert!(http.contains(months[m - 1]), "{http} vs {ours}");
        }
    }
}
