//! `[[library]]`: the folders, and the Radarr/Sonarr libraries, this node
//! serves to peers ([`Library`], [`Category`], [`LibrarySource`]). This
//! module must not scan a folder or ask an *arr (that is `serve/catalogue`).

use std::fmt;
use std::path::PathBuf;

use super::arr::{Arr, ArrKind};
use super::schema::Key;
use super::walk::{Cx, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Movies,
    Tv,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Movies => "movies",
            Category::Tv => "tv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Library {
    pub name: String,
    pub path: PathBuf,
    pub category: Category,
    /// Lower-case file extensions to serve; empty means the default video list.
    pub extensions: Vec<String>,
    /// Where the files come from: a folder (`path`), or the files a
    /// Radarr/Sonarr knows (`path` is then empty).
    pub source: LibrarySource,
}

#[derive(Debug, Clone)]
pub enum LibrarySource {
    /// `kind = "directory"` (the default): every video under `path`.
    Directory,
    /// `kind = "radarr"` or `"sonarr"`: the movies or episodes that have a file.
    Arr(Arr),
}

impl Library {
    /// The keys of a `[[library]]` entry.
    pub const KEYS: &'static [Key] = &[
        Key::hand("name", None, "a short unique name"),
        Key::hand(
            "kind",
            None,
            "\"directory\" (the default), \"radarr\" or \"sonarr\"",
        ),
        Key::hand(
            "path",
            None,
            "the folder, scanned recursively (directory only)",
        ),
        Key::hand(
            "category",
            None,
            "\"movies\" or \"tv\" (default: tv for sonarr, else movies)",
        ),
        Key::hand(
            "extensions",
            None,
            "file extensions served (default: the video list)",
        ),
        Key::hand("url", None, "the *arr's base URL (radarr, sonarr)"),
        Key::hand("api_key", None, "the *arr's API key (a secret)"),
    ];

    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[[library]]\nname = {:?}", self.name)?;
        match &self.source {
            LibrarySource::Directory => writeln!(f, "path = {:?}", self.path.display())?,
            LibrarySource::Arr(a) => {
                writeln!(f, "kind = \"{}\"", a.kind.as_str())?;
                writeln!(f, "url = {:?}\napi_key = {}", a.url, a.api_key)?;
            }
        }
        writeln!(f, "category = \"{}\"", self.category.as_str())?;
        if !self.extensions.is_empty() {
            writeln!(f, "extensions = {:?}", self.extensions)?;
        }
        Ok(())
    }
}

impl Cx<'_> {
    pub(super) fn libraries(&mut self, top: &mut Table<'_, '_>) -> Vec<Library> {
        let mut out: Vec<Library> = Vec::new();
        let mut names = Vec::new();
        for (mut t, _) in self.array_of_tables(top, "library", Library::KEYS) {
            let name = self.unique_name(&mut t, &mut names, "library");
            let kind = self.one_of(
                &mut t,
                "kind",
                &[
                    ("directory", None),
                    ("radarr", Some(ArrKind::Radarr)),
                    ("sonarr", Some(ArrKind::Sonarr)),
                ],
                None,
            );
            let (path, source) = match kind {
                None => {
                    let path = self
                        .required_string(&mut t, "path")
                        .map(|(raw, _)| self.resolve(&raw));
                    (path, Some(LibrarySource::Directory))
                }
                Some(kind) => {
                    if let Some(v) = t.get("path") {
                        let msg = format!(
                            "not used with kind = \"{}\": the *arr says where its files are",
                            kind.as_str()
                        );
                        self.problem(t.key("path"), Some(v.span()), msg);
                    }
                    let endpoint =
                        self.arr_endpoint(&mut t, kind, name.as_ref().map(|n| n.0.clone()));
                    (Some(PathBuf::new()), endpoint.map(LibrarySource::Arr))
                }
            };
            let default_category = match kind {
                Some(ArrKind::Sonarr) => Category::Tv,
                _ => Category::Movies,
            };
            let category = self.one_of(
                &mut t,
                "category",
                &[("movies", Category::Movies), ("tv", Category::Tv)],
                default_category,
            );
            let extensions = self.string_list(&mut t, "extensions");
            self.finish(t);
            if let (Some((name, _)), Some(path), Some(source)) = (name, path, source) {
                out.push(Library {
                    name,
                    path,
                    category,
                    extensions,
                    source,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_library_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\n[[library]]\nname = \"m\"\npath = \"m\"\ncategory = \"music\"\n",
                "library[0].category",
                Some(6),
                "is not one of",
            ),
            (
                "[server]\napi_key = \"k\"\n[[library]]\nname = \"m\"\n",
                "library[0].path",
                None,
                "required key is missing",
            ),
        ]);
    }
}
