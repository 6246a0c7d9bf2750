//! The retry schedule for downloads (`PROTOCOL.md` §2.5), as pure functions:
//! which failures are retried, how long to wait before the next attempt,
//! and when to give up.
//!
//! No I/O and no sleeping here: the caller passes the current time and a
//! source of randomness, and does the waiting itself. Every number is
//! computed with checked or saturating arithmetic; no header value, attempt
//! number or policy can make this module panic.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of randomness for jitter; tests pass a seeded one.
pub trait Rng: Send {
    /// A uniform value in 0..=max.
    fn below_or_equal(&mut self, max: u64) -> u64;
}

/// Replaces a zero seed, which xorshift would never leave.
const NONZERO_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A xorshift64* generator (Vigna 2016): fast, seeded, reproducible, and not
/// cryptographic. It only spreads retries out in time.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator that always yields the same sequence for the same seed.
    /// A zero seed is replaced by a fixed non-zero constant.
    pub fn new(seed: u64) -> SeededRng {
        let state = if seed == 0 { NONZERO_SEED } else { seed };
        SeededRng { state }
    }

    /// Seeded from the system time and process id, so that two nodes (or two
    /// runs) restarting at once do not retry in lockstep.
    pub fn from_entropy() -> SeededRng {
        // A clock before 1970 only costs some entropy, never a panic.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        // Folding the u128 into a u64 keeps both halves' bits.
        let time = (nanos as u64) ^ ((nanos >> 64) as u64);
        let pid = u64::from(std::process::id());
        SeededRng::new(splitmix64(time ^ pid.rotate_left(32)))
    }

    /// A uniform index in `0..n` (0 when `n` is 0): for tests that pick
    /// from a table.
    pub fn index(&mut self, n: usize) -> usize {
        let max = u64::try_from(n.saturating_sub(1)).unwrap_or(u64::MAX);
        usize::try_from(self.below_or_equal(max)).unwrap_or(0)
    }

    /// The next raw 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Rng for SeededRng {
    /// Lemire's multiply-high method with rejection: exactly uniform, and
    /// usually a single draw.
    fn below_or_equal(&mut self, max: u64) -> u64 {
        let Some(span) = max.checked_add(1) else {
            // The whole u64 range: every output is already uniform.
            return self.next_u64();
        };
        let mut product = u128::from(self.next_u64()) * u128::from(span);
        if (product as u64) < span {
            // The low halves below 2^64 mod span are over-represented
            // buckets' leftovers; redraw them.
            let threshold = span.wrapping_neg() % span;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(span);
            }
        }
        (product >> 64) as u64
    }
}

/// One round of splitmix64: turns a seed with few varying bits (a time, a
/// pid) into a well-mixed one.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How many attempts a download gets and how long to wait between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in total, the first one included; `1` (or `0`) never retries.
    pub max_attempts: u32,
    /// The jitter cap before the first retry, and the wait after a
    /// `Retry-After` that is zero or in the past.
    pub base_delay: Duration,
    /// No delay returned by [`next_delay`] is ever longer than this.
    pub max_delay: Duration,
}

/// How one failed attempt is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Try again (network error, timeout, stall, short body, 5xx, 429).
    Retry,
    /// Give up now: the download fails with this reason.
    Fatal,
    /// Disk full or quota: pause without counting a network retry.
    Pause,
}

/// Classifies an HTTP status that ended an attempt.
///
/// * `429` and every `5xx`: [`Class::Retry`]; the peer is busy or broken
///   for now.
/// * every other `4xx`, `408` included: [`Class::Fatal`]; asking again
///   would get the same answer.
/// * `3xx`: [`Class::Fatal`]; jack does not follow redirects.
/// * `1xx` and `2xx`: [`Class::Fatal`], an unexpected status. Callers do not
///   call this for the statuses they expect (`200`, or `206` to a request
///   with `Range`); a `206` to a request without `Range` is such an
///   unexpected status.
/// * anything below 100 or above 599: [`Class::Fatal`], not HTTP.
pub fn classify_status(status: u16) -> Class {
    match status {
        429 | 500..=599 => Class::Retry,
        _ => Class::Fatal,
    }
}

/// Classifies an I/O error from the network or the disk.
///
/// * Disk full or over quota (`StorageFull`, `QuotaExceeded`, raw `ENOSPC`
///   or `EDQUOT`): [`Class::Pause`]. Retrying the peer would not help; the
///   download waits for space without spending an attempt.
/// * Local-file problems that another attempt cannot fix
///   (`PermissionDenied`, `ReadOnlyFilesystem`, `NotFound` of a local file,
///   `AlreadyExists`, `IsADirectory`, `NotADirectory`, `DirectoryNotEmpty`,
///   `FileTooLarge`, `InvalidFilename`, `CrossesDevices`, `TooManyLinks`,
///   `Unsupported`) and bad data or arguments (`InvalidData`,
///   `InvalidInput`): [`Class::Fatal`]. The caller only passes `NotFound`
///   for local files; a peer's missing item arrives as a `404` status.
/// * Everything else: [`Class::Retry`]. That covers the network's
///   transient failures (`TimedOut`, `WouldBlock`, `ConnectionRefused`,
///   `ConnectionReset`, `ConnectionAborted`, `NotConnected`, `BrokenPipe`,
///   `UnexpectedEof` for a short body, `Interrupted`, `HostUnreachable`,
///   `NetworkUnreachable`, `NetworkDown`, `AddrNotAvailable`, `AddrInUse`)
///   and kinds nobody listed (`Other`, DNS failures, TLS interruptions).
///   Attempts are bounded, so retrying a lasting error costs a few tries,
///   while failing a transient one would fail the download.
pub fn classify_io(err: &io::Error) -> Class {
    use io::ErrorKind as K;
    if crate::error::io_disk_full(err) {
        return Class::Pause;
    }
    match err.kind() {
        K::PermissionDenied
        | K::ReadOnlyFilesystem
        | K::NotFound
        | K::AlreadyExists
        | K::IsADirectory
        | K::NotADirectory
        | K::DirectoryNotEmpty
        | K::FileTooLarge
        | K::InvalidFilename
        | K::CrossesDevices
        | K::TooManyLinks
        | K::Unsupported
        | K::InvalidData
        | K::InvalidInput => Class::Fatal,
        _ => Class::Retry,
    }
}

/// Parses a `Retry-After` value relative to `now`.
///
/// Accepts delay-seconds (one or more ASCII digits: no sign, no fraction;
/// values beyond `u64` seconds saturate) or an HTTP-date in any of the
/// three formats (IMF-fixdate, RFC 850, asctime). Surrounding whitespace is
/// ignored. A date at or before `now` gives `Some(Duration::ZERO)`; anything
/// else gives `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = crate::lexical::trim_ows(value);
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so the only way `parse` fails is overflow.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delay before attempt number `next_attempt`: `2` for the first retry,
/// after attempt 1 failed. `0` and `1` are treated like `2`.
///
/// Returns `None` when `next_attempt > policy.max_attempts`: give up.
///
/// With `retry_after` (from [`parse_retry_after`]): that value, capped at
/// `max_delay`. A zero (`Retry-After: 0`, or a date in the past) waits
/// `base_delay` instead, so a peer cannot make jack retry in a tight loop.
///
/// Without: full jitter, a uniform delay in `[0, cap]` with
/// `cap = min(max_delay, base_delay * 2^(next_attempt - 2))`. This is the
/// spec's `base_delay * 2^(attempt - 1)` where `attempt` counts retries:
/// the first retry (`next_attempt` 2) is capped at `base_delay`, the second
/// at twice that. The product saturates, so any attempt number is safe.
///
/// No returned delay is longer than `max_delay`.
pub fn next_delay(
    policy: &Policy,
    next_attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut dyn Rng,
) -> Option<Duration> {
    let next_attempt = next_attempt.max(2);
    if next_attempt > policy.max_attempts {
        return None;
    }
    if let Some(wait) = retry_after {
        let wait = if wait.is_zero() {
            policy.base_delay
        } else {
            wait
        };
        return Some(wait.min(policy.max_delay));
    }
    let cap = backoff_cap(policy, next_attempt);
    Some(uniform_up_to(cap, rng))
}

/// `min(max_delay, base_delay * 2^(next_attempt - 2))` in nanoseconds.
fn backoff_cap(policy: &Policy, next_attempt: u32) -> u128 {
    let base = policy.base_delay.as_nanos();
    let shift = next_attempt - 2;
    // Shifting by at least the leading zeros would push bits out (or, at 128,
    // is not defined); the product then exceeds any Duration.
    let grown = if base == 0 {
        0
    } else if shift >= base.leading_zeros() {
        u128::MAX
    } else {
        base << shift
    };
    grown.min(policy.max_delay.as_nanos())
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A uniform delay in `[0, cap]` nanoseconds. `cap` never exceeds a
/// `Duration`'s range.
fn uniform_up_to(cap: u128, rng: &mut dyn Rng) -> Duration {
    let nanos = match u64::try_from(cap) {
        Ok(cap) => u128::from(rng.below_or_equal(cap)),
        // Beyond 2^64 ns (584 years) whole seconds are fine enough; a
        // Duration's seconds always fit in u64.
        Err(_) => {
            let seconds = u64::try_from(cap / NANOS_PER_SEC).unwrap_or(u64::MAX);
            u128::from(rng.below_or_equal(seconds)) * NANOS_PER_SEC
        }
    };
    duration_from_nanos(nanos)
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let seconds = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(seconds, subsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn policy(max_attempts: u32, base: Duration, max: Duration) -> Policy {
        Policy {
            max_attempts,
            base_delay: base,
            max_delay: max,
        }
    }

    /// The spec's example policy: 1 s base, 30 s cap.
    fn usual() -> Policy {
        policy(u32::MAX, Duration::from_millis(1000), 30 * SEC)
    }

    /// `1994-11-06 08:49:37 UTC`, the RFC's example date.
    const RFC_EXAMPLE: u64 = 784_111_777;

    #[test]
    fn statuses() {
        let cases: &[(u16, Class)] = &[
            (0, Class::Fatal),
            (99, Class::Fatal),
            (100, Class::Fatal),
            (200, Class::Fatal),
            (204, Class::Fatal),
            (206, Class::Fatal),
            (301, Class::Fatal),
            (302, Class::Fatal),
            (304, Class::Fatal),
            (307, Class::Fatal),
            (308, Class::Fatal),
            (400, Class::Fatal),
            (401, Class::Fatal),
            (403, Class::Fatal),
            (404, Class::Fatal),
            (408, Class::Fatal),
            (410, Class::Fatal),
            (416, Class::Fatal),
            (428, Class::Fatal),
            (429, Class::Retry),
            (430, Class::Fatal),
            (499, Class::Fatal),
            (500, Class::Retry),
            (502, Class::Retry),
            (503, Class::Retry),
            (504, Class::Retry),
            (599, Class::Retry),
            (600, Class::Fatal),
            (u16::MAX, Class::Fatal),
        ];
        for (status, class) in cases {
            assert_eq!(classify_status(*status), *class, "status {status}");
        }
    }

    #[test]
    fn io_errors() {
        use io::ErrorKind as K;
        let cases: &[(K, Class)] = &[
            (K::StorageFull, Class::Pause),
            (K::QuotaExceeded, Class::Pause),
            (K::TimedOut, Class::Retry),
            (K::WouldBlock, Class::Retry),
            (K::ConnectionRefused, Class::Retry),
            (K::ConnectionReset, Class::Retry),
            (K::ConnectionAborted, Class::Retry),
            (K::NotConnected, Class::Retry),
            (K::BrokenPipe, Class::Retry),
            (K::UnexpectedEof, Class::Retry),
            (K::Interrupted, Class::Retry),
            (K::HostUnreachable, Class::Retry),
            (K::NetworkUnreachable, Class::Retry),
            (K::NetworkDown, Class::Retry),
            (K::AddrNotAvailable, Class::Retry),
            (K::AddrInUse, Class::Retry),
            (K::Other, Class::Retry),
            (K::PermissionDenied, Class::Fatal),
            (K::ReadOnlyFilesystem, Class::Fatal),
            (K::NotFound, Class::Fatal),
            (K::InvalidData, Class::Fatal),
            (K::InvalidInput, Class::Fatal),
            (K::IsADirectory, Class::Fatal),
            (K::FileTooLarge, Class::Fatal),
            (K::Unsupported, Class::Fatal),
        ];
        for (kind, class) in cases {
            let err = io::Error::new(*kind, "test");
            assert_eq!(classify_io(&err), *class, "{kind:?}");
            let bare = io::Error::from(*kind);
            assert_eq!(classify_io(&bare), *class, "bare {kind:?}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn enospc_pauses() {
        assert_eq!(classify_io(&io::Error::from_raw_os_error(28)), Class::Pause);
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn edquot_pauses() {
        let err = io::Error::from_raw_os_error(122);
        assert_eq!(classify_io(&err), Class::Pause);
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn raw_network_errors_retry() {
        // ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH on Linux.
        for code in [111, 104, 110, 113] {
            let err = io::Error::from_raw_os_error(code);
            assert_eq!(classify_io(&err), Class::Retry, "errno {code}");
        }
        // EACCES, EROFS.
        for code in [13, 30] {
            let err = io::Error::from_raw_os_error(code);
            assert_eq!(classify_io(&err), Class::Fatal, "errno {code}");
        }
    }

    #[test]
    fn retry_after_seconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let cases: &[(&str, Option<Duration>)] = &[
            ("2", Some(2 * SEC)),
            ("0", Some(Duration::ZERO)),
            (" 3 ", Some(3 * SEC)),
            ("\t120\t", Some(120 * SEC)),
            ("007", Some(7 * SEC)),
            ("18446744073709551615", Some(Duration::from_secs(u64::MAX))),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("-1", None),
            ("+1", None),
            ("1.5", None),
            ("1 2", None),
            ("1s", None),
            ("abc", None),
            ("", None),
            ("   ", None),
            ("٣", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), *expected, "{value:?}");
        }
    }

    #[test]
    fn retry_after_imf_fixdate() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + 10 * SEC);
        assert_eq!(parse_retry_after(&date, now), Some(10 * SEC));
        assert_eq!(parse_retry_after(&format!(" {date} "), now), Some(10 * SEC));
    }

    #[test]
    fn retry_after_legacy_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE - 42);
        let cases = [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ];
        for value in cases {
            assert_eq!(parse_retry_after(value, now), Some(42 * SEC), "{value}");
        }
    }

    #[test]
    fn retry_after_past_date_is_zero() {
        let now = UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE + 3600);
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::ZERO),
                "{value}"
            );
        }
        // The very second `now`, too.
        let now = UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse_retry_after(date, now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_bad_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE);
        for value in [
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "tomorrow",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value}");
        }
    }

    /// Draws `n` delays and returns (max, mean) in nanoseconds, checking each
    /// lies within `[0, cap]`.
    fn draw(
        policy: &Policy,
        attempt: u32,
        cap: Duration,
        n: u32,
        rng: &mut SeededRng,
    ) -> (u128, f64) {
        let mut max = 0;
        let mut sum = 0u128;
        for _ in 0..n {
            let delay = next_delay(policy, attempt, None, rng).unwrap();
            assert!(delay <= cap, "attempt {attempt}: {delay:?} > {cap:?}");
            max = max.max(delay.as_nanos());
            sum += delay.as_nanos();
        }
        (max, sum as f64 / f64::from(n))
    }

    #[test]
    fn full_jitter_is_uniform_up_to_the_cap() {
        let policy = usual();
        let mut rng = SeededRng::new(7);
        let caps = [(2, 1), (3, 2), (4, 4), (5, 8), (6, 16)];
        for (attempt, cap_secs) in caps {
            let cap = Duration::from_secs(cap_secs);
            let (max, mean) = draw(&policy, attempt, cap, 10_000, &mut rng);
            let cap = cap.as_nanos() as f64;
            assert!(max as f64 > 0.9 * cap, "attempt {attempt}: max {max}");
            let half = cap / 2.0;
            assert!(
                (mean - half).abs() < 0.05 * half,
                "attempt {attempt}: mean {mean}"
            );
        }
    }

    #[test]
    fn full_jitter_stops_growing_at_max_delay() {
        let policy = usual();
        let mut rng = SeededRng::new(11);
        for attempt in [7, 40, 64, 65, 128, 129, 1000, u32::MAX] {
            let (max, _) = draw(&policy, attempt, 30 * SEC, 1000, &mut rng);
            assert!(
                max as f64 > 0.9 * (30 * SEC).as_nanos() as f64,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn huge_policies_do_not_overflow() {
        let mut rng = SeededRng::new(3);
        let huge = policy(u32::MAX, Duration::MAX, Duration::MAX);
        for attempt in [2, 3, 100, u32::MAX] {
            assert!(next_delay(&huge, attempt, None, &mut rng).is_some());
        }
        let retry_after = Some(Duration::MAX);
        assert_eq!(
            next_delay(&huge, 2, retry_after, &mut rng),
            Some(Duration::MAX)
        );
        let zero = policy(u32::MAX, Duration::ZERO, Duration::ZERO);
        for attempt in [2, 200, u32::MAX] {
            assert_eq!(
                next_delay(&zero, attempt, None, &mut rng),
                Some(Duration::ZERO)
            );
        }
        // A base above the cap is capped from the first retry.
        let odd = policy(5, 60 * SEC, 10 * SEC);
        assert!(next_delay(&odd, 2, None, &mut rng).unwrap() <= 10 * SEC);
        assert_eq!(
            next_delay(&odd, 2, Some(Duration::ZERO), &mut rng),
            Some(10 * SEC)
        );
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut rng = SeededRng::new(1);
        let five = policy(5, SEC, 30 * SEC);
        assert!(next_delay(&five, 5, None, &mut rng).is_some());
        assert_eq!(next_delay(&five, 6, None, &mut rng), None);
        assert_eq!(next_delay(&five, 6, Some(SEC), &mut rng), None);
        assert_eq!(next_delay(&five, u32::MAX, None, &mut rng), None);
        // 0 and 1 count as the first retry.
        for attempt in [0, 1] {
            let delay = next_delay(&five, attempt, None, &mut rng).unwrap();
            assert!(delay <= SEC, "attempt {attempt}: {delay:?}");
        }
        // One attempt in total, or none: never retry.
        for max_attempts in [0, 1] {
            let never = policy(max_attempts, SEC, 30 * SEC);
            for attempt in [0, 1, 2] {
                assert_eq!(next_delay(&never, attempt, None, &mut rng), None);
            }
        }
    }

    #[test]
    fn retry_after_overrides_jitter() {
        let mut rng = SeededRng::new(5);
        let policy = usual();
        assert_eq!(
            next_delay(&policy, 2, Some(2 * SEC), &mut rng),
            Some(2 * SEC)
        );
        assert_eq!(
            next_delay(&policy, 9, Some(2 * SEC), &mut rng),
            Some(2 * SEC)
        );
        assert_eq!(
            next_delay(&policy, 2, Some(Duration::ZERO), &mut rng),
            Some(SEC)
        );
        let half_hour = policy_with_max(30 * 60 * SEC);
        let ten_hours = Some(10 * 3600 * SEC);
        assert_eq!(
            next_delay(&half_hour, 2, ten_hours, &mut rng),
            Some(30 * 60 * SEC)
        );
        let saturated = Some(Duration::from_secs(u64::MAX));
        assert_eq!(
            next_delay(&half_hour, 2, saturated, &mut rng),
            Some(30 * 60 * SEC)
        );
    }

    fn policy_with_max(max: Duration) -> Policy {
        policy(10, SEC, max)
    }

    #[test]
    fn retry_after_end_to_end() {
        // A 503 with an IMF-fixdate 10 s ahead, then one already past.
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut rng = SeededRng::new(9);
        let policy = usual();
        let ahead = parse_retry_after(&httpdate::fmt_http_date(now + 10 * SEC), now);
        assert_eq!(next_delay(&policy, 2, ahead, &mut rng), Some(10 * SEC));
        let past = parse_retry_after(&httpdate::fmt_http_date(now - 10 * SEC), now);
        assert_eq!(next_delay(&policy, 2, past, &mut rng), Some(SEC));
    }

    #[test]
    fn seeded_rng_is_reproducible() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        let mut c = SeededRng::new(43);
        let xs: Vec<u64> = (0..100).map(|_| a.below_or_equal(u64::MAX)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.below_or_equal(u64::MAX)).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.below_or_equal(u64::MAX)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn zero_seed_is_replaced() {
        let mut zero = SeededRng::new(0);
        let draws: Vec<u64> = (0..10).map(|_| zero.below_or_equal(u64::MAX)).collect();
        assert!(draws.iter().all(|&x| x != 0), "{draws:?}");
        let mut same = SeededRng::new(NONZERO_SEED);
        let again: Vec<u64> = (0..10).map(|_| same.below_or_equal(u64::MAX)).collect();
        assert_eq!(draws, again);
    }

    #[test]
    fn seeded_rng_edges() {
        let mut rng = SeededRng::new(123);
        for _ in 0..1000 {
            assert_eq!(rng.below_or_equal(0), 0);
            assert!(rng.below_or_equal(1) <= 1);
            assert!(rng.below_or_equal(u64::MAX - 1) < u64::MAX);
        }
        let big: Vec<u64> = (0..1000).map(|_| rng.below_or_equal(u64::MAX)).collect();
        // Uniform over u64: about half the draws have the top bit set.
        let high = big.iter().filter(|&&x| x >> 63 == 1).count();
        assert!((400..=600).contains(&high), "{high}");
    }

    #[test]
    fn seeded_rng_fills_buckets_evenly() {
        let mut rng = SeededRng::new(2024);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let value = rng.below_or_equal(9);
            buckets[usize::try_from(value).unwrap()] += 1;
        }
        for (value, count) in buckets.iter().enumerate() {
            assert!(
                (9_500..=10_500).contains(count),
                "{value}: {count} in {buckets:?}"
            );
        }
    }

    #[test]
    fn seeded_rng_is_unbiased_for_awkward_spans() {
        // 2^63 + 2^62 values: a plain modulo would land in the lowest third
        // half the time instead of a third of it.
        let max = (1u64 << 63) + (1u64 << 62) - 1;
        let mut rng = SeededRng::new(77);
        let third = max / 3;
        let low = (0..30_000)
            .filter(|_| rng.below_or_equal(max) <= third)
            .count();
        assert!((9_500..=10_500).contains(&low), "{low}");
    }

    #[test]
    fn entropy_seeds_differ_from_the_fixed_constant() {
        let mut rng = SeededRng::from_entropy();
        let mut fixed = SeededRng::new(0);
        let a: Vec<u64> = (0..4).map(|_| rng.below_or_equal(u64::MAX)).collect();
        let b: Vec<u64> = (0..4).map(|_| fixed.below_or_equal(u64::MAX)).collect();
        assert_ne!(a, b);
    }
}
