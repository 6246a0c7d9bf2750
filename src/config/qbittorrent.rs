//! `[qbittorrent]`: the credentials of the qBittorrent-compatible API for
//! the operator's own Radarr/Sonarr; no table, no API. This module must not
//! serve it (that is `arr/qbit`).

use std::fmt;

use super::schema::Key;
use super::secret::Secret;
use super::walk::{Cx, Table};

#[derive(Debug, Clone)]
pub struct QbitConfig {
    pub username: String,
    pub password: Secret,
}

impl QbitConfig {
    /// The keys of `[qbittorrent]`.
    pub const KEYS: &'static [Key] = &[
        Key::hand("username", None, "the login Radarr/Sonarr present"),
        Key::hand("password", None, "its password (a secret)"),
    ];

    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[qbittorrent]\nusername = {:?}", self.username)?;
        writeln!(f, "password = {}", self.password)
    }
}

impl Cx<'_> {
    pub(super) fn qbittorrent(&mut self, top: &mut Table<'_, '_>) -> Option<QbitConfig> {
        top.get("qbittorrent")?;
        let mut t = self.table(top, "qbittorrent", QbitConfig::KEYS);
        let username = self.required_string(&mut t, "username");
        let password = self.secret(&mut t, "password");
        if let Some((u, span)) = &username
            && (u.is_empty() || u.chars().any(char::is_control))
        {
            let msg = "must not be empty or contain control characters";
            self.problem(t.key("username"), Some(span.clone()), msg);
        }
        self.finish(t);
        Some(QbitConfig {
            username: username?.0,
            password: password?,
        })
    }
}
