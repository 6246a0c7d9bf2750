use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,
}

/// jack patch: a task to run.
type Task = Box<dyn FnMut() + Send>;

/// jack patch: asked before each thread started for a connection; `true`
/// makes that start fail as if the system had no thread left to give (a
/// fault injected by tests: root ignores `RLIMIT_NPROC`).
static SPAWN_FAULT: OnceLock<fn() -> bool> = OnceLock::new();

/// jack patch: sets the spawn fault hook, once per process.
pub fn set_spawn_fault(hook: fn() -> bool) {
    let _ = SPAWN_FAULT.set(hook);
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    pub fn new() -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
            }),
        };

        for _ in 0..MIN_THREADS {
            // jack patch: fewer idle threads if the system has none to give
            let _ = pool.add_thread(None);
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    ///
    /// jack patch: a thread that cannot be started gives the task back with
    /// the error, instead of a panic that ended the accept loop.
    pub fn spawn(&self, code: Task) -> Result<(), (std::io::Error, Task)> {
        let mut queue = self.sharing.todo.lock().unwrap();

        // jack patch: a new thread unless an idle one is left for this task.
        // A thread woken for a queued task counts as waiting until it takes
        // the lock, so `== 0` queued a burst of tasks behind a few threads
        // that then blocked on slow connections, and those tasks waited for
        // a read timeout.
        if self.sharing.waiting_tasks.load(Ordering::Acquire) <= queue.len() {
            drop(queue);
            self.add_thread(Some(code))
                .map_err(|(e, code)| (e, code.expect("the task given")))
        } else {
            queue.push_back(code);
            self.sharing.condvar.notify_one();
            Ok(())
        }
    }

    fn add_thread(&self, initial_fn: Option<Task>) -> Result<(), (std::io::Error, Option<Task>)> {
        let sharing = self.sharing.clone();

        if initial_fn.is_some() && SPAWN_FAULT.get().is_some_and(|fault| fault()) {
            let e = std::io::Error::new(std::io::ErrorKind::OutOfMemory, "injected spawn failure");
            return Err((e, initial_fn));
        }
        // jack patch: the task waits in a slot the new thread empties, so a
        // thread that cannot start hands it back.
        let slot = Arc::new(Mutex::new(initial_fn));
        let inside_slot = slot.clone();
        let started = thread::Builder::new().spawn(move || {
            let sharing = sharing;
            let _active_guard = Registration::new(&sharing.active_tasks);

            let initial_fn = inside_slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            drop(inside_slot);
            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task: Box<dyn FnMut() + Send> = {
                    let mut todo = sharing.todo.lock().unwrap();

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                todo = sharing.condvar.wait(todo).unwrap();
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap();
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();
            }
        });
        match started {
            Ok(_) => Ok(()),
            Err(e) => Err((e, slot.lock().unwrap_or_else(PoisonError::into_inner).take())),
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
