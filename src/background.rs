//! A named background thread that runs until asked to stop, and is waited
//! for within a limit (the `watch` and `qbit-add` threads).
//!
//! The body gets a stop channel (to wait on between passes) and a stop
//! flag (to look at inside a pass). [`Background::stop`] sets both and
//! joins the thread, or leaves it behind after the limit (one blocked on a
//! peer that does not answer: whatever it holds is recorded for the next
//! start). Knows nothing of what the thread does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::error::{Error, Result};

pub struct Background {
    name: &'static str,
    stop: Sender<()>,
    stopping: Arc<AtomicBool>,
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

impl Background {
    /// Starts thread `name` running `body(stop, stopping)`.
    pub fn spawn(
        name: &'static str,
        body: impl FnOnce(Receiver<()>, Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Background> {
        let (stop, stopped) = bounded::<()>(1);
        let (done_tx, done) = bounded::<()>(1);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                body(stopped, flag);
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::io(format!("cannot start the {name} thread"), e))?;
        Ok(Background {
            name,
            stop,
            stopping,
            done,
            thread,
        })
    }

    /// Asks the thread to stop and joins it, waiting at most `limit`.
    pub fn stop(self, limit: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(());
        if self.done.recv_timeout(limit).is_ok() {
            let _ = self.thread.join();
        } else {
            log::warn!(
                "the {} thread is still waiting on a peer: leaving it behind",
                self.name
            );
        }
    }
}
