//! `[downloads]`: the watch, incomplete and completed folders and the
//! limits of the download plane, each key declared once in
//! [`DownloadsConfig`], and the checks between keys (the retry delays, the
//! folders apart). This module must not create a folder (that is
//! `Config::create_dirs`).

use std::path::PathBuf;
use std::time::Duration;

use super::schema::{Key, section};
use super::walk::{Cx, Table};

/// SQLite stores byte counts as i64.
const MAX_BYTES: u64 = i64::MAX as u64;

section! {
    #[derive(Debug, Clone)]
    pub struct DownloadsConfig {}
    keys {
        pub watch_dir: PathBuf = Key::path(
            "watch_dir", "data/watch",
            "stub .torrent files dropped here are picked up",
        ),
        pub incomplete_dir: PathBuf = Key::path(
            "incomplete_dir", "data/incomplete",
            ".part files live here while downloading",
        ),
        pub completed_dir: PathBuf = Key::path(
            "completed_dir", "data/completed",
            "only complete, verified files ever appear here",
        ),
        pub scan_interval: Duration = Key::millis(
            "scan_interval_ms", 2000, 50..=3_600_000,
            "how often the watch folder is scanned besides inotify",
        ),
        /// A stub that does not parse is read again whenever it changes, and
        /// set aside `.invalid` only once unchanged this long (a slow writer).
        pub stub_settle: Duration = Key::millis(
            "stub_settle_ms", 30_000, 0..=86_400_000,
            "a stub that does not parse is set aside once unchanged this long",
        ),
        pub max_concurrent_downloads: usize = Key::count(
            "max_concurrent_downloads", 3, 1..=64,
            "transfers running at once",
        ),
        /// Sources one download draws from at once (PROTOCOL.md §2.6): the
        /// connections it opens; 1 keeps every download to its own peer.
        pub max_sources: usize = Key::count(
            "max_sources", 4, 1..=16,
            "sources (friends holding the same file) one download takes parts from at once",
        ),
        /// Attempts in a row without progress before a download fails.
        pub max_attempts: u32 = Key::count(
            "max_attempts", 13, 1..=1000,
            "attempts in a row without progress before a download fails",
        ),
        /// An attempt that made at least this many bytes durable (or committed
        /// a checkpoint during its body) made progress: it does not count
        /// against `max_attempts`, and the backoff starts again.
        pub progress_bytes: u64 = Key::count(
            "progress_bytes", 65_536, 1..=MAX_BYTES,
            "bytes an attempt must make durable to count as progress",
        ),
        pub retry_base_delay: Duration = Key::millis(
            "retry_base_delay_ms", 1000, 1..=86_400_000,
            "the first retry's backoff bound",
        ),
        pub retry_max_delay: Duration = Key::millis(
            "retry_max_delay_ms", 1_800_000, 1..=86_400_000,
            "the largest retry backoff bound",
        ),
        pub idle_timeout: Duration = Key::millis(
            "idle_timeout_ms", 60_000, 100..=3_600_000,
            "a transfer that receives no byte this long is retried",
        ),
        pub max_file_size: u64 = Key::count(
            "max_file_size", 107_374_182_400, 1..=MAX_BYTES,
            "largest file accepted from a peer, in bytes",
        ),
        /// A download paused on a full disk is tried again this often.
        pub disk_full_retry: Duration = Key::millis(
            "disk_full_retry_ms", 30_000, 10..=86_400_000,
            "a download paused on a full disk is tried again this often",
        ),
        /// Bytes kept free on each filesystem a download writes to: a transfer
        /// starts or resumes only when what is still to come fits beside them.
        /// Bytes per second all downloads together take; 0: no limit
        /// (`limits`, `rate::DOWNLOAD`).
        pub max_rate: u64 = Key::count(
            "max_rate", 0, 0..=super::MAX_RATE,
            "bytes per second all downloads together take (0: no limit)",
        ),
        pub min_free_bytes: u64 = Key::count(
            "min_free_bytes", 1 << 30, 0..=MAX_BYTES,
            "bytes left free on each filesystem a download writes to",
        ),
    }
    hand []
}

impl Cx<'_> {
    pub(super) fn downloads(&mut self, top: &mut Table<'_, '_>) -> DownloadsConfig {
        self.section(top, "downloads", DownloadsConfig::KEYS, |cx, t| {
            let d = DownloadsConfig::walk(cx, t);
            cx.downloads_apart(t, &d);
            cx.rate(t, "max_rate", d.max_rate, Some(d.max_concurrent_downloads));
            d
        })
    }

    /// The checks between keys: the retry delays in order, the folders apart.
    fn downloads_apart(&mut self, t: &Table<'_, '_>, d: &DownloadsConfig) {
        if d.retry_max_delay < d.retry_base_delay {
            self.problem(
                t.key("retry_max_delay_ms"),
                t.span_of("retry_max_delay_ms"),
                "must not be smaller than retry_base_delay_ms",
            );
        }
        let dirs = [
            ("watch_dir", &d.watch_dir),
            ("incomplete_dir", &d.incomplete_dir),
            ("completed_dir", &d.completed_dir),
        ];
        for (i, (ka, a)) in dirs.iter().enumerate() {
            for (kb, b) in &dirs[i + 1..] {
                if a.starts_with(b) || b.starts_with(a) {
                    let msg =
                        format!("{ka} and {kb} must be separate folders, neither inside the other");
                    self.problem(t.key(kb), t.span_of(kb), msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::testing::*;
    use crate::config::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_downloads_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_concurrent_downloads = 0\n",
                "downloads.max_concurrent_downloads",
                Some(4),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmin_free_bytes = -1\n",
                "downloads.min_free_bytes",
                Some(4),
                "at least 0",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nstub_settle_ms = -1\n",
                "downloads.stub_settle_ms",
                Some(4),
                "at least 0",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nstub_settle_ms = 86400001\n",
                "downloads.stub_settle_ms",
                Some(4),
                "at most",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmin_free_bytes = \"1G\"\n",
                "downloads.min_free_bytes",
                Some(4),
                "expected an integer",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_attempts = -3\n",
                "downloads.max_attempts",
                Some(4),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nprogress_bytes = 0\n",
                "downloads.progress_bytes",
                Some(4),
                "at least 1",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nmax_file_size = 99999999999999999999999\n",
                "downloads.max_file_size",
                Some(4),
                "must be at most",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nretry_base_delay_ms = 5000\nretry_max_delay_ms = 10\n",
                "downloads.retry_max_delay_ms",
                Some(5),
                "must not be smaller",
            ),
            (
                "[server]\napi_key = \"k\"\n[downloads]\nwatch_dir = \"w\"\ncompleted_dir = \"w/done\"\n",
                "downloads.completed_dir",
                Some(5),
                "separate folders",
            ),
        ]);
    }

    #[test]
    fn incomplete_and_completed_may_be_on_different_filesystems() {
        // The hand-off copies where it cannot link (handoff.rs): /dev/shm
        // is never on the filesystem of a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\napi_key = \"k\"\n[downloads]\nincomplete_dir = \"/dev/shm/jack-incomplete\"\ncompleted_dir = {:?}\n",
            dir.path().join("done").display()
        );
        let c = Config::parse(&text, &dir.path().join("jack.toml"), &no_env).unwrap();
        assert_eq!(
            c.downloads.incomplete_dir,
            PathBuf::from("/dev/shm/jack-incomplete")
        );
    }
}
