//! Fault injection for tests, compiled into debug builds only (what
//! `cargo test` runs); in release builds every function here is a no-op.
//!
//! * A disk that fills up: writes to `.part` files fail with `ENOSPC` once
//!   a file would grow past a limit, set in process
//!   ([`set_disk_limit`]) or read from the file named by
//!   `JACK_FAULT_DISK_LIMIT_FILE` (its content is the limit in bytes;
//!   absent or empty means no limit), so a test can "free space" while the
//!   daemon runs.
//! * Two folders that cannot be linked or renamed across (two bind mounts
//!   of one filesystem, or two filesystems): with `JACK_FAULT_EXDEV=1`,
//!   every link or rename from `incomplete_dir` into `completed_dir` fails
//!   with `EXDEV` ([`cross_device`]), so the copy hand-off runs.
//! * No inotify: with `JACK_FAULT_NO_INOTIFY=1` the watch folder's inotify
//!   instance cannot be made ([`no_inotify`]), so the folder is polled as
//!   where inotify is missing.
//! * A registry that cannot record a completion: with
//!   `JACK_FAULT_RECORD_FAILS=<n>`, the first `n` transitions to
//!   `completed` fail as SQLite's "database or disk is full" would
//!   ([`registry_full`]), after the hand-off has happened.
//! * Another boot: `JACK_FAULT_BOOT_ID=<36 characters>` replaces the
//!   kernel's boot id ([`boot_id`]), as if the machine had gone down since
//!   the written records were made (`download::written`).
//! * A slow disk: `JACK_FAULT_SYNC_DELAY_MS=<n>` makes every checkpoint's
//!   `fdatasync` take `n` ms longer ([`slow_sync`]), so the network can
//!   outrun the disk.
//! * A failed write-back: `JACK_FAULT_SYNC_EIO_AT=<n>` makes the `n`-th
//!   checkpoint `fdatasync` of the process fail with `EIO` after zeroing
//!   the bytes written since the last checkpoint ([`sync_fails`]), as the
//!   kernel does when it drops pages it could not write back (a later
//!   sync then succeeds, and the bytes are gone: "fsyncgate").
//! * Small files that still checkpoint: `JACK_FAULT_CHECKPOINT_BYTES=<n>`
//!   replaces the checkpoint interval and `JACK_FAULT_RECORD_STEP=<n>` the
//!   written record's step ([`scaled`]), so the simulation reaches every
//!   state with files of a few MiB.
//! * A slow step: `JACK_FAULT_PAUSE=<name>:<ms>` sleeps that long at
//!   [`pause`]`(name)`, to widen a window between two steps of a thread.
//! * No thread to give: `JACK_FAULT_SPAWN_FAILS=<n>` makes the first `n`
//!   threads the HTTP server starts for connections fail to start
//!   ([`spawn_fails`], tiny_http's spawn hook), as when the system has no
//!   thread left (root ignores `RLIMIT_NPROC`, so a test cannot cause it).
//! * Crash points: `JACK_CRASH_AT=<name>` aborts the process the first time
//!   it reaches [`crash_point`]`(name)`, as a power cut would;
//!   `JACK_CRASH_AT=<name>#<n>` the `n`-th time.

use std::io;

#[cfg(debug_assertions)]
static DISK_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Sets (or clears) the in-process disk limit.
pub fn set_disk_limit(limit: Option<u64>) {
    #[cfg(debug_assertions)]
    DISK_LIMIT.store(
        limit.unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::SeqCst,
    );
    #[cfg(not(debug_assertions))]
    let _ = limit;
}

/// `Err(ENOSPC)` when a write that ends at byte `end` of a `.part` would
/// cross the injected limit.
pub fn check_write(end: u64) -> io::Result<()> {
    #[cfg(debug_assertions)]
    {
        let mut limit = DISK_LIMIT.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(path) = std::env::var_os("JACK_FAULT_DISK_LIMIT_FILE")
            && let Ok(text) = std::fs::read_to_string(path)
            && let Ok(n) = text.trim().parse::<u64>()
        {
            limit = limit.min(n);
        }
        if end > limit {
            return Err(io::Error::from_raw_os_error(28));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = end;
    Ok(())
}

/// `Err(EXDEV)` when `JACK_FAULT_EXDEV=1`: called before every link or
/// rename from `incomplete_dir` into `completed_dir`.
pub fn cross_device() -> io::Result<()> {
    fails_when_set("JACK_FAULT_EXDEV", 18)
}

/// `Err(ENOSYS)` when `JACK_FAULT_NO_INOTIFY=1`: called before the watch
/// folder's inotify instance is made.
pub fn no_inotify() -> io::Result<()> {
    fails_when_set("JACK_FAULT_NO_INOTIFY", 38)
}

/// `Err(errno)` when the switch `var` is `1`.
fn fails_when_set(var: &str, errno: i32) -> io::Result<()> {
    #[cfg(debug_assertions)]
    if std::env::var(var).is_ok_and(|v| v == "1") {
        return Err(io::Error::from_raw_os_error(errno));
    }
    #[cfg(not(debug_assertions))]
    let _ = (var, errno);
    Ok(())
}

/// Whether this call is among the first `$var` (a count) of its kind;
/// each `calls` counter is one kind.
#[cfg(debug_assertions)]
fn among_first(var: &str, calls: &std::sync::atomic::AtomicU64) -> bool {
    let limit: u64 = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    limit > 0 && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < limit
}

/// `Err(SQLITE_FULL)` for the first `JACK_FAULT_RECORD_FAILS` calls.
pub fn registry_full() -> Result<(), rusqlite::Error> {
    #[cfg(debug_assertions)]
    {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if among_first("JACK_FAULT_RECORD_FAILS", &CALLS) {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(13),
                Some("database or disk is full (JACK_FAULT_RECORD_FAILS)".into()),
            ));
        }
    }
    Ok(())
}

/// Whether this start of a connection thread fails: the first
/// `JACK_FAULT_SPAWN_FAILS` of them do (always `false` in release builds).
pub fn spawn_fails() -> bool {
    #[cfg(debug_assertions)]
    {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if among_first("JACK_FAULT_SPAWN_FAILS", &CALLS) {
            return true;
        }
    }
    false
}

/// The boot id a test pretends the kernel has (`JACK_FAULT_BOOT_ID`).
pub fn boot_id() -> Option<String> {
    #[cfg(debug_assertions)]
    return std::env::var("JACK_FAULT_BOOT_ID").ok();
    #[cfg(not(debug_assertions))]
    None
}

/// Sleeps `JACK_FAULT_SYNC_DELAY_MS` ms: called before each checkpoint's
/// `fdatasync`.
pub fn slow_sync() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("JACK_FAULT_SYNC_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Aborts the process here if `JACK_CRASH_AT` names this point (and,
/// with `#<n>`, this is the `n`-th time it is reached).
pub fn crash_point(name: &str) {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("JACK_CRASH_AT") {
        let (point, nth) = match v.split_once('#') {
            Some((p, n)) => (p.to_string(), n.parse::<u64>().unwrap_or(1)),
            None => (v, 1),
        };
        if point == name {
            use std::sync::atomic::{AtomicU64, Ordering};
            static REACHED: AtomicU64 = AtomicU64::new(0);
            if REACHED.fetch_add(1, Ordering::SeqCst) + 1 == nth {
                eprintln!("jack: crash point {name} reached (JACK_CRASH_AT): aborting");
                std::process::abort();
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Called before a checkpoint's `fdatasync` of `part`, whose bytes from
/// `from` (the last checkpoint) to `to` are unsynced: the `n`-th call of
/// the process with `JACK_FAULT_SYNC_EIO_AT=<n>` zeroes them (the pages
/// the kernel dropped) and fails with `EIO`.
pub fn sync_fails(part: &std::fs::File, from: u64, to: u64) -> io::Result<()> {
    #[cfg(debug_assertions)]
    if let Some(nth) = std::env::var("JACK_FAULT_SYNC_EIO_AT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static SYNCS: AtomicU64 = AtomicU64::new(0);
        if SYNCS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            let zeros = vec![0u8; 64 * 1024];
            let mut at = from;
            while at < to {
                let n = (to - at).min(zeros.len() as u64);
                part.write_all_at(&zeros[..n as usize], at)?;
                at += n;
            }
            eprintln!("jack: checkpoint sync fails with EIO (JACK_FAULT_SYNC_EIO_AT={nth})");
            return Err(io::Error::from_raw_os_error(5));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (part, from, to);
    Ok(())
}

/// `default`, or the value of `var` in debug builds (a size knob of the
/// tests: `JACK_FAULT_CHECKPOINT_BYTES`, `JACK_FAULT_RECORD_STEP`), read
/// once per process.
pub fn scaled(var: &'static str, default: u64) -> u64 {
    #[cfg(debug_assertions)]
    {
        static CACHE: std::sync::Mutex<Vec<(&'static str, u64)>> =
            std::sync::Mutex::new(Vec::new());
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, v)) = cache.iter().find(|(k, _)| *k == var) {
            return v;
        }
        let v = std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(default);
        cache.push((var, v));
        v
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = var;
        default
    }
}

/// Sleeps here when `JACK_FAULT_PAUSE` is `<name>:<ms>` (debug builds).
pub fn pause(name: &str) {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("JACK_FAULT_PAUSE")
        && let Some((point, ms)) = v.rsplit_once(':')
        && point == name
        && let Ok(ms) = ms.parse::<u64>()
    {
        log::info!("fault pause point={name} ms={ms}");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
