//! Named threads that can be waited for a bounded time.
//!
//! Threads that may be blocked on another program (a peer or an *arr that
//! stalls) must not hold shutdown past its budget: [`Worker::join_within`]
//! joins the thread when it ends in time and otherwise leaves it behind,
//! logged. [`Background`] is a worker that runs until asked to stop (the
//! `watch` and `qbit-add` threads): its body gets a stop channel (to wait
//! on between passes) and a stop flag (to look at inside a pass); a body
//! that waits on something else is woken by [`Background::stop_waking`].
//! Knows nothing of what the threads do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Worker {
    name: String,
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// Starts `f` on a thread named `name`.
    pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<Worker> {
        let (done_tx, done) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                f();
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::io(format!("cannot start the {name} thread"), e))?;
        Ok(Worker {
            name: name.to_string(),
            done,
            thread,
        })
    }

    /// Joins the thread if it ends within `limit` (true); otherwise leaves
    /// it running, with a warning that it `waits_on` something.
    pub fn join_within(self, limit: Duration, waits_on: &str) -> bool {
        if self.done.recv_timeout(limit).is_ok() {
            let _ = self.thread.join();
            true
        } else {
            log::warn!(
                "the {} thread is still waiting on {waits_on}: leaving it behind",
                self.name
            );
            false
        }
    }
}

/// A named thread that runs until asked to stop.
pub struct Background {
    worker: Worker,
    stop: Sender<()>,
    stopping: Arc<AtomicBool>,
}

impl Background {
    /// Starts thread `name` running `body(stop, stopping)`.
    pub fn spawn(
        name: &'static str,
        body: impl FnOnce(Receiver<()>, Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Background> {
        let (stop, stopped) = bounded::<()>(1);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let worker = Worker::spawn(name, move || body(stopped, flag))?;
        Ok(Background {
            worker,
            stop,
            stopping,
        })
    }

    /// Asks the thread to stop and joins it, waiting at most `limit` (one
    /// blocked on a peer that does not answer is left behind: whatever it
    /// holds is recorded for the next start).
    pub fn stop(self, limit: Duration) {
        self.stop_waking(limit, || {});
    }

    /// [`Background::stop`], running `wake` once the stop is asked (flag
    /// set, channel sent), for a body that waits on something else than
    /// the stop channel (the `watch` thread sleeps in poll(2)).
    pub fn stop_waking(self, limit: Duration, wake: impl FnOnce()) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(());
        wake();
        self.worker.join_within(limit, "a peer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_joined_in_time_or_left_behind() {
        let quick = Worker::spawn("quick", || {}).unwrap();
        assert!(quick.join_within(Duration::from_secs(5), "nothing"));
        let (release, wait) = bounded::<()>(1);
        let slow = Worker::spawn("slow", move || {
            let _ = wait.recv();
        })
        .unwrap();
        let started = std::time::Instant::now();
        assert!(!slow.join_within(Duration::from_millis(50), "a test"));
        assert!(started.elapsed() < Duration::from_secs(2));
        let _ = release.send(());
    }
}
