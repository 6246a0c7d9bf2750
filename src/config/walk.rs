//! The validation walk over the spanned TOML tree: [`Cx`] (the source text
//! for line numbers, the configuration's folder, the environment, the
//! problems found so far) and [`Table`] (one table being read, the keys
//! asked for, so the rest are reported unknown). The typed readers every
//! section uses: strings, integers in a range, paths, one of a set, tables
//! and arrays of tables; `check_url`, `valid_name`. Each reader reports
//! what is wrong with the key and its line and goes on, so every problem
//! is found at once. This module must not know a section's keys.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Env;
use super::Problem;
use super::schema::Key;

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// The validation walk: the source text for line numbers, and the problems
/// found so far.
pub(crate) struct Cx<'a> {
    pub(super) text: &'a str,
    pub(super) base: PathBuf,
    pub(super) env: Env<'a>,
    pub(super) problems: Vec<Problem>,
}

/// One TOML table being read: remembers which keys were asked for so the
/// rest can be reported as unknown.
pub(crate) struct Table<'t, 'i> {
    pub(super) path: String,
    pub(super) table: Option<&'t DeTable<'i>>,
    /// The table's declared keys: the walker asks for no other.
    keys: &'static [Key],
    seen: BTreeSet<&'static str>,
}

impl<'t, 'i> Table<'t, 'i> {
    pub(super) fn new(
        path: String,
        table: Option<&'t DeTable<'i>>,
        keys: &'static [Key],
    ) -> Table<'t, 'i> {
        Table {
            path,
            table,
            keys,
            seen: BTreeSet::new(),
        }
    }

    pub(super) fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    pub(super) fn get(&mut self, k: &'static str) -> Option<&'t Value<'i>> {
        debug_assert!(
            self.keys.iter().any(|d| d.name == k),
            "{} is not declared",
            self.key(k)
        );
        self.seen.insert(k);
        self.table?.get(k)
    }

    /// The span of `k` when the table has it, without asking for it.
    pub(super) fn span_of(&self, k: &str) -> Option<Range<usize>> {
        self.table.and_then(|t| t.get(k)).map(|v| v.span())
    }
}

impl<'a> Cx<'a> {
    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn problem(
        &mut self,
        key: String,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line(&s));
        self.problems.push(Problem {
            key,
            line,
            message: message.into(),
        });
    }

    /// Reports every key of `t` that was never asked for.
    pub(super) fn finish(&mut self, t: Table<'_, '_>) {
        let Some(table) = t.table else { return };
        for (k, _) in table.iter() {
            if !t.seen.contains(k.get_ref().as_ref()) {
                let key = t.key(k.get_ref());
                self.problem(key, Some(k.span()), "unknown key");
            }
        }
    }

    /// The table `k` of `parent`, whose keys are `keys`.
    pub(super) fn table<'t, 'i>(
        &mut self,
        parent: &mut Table<'t, 'i>,
        k: &'static str,
        keys: &'static [Key],
    ) -> Table<'t, 'i> {
        let path = parent.key(k);
        let table = match parent.get(k) {
            None => None,
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => Some(t),
                other => {
                    let msg = format!("expected a table, found {}", other.type_str());
                    self.problem(path.clone(), Some(v.span()), msg);
                    None
                }
            },
        };
        Table::new(path, table, keys)
    }

    /// Reads the table `k` of `parent` with `read`, then reports its
    /// unknown keys.
    pub(super) fn section<T>(
        &mut self,
        parent: &mut Table<'_, '_>,
        k: &'static str,
        keys: &'static [Key],
        read: impl FnOnce(&mut Cx<'a>, &mut Table<'_, '_>) -> T,
    ) -> T {
        let mut t = self.table(parent, k, keys);
        let value = read(self, &mut t);
        self.finish(t);
        value
    }

    /// An array of tables (`[[library]]`); each element comes back as a
    /// table whose keys are `keys`.
    pub(super) fn array_of_tables<'t, 'i>(
        &mut self,
        parent: &mut Table<'t, 'i>,
        k: &'static str,
        keys: &'static [Key],
    ) -> Vec<(Table<'t, 'i>, Range<usize>)> {
        let path = parent.key(k);
        let Some(v) = parent.get(k) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            let msg = format!(
                "expected an array of tables ([[{k}]]), found {}",
                v.get_ref().type_str()
            );
            self.problem(path, Some(v.span()), msg);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            match item.get_ref() {
                DeValue::Table(t) => out.push((Table::new(ipath, Some(t), keys), item.span())),
                other => {
                    let msg = format!("expected a table, found {}", other.type_str());
                    self.problem(ipath, Some(item.span()), msg);
                }
            }
        }
        out
    }

    /// A string key; `None` when absent or of the wrong type (reported).
    pub(super) fn string(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
    ) -> Option<(String, Range<usize>)> {
        let v = t.get(k)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            other => {
                let msg = format!("expected a string, found {}", other.type_str());
                self.problem(t.key(k), Some(v.span()), msg);
                None
            }
        }
    }

    /// An array of non-empty strings (e.g. file extensions), lower-cased.
    pub(super) fn string_list(&mut self, t: &mut Table<'_, '_>, k: &'static str) -> Vec<String> {
        let Some(v) = t.get(k) else { return Vec::new() };
        let DeValue::Array(items) = v.get_ref() else {
            let msg = format!(
                "expected an array of strings, found {}",
                v.get_ref().type_str()
            );
            self.problem(t.key(k), Some(v.span()), msg);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) if !s.trim().is_empty() => {
                    out.push(s.trim().trim_start_matches('.').to_ascii_lowercase())
                }
                other => {
                    let msg = format!("expected non-empty strings, found {}", other.type_str());
                    self.problem(t.key(k), Some(item.span()), msg);
                }
            }
        }
        out
    }

    pub(super) fn required_string(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
    ) -> Option<(String, Range<usize>)> {
        let seen_before = self.problems.len();
        let got = self.string(t, k);
        if got.is_none() && self.problems.len() == seen_before {
            self.problem(t.key(k), None, "required key is missing");
        }
        got
    }

    /// A name (`[A-Za-z0-9_-]{1,64}`) that is required and unique among
    /// `taken` (`what` names the list in the message); pushed on `taken`.
    pub(super) fn unique_name(
        &mut self,
        t: &mut Table<'_, '_>,
        taken: &mut Vec<String>,
        what: &str,
    ) -> Option<(String, Range<usize>)> {
        let name = self.required_string(t, "name");
        if let Some((n, span)) = &name {
            if !valid_name(n) {
                self.problem(t.key("name"), Some(span.clone()), NAME_RULE);
            } else if taken.contains(n) {
                let msg = format!("duplicate {what} name {n:?}");
                self.problem(t.key("name"), Some(span.clone()), msg);
            }
            taken.push(n.clone());
        }
        name
    }

    /// A boolean (`default` when absent or not a boolean).
    pub(super) fn boolean(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        default: bool,
    ) -> bool {
        let Some(v) = t.get(k) else { return default };
        match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                let msg = format!("expected true or false, found {}", other.type_str());
                self.problem(t.key(k), Some(v.span()), msg);
                default
            }
        }
    }

    /// An integer key within `min..=max`, or `default` when absent.
    pub(super) fn integer(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let Some(v) = t.get(k) else { return default };
        let DeValue::Integer(i) = v.get_ref() else {
            let msg = format!("expected an integer, found {}", v.get_ref().type_str());
            self.problem(t.key(k), Some(v.span()), msg);
            return default;
        };
        match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= i128::from(min) && n <= i128::from(max) => {
                u64::try_from(n).unwrap_or(default)
            }
            Ok(n) if n < i128::from(min) => {
                self.problem(
                    t.key(k),
                    Some(v.span()),
                    format!("must be at least {min}, got {n}"),
                );
                default
            }
            _ => {
                let msg = format!("must be at most {max}, got {}", i.as_str());
                self.problem(t.key(k), Some(v.span()), msg);
                default
            }
        }
    }

    pub(super) fn path(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        default: &str,
    ) -> PathBuf {
        let raw = match self.string(t, k) {
            Some((s, span)) if s.trim().is_empty() => {
                self.problem(t.key(k), Some(span), "must not be empty");
                default.to_string()
            }
            Some((s, _)) => s,
            None => default.to_string(),
        };
        self.resolve(&raw)
    }

    /// A path from the config, relative ones against the config's directory.
    pub(super) fn resolve(&self, raw: &str) -> PathBuf {
        let joined = self.base.join(raw);
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// A string key that must be one of `choices` (`default` when absent).
    pub(super) fn one_of<T: Copy>(
        &mut self,
        t: &mut Table<'_, '_>,
        k: &'static str,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some((s, span)) = self.string(t, k) else {
            return default;
        };
        if let Some((_, v)) = choices.iter().find(|(c, _)| *c == s) {
            return *v;
        }
        let names: Vec<String> = choices.iter().map(|(c, _)| format!("{c:?}")).collect();
        let msg = format!("{s:?} is not one of {}", names.join(", "));
        self.problem(t.key(k), Some(span), msg);
        default
    }

    /// A URL key checked by [`check_url`] (`None` when wrong, reported).
    pub(super) fn url(
        &mut self,
        t: &mut Table<'_, '_>,
        given: Option<(String, Range<usize>)>,
        schemes: &[&str],
    ) -> Option<String> {
        let (u, span) = given?;
        match check_url(&u, schemes) {
            Ok(u) => Some(u),
            Err(msg) => {
                self.problem(t.key("url"), Some(span), msg);
                None
            }
        }
    }
}

pub const NAME_RULE: &str = "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'";

/// Peer and library names: `[A-Za-z0-9_-]{1,64}` (they appear in stubs).
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a base URL (`scheme://host[:port][/path]`) and returns it without a
/// trailing slash.
pub(super) fn check_url(url: &str, schemes: &[&str]) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL such as http://192.168.1.20:5225"
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!("{url:?}: scheme must be {}", schemes.join(" or ")));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "{url:?}: needs a host and must not carry a user or password"
        ));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "{url:?}: must not have a query, fragment or spaces"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}
