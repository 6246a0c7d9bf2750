//! The downloading side in process against a [`FakePeer`]: a config with
//! one peer (`alice`), a real registry and `Downloads` with a seeded RNG
//! and a test clock (`tests/client.rs`, `tests/verify.rs`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jack::config::Config;
use jack::db::{Registry, Status};
use jack::download::downloads::{Added, Downloads, Pool, Start};
use jack::download::handoff::Mode as HandOffMode;
use jack::download::retry::SeededRng;

use super::OffsetClock;
use super::fake_peer::{self, FakePeer};

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub registry: Arc<Registry>,
    pub downloads: Arc<Downloads>,
    pub pool: Option<Pool>,
    pub clock: Arc<OffsetClock>,
}

impl Bed {
    pub fn start(peer: &FakePeer, extra: &str) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        Bed::start_in(dir, peer, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, peer: &FakePeer, extra: &str) -> Bed {
        Bed::start_with(dir, peer, extra, OffsetClock::default())
    }

    pub fn start_with(
        dir: tempfile::TempDir,
        peer: &FakePeer,
        extra: &str,
        clock: OffsetClock,
    ) -> Bed {
        Bed::start_full(dir, peer, extra, clock, None, &[])
    }

    /// A bed whose downloads come from `peer` (`alice`) and that knows
    /// `friends` too (names and fake peers): sources of the same file
    /// (§2.6).
    pub fn start_with_friends(peer: &FakePeer, friends: &[(&str, &FakePeer)], extra: &str) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        Bed::start_full(dir, peer, extra, OffsetClock::default(), None, friends)
    }

    /// A bed whose hand-off copies (as across two mounts), on one filesystem.
    pub fn start_copying(peer: &FakePeer, extra: &str) -> Bed {
        Bed::start_handing_off(peer, extra, HandOffMode::Copy)
    }

    /// A bed with the hand-off `mode`, whatever the probe would pick.
    pub fn start_handing_off(peer: &FakePeer, extra: &str, mode: HandOffMode) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        Bed::start_full(dir, peer, extra, OffsetClock::default(), Some(mode), &[])
    }

    pub fn start_full(
        dir: tempfile::TempDir,
        peer: &FakePeer,
        extra: &str,
        clock: OffsetClock,
        handoff: Option<HandOffMode>,
        friends: &[(&str, &FakePeer)],
    ) -> Bed {
        let max_delay = if extra.contains("retry_max_delay_ms") {
            ""
        } else {
            "retry_max_delay_ms = 20\n"
        };
        let mut text = format!(
            "[server]\napi_key = \"k\"\n[downloads]\nretry_base_delay_ms = 1\n{max_delay}idle_timeout_ms = 400\n{extra}\n[[peers]]\nname = \"alice\"\nurl = \"http://{}\"\napi_key = \"k\"\n",
            peer.addr
        );
        for (name, friend) in friends {
            text.push_str(&format!(
                "[[peers]]\nname = \"{name}\"\nurl = \"http://{}\"\napi_key = \"k\"\n",
                friend.addr
            ));
        }
        let config = Config::parse(&text, &dir.path().join("jack.toml"), &|_| None).unwrap();
        config.create_dirs().unwrap();
        let registry = Arc::new(Registry::open(&config.database.path).unwrap());
        let clock = Arc::new(clock);
        let rng = Box::new(SeededRng::new(7));
        let (downloads, pool) = match handoff {
            None => Downloads::start(registry.clone(), &config, rng, clock.clone()),
            Some(mode) => {
                Downloads::start_with(registry.clone(), &config, rng, clock.clone(), mode)
            }
        }
        .unwrap();
        Bed {
            dir,
            registry,
            downloads,
            pool: Some(pool),
            clock,
        }
    }

    pub fn add(&self, item: &str, size: usize) -> i64 {
        let stub = jack::stub::build("alice", item, item, size as u64);
        match self
            .downloads
            .add_stub(&format!("{item}.torrent"), &stub, Start::Now)
            .unwrap()
        {
            Added::Queued(id) => id,
            other => panic!("not queued: {other:?}"),
        }
    }

    pub fn wait_done(&self, id: i64) -> jack::db::Download {
        let start = Instant::now();
        loop {
            let row = self.registry.get(id).unwrap().unwrap();
            // Done, and its worker has let go of it (the slot is freed just
            // after the status is written; a re-grab in between is a
            // duplicate of a running transfer).
            if matches!(row.status, Status::Completed | Status::Failed)
                && !self.downloads.running().contains_key(&id)
            {
                return row;
            }
            assert!(
                start.elapsed() < Duration::from_secs(if super::emulated() { 120 } else { 20 }),
                "download {id} still {:?}",
                row.status
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn completed(&self, name: &str) -> PathBuf {
        self.dir.path().join("data/completed").join(name)
    }

    pub fn reasons(&self, id: i64) -> Vec<String> {
        self.events(id, "restarted")
    }

    /// The details of download `id`'s events of `kind`, oldest first.
    pub fn events(&self, id: i64, kind: &str) -> Vec<String> {
        self.registry
            .events(id)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.detail)
            .collect()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.shutdown(Duration::from_secs(2));
        }
    }
}

pub fn file(id: &str, data: &[u8]) -> fake_peer::File {
    fake_peer::File::mkv(id, data)
}
