//! Local time for the alternative speed limits' schedule (`[limits]`
//! `alt_from`/`alt_to`, in the owner's wall-clock time): the time zone as
//! the C library finds it, without calling it (no `unsafe`): `TZ` (a POSIX
//! rule such as `CET-1CEST,M3.5.0,M10.5.0/3`, or a zone name read from
//! `/usr/share/zoneinfo`), else `/etc/localtime`, read as TZif (RFC 8536:
//! its transitions, then its footer rule past the last one). A zone name
//! with no file (jack's image has no `/usr/share/zoneinfo`) falls back to
//! `/etc/localtime` (the host's, mounted read-only); where none can be read
//! the zone is UTC. [`Zone::load`] says which, and what works. This module
//! must not read the clock itself: time comes in.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The names of UTC a zone file would be found under: UTC without one
/// (never the host's zone in their place).
const UTC_NAMES: &[&str] = &[
    "UTC",
    "UCT",
    "GMT",
    "GMT0",
    "GMT+0",
    "GMT-0",
    "Greenwich",
    "Universal",
    "Zulu",
    "Etc/UTC",
    "Etc/UCT",
    "Etc/GMT",
    "Etc/GMT0",
    "Etc/GMT+0",
    "Etc/GMT-0",
    "Etc/Greenwich",
    "Etc/Universal",
    "Etc/Zulu",
];

/// A time zone: fixed, a POSIX rule, or a TZif file's transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `(start, offset)`: from `start` (Unix seconds) the offset east of
    /// UTC in seconds, sorted; before the first, `initial`.
    transitions: Vec<(i64, i32)>,
    initial: i32,
    /// Past the last transition (or without any): this rule.
    rule: Option<Rule>,
    /// Where it came from (`TZ=...`, `/etc/localtime`, `UTC`).
    pub source: String,
}

/// A POSIX `TZ` rule: standard offset, and daylight saving between two
/// yearly dates when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    std: i32,
    dst: Option<(i32, Date, i32, Date, i32)>,
}

/// `Mm.w.d`: day `d` (0 Sunday) of week `w` (5: the last) of month `m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Date {
    month: u32,
    week: u32,
    day: u32,
}

/// A local moment: day of the week (0 Monday .. 6 Sunday) and minute of
/// the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub weekday: u8,
    pub minute: u16,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            transitions: Vec::new(),
            initial: 0,
            rule: None,
            source: "UTC".into(),
        }
    }

    /// The zone `TZ` names (`tz`: its value), else `/etc/localtime`; UTC
    /// when neither can be read. With it, what to log: why the zone is not
    /// the one `TZ` names, or UTC, and what works instead.
    pub fn load(tz: Option<&str>) -> (Zone, Option<String>) {
        Zone::load_from(
            tz,
            Path::new("/usr/share/zoneinfo"),
            Path::new("/etc/localtime"),
        )
    }

    /// [`Zone::load`] with the zone files under `zoneinfo` and the local
    /// zone at `localtime`. A zone name this system has no file for (the
    /// image is built `FROM scratch`: no `/usr/share/zoneinfo`) falls back
    /// to `localtime`, which a container gets by mounting the host's.
    pub fn load_from(
        tz: Option<&str>,
        zoneinfo: &Path,
        localtime: &Path,
    ) -> (Zone, Option<String>) {
        let read = |path: &Path, source: String| {
            let bytes = std::fs::read(path).ok()?;
            let mut z = parse_tzif(&bytes)?;
            z.source = source;
            Some(z)
        };
        let local = || read(localtime, localtime.display().to_string());
        const WORKS: &str = "mount the host's /etc/localtime read-only into the container (volume /etc/localtime:/etc/localtime:ro), or set TZ to a POSIX rule such as TZ=CET-1CEST,M3.5.0,M10.5.0/3 (Central Europe)";
        let t = match tz.map(|t| t.strip_prefix(':').unwrap_or(t)) {
            Some("") => return (Zone::utc(), None),
            Some(t) => t,
            None => {
                return match local() {
                    Some(z) => (z, None),
                    None => (
                        Zone::utc(),
                        Some(format!(
                            "no local time zone found (TZ is not set and {} cannot be read): the speed schedule uses UTC; {WORKS}",
                            localtime.display()
                        )),
                    ),
                };
            }
        };
        let file = match t.starts_with('/') {
            true => PathBuf::from(t),
            false => zoneinfo.join(t),
        };
        let safe = !t.split('/').any(|p| p == "..");
        let source = format!("TZ={t}");
        let found = safe.then(|| read(&file, source.clone())).flatten();
        let rule = || {
            Some(Zone {
                transitions: Vec::new(),
                initial: 0,
                rule: Some(parse_rule(t)?),
                source: source.clone(),
            })
        };
        if let Some(z) = found.or_else(rule) {
            return (z, None);
        }
        if UTC_NAMES.contains(&t) {
            return (Zone::utc(), None);
        }
        let missing = format!(
            "the time zone TZ={t} is neither a POSIX rule nor a zone file here ({} cannot be read; jack's image has no zone files)",
            file.display()
        );
        match local() {
            Some(z) => (
                z,
                Some(format!(
                    "{missing}: the speed schedule uses {} instead",
                    localtime.display()
                )),
            ),
            None => (
                Zone::utc(),
                Some(format!(
                    "{missing} and {} cannot be read: the speed schedule uses UTC; {WORKS}",
                    localtime.display()
                )),
            ),
        }
    }

    /// A zone from a POSIX rule alone (tests, `TZ=UTC0`).
    pub fn posix(rule: &str) -> Option<Zone> {
        Some(Zone {
            transitions: Vec::new(),
            initial: 0,
            rule: Some(parse_rule(rule)?),
            source: format!("TZ={rule}"),
        })
    }

    /// The offset east of UTC at `t` (Unix seconds).
    pub fn offset(&self, t: i64) -> i32 {
        let i = self.transitions.partition_point(|(start, _)| *start <= t);
        match (i, self.rule) {
            (n, Some(rule)) if n == self.transitions.len() => rule.offset(t),
            (0, _) => self.initial,
            (n, _) => self.transitions[n - 1].1,
        }
    }

    /// `t` in this zone.
    pub fn local(&self, t: SystemTime) -> Local {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        let local = secs.saturating_add(i64::from(self.offset(secs)));
        let days = local.div_euclid(86_400);
        Local {
            // 1970-01-01 was a Thursday (3, Monday being 0).
            weekday: u8::try_from((days + 3).rem_euclid(7)).unwrap_or(0),
            minute: u16::try_from(local.rem_euclid(86_400) / 60).unwrap_or(0),
        }
    }
}

impl Rule {
    fn offset(&self, t: i64) -> i32 {
        let Some((dst, start, start_at, end, end_at)) = self.dst else {
            return self.std;
        };
        let year = civil_from_days((t + i64::from(self.std)).div_euclid(86_400)).0;
        // Each change at its local time: the start in standard time, the
        // end in daylight time.
        let on = start.day_in(year) * 86_400 + i64::from(start_at) - i64::from(self.std);
        let off = end.day_in(year) * 86_400 + i64::from(end_at) - i64::from(dst);
        let in_dst = match on < off {
            true => on <= t && t < off,
            false => !(off <= t && t < on),
        };
        if in_dst { dst } else { self.std }
    }
}

impl Date {
    /// Days since 1970-01-01 of this date in `year`.
    fn day_in(&self, year: i64) -> i64 {
        let first = days_from_civil(year, self.month, 1);
        // 1970-01-01 was a Thursday (4, Sunday being 0).
        let first_dow = (first + 4).rem_euclid(7);
        let mut day = first + (i64::from(self.day) - first_dow).rem_euclid(7);
        day += 7 * (i64::from(self.week) - 1);
        let next_month = match self.month {
            12 => days_from_civil(year + 1, 1, 1),
            m => days_from_civil(year, m + 1, 1),
        };
        while day >= next_month {
            day -= 7;
        }
        day
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1))
}

/// A POSIX `TZ` rule: `std offset [dst [offset] [,start[/time],end[/time]]]`
/// with `Mm.w.d` dates (the form every zone uses).
fn parse_rule(s: &str) -> Option<Rule> {
    let mut p = Parser { s: s.as_bytes() };
    p.name()?;
    let std = -p.offset()?;
    if p.s.is_empty() {
        return Some(Rule { std, dst: None });
    }
    p.name()?;
    let dst = match p.s.first() {
        Some(b',') | None => std + 3600,
        _ => -p.offset()?,
    };
    let (start, start_at, end, end_at) = match p.s.first() {
        // No dates: the US rules, as glibc assumes.
        None => (
            Date {
                month: 3,
                week: 2,
                day: 0,
            },
            7200,
            Date {
                month: 11,
                week: 1,
                day: 0,
            },
            7200,
        ),
        Some(_) => {
            p.eat(b',')?;
            let (start, start_at) = (p.date()?, p.at()?);
            p.eat(b',')?;
            (start, start_at, p.date()?, p.at()?)
        }
    };
    p.s.is_empty().then_some(Rule {
        std,
        dst: Some((dst, start, start_at, end, end_at)),
    })
}

struct Parser<'a> {
    s: &'a [u8],
}

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.s.first() == Some(&c)).then(|| self.s = &self.s[1..])
    }

    fn name(&mut self) -> Option<()> {
        let n = match self.s.first() {
            Some(b'<') => self.s.iter().position(|&c| c == b'>')? + 1,
            _ => {
                let n = self
                    .s
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                if n < 3 {
                    return None;
                }
                n
            }
        };
        self.s = &self.s[n..];
        Some(())
    }

    fn number(&mut self) -> Option<i32> {
        let n = self.s.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 3 {
            return None;
        }
        let v = std::str::from_utf8(&self.s[..n]).ok()?.parse().ok()?;
        self.s = &self.s[n..];
        Some(v)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, as written (west positive).
    fn offset(&mut self) -> Option<i32> {
        let sign = match self.s.first() {
            Some(b'-') => {
                self.s = &self.s[1..];
                -1
            }
            Some(b'+') => {
                self.s = &self.s[1..];
                1
            }
            _ => 1,
        };
        let mut secs = self.number()? * 3600;
        for unit in [60, 1] {
            if self.eat(b':').is_none() {
                break;
            }
            secs += self.number()? * unit;
        }
        Some(sign * secs)
    }

    fn date(&mut self) -> Option<Date> {
        self.eat(b'M')?;
        let month = u32::try_from(self.number()?).ok()?;
        self.eat(b'.')?;
        let week = u32::try_from(self.number()?).ok()?;
        self.eat(b'.')?;
        let day = u32::try_from(self.number()?).ok()?;
        ((1..=12).contains(&month) && (1..=5).contains(&week) && day <= 6).then_some(Date {
            month,
            week,
            day,
        })
    }

    /// `/time`, 02:00 when absent.
    fn at(&mut self) -> Option<i32> {
        match self.eat(b'/') {
            Some(()) => self.offset(),
            None => Some(7200),
        }
    }
}

/// A TZif file (RFC 8536): version 2 and later data (64-bit times) and
/// the footer rule; a version 1 file's 32-bit data. The file may be hostile
/// or cut short (`TZ=/path`, a mounted `/etc/localtime`): every offset is
/// checked `u64` arithmetic (a header's counts reach 2^32 each, past a
/// 32-bit `usize`), and the data block a header describes must be there in
/// full before anything is allocated, so no allocation is sized beyond the
/// bytes the file holds.
fn parse_tzif(b: &[u8]) -> Option<Zone> {
    // The `n` bytes at `at`, or `None` where the file ends first.
    let get = |at: u64, n: u64| -> Option<&[u8]> {
        let end = usize::try_from(at.checked_add(n)?).ok()?;
        b.get(usize::try_from(at).ok()?..end)
    };
    let be32 = |at: u64| -> Option<u32> { Some(u32::from_be_bytes(get(at, 4)?.try_into().ok()?)) };
    let header = |at: u64| -> Option<[u64; 6]> {
        if get(at, 4)? != b"TZif" {
            return None;
        }
        let mut counts = [0u64; 6];
        for (i, c) in (0u64..).zip(counts.iter_mut()) {
            *c = u64::from(be32(at.checked_add(20 + 4 * i)?)?);
        }
        Some(counts)
    };
    // The data block's length: times of `t` bytes, their type indexes,
    // 6-byte types, abbreviations, leap records, the two indicator arrays.
    let size = |[isut, isstd, leap, time, types, chars]: [u64; 6], t: u64| -> Option<u64> {
        [
            time.checked_mul(t)?,
            time,
            types.checked_mul(6)?,
            chars,
            leap.checked_mul(t.checked_add(4)?)?,
            isstd,
            isut,
        ]
        .into_iter()
        .try_fold(0u64, u64::checked_add)
    };
    let counts = header(0)?;
    let (at, counts, t) = match b.get(4) {
        Some(b'2'..=b'9') => {
            let second = size(counts, 4)?.checked_add(44)?;
            (second.checked_add(44)?, header(second)?, 8)
        }
        _ => (44, counts, 4),
    };
    let [_, _, _, timecnt, typecnt, _] = counts;
    let end = at.checked_add(size(counts, t)?)?;
    // All of it is there: from here no count exceeds the file's length.
    get(at, end - at)?;
    let time = |i: u64| -> Option<i64> {
        let o = at.checked_add(i.checked_mul(t)?)?;
        Some(match t {
            8 => i64::from_be_bytes(get(o, 8)?.try_into().ok()?),
            _ => i64::from(i32::from_be_bytes(get(o, 4)?.try_into().ok()?)),
        })
    };
    let idx_at = at.checked_add(timecnt.checked_mul(t)?)?;
    let types_at = idx_at.checked_add(timecnt)?;
    let utoff = |ty: u64| -> Option<i32> {
        (ty < typecnt).then_some(())?;
        let o = types_at.checked_add(ty.checked_mul(6)?)?;
        Some(i32::from_be_bytes(get(o, 4)?.try_into().ok()?))
    };
    let mut transitions = Vec::with_capacity(usize::try_from(timecnt).ok()?);
    for i in 0..timecnt {
        let ty = *get(idx_at.checked_add(i)?, 1)?.first()?;
        transitions.push((time(i)?, utoff(u64::from(ty))?));
    }
    let rule = match t {
        // The footer: a newline, a POSIX rule (maybe empty), a newline; a
        // file cut inside it is refused like one cut anywhere else.
        8 => {
            let footer = b.get(usize::try_from(end).ok()?..)?;
            let text = std::str::from_utf8(footer).ok()?;
            let text = text.strip_prefix('\n')?.strip_suffix('\n')?;
            (!text.is_empty()).then(|| parse_rule(text)).flatten()
        }
        _ => None,
    };
    Some(Zone {
        transitions,
        initial: utoff(0)?,
        rule,
        source: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn posix_rules_switch_at_their_local_times() {
        let paris = Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2026-03-29 00:59:59 UTC: 01:59 CET, a Sunday (6).
        assert_eq!(
            paris.local(at(1_774_745_999)),
            Local {
                weekday: 6,
                minute: 119
            }
        );
        // One second later it is 03:00 CEST.
        assert_eq!(paris.local(at(1_774_746_000)).minute, 180);
        // 2026-10-25 00:59:59 UTC: 02:59 CEST; then 02:00 CET.
        assert_eq!(paris.local(at(1_792_889_999)).minute, 179);
        assert_eq!(paris.local(at(1_792_890_000)).minute, 120);
        // Southern hemisphere: Sydney in January is on daylight time (+11).
        let sydney = Zone::posix("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        // 2026-01-15 00:00 UTC is 11:00 there, a Thursday (3).
        assert_eq!(
            sydney.local(at(1_768_435_200)),
            Local {
                weekday: 3,
                minute: 660
            }
        );
        // New York in July: -4.
        let ny = Zone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(ny.offset(1_783_900_800), -4 * 3600);
        assert_eq!(Zone::posix("UTC0").unwrap().offset(0), 0);
        assert_eq!(Zone::posix("<+0530>-5:30").unwrap().offset(0), 19_800);
        for bad in [
            "",
            "X1",
            "CET-1CEST,M13.1.0,M1.1.0",
            "CET",
            "CET-1CEST,M3.5.0",
        ] {
            assert_eq!(Zone::posix(bad), None, "{bad:?}");
        }
    }

    /// A real zone file, small: Europe/Paris from 1977 (transitions to
    /// 1996, then its footer rule), made by `zic -b slim` from
    /// `tests/fixtures/tzif/Europe-Paris.zi`.
    const PARIS: &[u8] = include_bytes!("../tests/fixtures/tzif/Europe-Paris.slim");

    /// A TZif header: version, then the six counts (isut, isstd, leap,
    /// time, type, char).
    fn header(version: u8, counts: [u32; 6]) -> Vec<u8> {
        let mut h = b"TZif".to_vec();
        h.push(version);
        h.extend([0u8; 15]);
        for c in counts {
            h.extend(c.to_be_bytes());
        }
        h
    }

    #[test]
    fn a_real_zone_file_reads_as_its_rule_says() {
        let z = parse_tzif(PARIS).unwrap();
        let rule = Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 1996 and 1997 from the transitions, 2025 and 2026 from the footer.
        for start in [820_454_400i64, 1_735_689_600] {
            for h in 0..2 * 8760 {
                let t = start + h * 3600;
                assert_eq!(z.offset(t), rule.offset(t), "at {t}");
            }
        }
        // 1990's summer time ended in September, as the transitions say.
        assert_eq!(z.offset(654_739_200), 3600, "1990-10-01");
    }

    #[test]
    fn a_zone_file_cut_short_anywhere_is_refused() {
        let system = std::fs::read("/usr/share/zoneinfo/Europe/Paris").ok();
        for file in [Some(PARIS.to_vec()), system].into_iter().flatten() {
            assert!(parse_tzif(&file).is_some());
            for n in 0..file.len() {
                assert_eq!(parse_tzif(&file[..n]), None, "the first {n} bytes");
            }
        }
    }

    #[test]
    fn hostile_zone_headers_are_refused_without_allocating_for_them() {
        let max = u32::MAX;
        let mut files = vec![
            // Every count 2^32 - 1 (a 60-byte file claiming 68 GB of
            // transitions once aborted jack at start).
            [header(b'\0', [max; 6]), vec![0; 16]].concat(),
            [header(b'2', [max; 6]), vec![0; 16]].concat(),
            // Only the transitions: 4 GiB of times, on a 32-bit `usize`
            // 2^30 * 4 wraps to 0.
            [header(b'\0', [0, 0, 0, 1 << 30, 1, 0]), vec![0; 64]].concat(),
            [header(b'\0', [0, 0, 0, max, 1, 0]), vec![0; 64]].concat(),
            // A version 2 file whose first block's size wraps on 32 bits
            // (2^32 / 6 types), its second header nowhere.
            [header(b'2', [0, 0, 0, 0, max / 6 + 1, 0]), vec![0; 64]].concat(),
            // Leap records: (t + 4) * 2^31 and more.
            [header(b'2', [0, 0, max, 0, 1, 0]), vec![0; 64]].concat(),
            // A second header that is itself hostile.
            [
                header(b'2', [0, 0, 0, 0, 1, 4]),
                vec![0; 10],
                header(b'2', [max; 6]),
            ]
            .concat(),
        ];
        // A type index past the types, a transition before any type.
        files.push(
            [
                header(b'\0', [0, 0, 0, 1, 1, 0]),
                vec![0, 0, 0, 0, 7],
                vec![0; 6],
            ]
            .concat(),
        );
        files.push([header(b'\0', [0, 0, 0, 0, 0, 0])].concat());
        for (i, file) in files.iter().enumerate() {
            assert_eq!(parse_tzif(file), None, "file {i}");
        }
        // The same shapes, whole: read.
        let one = [
            header(b'\0', [0, 0, 0, 1, 1, 0]),
            vec![0, 0, 0, 0, 0],
            vec![0, 0, 0x0e, 0x10, 0, 0],
        ]
        .concat();
        assert_eq!(parse_tzif(&one).unwrap().offset(0), 3600);
    }

    #[test]
    fn the_systems_zone_files_read_as_their_rules_say() {
        // Skipped where the machine has no zone files (the rule test above
        // covers the arithmetic).
        let Some(bytes) = std::fs::read("/usr/share/zoneinfo/Europe/Paris").ok() else {
            return;
        };
        let z = parse_tzif(&bytes).unwrap();
        let rule = Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // Every hour of 1996 and 1997 (from the transitions) and of 2025 and 2026.
        for start in [820_454_400i64, 1_735_689_600] {
            for h in 0..2 * 8760 {
                let t = start + h * 3600;
                assert_eq!(z.offset(t), rule.offset(t), "at {t}");
            }
        }
        assert_eq!(
            Zone::load_from(
                Some("../../etc/passwd"),
                "/usr/share/zoneinfo".as_ref(),
                "/nowhere".as_ref()
            )
            .0,
            Zone::utc()
        );
    }

    /// What the container sees: `TZ=Europe/Berlin`, as a NAS sets it, with
    /// no zone files; the host's `/etc/localtime` mounted, or not.
    #[test]
    fn a_zone_name_without_its_file_falls_back_to_the_local_zone_file() {
        let dir = std::env::temp_dir().join(format!("jack-tz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let localtime = dir.join("localtime");
        std::fs::write(&localtime, PARIS).unwrap();
        let zoneinfo = dir.join("zoneinfo");
        let paris = parse_tzif(PARIS).unwrap();

        let (zone, why) = Zone::load_from(Some("Europe/Berlin"), &zoneinfo, &localtime);
        assert_eq!(zone.offset(1_751_328_000), 7200, "July: CEST");
        assert_eq!(zone.transitions, paris.transitions);
        assert_eq!(zone.source, localtime.display().to_string());
        let why = why.unwrap();
        assert!(why.contains("TZ=Europe/Berlin"), "{why}");
        assert!(
            why.ends_with(&format!(
                "the speed schedule uses {} instead",
                localtime.display()
            )),
            "{why}"
        );

        // Nothing mounted: UTC, and the warning says what works in the image.
        let nowhere = dir.join("nowhere");
        for tz in [Some("Europe/Berlin"), None] {
            let (zone, why) = Zone::load_from(tz, &zoneinfo, &nowhere);
            assert_eq!(zone, Zone::utc());
            let why = why.unwrap();
            assert!(why.contains("uses UTC"), "{why}");
            assert!(why.contains("/etc/localtime:/etc/localtime:ro"), "{why}");
            assert!(why.contains("TZ=CET-1CEST,M3.5.0,M10.5.0/3"), "{why}");
            assert!(!why.contains("Europe/Paris"), "{why}");
        }

        // A zone file, a rule and a name of UTC need no fallback.
        std::fs::create_dir_all(zoneinfo.join("Europe")).unwrap();
        std::fs::write(zoneinfo.join("Europe/Berlin"), PARIS).unwrap();
        let (zone, why) = Zone::load_from(Some("Europe/Berlin"), &zoneinfo, &nowhere);
        assert_eq!((zone.source.as_str(), why), ("TZ=Europe/Berlin", None));
        let (zone, why) = Zone::load_from(Some("CET-1CEST,M3.5.0,M10.5.0/3"), &zoneinfo, &nowhere);
        assert_eq!((zone.offset(1_751_328_000), why), (7200, None));
        for utc in ["UTC", "Etc/UTC", ""] {
            assert_eq!(
                Zone::load_from(Some(utc), &zoneinfo, &localtime),
                (Zone::utc(), None),
                "{utc}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
