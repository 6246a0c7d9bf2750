//! The import hand-off in watch-folder mode: once a download's completion
//! is recorded, tell every `[[arr]]` to scan the folder of the final file
//! (`POST /api/v3/command`, `DownloadedMoviesScan` for Radarr,
//! `DownloadedEpisodesScan` for Sonarr).
//!
//! One named thread, `arr-notify`, takes download ids from
//! `Downloads::completions` (an unbounded channel: the download pool never
//! waits for it), reads each row's destination from the registry, and asks
//! the *arrs one after another, each request bounded by [`REQUEST_DEADLINE`].
//! A request that fails for a reason that may pass (not reachable, 5xx,
//! 429) is tried again after a doubling delay, up to [`Backoff::attempts`];
//! waiting requests sit in a queue, never in a sleeping thread, so a stop
//! is seen at once. A scan still waiting at shutdown is dropped (logged):
//! the *arr's own watch of its download folder imports the file anyway.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, never, select};

use crate::arr::client::{ArrClient, ArrError};
use crate::config::{Arr, ArrKind};
use crate::db::Registry;
use crate::error::Result;
use crate::worker::Worker;

/// The longest one scan request may take.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// How failed scan requests are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Requests per scan at most (the first included).
    pub attempts: u32,
    /// Delay before the second request; doubled for each one after.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 requests over about 30 s: 2, 4, 8 and 16 s apart.
    fn default() -> Backoff {
        Backoff {
            attempts: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before request `attempt + 1` after request `attempt`
    /// (1-based) failed; `None` when no attempt is left. Pure.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.max))
    }
}

/// The command body that makes `kind` scan `folder`. Pure.
pub fn scan_command(kind: ArrKind, folder: &Path) -> serde_json::Value {
    let name = match kind {
        ArrKind::Radarr => "DownloadedMoviesScan",
        ArrKind::Sonarr => "DownloadedEpisodesScan",
    };
    serde_json::json!({ "name": name, "path": folder.to_string_lossy() })
}

/// The `arr-notify` thread.
pub struct Notifier {
    stop: Sender<()>,
    worker: Worker,
}

/// One scan request still to make.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    /// Index into the *arr clients.
    arr: usize,
    download: i64,
    folder: PathBuf,
    /// Requests made so far.
    attempts: u32,
}

impl Notifier {
    /// Starts the thread. `completions` is `Downloads::completions()`.
    pub fn start(
        arrs: &[Arr],
        registry: Arc<Registry>,
        completions: Receiver<i64>,
        backoff: Backoff,
    ) -> Result<Notifier> {
        let clients: Vec<ArrClient> = arrs
            .iter()
            .map(|a| ArrClient::new(a, REQUEST_DEADLINE))
            .collect();
        let (stop, stopped) = bounded::<()>(1);
        let worker = Worker::spawn("arr-notify", move || {
            run(&clients, &registry, &completions, &stopped, backoff);
        })?;
        Ok(Notifier { stop, worker })
    }

    /// Stops the thread: joined when it ends within `limit` (a request in
    /// flight ends within [`REQUEST_DEADLINE`]; past `limit` it is left
    /// behind so shutdown keeps its budget).
    pub fn stop(self, limit: Duration) {
        let _ = self.stop.send(());
        self.worker.join_within(limit, "an *arr");
    }
}

fn run(
    clients: &[ArrClient],
    registry: &Registry,
    completions: &Receiver<i64>,
    stopped: &Receiver<()>,
    backoff: Backoff,
) {
    let mut queue: BinaryHeap<Reverse<(Instant, Job)>> = BinaryHeap::new();
    let mut completions = completions.clone();
    loop {
        let wait = queue
            .peek()
            .map_or(Duration::from_secs(3600), |Reverse((due, _))| {
                due.saturating_duration_since(Instant::now())
            });
        select! {
            recv(stopped) -> _ => break,
            recv(completions) -> id => match id {
                Ok(id) => {
                    if let Some(folder) = folder_of(registry, id) {
                        for arr in 0..clients.len() {
                            let job = Job { arr, download: id, folder: folder.clone(), attempts: 0 };
                            queue.push(Reverse((Instant::now(), job)));
                        }
                    }
                }
                // The pool is gone: only the queue is left to serve.
                Err(_) => completions = never(),
            },
            default(wait) => {}
        }
        while queue
            .peek()
            .is_some_and(|Reverse((due, _))| *due <= Instant::now())
        {
            if !stopped.is_empty() {
                break;
            }
            let Some(Reverse((_, job))) = queue.pop() else {
                break;
            };
            if let Some(later) = ask(&clients[job.arr], job, backoff) {
                queue.push(Reverse(later));
            }
        }
    }
    if !queue.is_empty() {
        log::warn!(
            "arr-notify stopping with {} scan requests not sent (the *arr's own import will find those files)",
            queue.len()
        );
    }
}

/// The folder of download `id`'s final file, from the registry.
fn folder_of(registry: &Registry, id: i64) -> Option<PathBuf> {
    match registry.get(id) {
        Ok(Some(row)) => match row.dest_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => Some(p.to_path_buf()),
            _ => {
                log::warn!("arr scan skipped: download has no destination folder id={id}");
                None
            }
        },
        Ok(None) => {
            log::warn!("arr scan skipped: no download id={id}");
            None
        }
        Err(e) => {
            log::warn!(
                "arr scan skipped: cannot read download id={id} error={}",
                e.chain()
            );
            None
        }
    }
}

/// Makes one scan request; the job again, with when, when it is to be
/// tried again.
fn ask(client: &ArrClient, mut job: Job, backoff: Backoff) -> Option<(Instant, Job)> {
    let arr = client.arr();
    job.attempts += 1;
    let body = scan_command(arr.kind, &job.folder);
    match client.post("/api/v3/command", &body) {
        Ok(_) => {
            log::info!(
                "arr scan requested arr={} command={} id={} attempt={}",
                arr.name,
                body["name"].as_str().unwrap_or(""),
                job.download,
                job.attempts
            );
            None
        }
        Err(e) => {
            let delay = match &e {
                ArrError::Unavailable(_) => backoff.delay(job.attempts),
                ArrError::Refused(_) => None,
            };
            match delay {
                Some(d) => {
                    log::warn!(
                        "arr scan failed, trying again arr={} id={} attempt={} delay_ms={} error={e}",
                        arr.name,
                        job.download,
                        job.attempts,
                        d.as_millis()
                    );
                    Some((Instant::now() + d, job))
                }
                None => {
                    log::error!(
                        "arr scan not requested arr={} id={} attempts={} error={e}",
                        arr.name,
                        job.download,
                        job.attempts
                    );
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_its_attempts() {
        let b = Backoff {
            attempts: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(10),
        };
        let delays: Vec<Option<u64>> = (1..=6).map(|a| b.delay(a).map(|d| d.as_secs())).collect();
        assert_eq!(delays, [Some(2), Some(4), Some(8), Some(10), None, None]);
        let long = Backoff {
            attempts: u32::MAX,
            ..b
        };
        assert_eq!(
            long.delay(200),
            Some(Duration::from_secs(10)),
            "no overflow"
        );
    }

    #[test]
    fn scan_commands_name_the_folder() {
        let folder = Path::new("/data/completed");
        assert_eq!(
            scan_command(ArrKind::Radarr, folder),
            serde_json::json!({"name": "DownloadedMoviesScan", "path": "/data/completed"})
        );
        assert_eq!(
            scan_command(ArrKind::Sonarr, folder)["name"],
            "DownloadedEpisodesScan"
        );
    }
}
