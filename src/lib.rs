//! jack: a small daemon that lets friends share media libraries through the
//! Radarr/Sonarr stack they already run. See ARCHITECTURE.md for the map.

pub mod arr;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod db;
pub mod digest;
pub mod download;
pub mod error;
pub mod fault;
pub mod format;
pub mod http;
pub mod init;
pub mod instance;
pub mod keys;
pub mod lexical;
pub mod limits;
pub mod localtime;
pub mod logger;
pub mod metrics;
pub mod naming;
pub mod owner;
pub mod plain;
pub mod rate;
pub mod scan;
pub mod serve;
pub mod stub;
pub mod worker;
