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
    /// Report share limits a finished download has reached, so that
    /// Radarr/Sonarr's "Remove Completed" removes it after import.
    pub remove_after_import: bool,
}

impl QbitConfig {
    /// The keys of `[qbittorrent]`.
    pub const KEYS: &'static [Key] = &[
        Key::hand("username", None, "the login Radarr/Sonarr present"),
        Key::hand("password", None, "its password (a secret)"),
        Key::hand(
            "remove_after_import",
            Some("true"),
            "let Radarr/Sonarr remove a finished download once imported",
        ),
    ];

    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[qbittorrent]\nusername = {:?}", self.username)?;
        writeln!(f, "password = {}", self.password)?;
        writeln!(f, "remove_after_import = {}", self.remove_after_import)
    }
}

impl Cx<'_> {
    pub(super) fn qbittorrent(&mut self, top: &mut Table<'_, '_>) -> Option<QbitConfig> {
        top.get("qbittorrent")?;
        let mut t = self.table(top, "qbittorrent", QbitConfig::KEYS);
        let username = self.required_string(&mut t, "username");
        let password = self.secret(&mut t, "password");
        let remove_after_import = self.boolean(&mut t, "remove_after_import", true);
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
            remove_after_import,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;
    use crate::config::*;

    const TABLE: &str =
        "[server]\napi_key = \"k\"\n[qbittorrent]\nusername = \"u\"\npassword = \"p\"\n";

    #[test]
    fn remove_after_import_is_a_boolean_on_by_default() {
        let parse = |extra: &str| {
            let text = format!("{TABLE}{extra}");
            let c = Config::parse(&text, std::path::Path::new("/j/jack.toml"), &no_env);
            c.unwrap().qbittorrent.unwrap().remove_after_import
        };
        assert!(parse(""));
        assert!(!parse("remove_after_import = false\n"));
        each_is_reported(&[(
            &format!("{TABLE}remove_after_import = \"no\"\n"),
            "qbittorrent.remove_after_import",
            Some(6),
            "expected true or false, found string",
        )]);
    }
}
