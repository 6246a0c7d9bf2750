//! Speed limits: the two process-wide token buckets every file body sent
//! to a friend ([`UPLOAD`], `http/lane`) and every download body received
//! ([`DOWNLOAD`], `download/transfer`) take their bytes from, in chunks,
//! before each `sendfile` or read.
//!
//! A [`Bucket`] hands out reservations in arrival order (a ticket), so
//! concurrent streams share the rate evenly: each asks for one chunk at a
//! time and waits its turn. Time is the monotonic clock; the arithmetic is
//! in nano-bytes (bytes × 10⁹, u128), so no fraction of a byte is lost
//! between refills. The rate changes at run time ([`Bucket::set_rate`]):
//! a waiting thread is woken at once and recomputes its wait, and every
//! waiting thread looks at its stop condition at least every
//! [`WAKE_EVERY`]. A rate of 0 is no limit: [`Bucket::take`] then reads one
//! atomic and takes no lock. This module must not sleep without a bound,
//! nor know who sends or receives (that is the lane's and the transfer's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// What friends take from this node: library file bodies, all together
/// (`[server] max_upload_rate`, or the alternative rate).
pub static UPLOAD: Bucket = Bucket::new();
/// What this node's downloads take, all together (`[downloads] max_rate`).
pub static DOWNLOAD: Bucket = Bucket::new();

/// The longest a waiting thread sleeps before it looks at its stop
/// condition again (a raised rate wakes it at once).
pub const WAKE_EVERY: Duration = Duration::from_millis(100);
/// The smallest and largest chunk handed out at once.
const MIN_CHUNK: u64 = 16 * 1024;
const MAX_CHUNK: u64 = 4 * 1024 * 1024;
const NANO: u128 = 1_000_000_000;

/// A token bucket whose rate can change while threads wait on it.
pub struct Bucket {
    /// The rate in bytes per second, 0 for none: the one thing read when
    /// there is no limit.
    rate: AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({} B/s)", self.rate())
    }
}

impl Bucket {
    pub const fn new() -> Bucket {
        Bucket {
            rate: AtomicU64::new(0),
            state: Mutex::new(State::new()),
            changed: Condvar::new(),
        }
    }

    /// The rate in bytes per second (0: no limit).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Whether there is a limit at all.
    #[inline]
    pub fn limited(&self) -> bool {
        self.rate() != 0
    }

    /// Sets the rate (0: no limit) and wakes every waiting thread, which
    /// goes on at the new rate.
    pub fn set_rate(&self, rate: u64) {
        let mut state = self.state.lock();
        state.set_rate(Instant::now(), rate);
        self.rate.store(rate, Ordering::Relaxed);
        drop(state);
        self.changed.notify_all();
    }

    /// Up to `want` bytes may be moved now: waits for this caller's turn
    /// (at most one chunk of the rate) and returns how many. `None` when
    /// `stop` said so while waiting (looked at at least every
    /// [`WAKE_EVERY`]); the reservation is then given back. Without a limit
    /// `want` at once, without a lock.
    pub fn take(&self, want: u64, stop: impl Fn() -> bool) -> Option<u64> {
        if !self.limited() || want == 0 {
            return Some(want);
        }
        let mut state = self.state.lock();
        let (granted, ticket) = state.reserve(Instant::now(), want);
        loop {
            let wait = state.wait(Instant::now(), ticket);
            if wait.is_zero() {
                return Some(granted);
            }
            if stop() {
                state.refund(Instant::now(), granted);
                return None;
            }
            let _ = self.changed.wait_for(&mut state, wait.min(WAKE_EVERY));
        }
    }

    /// Gives back bytes taken but not moved (a short read or send), so the
    /// next waiting stream may have them.
    pub fn refund(&self, unused: u64) {
        if unused == 0 || !self.limited() {
            return;
        }
        self.state.lock().refund(Instant::now(), unused);
        self.changed.notify_all();
    }
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket::new()
    }
}

/// The chunk handed out at once at `rate`: about 1/16 s of it, within
/// 16 KiB..=4 MiB. Also the burst an idle bucket holds.
pub fn chunk(rate: u64) -> u64 {
    (rate / 16).clamp(MIN_CHUNK, MAX_CHUNK)
}

/// The bucket's arithmetic, pure: time comes in. Two counters in
/// nano-bytes: every reservation raises `reserved` (its ticket is the new
/// value), the clock raises `paid` by the rate (never more than one burst
/// above what is reserved); a ticket may go once `paid` reaches it.
#[derive(Debug)]
struct State {
    rate: u64,
    reserved: u128,
    paid: u128,
    last: Option<Instant>,
}

impl State {
    const fn new() -> State {
        State {
            rate: 0,
            reserved: 0,
            paid: 0,
            last: None,
        }
    }

    fn burst(&self) -> u128 {
        u128::from(chunk(self.rate)) * NANO
    }

    /// Brings `paid` up to `now` at the current rate.
    fn refill(&mut self, now: Instant) {
        let last = *self.last.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last).as_nanos();
        self.last = Some(now.max(last));
        let ceiling = self.reserved + self.burst();
        self.paid = (self.paid + elapsed * u128::from(self.rate)).min(ceiling.max(self.paid));
    }

    fn set_rate(&mut self, now: Instant, rate: u64) {
        if self.rate == 0 {
            // From no limit: a full burst, nothing owed.
            self.last = Some(now);
            self.paid = self
                .paid
                .max(self.reserved + u128::from(chunk(rate)) * NANO);
        } else {
            self.refill(now);
        }
        self.rate = rate;
        if rate == 0 {
            // No limit: whatever was owed is forgiven.
            self.paid = self.paid.max(self.reserved);
        }
    }

    /// Reserves one chunk (at most `want`): (bytes granted, ticket).
    fn reserve(&mut self, now: Instant, want: u64) -> (u64, u128) {
        self.refill(now);
        let granted = want.min(chunk(self.rate));
        self.reserved += u128::from(granted) * NANO;
        (granted, self.reserved)
    }

    /// How long `ticket` still waits at `now` (zero: it may go).
    fn wait(&mut self, now: Instant, ticket: u128) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill(now);
        if self.paid >= ticket {
            return Duration::ZERO;
        }
        let nanos = (ticket - self.paid).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn refund(&mut self, now: Instant, bytes: u64) {
        self.refill(now);
        let ceiling = self.reserved + self.burst();
        self.paid = (self.paid + u128::from(bytes) * NANO).min(ceiling.max(self.paid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn chunks_are_a_sixteenth_of_a_second_within_bounds() {
        assert_eq!(chunk(MIB), 64 * 1024);
        assert_eq!(chunk(4 * MIB), 256 * 1024);
        assert_eq!(chunk(65_536), MIN_CHUNK);
        assert_eq!(chunk(u64::MAX), MAX_CHUNK);
    }

    #[test]
    fn a_full_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut s = State::new();
        s.set_rate(t0, MIB);
        // The burst: one chunk at once.
        let (g, t) = s.reserve(t0, 10 * MIB);
        assert_eq!(g, 64 * 1024);
        assert_eq!(s.wait(t0, t), Duration::ZERO);
        // The next chunk waits 1/16 s at 1 MiB/s.
        let (_, t) = s.reserve(t0, 10 * MIB);
        assert_eq!(s.wait(t0, t), Duration::from_nanos(62_500_000));
        assert_eq!(s.wait(ms(t0, 62), t), Duration::from_micros(500));
        assert_eq!(s.wait(ms(t0, 63), t), Duration::ZERO);
    }

    #[test]
    fn over_a_long_run_exactly_the_rate_goes_through() {
        // Reservations as fast as they are granted for 10 s at 1 MiB/s:
        // the burst plus 10 MiB, not a byte more (no fraction lost).
        let t0 = Instant::now();
        let mut s = State::new();
        s.set_rate(t0, MIB);
        let (mut now, mut moved) = (t0, 0u64);
        loop {
            let (g, t) = s.reserve(now, u64::MAX);
            let w = s.wait(now, t);
            if now + w > ms(t0, 10_000) {
                break;
            }
            now += w;
            moved += g;
        }
        assert_eq!(moved, 10 * MIB + chunk(MIB));
    }

    #[test]
    fn an_idle_bucket_keeps_one_burst_only() {
        let t0 = Instant::now();
        let mut s = State::new();
        s.set_rate(t0, MIB);
        let later = ms(t0, 60_000);
        let (_, a) = s.reserve(later, u64::MAX);
        let (_, b) = s.reserve(later, u64::MAX);
        assert_eq!(s.wait(later, a), Duration::ZERO);
        assert_eq!(s.wait(later, b), Duration::from_nanos(62_500_000));
    }

    #[test]
    fn two_streams_take_turns() {
        // Tickets go in order: a, b, a, b each 1/16 s apart.
        let t0 = Instant::now();
        let mut s = State::new();
        s.set_rate(t0, MIB);
        let _burst = s.reserve(t0, u64::MAX);
        let tickets: Vec<_> = (0..4).map(|_| s.reserve(t0, u64::MAX).1).collect();
        let waits: Vec<_> = tickets.iter().map(|t| s.wait(t0, *t)).collect();
        for (i, w) in waits.iter().enumerate() {
            assert_eq!(*w, Duration::from_nanos(62_500_000 * (i as u64 + 1)));
        }
    }

    #[test]
    fn a_raised_rate_shortens_every_wait_and_none_lifts_them() {
        let t0 = Instant::now();
        let mut s = State::new();
        s.set_rate(t0, 65_536);
        let _burst = s.reserve(t0, u64::MAX);
        let (_, t) = s.reserve(t0, u64::MAX);
        assert_eq!(s.wait(t0, t), Duration::from_millis(250));
        s.set_rate(ms(t0, 50), 16 * 65_536);
        // 50 ms at 64 KiB/s paid 3,276.8 bytes; the rest at 1 MiB/s.
        let left = s.wait(ms(t0, 50), t);
        assert!(left < Duration::from_millis(13), "{left:?}");
        s.set_rate(ms(t0, 50), 0);
        assert_eq!(s.wait(ms(t0, 50), t), Duration::ZERO);
    }

    #[test]
    fn a_refund_lets_the_next_ticket_go_sooner() {
        let t0 = Instant::now();
        let mut s = State::new();
        s.set_rate(t0, MIB);
        let (g, _) = s.reserve(t0, u64::MAX);
        let (_, next) = s.reserve(t0, u64::MAX);
        assert_eq!(s.wait(t0, next), Duration::from_nanos(62_500_000));
        // The first stream moved nothing of its chunk.
        s.refund(t0, g);
        assert_eq!(s.wait(t0, next), Duration::ZERO);
    }

    #[test]
    fn without_a_limit_take_grants_everything_at_once() {
        let b = Bucket::new();
        assert_eq!(b.take(u64::MAX, || false), Some(u64::MAX));
    }

    #[test]
    fn a_waiting_taker_sees_its_stop_and_a_raised_rate_promptly() {
        let b = std::sync::Arc::new(Bucket::new());
        b.set_rate(65_536);
        assert_eq!(b.take(u64::MAX, || false), Some(MIN_CHUNK));
        // The next chunk would wait 250 ms; stopped, it returns within
        // one wake.
        let t = Instant::now();
        assert_eq!(
            b.take(u64::MAX, || t.elapsed() > Duration::from_millis(20)),
            None
        );
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        // A taker that would wait seconds (1 MiB owed) goes on once the
        // rate is lifted.
        b.set_rate(4096 * 16);
        let _ = b.take(u64::MAX, || false);
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                for _ in 0..64 {
                    b.take(u64::MAX, || false);
                }
                t.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        b.set_rate(0);
        let took = waiter.join().unwrap();
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
}
