//! How sizes, speeds and durations read to a person: `1.5 GiB`,
//! `3.0 MiB/s`, `3m05s`. Pure, shared by every plane (a log line, the
//! status table, an error).

use std::fmt::Write as _;

/// `45s`, `3m05s`, `2h07m`, `3d04h`.
pub fn human_duration(secs: u64) -> String {
    let mut s = String::new();
    write_human_duration(&mut s, secs);
    s
}

/// [`human_duration`], appended to `out`.
pub fn write_human_duration(out: &mut String, secs: u64) {
    let _ = match secs {
        s if s < 60 => write!(out, "{s}s"),
        s if s < 3600 => write!(out, "{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => write!(out, "{}h{:02}m", s / 3600, s % 3600 / 60),
        s => write!(out, "{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    };
}

/// `1.5 MiB/s`.
pub fn human_speed(bytes_per_second: u64) -> String {
    format!("{}/s", human_bytes(bytes_per_second))
}

/// `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    let mut s = String::new();
    write_human_bytes(&mut s, n);
    s
}

/// [`human_bytes`], appended to `out`.
pub fn write_human_bytes(out: &mut String, n: u64) {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        let _ = write!(out, "{n} B");
        return;
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let _ = write!(out, "{v:.1} {}", UNITS[unit]);
}

/// Seconds left for `remaining` bytes at `speed` bytes/s (`None`: stalled).
pub fn eta(remaining: u64, speed: u64) -> Option<u64> {
    match speed {
        0 => None,
        s => Some(remaining.div_ceil(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
        assert_eq!(human_speed(3 * 1024 * 1024), "3.0 MiB/s");
    }
    #[test]
    fn etas_and_durations() {
        let cases = [
            (0, 10, Some(0)),
            (100, 10, Some(10)),
            (101, 10, Some(11)),
            (100, 0, None),
            (u64::MAX, 1, Some(u64::MAX)),
        ];
        for (remaining, speed, want) in cases {
            assert_eq!(eta(remaining, speed), want, "{remaining} at {speed}");
        }
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (185, "3m05s"),
            (7620, "2h07m"),
            (86_400 * 3 + 3600 * 4, "3d04h"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want);
        }
    }
}
