//! `[limits]`: the alternative speed limits and the schedule that turns
//! them on (as qBittorrent's "alternative speed limits" and its
//! scheduler), and the check every rate key shares ([`Cx::rate`]: 0, or a
//! rate a friend's node can live with). The normal rates are
//! `[server] max_upload_rate` and `[downloads] max_rate`. This module
//! must not apply a limit (that is `limits`).

use std::ops::Range;

use toml::de::DeValue;

use super::schema::{Key, section};
use super::walk::{Cx, Table};
use crate::limits::{DAY_NAMES, EVERY_DAY, Schedule};

/// The largest rate a key takes (1 TiB/s): any real link is below.
pub const MAX_RATE: u64 = 1 << 40;

section! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LimitsConfig {
        /// `alt_from`..`alt_to` on `alt_days`; `None`: the alternative
        /// rates are on only when the owner turns them on.
        pub schedule: Option<Schedule>,
    }
    keys {
        pub alt_upload_rate: u64 = Key::count(
            "alt_upload_rate", 0, 0..=MAX_RATE,
            "max_upload_rate while the alternative limits are on (0: no limit)",
        ),
        pub alt_download_rate: u64 = Key::count(
            "alt_download_rate", 0, 0..=MAX_RATE,
            "max_rate of downloads while the alternative limits are on (0: no limit)",
        ),
    }
    hand [
        Key::hand("alt_from", None, "local time the alternative limits go on, \"HH:MM\""),
        Key::hand("alt_to", None, "local time they go off, \"HH:MM\" (before alt_from: the next day)"),
        Key::hand("alt_days", None, "days the window starts: \"mon\" .. \"sun\" (default: every day)"),
    ]
}

impl LimitsConfig {
    /// `[limits]` as `check-config` prints it.
    pub(super) fn show(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "\n[limits]")?;
        self.show_keys(f)?;
        if let Some(w) = &self.schedule {
            writeln!(f, "alt_from = {:?}", Schedule::clock(w.from))?;
            writeln!(f, "alt_to = {:?}", Schedule::clock(w.to))?;
            writeln!(f, "alt_days = {:?}", w.day_names())?;
        }
        Ok(())
    }
}

impl Cx<'_> {
    pub(super) fn limits(
        &mut self,
        top: &mut Table<'_, '_>,
        max_concurrent_downloads: usize,
    ) -> LimitsConfig {
        self.section(top, "limits", LimitsConfig::KEYS, |cx, t| {
            let schedule = cx.schedule(t);
            let l = LimitsConfig::walk(cx, t, schedule);
            cx.rate(t, "alt_upload_rate", l.alt_upload_rate, None);
            let n = Some(max_concurrent_downloads);
            cx.rate(t, "alt_download_rate", l.alt_download_rate, n);
            l
        })
    }

    /// A rate key's value: 0, or at least `limits::MIN_RATE` (and enough
    /// for `downloads` downloads at once).
    pub(super) fn rate(&mut self, t: &Table<'_, '_>, k: &str, v: u64, downloads: Option<usize>) {
        if let Some(msg) = crate::limits::rate_problem(v, downloads) {
            self.problem(t.key(k), t.span_of(k), msg);
        }
    }

    fn schedule(&mut self, t: &mut Table<'_, '_>) -> Option<Schedule> {
        let mut clock = |cx: &mut Cx<'_>, k: &'static str| {
            let (s, span) = cx.string(t, k)?;
            let m = Schedule::parse_clock(&s);
            if m.is_none() {
                let msg = format!("{s:?} is not a time of day: write \"HH:MM\", e.g. \"08:00\"");
                cx.problem(t.key(k), Some(span), msg);
            }
            Some((m, t.span_of(k)))
        };
        let from = clock(self, "alt_from");
        let to = clock(self, "alt_to");
        let days = self.days(t);
        match (from, to) {
            (Some((Some(from), _)), Some((Some(to), span))) if from == to => {
                let msg = "must differ from alt_from (the window would be empty)";
                self.problem(t.key("alt_to"), span, msg);
                None
            }
            (Some((Some(from), _)), Some((Some(to), _))) => Some(Schedule {
                from,
                to,
                days: days.unwrap_or(EVERY_DAY),
            }),
            (Some((_, span)), None) => {
                self.problem(
                    t.key("alt_to"),
                    span,
                    "alt_from needs alt_to (set both or neither)",
                );
                None
            }
            (None, Some((_, span))) => {
                self.problem(
                    t.key("alt_from"),
                    span,
                    "alt_to needs alt_from (set both or neither)",
                );
                None
            }
            (None, None) if days.is_some() => {
                let span = t.span_of("alt_days");
                self.problem(
                    t.key("alt_days"),
                    span,
                    "alt_days needs alt_from and alt_to",
                );
                None
            }
            _ => None,
        }
    }

    /// `alt_days`: a non-empty list of day names.
    fn days(&mut self, t: &mut Table<'_, '_>) -> Option<u8> {
        let v = t.get("alt_days")?;
        let span: Range<usize> = v.span();
        let DeValue::Array(items) = v.get_ref() else {
            let msg = "expected a list of days, e.g. [\"mon\", \"tue\", \"sat\"]";
            self.problem(t.key("alt_days"), Some(span), msg);
            return None;
        };
        let mut days = 0u8;
        for item in items.iter() {
            let found = match item.get_ref() {
                DeValue::String(s) => DAY_NAMES.iter().position(|d| s.eq_ignore_ascii_case(d)),
                _ => None,
            };
            match found {
                Some(d) => days |= 1 << d,
                None => {
                    let msg =
                        "days are \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"";
                    self.problem(t.key("alt_days"), Some(item.span()), msg);
                }
            }
        }
        if items.is_empty() {
            let msg = "name at least one day, or leave alt_days out for every day";
            self.problem(t.key("alt_days"), Some(span), msg);
        }
        Some(days)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;
    use crate::limits::Schedule;

    #[test]
    fn bad_limits_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\nmax_upload_rate = 1000\n",
                "server.max_upload_rate",
                Some(3),
                "must be 0 (no limit) or at least 65536",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_upload_rate = \"1M\"\n",
                "server.max_upload_rate",
                Some(3),
                "expected an integer",
            ),
            (
                "[server]\napi_key = \"k\"\nmax_upload_rate = -1\n",
                "server.max_upload_rate",
                Some(3),
                "at least 0",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_concurrent_downloads = 8\nmax_rate = 65536\n",
                "downloads.max_rate",
                Some(5),
                "at least 131072 bytes per second with max_concurrent_downloads = 8",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_download_rate = 10\n",
                "limits.alt_download_rate",
                Some(4),
                "at least 65536",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_from = \"8am\"\nalt_to = \"23:00\"\n",
                "limits.alt_from",
                Some(4),
                "not a time of day: write \"HH:MM\"",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_from = \"08:00\"\n",
                "limits.alt_to",
                Some(4),
                "set both or neither",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_from = \"08:00\"\nalt_to = \"08:00\"\n",
                "limits.alt_to",
                Some(5),
                "must differ",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_from = \"08:00\"\nalt_to = \"09:00\"\nalt_days = [\"mon\", \"funday\"]\n",
                "limits.alt_days",
                Some(6),
                "days are \"mon\"",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_days = [\"mon\"]\n",
                "limits.alt_days",
                Some(4),
                "needs alt_from and alt_to",
            ),
            (
                "[server]\napi_key = \"k\"\n[limits]\nalt_speed = 1\n",
                "limits.alt_speed",
                Some(4),
                "unknown key",
            ),
        ]);
    }

    #[test]
    fn a_schedule_reads_into_minutes_and_days() {
        let c = parse(
            "[server]\napi_key = \"k\"\nmax_upload_rate = 1048576\n[downloads]\nmax_rate = 4194304\n[limits]\nalt_upload_rate = 65536\nalt_from = \"23:30\"\nalt_to = \"07:00\"\nalt_days = [\"Sat\", \"sun\"]\n",
        )
        .unwrap();
        assert_eq!(c.server.max_upload_rate, 1 << 20);
        assert_eq!(c.downloads.max_rate, 4 << 20);
        assert_eq!(
            c.limits.schedule,
            Some(Schedule {
                from: 23 * 60 + 30,
                to: 7 * 60,
                days: 0b110_0000
            })
        );
        let s = c.limit_settings();
        assert_eq!(
            (s.normal.upload, s.alt.upload, s.alt.download),
            (1 << 20, 65_536, 0)
        );
        assert!(c.to_string().contains("alt_days = [\"sat\", \"sun\"]"));
        assert_eq!(parse(MINIMAL).unwrap().limits.schedule, None);
    }
}
