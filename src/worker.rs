//! A named thread that can be waited for a bounded time.
//!
//! Threads that may be blocked on another program (an *arr that stalls)
//! must not hold shutdown past its budget: [`Worker::join_within`] joins
//! the thread when it ends in time and otherwise leaves it behind, logged.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded};

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
