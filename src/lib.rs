//! jack: a small daemon that lets friends share media libraries through the
//! Radarr/Sonarr stack they already run. See ARCHITECTURE.md for the map.

pub mod api;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod db;
pub mod downloads;
pub mod error;
pub mod fault;
pub mod handoff;
pub mod instance;
pub mod logger;
pub mod naming;
pub mod peer;
pub mod range;
pub mod reconcile;
pub mod retry;
pub mod server;
pub mod status;
pub mod stub;
pub mod transfer;
pub mod watch;
