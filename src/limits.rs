//! The speed limits in force, and who set them: [`Limits`] holds the
//! configured rates (`[server] max_upload_rate`, `[downloads] max_rate`,
//! `[limits]`'s alternative rates and their schedule), the owner's changes
//! from the status page or API (run-time only: a restart or a `SIGHUP`
//! goes back to the file), whether the alternative rates are on, and
//! pushes the rates in force into the `rate` buckets. The `limits` thread
//! ([`Limits::start`]) follows the schedule: at each start or end of the
//! window it turns the alternative rates on or off, as qBittorrent's
//! scheduler does (a toggle by the owner holds until the next one). This
//! module must not know who sends or receives, nor read the clock on the
//! hot path (the buckets do not ask it anything).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

use crate::localtime::Zone;
use crate::rate::Bucket;

/// The smallest rate that is a limit (0 is none): below it a friend's
/// downloader would wait seconds for each chunk.
pub const MIN_RATE: u64 = 65_536;
/// What each running download needs at least: a friend's node cuts a body
/// slower than its `min_send_rate` (8 KiB/s by default), so the download
/// limit must leave every download twice that.
pub const MIN_RATE_PER_DOWNLOAD: u64 = 16_384;

/// An upload and a download rate in bytes per second (0: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rates {
    pub upload: u64,
    pub download: u64,
}

/// When the alternative rates are on by themselves: from `from` to `to`
/// (minutes of the local day; `to` before `from` wraps past midnight) on
/// the `days` it starts (bit 0 Monday .. bit 6 Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub from: u16,
    pub to: u16,
    pub days: u8,
}

pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
pub const EVERY_DAY: u8 = 0b111_1111;

impl Schedule {
    /// Whether the window is open at `weekday` (0 Monday), `minute` of
    /// the day.
    pub fn active(&self, weekday: u8, minute: u16) -> bool {
        let on = |day: u8| self.days & (1 << (day % 7)) != 0;
        if self.from < self.to {
            on(weekday) && self.from <= minute && minute < self.to
        } else {
            (minute >= self.from && on(weekday)) || (minute < self.to && on(weekday + 6))
        }
    }

    /// `HH:MM`.
    pub fn clock(minute: u16) -> String {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }

    /// `"08:00"` → 480; `None` unless `HH:MM` within the day.
    pub fn parse_clock(s: &str) -> Option<u16> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m) = (
            crate::lexical::decimal::<u16>(h)?,
            crate::lexical::decimal::<u16>(m)?,
        );
        (h < 24 && m < 60).then_some(h * 60 + m)
    }

    pub fn day_names(&self) -> Vec<&'static str> {
        (0..7)
            .filter(|d| self.days & (1 << d) != 0)
            .map(|d| DAY_NAMES[d])
            .collect()
    }
}

/// What the file says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub normal: Rates,
    pub alt: Rates,
    pub schedule: Option<Schedule>,
}

/// Why a rate is refused (`None`: fine); `downloads`, for a download rate,
/// is `max_concurrent_downloads`.
pub fn rate_problem(rate: u64, downloads: Option<usize>) -> Option<String> {
    if rate == 0 {
        return None;
    }
    if rate < MIN_RATE {
        return Some(format!(
            "must be 0 (no limit) or at least {MIN_RATE} bytes per second (64 KiB/s); a smaller limit would make friends' downloads wait seconds for each piece"
        ));
    }
    let n = downloads.unwrap_or(0) as u64;
    let floor = MIN_RATE_PER_DOWNLOAD.saturating_mul(n);
    (rate < floor).then(|| {
        format!(
            "must be 0 (no limit) or at least {floor} bytes per second with max_concurrent_downloads = {n} (16 KiB/s for each download: a friend's node cuts a download slower than its min_send_rate)"
        )
    })
}

/// A change asked by the owner (status page, status API, qBittorrent API);
/// absent fields stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub upload: Option<u64>,
    pub download: Option<u64>,
    pub alt_upload: Option<u64>,
    pub alt_download: Option<u64>,
    pub alt: Option<bool>,
}

/// The limits as the status API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// In force now (0: no limit).
    pub upload_rate: u64,
    pub download_rate: u64,
    /// Whether the alternative rates are the ones in force.
    pub alt: bool,
    pub normal: Rates,
    pub alt_rates: Rates,
    /// `{from, to, days, active}` of `[limits]`, `null` without one.
    pub schedule: Option<ScheduleView>,
    /// Whether the owner changed anything since the file was read: such
    /// changes last until the node restarts or reloads its file.
    pub changed_at_run_time: bool,
    pub persists: &'static str,
    /// The time zone the schedule is read in.
    pub zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleView {
    pub from: String,
    pub to: String,
    pub days: Vec<&'static str>,
    pub active: bool,
}

const PERSISTS: &str =
    "until the node restarts or reloads jack.toml (SIGHUP); set them in jack.toml to keep them";

struct State {
    file: Settings,
    now: Settings,
    alt: bool,
    /// The schedule's state when last looked at.
    window: Option<bool>,
    changed: bool,
}

/// The limits in force; one per node (`daemon`), shared by the status
/// API, the status page and the qBittorrent API.
pub struct Limits {
    state: Mutex<State>,
    zone: Zone,
    upload: &'static Bucket,
    download: &'static Bucket,
    /// `max_concurrent_downloads`, for [`rate_problem`].
    downloads: usize,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

impl Limits {
    /// Limits from `settings` at `wall`, pushed into the two buckets.
    pub fn new(
        settings: Settings,
        zone: Zone,
        (upload, download): (&'static Bucket, &'static Bucket),
        downloads: usize,
        wall: SystemTime,
    ) -> Limits {
        let limits = Limits {
            state: Mutex::new(State {
                file: settings,
                now: settings,
                alt: false,
                window: None,
                changed: false,
            }),
            zone,
            upload,
            download,
            downloads,
        };
        limits.reload(settings, wall);
        limits
    }

    fn window(&self, s: &Settings, wall: SystemTime) -> Option<bool> {
        let local = self.zone.local(wall);
        s.schedule.map(|w| w.active(local.weekday, local.minute))
    }

    /// The file read again (`SIGHUP`): its rates and schedule, the owner's
    /// changes dropped, the alternative rates on when the window is open.
    pub fn reload(&self, settings: Settings, wall: SystemTime) {
        let mut s = self.state.lock();
        s.file = settings;
        s.now = settings;
        s.window = self.window(&settings, wall);
        s.alt = s.window.unwrap_or(false);
        s.changed = false;
        self.push(&s);
    }

    /// The schedule at `wall`: at a start or end of the window the
    /// alternative rates go on or off. `true` when that changed them.
    pub fn tick(&self, wall: SystemTime) -> bool {
        let mut s = self.state.lock();
        let window = self.window(&s.now, wall);
        if window == s.window {
            return false;
        }
        s.window = window;
        let Some(open) = window else { return false };
        let moved = s.alt != open;
        s.alt = open;
        self.push(&s);
        if moved {
            log::info!(
                "alternative speed limits {} by the schedule",
                if open { "on" } else { "off" }
            );
        }
        moved
    }

    /// The owner's change, checked whole first; every problem in one
    /// message.
    pub fn change(&self, c: Change) -> Result<(), String> {
        let checks = [
            ("upload_rate", c.upload, None),
            ("download_rate", c.download, Some(self.downloads)),
            ("alt_upload_rate", c.alt_upload, None),
            ("alt_download_rate", c.alt_download, Some(self.downloads)),
        ];
        let problems: Vec<String> = checks
            .iter()
            .filter_map(|(name, v, d)| Some(format!("{name} {}", rate_problem((*v)?, *d)?)))
            .collect();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let mut s = self.state.lock();
        let n = &mut s.now;
        n.normal.upload = c.upload.unwrap_or(n.normal.upload);
        n.normal.download = c.download.unwrap_or(n.normal.download);
        n.alt.upload = c.alt_upload.unwrap_or(n.alt.upload);
        n.alt.download = c.alt_download.unwrap_or(n.alt.download);
        s.alt = c.alt.unwrap_or(s.alt);
        s.changed = s.changed || c != Change::default();
        self.push(&s);
        log::info!(
            "speed limits changed by the owner upload={} download={} alt={} (until restart or reload)",
            self.in_force(&s).upload,
            self.in_force(&s).download,
            s.alt
        );
        Ok(())
    }

    /// Whether the alternative rates are in force.
    pub fn alt(&self) -> bool {
        self.state.lock().alt
    }

    /// The rates in force.
    pub fn current(&self) -> Rates {
        self.in_force(&self.state.lock())
    }

    fn in_force(&self, s: &State) -> Rates {
        if s.alt { s.now.alt } else { s.now.normal }
    }

    fn push(&self, s: &State) {
        let r = self.in_force(s);
        if self.upload.rate() != r.upload {
            self.upload.set_rate(r.upload);
        }
        if self.download.rate() != r.download {
            self.download.set_rate(r.download);
        }
    }

    pub fn view(&self, wall: SystemTime) -> View {
        let s = self.state.lock();
        let r = self.in_force(&s);
        View {
            upload_rate: r.upload,
            download_rate: r.download,
            alt: s.alt,
            normal: s.now.normal,
            alt_rates: s.now.alt,
            schedule: s.now.schedule.map(|w| ScheduleView {
                from: Schedule::clock(w.from),
                to: Schedule::clock(w.to),
                days: w.day_names(),
                active: self.window(&s.now, wall).unwrap_or(false),
            }),
            changed_at_run_time: s.changed,
            persists: PERSISTS,
            zone: self.zone.source.clone(),
        }
    }

    /// The `limits` thread: looks at the schedule at each minute's turn.
    pub fn start(self: &Arc<Limits>) -> crate::error::Result<crate::worker::Background> {
        let limits = self.clone();
        crate::worker::Background::spawn("limits", move |stop, _| {
            loop {
                limits.tick(SystemTime::now());
                let secs = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let wait = Duration::from_secs(60 - secs % 60);
                if stop.recv_timeout(wait) != Err(crossbeam_channel::RecvTimeoutError::Timeout) {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const MIB: u64 = 1024 * 1024;

    fn leak() -> (&'static Bucket, &'static Bucket) {
        (
            Box::leak(Box::new(Bucket::new())),
            Box::leak(Box::new(Bucket::new())),
        )
    }

    /// 2026-01-05 (a Monday) at `hh:mm` UTC.
    fn monday(hh: u64, mm: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_571_200 + hh * 3600 + mm * 60)
    }

    #[test]
    fn a_window_wraps_past_midnight_on_the_days_it_starts() {
        let night = Schedule {
            from: 23 * 60,
            to: 7 * 60,
            days: 1 << 4, // Friday night only
        };
        assert!(night.active(4, 23 * 60));
        assert!(
            night.active(5, 6 * 60 + 59),
            "Saturday morning is Friday's night"
        );
        assert!(!night.active(5, 7 * 60));
        assert!(!night.active(5, 23 * 60));
        assert!(!night.active(4, 6 * 60), "Friday morning is Thursday's");
        let day = Schedule {
            from: 8 * 60,
            to: 23 * 60,
            days: EVERY_DAY,
        };
        assert!(day.active(0, 8 * 60) && day.active(6, 22 * 60 + 59));
        assert!(!day.active(0, 23 * 60) && !day.active(0, 7 * 60 + 59));
        let sunday_night = Schedule {
            from: 22 * 60,
            to: 60,
            days: 1 << 6,
        };
        assert!(sunday_night.active(0, 30), "Monday 00:30 is Sunday's night");
    }

    #[test]
    fn clock_times_parse_strictly() {
        assert_eq!(Schedule::parse_clock("08:00"), Some(480));
        assert_eq!(Schedule::parse_clock("23:59"), Some(1439));
        for bad in [
            "8:00", "24:00", "12:60", "12:5", "+1:00", "noon", "12:00:00",
        ] {
            assert_eq!(Schedule::parse_clock(bad), None, "{bad}");
        }
    }

    #[test]
    fn rates_below_the_floor_are_refused_with_why() {
        assert_eq!(rate_problem(0, Some(64)), None);
        assert_eq!(rate_problem(MIN_RATE, None), None);
        assert!(rate_problem(1000, None).unwrap().contains("at least 65536"));
        assert!(
            rate_problem(MIN_RATE, Some(8))
                .unwrap()
                .contains("at least 131072 bytes per second with max_concurrent_downloads = 8")
        );
    }

    #[test]
    fn the_schedule_turns_the_alternative_rates_on_and_off_and_a_toggle_holds_until_then() {
        let buckets = leak();
        let settings = Settings {
            normal: Rates {
                upload: 4 * MIB,
                download: 0,
            },
            alt: Rates {
                upload: MIB,
                download: 2 * MIB,
            },
            schedule: Some(Schedule {
                from: 8 * 60,
                to: 23 * 60,
                days: EVERY_DAY,
            }),
        };
        let l = Limits::new(settings, Zone::utc(), buckets, 3, monday(7, 0));
        assert!(!l.alt());
        assert_eq!((buckets.0.rate(), buckets.1.rate()), (4 * MIB, 0));
        assert!(!l.tick(monday(7, 59)));
        assert!(l.tick(monday(8, 0)));
        assert_eq!((buckets.0.rate(), buckets.1.rate()), (MIB, 2 * MIB));
        // The owner turns them off: that holds while the window stays open...
        l.change(Change {
            alt: Some(false),
            ..Change::default()
        })
        .unwrap();
        assert_eq!(buckets.0.rate(), 4 * MIB);
        assert!(!l.tick(monday(12, 0)));
        assert!(!l.alt());
        // ...and the next turn of the window decides again.
        assert!(!l.tick(monday(23, 0)));
        assert!(l.tick(monday(8, 0) + Duration::from_secs(86_400)));
        assert!(l.alt());
        let v = l.view(monday(9, 0));
        assert_eq!(v.upload_rate, MIB);
        assert_eq!(v.schedule.unwrap().from, "08:00");
        // A reload goes back to the file.
        l.change(Change {
            alt_upload: Some(3 * MIB),
            ..Change::default()
        })
        .unwrap();
        assert_eq!(buckets.0.rate(), 3 * MIB);
        assert!(l.view(monday(9, 0)).changed_at_run_time);
        l.reload(settings, monday(7, 0));
        assert_eq!(buckets.0.rate(), 4 * MIB);
        assert!(!l.view(monday(7, 0)).changed_at_run_time);
    }

    #[test]
    fn a_bad_change_changes_nothing() {
        let buckets = leak();
        let l = Limits::new(Settings::default(), Zone::utc(), buckets, 3, monday(7, 0));
        let e = l
            .change(Change {
                upload: Some(2 * MIB),
                download: Some(100),
                ..Change::default()
            })
            .unwrap_err();
        assert!(
            e.starts_with("download_rate must be 0 (no limit) or at least"),
            "{e}"
        );
        assert_eq!(buckets.0.rate(), 0);
    }
}
