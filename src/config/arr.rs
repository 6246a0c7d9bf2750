//! `[[arr]]`: the operator's own Radarr/Sonarr ([`Arr`], [`ArrKind`]), and
//! the `url`/`api_key` pair an *arr library shares with it. This module must
//! not call an *arr (that is `arr/client`).

use std::fmt;

use super::schema::Key;
use super::secret::Secret;
use super::walk::{Cx, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrKind {
    Radarr,
    Sonarr,
}

impl ArrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArrKind::Radarr => "radarr",
            ArrKind::Sonarr => "sonarr",
        }
    }
}

/// A Radarr or Sonarr instance: `[[arr]]`, or the source of a library.
#[derive(Debug, Clone)]
pub struct Arr {
    pub name: String,
    pub kind: ArrKind,
    /// Base URL without a trailing slash.
    pub url: String,
    pub api_key: Secret,
}

impl Arr {
    /// The keys of an `[[arr]]` entry.
    pub const KEYS: &'static [Key] = &[
        Key::hand("name", None, "a short unique name"),
        Key::hand("kind", None, "\"radarr\" or \"sonarr\""),
        Key::hand("url", None, "its base URL (http)"),
        Key::hand("api_key", None, "its API key (a secret)"),
    ];

    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[[arr]]\nname = {:?}", self.name)?;
        writeln!(f, "kind = \"{}\"\nurl = {:?}", self.kind.as_str(), self.url)?;
        writeln!(f, "api_key = {}", self.api_key)
    }
}

impl Cx<'_> {
    pub(super) fn arrs(&mut self, top: &mut Table<'_, '_>) -> Vec<Arr> {
        let mut out: Vec<Arr> = Vec::new();
        let mut names = Vec::new();
        for (mut t, _) in self.array_of_tables(top, "arr", Arr::KEYS) {
            let name = self.unique_name(&mut t, &mut names, "arr");
            let kind = match t.get("kind") {
                None => {
                    self.problem(t.key("kind"), None, "required key is missing");
                    None
                }
                Some(_) => {
                    let choices = [
                        ("radarr", Some(ArrKind::Radarr)),
                        ("sonarr", Some(ArrKind::Sonarr)),
                    ];
                    self.one_of(&mut t, "kind", &choices, None)
                }
            };
            let endpoint =
                self.arr_endpoint(&mut t, kind.unwrap_or(ArrKind::Radarr), name.map(|n| n.0));
            self.finish(t);
            if let (Some(_), Some(arr)) = (kind, endpoint) {
                out.push(arr);
            }
        }
        out
    }

    /// `url` and `api_key` of a Radarr/Sonarr (`[[arr]]` or an *arr library).
    pub(super) fn arr_endpoint(
        &mut self,
        t: &mut Table<'_, '_>,
        kind: ArrKind,
        name: Option<String>,
    ) -> Option<Arr> {
        let url = self.required_string(t, "url");
        let api_key = self.secret(t, "api_key");
        let url = self.url(t, url, &["http"]);
        Some(Arr {
            name: name?,
            kind,
            url: url?,
            api_key: api_key?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::testing::*;
    use crate::config::*;

    #[test]
    fn arr_tables_are_checked_with_every_problem_at_once() {
        let ok = "[server]\napi_key = \"k\"\n[torznab]\npeer_timeout_ms = 2500\n\
            [qbittorrent]\nusername = \"admin\"\npassword = \"pw\"\n\
            [[arr]]\nname = \"radarr\"\nkind = \"radarr\"\nurl = \"http://127.0.0.1:7878\"\napi_key = \"r\"\n\
            [[library]]\nname = \"films\"\nkind = \"radarr\"\nurl = \"http://127.0.0.1:7878/\"\napi_key = \"r\"\n\
            [[library]]\nname = \"shows\"\nkind = \"sonarr\"\nurl = \"http://127.0.0.1:8989\"\napi_key = \"s\"\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.torznab.peer_timeout, Duration::from_millis(2500));
        assert_eq!(c.qbittorrent.as_ref().unwrap().username, "admin");
        assert_eq!(c.arrs[0].kind, ArrKind::Radarr);
        assert!(
            matches!(&c.libraries[0].source, LibrarySource::Arr(a) if a.url == "http://127.0.0.1:7878")
        );
        assert_eq!(c.libraries[1].category, Category::Tv, "sonarr serves tv");
        let shown = c.to_string();
        assert!(
            shown.contains("[qbittorrent]") && !shown.contains("\"pw\""),
            "{shown}"
        );
        // No [qbittorrent] table: the API is not offered.
        assert!(
            parse("[server]\napi_key = \"k\"\n")
                .unwrap()
                .qbittorrent
                .is_none()
        );

        let bad = "[server]\napi_key = \"k\"\n[torznab]\npeer_timeout_ms = 5\n\
            [qbittorrent]\nusername = \"\"\n\
            [[arr]]\nname = \"a\"\nkind = \"lidarr\"\nurl = \"ftp://x\"\napi_key = \"r\"\n\
            [[arr]]\nname = \"b\"\nurl = \"http://x\"\napi_key = \"r\"\n\
            [[library]]\nname = \"films\"\nkind = \"radarr\"\npath = \"/x\"\nurl = \"http://x\"\napi_key = \"r\"\n";
        let keys: Vec<String> = problems(bad).into_iter().map(|p| p.key).collect();
        for want in [
            "torznab.peer_timeout_ms",
            "qbittorrent.username",
            "qbittorrent.password",
            "arr[0].kind",
            "arr[0].url",
            "arr[1].kind",
            "library[0].path",
        ] {
            assert!(keys.contains(&want.to_string()), "{want} not in {keys:?}");
        }
    }
}
