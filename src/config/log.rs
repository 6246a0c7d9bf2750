//! `[log]`: the level (which `JACK_LOG` overrides, read through the `Env`
//! function) and the format of the log lines. This module must not log
//! (that is `logger`).

use std::fmt;

use super::schema::{Key, Kind, Scalar, section};
use super::walk::{Cx, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];
    /// The names `log.format` takes, in the order of [`LogFormat::ALL`].
    const NAMES: &'static [&'static str] = &["text", "json"];

    fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl Scalar for LogFormat {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> LogFormat {
        let Kind::Choice { default, choices } = key.kind else {
            unreachable!("{} is declared {:?}, read as a choice", key.name, key.kind)
        };
        let named: Vec<(&str, LogFormat)> = choices.iter().copied().zip(Self::ALL).collect();
        let default = named.iter().find(|(n, _)| *n == default).map(|(_, v)| *v);
        cx.one_of(t, key.name, &named, default.unwrap_or(LogFormat::Text))
    }

    fn show(&self, _: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_str())
    }
}

section! {
    #[derive(Debug, Clone)]
    pub struct LogConfig {
        pub level: log::LevelFilter,
        /// True when `JACK_LOG` overrode `log.level`.
        pub level_from_env: bool,
    }
    keys {
        pub format: LogFormat = Key::choice(
            "format", "text", LogFormat::NAMES,
            "one key=value line per event (text) or one JSON object per line (json)",
        ),
    }
    hand [
        Key::hand("level", Some("\"info\""), "error | warn | info | debug | trace; JACK_LOG overrides it"),
    ]
}

const LEVELS: &str = "error, warn, info, debug, trace";

fn parse_level(s: &str) -> Option<log::LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        _ => None,
    }
}

impl LogConfig {
    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[log]")?;
        let level = self.level.as_str().to_ascii_lowercase();
        if self.level_from_env {
            writeln!(f, "level = \"{level}\" # from JACK_LOG")?;
        } else {
            writeln!(f, "level = \"{level}\"")?;
        }
        self.show_keys(f)
    }
}

impl Cx<'_> {
    pub(super) fn log(&mut self, top: &mut Table<'_, '_>) -> LogConfig {
        self.section(top, "log", LogConfig::KEYS, |cx, t| {
            let mut level = match cx.string(t, "level") {
                None => log::LevelFilter::Info,
                Some((s, span)) => parse_level(&s).unwrap_or_else(|| {
                    let msg = format!("{s:?} is not one of {LEVELS}");
                    cx.problem(t.key("level"), Some(span), msg);
                    log::LevelFilter::Info
                }),
            };
            let mut level_from_env = false;
            if let Some(v) = (cx.env)("JACK_LOG").filter(|v| !v.is_empty()) {
                match parse_level(&v) {
                    Some(l) => {
                        level = l;
                        level_from_env = true;
                    }
                    None => cx.problem(
                        "JACK_LOG (environment)".into(),
                        None,
                        format!("{v:?} is not one of {LEVELS}"),
                    ),
                }
            }
            LogConfig::walk(cx, t, level, level_from_env)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::testing::*;
    use crate::config::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_log_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"k\"\n[log]\nlevel = \"loud\"\n",
                "log.level",
                Some(4),
                "is not one of",
            ),
            (
                "[server]\napi_key = \"k\"\n[log]\nformat = \"xml\"\n",
                "log.format",
                Some(4),
                "is not one of",
            ),
        ]);
    }

    #[test]
    fn jack_log_overrides_the_level_and_is_validated() {
        let env = |k: &str| (k == "JACK_LOG").then(|| "debug".to_string());
        let c = Config::parse(MINIMAL, Path::new("/x/jack.toml"), &env).unwrap();
        assert_eq!(c.log.level, ::log::LevelFilter::Debug);
        let bad = |k: &str| (k == "JACK_LOG").then(|| "chatty".to_string());
        let err = Config::parse(MINIMAL, Path::new("/x/jack.toml"), &bad).unwrap_err();
        assert_eq!(err.list[0].key, "JACK_LOG (environment)");
    }
}
