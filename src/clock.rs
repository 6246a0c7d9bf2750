//! Wall-clock time as RFC 3339 UTC text, and the [`Clock`] seam.
//!
//! The registry stores timestamps as RFC 3339 text (`2026-11-27T06:17:28Z`),
//! sortable and readable in `sqlite3`. Code that decides *when* something
//! happens (retry delays, checkpoints) takes a [`Clock`] so tests can drive
//! time exactly; nothing here sleeps. [`parse_rfc3339`] reads such a
//! timestamp back (a peer's `publishDate`).

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

/// A clock that moves only when told (unit tests): monotonic time is the
/// instant held, wall-clock time the epoch.
#[cfg(test)]
pub struct Manual(pub parking_lot::Mutex<Instant>);

#[cfg(test)]
impl Clock for Manual {
    fn now(&self) -> Instant {
        *self.0.lock()
    }
    fn wall(&self) -> SystemTime {
        UNIX_EPOCH
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

/// Reads an RFC 3339 timestamp (`2026-01-02T03:04:05Z`, with an optional
/// fraction and a `Z` or `±HH:MM` offset; `t`/`z` and a space for `T`
/// accepted). `None` when it is not one, or falls outside 1970..=9999 UTC
/// (where [`rfc3339`] and HTTP dates cannot show it). The fraction is
/// dropped: whole seconds.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let at = s.len() - 5;
            let (hh, mm) = (num(at, 2)?, num(at + 3, 2)?);
            if hh > 23 || mm > 59 {
                return None;
            }
            let secs = hh * 3600 + mm * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (`:60`) is read as the next second.
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let latest = days_from_civil(9999, 12, 31) * 86_400 + 86_399;
    if !(0..=latest).contains(&secs) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`; `year` 0..=9999, so nothing overflows).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
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
    fn parses_rfc_3339() {
        let cases: &[(&str, Option<u64>)] = &[
            ("2026-01-02T03:04:05Z", Some(1_767_323_045)),
            ("2026-01-02t03:04:05z", Some(1_767_323_045)),
            ("2026-01-02 03:04:05Z", Some(1_767_323_045)),
            ("2026-01-02T03:04:05.123456Z", Some(1_767_323_045)),
            ("2026-01-02T05:04:05+02:00", Some(1_767_323_045)),
            ("2026-01-01T22:04:05-05:00", Some(1_767_323_045)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2000-02-29T00:00:00Z", Some(951_782_400)),
            ("9999-12-31T23:59:59Z", Some(253_402_300_799)),
            ("2016-12-31T23:59:60Z", Some(1_483_228_800)),
            ("1969-12-31T23:59:59Z", None),
            ("1970-01-01T00:30:00+01:00", None),
            ("2001-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-00-01T00:00:00Z", None),
            ("2026-01-32T00:00:00Z", None),
            ("2026-01-02T24:00:00Z", None),
            ("2026-01-02T03:04:05", None),
            ("2026-01-02T03:04:05.Z", None),
            ("2026-01-02T03:04:05+0200", None),
            ("2026-01-02T03:04:05+24:00", None),
            ("2026-01-02", None),
            ("+2026-01-02T03:04:05Z", None),
            ("2026-1-02T03:04:05Z", None),
            ("２026-01-02T03:04:05Z", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_rfc3339(text).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn parse_reads_back_what_rfc3339_writes() {
        for day in (0..2_932_896u64).step_by(997) {
            let t = at(day * 86_400 + 45_296, 0);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
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
