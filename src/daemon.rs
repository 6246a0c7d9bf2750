//! `jack run`: start every part in order, wait for a signal, stop them in
//! reverse order.
//!
//! Start-up order: directories, the single-instance lock, the registry, the
//! HTTP server, then signal handling. Anything that fails before the server
//! is up leaves nothing running. Shutdown (first SIGINT/SIGTERM): stop
//! taking requests, join every thread, release the registry and the lock,
//! exit 0, all within [`SHUTDOWN_BUDGET`]; a second signal exits at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::arr::notify::{Backoff, Notifier};
use crate::config::{Config, SecretOrigin};
use crate::db::Registry;
use crate::download::downloads::Downloads;
use crate::download::retry::SeededRng;
use crate::download::watch::Watcher;
use crate::error::{Error, Result};
use crate::http::lane::StreamLimits;
use crate::http::server::{self, Caps, HttpServer, Router};
use crate::instance::InstanceLock;
use crate::limits::Limits;
use crate::localtime::Zone;
use crate::owner::status_api::StatusApi;
use crate::serve::api::{Api, KeyRing};
use crate::serve::catalogue::Catalogue;
use crate::serve::hasher::Hasher;
use crate::worker::Worker;

/// Graceful shutdown must finish within this; past it the process exits 1.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

pub fn run(config: Config) -> Result<()> {
    config.create_dirs()?;
    let lock = InstanceLock::acquire(&config.database.path)?;
    let registry = Arc::new(Registry::open(&config.database.path)?);
    log::info!(
        "registry open path={} schema={}",
        registry.path().display(),
        registry.schema_version()?
    );
    // Bind before anything starts working, so a port in use stops the node
    // with nothing running.
    let s = &config.server;
    let listener = server::bind(s.listen, s.read_timeout, s.write_timeout)?;
    if config.server.api_key.origin() == &SecretOrigin::Inline
        && config.server.api_key.expose() == "change-me"
    {
        log::warn!(
            "server.api_key is still \"change-me\": set your own key before exposing this node"
        );
    }
    for warning in crate::keys::weak_secrets(&config) {
        log::warn!("{warning}");
    }

    for p in config
        .peers
        .current()
        .iter()
        .filter(|p| p.in_clear_text_beyond_the_lan())
    {
        log::warn!(
            "peer {} is reached over plain http at {}, not a private or loopback address: its key travels in clear text (use https://)",
            p.name,
            p.url
        );
    }
    let summary = crate::download::reconcile::run(&registry, &config.downloads)?;
    log::info!(
        "reconciled live_downloads={} changed={} superseded={} orphans={}",
        summary.decisions.len(),
        summary
            .decisions
            .iter()
            .filter(|(_, d)| *d != crate::download::reconcile::Decision::Resume)
            .count(),
        summary.superseded.len(),
        summary.orphans.len()
    );
    let limits = start_limits(&config);
    let signals = SignalWatcher::install()?;
    let clock = Arc::new(crate::clock::SystemClock);
    let (downloads, pool) = Downloads::start(
        registry.clone(),
        &config,
        Box::new(SeededRng::from_entropy()),
        clock.clone(),
    )?;
    // Subscribed before the watch folder is read, so every grab it starts
    // is announced. (A row the pool finalizes at once on start-up may beat
    // the subscription; the *arr's own import of its download folder finds
    // that file anyway.)
    let notifier = match config.arrs.is_empty() {
        true => None,
        false => Some(Notifier::start(
            &config.arrs,
            registry.clone(),
            downloads.completions(),
            Backoff::default(),
        )?),
    };
    let d = &config.downloads;
    let watcher = Watcher::start(
        downloads.clone(),
        d.watch_dir.clone(),
        d.scan_interval,
        d.stub_settle,
    )?;
    // Scans keep when each file was first offered in the registry.
    let catalogue = Arc::new(
        Catalogue::new(&config.libraries, config.server.max_catalogue_items)
            .remembering_offers(registry.clone()),
    );
    let dashboard = Arc::new(crate::owner::dashboard::Dashboard::default());
    let scanner = Rescanner::start(
        catalogue.clone(),
        config.server.library_rescan,
        dashboard.clone(),
    )?;
    // Reads each library file once for its digests, after the scans it
    // follows and before the requests that offer them.
    let hasher = Hasher::start(catalogue.clone(), registry.clone(), s.hash_rate)?;
    let observers =
        crate::owner::dashboard::Observers::start(dashboard.clone(), config.peers.clone())?;
    let keys = Arc::new(KeyRing::new(s.api_key.clone(), s.peer_keys.clone()));
    // Every credential check of every route goes through this one gate.
    let gate = Arc::new(crate::http::gate::Gate::new(
        s.auth_failures_per_minute,
        clock.clone(),
        s.trusted_proxies.clone(),
    ));
    let api = Arc::new(Api::new(keys.clone(), catalogue, gate.clone()));
    // The *arr side's routes join the peer API here.
    let torznab = Arc::new(crate::arr::torznab::Torznab::new(&config, gate.clone()));
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the address", e))?;
    let status = Arc::new(StatusApi::new(
        s.api_key.clone(),
        keys.clone(), // friends' keys: told apart, and refused
        downloads.clone(),
        (d.incomplete_dir.clone(), d.watch_dir.clone()),
        gate.clone(),
    ));
    let ui = Arc::new(crate::owner::ui::Ui::new(
        status.clone(),
        dashboard,
        config.peers.clone(),
        clock.clone(),
        s.public_url.starts_with("https://"),
        gate.clone(),
    ));
    let qbit = crate::arr::qbit::QbitApi::start(&config, bound, downloads, clock, gate)?;
    let mut router = Router::new(api)
        .route("/torznab/", torznab)
        .route("/ui/", ui)
        .route("/api/v1/", status.clone())
        .route("/metrics/", status.clone());
    if let Some(q) = &qbit {
        router = router.route("/api/v2/", q.handler());
    }
    let router = Arc::new(router);
    let http = HttpServer::start(
        listener,
        s.handler_threads,
        Caps::of(s),
        StreamLimits::of(s),
        router,
    )?;
    status.set_connections(http.connection_counter());
    status.set_limits(limits.clone());
    let schedule = limits.start()?;
    let addr: SocketAddr = http.local_addr();
    log::info!(
        "{} listening addr={addr} public_url={} handler_threads={} libraries={} peers={}",
        crate::cli::version(),
        s.public_url,
        s.handler_threads,
        config.libraries.len(),
        config.peers.current().len()
    );

    let signal = signals.wait(|| reload(&config, &keys, &limits));
    log::info!("shutdown started signal={signal}");
    let started = Instant::now();
    let watchdog = Watchdog::start(SHUTDOWN_BUDGET);
    watcher.stop(Duration::from_secs(1));
    http.shutdown();
    if let Some(q) = qbit {
        q.stop(Duration::from_millis(500));
    }
    pool.shutdown(Duration::from_secs(3));
    // Both may be waiting on an *arr (bounded, but longer than the budget).
    if let Some(n) = notifier {
        n.stop(Duration::from_millis(300));
    }
    hasher.stop(Duration::from_millis(300));
    scanner.stop(Duration::from_millis(300));
    observers.stop(Duration::from_millis(300));
    schedule.stop(Duration::from_millis(300));
    drop(registry);
    drop(lock);
    signals.close();
    watchdog.disarm();
    log::info!(
        "shutdown complete elapsed_ms={}",
        started.elapsed().as_millis()
    );
    Ok(())
}

/// The `signals` thread: the first SIGINT/SIGTERM is handed to `run`, a
/// second one ends the process at once; each SIGHUP asks `run` to reload.
struct SignalWatcher {
    first: Receiver<i32>,
    hup: Receiver<()>,
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalWatcher {
    fn install() -> Result<SignalWatcher> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
        let handle = signals.handle();
        let (tx, first) = bounded(1);
        // One pending reload is enough: it reads the file as it is then.
        let (hup_tx, hup) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut seen = 0;
                for sig in signals.forever() {
                    if sig == SIGHUP {
                        let _ = hup_tx.try_send(());
                        continue;
                    }
                    seen += 1;
                    if seen == 1 {
                        let _ = tx.send(sig);
                    } else {
                        log::warn!("second signal {sig}: exiting now");
                        std::process::exit(1);
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the signal thread", e))?;
        Ok(SignalWatcher {
            first,
            hup,
            handle,
            thread,
        })
    }

    /// Waits for SIGINT/SIGTERM, calling `reload` for each SIGHUP meanwhile.
    fn wait(&self, mut reload: impl FnMut()) -> &'static str {
        loop {
            crossbeam_channel::select! {
                recv(self.first) -> sig => return match sig {
                    Ok(SIGINT) => "SIGINT",
                    Ok(SIGTERM) => "SIGTERM",
                    _ => "unknown",
                },
                recv(self.hup) -> _ => reload(),
            }
        }
    }

    fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// `SIGHUP`: reads and validates the configuration file again; a file that
/// fails is refused with every problem logged and the running keys kept,
/// else the friends' keys are swapped in (requests already past the key
/// check, transfers included, carry on). Logs names, never keys.
fn reload(running: &Config, keys: &KeyRing, limits: &Limits) {
    let file = running.file.as_path();
    log::info!("reload requested signal=SIGHUP file={}", file.display());
    let env = |k: &str| std::env::var(k).ok();
    let config = match Config::load(file, &env) {
        Ok(c) => c,
        Err(Error::Config(problems)) => {
            for p in &problems.list {
                log::error!(
                    "reload refused key={} line={} problem={}",
                    p.key,
                    p.line.map_or("-".into(), |l| l.to_string()),
                    p.message
                );
            }
            log::error!(
                "reload refused: {} problem(s); the running configuration is kept",
                problems.list.len()
            );
            return;
        }
        Err(e) => {
            log::error!("reload refused: {e}; the running configuration is kept");
            return;
        }
    };
    if other_settings(running) != other_settings(&config) {
        log::warn!(
            "reload: settings other than [[server.peer_keys]], [[peers]] and the speed limits changed; they apply at the next start"
        );
    }
    limits.reload(config.limit_settings(), std::time::SystemTime::now());
    let rates = limits.current();
    log::info!(
        "reload: speed limits upload={} download={} alternative={}",
        rates.upload,
        rates.download,
        limits.alt()
    );
    let (added, removed, changed) = keys.replace(config.server.peer_keys);
    let (p_added, p_removed, p_changed) = running.peers.replace(config.peers.current().to_vec());
    log::info!(
        "reload done peer_keys_added=[{}] peer_keys_removed=[{}] peer_keys_changed=[{}] peers_added=[{}] peers_removed=[{}] peers_changed=[{}]",
        added.join(","),
        removed.join(","),
        changed.join(","),
        p_added.join(","),
        p_removed.join(","),
        p_changed.join(",")
    );
    for p in config
        .peers
        .current()
        .iter()
        .filter(|p| p.in_clear_text_beyond_the_lan())
    {
        warn_clear_text(p);
    }
}

/// The effective configuration without what a reload applies.
fn other_settings(c: &Config) -> String {
    let mut c = c.clone();
    c.server.peer_keys.clear();
    c.peers = crate::config::Peers::default();
    c.server.max_upload_rate = 0;
    c.downloads.max_rate = 0;
    c.limits = crate::config::LimitsConfig {
        schedule: None,
        alt_upload_rate: 0,
        alt_download_rate: 0,
    };
    c.to_string()
}

/// The speed limits of `config` in force (`rate`'s buckets), the time zone
/// their schedule is read in logged.
fn start_limits(config: &Config) -> Arc<Limits> {
    let (zone, problem) = Zone::load(std::env::var("TZ").ok().as_deref());
    let settings = config.limit_settings();
    match (problem, settings.schedule) {
        (Some(why), Some(_)) => log::warn!("{why}"),
        (Some(why), None) => log::debug!("local time zone={}: {why}", zone.source),
        (None, _) => log::debug!("local time zone={}", zone.source),
    }
    let limits = Limits::new(
        settings,
        zone,
        (&crate::rate::UPLOAD, &crate::rate::DOWNLOAD),
        config.downloads.max_concurrent_downloads,
        std::time::SystemTime::now(),
    );
    let rates = limits.current();
    log::info!(
        "speed limits upload={} download={} alternative={}",
        rates.upload,
        rates.download,
        limits.alt()
    );
    Arc::new(limits)
}

fn warn_clear_text(p: &crate::config::Peer) {
    log::warn!(
        "peer {} is reached over plain http at {}, not a private or loopback address: its key travels in clear text (use https://)",
        p.name,
        p.url
    );
}

/// Ends the process if shutdown overruns its budget.
struct Watchdog {
    done: crossbeam_channel::Sender<()>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    fn start(budget: Duration) -> Watchdog {
        let (done, rx) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("shutdown-watchdog".into())
            .spawn(move || {
                if rx.recv_timeout(budget).is_err() {
                    log::error!(
                        "shutdown did not finish within {} ms: exiting now",
                        budget.as_millis()
                    );
                    std::process::exit(1);
                }
            })
            .expect("spawn the shutdown watchdog");
        Watchdog { done, thread }
    }

    fn disarm(self) {
        let _ = self.done.send(());
        let _ = self.thread.join();
    }
}

/// How soon a scan runs again when an *arr library could not be asked.
const UNAVAILABLE_RESCAN: Duration = Duration::from_secs(30);

/// The `catalogue` thread: scans the libraries at start-up, then every
/// `interval` (sooner, [`UNAVAILABLE_RESCAN`], while an *arr library's
/// source is unavailable), until stopped.
struct Rescanner {
    stop: crossbeam_channel::Sender<()>,
    cancel: Arc<AtomicBool>,
    worker: Worker,
}

impl Rescanner {
    fn start(
        catalogue: Arc<Catalogue>,
        interval: Duration,
        dashboard: Arc<crate::owner::dashboard::Dashboard>,
    ) -> Result<Rescanner> {
        let (stop, rx) = bounded::<()>(1);
        let cancel = Arc::new(AtomicBool::new(false));
        let cancelled = cancel.clone();
        let worker = Worker::spawn("catalogue", move || {
            Rescanner::run(&catalogue, interval, &rx, &cancelled, &dashboard);
        })?;
        Ok(Rescanner {
            stop,
            cancel,
            worker,
        })
    }

    /// Scan, log, wait; until `stop` says so (or `cancelled` ends a scan).
    fn run(
        catalogue: &Catalogue,
        interval: Duration,
        stop: &Receiver<()>,
        cancelled: &AtomicBool,
        dashboard: &crate::owner::dashboard::Dashboard,
    ) {
        loop {
            let Some(stats) = catalogue.rescan_unless(cancelled) else {
                return;
            };
            dashboard.scanned(&stats);
            log::info!(
                "catalogue scanned items={} skipped={} errors={} unavailable={} elapsed_ms={}",
                stats.items,
                stats.skipped,
                stats.errors,
                stats.unavailable,
                stats.elapsed.as_millis()
            );
            if stats.over_limit > 0 {
                log::warn!(
                    "catalogue full: {} video files left out (server.max_catalogue_items)",
                    stats.over_limit
                );
            }
            let wait = match stats.unavailable {
                0 => interval,
                _ => interval.min(UNAVAILABLE_RESCAN),
            };
            if stop.recv_timeout(wait) != Err(crossbeam_channel::RecvTimeoutError::Timeout) {
                return;
            }
        }
    }

    /// Stops the thread, abandoning a scan in progress: joined when it ends
    /// within `limit` (an *arr being asked answers within its deadline,
    /// longer than the shutdown budget: past `limit` it is left behind).
    fn stop(self, limit: Duration) {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.stop.send(());
        self.worker.join_within(limit, "an *arr");
    }
}
